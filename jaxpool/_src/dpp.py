"""Detail-Preserving Pooling (Saeedan et al., CVPR 2018) and its layer
parametrisation.

Each output is a weighted mean of its window, ``y = sum_i w_i x_i / sum_i
w_i``, with weights from a learned reward of each cell's deviation from a
local reference (the window mean, or a learned per-feature filter for
Full-DPP). Padded cells get zero weight.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

from jaxpool._src.core import dtypes
from jaxpool._src.core.checks import (
  check_choice,
  check_features,
  check_layer_input,
  check_number_array,
  check_positive_number,
)
from jaxpool._src.core.eager import compiled_when_eager
from jaxpool._src.core.geometry import (
  PaddingLike,
  normalize_spatial_shape,
  window_geometry,
)
from jaxpool._src.core.reductions import (
  window_sum,
)
from jaxpool._src.core.taps import window_taps

__all__ = ["dpp_arguments", "dpp_pool", "init_dpp_params"]


def _per_feature(value, name: str, features: int, compute_dtype) -> jax.Array:
  value = jnp.asarray(value, dtype=compute_dtype)
  if value.ndim > 1 or (value.ndim == 1 and value.shape[0] not in (1, features)):
    raise ValueError(
      f"{name} must be a scalar or have shape ({features},) (one per"
      f" feature); got shape {value.shape}."
    )
  return value


@compiled_when_eager(inspects=("alpha", "lam"))
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
  r"""Detail-Preserving Pooling (Saeedan, Weber, Goesele, Roth, CVPR 2018).

  A weighted window mean that rewards cells deviating from a local reference
  $r$ (the linearly downscaled image):

  $y = \sum_i w_i x_i / \sum_i w_i$, $w_i = \alpha + \rho(x_i - r)$, with the
  symmetric reward $\rho(d) = (d^2 + \varepsilon^2)^{\lambda / 2}$ or the
  asymmetric one $\rho(d) = (\max(d, 0)^2 + \varepsilon^2)^{\lambda / 2}$
  (favours cells brighter than the reference). ``lam = 0`` or large ``alpha``
  give average pooling; asymmetric with large ``lam`` approaches max pooling.

  * Lite-DPP: ``reference=None`` uses the mean of the window's real cells.
  * Full-DPP: pass ``reference``, the output of a learned filter, with the
    output's shape (see [`jaxpool.nnx.DPP`][jaxpool.nnx.DPP]).

  This is the paper's formula. The official Torch7 code additionally divides
  $d^2 + \varepsilon^2$ by its window mean before raising it to $\lambda / 2$
  (the CUDA layer by its window sum); ``normalize='mean'`` reproduces the
  nngraph version. Padded cells have zero weight. The rewards are computed in
  log space, $\log \rho = \lambda \log \sqrt{d^2 + \varepsilon^2}$ with $d$
  and $\varepsilon$ scaled by a power of two near the larger of the two, and
  the weights relative to their largest term, so neither a large ``lam``, a
  large $\lvert x \rvert$ ($d^2$ overflows float32 above about 1e19) nor a
  tiny ``epsilon`` ($\varepsilon^2$ underflows to 0) gives an inf or NaN. The
  derivative (to ``x``, ``alpha``, ``lam`` and ``reference``) is JAX's
  autodiff of this formula.

  Infinite inputs give the formula's limit, per window: a window holding
  ``+inf`` (``-inf``) and no cell of the other sign gives ``+inf`` (``-inf``),
  both give NaN. One case has a finite limit instead: Lite-DPP with
  ``reward='asym'`` and ``normalize='none'``, where ``-inf`` cells among
  $m$ finite ones of $n$ real cells give the mean $\mu$ of the finite
  cells for ``lam > 1``, $\mu - (\alpha + \varepsilon) n / m$ for ``lam = 1``
  (and ``-inf`` for ``lam < 1``). An infinite ``reference`` gives the mean of
  the window's real cells (all rewards grow alike). NaN propagates.

  Args:
    x: floating-point input of shape ``(*batch, *spatial, features)``.
    alpha: positive reward offset, a scalar or one per feature.
    lam: non-negative reward exponent, a scalar or one per feature.
    window_shape: window size per spatial axis, e.g. ``(2, 2)``; the paper uses
      2x2 windows, stride 2.
    strides: step per spatial axis (int or tuple); ``None`` (default) means
      ``window_shape``, as in torch.
    padding: ``'VALID'`` (default), ``'SAME'``, an int, ints or ``(low, high)``
      pairs, as in [`max_pool`][jaxpool.max_pool].
    dilation: spacing between window taps (int or tuple); ``None`` (default)
      means 1.
    ceil_mode: round the output size up, as torch's ``ceil_mode`` (default
      ``False``).
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
  check_number_array("alpha", alpha, low=0.0, high=np.inf, low_open=True, high_open=True)
  check_number_array("lam", lam, low=0.0, high=np.inf, high_open=True)
  x = dtypes.float_input(x, "dpp_pool")
  geom = window_geometry(
    x.shape,
    window_shape,
    strides,
    padding,
    dilation=dilation,
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
        f"reference must have the output's shape {out_shape}; got {reference.shape}."
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
  log_rho = _dpp_log_rewards(x_taps, masks, reference, lam, reward, normalize, epsilon, counts)
  y = _dpp_weighted_mean(x_taps, masks, log_rho, alpha)
  negative_limit = -jnp.inf
  if not given and reward == "asym" and normalize == "none":
    negative_limit = _lite_asym_negative_limit(xc, finite, geom, counts, alpha, lam, epsilon)
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
  return log_scale + 0.5 * jnp.log(jnp.square(d * inverse) + jnp.square(epsilon * inverse))


def _dpp_log_rewards(x_taps, masks, reference, lam, reward, normalize, epsilon, counts):
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
    shift = jnp.maximum(shift, value if mask is None else jnp.where(mask, value, -jnp.inf))
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


# ---------------------------------------------------------------------------
# The layers' parametrisation: alpha, lambda and the reference filter.
# ---------------------------------------------------------------------------


_DPP_MAX_LOG_ALPHA = 10.0


def init_dpp_params(
  features: int, window_shape: Sequence[int], *, variant: str = "lite"
) -> dict[str, jax.Array]:
  """``log_alpha`` and ``log_lam`` (one per feature, 0: ``alpha = lam = 1`` as
  the official CUDA layer), and for ``variant='full'`` the reference
  ``filter`` of shape ``(*window_shape, features)`` initialised to the box
  filter (so Full-DPP starts as Lite-DPP)."""
  features = check_features("DPP", features)
  check_choice("variant", variant, ("lite", "full"))
  params = {"log_alpha": jnp.zeros((features,)), "log_lam": jnp.zeros((features,))}
  if variant == "full":
    window_shape = normalize_spatial_shape("window_shape", window_shape)
    size = math.prod(window_shape)
    params["filter"] = jnp.full(tuple(window_shape) + (features,), 1.0 / size)
  return params


def dpp_arguments(
  params: dict[str, jax.Array],
  x: jax.Array,
  window_shape: Sequence[int],
  strides: int | Sequence[int] | None = None,
  padding: PaddingLike = "VALID",
  *,
  dilation: int | Sequence[int] | None = None,
  ceil_mode: bool = False,
) -> tuple[jax.Array, jax.Array, jax.Array | None]:
  """``(alpha, lam, reference)`` for [`jaxpool.dpp_pool`][jaxpool.dpp_pool].

  ``alpha = exp(min(log_alpha, 10))`` and ``lam = exp(log_lam)`` (positive by
  construction); ``reference`` is ``None`` (Lite-DPP: the window mean) or the
  learned per-feature weighted sum of every window, ``sum_t filter[t] x_t``
  over the same windows as the pooling (padded cells count as zero).
  """
  check_layer_input("DPP", x, len(window_shape), params["log_alpha"].shape[0])
  alpha = jnp.exp(jnp.minimum(params["log_alpha"], _DPP_MAX_LOG_ALPHA))
  lam = jnp.exp(params["log_lam"])
  if "filter" not in params:
    return alpha, lam, None
  geom = window_geometry(
    x.shape,
    window_shape,
    strides,
    padding,
    dilation=dilation,
    ceil_mode=ceil_mode,
  )
  compute_dtype = dtypes.compute_dtype(x.dtype)
  weights = params["filter"].astype(compute_dtype).reshape((geom.window_size, -1))
  reference = sum(w * tap for w, tap in zip(weights, window_taps(x.astype(compute_dtype), geom)))
  return alpha, lam, reference
