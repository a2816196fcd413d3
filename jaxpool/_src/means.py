r"""Generalised means: GeM (Radenović et al., TPAMI 2018) and log-sum-exp
pooling (the smooth maximum of timm's ``LsePlus2d``).

Both interpolate between average pooling and max pooling with one learnable
scalar (or one per feature): GeM's power $p$ ($p = 1$ is the mean,
$p \to \infty$ the max), LSE's sharpness $r$ ($r \to 0$ is the mean,
$r \to \infty$ the max). Both are global over the spatial axes by default
(the retrieval and classification heads), or slide over windows.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxpool._src.core import dtypes
from jaxpool._src.core.checks import check_number_array, check_positive_number
from jaxpool._src.core.eager import compiled_when_eager
from jaxpool._src.core.geometry import PaddingLike, global_axes, window_geometry
from jaxpool._src.core.taps import window_taps

__all__ = ["check_layer_options", "gem_pool", "lse_pool"]


def _strength(name: str, value, x: jax.Array, op: str) -> jax.Array:
  """``p`` or ``r``: a scalar or one value per feature, positive and finite
  when concrete (a traced value is the caller's to keep positive)."""
  if isinstance(value, bool) or value is None:
    raise TypeError(f"{op}: {name} must be a positive number or array; got {value!r}.")
  check_number_array(f"{op}: {name}", value, low=0.0, high=np.inf, low_open=True, high_open=True)
  value = jnp.asarray(value)
  if not jnp.issubdtype(value.dtype, jnp.floating):
    value = value.astype(jnp.float32)
  if value.ndim > 1 or (value.ndim == 1 and value.shape[0] not in (1, x.shape[-1])):
    raise ValueError(
      f"{op}: {name} must be a scalar or one value per feature ({x.shape[-1]});"
      f" got shape {value.shape}."
    )
  return value


def _pooled(x: jax.Array, window_shape, strides, padding, spatial_ndim, op: str):
  """``(values, mask, axis)``: the cells each output reduces, along ``axis``.

  Global (``window_shape=None``): ``x`` itself, reduced over its spatial
  axes moved together. Windowed: every window's taps stacked on a new axis
  before the features, with the mask of its real (unpadded) cells."""
  if window_shape is None:
    if strides is not None or padding != "VALID":
      raise ValueError(f"{op}: strides and padding need a window_shape (global pooling has none).")
    axes = global_axes(x, spatial_ndim, op)
    flat = jnp.moveaxis(x, axes, tuple(range(-len(axes) - 1, -1)))
    flat = flat.reshape((*flat.shape[: -len(axes) - 1], -1, flat.shape[-1]))
    return flat, None
  if spatial_ndim is not None:
    raise ValueError(f"{op}: spatial_ndim is for global pooling; the window gives the axes.")
  geom = window_geometry(x.shape, window_shape, strides, padding)
  taps = jnp.stack(window_taps(x, geom), axis=-2)
  masks = geom.tap_masks()
  if masks[0] is None:
    return taps, None
  return taps, jnp.asarray(np.stack(masks, axis=-2))


def _mean(values: jax.Array, mask) -> jax.Array:
  if mask is None:
    return jnp.mean(values, axis=-2)
  total = jnp.sum(jnp.where(mask, values, 0), axis=-2)
  return total / jnp.sum(mask, axis=-2).astype(values.dtype)


def _window_max(values: jax.Array, mask) -> jax.Array:
  if mask is not None:
    values = jnp.where(mask, values, -jnp.inf)
  return jnp.max(values, axis=-2, keepdims=True)


def _cells(strength: jax.Array) -> jax.Array:
  """A scalar or per-feature strength, broadcast against ``(..., K, C)``."""
  return strength[..., None, :] if strength.ndim else strength


@jax.custom_jvp
def _generalized_mean(v: jax.Array, p: jax.Array, weights: jax.Array) -> jax.Array:
  """``(sum_i w_i v_i^p / sum_i w_i)^(1/p)`` over axis -2, for ``v > 0``
  and 0/1 weights: ``m u^(1/p)`` with ``m`` the largest counted ``v`` and
  ``u`` the weighted mean of ``(v / m)^p`` (in ``(0, 1]``: no overflow)."""
  m = jnp.max(jnp.where(weights > 0, v, 0), axis=-2, keepdims=True)
  ratio = jnp.where(weights > 0, v / m, 1)
  u = jnp.sum(weights * ratio ** _cells(p), axis=-2) / jnp.sum(weights * jnp.ones_like(v), axis=-2)
  return jnp.squeeze(m, -2) * u ** (1 / p)


@_generalized_mean.defjvp
def _generalized_mean_jvp(primals, tangents):
  """``dy/dv_i = (w_i / n) (v_i / y)^(p - 1)`` and
  ``dy/dp = (y / p) (sum_i q_i log(v_i / m) - log(u) / p)`` with
  ``q_i = w_i (v_i / m)^p / sum_j w_j (v_j / m)^p``: each factor finite
  where the chain rule through ``m u^(1/p)`` overflows (tiny ``p``, clamped
  cells far below the maximum)."""
  (v, p, weights), (dv, dp, _) = primals, tangents
  y = _generalized_mean(v, p, weights)
  counted = weights > 0
  n = jnp.sum(weights * jnp.ones_like(v), axis=-2)
  m = jnp.max(jnp.where(counted, v, 0), axis=-2, keepdims=True)
  log_ratio = jnp.where(counted, jnp.log(jnp.where(counted, v / m, 1)), 0)
  log_y = jnp.log(y)[..., None, :]
  # (v / y)^(p - 1) in the log domain: v / y may underflow where its power is finite
  log_v = jnp.log(jnp.where(counted, v, 1))
  slope = jnp.where(counted, jnp.exp((_cells(p) - 1) * (log_v - log_y)), 0)
  powered = jnp.where(counted, jnp.exp(_cells(p) * log_ratio), 0)
  total = jnp.sum(powered, axis=-2)
  dlog = jnp.sum(powered * log_ratio, axis=-2) / total - jnp.log(total / n) / p
  return y, jnp.sum(slope * dv, axis=-2) / n + y / p * dlog * dp


@compiled_when_eager(inspects=("p",))
def gem_pool(
  x: jax.typing.ArrayLike,
  p: jax.typing.ArrayLike,
  window_shape: Sequence[int] | None = None,
  strides: int | Sequence[int] | None = None,
  padding: PaddingLike = "VALID",
  *,
  eps: float = 1e-6,
  spatial_ndim: int | None = None,
) -> jax.Array:
  r"""Generalised-mean (GeM) pooling:
  $y = \big(\frac{1}{n} \sum_{i \in R} \max(x_i, \epsilon)^p\big)^{1/p}$.

  Radenović et al.'s retrieval descriptor: $p = 1$ is average pooling of
  $\max(x, \epsilon)$ and $p \to \infty$ max pooling. ``gem_pool(x, 3.0)``
  equals cirtorch's ``gem(x, p=3)`` (``avg_pool2d(x.clamp(min=eps) ** p) **
  (1 / p)`` over the whole map). Computed as
  $m \big(\frac{1}{n} \sum_i (v_i / m)^p\big)^{1/p}$ with $v = \max(x, \epsilon)$
  and $m = \max_i v_i$, so no power overflows for large $p$ or $x$; the
  value and the gradients in $x$ and $p$ are finite for every finite input.

  Args:
    x: floating-point input ``(batch, *spatial, features)``.
    p: the power, a positive scalar or one per feature (shape
      ``(features,)``); differentiable (learned by the [`GeM`][jaxpool.nnx.GeM]
      layer).
    window_shape: ``None`` (default): global over every spatial axis,
      giving ``(batch, features)``; or a window per spatial axis, e.g.
      ``(3, 3)``, sliding as in [`avg_pool`][jaxpool.avg_pool] (the mean over
      each window's real cells: padding does not count).
    strides: with a window, its step (``None``: the window).
    padding: with a window, ``'VALID'`` (default), ``'SAME'``, an int, ints or
      ``(low, high)`` pairs.
    eps: the clamp $\epsilon > 0$ (default ``1e-6``, as cirtorch).
    spatial_ndim: global pooling over the ``spatial_ndim`` axes before the
      features (for zero or several batch axes); ``None``: axes 1 to -2.

  Returns:
    ``(batch, features)`` globally, else ``(batch, *out_spatial, features)``;
    ``x``'s dtype.

  Examples:
    >>> import jax.numpy as jnp, jaxpool
    >>> x = jnp.array([[1.0, 2.0, 3.0, 4.0]]).reshape(1, 2, 2, 1)
    >>> jaxpool.gem_pool(x, 1.0)  # the mean
    Array([[2.5]], dtype=float32)
    >>> jaxpool.gem_pool(x, 3.0)  # (mean of cubes) ** (1/3)
    Array([[2.924...]], dtype=float32)
  """
  x = dtypes.float_input(x, "gem_pool")
  eps = check_positive_number("eps", eps)
  compute = dtypes.compute_dtype(x.dtype)
  p = _strength("p", p, x, "gem_pool").astype(compute)
  values, mask = _pooled(
    jnp.maximum(x.astype(compute), eps), window_shape, strides, padding, spatial_ndim, "gem_pool"
  )
  weights = jnp.ones((), compute) if mask is None else mask.astype(compute)
  y = _generalized_mean(values, p, weights)
  return y.astype(x.dtype)


@compiled_when_eager(inspects=("r",))
def lse_pool(
  x: jax.typing.ArrayLike,
  r: jax.typing.ArrayLike,
  window_shape: Sequence[int] | None = None,
  strides: int | Sequence[int] | None = None,
  padding: PaddingLike = "VALID",
  *,
  spatial_ndim: int | None = None,
) -> jax.Array:
  r"""Log-sum-exp pooling, a smooth maximum:
  $y = m + \frac{1}{r} \log \big(\frac{1}{n} \sum_{i \in R} e^{r (x_i - m)}\big)$,
  $m = \max_{i \in R} x_i$.

  timm's ``LsePlus2d``: $r \to 0$ gives the mean, $r \to \infty$ the maximum.
  Computed as $m + \operatorname{log1p}\big(\frac{1}{n} \sum_i
  \operatorname{expm1}(r (x_i - m))\big) / r$, which keeps full precision for
  small $r$ (where $e^{r d} \approx 1$) and cannot overflow for large $r$: the
  value is stable for $r$ from $10^{-3}$ to $10^{3}$, and finite with finite
  gradients for every finite input.

  Args:
    x: floating-point input ``(batch, *spatial, features)``.
    r: the sharpness, a positive scalar or one per feature; differentiable
      (learned by the [`LSEPool`][jaxpool.nnx.LSEPool] layer).
    window_shape: ``None`` (default): global over every spatial axis, giving
      ``(batch, features)``; or a sliding window per spatial axis (padding
      does not count).
    strides: with a window, its step (``None``: the window).
    padding: with a window, ``'VALID'`` (default), ``'SAME'``, an int, ints or
      ``(low, high)`` pairs.
    spatial_ndim: global pooling over the ``spatial_ndim`` axes before the
      features; ``None``: axes 1 to -2.

  Returns:
    ``(batch, features)`` globally, else ``(batch, *out_spatial, features)``;
    ``x``'s dtype.

  Examples:
    >>> import jax.numpy as jnp, jaxpool
    >>> x = jnp.array([0.0, 0.0, 0.0, 8.0]).reshape(1, 2, 2, 1)
    >>> jaxpool.lse_pool(x, 1e-3)  # about the mean
    Array([[2.0...]], dtype=float32)
    >>> jaxpool.lse_pool(x, 100.0)  # about the max, 8 + log(1/4) / 100
    Array([[7.986...]], dtype=float32)
  """
  x = dtypes.float_input(x, "lse_pool")
  compute = dtypes.compute_dtype(x.dtype)
  r = _strength("r", r, x, "lse_pool").astype(compute)
  values, mask = _pooled(
    x.astype(compute), window_shape, strides, padding, spatial_ndim, "lse_pool"
  )
  m = jax.lax.stop_gradient(_window_max(values, mask))  # y does not depend on m
  r_cells = r[..., None, :] if r.ndim else r
  # d <= 0; padded cells read m itself (d = 0) and are masked out of the mean
  d = (jnp.where(mask, values, m) if mask is not None else values) - m
  y = jnp.squeeze(m, -2) + jnp.log1p(_mean(jnp.expm1(r_cells * d), mask)) / r
  return y.astype(x.dtype)


def check_layer_options(owner: str, function, strength, options: dict) -> None:
  """Raises, naming the layer, what ``function`` would raise for the
  initial strength and the pooling options (evaluated on shapes only: no
  computation runs)."""
  window = options.get("window_shape")
  spatial = tuple(window) if window is not None else (1,) * (options.get("spatial_ndim") or 1)
  try:
    jax.eval_shape(lambda: function(jnp.ones((1, *spatial, 1)), strength, **options))
  except (TypeError, ValueError) as error:
    raise type(error)(f"{owner}: {error}") from None
