"""Shared pieces of the global descriptors (covariance, bilinear, NetVLAD):
the positions of a feature map as rows, the signed square root and the L2
normalisation, each with a finite derivative at 0."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxpool._src.core import dtypes
from jaxpool._src.core.geometry import global_axes
from jaxpool._src.core.sharding import reshape_spatial

__all__ = [
  "l2_normalize",
  "positions",
  "power_of_two_scale",
  "signed_sqrt",
  "times_power_of_two",
]


def positions(x, spatial_ndim: int | None, op: str, *, min_positions: int = 1) -> jax.Array:
  """``x`` of shape ``(*batch, *spatial, features)`` as ``(*batch, M,
  features)`` rows, ``M`` the number of spatial positions, in the compute
  dtype (float32 for half precision). The spatial axes are axes 1 to -2, or
  the ``spatial_ndim`` axes before the features."""
  x = dtypes.float_input(x, op)
  axes = global_axes(x, spatial_ndim, op)
  count = 1
  for a in axes:
    count *= x.shape[a]
  if count < min_positions:
    raise ValueError(
      f"{op} needs at least {min_positions} spatial positions; got {count} (x.shape={x.shape})."
    )
  rows = reshape_spatial(x, x.shape[: axes[0]] + (count, x.shape[-1]), axes[0])
  return rows.astype(dtypes.compute_dtype(x.dtype))


def times_power_of_two(v: jax.Array, exponent: jax.Array) -> jax.Array:
  """``v * 2^exponent`` (int ``exponent`` broadcasting against ``v``),
  exact until it leaves the dtype's range (then 0 or inf), with the
  derivative ``2^exponent``. Three factors, each a power of two the dtype
  holds, so no factor overflows before the product does; ``jnp.ldexp`` is
  not used on ``v`` (its derivative at 0 is 1)."""
  third = exponent // 3
  for part in (third, third, exponent - 2 * third):
    v = v * jax.lax.stop_gradient(jnp.ldexp(jnp.ones((), v.dtype), part))
  return v


def power_of_two_scale(rows: jax.Array) -> tuple[jax.Array, jax.Array]:
  """``(rows / 2^e, e)`` with ``2^e`` the power of two at or above the
  largest ``|rows|`` of each batch element (over the last two axes), so that
  the scaled rows lie in ``[-1, 1]``: their products and sums of squares
  cannot overflow, and dividing by a power of two rounds nothing. ``e`` is
  an int32 constant for the derivative (``e = 0`` for zero or non-finite
  rows), shaped to broadcast against ``rows``."""
  top = jax.lax.stop_gradient(jnp.max(jnp.abs(rows), axis=(-2, -1), keepdims=True))
  _, exponent = jnp.frexp(jnp.where(jnp.isfinite(top) & (top > 0), top, 0.5))
  exponent = exponent.astype(jnp.int32)
  return times_power_of_two(rows, -exponent), exponent


@jax.custom_jvp
def signed_sqrt(v: jax.Array) -> jax.Array:
  """``sign(v) * sqrt(|v|)``, exact in value; its derivative
  ``1 / (2 sqrt(|v|))`` is taken as 0 at ``v = 0`` (finite there).

  Examples:
    >>> import jax.numpy as jnp
    >>> signed_sqrt(jnp.array([-4.0, 0.0, 9.0]))
    Array([-2.,  0.,  3.], dtype=float32)
  """
  return jnp.sign(v) * jnp.sqrt(jnp.abs(v))


@signed_sqrt.defjvp
def _signed_sqrt_jvp(primals, tangents):
  (v,), (dv,) = primals, tangents
  root = jnp.sqrt(jnp.abs(v))
  safe = jnp.where(root > 0, root, 1)
  return jnp.sign(v) * root, jnp.where(root > 0, dv / (2 * safe), 0)


def l2_normalize(v: jax.Array, axis=-1, eps: float = 1e-12) -> jax.Array:
  """``v / max(||v||_2, eps)`` along ``axis`` (``torch.nn.functional.normalize``):
  a zero vector stays zero, with a finite gradient. The vector is scaled by
  its largest magnitude first (a constant for the derivative: the result
  does not depend on it), so entries up to the dtype's maximum do not
  overflow the sum of squares."""
  scale = jax.lax.stop_gradient(jnp.max(jnp.abs(v), axis=axis, keepdims=True))
  scale = jnp.where(scale > 0, scale, 1)
  u = v / scale
  # max before sqrt: sqrt's derivative at 0 would give 0 * inf = NaN.
  floor = jnp.square(eps / scale)
  norm = jnp.sqrt(jnp.maximum(jnp.sum(u * u, axis=axis, keepdims=True), floor))
  return u / norm
