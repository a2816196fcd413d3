"""RoIAlign (Mask R-CNN), the FPN multi-scale RoIAlign and position-sensitive
RoIAlign (R-FCN), with torchvision's rules on channels-last maps (boxes:
`core/boxes.py`; RoIPool: `roi_pool.py`).

Every box has its own, data-dependent bin sizes, so the operator fixes a
static number of samples per bin (exact for concrete boxes, a bound under
``jit``) and runs one compiled kernel. Each bin is ``sum_taps w_t *
x[cell_t]``: bilinear weights factor into a row part and a column part, so
``g x g`` samples are ``2g x 2g`` taps, summed by a rematerialised scan that
gathers one ``(K, ph, pw, features)`` slab per step (``core.boxes.sum_taps``).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxpool._src.core import boxes as box_args
from jaxpool._src.core.checks import (
  check_bool,
  check_positive_number,
  concrete_values,
  is_int,
)
from jaxpool._src.core.geometry import normalize_output_size
from jaxpool._src.core.options import register_option_check
from jaxpool._src.core.sharding import replicated

__all__ = ["multi_scale_roi_align", "ps_roi_align", "roi_align"]


# ---------------------------------------------------------------------------
# RoIAlign.


def _check_sampling(sampling_ratio, max_sampling_ratio) -> tuple[int, int | None]:
  if not is_int(sampling_ratio):
    raise TypeError(f"sampling_ratio must be an int; got {sampling_ratio!r}.")
  if max_sampling_ratio is not None and not (
    is_int(max_sampling_ratio) and max_sampling_ratio >= 1
  ):
    raise ValueError(f"max_sampling_ratio must be None or an int >= 1; got {max_sampling_ratio!r}.")
  return int(sampling_ratio), max_sampling_ratio


def _sample_grids(size, bins: int, sampling_ratio: int) -> jax.Array:
  """Samples per bin along one axis: fixed, or torchvision's adaptive
  ``ceil(size / bins)`` (0 or less for an empty aligned box)."""
  if sampling_ratio > 0:
    return jnp.full(size.shape, sampling_ratio, jnp.int32)
  return jnp.ceil(box_args.divide(size, bins)).astype(jnp.int32)


def _static_grid(grids, bound: int, max_sampling_ratio: int | None) -> int:
  """The static number of sample slots per bin axis: ``max_sampling_ratio``
  when given, else exact for concrete boxes, else ``bound``."""
  if max_sampling_ratio is not None:
    return max_sampling_ratio
  values = concrete_values(grids)
  if values is not None:
    return max(1, int(values.max(initial=1)))
  return max(1, bound)


def _align_axis(start, size, bins: int, grid, slots: int, length, dtype):
  """Bilinear taps of one axis: cells ``(K, bins, 2 slots)`` and weights.

  Sample ``i < grid`` of bin ``p`` sits at ``start + p * size / bins +
  (i + 0.5) * size / (bins * grid)``; torchvision's rule: a sample outside
  ``[-1, length]`` weighs 0, one at or below 0 reads cell 0, one at or past
  ``length - 1`` reads the last cell. A neighbour with weight 0 is not read
  at all (its cell is the sample's own), so no extreme value leaks through
  ``0 * inf``.
  """
  grid = jnp.minimum(grid, slots)  # under jit, a box that needs more is capped
  step = (size / bins)[:, None, None]
  p = jnp.arange(bins, dtype=dtype)[None, :, None]
  i = jnp.arange(slots, dtype=dtype)[None, None, :]
  grid = grid[:, None, None]
  pos = start[:, None, None] + p * step + (i + 0.5) * step / jnp.maximum(grid, 1).astype(dtype)
  length = jnp.asarray(length)
  length = length[:, None, None] if length.ndim else length
  inside = (
    (jnp.arange(slots, dtype=jnp.int32)[None, None, :] < grid)
    & (pos >= -1)
    & (pos <= length.astype(dtype))
  )
  pos = jnp.where(pos <= 0, jnp.zeros((), dtype), pos)
  low = jnp.clip(jnp.floor(pos), 0, None).astype(jnp.int32)
  at_end = low >= length - 1
  low = jnp.where(at_end, length - 1, low)
  pos = jnp.where(at_end, low.astype(dtype), pos)
  frac = pos - low.astype(dtype)
  high = jnp.where(frac > 0, low + 1, low)
  cells = jnp.stack([low, high], axis=-1).reshape(low.shape[:2] + (-1,))
  weights = jnp.where(inside[..., None], jnp.stack([1 - frac, frac], axis=-1), 0)
  return cells, weights.reshape(cells.shape), jnp.maximum(grid[:, 0, 0], 0)


def _align(
  flat,
  base,
  heights,
  widths,
  corners,
  output_shape,
  *,
  sampling_ratio,
  aligned,
  max_sampling_ratio,
  bounds,
  out_dtype,
  position_sensitive=False,
):
  """RoIAlign over the flattened maps ``flat (N, features)``: box ``k`` reads
  the ``heights[k] x widths[k]`` map starting at row ``base[k]``; ``corners``
  are already scaled to it. The sample slots are fixed here (exact for
  concrete boxes), then one compiled kernel runs (also when called eagerly).
  ``position_sensitive``: ``flat`` is in ``core.boxes.bins_first``'s layout
  (``base`` still counts cells) and each bin reads its own features."""
  ph, pw = output_shape
  size = _roi_size(corners, aligned)
  grid_h = _sample_grids(jax.lax.stop_gradient(size[:, 1]), ph, sampling_ratio)
  grid_w = _sample_grids(jax.lax.stop_gradient(size[:, 0]), pw, sampling_ratio)
  if sampling_ratio > 0:
    slots = (sampling_ratio, sampling_ratio)
  else:
    slots = (
      _static_grid(grid_h, bounds[0], max_sampling_ratio),
      _static_grid(grid_w, bounds[1], max_sampling_ratio),
    )
  return _align_bins(
    flat,
    base,
    heights,
    widths,
    corners,
    grid_h,
    grid_w,
    output_shape,
    aligned,
    slots,
    jnp.dtype(out_dtype),
    position_sensitive,
  )


def _roi_size(corners, aligned: bool):
  size = corners[:, 2:] - corners[:, :2]
  return size if aligned else jnp.maximum(size, 1.0)  # torchvision: malformed RoIs become 1x1


@functools.partial(jax.jit, static_argnums=(7, 8, 9, 10, 11))
def _align_bins(
  flat,
  base,
  heights,
  widths,
  corners,
  grid_h,
  grid_w,
  output_shape,
  aligned,
  slots,
  out_dtype,
  position_sensitive,
):
  ph, pw = output_shape
  dtype = corners.dtype
  start = corners[:, :2] - (0.5 if aligned else 0.0)  # (x1, y1)
  size = _roi_size(corners, aligned)
  rows, wy, grid_h = _align_axis(start[:, 1], size[:, 1], ph, grid_h, slots[0], heights, dtype)
  cols, wx, grid_w = _align_axis(start[:, 0], size[:, 0], pw, grid_w, slots[1], widths, dtype)
  count = jnp.maximum(grid_h * grid_w, 1).astype(dtype)
  wy = wy / count[:, None, None]  # (K, ph, R)

  widths = jnp.asarray(widths)
  widths = widths[:, None, None] if widths.ndim else widths
  rows = base[:, None, None] + rows * widths  # (K, ph, R) first cells of the rows
  return box_args.sum_taps(
    flat, rows, wy, cols, wx, out_dtype, position_sensitive=position_sensitive
  )


def _align_options(output_shape, sampling_ratio, aligned, max_sampling_ratio, box_gradient):
  output_shape = normalize_output_size("output_shape", output_shape, 2)
  sampling_ratio, max_sampling_ratio = _check_sampling(sampling_ratio, max_sampling_ratio)
  return (
    output_shape,
    sampling_ratio,
    check_bool("aligned", aligned),
    max_sampling_ratio,
    check_bool("box_gradient", box_gradient),
  )


def _roi_align_options(
  output_shape, spatial_scale, sampling_ratio, aligned, max_sampling_ratio, box_gradient, **_
):
  options = _align_options(output_shape, sampling_ratio, aligned, max_sampling_ratio, box_gradient)
  return options, box_args.check_scale(spatial_scale)


def roi_align(
  x: jax.typing.ArrayLike,
  boxes: jax.typing.ArrayLike,
  output_shape: int | Sequence[int],
  *,
  spatial_scale: float = 1.0,
  sampling_ratio: int = -1,
  aligned: bool = False,
  max_sampling_ratio: int | None = None,
  box_gradient: bool = False,
) -> jax.Array:
  r"""RoIAlign (Mask R-CNN): bilinear samples averaged per bin, torchvision's rules.

  For a box ``(b, x1, y1, x2, y2)`` with offset $o = 0.5$ if ``aligned``
  else 0, the RoI starts at $x_1 s - o$ and spans $w = (x_2 - x_1) s$
  (at least 1 unless ``aligned``); bin $(p, q)$ of ``(ph, pw)`` averages
  the $\mathrm{grid}_h \times \mathrm{grid}_w$ samples:

  $$
  y[p, q] = \frac{1}{\max(\mathrm{grid}_h \mathrm{grid}_w, 1)} \sum_{i, j}
  \operatorname{bilinear}(x[b],\,
  y_1 s - o + (p + (i + 0.5) / \mathrm{grid}_h) \, h / \mathrm{ph},\,
  x_1 s - o + (q + (j + 0.5) / \mathrm{grid}_w) \, w / \mathrm{pw})
  $$

  where a sample outside $[-1, H] \times [-1, W]$ contributes 0 and one
  within a pixel of the border reads the border (torchvision's ``bilinear``).
  ``sampling_ratio > 0`` fixes ``grid_h = grid_w = sampling_ratio``; ``<=
  0`` is torchvision's adaptive $\mathrm{grid}_h = \lceil h / \mathrm{ph} \rceil$,
  per box.

  The adaptive count depends on the boxes, and shapes under ``jit`` cannot:
  eagerly (concrete boxes) every box gets exactly its count; under ``jit``
  each bin axis has ``max_sampling_ratio`` sample slots (default:
  $\lceil H / \mathrm{ph} \rceil$ and $\lceil W / \mathrm{pw} \rceil$, the
  most a box inside the map needs), unused slots masked, and a larger box's
  count is capped at the bound (its samples still spread evenly over the
  bin). Passing ``max_sampling_ratio`` caps eagerly too, so both modes agree.

  Args:
    x: ``(batch, H, W, features)`` floating-point feature maps.
    boxes: ``(K, 5)`` rows ``(batch_index, x1, y1, x2, y2)`` in image
      coordinates. Concrete boxes must hold finite numbers and batch
      indices in ``[0, batch)``; traced ones cannot be checked: an index
      outside is clamped, and a box with a NaN or infinite number gives
      NaN in its own outputs only (0 for integer maps). ``K = 0`` gives an
      empty ``(0, ph, pw, features)``.
    output_shape: ``(ph, pw)`` or an int for both.
    spatial_scale: map size over image size (``1/16`` for a stride-16 map).
    sampling_ratio: samples per bin axis; ``<= 0`` for adaptive.
    aligned: shift by half a pixel (Detectron2's ``ROIAlignV2``).
    max_sampling_ratio: static cap on the adaptive count (see above).
    box_gradient: differentiate with respect to the box corners as well
      (torchvision and most ports stop it; the bilinear weights are
      differentiable in the positions, the sample counts are not).

  Returns:
    ``(K, ph, pw, features)``, ``x``'s dtype.

  Examples:
    >>> import jax.numpy as jnp, jaxpool
    >>> x = jnp.arange(16.0).reshape(1, 4, 4, 1)
    >>> boxes = jnp.array([[0, 0.0, 0.0, 2.0, 2.0]])
    >>> jaxpool.roi_align(x, boxes, 2)[0, ..., 0]  # one sample per bin, at its centre
    Array([[2.5, 3.5],
           [6.5, 7.5]], dtype=float32)
    >>> jaxpool.roi_align(x, boxes, 2, aligned=True)[0, ..., 0]  # centres on pixels
    Array([[0., 1.],
           [4., 5.]], dtype=float32)
  """
  x = box_args.check_map(x, "roi_align")
  (output_shape, sampling_ratio, aligned, max_sampling_ratio, box_gradient), scale = (
    _roi_align_options(
      output_shape, spatial_scale, sampling_ratio, aligned, max_sampling_ratio, box_gradient
    )
  )
  batch, height, width, features = x.shape
  index, corners, invalid = box_args.check_boxes(
    boxes, batch, "roi_align", box_args.position_dtype(x.dtype)
  )
  if not corners.shape[0]:
    return jnp.zeros((0, *output_shape, features), x.dtype)
  if not box_gradient:
    corners = jax.lax.stop_gradient(corners)
  bounds = (-(-height // output_shape[0]), -(-width // output_shape[1]))
  out = _align(
    replicated(x).reshape(-1, features),
    index * (height * width),
    height,
    width,
    corners * scale,
    output_shape,
    sampling_ratio=sampling_ratio,
    aligned=aligned,
    max_sampling_ratio=max_sampling_ratio,
    bounds=bounds,
    out_dtype=x.dtype,
  )
  return box_args.nan_where_invalid(out, invalid)


# ---------------------------------------------------------------------------
# Position-sensitive RoIAlign (R-FCN, Light-Head R-CNN).


def _ps_roi_align_options(
  output_shape, spatial_scale, sampling_ratio, max_sampling_ratio, box_gradient, **_
):
  options = _align_options(output_shape, sampling_ratio, True, max_sampling_ratio, box_gradient)
  return options, box_args.check_scale(spatial_scale)


def ps_roi_align(
  x: jax.typing.ArrayLike,
  boxes: jax.typing.ArrayLike,
  output_shape: int | Sequence[int],
  *,
  spatial_scale: float = 1.0,
  sampling_ratio: int = -1,
  max_sampling_ratio: int | None = None,
  box_gradient: bool = False,
) -> jax.Array:
  r"""Position-sensitive RoIAlign (R-FCN): each bin averages its own group of features.

  The features split into $\mathrm{ph} \cdot \mathrm{pw}$ groups; output
  feature $c$ of bin $(p, q)$ reads only input feature
  $(c \, \mathrm{ph} + p) \, \mathrm{pw} + q$ (torchvision's channel
  mapping). For a box ``(b, x1, y1, x2, y2)``, the RoI always takes the
  half-pixel offset: it starts at $x_1 s - 1/2$ and spans
  $w = (x_2 - x_1) s$, with no minimum size; bin $(p, q)$ averages
  $\mathrm{grid}_h \times \mathrm{grid}_w$ bilinear samples:

  $$
  y[p, q, c] = \frac{1}{\max(\mathrm{grid}_h \mathrm{grid}_w, 1)} \sum_{i, j}
  \operatorname{bilinear}(x[b, :, :, (c \, \mathrm{ph} + p) \, \mathrm{pw} + q],\,
  y_1 s - \tfrac12 + (p + (i + 0.5) / \mathrm{grid}_h) \, h / \mathrm{ph},\,
  x_1 s - \tfrac12 + (q + (j + 0.5) / \mathrm{grid}_w) \, w / \mathrm{pw})
  $$

  with torchvision's ``bilinear`` (a sample outside $[-1, H] \times [-1, W]$
  contributes 0, one within a pixel of the border reads the border).
  ``sampling_ratio > 0`` fixes ``grid_h = grid_w = sampling_ratio``; ``<= 0``
  is the adaptive $\mathrm{grid}_h = \lceil h / \mathrm{ph} \rceil$, per box,
  under ``jit`` bounded by ``max_sampling_ratio`` exactly as in
  [`roi_align`][jaxpool.roi_align]. This is
  [`roi_align`][jaxpool.roi_align] with ``aligned=True``, bin by bin, on the
  bin's features.

  Unlike torchvision's kernel, which divides by $\mathrm{grid}_h
  \mathrm{grid}_w$ unclamped, a box with no adaptive sample (zero or slightly
  negative extent) gives 0, not NaN.

  Args:
    x: ``(batch, H, W, features)`` floating-point feature maps; ``features``
      a multiple of ``ph * pw``.
    boxes: ``(K, 5)`` rows ``(batch_index, x1, y1, x2, y2)`` in image
      coordinates, checked and handled as in [`roi_align`][jaxpool.roi_align].
    output_shape: ``(ph, pw)`` or an int for both.
    spatial_scale: map size over image size (``1/16`` for a stride-16 map).
    sampling_ratio: samples per bin axis; ``<= 0`` for adaptive.
    max_sampling_ratio: static cap on the adaptive count, as in
      [`roi_align`][jaxpool.roi_align].
    box_gradient: differentiate with respect to the box corners as well, as
      in [`roi_align`][jaxpool.roi_align] (torchvision stops it).

  Returns:
    ``(K, ph, pw, features / (ph * pw))``, ``x``'s dtype.

  Examples:
    >>> import jax.numpy as jnp, jaxpool
    >>> x = jnp.broadcast_to(jnp.arange(4.0), (1, 4, 4, 4))  # feature i holds i
    >>> boxes = jnp.array([[0, 0.0, 0.0, 4.0, 4.0]])
    >>> jaxpool.ps_roi_align(x, boxes, 2)[0, ..., 0]  # bin (p, q) reads feature 2 p + q
    Array([[0., 1.],
           [2., 3.]], dtype=float32)
    >>> x = jnp.arange(16.0).reshape(1, 4, 4, 1)
    >>> jaxpool.ps_roi_align(x, boxes, 1, sampling_ratio=1)[0, 0, 0]  # one sample, at (1.5, 1.5)
    Array([7.5], dtype=float32)
  """
  x = box_args.check_map(x, "ps_roi_align")
  (output_shape, sampling_ratio, _, max_sampling_ratio, box_gradient), scale = (
    _ps_roi_align_options(
      output_shape, spatial_scale, sampling_ratio, max_sampling_ratio, box_gradient
    )
  )
  batch, height, width, features = x.shape
  out_features = box_args.position_sensitive_features(features, output_shape, "ps_roi_align")
  index, corners, invalid = box_args.check_boxes(
    boxes, batch, "ps_roi_align", box_args.position_dtype(x.dtype)
  )
  if not corners.shape[0]:
    return jnp.zeros((0, *output_shape, out_features), x.dtype)
  if not box_gradient:
    corners = jax.lax.stop_gradient(corners)
  bounds = (-(-height // output_shape[0]), -(-width // output_shape[1]))
  out = _align(
    box_args.bins_first(replicated(x), output_shape),
    index * (height * width),
    height,
    width,
    corners * scale,
    output_shape,
    sampling_ratio=sampling_ratio,
    aligned=True,
    max_sampling_ratio=max_sampling_ratio,
    bounds=bounds,
    out_dtype=x.dtype,
    position_sensitive=True,
  )
  return box_args.nan_where_invalid(out, invalid)


# ---------------------------------------------------------------------------
# Multi-scale RoIAlign (feature pyramids).


def _pyramid_scales(shapes, image_shape) -> list[float]:
  """torchvision's inferred scale of each level: ``2 ** round(log2(map /
  image))``, the same on both axes."""
  scales = []
  for level, shape in enumerate(shapes):
    per_axis = {2.0 ** round(math.log2(m / i)) for m, i in zip(shape, image_shape)}
    if len(per_axis) != 1:
      raise ValueError(
        f"multi_scale_roi_align: level {level} of shape {tuple(shape)} has different"
        f" scales along H and W for image_shape {tuple(image_shape)}."
      )
    scales.append(per_axis.pop())
  return scales


def pyramid_levels(
  boxes,
  num_levels: int,
  finest_level: int,
  *,
  canonical_scale: float = 224.0,
  canonical_level: int = 4,
) -> jax.Array:
  """FPN's level of each box (torchvision's ``LevelMapper``), 0 = finest.

  ``k = floor(canonical_level + log2(sqrt(area) / canonical_scale) +
  1e-6)`` clamped to ``[finest_level, finest_level + num_levels - 1]``,
  minus ``finest_level``; ``area = (x2 - x1) * (y2 - y1)`` in image
  coordinates.
  """
  boxes = jnp.asarray(boxes, jnp.float32)
  area = (boxes[:, 3] - boxes[:, 1]) * (boxes[:, 4] - boxes[:, 2])
  level = jnp.floor(canonical_level + jnp.log2(jnp.sqrt(area) / canonical_scale) + 1e-6)
  level = jnp.clip(level, finest_level, finest_level + num_levels - 1)
  return (level - finest_level).astype(jnp.int32)


def _multi_scale_options(
  output_shape,
  image_shape,
  sampling_ratio,
  aligned,
  canonical_scale,
  canonical_level,
  max_sampling_ratio,
  box_gradient,
  **_,
):
  image_shape = normalize_output_size("image_shape", image_shape, 2)
  options = _align_options(output_shape, sampling_ratio, aligned, max_sampling_ratio, box_gradient)
  check_positive_number("canonical_scale", canonical_scale)
  if not is_int(canonical_level):
    raise TypeError(f"canonical_level must be an int; got {canonical_level!r}.")
  return image_shape, options


def multi_scale_roi_align(
  x: Sequence[jax.typing.ArrayLike],
  boxes: jax.typing.ArrayLike,
  output_shape: int | Sequence[int],
  *,
  image_shape: Sequence[int],
  sampling_ratio: int = -1,
  aligned: bool = False,
  canonical_scale: float = 224.0,
  canonical_level: int = 4,
  max_sampling_ratio: int | None = None,
  box_gradient: bool = False,
) -> jax.Array:
  r"""RoIAlign over a feature pyramid (FPN), torchvision's ``MultiScaleRoIAlign``.

  Level $l$ of ``x`` has scale
  $s_l = 2^{\operatorname{round}(\log_2(H_l / H_\text{image}))}$; the finest
  is level $k_{\min} = -\log_2 s_0$. Each box is read from level:

  $$
  k = \operatorname{clip}(\lfloor \mathrm{canonical\_level}
  + \log_2(\sqrt{\mathrm{area}} / \mathrm{canonical\_scale})
  + 10^{-6} \rfloor, k_{\min}, k_{\max})
  $$

  with $\mathrm{area} = (x_2 - x_1)(y_2 - y_1)$ in image coordinates, by
  [`roi_align`][jaxpool.roi_align] at ``spatial_scale = s_k``. All levels are read through
  one gather: the cost is one [`roi_align`][jaxpool.roi_align], not one per level.

  Args:
    x: the pyramid, finest first: ``(batch, H_l, W_l, features)`` per level.
    boxes: ``(K, 5)`` rows ``(batch_index, x1, y1, x2, y2)`` in image
      coordinates, checked and handled as in [`roi_align`][jaxpool.roi_align].
    output_shape: ``(ph, pw)`` or an int for both.
    image_shape: ``(H, W)`` of the input images (torchvision takes the
      largest image of the batch).
    sampling_ratio: samples per bin axis; ``<= 0`` (default -1) for adaptive, as
      in [`roi_align`][jaxpool.roi_align].
    aligned: shift by half a pixel (Detectron2's ``ROIAlignV2``), as in
      [`roi_align`][jaxpool.roi_align]; default ``False``.
    max_sampling_ratio: static cap on the adaptive sample count, as in
      [`roi_align`][jaxpool.roi_align]; ``None`` (default) means the finest
      level's bound.
    box_gradient: differentiate with respect to the box corners as well, as in
      [`roi_align`][jaxpool.roi_align]; default ``False``.
    canonical_scale: the box size mapped to ``canonical_level`` (224).
    canonical_level: the level of a ``canonical_scale`` box (4).

  Returns:
    ``(K, ph, pw, features)``, the maps' dtype.

  Examples:
    >>> import jax.numpy as jnp, jaxpool
    >>> pyramid = [jnp.ones((1, 64, 64, 8)), jnp.ones((1, 32, 32, 8))]  # strides 4, 8
    >>> boxes = jnp.array([[0, 0, 0, 50, 50], [0, 0, 0, 250, 250]])
    >>> y = jaxpool.multi_scale_roi_align(pyramid, boxes, 7, image_shape=(256, 256))
    >>> y.shape
    (2, 7, 7, 8)
  """
  if isinstance(x, (jax.Array, np.ndarray)) or not isinstance(x, Sequence) or not x:
    raise TypeError(
      "multi_scale_roi_align expects x as a non-empty sequence of feature maps"
      " (batch, H_l, W_l, features), finest first."
    )
  maps = [box_args.check_map(level, "multi_scale_roi_align") for level in x]
  if len({(m.shape[0], m.shape[-1], m.dtype) for m in maps}) != 1:
    raise ValueError(
      "multi_scale_roi_align: every level needs the same batch, features and dtype;"
      f" got {[(m.shape, str(m.dtype)) for m in maps]}."
    )
  image_shape, (output_shape, sampling_ratio, aligned, max_sampling_ratio, box_gradient) = (
    _multi_scale_options(
      output_shape,
      image_shape,
      sampling_ratio,
      aligned,
      canonical_scale,
      canonical_level,
      max_sampling_ratio,
      box_gradient,
    )
  )
  scales = _pyramid_scales([m.shape[1:3] for m in maps], image_shape)
  finest = -math.log2(scales[0])
  if any(abs(-math.log2(s) - (finest + i)) > 1e-9 for i, s in enumerate(scales)):
    raise ValueError(
      f"multi_scale_roi_align: levels must halve the map one after the other; inferred"
      f" scales {scales} from image_shape {image_shape}."
    )

  batch, features = maps[0].shape[0], maps[0].shape[-1]
  pdtype = box_args.position_dtype(maps[0].dtype)
  index, corners, invalid = box_args.check_boxes(boxes, batch, "multi_scale_roi_align", pdtype)
  if not corners.shape[0]:
    return jnp.zeros((0, *output_shape, features), maps[0].dtype)
  if not box_gradient:
    corners = jax.lax.stop_gradient(corners)
  boxes = jnp.concatenate([index[:, None].astype(corners.dtype), corners], axis=1)
  level = pyramid_levels(
    jax.lax.stop_gradient(boxes),
    len(maps),
    int(round(finest)),
    canonical_scale=canonical_scale,
    canonical_level=canonical_level,
  )
  sizes = [m.shape[1] * m.shape[2] for m in maps]
  offsets = np.cumsum([0] + [batch * s for s in sizes[:-1]])
  pick = lambda values, dtype: jnp.asarray(np.asarray(values), dtype)[level]
  heights = pick([m.shape[1] for m in maps], jnp.int32)
  widths = pick([m.shape[2] for m in maps], jnp.int32)
  base = pick(offsets, jnp.int32) + index * pick(sizes, jnp.int32)
  flat = jnp.concatenate([replicated(m).reshape(-1, features) for m in maps])
  bounds = (-(-maps[0].shape[1] // output_shape[0]), -(-maps[0].shape[2] // output_shape[1]))
  out = _align(
    flat,
    base,
    heights,
    widths,
    corners * pick(scales, pdtype)[:, None],
    output_shape,
    sampling_ratio=sampling_ratio,
    aligned=aligned,
    max_sampling_ratio=max_sampling_ratio,
    bounds=bounds,
    out_dtype=maps[0].dtype,
  )
  return box_args.nan_where_invalid(out, invalid)


register_option_check(roi_align, _roi_align_options)
register_option_check(multi_scale_roi_align, _multi_scale_options)
register_option_check(ps_roi_align, _ps_roi_align_options)
