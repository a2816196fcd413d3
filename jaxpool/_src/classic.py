"""Classic sliding-window pooling: max, min, average, power-average, median.

All operators take ``x`` of shape ``(*batch, *spatial, features)`` and the
window arguments of :func:`jaxpool._src.windows.window_geometry` (torch
semantics; ``strides=None`` means ``strides = window_shape``).
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Sequence
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxpool._src import dtypes
from jaxpool._src.windows import (
    PaddingLike,
    WindowGeometry,
    map_unpadded_blocks,
    scatter_to_input,
    spatial_axes,
    window_geometry,
    window_taps,
)

__all__ = [
    "max_pool",
    "min_pool",
    "avg_pool",
    "lp_pool",
    "median_pool",
    "avg_max_pool",
]

_Kind = Literal["max", "min"]


# ---------------------------------------------------------------------------
# Max / min pooling: reduce_window forward, first-extremum derivative.
# ---------------------------------------------------------------------------


def _never_wins(dtype, kind: _Kind):
  """The fill no element can beat: -inf (integer min) for max, +inf for min."""
  return dtypes.lowest(dtype) if kind == "max" else dtypes.highest(dtype)


def _reduce_extremum(x: jax.Array, geom: WindowGeometry, kind: _Kind):
  """Max/min of every window (NaN propagates)."""
  op = lax.max if kind == "max" else lax.min
  if geom.is_unpadded:
    # A chain of strided slices: faster than reduce_window on XLA:CPU, and
    # fused into one pass.
    return functools.reduce(op, window_taps(x, geom))
  # Padding never wins: windows clipped to the input, in padding-free blocks
  # (XLA:CPU runs fused pads slowly; 2.5x faster than reduce_window for a
  # 3x3/2 pad-1 window, 8x for 3x3/1).
  return map_unpadded_blocks(
      lambda part, part_geom: _reduce_extremum(part, part_geom, kind), x, geom,
      _never_wins(x.dtype, kind),
  )


def _tap_dtype(geom: WindowGeometry):
  """Smallest integer dtype that holds a row-major tap index."""
  return np.int8 if geom.window_size <= np.iinfo(np.int8).max else np.int32


def extremum_and_winner(
    x: jax.Array, geom: WindowGeometry, kind: _Kind
) -> tuple[jax.Array, jax.Array]:
  """One pass over the taps: every window's max (min) and the tap it came from.

  torch's rule: the first extremum in window order wins ties; a NaN always
  wins (so the last NaN of a window is selected, and the value is NaN);
  padding never wins (a window of only -inf selects its first real cell).

  Returns:
    ``(values, winner)``, both of shape ``(*batch, *out_shape, features)``;
    ``winner`` holds row-major window offsets (int8 for windows of at most
    127 taps, else int32).
  """
  if geom.is_unpadded:
    return _extremum_and_winner_of_taps(x, geom, kind)
  # Padding never wins: run the unpadded pass over blocks of windows clipped
  # to the input (no fused pads, which XLA:CPU runs slowly) and translate
  # each block's tap indices to the full window's.
  index_dtype = _tap_dtype(geom)

  def block(part, part_geom, first_taps):
    local = np.indices(part_geom.window_shape).reshape(geom.num_spatial, -1)
    labels = np.ravel_multi_index(
        tuple(local + np.asarray(first_taps)[:, None]), geom.window_shape
    )
    return _extremum_and_winner_of_taps(part, part_geom, kind, labels, index_dtype)

  fill = _never_wins(x.dtype, kind)

  def empty(shape):
    return jnp.full(shape, fill, x.dtype), jnp.zeros(shape, index_dtype)

  return map_unpadded_blocks(block, x, geom, empty, with_first_taps=True)


def _extremum_and_winner_of_taps(x, geom, kind, labels=None, index_dtype=None):
  """:func:`extremum_and_winner`; tap ``i`` is reported as ``labels[i]``."""
  if labels is None:
    labels, index_dtype = np.arange(geom.window_size), _tap_dtype(geom)
  out_dtype = x.dtype
  x = x.astype(dtypes.compute_dtype(x.dtype))  # exact; bf16 is emulated on CPU
  fill = _never_wins(x.dtype, kind)
  better = lax.gt if kind == "max" else lax.lt
  taps = window_taps(x, geom, fill)
  # The running winner is tracked in x's (float) dtype, which XLA:CPU
  # vectorises with the values (1.4x faster than an int8 chain), and cast
  # to the small index dtype once. Float or int32, it is exact: taps < 2**24.
  chain_dtype = x.dtype if dtypes.is_float(x.dtype) else np.int32
  # Built from a slice of x so that they carry x's sharding.
  like = taps[0]
  first = labels[geom.first_valid_tap()].astype(chain_dtype)[..., None]
  winner = jnp.zeros_like(like, dtype=chain_dtype) + first
  best = jnp.full_like(like, fill)
  check_nan = dtypes.is_float(x.dtype)
  for flat, value in enumerate(taps):
    take = better(value, best)
    if check_nan:
      take = take | jnp.isnan(value)
    winner = jnp.where(take, np.asarray(labels[flat], chain_dtype), winner)
    best = jnp.where(take, value, best)
  return best.astype(out_dtype), winner.astype(index_dtype)


def scatter_winners(
    cotangent: jax.Array, winner: jax.Array, geom: WindowGeometry
) -> jax.Array:
  """Routes every window's cotangent to the input cell at offset ``winner``.

  The backward pass of max/min pooling (windows' contributions to one cell
  are summed, earliest window first, as torch accumulates): one fused pass
  over the input through :func:`scatter_to_input`.
  """
  ct = dtypes.compute_dtype(cotangent.dtype)
  # The winner is padded once and sliced per block shift; the cotangent is
  # padded inside the fused pass (no temp; 10% faster for 3x3/2, while a
  # winner padded there makes the pass 3x slower).
  dx = scatter_to_input(
      lambda taps, win, g: jnp.where(win == taps.astype(win.dtype), g, 0),
      geom, (winner, cotangent.astype(ct)), (-1, 0), pad_once=(True, False),
  )
  return dx.astype(cotangent.dtype)


def _gather_winners(values: jax.Array, winner: jax.Array, geom: WindowGeometry):
  """Every window's element at row-major offset ``winner``: one fused chain
  of selects over the strided taps (padded taps, never winners, read 0)."""
  out = None
  for flat, tap in enumerate(window_taps(values, geom, 0)):
    hit = winner == np.asarray(flat, winner.dtype)
    out = jnp.where(hit, tap, 0) if out is None else jnp.where(hit, tap, out)
  return out


def _select_taps_linear(
    values: jax.Array, winner: jax.Array, geom: WindowGeometry
) -> jax.Array:
  """:func:`select_taps` written as the transpose of :func:`scatter_winners`
  (``jax.linear_transpose``), so that reverse mode, which transposes it back,
  runs the one-pass phase scatter. Evaluating it directly is slow on XLA:CPU
  (a masked copy of the input reduced over the phase axes): it only serves as
  a tangent map."""
  ct = dtypes.compute_dtype(values.dtype)
  like = jnp.zeros_like(winner, dtype=ct)  # only its type (and sharding) is read
  (out,) = jax.linear_transpose(
      lambda g: scatter_winners(g, winner, geom), like
  )(values.astype(ct))
  return out.astype(values.dtype)


@functools.partial(jax.custom_jvp, nondiff_argnums=(2,))
def select_taps(
    values: jax.Array, winner: jax.Array, geom: WindowGeometry
) -> jax.Array:
  """Gathers, for every window, the element at row-major offset ``winner``.

  Linear in ``values``. Its value is a fused select chain over the window
  taps; its derivative (the same gather of the tangent) is written as the
  transpose of :func:`scatter_winners`, so that reverse mode runs the
  one-pass phase scatter. Both modes differentiate it.
  """
  return _gather_winners(values, winner, geom)


@select_taps.defjvp
def _select_taps_jvp(geom, primals, tangents):
  (values, winner), (t, _) = primals, tangents
  return select_taps(values, winner, geom), _select_taps_linear(t, winner, geom)


@functools.partial(jax.custom_jvp, nondiff_argnums=(1, 2))
def _extremum_pool(x: jax.Array, geom: WindowGeometry, kind: _Kind):
  return _reduce_extremum(x, geom, kind)


@_extremum_pool.defjvp
def _extremum_pool_jvp(geom, kind, primals, tangents):
  (x,), (t,) = primals, tangents
  y, winner = extremum_and_winner(x, geom, kind)
  return y, _select_taps_linear(t, winner, geom)


def extremum_pool(x: jax.Array, geom: WindowGeometry, kind: _Kind) -> jax.Array:
  """Max (``kind='max'``) or min pooling of ``x`` over ``geom``'s windows."""
  if not dtypes.is_float(x.dtype):
    return _reduce_extremum(x, geom, kind)
  return _extremum_pool(x, geom, kind)


def _extremum(x, window_shape, strides, padding, dilation, ceil_mode, kind, op):
  x = dtypes.numeric_input(x, op)
  geom = window_geometry(
      x.shape, window_shape, strides, padding, dilation=dilation,
      ceil_mode=ceil_mode,
  )
  return extremum_pool(x, geom, kind)


def max_pool(
    x: jax.typing.ArrayLike,
    window_shape: Sequence[int],
    strides: int | Sequence[int] | None = None,
    padding: PaddingLike = "VALID",
    *,
    dilation: int | Sequence[int] | None = None,
    ceil_mode: bool = False,
) -> jax.Array:
  """Max pooling: ``y = max_{i in window} x_i`` per channel.

  Equal to ``torch.nn.functional.max_pool{1,2,3}d`` (values and gradients) on
  channels-last input. The gradient goes to the first maximum of each window
  in row-major window order (torch's tie rule); padding never wins; a NaN in a
  window gives NaN. Dilated windows are differentiable (JAX's built-in
  max-pool derivative refuses dilation). Forward- and reverse-mode derivatives
  both work.

  Args:
    x: input of shape ``(*batch, *spatial, features)``; float or integer
      (integers keep their dtype).
    window_shape: window size per spatial axis, e.g. ``(2, 2)``.
    strides: stride per axis (int or tuple). ``None`` means ``window_shape``
      (as torch and Keras; note that Flax's default is 1).
    padding: ``'VALID'``, ``'SAME'``, int, ints or ``(low, high)`` pairs.
      Explicit padding is at most half the dilated window.
    dilation: spacing between window taps (int or tuple), default 1.
    ceil_mode: round the output size up, dropping windows that would start in
      the right padding (torch semantics).

  Returns:
    Array of shape ``(*batch, *out_spatial, features)`` and ``x``'s dtype.

  Example:
    >>> import jax.numpy as jnp, jaxpool
    >>> x = jnp.arange(16.0).reshape(1, 4, 4, 1)
    >>> jaxpool.max_pool(x, (2, 2))[..., 0]
    Array([[[ 5.,  7.],
            [13., 15.]]], dtype=float32)
  """
  return _extremum(
      x, window_shape, strides, padding, dilation, ceil_mode, "max", "max_pool"
  )


def min_pool(
    x: jax.typing.ArrayLike,
    window_shape: Sequence[int],
    strides: int | Sequence[int] | None = None,
    padding: PaddingLike = "VALID",
    *,
    dilation: int | Sequence[int] | None = None,
    ceil_mode: bool = False,
) -> jax.Array:
  """Min pooling: ``y = min_{i in window} x_i`` per channel.

  The mirror of :func:`max_pool` (``min_pool(x) == -max_pool(-x)`` for
  floats): the gradient goes to the first minimum of each window, padding
  never wins, NaN propagates. Integers keep their dtype.

  Args:
    x: input of shape ``(*batch, *spatial, features)``.
    window_shape, strides, padding, dilation, ceil_mode: as in
      :func:`max_pool`.

  Returns:
    Array of shape ``(*batch, *out_spatial, features)`` and ``x``'s dtype.

  Example:
    >>> import jax.numpy as jnp, jaxpool
    >>> x = jnp.arange(16.0).reshape(1, 4, 4, 1)
    >>> jaxpool.min_pool(x, (2, 2))[..., 0]
    Array([[[ 0.,  2.],
            [ 8., 10.]]], dtype=float32)
  """
  return _extremum(
      x, window_shape, strides, padding, dilation, ceil_mode, "min", "min_pool"
  )


# ---------------------------------------------------------------------------
# Sum-based pooling: average and power-average.
# ---------------------------------------------------------------------------


def _sum_of_taps(x: jax.Array, geom: WindowGeometry) -> jax.Array:
  return functools.reduce(operator.add, window_taps(x, geom))


def scatter_window_sums(cotangent: jax.Array, geom: WindowGeometry) -> jax.Array:
  """Adds every window's cotangent onto each of its real cells.

  The transpose of :func:`window_sum` (the backward pass of sum and average
  pooling), in one fused pass over the input (:func:`scatter_to_input`).
  """
  return scatter_to_input(
      lambda taps, g: jnp.where(taps >= 0, g, 0), geom, (cotangent,), (0,),
      pad_once=(False,),  # padded inside the pass: no temp, and faster
  )


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def window_sum(x: jax.Array, geom: WindowGeometry) -> jax.Array:
  """Sum of every window (padding counts as zero).

  The sum is linear, so its derivative is the same map applied to the
  tangent; the two directions use the formulation XLA:CPU runs fastest:
  strided slices summed in one fused pass, over padding-free blocks of
  clipped windows when there is padding (padded cells add zero), for the
  value; the tangent map is written as the transpose of
  :func:`scatter_window_sums`, so that reverse mode (which transposes it
  back) runs the one-pass phase scatter.
  """
  return map_unpadded_blocks(_sum_of_taps, x, geom)


@window_sum.defjvp
def _window_sum_jvp(geom, primals, tangents):
  (x,), (t,) = primals, tangents
  y = window_sum(x, geom)
  # y stands for the cotangent's shape, dtype and sharding (only its type is
  # read).
  (dy,) = jax.linear_transpose(lambda g: scatter_window_sums(g, geom), y)(t)
  return y, dy


def avg_pool(
    x: jax.typing.ArrayLike,
    window_shape: Sequence[int],
    strides: int | Sequence[int] | None = None,
    padding: PaddingLike = "VALID",
    *,
    dilation: int | Sequence[int] | None = None,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor: int | None = None,
) -> jax.Array:
  """Average pooling: ``y = sum_{i in window} x_i / n`` per channel.

  Equal to ``torch.nn.functional.avg_pool{1,2,3}d`` on channels-last input.
  The divisor ``n`` is ``divisor`` when given (torch's ``divisor_override``),
  else the number of window cells inside the padded input
  (``count_include_pad=True``, torch's and Flax's default) or inside the
  unpadded input (``count_include_pad=False``). Cells a ceil-mode window hangs
  past the padded input are never counted, as in torch. Padded cells are zero.

  Args:
    x: floating-point input of shape ``(*batch, *spatial, features)``
      (float16/bfloat16 are summed in float32 and cast back).
    window_shape, strides, padding, dilation, ceil_mode: as in
      :func:`max_pool` (torch has no dilated average pooling; here it works).
    count_include_pad: whether explicit padding counts in the divisor.
    divisor: a fixed positive divisor for every window.

  Returns:
    Array of shape ``(*batch, *out_spatial, features)`` and ``x``'s dtype.

  Example:
    >>> import jax.numpy as jnp, jaxpool
    >>> x = jnp.arange(16.0).reshape(1, 4, 4, 1)
    >>> jaxpool.avg_pool(x, (2, 2))[..., 0]
    Array([[[ 2.5,  4.5],
            [10.5, 12.5]]], dtype=float32)
  """
  x = dtypes.float_input(x, "avg_pool")
  geom = window_geometry(
      x.shape, window_shape, strides, padding, dilation=dilation,
      ceil_mode=ceil_mode,
  )
  if divisor is not None:
    if isinstance(divisor, bool) or not isinstance(divisor, (int, np.integer)):
      raise TypeError(f"divisor must be a positive int or None; got {divisor!r}.")
    if divisor <= 0:
      raise ValueError(f"divisor must be a positive int or None; got {divisor!r}.")
  ct = dtypes.compute_dtype(x.dtype)
  total = window_sum(x.astype(ct), geom)
  if divisor is not None:
    counts = np.asarray(divisor)
  else:
    counts = geom.window_counts(include_pad=bool(count_include_pad))[..., None]
  return (total / counts.astype(ct)).astype(x.dtype)


def _spatial_abs_max(x: jax.Array, num_spatial: int) -> jax.Array:
  axes = spatial_axes(x.ndim, num_spatial, "window_shape", x.shape)
  return jnp.max(jnp.abs(x), axis=axes, keepdims=True)


def lp_pool(
    x: jax.typing.ArrayLike,
    window_shape: Sequence[int],
    strides: int | Sequence[int] | None = None,
    padding: PaddingLike = "VALID",
    *,
    p: float,
    dilation: int | Sequence[int] | None = None,
    ceil_mode: bool = False,
) -> jax.Array:
  """Power-average (LP) pooling: ``y = (sum_{i in window} |x_i|^p)^(1/p)``.

  For non-negative input and windows that lie inside the input this equals
  ``torch.nn.functional.lp_pool{1,2,3}d(x, p, ...)``, which computes
  ``(avg_pool(x**p) * k)^(1/p)``. jaxpool deliberately differs in two places:

  * it uses ``|x|^p``: torch's ``x**p`` gives NaN for negative input with
    non-integer ``p`` or a negative window sum (pytorch#184037);
  * a ceil-mode window that hangs past the input sums its real cells only;
    torch divides by the clipped count and multiplies by the full window size,
    scaling such partial windows up.

  Padded cells count as zero. Numerics: the input is scaled by its per-channel
  maximum magnitude (a constant for the derivative), so ``|x|^p`` cannot
  overflow; the output and gradient are finite for every finite input, and the
  gradient of a window whose sum is zero is zero (as torch).

  Args:
    x: floating-point input of shape ``(*batch, *spatial, features)``.
    window_shape, strides, padding, dilation, ceil_mode: as in
      :func:`max_pool`.
    p: the power, a positive finite number (``p=1`` is sum pooling of
      ``|x|``; large ``p`` approaches max pooling of ``|x|``).

  Returns:
    Array of shape ``(*batch, *out_spatial, features)`` and ``x``'s dtype.

  Example:
    >>> import jax.numpy as jnp, jaxpool
    >>> x = jnp.array([3.0, -4.0]).reshape(2, 1)
    >>> jaxpool.lp_pool(x, (2,), p=2)
    Array([[5.]], dtype=float32)
  """
  x = dtypes.float_input(x, "lp_pool")
  if (
      isinstance(p, bool)
      or not isinstance(p, (int, float, np.integer, np.floating))
      or not np.isfinite(p)
      or p <= 0
  ):
    raise ValueError(
        f"p must be a positive finite number; got p={p!r}. (For p=inf use"
        " max_pool of |x|.)"
    )
  geom = window_geometry(
      x.shape, window_shape, strides, padding, dilation=dilation,
      ceil_mode=ceil_mode,
  )
  ct = dtypes.compute_dtype(x.dtype)
  xc = x.astype(ct)
  scale = lax.stop_gradient(_spatial_abs_max(xc, geom.num_spatial))
  scale = jnp.where(scale > 0, scale, jnp.ones_like(scale))
  magnitude = jnp.abs(xc) / scale
  positive = magnitude > 0
  safe = jnp.where(positive, magnitude, jnp.ones_like(magnitude))
  powered = jnp.where(positive, safe ** float(p), jnp.zeros_like(safe))
  total = window_sum(powered, geom)
  nonzero = total > 0
  safe_total = jnp.where(nonzero, total, jnp.ones_like(total))
  root = jnp.where(nonzero, safe_total ** (1.0 / float(p)), jnp.zeros_like(total))
  return (root * scale).astype(x.dtype)


# ---------------------------------------------------------------------------
# Median pooling: sort the window taps.
# ---------------------------------------------------------------------------


def median_pool(
    x: jax.typing.ArrayLike,
    window_shape: Sequence[int],
    strides: int | Sequence[int] | None = None,
    padding: PaddingLike = "VALID",
    *,
    dilation: int | Sequence[int] | None = None,
    ceil_mode: bool = False,
    even: Literal["lower", "mean"] = "lower",
) -> jax.Array:
  """Median pooling: the median of the real cells of each window.

  Padded cells are excluded (a border window takes the median of the cells it
  covers; kornia's ``median_blur`` zero-pads instead). A window with an even
  number ``n`` of cells has two middle values; ``even='lower'`` (default) takes
  the lower one, like ``torch.median``, so the result is always an input
  element and integer inputs keep their dtype; ``even='mean'`` averages them,
  like ``numpy.median``. A NaN in a window gives NaN. The gradient goes to the
  selected element (half to each for ``'mean'``).

  Args:
    x: input of shape ``(*batch, *spatial, features)``; floating point, or
      integer with ``even='lower'``.
    window_shape, strides, padding, dilation, ceil_mode: as in
      :func:`max_pool`.
    even: rule for windows with an even number of cells, ``'lower'`` or
      ``'mean'``.

  Returns:
    Array of shape ``(*batch, *out_spatial, features)`` and ``x``'s dtype.

  Example:
    >>> import jax.numpy as jnp, jaxpool
    >>> x = jnp.array([1.0, 9.0, 2.0, 4.0, 3.0, 8.0]).reshape(6, 1)
    >>> jaxpool.median_pool(x, (3,))[:, 0]
    Array([2., 4.], dtype=float32)
  """
  if even not in ("lower", "mean"):
    raise ValueError(f"even must be 'lower' or 'mean'; got {even!r}.")
  if even == "mean":
    x = dtypes.float_input(x, "median_pool(even='mean')")
  else:
    x = dtypes.numeric_input(x, "median_pool")
  geom = window_geometry(
      x.shape, window_shape, strides, padding, dilation=dilation,
      ceil_mode=ceil_mode,
  )
  # Padding sorts last (+inf / integer max), after every real cell but NaN.
  taps = window_taps(x, geom, dtypes.highest(x.dtype))
  stacked = jnp.stack(taps, axis=-1)
  ordered = jnp.sort(lax.stop_gradient(stacked), axis=-1)
  count = geom.window_counts(include_pad=False)[..., None, None]

  def order_statistic(rank: np.ndarray) -> jax.Array:
    """The rank-th smallest real cell; its derivative reaches that cell."""
    index = jnp.zeros_like(ordered[..., :1], dtype=jnp.int32) + rank.astype(
        np.int32
    )
    value = jnp.take_along_axis(ordered, index, axis=-1)[..., 0]
    # Differentiate through the first tap holding the value rather than
    # through the sort (cheaper, and sort's derivative breaks explicit
    # sharding): adds exactly zero to the value.
    found = jnp.zeros_like(value, dtype=bool)
    for tap in taps:
      hit = (tap == value) & ~found
      value = value + jnp.where(hit, tap - lax.stop_gradient(tap), 0)
      found = found | hit
    return value

  lower = order_statistic((count - 1) // 2)
  if even == "lower":
    result = lower
  else:
    ct = dtypes.compute_dtype(x.dtype)
    upper = order_statistic(count // 2)
    result = ((lower.astype(ct) + upper.astype(ct)) * 0.5).astype(x.dtype)
  if dtypes.is_float(x.dtype):
    result = jnp.where(
        jnp.any(jnp.isnan(stacked), axis=-1), jnp.nan, result
    )
  return result


# ---------------------------------------------------------------------------
# Average and max together.
# ---------------------------------------------------------------------------


def avg_max_pool(
    x: jax.typing.ArrayLike,
    window_shape: Sequence[int],
    strides: int | Sequence[int] | None = None,
    padding: PaddingLike = "VALID",
    *,
    dilation: int | Sequence[int] | None = None,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    combine: Literal["add", "mean", "concat"] = "add",
) -> jax.Array:
  """Average and max pooling of the same windows, combined.

  * ``combine='add'``: ``avg_pool(x) + max_pool(x)`` (as in CBAM-style
    attention blocks);
  * ``combine='mean'``: ``(avg_pool(x) + max_pool(x)) / 2`` (timm's
    ``avgmax``);
  * ``combine='concat'``: ``concatenate([avg, max], axis=-1)``, so the
    feature axis doubles (timm's ``catavgmax``).

  Args:
    x: floating-point input of shape ``(*batch, *spatial, features)``.
    window_shape, strides, padding, dilation, ceil_mode: as in
      :func:`max_pool`.
    count_include_pad: passed to :func:`avg_pool`.
    combine: ``'add'``, ``'mean'`` or ``'concat'``.

  Returns:
    Array of shape ``(*batch, *out_spatial, features)`` (``2 * features`` for
    ``'concat'``) and ``x``'s dtype.

  Example:
    >>> import jax.numpy as jnp, jaxpool
    >>> x = jnp.array([1.0, 3.0]).reshape(2, 1)
    >>> jaxpool.avg_max_pool(x, (2,), combine="concat")
    Array([[2., 3.]], dtype=float32)
  """
  if combine not in ("add", "mean", "concat"):
    raise ValueError(
        f"combine must be 'add', 'mean' or 'concat'; got {combine!r}."
    )
  x = dtypes.float_input(x, "avg_max_pool")
  window = dict(
      window_shape=window_shape, strides=strides, padding=padding,
      dilation=dilation, ceil_mode=ceil_mode,
  )
  avg = avg_pool(x, count_include_pad=count_include_pad, **window)
  top = max_pool(x, **window)
  if combine == "concat":
    return jnp.concatenate([avg, top], axis=-1)
  ct = dtypes.compute_dtype(x.dtype)
  total = avg.astype(ct) + top.astype(ct)
  if combine == "mean":
    total = total * 0.5
  return total.astype(x.dtype)
