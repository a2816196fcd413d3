"""Region pooling: RoIPool (Fast R-CNN), RoIAlign (Mask R-CNN) and the FPN
multi-scale RoIAlign, with torchvision's rules on channels-last maps.

Boxes are ``(K, 5)`` rows ``(batch_index, x1, y1, x2, y2)`` in input-image
coordinates, scaled to the map by ``spatial_scale``. Every box has its own,
data-dependent bin sizes, so both operators fix a static number of reads per
bin (exact for concrete boxes, a bound under ``jit``) and run one compiled
kernel:

* ``roi_pool`` scans each bin cell by cell, in two light passes (the
  maximum, then the lowest row-major index holding it), and gathers that
  cell, so the derivative is the gather's: the bin's cotangent goes to its
  winner, as in torchvision. Bins larger than the bound (a box larger than
  the map under ``jit``) are covered by blocks of a sparse table of
  ``(value, first index)`` pairs, built only then.
* ``roi_align`` writes each bin as ``sum_taps w_t * x[cell_t]``: bilinear
  weights factor into a row part and a column part, so ``g x g`` samples
  are ``2g x 2g`` taps, summed by a rematerialised scan that gathers one
  ``(K, ph, pw, features)`` slab per step.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxpool._src.core import dtypes
from jaxpool._src.core.backend import choose
from jaxpool._src.core.checks import (
    check_bool,
    check_positive_number,
    concrete_values,
    is_int,
)
from jaxpool._src.core.geometry import normalize_output_size
from jaxpool._src.core.options import register_option_check
from jaxpool._src.core.sharding import replicated

__all__ = ["multi_scale_roi_align", "roi_align", "roi_pool"]


# ---------------------------------------------------------------------------
# Arguments.


def _check_map(x, op: str) -> jax.Array:
  x = dtypes.numeric_input(x, op) if op == "roi_pool" else dtypes.float_input(x, op)
  if x.ndim != 4:
    raise ValueError(
        f"{op} expects x of shape (batch, H, W, features); got x.shape={x.shape}."
    )
  return x


def _position_dtype(x_dtype):
  """torchvision computes box geometry in the input's precision: float64 for
  float64 maps, float32 otherwise (half precision included)."""
  return jnp.float64 if jnp.dtype(x_dtype) == jnp.float64 else jnp.float32


def _check_boxes(boxes, batch: int, op: str, dtype):
  """``(batch_index int32 (K,), corners (K, 4), invalid)``; eager checks.

  Concrete boxes must have finite coordinates and batch indices in range.
  Traced ones cannot be checked: their indices are clamped, and ``invalid``
  (``(K,)`` bool, else ``None``) flags rows with a non-finite number, whose
  corners are read as 0 and whose outputs the caller sets to NaN
  (:func:`_nan_where_invalid`).
  """
  boxes = jnp.asarray(boxes)
  if boxes.ndim != 2 or boxes.shape[1] != 5:
    raise ValueError(
        f"{op}: boxes must have shape (K, 5), rows (batch_index, x1, y1, x2,"
        f" y2); got boxes.shape={boxes.shape}."
    )
  if not (dtypes.is_float(boxes.dtype) or jnp.issubdtype(boxes.dtype, jnp.integer)):
    raise TypeError(f"{op}: boxes must be numbers; got dtype {boxes.dtype}.")
  values = concrete_values(boxes)
  invalid = None
  if values is not None and values.size:
    finite = np.isfinite(values).all(axis=1)
    if not finite.all():
      row = int(np.argmin(finite))
      raise ValueError(
          f"{op}: boxes must hold finite numbers; row {row} is {values[row].tolist()}."
      )
    index = values[:, 0]
    bad = (index != np.floor(index)) | (index < 0) | (index >= batch)
    if np.any(bad):
      raise ValueError(
          f"{op}: box batch indices must be integers in [0, {batch}) for x with"
          f" batch {batch}; got {index[bad][0]!r} in row {int(np.argmax(bad))}."
      )
  elif values is None and dtypes.is_float(boxes.dtype):
    invalid = ~jnp.all(jnp.isfinite(boxes), axis=1)
    boxes = jnp.where(invalid[:, None], 0, boxes)
  index = jnp.clip(boxes[:, 0].astype(jnp.int32), 0, batch - 1)  # traced: clamped
  return index, boxes[:, 1:].astype(dtype), invalid


def _nan_where_invalid(out: jax.Array, invalid) -> jax.Array:
  """NaN (0 for integer maps) in the outputs of the boxes
  :func:`_check_boxes` flagged."""
  if invalid is None:
    return out
  fill = np.array(np.nan if dtypes.is_float(out.dtype) else 0, out.dtype)
  return jnp.where(invalid.reshape((-1,) + (1,) * (out.ndim - 1)), fill, out)


def _check_scale(spatial_scale) -> float:
  return check_positive_number("spatial_scale", spatial_scale)


# ---------------------------------------------------------------------------
# RoIPool.


def _round_half_away(v: jax.Array) -> jax.Array:
  """C's ``round``: halves go away from zero (``jnp.round`` goes to even)."""
  magnitude = jnp.abs(v)
  low = jnp.floor(magnitude)
  return jnp.sign(v) * jnp.where(magnitude - low >= 0.5, low + 1, low)


def _divide(a: jax.Array, b) -> jax.Array:
  """``a / b`` rounded as IEEE division, as torchvision's kernels divide.

  XLA rewrites a division by a broadcast value into a multiplication by its
  reciprocal, one ulp off, which moves a ``floor`` or ``ceil`` of an exact
  integer quotient (``ceil(7 * fl(31 / 7))`` is 32, ``ceil(31 * fl(1/7) *
  7)`` may not be); the barrier keeps the divisor a full array.
  """
  divisor = jnp.broadcast_to(jnp.asarray(b, a.dtype), a.shape)
  return a / jax.lax.optimization_barrier(divisor)


def _pool_bins(start, end, bins: int, length: int, dtype):
  """torchvision's RoIPool bin edges along one axis, ``[lo, hi)`` each ``(K, bins)``.

  The rounded box spans ``end - start + 1`` cells (at least 1); bin ``p``
  covers ``floor(p * size / bins)`` to ``ceil((p + 1) * size / bins)`` from
  the box start (in the positions' precision, as torchvision), clipped to
  the map.
  """
  size = jnp.maximum(end - start + 1, 1)
  step = _divide(size, bins)[:, None]
  p = jnp.arange(bins, dtype=dtype)[None]
  lo = jnp.floor(p * step).astype(jnp.int32) + start[:, None].astype(jnp.int32)
  hi = jnp.ceil((p + 1) * step).astype(jnp.int32) + start[:, None].astype(jnp.int32)
  return jnp.clip(lo, 0, length), jnp.clip(hi, 0, length)


def _wins(value, index, other, other_index):
  """``other`` beats ``value``: larger, or NaN over a number, or equal (both
  NaN included) and earlier in row-major order."""
  nan, other_nan = jnp.isnan(value), jnp.isnan(other)
  equal = (other == value) | (nan & other_nan)
  return (other > value) | (other_nan & ~nan) | (equal & (other_index < index))


def _combine(a, b):
  wins = _wins(a[0], a[1], b[0], b[1])
  return jnp.where(wins, b[0], a[0]), jnp.where(wins, b[1], a[1])


def _shift(pair, step: int, axis: int, fill):
  """``pair`` read ``step`` cells ahead along ``axis``, ``fill`` past the end."""
  value, index = pair
  n = value.shape[axis]
  step = min(step, n)
  pad = [(0, 0)] * value.ndim
  pad[axis] = (0, step)

  def ahead(v, pad_value):
    return jax.lax.slice_in_dim(jnp.pad(v, pad, constant_values=pad_value), step, step + n, axis=axis)

  return ahead(value, fill), ahead(index, np.iinfo(np.int32).max)


def _sparse_table(x, levels_h: int, levels_w: int):
  """``(value, index)`` of the first maximum of every ``2**i x 2**j`` block,
  stacked ``(levels_h, levels_w, batch, H, W, features)``; ``index`` is the
  cell's row-major position ``h * W + w`` in its map."""
  batch, height, width, features = x.shape
  flat = jnp.arange(height * width, dtype=jnp.int32).reshape(1, height, width, 1)
  base = (x, jnp.broadcast_to(flat, x.shape))
  fill = dtypes.lowest(x.dtype)
  rows = [base]
  for i in range(1, levels_h):
    rows.append(_combine(rows[-1], _shift(rows[-1], 2 ** (i - 1), 1, fill)))
  table = []
  for row in rows:
    cols = [row]
    for j in range(1, levels_w):
      cols.append(_combine(cols[-1], _shift(cols[-1], 2 ** (j - 1), 2, fill)))
    table.append(cols)
  value = jnp.stack([jnp.stack([c[0] for c in r]) for r in table])
  index = jnp.stack([jnp.stack([c[1] for c in r]) for r in table])
  return value, index


def _block_level(n, taps: int, levels: int):
  """The smallest ``a < levels`` with ``ceil(n / 2**a) <= taps``: bins of at
  most ``taps`` cells are read cell by cell, larger ones by ``taps`` blocks
  of ``2**a`` cells."""
  return sum((n > taps * 2 ** (l - 1)).astype(jnp.int32) for l in range(1, levels))


def _tap_starts(lo, hi, level, taps: int):
  """``(taps, *lo.shape)`` starts of the blocks covering ``[lo, hi)``: block
  ``i`` at ``lo + i * 2**level``, clamped to end at ``hi`` (a repeated block
  changes no maximum)."""
  size = jnp.left_shift(1, level)
  i = jnp.arange(taps, dtype=jnp.int32).reshape((taps,) + (1,) * lo.ndim)
  return jnp.maximum(jnp.minimum(lo + i * size, hi - size), 0)


def _pool_taps(sizes, length: int, bins: int) -> tuple[int, int]:
  """``(taps, levels)`` of one axis: exact for concrete bin sizes (cell by
  cell, no table); under jit, taps for a bin of a box inside the map and
  table levels for a bin as large as the map."""
  if sizes is not None:
    return max(1, int(sizes.max(initial=1))), 1
  taps = min(length, -(-(length + 1) // bins) + 1)
  return taps, 1 + max(0, math.ceil(math.log2(length / taps)))


def roi_pool(
    x: jax.typing.ArrayLike,
    boxes: jax.typing.ArrayLike,
    output_shape: int | Sequence[int],
    *,
    spatial_scale: float = 1.0,
) -> jax.Array:
  """RoIPool (Fast R-CNN): the maximum of each bin of each box, torchvision's rules.

  For a box ``(b, x1, y1, x2, y2)``, its corners are scaled and rounded like
  C's ``round`` (halves away from zero): ``w0 = round(x1 * s)``, ``w1 =
  round(x2 * s)`` (the same for ``h``); the box spans ``size = max(w1 - w0
  + 1, 1)`` cells and output column ``q`` of ``pw`` covers cells::

      [w0 + floor(q * size / pw), w0 + ceil((q + 1) * size / pw))

  clipped to the map (rows alike). Each output is the maximum over its bin
  of ``x[b]``; an empty bin gives 0 and no gradient. The gradient of a bin
  goes to its first maximum in row-major order (torchvision's tie rule).

  Unlike torchvision's kernel, a NaN in a bin gives NaN (as
  :func:`jaxpool.max_pool`), and a bin of ``-inf`` gives ``-inf`` (not
  ``-FLT_MAX``).

  Args:
    x: ``(batch, H, W, features)`` feature maps (float or int).
    boxes: ``(K, 5)`` rows ``(batch_index, x1, y1, x2, y2)`` in image
      coordinates. Concrete boxes must hold finite numbers and batch
      indices in ``[0, batch)``; traced ones cannot be checked: an index
      outside is clamped, and a box with a NaN or infinite number gives
      NaN in its own outputs only (0 for integer maps). ``K = 0`` gives an
      empty ``(0, ph, pw, features)``.
    output_shape: ``(ph, pw)`` or an int for both.
    spatial_scale: map size over image size (``1/16`` for a stride-16 map).

  Returns:
    ``(K, ph, pw, features)``, ``x``'s dtype.

  Examples:
    >>> import jax.numpy as jnp, jaxpool
    >>> x = jnp.arange(16.0).reshape(1, 4, 4, 1)
    >>> boxes = jnp.array([[0, 0, 0, 3, 3], [0, 2, 2, 3, 3]])
    >>> jaxpool.roi_pool(x, boxes, 2)[..., 0]
    Array([[[ 5.,  7.],
            [13., 15.]],
    <BLANKLINE>
           [[10., 11.],
            [14., 15.]]], dtype=float32)
  """
  (ph, pw), scale = _roi_pool_options(output_shape, spatial_scale)
  x = _check_map(x, "roi_pool")
  batch, height, width, features = x.shape
  pdtype = _position_dtype(x.dtype)
  index, corners, invalid = _check_boxes(boxes, batch, "roi_pool", pdtype)
  corners = jax.lax.stop_gradient(corners)
  rounded = _round_half_away(corners * jnp.asarray(scale, pdtype))
  h_lo, h_hi = _pool_bins(rounded[:, 1], rounded[:, 3], ph, height, pdtype)
  w_lo, w_hi = _pool_bins(rounded[:, 0], rounded[:, 2], pw, width, pdtype)

  taps_h, levels_h = _pool_taps(concrete_values(h_hi - h_lo), height, ph)
  taps_w, levels_w = _pool_taps(concrete_values(w_hi - w_lo), width, pw)
  out = _roi_pool_bins(replicated(x), index, h_lo, h_hi, w_lo, w_hi, taps_h, levels_h, taps_w,
                       levels_w)
  return _nan_where_invalid(out, invalid)


def _roi_pool_options(output_shape, spatial_scale, **_):
  return normalize_output_size("output_shape", output_shape, 2), _check_scale(spatial_scale)


@functools.partial(jax.jit, static_argnums=(6, 7, 8, 9))
def _roi_pool_bins(x, index, h_lo, h_hi, w_lo, w_hi, taps_h, levels_h, taps_w, levels_w):
  """The maximum of every bin ``[h_lo, h_hi) x [w_lo, w_hi)`` of ``x[index]``
  (0 for an empty bin), compiled once per static bound (also when called
  eagerly).

  A bin of at most ``taps_h x taps_w`` cells is scanned cell by cell; when a
  larger one exists (only under jit: a box larger than the map), every bin
  is scanned by blocks of a sparse table instead, built only then (on
  platforms without conditionals, always).
  """
  batch, height, width, features = x.shape
  level_h = _block_level(h_hi - h_lo, taps_h, levels_h)  # (K, ph)
  level_w = _block_level(w_hi - w_lo, taps_w, levels_w)  # (K, pw)
  rows = _tap_starts(h_lo, h_hi, level_h, taps_h)  # (taps_h, K, ph)
  cols = _tap_starts(w_lo, w_hi, level_w, taps_w)  # (taps_w, K, pw)
  # Every (row tap, column tap) pair of every bin, one pair per step.
  steps = (jnp.repeat(rows, taps_w, axis=0)[:, :, :, None],
           jnp.tile(cols, (taps_h, 1, 1))[:, :, None, :])
  k = index[:, None, None]
  source = jax.lax.stop_gradient(x)

  def cells(row, col):
    value = source[k, row, col]  # (K, ph, pw, features)
    return value, jnp.broadcast_to((row * width + col)[..., None], value.shape)

  def scan(read):
    # Two light passes (the maximum, then the lowest index holding it) cost
    # less than one pass carrying (value, index) pairs.
    def fold(op, init):
      return jax.lax.scan(lambda acc, step: (op(acc, *read(*step)), None), init, steps)[0]

    best = fold(lambda acc, value, _: jnp.maximum(acc, value), read(steps[0][0], steps[1][0])[0])
    nan = jnp.isnan(best) if dtypes.is_float(best.dtype) else None

    def lowest(acc, value, index):
      hit = value == best if nan is None else (value == best) | (jnp.isnan(value) & nan)
      return jnp.where(hit, jnp.minimum(acc, index), acc)

    return fold(lowest, jnp.full(best.shape, np.iinfo(np.int32).max, jnp.int32))

  def by_cells():
    return scan(cells)

  def by_blocks():
    values, winners = _sparse_table(source, levels_h, levels_w)
    at = lambda row, col: (level_h[:, :, None], level_w[:, None, :], k, row, col)
    return scan(lambda row, col: (values[at(row, col)], winners[at(row, col)]))

  def by_policy(policy):
    if not policy.conditionals:
      return by_blocks()
    return jax.lax.cond(jnp.any(level_h > 0) | jnp.any(level_w > 0), by_blocks, by_cells)

  if levels_h == levels_w == 1:
    winner = by_cells()
  else:
    winner = choose(by_policy, reads=("conditionals",))
  flat = x.reshape(batch * height * width, features)
  cell = index[:, None, None, None] * (height * width) + winner
  y = jnp.take_along_axis(flat, cell.reshape(-1, features), axis=0).reshape(winner.shape)
  empty = ((h_hi <= h_lo)[:, :, None] | (w_hi <= w_lo)[:, None, :])[..., None]
  return jnp.where(empty, jnp.zeros((), x.dtype), y)


# ---------------------------------------------------------------------------
# RoIAlign.


def _check_sampling(sampling_ratio, max_sampling_ratio) -> tuple[int, int | None]:
  if not is_int(sampling_ratio):
    raise TypeError(f"sampling_ratio must be an int; got {sampling_ratio!r}.")
  if max_sampling_ratio is not None and not (is_int(max_sampling_ratio) and max_sampling_ratio >= 1):
    raise ValueError(f"max_sampling_ratio must be None or an int >= 1; got {max_sampling_ratio!r}.")
  return int(sampling_ratio), max_sampling_ratio


def _sample_grids(size, bins: int, sampling_ratio: int) -> jax.Array:
  """Samples per bin along one axis: fixed, or torchvision's adaptive
  ``ceil(size / bins)`` (0 or less for an empty aligned box)."""
  if sampling_ratio > 0:
    return jnp.full(size.shape, sampling_ratio, jnp.int32)
  return jnp.ceil(_divide(size, bins)).astype(jnp.int32)


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
  inside = (jnp.arange(slots, dtype=jnp.int32)[None, None, :] < grid) & (pos >= -1) & (pos <= length.astype(dtype))
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


def _align(flat, base, heights, widths, corners, output_shape, *, sampling_ratio, aligned,
           max_sampling_ratio, bounds, out_dtype):
  """RoIAlign over the flattened maps ``flat (N, features)``: box ``k`` reads
  the ``heights[k] x widths[k]`` map starting at row ``base[k]``; ``corners``
  are already scaled to it. The sample slots are fixed here (exact for
  concrete boxes), then one compiled kernel runs (also when called eagerly)."""
  ph, pw = output_shape
  size = _roi_size(corners, aligned)
  grid_h = _sample_grids(jax.lax.stop_gradient(size[:, 1]), ph, sampling_ratio)
  grid_w = _sample_grids(jax.lax.stop_gradient(size[:, 0]), pw, sampling_ratio)
  if sampling_ratio > 0:
    slots = (sampling_ratio, sampling_ratio)
  else:
    slots = (_static_grid(grid_h, bounds[0], max_sampling_ratio),
             _static_grid(grid_w, bounds[1], max_sampling_ratio))
  return _align_bins(flat, base, heights, widths, corners, grid_h, grid_w, output_shape, aligned,
                     slots, jnp.dtype(out_dtype))


def _roi_size(corners, aligned: bool):
  size = corners[:, 2:] - corners[:, :2]
  return size if aligned else jnp.maximum(size, 1.0)  # torchvision: malformed RoIs become 1x1


@functools.partial(jax.jit, static_argnums=(7, 8, 9, 10))
def _align_bins(flat, base, heights, widths, corners, grid_h, grid_w, output_shape, aligned, slots,
                out_dtype):
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
  compute = dtypes.compute_dtype(flat.dtype)
  # Tap (r, s) of bin (p, q): row tap r of p times column tap s of q, a
  # (K, ph, pw) array of cells and one of weights per step; taps of weight 0
  # add nothing (not even 0 * inf).
  rows = base[:, None, None] + rows * widths  # (K, ph, R) first cells of the rows
  cells = rows[:, :, None, :, None] + cols[:, None, :, None, :]  # (K, ph, pw, R, S)
  weights = (wy[:, :, None, :, None] * wx[:, None, :, None, :]).astype(compute)
  taps = (jnp.moveaxis(cells.reshape(cells.shape[:3] + (-1,)), -1, 0),
          jnp.moveaxis(weights.reshape(weights.shape[:3] + (-1,)), -1, 0))

  @jax.checkpoint  # the backward re-reads a tap rather than storing one per step
  def add(total, tap):
    cell, weight = tap
    value = flat[cell].astype(compute)
    return total + jnp.where(weight[..., None] != 0, weight[..., None] * value, 0), None

  total = jnp.zeros(cells.shape[:3] + flat.shape[-1:], compute)
  return jax.lax.scan(add, total, taps)[0].astype(out_dtype)


def _align_options(output_shape, sampling_ratio, aligned, max_sampling_ratio, box_gradient):
  output_shape = normalize_output_size("output_shape", output_shape, 2)
  sampling_ratio, max_sampling_ratio = _check_sampling(sampling_ratio, max_sampling_ratio)
  return (output_shape, sampling_ratio, check_bool("aligned", aligned), max_sampling_ratio,
          check_bool("box_gradient", box_gradient))


def _roi_align_options(output_shape, spatial_scale, sampling_ratio, aligned,
                       max_sampling_ratio, box_gradient, **_):
  options = _align_options(output_shape, sampling_ratio, aligned, max_sampling_ratio, box_gradient)
  return options, _check_scale(spatial_scale)


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
  """RoIAlign (Mask R-CNN): bilinear samples averaged per bin, torchvision's rules.

  For a box ``(b, x1, y1, x2, y2)`` with offset ``o = 0.5`` if ``aligned``
  else 0, the RoI starts at ``x1 * s - o`` and spans ``w = (x2 - x1) * s``
  (at least 1 unless ``aligned``); bin ``(p, q)`` of ``(ph, pw)`` averages
  the ``grid_h x grid_w`` samples::

      y[p, q] = 1 / max(grid_h * grid_w, 1) * sum_{i, j} bilinear(x[b],
                  y1 * s - o + (p + (i + 0.5) / grid_h) * h / ph,
                  x1 * s - o + (q + (j + 0.5) / grid_w) * w / pw)

  where a sample outside ``[-1, H] x [-1, W]`` contributes 0 and one within
  a pixel of the border reads the border (torchvision's ``bilinear``).
  ``sampling_ratio > 0`` fixes ``grid_h = grid_w = sampling_ratio``; ``<=
  0`` is torchvision's adaptive ``grid_h = ceil(h / ph)``, per box.

  The adaptive count depends on the boxes, and shapes under ``jit`` cannot:
  eagerly (concrete boxes) every box gets exactly its count; under ``jit``
  each bin axis has ``max_sampling_ratio`` sample slots (default:
  ``ceil(H / ph)`` and ``ceil(W / pw)``, the most a box inside the map
  needs), unused slots masked, and a larger box's count is capped at the
  bound (its samples still spread evenly over the bin). Passing
  ``max_sampling_ratio`` caps eagerly too, so both modes agree.

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
  x = _check_map(x, "roi_align")
  (output_shape, sampling_ratio, aligned, max_sampling_ratio, box_gradient), scale = (
      _roi_align_options(output_shape, spatial_scale, sampling_ratio, aligned,
                         max_sampling_ratio, box_gradient))
  batch, height, width, features = x.shape
  index, corners, invalid = _check_boxes(boxes, batch, "roi_align", _position_dtype(x.dtype))
  if not corners.shape[0]:
    return jnp.zeros((0, *output_shape, features), x.dtype)
  if not box_gradient:
    corners = jax.lax.stop_gradient(corners)
  bounds = (-(-height // output_shape[0]), -(-width // output_shape[1]))
  out = _align(
      replicated(x).reshape(-1, features), index * (height * width), height, width, corners * scale,
      output_shape, sampling_ratio=sampling_ratio, aligned=aligned,
      max_sampling_ratio=max_sampling_ratio, bounds=bounds, out_dtype=x.dtype)
  return _nan_where_invalid(out, invalid)


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


def pyramid_levels(boxes, num_levels: int, finest_level: int, *, canonical_scale: float = 224.0,
                   canonical_level: int = 4) -> jax.Array:
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


def _multi_scale_options(output_shape, image_shape, sampling_ratio, aligned, canonical_scale,
                         canonical_level, max_sampling_ratio, box_gradient, **_):
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
  """RoIAlign over a feature pyramid (FPN), torchvision's ``MultiScaleRoIAlign``.

  Level ``l`` of ``x`` has scale ``s_l = 2 ** round(log2(H_l / H_image))``;
  the finest is level ``k_min = -log2(s_0)``. Each box is read from level::

      k = clip(floor(canonical_level + log2(sqrt(area) / canonical_scale)
               + 1e-6), k_min, k_max)

  with ``area = (x2 - x1) * (y2 - y1)`` in image coordinates, by
  :func:`roi_align` at ``spatial_scale = s_k``. All levels are read through
  one gather: the cost is one :func:`roi_align`, not one per level.

  Args:
    x: the pyramid, finest first: ``(batch, H_l, W_l, features)`` per level.
    boxes: ``(K, 5)`` rows ``(batch_index, x1, y1, x2, y2)`` in image
      coordinates, checked and handled as in :func:`roi_align`.
    output_shape: ``(ph, pw)`` or an int for both.
    image_shape: ``(H, W)`` of the input images (torchvision takes the
      largest image of the batch).
    sampling_ratio, aligned, max_sampling_ratio, box_gradient: as
      :func:`roi_align` (``max_sampling_ratio`` defaults to the finest
      level's bound).
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
        " (batch, H_l, W_l, features), finest first.")
  maps = [_check_map(level, "multi_scale_roi_align") for level in x]
  if len({(m.shape[0], m.shape[-1], m.dtype) for m in maps}) != 1:
    raise ValueError(
        "multi_scale_roi_align: every level needs the same batch, features and dtype;"
        f" got {[(m.shape, str(m.dtype)) for m in maps]}.")
  image_shape, (output_shape, sampling_ratio, aligned, max_sampling_ratio, box_gradient) = (
      _multi_scale_options(output_shape, image_shape, sampling_ratio, aligned, canonical_scale,
                           canonical_level, max_sampling_ratio, box_gradient))
  scales = _pyramid_scales([m.shape[1:3] for m in maps], image_shape)
  finest = -math.log2(scales[0])
  if any(abs(-math.log2(s) - (finest + i)) > 1e-9 for i, s in enumerate(scales)):
    raise ValueError(
        f"multi_scale_roi_align: levels must halve the map one after the other; inferred"
        f" scales {scales} from image_shape {image_shape}.")

  batch, features = maps[0].shape[0], maps[0].shape[-1]
  pdtype = _position_dtype(maps[0].dtype)
  index, corners, invalid = _check_boxes(boxes, batch, "multi_scale_roi_align", pdtype)
  if not corners.shape[0]:
    return jnp.zeros((0, *output_shape, features), maps[0].dtype)
  if not box_gradient:
    corners = jax.lax.stop_gradient(corners)
  boxes = jnp.concatenate([index[:, None].astype(corners.dtype), corners], axis=1)
  level = pyramid_levels(jax.lax.stop_gradient(boxes), len(maps), int(round(finest)),
                         canonical_scale=canonical_scale, canonical_level=canonical_level)
  sizes = [m.shape[1] * m.shape[2] for m in maps]
  offsets = np.cumsum([0] + [batch * s for s in sizes[:-1]])
  pick = lambda values, dtype: jnp.asarray(np.asarray(values), dtype)[level]
  heights = pick([m.shape[1] for m in maps], jnp.int32)
  widths = pick([m.shape[2] for m in maps], jnp.int32)
  base = pick(offsets, jnp.int32) + index * pick(sizes, jnp.int32)
  flat = jnp.concatenate([replicated(m).reshape(-1, features) for m in maps])
  bounds = (-(-maps[0].shape[1] // output_shape[0]), -(-maps[0].shape[2] // output_shape[1]))
  out = _align(
      flat, base, heights, widths, corners * pick(scales, pdtype)[:, None], output_shape,
      sampling_ratio=sampling_ratio, aligned=aligned, max_sampling_ratio=max_sampling_ratio,
      bounds=bounds, out_dtype=maps[0].dtype)
  return _nan_where_invalid(out, invalid)


register_option_check(roi_pool, _roi_pool_options)
register_option_check(roi_align, _roi_align_options)
register_option_check(multi_scale_roi_align, _multi_scale_options)
