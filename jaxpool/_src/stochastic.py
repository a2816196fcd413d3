"""Sampling poolings: stochastic pooling (Zeiler & Fergus) and S3Pool (Zhai et al.).

Both take a keyword-only ``key`` (a `jax.random` key); ``key=None``
selects the documented, deterministic inference rule. Random draws carry the
input's batch and feature sharding where the JAX version supports it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import jax
import jax.numpy as jnp

from jaxpool._src.classic import avg_pool, max_pool
from jaxpool._src.core import dtypes
from jaxpool._src.core.checks import check_bool, check_choice, check_one_key
from jaxpool._src.core.eager import compiled_when_eager
from jaxpool._src.core.geometry import (
  PaddingLike,
  normalize_spatial_shape,
  spatial_axes,
  window_geometry,
)
from jaxpool._src.core.options import register_option_check
from jaxpool._src.core.reductions import select_taps
from jaxpool._src.core.sharding import uniform
from jaxpool._src.core.taps import flatten_batch, window_taps

__all__ = ["s3_pool", "stochastic_pool"]

# --------------------------------------------------------------------------
# Stochastic pooling (Zeiler & Fergus).


@compiled_when_eager()
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
  r"""Stochastic pooling (Zeiler & Fergus, ICLR 2013).

  Per window $R$ with probabilities $p_i = a_i / \sum_{j \in R} a_j$:

  * ``key`` given (training): $y = a_l$ with $l \sim \operatorname{Multinomial}(p)$,
    drawn independently for every output element (inverse CDF of one uniform
    draw, as in Caffe). The gradient flows to the sampled element only.
  * ``key=None`` (inference): the probabilistic weighting
    $y = \sum_i p_i a_i = \sum_i a_i^2 / \sum_i a_i$, with its true derivative.

  Inference computes $\sum_i a_i (a_i / \sum_j a_j)$, never $a_i^2$, so
  no window's scale overflows or underflows (``1e20`` or ``1e-30`` inputs are
  fine in float32; a window whose sum exceeds the float range gives
  ``+inf``). A ``+inf`` cell is the limit's winner: training samples
  it (the first one, if several) and the inference output is ``+inf``; a
  ``-inf`` cell, like every negative one, has probability 0.

  Inputs are meant to be non-negative (after a ReLU). For other inputs the
  weights are $\operatorname{relu}(a_i)$: negative cells are never sampled and
  do not count. A window without positive mass (all zero, or all negative)
  samples its real cells uniformly and, at inference, returns their mean; so an
  all-zero window gives 0, never NaN, and the inference output is always the
  expectation of the training output. Padded cells have zero weight.

  Args:
    x: ``(*batch, *spatial, features)`` floating-point array.
    window_shape: window size per spatial axis, e.g. ``(2, 2)``.
    strides: step per spatial axis (int or tuple); ``None`` (default) means
      ``window_shape``, as in torch.
    padding: ``'VALID'`` (default), ``'SAME'``, an int, ints or ``(low, high)``
      pairs, as in [`max_pool`][jaxpool.max_pool].
    dilation: spacing between window taps (int or tuple); ``None`` (default)
      means 1.
    ceil_mode: round the output size up, as torch's ``ceil_mode`` (default
      ``False``).
    key: one PRNG key for the draws, or ``None`` for inference (a batch of
      keys, a float array or a wrongly shaped raw key is an error).

  Returns:
    ``(*batch, *out_spatial, features)`` array, ``x``'s dtype.

  Examples:
    >>> import jax.numpy as jnp, jaxpool
    >>> x = jnp.array([1.0, 3.0]).reshape(1, 2, 1)
    >>> jaxpool.stochastic_pool(x, (2,))[0, 0, 0]  # (1 + 9) / (1 + 3)
    Array(2.5, dtype=float32)
  """
  if key is not None:
    check_one_key(key)
  x = dtypes.float_input(x, "stochastic_pool")
  geom = window_geometry(
    x.shape,
    window_shape,
    strides,
    padding,
    dilation=dilation,
    ceil_mode=ceil_mode,
  )
  wide = dtypes.compute_dtype(x.dtype)
  taps = window_taps(x.astype(wide), geom)
  if key is not None:
    winner = _sample_taps(taps, geom.tap_masks(), key, wide)
    return select_taps(x, winner, geom)
  return _probability_weighted(taps, geom).astype(x.dtype)


def _sample_taps(taps, masks, key, dtype):
  """The sampled tap of every window, by the inverse CDF of ``p_i``.

  The first tap whose running mass exceeds ``u * total`` wins (the last
  positive-weight tap catches a threshold rounded up to the total). Weights
  ``relu(a_i)``, the real cells equally in windows without positive mass; a
  window holding ``+inf`` samples its first ``+inf`` cell (the limit, for
  one such cell; a window whose finite mass overflows falls back to its last
  positive cell). Everything is recomputed from the taps inside the chain:
  no per-tap or per-window array is stored.
  """
  weights = [jnp.maximum(jax.lax.stop_gradient(tap), 0) for tap in taps]
  weights = [w if mask is None else jnp.where(mask, w, 0) for w, mask in zip(weights, masks)]
  total = sum(weights)
  has_mass, infinite = total > 0, total == jnp.inf
  real = [jnp.ones((), dtype) if mask is None else jnp.asarray(mask, dtype) for mask in masks]
  base = [jnp.where(has_mass, w, r) for w, r in zip(weights, real)]
  weights = [jnp.where(infinite, (w == jnp.inf).astype(dtype), w) for w in base]
  total = jnp.where(has_mass, total, sum(real))
  u = uniform(key, total.shape, taps[0], range(total.ndim), dtype)
  # In windows with +inf, the first +inf cell (threshold 0).
  threshold = jnp.where(infinite, 0, u * total)
  running = jnp.zeros_like(total)
  found = jnp.zeros(total.shape, bool)
  winner = jnp.zeros(total.shape, jnp.int32)
  last_positive = jnp.zeros(total.shape, jnp.int32)
  for flat, (weight, fallback) in enumerate(zip(weights, base)):
    running = running + weight
    take = ~found & (weight > 0) & (running > threshold)
    winner = jnp.where(take, flat, winner)
    found = found | take
    last_positive = jnp.where(fallback > 0, flat, last_positive)
  return jnp.where(found, winner, last_positive)


def _mass_inverse(weights):
  """``1 / W`` with ``W = sum w``, and where ``0 < W < inf``."""
  mass = sum(weights)
  finite = (mass > 0) & (mass < jnp.inf)
  return 1 / jnp.where(finite, mass, 1), finite


@jax.custom_jvp
def _self_weighted_mean(*weights: jax.Array) -> jax.Array:
  """``sum_i w_i (w_i / W)``, ``W = sum_j w_j``; meaningful where
  ``0 < W < inf`` (the caller replaces the other windows)."""
  inverse, _ = _mass_inverse(weights)
  return sum(w * (w * inverse) for w in weights)


@_self_weighted_mean.defjvp
def _self_weighted_mean_jvp(weights, tangents):
  # dy/dw_j = (2 w_j - y) / W, formed as such (autodiff of the division
  # would form y / W^2, which over- or underflows for large or tiny
  # windows); 0 in the windows the caller replaces.
  y = _self_weighted_mean(*weights)
  inverse, finite = _mass_inverse(weights)
  return y, sum(jnp.where(finite, (2 * w - y) * inverse, 0) * t for w, t in zip(weights, tangents))


def _probability_weighted(taps, geom):
  """Inference: ``sum_i p_i a_i = sum_i r_i (r_i / R)`` per window, with
  ``r_i = relu(a_i)`` and ``R = sum_j r_j``.

  Each term multiplies ``r_i`` by ``r_i / R`` in ``[0, 1]``, never forming
  ``r_i^2``: no overflow for large inputs (``1e20``), no underflow for tiny
  ones (``1e-30``), and the derivative ``(2 r_j - y) / R`` is formed the
  same way. One division per window; the per-tap terms only multiply, so
  XLA fuses them into the sums. Windows holding ``+inf`` (or whose mass
  overflows the float range) give ``+inf``; windows without positive mass
  (and NaN ones) the mean of their real cells.
  """
  masks = geom.tap_masks()
  relus = [
    jnp.maximum(tap, 0) if mask is None else jnp.where(mask, jnp.maximum(tap, 0), 0)
    for tap, mask in zip(taps, masks)
  ]
  _, finite = _mass_inverse(relus)  # NaN windows are not finite
  weighted = _self_weighted_mean(*relus)
  real = [tap if mask is None else jnp.where(mask, tap, 0) for tap, mask in zip(taps, masks)]
  counts = geom.window_counts(include_pad=False)[..., None].astype(weighted.dtype)
  mean = sum(real) / counts
  return jnp.where(finite, weighted, jnp.where(sum(relus) == jnp.inf, jnp.inf, mean))


# --------------------------------------------------------------------------
# S3Pool (Zhai et al.).


def _grid_bounds(size: int, grid: int) -> list[tuple[int, int]]:
  """``size // grid`` cells of ``grid``, the last absorbing the remainder."""
  count = size // grid
  return [(j * grid, size if j == count - 1 else (j + 1) * grid) for j in range(count)]


@compiled_when_eager()
def s3_pool(
  x: jax.typing.ArrayLike,
  window_shape: Sequence[int],
  strides: Sequence[int] | None = None,
  *,
  grid_shape: Sequence[int] | None = None,
  key: jax.Array | None = None,
  shared: bool = True,
  inference: Literal["average", "official"] = "average",
) -> jax.Array:
  """S3Pool: stochastic spatial sampling (Zhai et al., CVPR 2017).

  1. ``m = max_pool(x, window_shape, strides=1)``, padded at the end so that
     ``m`` keeps ``x``'s spatial size (``m[r] = max(x[r : r + k])`` over the
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
     before and ``(s - 1) // 2`` after, excluded from the average).

  With ``shared=True`` (the official code) one set of rows/columns serves the
  whole batch and every feature; ``shared=False`` draws them independently
  per example and feature.

  Args:
    x: ``(*batch, *spatial, features)`` floating-point array; each spatial
      size must be a multiple of its stride.
    window_shape: max-pooling window ``k`` per spatial axis (its length is
      the number of spatial axes).
    strides: the down-sampling factor ``s`` per axis; ``None`` means
      ``window_shape`` (the paper's setting, ``k = s``).
    grid_shape: grid cell size ``g`` per axis, a multiple of ``s`` (default:
      the whole axis, one cell; the paper uses 16 then 8 on CIFAR).
    key: one PRNG key for the draws, or ``None`` for inference (a batch of
      keys, a float array or a wrongly shaped raw key is an error).
    shared: share the sampled rows/columns over batch and features (a bool).
    inference: ``'average'`` or ``'official'`` (see 3. above).

  Returns:
    ``(*batch, *(n // s), features)`` array, ``x``'s dtype.

  Examples:
    >>> import jax, jax.numpy as jnp, jaxpool
    >>> x = jnp.arange(16.0).reshape(1, 4, 4, 1)
    >>> jaxpool.s3_pool(x, (2, 2), key=jax.random.key(0)).shape
    (1, 2, 2, 1)
  """
  if key is not None:
    check_one_key(key)
  shared = _s3_options(shared, inference)
  x = dtypes.float_input(x, "s3_pool")
  window_shape = normalize_spatial_shape("window_shape", window_shape)
  n = len(window_shape)
  strides = window_shape if strides is None else normalize_spatial_shape("strides", strides)
  spatial_axes(x.ndim, n, "s3_pool", x.shape)
  sizes = x.shape[x.ndim - n - 1 : -1]
  if 0 in sizes:
    raise ValueError(f"s3_pool needs non-empty spatial axes; got x.shape={x.shape}.")
  grid_shape = sizes if grid_shape is None else normalize_spatial_shape("grid_shape", grid_shape)
  for name, value in (("strides", strides), ("grid_shape", grid_shape)):
    if len(value) != n:
      raise ValueError(
        f"{name} has {len(value)} entries but window_shape has {n}; give one per spatial axis."
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
    jnp.pad(x, pad, constant_values=dtypes.lowest(x.dtype)),
    window_shape,
    strides=1,
  )
  if key is None:
    padding = "VALID" if inference == "average" else [(s // 2, (s - 1) // 2) for s in strides]
    return avg_pool(m, strides, strides, padding, count_include_pad=False)
  flat, batch = flatten_batch(m, n, "s3_pool")
  for axis, (size, s, g, axis_key) in enumerate(
    zip(sizes, strides, grid_shape, jax.random.split(key, n))
  ):
    picks = []
    for (lo, hi), cell_key in zip(_grid_bounds(size, g), jax.random.split(axis_key, size // g)):
      shape = [1] * flat.ndim
      shape[axis + 1] = hi - lo
      if not shared:
        shape[0], shape[-1] = flat.shape[0], flat.shape[-1]
      order = jnp.argsort(uniform(cell_key, tuple(shape), flat, (0, flat.ndim - 1)), axis=axis + 1)
      kept = jax.lax.slice_in_dim(order, 0, (hi - lo) // s, axis=axis + 1)
      picks.append(lo + jnp.sort(kept, axis=axis + 1))
    # An unbroadcast index: take_along_axis slices along its size-1 axes.
    flat = jnp.take_along_axis(flat, jnp.concatenate(picks, axis=axis + 1), axis=axis + 1)
  return flat.reshape(batch + flat.shape[1:])


# Option checks shared by the function and its layers' constructors.


def _s3_options(shared, inference, **_) -> bool:
  check_choice("inference", inference, ("average", "official"))
  return check_bool("shared", shared)


register_option_check(s3_pool, _s3_options)
