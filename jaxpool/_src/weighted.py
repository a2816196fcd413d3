"""Weighted-window pooling: SoftPool, LIP and DPP.

Each output is a weighted mean of its window, ``y = sum_i w_i x_i / sum_i w_i``,
with weights from the input itself (SoftPool), from learned logits (LIP) or
from a learned reward of the deviation from a local reference (DPP). Padded
cells get zero weight.

The exponential weights of SoftPool and LIP subtract the window maximum of the
logits (a constant for the derivative), so they stay finite for any finite
input. Their derivatives are hand-written VJPs that recompute the weights from
the input in the backward pass instead of storing them: no per-tap tensor is
ever materialised (the backward recomputes each tap's weight from a saved
per-window log-normalizer).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

from jaxpool._src.core import dtypes
from jaxpool._src.core.backend import choose
from jaxpool._src.core.checks import (
    check_choice,
    check_number_array,
    check_positive_number,
)
from jaxpool._src.core.geometry import PaddingLike, WindowGeometry, window_geometry
from jaxpool._src.core.reductions import (
    reduce_windows,
    reduce_windows_holding,
    window_sum,
)
from jaxpool._src.core.scatter import phase_view, scatter_to_input
from jaxpool._src.core.taps import window_taps

__all__ = ["soft_pool", "lip_pool", "dpp_pool"]


def _window_max(logit_taps, masks):
  shift = None
  for logit, mask in zip(logit_taps, masks):
    value = logit if mask is None else jnp.where(mask, logit, -jnp.inf)
    shift = value if shift is None else jnp.maximum(shift, value)
  return shift


def _weight(logit, normalizer, mask):
  """``exp(l_i - normalizer)`` of one tap, zero on padding."""
  weight = jnp.exp(logit - normalizer)
  return weight if mask is None else jnp.where(mask, weight, 0.0)


def _finite_logits(x, logits):
  """``(values, logits)`` with the softmax's infinite limits made finite.

  Logits are clipped to the finite range: ``+inf`` cells then share the
  weight of their window (the limit) and ``-inf`` ones get weight 0 beside
  any larger logit, with no ``inf - inf``. A ``-inf``-logit cell's value is
  read as 0, so an infinite value there adds ``0``, not ``0 * inf = NaN``.
  Windows whose logits are all ``-inf`` are set apart by the caller.
  """
  big = jnp.finfo(logits.dtype).max
  values = jnp.where(logits == -jnp.inf, 0.0, x)
  return values, jnp.clip(logits, -big, big)


def _forward_by_taps(x, logits, geom):
  """``(y, log sum exp l)`` per window; SoftPool when ``logits`` is None.

  ``y = c + sum_i (x_i - c) w_i`` with ``c`` the window maximum of ``x`` (for
  LIP 0 when infinite): equal to ``sum_i x_i w_i`` since the weights sum to
  one, but the rounding of the float32 log-normaliser (an ulp is 1e-3 at 1e4)
  then only scales the deviations from ``c``, not ``|x|`` itself.

  Infinite inputs give the limit. LIP (:func:`_finite_logits`): ``+inf``
  logits take all the weight, ``-inf`` logits none, and a window of only
  ``-inf`` logits (whose limit depends on how they diverge) is weighted
  uniformly. SoftPool (``l = x``): a ``-inf`` cell has weight 0 and adds 0 (its
  deviation is clamped to the float range, so no ``0 * -inf``), a window
  holding ``+inf`` gives ``+inf`` and one of only ``-inf`` gives ``-inf``.

  The weights are exponentiated twice (once for the normaliser, once for
  ``y``) on purpose: sharing them between two sums makes XLA materialise one
  output-sized buffer per tap, which costs more than the extra exponentials.
  """
  soft, raw_x = logits is None, x
  if soft:
    logits = x
  else:
    x, logits = _finite_logits(x, logits)
  masks = geom.tap_masks()
  logit_taps = window_taps(logits, geom)
  x_taps = logit_taps if soft else window_taps(x, geom)
  shift = _window_max(logit_taps, masks)
  total = None
  for logit, mask in zip(logit_taps, masks):
    weight = _weight(logit, shift, mask)
    total = weight if total is None else total + weight
  # Materialise the per-window normaliser and centre: left to itself, XLA
  # fuses them into every tap's term below (O(taps^2) exponentials). LIP
  # also keeps the shift: its clipped +inf logits sit at the top of the float
  # range, where adding log(total) would round away.
  if soft:
    normalizer, center = jax.lax.optimization_barrier(
        (shift + jnp.log(total), _window_max(x_taps, masks))
    )
  else:
    shift, log_total, center = jax.lax.optimization_barrier(
        (shift, jnp.log(total), _window_max(x_taps, masks))
    )
    normalizer = shift + log_total
  infinite = center
  if not soft:  # SoftPool's infinite windows are set below
    center = jnp.where(jnp.isinf(center), 0.0, center)
  center = jax.lax.stop_gradient(center)
  lowest = -jnp.finfo(center.dtype).max
  y = center
  for value, logit, mask in zip(x_taps, logit_taps, masks):
    deviation = value - center
    if soft:  # a -inf cell has weight 0: its term is 0, not 0 * -inf
      deviation = jnp.maximum(deviation, lowest)
      weight = _weight(logit, normalizer, mask)
    else:  # (l - shift) - log(total) at the top of the range, else as SoftPool
      at_top = (logit - shift) - log_total
      weight = jnp.exp(jnp.where(shift == -lowest, at_top, logit - normalizer))
      weight = weight if mask is None else jnp.where(mask, weight, 0.0)
    if mask is not None:
      deviation = jnp.where(mask, deviation, 0.0)
    y = y + deviation * weight
  if soft:  # +inf in the window (or only -inf): that infinity
    y = jnp.where(jnp.isinf(infinite), infinite, y)
  else:  # all logits -inf (clipped to the bottom of the range): the mean
    counts = geom.window_counts(include_pad=False)[..., None].astype(y.dtype)
    y = jnp.where(shift == lowest, window_sum(raw_x, geom) / counts, y)
  return y, normalizer


def _softmax_combine(a, b):
  """Merges two partial softmax sums ``(m, s, t...)``: ``m`` the largest
  logit, ``s = sum e^(l - m)`` and each ``t = sum v e^(l - m)``.

  The identity is ``(-inf, 0, 0...)``. A part whose logits are all ``-inf``
  beside a larger one adds exactly 0 (its values, even infinite, have zero
  weight); parts of only ``-inf`` (or only ``+inf``) logits weigh equally.
  """
  m = jnp.maximum(a[0], b[0])

  def rescaled(part):
    top = part[0]
    factor = jnp.where(top == m, 1.0, jnp.exp(top - m))
    drop = (top == -jnp.inf) & (m > top)
    return [jnp.where(drop, 0.0, v * factor) for v in part[1:]]

  return (m,) + tuple(u + v for u, v in zip(rescaled(a), rescaled(b)))


def _forward_by_reduce_window(x, logits, geom):
  """LIP's :func:`_forward_by_taps` as one ``reduce_window`` of
  :func:`_softmax_combine` over ``(l, 1, x)``: ``y = t / s`` and the
  log-normaliser ``m + log s``, with the same infinite limits."""
  top, total, weighted = reduce_windows(
      (logits, jnp.ones_like(x), x), (-jnp.inf, 0.0, 0.0), _softmax_combine, geom
  )
  return weighted / total, top + jnp.log(total)


def _weighted_forward(x, logits, geom):
  """``(y, log-normaliser)`` per window in the compiling platform's
  formulation; SoftPool when ``logits`` is None."""

  def formulation(policy, x, *logits):
    logits = logits[0] if logits else None
    # SoftPool's taps read one array (its logits are its values), which
    # XLA:TPU handles as well as the variadic form; LIP's read two.
    if policy.variadic_reduce_window and logits is not None:
      return _forward_by_reduce_window(x, logits, geom)
    return _forward_by_taps(x, logits, geom)

  operands = (x,) if logits is None else (x, logits)
  return choose(formulation, *operands, reads=("variadic_reduce_window",))


def _weighted_backward(x, logits, y, normalizer, g, geom):
  """``(dx, dlogits)`` of the weighted mean (``dlogits`` None for SoftPool).

  ``dy_o/dx_i = w_io (1 + x_i - y_o)`` (SoftPool), ``w_io`` and
  ``w_io (x_i - y_o)`` (LIP), with ``w_io = exp(l_i - normalizer_o)``
  recomputed from the saved log-normaliser.
  """

  def formulation(policy, x, y, normalizer, g, *logits):
    logits = logits[0] if logits else None
    # Without overlap the scatter is a plain upsampling, which every
    # platform runs well; XLA:TPU splits a variadic reduce_window over a
    # dilated base into passes with layout copies, which beats the scatter
    # (in temp memory) only where windows overlap.
    if policy.variadic_reduce_window and geom.windows_overlap:
      return _backward_by_reduce_window(x, logits, y, normalizer, g, geom)
    return _backward_by_scatter(x, logits, y, normalizer, g, geom)

  operands = (x, y, normalizer, g) + (() if logits is None else (logits,))
  return choose(formulation, *operands, reads=("variadic_reduce_window",))


def _backward_by_scatter(x, logits, y, normalizer, g, geom):
  """One :func:`scatter_to_input` pass that recomputes each cell's weight in
  each of its windows (no per-tap tensor is materialised). With overlapping
  windows only the normaliser is padded once for the block shifts; ``g`` and
  ``y`` are padded inside the pass (see ``scatter_to_input``'s ``pad_once``).
  """
  soft = logits is None
  cells = (x,) if soft else (x, logits)
  views = [phase_view(c, geom) for c in cells]

  def contribution(taps, g, normalizer, y):
    value = views[0]
    if soft:
      # 1 + (x_i - y), not (1 + x_i) - y: the latter loses the 1 once |x_i|
      # exceeds 2**24 (float32), e.g. for one-hot weights.
      terms = (g * jnp.exp(value - normalizer) * (1.0 + (value - y)),)
    else:
      gw = g * jnp.exp(views[1] - normalizer)
      terms = (gw, gw * (value - y))
    return tuple(jnp.where(taps >= 0, t, 0.0) for t in terms)

  # Windows outside the output grid: g = 0, weight exp(-inf) = 0.
  grads = scatter_to_input(
      contribution, geom, (g, normalizer, y), (0.0, np.inf, 0.0),
      pad_once=(False, True, False),
  )
  return (grads[0], None) if soft else grads


def _backward_by_reduce_window(x, logits, y, normalizer, g, geom):
  """The same sums as one ``reduce_window`` over the windows holding each
  cell: ``w_io = e^(l_i + m_i) e^(-normalizer_o - m_i)`` with ``m_i`` the
  largest ``-normalizer_o`` of its windows (so neither factor overflows),
  ``S1 = sum_o g_o e^(-normalizer_o - m_i)`` and ``S2`` the same of
  ``g_o y_o``; then ``dx = e^(l + m) (S1 + (x S1 - S2))`` (SoftPool),
  ``e^(l + m) S1`` and ``e^(l + m) (x S1 - S2)`` (LIP)."""
  top, s1, s2 = reduce_windows_holding(
      (-normalizer, g, g * y), (-jnp.inf, 0.0, 0.0), _softmax_combine, geom
  )
  scale = jnp.exp((x if logits is None else logits) + top)
  deviation = x * s1 - s2
  if logits is None:
    return scale * (s1 + deviation), None
  return scale * s1, scale * deviation


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _lip(x: jax.Array, logits: jax.Array, geom: WindowGeometry) -> jax.Array:
  return _weighted_forward(x, logits, geom)[0]


def _lip_fwd(x, logits, geom):
  y, normalizer = _weighted_forward(x, logits, geom)
  return y, (x, logits, y, normalizer)


def _lip_bwd(geom, residuals, g):
  # The barrier keeps XLA from merging the recomputed weights with the
  # forward's identical expressions (which would materialise one
  # output-sized buffer per tap).
  x, logits, y, normalizer = jax.lax.optimization_barrier(residuals)
  return _weighted_backward(x, logits, y, normalizer, g, geom)


_lip.defvjp(_lip_fwd, _lip_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def _soft(x: jax.Array, geom: WindowGeometry) -> jax.Array:
  return _weighted_forward(x, None, geom)[0]


def _soft_fwd(x, geom):
  y, normalizer = _weighted_forward(x, None, geom)
  return y, (x, y, normalizer)


def _soft_bwd(geom, residuals, g):
  x, y, normalizer = jax.lax.optimization_barrier(residuals)  # see _lip_bwd
  return (_weighted_backward(x, None, y, normalizer, g, geom)[0],)


_soft.defvjp(_soft_fwd, _soft_bwd)


def soft_pool(
    x: jax.typing.ArrayLike,
    window_shape: Sequence[int],
    strides: int | Sequence[int] | None = None,
    padding: PaddingLike = "VALID",
    *,
    dilation: int | Sequence[int] | None = None,
    ceil_mode: bool = False,
) -> jax.Array:
  """SoftPool (Stergiou et al., ICCV 2021): a softmax-weighted window mean.

  Per channel and window ``R``: ``y = sum_{i in R} w_i x_i`` with
  ``w_i = exp(x_i) / sum_{j in R} exp(x_j)``; padded cells have zero weight.
  Computed as ``exp(x_i - max_R x)`` so it is finite for any finite input
  (float32 up to and beyond ``|x| = 1e4``). The derivative is the true one,
  ``dy/dx_i = w_i (1 + x_i - y)``, from a hand-written VJP that recomputes the
  weights instead of storing per-tap tensors (reverse mode only).

  Differences from the official code (alexandrosstergiou/SoftPool), which
  jaxpool deliberately does not reproduce:

  * its CPU path sums ``exp(x)`` over the **channels** (one weight map shared by
    all channels) and clamps the output to ``>= 0``; the paper, and jaxpool,
    weight each channel by its own softmax and keep negative outputs;
  * neither official path subtracts the window maximum (float32 overflows for
    inputs above about 88), and its CUDA backward treats the weights as
    constants (``w_i`` instead of ``w_i (1 + x_i - y)``).

  Args:
    x: floating-point input of shape ``(*batch, *spatial, features)``
      (float16/bfloat16 computed in float32 and cast back).
    window_shape, strides, padding, dilation, ceil_mode: as in
      :func:`jaxpool.max_pool` (``strides=None`` means ``window_shape``).

  Returns:
    Array of shape ``(*batch, *out_spatial, features)`` and ``x``'s dtype.

  Examples:
    >>> import jax.numpy as jnp, jaxpool
    >>> x = jnp.array([0.0, 1.0, 2.0, 3.0]).reshape(4, 1)
    >>> jaxpool.soft_pool(x, (2,))[:, 0]
    Array([0.7310586, 2.7310586], dtype=float32)
  """
  x = dtypes.float_input(x, "soft_pool")
  geom = window_geometry(
      x.shape, window_shape, strides, padding, dilation=dilation,
      ceil_mode=ceil_mode,
  )
  compute_dtype = dtypes.compute_dtype(x.dtype)
  return _soft(x.astype(compute_dtype), geom).astype(x.dtype)


def lip_pool(
    x: jax.typing.ArrayLike,
    logits: jax.typing.ArrayLike,
    window_shape: Sequence[int],
    strides: int | Sequence[int] | None = None,
    padding: PaddingLike = "VALID",
    *,
    dilation: int | Sequence[int] | None = None,
    ceil_mode: bool = False,
) -> jax.Array:
  """Local Importance-based Pooling (Gao, Wang, Wu, ICCV 2019).

  Per channel and window ``R``: ``y = sum_{i in R} exp(l_i) x_i / sum_{i in R}
  exp(l_i)`` with importance logits ``l`` of ``x``'s shape (usually produced by
  a small learned network, see :class:`jaxpool.nnx.LIP`); padded cells have
  zero weight. Stable for any finite logits (the window maximum of ``l`` is
  subtracted; the official CUDA kernel has this commented out and relies on
  its ``12 * sigmoid`` logit bound). Gradients to both ``x`` (``w_i``) and
  ``logits`` (``w_i (x_i - y)``) come from a hand-written VJP that stores no
  per-tap tensors. ``lip_pool(x, x, ...) == soft_pool(x, ...)``; constant
  logits give average pooling over the real cells.

  Args:
    x: floating-point input of shape ``(*batch, *spatial, features)``.
    logits: importance logits, same shape as ``x``.
    window_shape, strides, padding, dilation, ceil_mode: as in
      :func:`jaxpool.max_pool`. The official LIP uses 3x3 windows, stride 2,
      padding 1.

  Returns:
    Array of shape ``(*batch, *out_spatial, features)`` and ``x``'s dtype.

  Examples:
    >>> import jax.numpy as jnp, jaxpool
    >>> x = jnp.array([1.0, 3.0]).reshape(2, 1)
    >>> jaxpool.lip_pool(x, jnp.zeros_like(x), (2,))
    Array([[2.]], dtype=float32)
  """
  x = dtypes.float_input(x, "lip_pool")
  logits = dtypes.float_input(logits, "lip_pool (logits)")
  if logits.shape != x.shape:
    raise ValueError(
        f"logits must have the shape of x; got logits.shape={logits.shape} and"
        f" x.shape={x.shape}."
    )
  geom = window_geometry(
      x.shape, window_shape, strides, padding, dilation=dilation,
      ceil_mode=ceil_mode,
  )
  compute_dtype = dtypes.compute_dtype(jnp.result_type(x.dtype, logits.dtype))
  return _lip(x.astype(compute_dtype), logits.astype(compute_dtype), geom).astype(x.dtype)


def _per_feature(value, name: str, features: int, compute_dtype) -> jax.Array:
  value = jnp.asarray(value, dtype=compute_dtype)
  if value.ndim > 1 or (value.ndim == 1 and value.shape[0] not in (1, features)):
    raise ValueError(
        f"{name} must be a scalar or have shape ({features},) (one per"
        f" feature); got shape {value.shape}."
    )
  return value


def dpp_pool(
    x: jax.typing.ArrayLike,
    alpha: jax.typing.ArrayLike,
    lam: jax.typing.ArrayLike,
    window_shape: Sequence[int],
    strides: int | Sequence[int] | None = None,
    padding: PaddingLike = "VALID",
    *,
    reward: Literal["sym", "asym"] = "sym",
    reference: jax.typing.ArrayLike | None = None,
    normalize: Literal["none", "mean"] = "none",
    epsilon: float = float(np.sqrt(1e-3)),
    dilation: int | Sequence[int] | None = None,
    ceil_mode: bool = False,
) -> jax.Array:
  """Detail-Preserving Pooling (Saeedan, Weber, Goesele, Roth, CVPR 2018).

  A weighted window mean that rewards cells deviating from a local reference
  ``r`` (the linearly downscaled image):

  ``y = sum_i w_i x_i / sum_i w_i``,  ``w_i = alpha + rho(x_i - r)``, with the
  symmetric reward ``rho(d) = (d^2 + epsilon^2)^(lam / 2)`` or the asymmetric
  one ``rho(d) = (max(d, 0)^2 + epsilon^2)^(lam / 2)`` (favours cells brighter
  than the reference). ``lam = 0`` or large ``alpha`` give average pooling;
  asymmetric with large ``lam`` approaches max pooling.

  * Lite-DPP: ``reference=None`` uses the mean of the window's real cells.
  * Full-DPP: pass ``reference``, the output of a learned filter, with the
    output's shape (see :class:`jaxpool.nnx.DPP`).

  This is the paper's formula. The official Torch7 code additionally divides
  ``d^2 + epsilon^2`` by its window mean before raising it to ``lam / 2``
  (the CUDA layer by its window sum); ``normalize='mean'`` reproduces the
  nngraph version. Padded cells have zero weight. The rewards are computed in
  log space, ``log rho = lam * log(sqrt(d^2 + epsilon^2))`` with ``d`` and
  ``epsilon`` scaled by a power of two near the larger of the two, and the
  weights relative to their largest term, so neither a large ``lam``, a large
  ``|x|`` (``d^2`` overflows float32 above about 1e19) nor a tiny ``epsilon``
  (``epsilon^2`` underflows to 0) gives an inf or NaN. The derivative (to
  ``x``, ``alpha``, ``lam`` and ``reference``) is JAX's autodiff of this
  formula.

  Infinite inputs give the formula's limit, per window: a window holding
  ``+inf`` (``-inf``) and no cell of the other sign gives ``+inf`` (``-inf``),
  both give NaN. One case has a finite limit instead: Lite-DPP with
  ``reward='asym'`` and ``normalize='none'``, where ``-inf`` cells among
  ``m`` finite ones of ``n`` real cells give the mean ``mu`` of the finite
  cells for ``lam > 1``, ``mu - (alpha + epsilon) n / m`` for ``lam = 1``
  (and ``-inf`` for ``lam < 1``). An infinite ``reference`` gives the mean of
  the window's real cells (all rewards grow alike). NaN propagates.

  Args:
    x: floating-point input of shape ``(*batch, *spatial, features)``.
    alpha: positive reward offset, a scalar or one per feature.
    lam: non-negative reward exponent, a scalar or one per feature.
    window_shape, strides, padding, dilation, ceil_mode: as in
      :func:`jaxpool.max_pool` (the paper uses 2x2 windows, stride 2).
    reward: ``'sym'`` or ``'asym'``.
    reference: optional reference of the output's shape; default the window
      mean of the real cells.
    normalize: ``'none'`` (paper) or ``'mean'`` (official code).
    epsilon: the reward's smoothing constant, a finite number > 0; default
      ``sqrt(1e-3)`` as in the official code.

  Returns:
    Array of shape ``(*batch, *out_spatial, features)`` and ``x``'s dtype.

  Raises:
    ValueError: for concrete ``alpha`` not finite and > 0 or ``lam`` not
      finite and >= 0 (traced values, e.g. under ``jit``, cannot be checked
      and are used as given), or a bad ``reward``, ``normalize``, ``epsilon``.

  Examples:
    >>> import jax.numpy as jnp, jaxpool
    >>> x = jnp.array([0.0, 0.0, 0.0, 4.0]).reshape(4, 1)
    >>> y = jaxpool.dpp_pool(x, 1.0, 2.0, (4,))
    >>> bool(y[0, 0] > 1.0)  # pulled towards the outlier, unlike avg (1.0)
    True
  """
  check_choice("reward", reward, ("sym", "asym"))
  check_choice("normalize", normalize, ("none", "mean"))
  epsilon = check_positive_number("epsilon", epsilon)
  check_number_array(
      "alpha", alpha, low=0.0, high=np.inf, low_open=True, high_open=True
  )
  check_number_array("lam", lam, low=0.0, high=np.inf, high_open=True)
  x = dtypes.float_input(x, "dpp_pool")
  geom = window_geometry(
      x.shape, window_shape, strides, padding, dilation=dilation,
      ceil_mode=ceil_mode,
  )
  compute_dtype = dtypes.compute_dtype(x.dtype)
  features = x.shape[-1]
  alpha = _per_feature(alpha, "alpha", features, compute_dtype)
  lam = _per_feature(lam, "lam", features, compute_dtype)
  if epsilon < jnp.finfo(compute_dtype).tiny:
    raise ValueError(
        f"epsilon must be a normal {jnp.dtype(compute_dtype).name} number (at least"
        f" {jnp.finfo(compute_dtype).tiny}); got {epsilon!r}."
    )
  xc = x.astype(compute_dtype)
  counts = geom.window_counts(include_pad=False)[..., None].astype(compute_dtype)
  out_shape = x.shape[: x.ndim - geom.num_spatial - 1] + geom.out_shape
  out_shape += (features,)
  # The window sums also flag the windows holding infinities: +inf (-inf)
  # where they hold only +inf (-inf) ones, NaN for both (or a NaN).
  total = window_sum(xc, geom)
  given = reference is not None
  if given:
    reference = dtypes.float_input(reference, "dpp_pool (reference)")
    if reference.shape != out_shape:
      raise ValueError(
          f"reference must have the output's shape {out_shape}; got"
          f" {reference.shape}."
      )
    reference = reference.astype(compute_dtype)
  else:
    reference = total / counts
  # The formula runs on finite values; windows holding an infinity (or
  # with an infinite reference) take their limit below, by a select, so
  # they reach no other window.
  infinite_reference = jnp.isinf(reference)
  reference = jnp.where(infinite_reference, 0.0, reference)
  finite = jnp.where(jnp.isinf(xc), 0.0, xc)
  x_taps, masks = window_taps(finite, geom), geom.tap_masks()
  log_rho = _dpp_log_rewards(
      x_taps, masks, reference, lam, reward, normalize, epsilon, counts
  )
  y = _dpp_weighted_mean(x_taps, masks, log_rho, alpha)
  negative_limit = -jnp.inf
  if not given and reward == "asym" and normalize == "none":
    negative_limit = _lite_asym_negative_limit(
        xc, finite, geom, counts, alpha, lam, epsilon
    )
  y = jnp.where(total == -jnp.inf, negative_limit, y)
  y = jnp.where(total == jnp.inf, jnp.inf, y)
  if given:
    y = jnp.where(infinite_reference, total / counts, y)
  return y.astype(x.dtype)


def _log_hypot(d, epsilon: float):
  """``log(sqrt(d^2 + epsilon^2))`` without overflow, underflow or 0/0.

  ``d`` and ``epsilon`` are scaled by ``2^-E``, ``2^E`` the power of two at or
  below ``max(|d|, epsilon)`` (read from the float's exponent bits: exact,
  and cheaper than a division), so that the sum of squares lies in
  ``[1, 8]``: neither ``d^2`` (large ``d``) nor ``epsilon^2`` (tiny
  ``epsilon``) leaves the float range. The scale is a constant
  (``stop_gradient``); the expression is the same function for any scale, so
  the derivative is the true ``d / (d^2 + epsilon^2)``.
  """
  info = jnp.finfo(d.dtype)
  bits_type = {4: jnp.int32, 8: jnp.int64}[d.dtype.itemsize]
  bias = info.maxexp - 1
  top = jax.lax.stop_gradient(jnp.maximum(jnp.abs(d), epsilon))
  biased = jax.lax.shift_right_logical(
      jax.lax.bitcast_convert_type(top, bits_type), bits_type(info.nmant)
  )
  biased = jnp.clip(biased, 1, 2 * bias - 1)  # keeps 2^-E a normal number
  inverse = jax.lax.bitcast_convert_type(
      jax.lax.shift_left(2 * bias - biased, bits_type(info.nmant)), d.dtype
  )
  log_scale = (biased - bias).astype(d.dtype) * np.log(2.0).astype(d.dtype)
  return log_scale + 0.5 * jnp.log(
      jnp.square(d * inverse) + jnp.square(epsilon * inverse)
  )


def _dpp_log_rewards(
    x_taps, masks, reference, lam, reward, normalize, epsilon, counts
):
  """``log rho_i = lam * log(sqrt(d_i^2 + epsilon^2))`` per tap (normalised by
  the window mean of ``d^2 + epsilon^2`` with ``normalize='mean'``)."""
  log_h = []
  for value in x_taps:
    deviation = value - reference
    if reward == "asym":
      deviation = jnp.maximum(deviation, 0.0)
    log_h.append(_log_hypot(deviation, epsilon))
  if normalize == "mean":
    # log sqrt(mean_i h_i^2), from a sum shifted by its largest term.
    top = None
    for value, mask in zip(log_h, masks):
      value = value if mask is None else jnp.where(mask, value, -jnp.inf)
      top = value if top is None else jnp.maximum(top, value)
    top = jax.lax.stop_gradient(top)
    total = None
    for value, mask in zip(log_h, masks):
      term = jnp.exp(2.0 * (value - top))
      term = term if mask is None else jnp.where(mask, term, 0.0)
      total = term if total is None else total + term
    log_mean = top + 0.5 * jnp.log(total / counts)
    log_h = [value - log_mean for value in log_h]
  return [lam * value for value in log_h]


def _dpp_weighted_mean(x_taps, masks, log_rho, alpha):
  """``sum_i w_i x_i / sum_i w_i`` with ``w_i = alpha + exp(log_rho_i)``,
  every weight divided by the largest term (no overflow for any ``lam``)."""
  shift = jnp.log(alpha) + jnp.zeros_like(log_rho[0])
  for value, mask in zip(log_rho, masks):
    shift = jnp.maximum(
        shift, value if mask is None else jnp.where(mask, value, -jnp.inf)
    )
  shift = jax.lax.stop_gradient(shift)
  base = alpha * jnp.exp(-shift)
  num = den = None
  for value, term, mask in zip(x_taps, log_rho, masks):
    weight = base + jnp.exp(term - shift)
    if mask is not None:
      weight = jnp.where(mask, weight, 0.0)
    num = value * weight if num is None else num + value * weight
    den = weight if den is None else den + weight
  return num / den


def _lite_asym_negative_limit(xc, finite, geom, counts, alpha, lam, epsilon):
  """Lite-DPP's asymmetric limit in windows holding ``-inf`` (no ``+inf``).

  The reference follows the ``-inf`` cells down, so the ``m`` finite cells'
  rewards grow like ``|r|^lam`` while the ``-inf`` cells keep
  ``alpha + epsilon^lam``: their term vanishes for ``lam > 1`` (the finite
  cells' mean), tends to ``-(alpha + epsilon) n / m`` for ``lam = 1`` and
  dominates for ``lam < 1`` (``-inf``); ``-inf`` also when ``m = 0``.
  """
  negative = window_sum((xc == -jnp.inf).astype(xc.dtype), geom)
  remaining = counts - negative
  some = remaining > 0
  remaining = jnp.where(some, remaining, 1.0)
  mean = window_sum(finite, geom) / remaining
  at_one = mean - (alpha + epsilon) * counts / remaining
  limit = jnp.where(lam > 1, mean, jnp.where(lam == 1, at_one, -jnp.inf))
  return jnp.where(some, limit, -jnp.inf)
