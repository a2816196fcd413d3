"""Weighted-window pooling: SoftPool and LIP, and LIP's logit module.

Each output is a weighted mean of its window, ``y = sum_i w_i x_i / sum_i w_i``,
with weights from the input itself (SoftPool) or from learned logits (LIP).
Padded cells get zero weight. DPP, a learned reward of the deviation from a
local reference, is `jaxpool._src.dpp`.

The exponential weights of SoftPool and LIP subtract the window maximum of the
logits (a constant for the derivative), so they stay finite for any finite
input. Their derivatives are hand-written VJPs that recompute the weights from
the input in the backward pass instead of storing them: no per-tap tensor is
ever materialised (the backward recomputes each tap's weight from a saved
per-window log-normalizer).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxpool._src.core import dtypes
from jaxpool._src.core.backend import choose
from jaxpool._src.core.checks import (
  check_choice,
  check_features,
  check_layer_input,
  is_int,
)
from jaxpool._src.core.eager import compiled_when_eager
from jaxpool._src.core.geometry import PaddingLike, WindowGeometry, window_geometry
from jaxpool._src.core.reductions import (
  reduce_windows,
  reduce_windows_holding,
  window_sum,
)
from jaxpool._src.core.scatter import phase_view, scatter_to_input
from jaxpool._src.core.taps import window_taps

__all__ = ["LIP_LOGIT_BOUND", "init_lip_logit_params", "lip_logits", "lip_pool", "soft_pool"]


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

  Infinite inputs give the limit. LIP (`_finite_logits`): ``+inf``
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
  """LIP's `_forward_by_taps` as one ``reduce_window`` of
  `_softmax_combine` over ``(l, 1, x)``: ``y = t / s`` and the
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
  """One `scatter_to_input` pass that recomputes each cell's weight in
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
    contribution,
    geom,
    (g, normalizer, y),
    (0.0, np.inf, 0.0),
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


@compiled_when_eager()
def soft_pool(
  x: jax.typing.ArrayLike,
  window_shape: Sequence[int],
  strides: int | Sequence[int] | None = None,
  padding: PaddingLike = "VALID",
  *,
  dilation: int | Sequence[int] | None = None,
  ceil_mode: bool = False,
) -> jax.Array:
  r"""SoftPool (Stergiou et al., ICCV 2021): a softmax-weighted window mean.

  Per channel and window $R$: $y = \sum_{i \in R} w_i x_i$ with
  $w_i = \exp(x_i) / \sum_{j \in R} \exp(x_j)$; padded cells have zero weight.
  Computed as $\exp(x_i - \max_R x)$ so it is finite for any finite input
  (float32 up to and beyond $\lvert x \rvert = 10^4$). The derivative is the
  true one, $\partial y / \partial x_i = w_i (1 + x_i - y)$, from a
  hand-written VJP that recomputes the weights instead of storing per-tap
  tensors (reverse mode only).

  Differences from the official code (alexandrosstergiou/SoftPool), which
  jaxpool deliberately does not reproduce:

  * its CPU path sums $\exp(x)$ over the **channels** (one weight map shared by
    all channels) and clamps the output to ``>= 0``; the paper, and jaxpool,
    weight each channel by its own softmax and keep negative outputs;
  * neither official path subtracts the window maximum (float32 overflows for
    inputs above about 88), and its CUDA backward treats the weights as
    constants ($w_i$ instead of $w_i (1 + x_i - y)$).

  Args:
    x: floating-point input of shape ``(*batch, *spatial, features)``
      (float16/bfloat16 computed in float32 and cast back).
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
    >>> x = jnp.array([0.0, 1.0, 2.0, 3.0]).reshape(4, 1)
    >>> jaxpool.soft_pool(x, (2,))[:, 0]
    Array([0.7310586, 2.7310586], dtype=float32)
  """
  x = dtypes.float_input(x, "soft_pool")
  geom = window_geometry(
    x.shape,
    window_shape,
    strides,
    padding,
    dilation=dilation,
    ceil_mode=ceil_mode,
  )
  compute_dtype = dtypes.compute_dtype(x.dtype)
  return _soft(x.astype(compute_dtype), geom).astype(x.dtype)


@compiled_when_eager()
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
  r"""Local Importance-based Pooling (Gao, Wang, Wu, ICCV 2019).

  Per channel and window $R$:
  $y = \sum_{i \in R} \exp(l_i) x_i / \sum_{i \in R} \exp(l_i)$ with importance
  logits $l$ of ``x``'s shape (usually produced by a small learned network,
  see [`jaxpool.nnx.LIP`][jaxpool.nnx.LIP]); padded cells have zero weight.
  Stable for any finite logits (the window maximum of $l$ is subtracted; the
  official CUDA kernel has this commented out and relies on its
  ``12 * sigmoid`` logit bound). Gradients to both ``x`` ($w_i$) and
  ``logits`` ($w_i (x_i - y)$) come from a hand-written VJP that stores no
  per-tap tensors. ``lip_pool(x, x, ...) == soft_pool(x, ...)``; constant
  logits give average pooling over the real cells.

  Args:
    x: floating-point input of shape ``(*batch, *spatial, features)``.
    logits: importance logits, same shape as ``x``.
    window_shape: window size per spatial axis, e.g. ``(2, 2)``; the official
      LIP uses 3x3 windows, stride 2, padding 1.
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
    >>> x = jnp.array([1.0, 3.0]).reshape(2, 1)
    >>> jaxpool.lip_pool(x, jnp.zeros_like(x), (2,))
    Array([[2.]], dtype=float32)
  """
  x = dtypes.float_input(x, "lip_pool")
  logits = dtypes.float_input(logits, "lip_pool (logits)")
  if logits.shape != x.shape:
    raise ValueError(
      f"logits must have the shape of x; got logits.shape={logits.shape} and x.shape={x.shape}."
    )
  geom = window_geometry(
    x.shape,
    window_shape,
    strides,
    padding,
    dilation=dilation,
    ceil_mode=ceil_mode,
  )
  compute_dtype = dtypes.compute_dtype(jnp.result_type(x.dtype, logits.dtype))
  return _lip(x.astype(compute_dtype), logits.astype(compute_dtype), geom).astype(x.dtype)


# ---------------------------------------------------------------------------
# LIP's logit module (the layers' parametrisation).
# ---------------------------------------------------------------------------


LIP_LOGIT_BOUND = 12.0
_NORM_EPSILON = 1e-6


def _conv_numbers(num_spatial: int):
  spatial = "DHW"[-num_spatial:] if num_spatial <= 3 else None
  if spatial is None:
    raise ValueError(f"LIP's logit module supports 1 to 3 spatial axes; got {num_spatial}.")
  return ("N" + spatial + "C", spatial + "IO", "N" + spatial + "C")


def _conv(x: jax.Array, kernel: jax.Array, bias: jax.Array) -> jax.Array:
  """A stride-1 'SAME' convolution of ``(N, *spatial, C)`` input."""
  n = kernel.ndim - 2
  y = lax.conv_general_dilated(
    x,
    kernel.astype(x.dtype),
    (1,) * n,
    "SAME",
    dimension_numbers=_conv_numbers(n),
  )
  return y + bias.astype(x.dtype)


def _instance_norm(x: jax.Array, scale: jax.Array, bias: jax.Array) -> jax.Array:
  """Normalises every (example, feature) plane over its spatial axes."""
  axes = tuple(range(1, x.ndim - 1))
  mean = jnp.mean(x, axis=axes, keepdims=True)
  var = jnp.mean(jnp.square(x - mean), axis=axes, keepdims=True)
  y = (x - mean) * lax.rsqrt(var + _NORM_EPSILON)
  return y * scale.astype(x.dtype) + bias.astype(x.dtype)


def init_lip_logit_params(
  key: jax.Array,
  features: int,
  num_spatial: int,
  *,
  logit_module: str = "simplified",
  bottleneck_width: int | None = None,
) -> dict[str, jax.Array]:
  """Parameters of LIP's logit module, ``conv{i}_kernel``/``conv{i}_bias`` and
  ``norm{i}_scale``/``norm{i}_bias`` per stage.

  ``'simplified'`` (the paper's stem module): one 3x3 convolution;
  ``'bottleneck'``: 1x1 -> 3x3 -> 1x1 convolutions, ``bottleneck_width``
  features inside (default ``features // 2``). The last convolution is
  zero-initialised, so the logits start constant and LIP starts as average
  pooling over the real cells of each window; the others use LeCun normal
  initialisation.
  """
  features = check_features("LIP", features)
  check_choice("logit_module", logit_module, ("simplified", "bottleneck"))
  if logit_module == "simplified":
    stages = [(features, features, 3)]
  else:
    if bottleneck_width is not None and (not is_int(bottleneck_width) or bottleneck_width < 1):
      raise ValueError(f"bottleneck_width must be an int >= 1 or None; got {bottleneck_width!r}.")
    width = bottleneck_width or max(features // 2, 1)
    stages = [(features, width, 1), (width, width, 3), (width, features, 1)]
  params = {}
  keys = jax.random.split(key, len(stages))
  lecun = jax.nn.initializers.lecun_normal()
  for i, ((fan_in, fan_out, size), k) in enumerate(zip(stages, keys)):
    shape = (size,) * num_spatial + (fan_in, fan_out)
    last = i == len(stages) - 1
    params[f"conv{i}_kernel"] = jnp.zeros(shape) if last else lecun(k, shape)
    params[f"conv{i}_bias"] = jnp.zeros((fan_out,))
    params[f"norm{i}_scale"] = jnp.ones((fan_out,))
    params[f"norm{i}_bias"] = jnp.zeros((fan_out,))
  return params


def lip_logits(params: dict[str, jax.Array], x: jax.typing.ArrayLike) -> jax.Array:
  """``12 * sigmoid(IN(f(x)))``: LIP's logits, bounded to ``[0, 12]`` as in
  the official code; ``f`` is conv -> IN (-> ReLU -> conv -> IN)...

  Args:
    params: from `init_lip_logit_params`.
    x: ``(*batch, *spatial, features)`` input.

  Returns:
    Logits of ``x``'s shape, in float32 (or wider).
  """
  x = dtypes.float_input(x, "LIP")
  stages = sum(1 for name in params if name.endswith("_kernel"))
  num_spatial = params["conv0_kernel"].ndim - 2
  check_layer_input("LIP", x, num_spatial, params["conv0_kernel"].shape[-2])
  batch = x.shape[: x.ndim - num_spatial - 1]
  h = x.reshape((math.prod(batch),) + x.shape[len(batch) :])
  h = h.astype(dtypes.compute_dtype(x.dtype))
  for i in range(stages):
    h = _conv(h, params[f"conv{i}_kernel"], params[f"conv{i}_bias"])
    h = _instance_norm(h, params[f"norm{i}_scale"], params[f"norm{i}_bias"])
    if i < stages - 1:
      h = jax.nn.relu(h)
  return (LIP_LOGIT_BOUND * jax.nn.sigmoid(h)).reshape(batch + h.shape[1:])
