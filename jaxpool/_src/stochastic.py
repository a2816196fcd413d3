"""Stochastic pooling family: mixed, gated, stochastic, S3Pool, fractional max.

Every random operator takes a keyword-only ``key`` (a :mod:`jax.random` key).
``key=None`` selects the operator's documented inference behaviour, which is
deterministic. The same key gives the same output, with or without ``jit``.
Random draws carry the input's batch and feature sharding (``out_sharding``)
where the JAX version supports it, so pooling under an explicit mesh does not
replicate its noise.

The operators and what each one randomises:

* :func:`mixed_pool` (Yu et al. 2014; Lee et al. 2016): max or average
  pooling, chosen at random per region, per feature map or per call; with
  ``key=None``, the ``alpha``-weighted mix (Lee et al.'s learned mixing).
* :func:`gated_pool` (Lee et al. 2016): deterministic; the mixing proportion
  is ``sigmoid`` of a learned mask applied to the region.
* :func:`stochastic_pool` (Zeiler & Fergus 2013): one element per window,
  sampled with probability proportional to its value.
* :func:`s3_pool` (Zhai et al. 2017): stride-1 max pooling, then a random
  sorted subset of rows/columns per grid cell.
* :func:`fractional_max_pool` (Graham 2014; torch's variant): max pooling over
  pseudo-random or random non-integer-stride regions.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

from jaxpool._src import dtypes
from jaxpool._src.classic import avg_pool, max_pool, select_taps
from jaxpool._src.windows import (
    PaddingLike,
    normalize_spatial_shape,
    sharding_like,
    spatial_axes,
    window_geometry,
    window_taps,
)

__all__ = [
    "fractional_max_pool",
    "gated_pool",
    "mixed_pool",
    "s3_pool",
    "stochastic_pool",
]


# --------------------------------------------------------------------------
# Random draws that keep the input's sharding.


def _uniform(key, shape, like=None, keep: Sequence[int] = (), dtype=jnp.float32):
  """``U[0, 1)`` draws of ``shape`` with ``like``'s sharding on ``keep`` axes."""
  _check_key(key)
  shape = tuple(shape)
  sharding = sharding_like(like, shape, keep)
  if sharding is not None:
    try:
      return jax.random.uniform(key, shape, dtype, out_sharding=sharding)
    except TypeError:  # a JAX without out_sharding
      pass
  return jax.random.uniform(key, shape, dtype)


def _check_key(key) -> None:
  if not isinstance(key, jax.Array):
    raise TypeError(
        "key must be a jax.random key (jax.random.key(0) or"
        f" jax.random.PRNGKey(0)), or None for inference; got {type(key).__name__}."
    )


# --------------------------------------------------------------------------
# Mixed and gated pooling.

_Granularity = Literal["region", "map", "layer"]


def _mix(y_max, y_avg, proportion):
  """``proportion * y_max + (1 - proportion) * y_avg`` in float32 or wider."""
  dtype = y_max.dtype
  wide = dtypes.compute_dtype(dtype)
  y_max, y_avg = y_max.astype(wide), y_avg.astype(wide)
  proportion = proportion.astype(wide)
  return (y_avg + proportion * (y_max - y_avg)).astype(dtype)


def _max_and_avg(x, window_shape, strides, padding, dilation, ceil_mode,
                 count_include_pad, op):
  x = dtypes.float_input(x, op)
  window = dict(
      window_shape=window_shape, strides=strides, padding=padding,
      dilation=dilation, ceil_mode=ceil_mode,
  )
  y_max = max_pool(x, **window)
  y_avg = avg_pool(x, count_include_pad=count_include_pad, **window)
  return x, y_max, y_avg


def _proportion(alpha, out_shape, name: str) -> jax.Array:
  if isinstance(alpha, (int, float)) and not 0 <= alpha <= 1:
    raise ValueError(f"{name} must lie in [0, 1]; got {alpha!r}.")
  alpha = jnp.asarray(alpha)
  if not dtypes.is_float(alpha.dtype):
    alpha = alpha.astype(jnp.float32)
  try:
    np.broadcast_shapes(alpha.shape, tuple(out_shape))
  except ValueError:
    raise ValueError(
        f"{name} of shape {alpha.shape} does not broadcast to the pooled"
        f" output's shape {tuple(out_shape)}; use a scalar, one value per"
        " feature (shape (features,)) or an output-shaped array."
    ) from None
  return alpha


def mixed_pool(
    x: jax.typing.ArrayLike,
    window_shape: Sequence[int],
    strides: int | Sequence[int] | None = None,
    padding: PaddingLike = "VALID",
    *,
    alpha: jax.typing.ArrayLike = 0.5,
    key: jax.Array | None = None,
    granularity: _Granularity = "region",
    count_include_pad: bool = True,
    dilation: int | Sequence[int] | None = None,
    ceil_mode: bool = False,
) -> jax.Array:
  """Mixed max-average pooling, random (Yu et al. 2014) or weighted (Lee et al. 2016).

  ``y = m * max_pool(x) + (1 - m) * avg_pool(x)`` with the mixing proportion

  * ``key`` given (training, Yu et al.): ``m = lambda``, a Bernoulli draw with
    ``P(lambda = 1) = alpha``, so every output is **exactly** the window's
    max or its average. ``granularity`` says what shares one draw:
    ``'region'`` (default: every output element, i.e. per pooling region and
    feature), ``'map'`` (every feature map of every example) or ``'layer'``
    (the whole call). The draw is not differentiable in ``alpha``.
  * ``key=None`` (inference): ``m = alpha``. This is Lee et al.'s mixed
    pooling (``alpha`` learned, in ``[0, 1]``) and the expectation of the
    training output over the draws, the rule dropout uses.

  Yu et al.'s test-time rule is not confirmed from the paper's text: a
  recollection is "use the pooling type drawn more often in training", which
  for a fixed ``alpha`` is ``alpha=1.0`` (max) when ``alpha > 0.5`` and
  ``alpha=0.0`` (average) when ``alpha < 0.5``; pass that ``alpha`` at
  inference to use it.

  Args:
    x: ``(*batch, *spatial, features)`` floating-point array.
    window_shape, strides, padding, dilation, ceil_mode: the windows, as in
      :func:`jaxpool.max_pool`.
    alpha: probability of max pooling (with ``key``) or its weight (without):
      a scalar, one value per feature ``(features,)`` or an array that
      broadcasts to the output (e.g. from :func:`gated_pool`'s gate).
    key: PRNG key for the draws, or ``None`` for inference.
    granularity: ``'region'``, ``'map'`` or ``'layer'`` (see above).
    count_include_pad: passed to :func:`jaxpool.avg_pool`.

  Returns:
    ``(*batch, *out_spatial, features)`` array, ``x``'s dtype.

  Example:
    >>> import jax, jax.numpy as jnp, jaxpool
    >>> x = jnp.arange(16.0).reshape(1, 4, 4, 1)
    >>> jaxpool.mixed_pool(x, (2, 2), alpha=0.25)[0, :, :, 0]
    Array([[ 3.125,  5.125],
           [11.125, 13.125]], dtype=float32)
    >>> y = jaxpool.mixed_pool(x, (2, 2), key=jax.random.key(0))
    >>> bool(jnp.all((y == jaxpool.max_pool(x, (2, 2)))
    ...               | (y == jaxpool.avg_pool(x, (2, 2)))))
    True
  """
  if granularity not in ("region", "map", "layer"):
    raise ValueError(
        "granularity must be 'region', 'map' or 'layer'; got"
        f" {granularity!r}."
    )
  x, y_max, y_avg = _max_and_avg(
      x, window_shape, strides, padding, dilation, ceil_mode,
      count_include_pad, "mixed_pool",
  )
  alpha = _proportion(alpha, y_max.shape, "alpha")
  if key is None:
    return _mix(y_max, y_avg, alpha)
  num_spatial = len(window_shape)
  batch = y_max.ndim - num_spatial - 1
  if granularity == "region":
    shape, keep = y_max.shape, range(y_max.ndim)
  elif granularity == "map":
    shape = y_max.shape[:batch] + (1,) * num_spatial + y_max.shape[-1:]
    keep = (*range(batch), y_max.ndim - 1)
  else:
    shape, keep = (1,) * y_max.ndim, ()
  draws = _uniform(key, shape, y_max, keep, dtypes.compute_dtype(alpha.dtype))
  use_max = draws < jax.lax.stop_gradient(alpha)
  return jnp.where(use_max, y_max, y_avg)


def gated_pool(
    x: jax.typing.ArrayLike,
    gate: jax.typing.ArrayLike,
    window_shape: Sequence[int],
    strides: int | Sequence[int] | None = None,
    padding: PaddingLike = "VALID",
    *,
    count_include_pad: bool = True,
    dilation: int | Sequence[int] | None = None,
    ceil_mode: bool = False,
) -> jax.Array:
  """Gated max-average pooling (Lee, Gallagher & Tu, AISTATS 2016).

  ``y = s * max_pool(x) + (1 - s) * avg_pool(x)`` with ``s = sigmoid(g . x_R)``
  the "responsive" mixing proportion of each region ``R``: the inner product
  of the learned gating mask ``g`` with the region's values (padded cells
  count as zero, which is the official code's in-bounds-only product).
  Differentiable in ``x`` and ``gate``; deterministic.

  Args:
    x: ``(*batch, *spatial, features)`` floating-point array.
    gate: the mask, ``window_shape`` (shared by every feature, as in the
      paper: 9 parameters for a 3x3 window) or ``(*window_shape, features)``.
    window_shape, strides, padding, dilation, ceil_mode, count_include_pad:
      as in :func:`mixed_pool`.

  Returns:
    ``(*batch, *out_spatial, features)`` array, ``x``'s dtype.

  Example:
    >>> import jax.numpy as jnp, jaxpool
    >>> x = jnp.arange(16.0).reshape(1, 4, 4, 1)
    >>> y = jaxpool.gated_pool(x, jnp.zeros((2, 2)), (2, 2))  # s = 1/2
    >>> bool(jnp.allclose(y, jaxpool.mixed_pool(x, (2, 2), alpha=0.5)))
    True
  """
  x, y_max, y_avg = _max_and_avg(
      x, window_shape, strides, padding, dilation, ceil_mode,
      count_include_pad, "gated_pool",
  )
  window_shape = tuple(window_shape)
  gate = jnp.asarray(gate)
  if gate.shape not in (window_shape, window_shape + x.shape[-1:]):
    raise ValueError(
        f"gate must have shape {window_shape} (shared by all features) or"
        f" {window_shape + x.shape[-1:]} (per feature); got {gate.shape}."
    )
  geom = window_geometry(
      x.shape, window_shape, strides, padding, dilation=dilation,
      ceil_mode=ceil_mode,
  )
  wide = dtypes.compute_dtype(x.dtype)
  gate = gate.astype(wide).reshape((geom.window_size, -1))
  score = sum(
      g * tap for g, tap in zip(gate, window_taps(x.astype(wide), geom))
  )
  return _mix(y_max, y_avg, jax.nn.sigmoid(score))


# --------------------------------------------------------------------------
# Stochastic pooling (Zeiler & Fergus).


def stochastic_pool(
    x: jax.typing.ArrayLike,
    window_shape: Sequence[int],
    strides: int | Sequence[int] | None = None,
    padding: PaddingLike = "VALID",
    *,
    key: jax.Array | None = None,
    dilation: int | Sequence[int] | None = None,
    ceil_mode: bool = False,
) -> jax.Array:
  """Stochastic pooling (Zeiler & Fergus, ICLR 2013).

  Per window ``R`` with probabilities ``p_i = a_i / sum_{j in R} a_j``:

  * ``key`` given (training): ``y = a_l`` with ``l ~ Multinomial(p)``, drawn
    independently for every output element (inverse CDF of one uniform draw,
    as in Caffe). The gradient flows to the sampled element only.
  * ``key=None`` (inference): the probabilistic weighting
    ``y = sum_i p_i a_i = sum a_i^2 / sum a_i``, with its true derivative.

  Inputs are meant to be non-negative (after a ReLU). For other inputs the
  weights are ``relu(a_i)``: negative cells are never sampled and do not
  count. A window without positive mass (all zero, or all negative) samples
  its real cells uniformly and, at inference, returns their mean; so an
  all-zero window gives 0, never NaN, and the inference output is always the
  expectation of the training output. Padded cells have zero weight.

  Args:
    x: ``(*batch, *spatial, features)`` floating-point array.
    window_shape, strides, padding, dilation, ceil_mode: the windows, as in
      :func:`jaxpool.max_pool`.
    key: PRNG key for the draws, or ``None`` for inference.

  Returns:
    ``(*batch, *out_spatial, features)`` array, ``x``'s dtype.

  Example:
    >>> import jax.numpy as jnp, jaxpool
    >>> x = jnp.array([1.0, 3.0]).reshape(1, 2, 1)
    >>> jaxpool.stochastic_pool(x, (2,))[0, 0, 0]  # (1 + 9) / (1 + 3)
    Array(2.5, dtype=float32)
  """
  x = dtypes.float_input(x, "stochastic_pool")
  geom = window_geometry(
      x.shape, window_shape, strides, padding, dilation=dilation,
      ceil_mode=ceil_mode,
  )
  wide = dtypes.compute_dtype(x.dtype)
  taps = window_taps(x.astype(wide), geom)
  masks = geom.tap_masks()
  weights = [jnp.maximum(tap, 0) for tap in taps]  # padded taps are 0
  total = sum(weights)
  has_mass = total > 0
  real = [
      jnp.ones((), wide) if mask is None else jnp.asarray(mask, wide)
      for mask in masks
  ]
  weights = [jnp.where(has_mass, w, r) for w, r in zip(weights, real)]
  total = jnp.where(has_mass, total, sum(real))
  if key is None:
    y = sum(w * tap for w, tap in zip(weights, taps)) / total
    return y.astype(x.dtype)

  # Inverse CDF: the first tap whose running mass exceeds u * total. The last
  # positive-weight tap catches a threshold rounded up to the total.
  threshold = _uniform(key, total.shape, taps[0], range(total.ndim), wide)
  threshold = jax.lax.stop_gradient(threshold * total)
  weights = [jax.lax.stop_gradient(w) for w in weights]
  running = jnp.zeros_like(total)
  found = jnp.zeros(total.shape, bool)
  winner = jnp.zeros(total.shape, jnp.int32)
  last_positive = jnp.zeros(total.shape, jnp.int32)
  for flat, weight in enumerate(weights):
    running = running + weight
    positive = weight > 0
    take = ~found & positive & (running > threshold)
    winner = jnp.where(take, flat, winner)
    found = found | take
    last_positive = jnp.where(positive, flat, last_positive)
  winner = jnp.where(found, winner, last_positive)
  return select_taps(x, winner, geom)


# --------------------------------------------------------------------------
# S3Pool (Zhai et al.).


def _flatten_batch(x: jax.Array, num_spatial: int, op: str):
  """``(*batch, *spatial, C) -> (B, *spatial, C)`` and the batch shape."""
  spatial_axes(x.ndim, num_spatial, op, x.shape)
  batch = x.shape[: x.ndim - num_spatial - 1]
  return x.reshape((math.prod(batch),) + x.shape[len(batch):]), batch


def _gather_axis(x: jax.Array, index: jax.Array, axis: int) -> jax.Array:
  """``x`` indexed along ``axis`` by ``index`` (same rank, broadcastable).

  The index is left unbroadcast: ``take_along_axis`` turns its size-1 axes
  into slices, 4x faster with a tenth of the memory of a full index array.
  """
  return jnp.take_along_axis(x, index, axis=axis)


def _grid_bounds(size: int, grid: int) -> list[tuple[int, int]]:
  """``size // grid`` cells of ``grid``, the last absorbing the remainder."""
  count = size // grid
  return [
      (j * grid, size if j == count - 1 else (j + 1) * grid)
      for j in range(count)
  ]


def s3_pool(
    x: jax.typing.ArrayLike,
    strides: Sequence[int],
    *,
    window_shape: Sequence[int] | None = None,
    grid_shape: Sequence[int] | None = None,
    key: jax.Array | None = None,
    shared: bool = True,
    inference: Literal["average", "official"] = "average",
) -> jax.Array:
  """S3Pool: stochastic spatial sampling (Zhai et al., CVPR 2017).

  1. ``m = max_pool(x, window_shape, strides=1)``, padded at the end so that
     ``m`` keeps ``x``'s spatial size (``m[r] = max x[r : r + k]`` over the
     cells inside ``x``; the official Theano code pools VALID, its PyTorch
     port pads the result with zeros).
  2. Training (``key`` given): each spatial axis of size ``n`` is split into
     ``n // g`` grid cells of ``g`` (the last absorbs the remainder); from a
     cell of ``c`` rows, ``c // s`` distinct rows are drawn uniformly and kept
     in order. Axes are sampled independently; the output is ``m`` at the
     kept rows x columns. The official code draws ``g // s`` rows from the
     last cell too; drawing ``c // s`` keeps the output size ``n / s`` for any
     grid, equal to the inference output's.
  3. Inference (``key=None``): average pooling of ``m`` over windows of
     ``s`` and stride ``s`` (``inference='average'``, default): output ``i``
     averages the ``s`` rows its training samples fall around. The official
     code also averages ``m`` but pads it by ``s // 2`` first, which shifts
     every window half a stride before the rows its training samples come
     from; ``inference='official'`` reproduces that (padding ``s // 2``
     before and ``(s - 1) // 2`` after, excluded from the average). On the
     digits trainer (three S3Pool stages, grid 4) the official rule scored
     31% test accuracy against 95% for the aligned one (the sampled model
     itself scored 82%), so the shift is not harmless.

  With ``shared=True`` (the official code) one set of rows/columns serves the
  whole batch and every feature; ``shared=False`` draws them independently
  per example and feature.

  Args:
    x: ``(*batch, *spatial, features)`` floating-point array; each spatial
      size must be a multiple of its stride.
    strides: the down-sampling factor ``s`` per spatial axis (its length is
      the number of spatial axes).
    window_shape: max-pooling window ``k`` (default: ``strides``, the paper's
      setting).
    grid_shape: grid cell size ``g`` per axis, a multiple of ``s`` (default:
      the whole axis, one cell; the paper uses 16 then 8 on CIFAR).
    key: PRNG key for the draws, or ``None`` for inference.
    shared: share the sampled rows/columns over batch and features.
    inference: ``'average'`` or ``'official'`` (see 3. above).

  Returns:
    ``(*batch, *(n // s), features)`` array, ``x``'s dtype.

  Example:
    >>> import jax, jax.numpy as jnp, jaxpool
    >>> x = jnp.arange(16.0).reshape(1, 4, 4, 1)
    >>> jaxpool.s3_pool(x, (2, 2), key=jax.random.key(0)).shape
    (1, 2, 2, 1)
  """
  x = dtypes.float_input(x, "s3_pool")
  if inference not in ("average", "official"):
    raise ValueError(
        f"inference must be 'average' or 'official'; got {inference!r}."
    )
  strides = normalize_spatial_shape("strides", strides)
  n = len(strides)
  window_shape = strides if window_shape is None else normalize_spatial_shape(
      "window_shape", window_shape)
  spatial_axes(x.ndim, n, "s3_pool", x.shape)
  sizes = x.shape[x.ndim - n - 1: -1]
  grid_shape = sizes if grid_shape is None else normalize_spatial_shape(
      "grid_shape", grid_shape)
  for name, value in (("window_shape", window_shape), ("grid_shape", grid_shape)):
    if len(value) != n:
      raise ValueError(
          f"{name} has {len(value)} entries but strides has {n}; give one per"
          " spatial axis."
      )
  for size, s, g in zip(sizes, strides, grid_shape):
    if size % s:
      raise ValueError(
          f"s3_pool needs spatial sizes divisible by strides; got sizes"
          f" {sizes} and strides {strides}."
      )
    if g % s or g > size:
      raise ValueError(
          f"grid_shape must be multiples of strides no larger than the input"
          f" ({sizes}); got grid_shape {grid_shape} and strides {strides}."
      )
  pad = [(0, 0)] * (x.ndim - n - 1) + [(0, k - 1) for k in window_shape] + [(0, 0)]
  m = max_pool(
      jnp.pad(x, pad, constant_values=dtypes.lowest(x.dtype)), window_shape,
      strides=1,
  )
  if key is None:
    padding = "VALID" if inference == "average" else [
        (s // 2, (s - 1) // 2) for s in strides
    ]
    return avg_pool(m, strides, strides, padding, count_include_pad=False)
  _check_key(key)
  flat, batch = _flatten_batch(m, n, "s3_pool")
  for axis, (size, s, g, axis_key) in enumerate(
      zip(sizes, strides, grid_shape, jax.random.split(key, n))
  ):
    picks = []
    for (lo, hi), cell_key in zip(
        _grid_bounds(size, g), jax.random.split(axis_key, size // g)
    ):
      shape = [1] * flat.ndim
      shape[axis + 1] = hi - lo
      if not shared:
        shape[0], shape[-1] = flat.shape[0], flat.shape[-1]
      order = jnp.argsort(
          _uniform(cell_key, tuple(shape), flat, (0, flat.ndim - 1)), axis=axis + 1
      )
      kept = jax.lax.slice_in_dim(order, 0, (hi - lo) // s, axis=axis + 1)
      picks.append(lo + jnp.sort(kept, axis=axis + 1))
    flat = _gather_axis(flat, jnp.concatenate(picks, axis=axis + 1), axis + 1)
  return flat.reshape(batch + flat.shape[1:])


# --------------------------------------------------------------------------
# Fractional max pooling (Graham; torch).

_Regions = Literal["torch", "pseudorandom", "random"]


def _torch_starts(u: jax.Array, size: int, out: int, k: int) -> jax.Array:
  """torch's window starts ``int((i + u) a) - int(u a)``, ``a = (n-k)/(out-1)``.

  Computed in ``u``'s dtype with torch's operation order, so that the
  truncations agree bit for bit.
  """
  last = jnp.zeros_like(u, jnp.int32)[..., None] + (size - k)  # u's sharding
  if out == 1:
    return last
  alpha = jnp.asarray(size - k, u.dtype) / jnp.asarray(out - 1, u.dtype)
  i = jnp.arange(out - 1, dtype=u.dtype)
  u = u[..., None]
  starts = (
      jnp.floor((i + u) * alpha).astype(jnp.int32)
      - jnp.floor(u * alpha).astype(jnp.int32)
  )
  return jnp.concatenate([starts, last], axis=-1)


def _graham_bounds(u: jax.Array, size: int, out: int) -> jax.Array:
  """Graham's pseudo-random boundaries ``ceil(a (i + u)) - ceil(a u)``, ``a = n / out``.

  ``out + 1`` boundaries from 0 to ``size``; every region has ``floor(a)`` or
  ``ceil(a)`` cells. Evaluated in integers from one rounding of ``n u``, so
  rounding never breaks those properties.
  """
  t = size * u.astype(jnp.float32)
  q = jnp.floor(t)
  fraction = (t - q)[..., None]
  a = size * jnp.arange(out + 1, dtype=jnp.int32) + q.astype(jnp.int32)[..., None]
  ceil = a // out + ((a % out > 0) | (fraction > 0)).astype(jnp.int32)
  return ceil - ceil[..., :1]


def _random_bounds(key, shape, size: int, out: int) -> jax.Array:
  """Graham's random regions: a random order of ``floor(a)``/``ceil(a)`` sizes."""
  small = size // out
  num_large = size - out * small
  order = jnp.argsort(
      jnp.argsort(_uniform(key, shape + (out,)), axis=-1), axis=-1
  )
  lengths = small + (order < num_large).astype(jnp.int32)
  zeros = jnp.zeros(shape + (1,), jnp.int32)
  return jnp.concatenate([zeros, jnp.cumsum(lengths, axis=-1)], axis=-1)


def _regions_at(u: float, size: int, out: int, regions, window) -> np.ndarray:
  """``(out, 2)`` region ``[start, end)`` bounds for one ``u`` (float64 numpy)."""
  if regions == "torch":
    starts = np.full(out, size - window, np.int64)
    if out > 1:
      alpha = (size - window) / (out - 1)
      i = np.arange(out - 1)
      starts[:-1] = np.floor((i + u) * alpha) - np.floor(u * alpha)
    return np.stack([starts, starts + window], axis=1)
  bounds = np.ceil(size * (np.arange(out + 1) + u) / out) - np.ceil(size * u / out)
  bounds = bounds.astype(np.int64)
  return np.stack([bounds[:-1], bounds[1:]], axis=1)


def _region_probabilities(size, out, regions, window, overlapping):
  """``{length: P}`` with ``P[i, p]`` the probability that region ``i`` is
  ``[p, p + length)``, over ``u ~ U[0, 1)`` (or the random order).

  The regions are piecewise constant in ``u``; they change only where some
  ``(i + u) a`` is an integer, so evaluating them once per piece is exact.
  """
  table: dict[int, np.ndarray] = {}

  def add(i, start, end, p):
    if overlapping:
      end = min(end + 1, size)
    length = end - start
    table.setdefault(length, np.zeros((out, size - length + 1)))[i, start] += p

  if regions == "random":
    small = size // out
    num_large = size - out * small
    for i in range(out):
      for large_before in range(min(i, num_large) + 1):
        # Hypergeometric: large regions among the first i.
        p = (math.comb(num_large, large_before)
             * math.comb(out - num_large, i - large_before) / math.comb(out, i))
        start = i * small + large_before
        p_large = (num_large - large_before) / (out - i)
        if p * p_large > 0:
          add(i, start, start + small + 1, p * p_large)
        if p * (1 - p_large) > 0:
          add(i, start, start + small, p * (1 - p_large))
    return table
  alpha = (
      (size - window) / (out - 1) if regions == "torch" and out > 1
      else 0.0 if regions == "torch" else size / out
  )
  cuts = {0.0, 1.0}
  if alpha > 0:
    for i in range(out + 1):
      for m in range(math.ceil(i * alpha), math.floor((i + 1) * alpha) + 1):
        cut = m / alpha - i
        if 0 < cut < 1:
          cuts.add(cut)
  cuts = sorted(cuts)
  for lo, hi in zip(cuts[:-1], cuts[1:]):
    for i, (start, end) in enumerate(_regions_at((lo + hi) / 2, size, out, regions, window)):
      add(i, int(start), int(end), hi - lo)
  return table


def _expected_fractional_max_pool(x, sizes, output_shape, regions, window_shape, overlapping):
  """``E_u[fractional_max_pool(x, samples=u)]``, exactly.

  A sum, over the region sizes per axis, of stride-1 max maps contracted
  with the (static) region probabilities of every axis.
  """
  n = len(sizes)
  tables = [
      _region_probabilities(
          sizes[a], output_shape[a], regions,
          None if window_shape is None else window_shape[a], overlapping,
      )
      for a in range(n)
  ]
  wide = dtypes.compute_dtype(x.dtype)
  first = x.ndim - n - 1
  y = None
  for combo in itertools.product(*(sorted(t.items()) for t in tables)):
    m = max_pool(x, tuple(length for length, _ in combo), strides=1).astype(wide)
    for axis, (_, probabilities) in enumerate(combo):
      m = jnp.moveaxis(
          jnp.tensordot(jnp.asarray(probabilities, wide), m, axes=([1], [first + axis])),
          0, first + axis,
      )
    y = m if y is None else y + m
  return y.astype(x.dtype)


def _max_over_regions(x, starts, lengths, lengths_present, axis: int):
  """``max(x[..., p : p + L, ...])`` along ``axis`` for every region.

  ``starts``/``lengths`` have ``x``'s rank, one entry per region at ``axis``
  and broadcast elsewhere; ``lengths_present`` lists the values ``lengths``
  takes. Per length: a stride-1 max map (torch's first-maximum rule and its
  fast gradient), read at the starts. Gradients reach the winner only.
  """
  num_spatial = x.ndim - 2
  y = None
  for length in lengths_present:
    window = tuple(length if d == axis - 1 else 1 for d in range(num_spatial))
    m = max_pool(x, window, strides=1)
    read = _gather_axis(m, jnp.minimum(starts, m.shape[axis] - 1), axis)
    y = read if y is None else jnp.where(lengths == length, read, y)
  return y


def fractional_max_pool(
    x: jax.typing.ArrayLike,
    output_shape: Sequence[int] | None = None,
    window_shape: Sequence[int] | None = None,
    *,
    output_ratio: float | Sequence[float] | None = None,
    key: jax.Array | None = None,
    samples: jax.typing.ArrayLike | None = None,
    regions: _Regions = "torch",
    overlapping: bool = False,
) -> jax.Array:
  """Fractional max pooling (Graham 2014), torch's and the paper's regions.

  Max pooling over pseudo-random regions whose average stride ``a = n /
  out`` need not be an integer. Each spatial axis of each ``(example,
  feature)`` plane gets its own regions from one number ``u`` in ``[0, 1)``:

  * ``regions='torch'`` (default): windows of the fixed size ``k =
    window_shape`` starting at ``int((i + u) a') - int(u a')``,
    ``a' = (n - k) / (out - 1)``, the last one at ``n - k``; generally
    overlapping. Identical to ``torch.nn.functional.fractional_max_pool2d/3d``
    given the same samples (values, winners and gradients).
  * ``regions='pseudorandom'``: Graham's disjoint regions between the
    boundaries ``ceil(a (i + u)) - ceil(a u)``, ``i = 0..out`` (from 0 to
    ``n``; each region has ``floor(a)`` or ``ceil(a)`` cells).
  * ``regions='random'``: Graham's random regions: the ``floor(a)``- and
    ``ceil(a)``-cell regions in a uniformly random order (drawn from ``key``;
    ``samples`` cannot describe it).

  ``overlapping=True`` (Graham's overlapping variant, paper regions only)
  extends every region by one cell into the next, like TensorFlow's
  ``overlapping``. Within a window the first maximum in row-major order wins,
  as in torch; gradients flow to it.

  The samples: with ``key``, ``u ~ U[0, 1)`` independently per example,
  spatial axis and feature (torch's draw). ``samples`` gives them explicitly,
  shape ``(*batch, num_spatial, features)``; ``samples[..., i, c]`` drives
  spatial axis ``i``. torch's 2-D samples ``(N, C, 2)`` hold the axes
  reversed (``[..., 0]`` drives the width): pass
  ``torch_samples.permute(0, 2, 1).flip(1)``; its 3-D samples ``(N, C, 3)``
  are in axis order (time, height, width): pass
  ``torch_samples.permute(0, 2, 1)``. With neither (inference), the
  output is the **expectation of the training output** over the samples
  (or the random order), computed exactly: the regions are piecewise
  constant in ``u``, so it is a fixed linear combination of stride-1 max
  maps. Graham instead averages the predictions of several random draws at
  test time (do that by calling with several keys); a fixed draw such as
  ``u = 0.5`` shifts every window by about half a cell, which cost 17
  points of accuracy on the digits trainer (81% against 98%).

  Args:
    x: ``(*batch, *spatial, features)`` floating-point array.
    output_shape: output spatial shape; or give ``output_ratio``.
    window_shape: window size ``k`` per axis, for ``regions='torch'`` only.
    output_ratio: ``output_shape = int(n * ratio)`` per axis (as torch), a
      float or one per axis in ``(0, 1)``.
    key: PRNG key for the samples.
    samples: explicit samples in ``[0, 1)`` (excludes ``key``).
    regions: ``'torch'``, ``'pseudorandom'`` or ``'random'``.
    overlapping: overlapping paper regions (``'pseudorandom'``/``'random'``).

  Returns:
    ``(*batch, *output_shape, features)`` array, ``x``'s dtype.

  Example:
    >>> import jax.numpy as jnp, jaxpool
    >>> x = jnp.arange(25.0).reshape(1, 5, 5, 1)
    >>> u = jnp.full((1, 2, 1), 0.5)  # (batch, spatial axes, features)
    >>> jaxpool.fractional_max_pool(x, (3, 3), (2, 2), samples=u)[0, :, :, 0]
    Array([[ 6.,  8.,  9.],
           [16., 18., 19.],
           [21., 23., 24.]], dtype=float32)
    >>> # Inference: the mean over u (the middle window starts at 1 or 2).
    >>> y = jaxpool.fractional_max_pool(x, (3, 3), (2, 2))
    >>> [round(float(v), 3) for v in y[0, 0, :, 0]]
    [6.0, 7.333, 9.0]
  """
  x = dtypes.float_input(x, "fractional_max_pool")
  if regions not in ("torch", "pseudorandom", "random"):
    raise ValueError(
        f"regions must be 'torch', 'pseudorandom' or 'random'; got {regions!r}."
    )
  if (output_shape is None) == (output_ratio is None):
    raise ValueError(
        "give exactly one of output_shape and output_ratio; got"
        f" output_shape={output_shape!r}, output_ratio={output_ratio!r}."
    )
  if output_shape is not None:
    output_shape = normalize_spatial_shape("output_shape", output_shape)
    n = len(output_shape)
  else:
    ratios = (
        tuple(output_ratio) if isinstance(output_ratio, Sequence)
        else None if window_shape is None else (output_ratio,) * len(window_shape)
    )
    if ratios is None:
      raise ValueError(
          "a scalar output_ratio needs window_shape to tell the number of"
          " spatial axes; give one ratio per axis."
      )
    if not all(isinstance(r, (int, float)) and 0 < r < 1 for r in ratios):
      raise ValueError(f"output_ratio must lie in (0, 1); got {output_ratio!r}.")
    n = len(ratios)
  spatial_axes(x.ndim, n, "fractional_max_pool", x.shape)
  sizes = x.shape[x.ndim - n - 1: -1]
  if output_shape is None:
    output_shape = tuple(int(size * r) for size, r in zip(sizes, ratios))
    if min(output_shape) < 1:
      raise ValueError(
          f"output_ratio {output_ratio!r} gives output shape {output_shape}"
          f" for spatial sizes {sizes}; every size must be >= 1."
      )
  if len(output_shape) != n:
    raise ValueError(f"output_shape needs {n} entries; got {output_shape}.")
  if regions == "torch":
    if window_shape is None:
      raise ValueError("regions='torch' needs window_shape (torch's kernel_size).")
    window_shape = normalize_spatial_shape("window_shape", window_shape)
    if len(window_shape) != n:
      raise ValueError(
          f"window_shape has {len(window_shape)} entries; the output has {n}."
      )
    if overlapping:
      raise ValueError(
          "overlapping applies to the paper's regions ('pseudorandom',"
          " 'random'); torch windows overlap whenever window_shape exceeds"
          " the stride."
      )
    for size, out, k in zip(sizes, output_shape, window_shape):
      if out + k - 1 > size:
        raise ValueError(
            f"fractional_max_pool: output_shape {output_shape} with"
            f" window_shape {window_shape} needs spatial sizes of at least"
            f" output + window - 1; got {sizes}."
        )
  else:
    if window_shape is not None:
      raise ValueError(
          f"window_shape is for regions='torch'; regions={regions!r} sizes its"
          " regions from the ratio input/output."
      )
    if any(out > size for size, out in zip(sizes, output_shape)):
      raise ValueError(
          f"output_shape {output_shape} exceeds the spatial sizes {sizes}."
      )

  flat, batch = _flatten_batch(x, n, "fractional_max_pool")
  planes = (flat.shape[0], flat.shape[-1])
  wide = x.dtype if x.dtype == jnp.float64 else jnp.float32
  if samples is not None:
    if key is not None:
      raise ValueError("give key or samples, not both.")
    if regions == "random":
      raise ValueError(
          "regions='random' draws a random order of region sizes from key;"
          " samples cannot describe it."
      )
    samples = jnp.asarray(samples)
    expected = batch + (n, x.shape[-1])
    if samples.shape != expected:
      raise ValueError(
          f"samples must have shape (*batch, num_spatial, features) ="
          f" {expected}; got {samples.shape}."
      )
    u = jnp.moveaxis(samples.reshape(planes[:1] + (n,) + planes[1:]), 1, 0)
  elif key is not None:
    _check_key(key)
    key, order_key = jax.random.split(key)
    like = flat[(slice(None),) + (slice(0, 1),) * n]  # (B, 1.., C)
    u = jnp.stack([
        _uniform(k, like.shape, like, (0, n + 1), wide).reshape(planes)
        for k in jax.random.split(key, n)
    ])
  else:
    return _expected_fractional_max_pool(
        x, sizes, output_shape, regions, window_shape, overlapping
    )
  u = jax.lax.stop_gradient(u)

  # Separable: the max over a box is the max over rows of row maxima. Last
  # spatial axis first, so the row-major first maximum wins, as in torch.
  for axis in reversed(range(n)):
    size, out = sizes[axis], output_shape[axis]
    if regions == "torch":
      k = window_shape[axis]
      starts = _torch_starts(u[axis], size, out, k)
      lengths, lengths_present = k, (k,)
    else:
      if regions == "random":
        bounds = _random_bounds(jax.random.fold_in(order_key, axis), planes, size, out)
      else:
        bounds = _graham_bounds(u[axis], size, out)
      starts, ends = bounds[..., :-1], bounds[..., 1:]
      small = size // out
      lengths_present = range(small, small + 2 + overlapping)
      if overlapping:
        ends = jnp.minimum(ends + 1, size)
      lengths = ends - starts
    # (B, C, out) -> (B, 1.., out at the axis, 1.., C)
    placed = planes[:1] + tuple(out if d == axis else 1 for d in range(n)) + planes[1:]
    place = lambda a: a if isinstance(a, int) else jnp.swapaxes(a, 1, 2).reshape(placed)  # noqa: E731
    flat = _max_over_regions(flat, place(starts), place(lengths), lengths_present, axis + 1)
  return flat.reshape(batch + flat.shape[1:])
