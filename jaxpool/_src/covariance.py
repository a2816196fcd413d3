"""Covariance (second-order) pooling: MPN-COV / iSQRT-COV and log-Euclidean.

The global descriptor of a feature map is the covariance of its positions'
feature vectors, optionally normalised by a matrix function: the square root
(Li et al., iSQRT-COV, CVPR 2018: a coupled Newton-Schulz iteration, matmuls
only) or the logarithm (log-Euclidean, through ``eigh`` with a derivative
that stays finite for repeated eigenvalues).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxpool._src.core.checks import check_choice, check_features, check_positive_number, is_int
from jaxpool._src.core.descriptors import (
  positions,
  power_of_two_scale,
  times_power_of_two,
)
from jaxpool._src.core.eager import compiled_when_eager

__all__ = [
  "covariance_pool",
  "init_reduction_params",
  "NORMALIZATIONS",
  "OUTPUTS",
  "reduce_features",
  "triu_vector",
]

NORMALIZATIONS = ("sqrtm", "logm", None)
OUTPUTS = ("matrix", "triu")


def _covariance(rows: jax.Array) -> jax.Array:
  """``C = (1/M) sum_l (x_l - mu)(x_l - mu)^T`` from the centred rows
  ``(*batch, M, d)`` (never the ``M x M`` centring matrix). The rows are
  shifted by the first one before the mean is taken (C does not change), so
  a constant map gives exactly 0 whatever the mean's rounding."""
  rows = rows - rows[..., :1, :]
  centred = rows - jnp.mean(rows, axis=-2, keepdims=True)
  return jnp.einsum("...mi,...mj->...ij", centred, centred) / rows.shape[-2]


def _newton_schulz_sqrt(c: jax.Array, iterations: int) -> jax.Array:
  """iSQRT-COV: ``A = C / tr(C)``, ``Y0 = A``, ``Z0 = I``, ``T = (3I - Z Y) / 2``,
  ``Y <- Y T``, ``Z <- T Z`` (the last step only ``Y T``), then
  ``Y sqrt(tr(C))``. A zero covariance gives 0: the trace is floored at the
  square root of the dtype's smallest normal number, so neither it nor its
  square (in the derivative of the division) underflows to 0, and the
  derivative there is taken as 0."""
  eye = jnp.eye(c.shape[-1], dtype=c.dtype)
  trace = jnp.trace(c, axis1=-2, axis2=-1)[..., None, None]
  floor = np.sqrt(jnp.finfo(c.dtype).tiny)
  # Below the floor (a constant map) the square root's derivative is
  # unbounded; it is taken as 0 there, which keeps every gradient finite.
  above = trace > floor
  c = jnp.where(above, c, jax.lax.stop_gradient(c))
  trace = jnp.where(above, trace, floor)
  y, z = c / trace, jnp.zeros_like(c) + eye  # (zeros_like: c's sharding)
  for _ in range(iterations - 1):
    t = 0.5 * (3 * eye - z @ y)
    y, z = y @ t, t @ z
  y = y @ (0.5 * (3 * eye - z @ y))
  return y * jnp.sqrt(trace)


def _floored_log(lam: jax.Array, floor: jax.Array, log_floor: jax.Array) -> jax.Array:
  """``log(max(lam, floor))``, with ``log(floor)`` given: the floor may be
  too small for the dtype (a scaled ``eps``) while its log is not."""
  return jnp.where(lam > floor, jnp.log(jnp.where(lam > floor, lam, 1)), log_floor)


def _log_divided_differences(lam, floor, log_floor) -> jax.Array:
  """``K_ij = (f(l_i) - f(l_j)) / (l_i - l_j)`` for ``f`` the
  `_floored_log`, with ``f'(l_i)`` on the diagonal and for equal
  eigenvalues, computed without cancellation: for ``l_i, l_j`` above the
  floor, ``K = log1p(t) / t / l_j`` with ``t = (l_i - l_j) / l_j`` (a series
  near ``t = 0``); 0 where both are at the floor."""
  a, b = lam[..., :, None], lam[..., None, :]
  floor = floor[..., None]
  above_a, above_b = a > floor, b > floor
  floor_a, floor_b = jnp.maximum(a, floor), jnp.maximum(b, floor)
  safe_b = jnp.where(above_b, floor_b, 1)
  t = (floor_a - floor_b) / safe_b
  small = jnp.abs(t) < 1e-3
  safe_t = jnp.where(small, 1.0, t)
  series = 1 - t / 2 + t * t / 3 - t * t * t / 4
  ratio = jnp.where(small, series, jnp.log1p(jnp.where(small, 0.0, safe_t)) / safe_t)
  both = ratio / safe_b
  # One eigenvalue at the floor: the other is strictly larger, no 0/0.
  log_floor = log_floor[..., None]
  gap = jnp.where(above_a == above_b, 1.0, a - b)
  one = (_floored_log(a, floor, log_floor) - _floored_log(b, floor, log_floor)) / gap
  return jnp.where(above_a & above_b, both, jnp.where(above_a | above_b, one, 0.0))


@jax.custom_vjp
def _logm_psd(c: jax.Array, floor: jax.Array, log_floor: jax.Array) -> jax.Array:
  """``U diag(log(max(lambda, floor))) U^T``; ``floor`` and ``log_floor`` are
  per matrix, ``(*batch, 1)``."""
  return _logm_fwd(c, floor, log_floor)[0]


def _logm_fwd(c, floor, log_floor):
  lam, u = jnp.linalg.eigh(c)
  logs = _floored_log(lam, floor, log_floor)
  out = (u * logs[..., None, :]) @ jnp.swapaxes(u, -1, -2)
  return out, (lam, u, floor, log_floor)


def _logm_bwd(residuals, g):
  """Daleckii-Krein: ``dC = U (K o (U^T sym(G) U)) U^T``."""
  lam, u, floor, log_floor = residuals
  ut = jnp.swapaxes(u, -1, -2)
  sym = 0.5 * (g + jnp.swapaxes(g, -1, -2))
  inner = _log_divided_differences(lam, floor, log_floor) * (ut @ sym @ u)
  return u @ inner @ ut, None, None


_logm_psd.defvjp(_logm_fwd, _logm_bwd)


def triu_vector(m: jax.Array) -> jax.Array:
  """The upper triangle of ``(..., d, d)`` in ``np.triu_indices(d)`` order,
  ``(..., d (d + 1) / 2)``, off-diagonal entries unscaled (as iSQRT-COV's
  ``Triuvec``)."""
  rows, cols = np.triu_indices(m.shape[-1])
  return m[..., rows, cols]


@compiled_when_eager()
def covariance_pool(
  x: jax.typing.ArrayLike,
  *,
  normalize: str | None = "sqrtm",
  output: str = "matrix",
  iterations: int = 5,
  eps: float = 1e-5,
  spatial_ndim: int | None = None,
) -> jax.Array:
  r"""Covariance pooling, with iSQRT-COV's matrix square root or the matrix log.

  The covariance of the $M$ positions' feature vectors $x_l$ (centred,
  biased, as MPN-COV/iSQRT-COV):

  $$
  C = \frac{1}{M} \sum_l (x_l - \mu)(x_l - \mu)^\top, \qquad
  \mu = \frac{1}{M} \sum_l x_l,
  $$

  then ``normalize``:

  * ``"sqrtm"``: iSQRT-COV (Li et al., CVPR 2018): $A = C / \operatorname{tr}(C)$,

      $$
      Y_0 = A, \quad Z_0 = I, \quad T_k = (3I - Z_k Y_k) / 2, \quad
      Y_{k+1} = Y_k T_k, \quad Z_{k+1} = T_k Z_k
      $$

      for ``iterations`` steps (the last computes only $Y$), then
      $\sqrt{\operatorname{tr}(C)}\, Y$, which approximates $C^{1/2}$
      (exactly as ``iterations`` grows, for every positive semi-definite
      $C$). Matmuls only; the gradient is the derivative of the iteration
      (autodiff through it).

  * ``"logm"``: $U \operatorname{diag}(\log \max(\lambda, \mathrm{eps})) U^\top$
    from $C = U \operatorname{diag}(\lambda) U^\top$ (``eigh``); its custom
    derivative is the Daleckii-Krein formula with guarded divided
    differences, finite for repeated eigenvalues (plain ``eigh`` autodiff
    divides by $\lambda_i - \lambda_j$ and gives NaN).
    Rank-deficient covariances (more features than positions) are the
    normal case: their zero eigenvalues sit at the floor ``eps``.

  * ``None``: $C$ itself.

  Every mode is finite, with finite gradients, for rank-deficient
  covariances and for a constant map ($C = 0$ exactly at any magnitude;
  ``"sqrtm"`` gives 0). ``"sqrtm"`` and ``"logm"`` work on the rows divided
  by a power of two into ``[-1, 1]`` and undo the scale exactly, so they are
  finite for any finite input; ``None`` returns $C$ itself, which leaves
  float32 (``inf``, never NaN) for features above about ``1e19``.

  Args:
    x: ``(batch, *spatial, features)``, floating point; half precision is
      computed in float32.
    normalize: ``"sqrtm"``, ``"logm"`` or ``None``.
    output: ``"matrix"`` (``(batch, d, d)``) or ``"triu"`` (the upper
      triangle in ``np.triu_indices`` order, $d (d + 1) / 2$ values).
    iterations: Newton-Schulz steps of ``"sqrtm"`` (iSQRT-COV uses 5).
    eps: the eigenvalue floor of ``"logm"``.
    spatial_ndim: the number of spatial axes before the features, for
      layouts other than one batch axis.

  Returns:
    ``(batch, d, d)`` or ``(batch, d (d + 1) / 2)``, ``x``'s dtype.

  Examples:
    >>> import jax.numpy as jnp, jaxpool
    >>> x = jnp.stack([jnp.array([[1.0, 0.0], [-1.0, 0.0]])])[:, :, None, :]  # (1, 2, 1, 2)
    >>> jaxpool.covariance_pool(x, normalize=None)
    Array([[[1., 0.],
            [0., 0.]]], dtype=float32)
    >>> jaxpool.covariance_pool(x, output="triu").round(3)
    Array([[1., 0., 0.]], dtype=float32)
  """
  if normalize is not None:
    check_choice("normalize", normalize, [n for n in NORMALIZATIONS if n])
  check_choice("output", output, OUTPUTS)
  if not is_int(iterations) or iterations < 1:
    raise ValueError(f"iterations must be an int >= 1; got {iterations!r}.")
  eps = check_positive_number("eps", eps)
  x = jnp.asarray(x)
  rows = positions(x, spatial_ndim, "covariance_pool", min_positions=2)
  # C = 4^e C' from the rows scaled into [-1, 1]: no overflow in the mean or
  # the products; each mode undoes the scale where its output needs it.
  scaled, exponent = power_of_two_scale(rows)
  c = _covariance(scaled)
  if normalize is None:
    # Where C leaves the range, products of +-inf can sum to NaN (how depends
    # on the backend's dot): those entries are 4^e C', exactly +-inf. The
    # derivative is the plain formula's (4^e overflows in a cotangent).
    plain = _covariance(rows)
    c = jnp.where(jnp.isfinite(plain), plain, times_power_of_two(c, 2 * exponent))
  elif normalize == "sqrtm":
    c = times_power_of_two(_newton_schulz_sqrt(c, iterations), exponent)
  elif normalize == "logm":
    # log(max(4^e l', eps)) = log(max(l', eps 4^-e)) + 2 e log 2.
    shift = (2 * exponent[..., 0]).astype(c.dtype) * np.log(2.0).astype(c.dtype)
    floor = jnp.ldexp(jnp.asarray(eps, c.dtype), -2 * exponent[..., 0])
    c = _logm_psd(c, floor, np.log(eps).astype(c.dtype) - shift)
    c = c + shift[..., None] * jnp.eye(c.shape[-1], dtype=c.dtype)
  if output == "triu":
    c = triu_vector(c)
  return c.astype(x.dtype)


# ---------------------------------------------------------------------------
# The layer's parametrisation: iSQRT-COV's 1x1 reduction.
# ---------------------------------------------------------------------------


def init_reduction_params(key: jax.Array, features: int, dim: int) -> dict[str, jax.Array]:
  """iSQRT-COV's 1x1 convolution from ``features`` to ``dim`` features:
  ``kernel`` ``(features, dim)`` (LeCun normal) and ``bias`` (zeros)."""
  features = check_features("CovariancePool", features)
  dim = check_features("CovariancePool(reduce_dim=...)", dim)
  kernel = jax.random.normal(key, (features, dim)) / math.sqrt(features)
  return {"kernel": kernel, "bias": jnp.zeros((dim,))}


def reduce_features(params: dict[str, jax.Array], x: jax.Array) -> jax.Array:
  """``relu(x @ kernel + bias)`` over the feature axis (the 1x1 convolution
  and ReLU; iSQRT-COV also batch-normalises in between)."""
  kernel = params["kernel"].astype(x.dtype)
  return jax.nn.relu(x @ kernel + params["bias"].astype(x.dtype))
