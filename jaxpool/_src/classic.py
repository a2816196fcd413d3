"""Classic sliding-window pooling: max, min, average, power-average, median.

All operators take ``x`` of shape ``(*batch, *spatial, features)`` and the
window arguments of `jaxpool._src.core.geometry.window_geometry` (torch
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

from jaxpool._src.core import dtypes
from jaxpool._src.core.backend import fence
from jaxpool._src.core.checks import check_bool, check_choice
from jaxpool._src.core.eager import compiled_when_eager
from jaxpool._src.core.geometry import PaddingLike, WindowGeometry, window_geometry
from jaxpool._src.core.options import register_option_check
from jaxpool._src.core.reductions import (
  extremum_pool,
  select_taps,
  tap_index_dtype,
  window_sum,
)
from jaxpool._src.core.scatter import phase_view, scatter_to_input
from jaxpool._src.core.sorting import order_statistics
from jaxpool._src.core.taps import window_taps

__all__ = [
  "max_pool",
  "min_pool",
  "avg_pool",
  "lp_pool",
  "median_pool",
  "avg_max_pool",
]


# ---------------------------------------------------------------------------
# Max / min pooling.
# ---------------------------------------------------------------------------


def _extremum(x, window_shape, strides, padding, dilation, ceil_mode, kind, op):
  x = dtypes.numeric_input(x, op)
  geom = window_geometry(
    x.shape,
    window_shape,
    strides,
    padding,
    dilation=dilation,
    ceil_mode=ceil_mode,
  )
  return extremum_pool(x, geom, kind)


@compiled_when_eager()
def max_pool(
  x: jax.typing.ArrayLike,
  window_shape: Sequence[int],
  strides: int | Sequence[int] | None = None,
  padding: PaddingLike = "VALID",
  *,
  dilation: int | Sequence[int] | None = None,
  ceil_mode: bool = False,
) -> jax.Array:
  r"""Max pooling: $y = \max_{i \in R} x_i$ per window $R$ and channel.

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

  Examples:
    >>> import jax.numpy as jnp, jaxpool
    >>> x = jnp.arange(16.0).reshape(1, 4, 4, 1)
    >>> jaxpool.max_pool(x, (2, 2))[..., 0]
    Array([[[ 5.,  7.],
            [13., 15.]]], dtype=float32)
  """
  return _extremum(x, window_shape, strides, padding, dilation, ceil_mode, "max", "max_pool")


@compiled_when_eager()
def min_pool(
  x: jax.typing.ArrayLike,
  window_shape: Sequence[int],
  strides: int | Sequence[int] | None = None,
  padding: PaddingLike = "VALID",
  *,
  dilation: int | Sequence[int] | None = None,
  ceil_mode: bool = False,
) -> jax.Array:
  r"""Min pooling: $y = \min_{i \in R} x_i$ per window $R$ and channel.

  The mirror of [`max_pool`][jaxpool.max_pool] (``min_pool(x) == -max_pool(-x)`` for
  floats): the gradient goes to the first minimum of each window, padding
  never wins, NaN propagates. Integers keep their dtype.

  Args:
    x: input of shape ``(*batch, *spatial, features)``.
    window_shape: window size per spatial axis, e.g. ``(2, 2)``.
    strides: step per spatial axis (int or tuple); ``None`` (default) means
      ``window_shape``, as in torch.
    padding: ``'VALID'`` (default), ``'SAME'``, an int, ints or ``(low, high)``
      pairs, as in [`max_pool`][jaxpool.max_pool].
    dilation: spacing between window taps (int or tuple); ``None`` (default)
      means 1.
    ceil_mode: round the output size up, as torch's ``ceil_mode`` (default
      ``False``).

  Returns:
    Array of shape ``(*batch, *out_spatial, features)`` and ``x``'s dtype.

  Examples:
    >>> import jax.numpy as jnp, jaxpool
    >>> x = jnp.arange(16.0).reshape(1, 4, 4, 1)
    >>> jaxpool.min_pool(x, (2, 2))[..., 0]
    Array([[[ 0.,  2.],
            [ 8., 10.]]], dtype=float32)
  """
  return _extremum(x, window_shape, strides, padding, dilation, ceil_mode, "min", "min_pool")


# ---------------------------------------------------------------------------
# Sum-based pooling: average and power-average.
# ---------------------------------------------------------------------------


# ---------------------------------------------------------------------------
# Sum-based pooling: average and power-average.
# ---------------------------------------------------------------------------


@compiled_when_eager()
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
  r"""Average pooling: $y = \frac{1}{n} \sum_{i \in R} x_i$ per window $R$ and channel.

  Equal to ``torch.nn.functional.avg_pool{1,2,3}d`` on channels-last input.
  The divisor $n$ is ``divisor`` when given (torch's ``divisor_override``),
  else the number of window cells inside the padded input
  (``count_include_pad=True``, torch's and Flax's default) or inside the
  unpadded input (``count_include_pad=False``). Cells a ceil-mode window hangs
  past the padded input are never counted, as in torch. Padded cells are zero.

  Args:
    x: floating-point input of shape ``(*batch, *spatial, features)``
      (float16/bfloat16 are summed in float32 and cast back).
    window_shape: window size per spatial axis, e.g. ``(2, 2)``.
    strides: step per spatial axis (int or tuple); ``None`` (default) means
      ``window_shape``, as in torch.
    padding: ``'VALID'`` (default), ``'SAME'``, an int, ints or ``(low, high)``
      pairs, as in [`max_pool`][jaxpool.max_pool].
    dilation: spacing between window taps (int or tuple); ``None`` (default)
      means 1 (torch has no dilated average pooling; here it works).
    ceil_mode: round the output size up, as torch's ``ceil_mode`` (default
      ``False``).
    count_include_pad: whether explicit padding counts in the divisor.
    divisor: a fixed positive divisor for every window.

  Returns:
    Array of shape ``(*batch, *out_spatial, features)`` and ``x``'s dtype.

  Examples:
    >>> import jax.numpy as jnp, jaxpool
    >>> x = jnp.arange(16.0).reshape(1, 4, 4, 1)
    >>> jaxpool.avg_pool(x, (2, 2))[..., 0]
    Array([[[ 2.5,  4.5],
            [10.5, 12.5]]], dtype=float32)
  """
  x = dtypes.float_input(x, "avg_pool")
  count_include_pad = _avg_options(count_include_pad)
  geom = window_geometry(
    x.shape,
    window_shape,
    strides,
    padding,
    dilation=dilation,
    ceil_mode=ceil_mode,
  )
  if divisor is not None:
    if isinstance(divisor, bool) or not isinstance(divisor, (int, np.integer)):
      raise TypeError(f"divisor must be a positive int or None; got {divisor!r}.")
    if divisor <= 0:
      raise ValueError(f"divisor must be a positive int or None; got {divisor!r}.")
  compute_dtype = dtypes.compute_dtype(x.dtype)
  total = window_sum(x.astype(compute_dtype), geom)
  if divisor is not None:
    counts = np.asarray(divisor)
  else:
    counts = geom.window_counts(include_pad=count_include_pad)[..., None]
  return (total / counts.astype(compute_dtype)).astype(x.dtype)


def _lp_value(x: jax.Array, geom: WindowGeometry, p: float) -> jax.Array:
  """``m * (sum_i (|x_i| / m)^p)^(1/p)`` with ``m`` each window's max ``|x_i|``.

  Scaling by the window's own maximum keeps ``|x_i / m|^p`` in ``[0, 1]``
  with the largest term 1 (to an ulp), so nothing overflows and a term
  underflows only when it is negligible against that 1; and a value reaches
  only the windows that contain it. A window holding ``inf`` gives ``inf``,
  one holding NaN gives NaN.
  """
  taps = window_taps(jnp.abs(x), geom, 0)  # padded cells are zero
  m = functools.reduce(lax.max, taps)
  safe = jnp.where((m > 0) & (m < jnp.inf), m, jnp.ones_like(m))
  # One division per window: a per-tap division is an "expensive" op XLA
  # will not fuse into the sum, so it would keep every divided tap in memory.
  # The clamp keeps 1/m finite for a subnormal m.
  inverse = jnp.minimum(1.0 / safe, jnp.finfo(safe.dtype).max)
  total = sum(jnp.power(tap * inverse, p) for tap in taps)
  y = jnp.power(total, 1.0 / p) / inverse
  y = jnp.where(m == 0, jnp.zeros_like(y), y)
  return jnp.where(m == jnp.inf, m, y)


def _lp_scatter(x: jax.Array, y: jax.Array, geom: WindowGeometry, p: float, g):
  """``dx_i = sum_o g_o sign(x_i) (|x_i| / y_o)^(p - 1)`` over the windows
  ``o`` holding cell ``i``: the transpose of ``lp_pool``'s tangent map, one
  phase-layout pass (a zero cell or an all-zero window contributes 0)."""
  view = phase_view(x, geom)

  def contribution(taps, g, y):
    ratio = jnp.abs(view) / jnp.where(y > 0, y, jnp.ones_like(y))
    power = jnp.power(jnp.where(ratio > 0, ratio, jnp.ones_like(ratio)), p - 1.0)
    term = g * jnp.sign(view) * power
    return jnp.where((taps >= 0) & (ratio > 0) & (y > 0), term, 0.0)

  return scatter_to_input(contribution, geom, (g, y), (0.0, 1.0), pad_once=(False, False))


@functools.partial(jax.custom_jvp, nondiff_argnums=(1, 2))
def _lp(x: jax.Array, geom: WindowGeometry, p: float) -> jax.Array:
  return _lp_value(x, geom, p)


@_lp.defjvp
def _lp_jvp(geom, p, primals, tangents):
  # dy_o/dx_i = sign(x_i) (|x_i| / y_o)^(p - 1). The tangent map is written
  # as the transpose of the scatter, so reverse mode runs the phase scatter.
  (x,), (t,) = primals, tangents
  y = _lp(x, geom, p)
  (dy,) = jax.linear_transpose(lambda g: _lp_scatter(x, y, geom, p, g), y)(t)
  return y, dy


@compiled_when_eager()
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
  r"""Power-average (LP) pooling: $y = (\sum_{i \in R} \lvert x_i \rvert^p)^{1/p}$ per window $R$.

  For non-negative input and windows that lie inside the input this equals
  ``torch.nn.functional.lp_pool{1,2,3}d(x, p, ...)``, which computes
  ``(avg_pool(x**p) * k) ** (1 / p)``. jaxpool deliberately differs in two
  places:

  * it uses $\lvert x \rvert^p$: torch's ``x**p`` gives NaN for negative
    input with non-integer ``p`` or a negative window sum (pytorch#184037);
  * a ceil-mode window that hangs past the input sums its real cells only;
    torch divides by the clipped count and multiplies by the full window size,
    scaling such partial windows up.

  Padded cells count as zero. Numerics: every window is scaled by its own
  largest $\lvert x_i \rvert$ ($y = m (\sum_i \lvert x_i / m \rvert^p)^{1/p}$),
  so $\lvert x \rvert^p$ cannot overflow or underflow to a wrong answer, and a
  value reaches only the windows that contain it; the output and gradient are
  finite for every finite input, a window holding ``inf`` gives ``inf`` and
  one holding NaN gives NaN. The gradient,
  $\operatorname{sign}(x_i) (\lvert x_i \rvert / y)^{p - 1}$, is zero for a
  window whose sum is zero (as torch) and at $x_i = 0$.

  Args:
    x: floating-point input of shape ``(*batch, *spatial, features)``.
    window_shape: window size per spatial axis, e.g. ``(2, 2)``.
    strides: step per spatial axis (int or tuple); ``None`` (default) means
      ``window_shape``, as in torch.
    padding: ``'VALID'`` (default), ``'SAME'``, an int, ints or ``(low, high)``
      pairs, as in [`max_pool`][jaxpool.max_pool].
    dilation: spacing between window taps (int or tuple); ``None`` (default)
      means 1.
    ceil_mode: round the output size up, as torch's ``ceil_mode`` (default
      ``False``).
    p: the power, a positive finite number (``p=1`` is sum pooling of
      $\lvert x \rvert$; large ``p`` approaches max pooling of $\lvert x \rvert$).

  Returns:
    Array of shape ``(*batch, *out_spatial, features)`` and ``x``'s dtype.

  Examples:
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
      f"p must be a positive finite number; got p={p!r}. (For p=inf use max_pool of |x|.)"
    )
  geom = window_geometry(
    x.shape,
    window_shape,
    strides,
    padding,
    dilation=dilation,
    ceil_mode=ceil_mode,
  )
  compute_dtype = dtypes.compute_dtype(x.dtype)
  return _lp(x.astype(compute_dtype), geom, float(p)).astype(x.dtype)


# ---------------------------------------------------------------------------
# Median pooling: sort the window taps.
# ---------------------------------------------------------------------------


@compiled_when_eager()
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
    window_shape: window size per spatial axis, e.g. ``(2, 2)``.
    strides: step per spatial axis (int or tuple); ``None`` (default) means
      ``window_shape``, as in torch.
    padding: ``'VALID'`` (default), ``'SAME'``, an int, ints or ``(low, high)``
      pairs, as in [`max_pool`][jaxpool.max_pool].
    dilation: spacing between window taps (int or tuple); ``None`` (default)
      means 1.
    ceil_mode: round the output size up, as torch's ``ceil_mode`` (default
      ``False``).
    even: rule for windows with an even number of cells, ``'lower'`` or
      ``'mean'``.

  Returns:
    Array of shape ``(*batch, *out_spatial, features)`` and ``x``'s dtype.

  Examples:
    >>> import jax.numpy as jnp, jaxpool
    >>> x = jnp.array([1.0, 9.0, 2.0, 4.0, 3.0, 8.0]).reshape(6, 1)
    >>> jaxpool.median_pool(x, (3,))[:, 0]
    Array([2., 4.], dtype=float32)
  """
  _median_options(even)
  if even == "mean":
    x = dtypes.float_input(x, "median_pool(even='mean')")
  else:
    x = dtypes.numeric_input(x, "median_pool")
  geom = window_geometry(
    x.shape,
    window_shape,
    strides,
    padding,
    dilation=dilation,
    ceil_mode=ceil_mode,
  )
  # Padding sorts last (+inf / integer max), after every real cell.
  taps = window_taps(x, geom, dtypes.highest(x.dtype))
  count = geom.window_counts(include_pad=False)[..., None]
  lower = _order_statistic(x, taps, geom, (count - 1) // 2)
  if even == "lower":
    result = lower
  else:
    compute_dtype = dtypes.compute_dtype(x.dtype)
    upper = _order_statistic(x, taps, geom, count // 2)
    result = ((lower.astype(compute_dtype) + upper.astype(compute_dtype)) * 0.5).astype(x.dtype)
  if dtypes.is_float(x.dtype):
    has_nan = functools.reduce(operator.or_, [jnp.isnan(tap) for tap in taps])
    result = jnp.where(has_nan, jnp.nan, result)
  return result


# Windows of at most this many taps take their order statistic from a
# sorting network (a fused chain of min/max); larger ones from a sort of the
# stacked taps: at 9x9 the network took 0.1 s fwd+bwd where the sort took
# 10 s, at 13x13 2.6 s (23 s to compile); see docs/architecture.md "Median".
MEDIAN_NETWORK_MAX_TAPS = 169


def _order_statistic(
  x: jax.Array, taps: list[jax.Array], geom: WindowGeometry, rank: np.ndarray
) -> jax.Array:
  """Every window's ``rank``-th smallest cell (``rank`` per window, shape
  ``out_shape + (1,)``); its derivative reaches the first tap holding it."""
  frozen = [lax.stop_gradient(tap) for tap in taps]
  wanted = np.unique(rank)
  if geom.window_size <= MEDIAN_NETWORK_MAX_TAPS:
    by_rank = order_statistics(frozen, wanted)
    value = by_rank[int(wanted[0])]
    for r in wanted[1:]:
      value = jnp.where(rank == r, by_rank[int(r)], value)
  else:
    ordered = jnp.sort(jnp.stack(frozen, axis=-1), axis=-1)
    index = jnp.zeros(ordered.shape[:-1] + (1,), jnp.int32) + rank[..., None].astype(np.int32)
    value = jnp.take_along_axis(ordered, index, axis=-1)[..., 0]
  if not dtypes.is_float(x.dtype):
    return value
  # The derivative is the gather of the first real tap equal to the value,
  # through select_taps' one-pass scatter (an all-NaN window finds none; its
  # NaN output is set by the caller). The tap index is tracked in float32
  # (exact below 2**24) so that it can be fenced: fused into the scatter,
  # the network would run once per tap.
  winner = jnp.zeros(value.shape, jnp.float32)
  for flat, (tap, mask) in reversed(list(enumerate(zip(frozen, geom.tap_masks())))):
    hit = tap == value if mask is None else (tap == value) & mask
    winner = jnp.where(hit, np.float32(flat), winner)
  return select_taps(x, fence(winner).astype(tap_index_dtype(geom)), geom)


# ---------------------------------------------------------------------------
# Average and max together.
# ---------------------------------------------------------------------------


@compiled_when_eager()
def avg_max_pool(
  x: jax.typing.ArrayLike,
  window_shape: Sequence[int],
  strides: int | Sequence[int] | None = None,
  padding: PaddingLike = "VALID",
  *,
  dilation: int | Sequence[int] | None = None,
  ceil_mode: bool = False,
  count_include_pad: bool = True,
  combine: Literal["add", "sum", "concat"] = "add",
) -> jax.Array:
  """Average and max pooling of the same windows, combined.

  * ``combine='add'`` (default): ``0.5 * (avg_pool(x) + max_pool(x))``, timm's
    ``avgmax`` pooling;
  * ``combine='concat'``: ``concatenate([avg, max], axis=-1)``, so the
    feature axis doubles (timm's ``catavgmax``);
  * ``combine='sum'``: the plain sum ``avg_pool(x) + max_pool(x)`` (as in
    CBAM-style attention blocks).

  Args:
    x: floating-point input of shape ``(*batch, *spatial, features)``.
    window_shape: window size per spatial axis, e.g. ``(2, 2)``.
    strides: step per spatial axis (int or tuple); ``None`` (default) means
      ``window_shape``, as in torch.
    padding: ``'VALID'`` (default), ``'SAME'``, an int, ints or ``(low, high)``
      pairs, as in [`max_pool`][jaxpool.max_pool].
    dilation: spacing between window taps (int or tuple); ``None`` (default)
      means 1.
    ceil_mode: round the output size up, as torch's ``ceil_mode`` (default
      ``False``).
    count_include_pad: passed to [`avg_pool`][jaxpool.avg_pool].
    combine: ``'add'``, ``'concat'`` or ``'sum'``.

  Returns:
    Array of shape ``(*batch, *out_spatial, features)`` (``2 * features`` for
      ``'concat'``) and ``x``'s dtype.

  Examples:
    >>> import jax.numpy as jnp, jaxpool
    >>> x = jnp.array([1.0, 3.0]).reshape(2, 1)
    >>> jaxpool.avg_max_pool(x, (2,), combine="concat")
    Array([[2., 3.]], dtype=float32)
  """
  _avg_max_options(combine, count_include_pad)
  x = dtypes.float_input(x, "avg_max_pool")
  window = dict(
    window_shape=window_shape,
    strides=strides,
    padding=padding,
    dilation=dilation,
    ceil_mode=ceil_mode,
  )
  avg = avg_pool(x, count_include_pad=count_include_pad, **window)
  top = max_pool(x, **window)
  if combine == "concat":
    return jnp.concatenate([avg, top], axis=-1)
  compute_dtype = dtypes.compute_dtype(x.dtype)
  total = avg.astype(compute_dtype) + top.astype(compute_dtype)
  if combine == "add":
    total = total * 0.5
  return total.astype(x.dtype)


# Option checks shared by the functions and their layers' constructors.


def _avg_options(count_include_pad, **_) -> bool:
  return check_bool("count_include_pad", count_include_pad)


def _median_options(even, **_) -> None:
  check_choice("even", even, ("lower", "mean"))


def _avg_max_options(combine, count_include_pad, **_) -> None:
  check_choice("combine", combine, ("add", "concat", "sum"))
  _avg_options(count_include_pad)


register_option_check(avg_pool, _avg_options)
register_option_check(median_pool, _median_options)
register_option_check(avg_max_pool, _avg_max_options)
