"""Covariance (second-order) pooling: MPN-COV / iSQRT-COV and log-Euclidean.

The global descriptor of a feature map is the covariance of its positions'
feature vectors, optionally normalised by a matrix function: the square root
(Li et al., iSQRT-COV, CVPR 2018: a coupled Newton-Schulz iteration, matmuls
only) or the logarithm (log-Euclidean, through ``eigh`` with a derivative
that stays finite for repeated eigenvalues).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxpool._src.core.checks import check_choice, check_positive_number, is_int
from jaxpool._src.core.descriptors import positions

__all__ = ["NORMALIZATIONS", "OUTPUTS", "covariance_pool", "triu_vector"]

NORMALIZATIONS = ("sqrtm", "logm", None)
OUTPUTS = ("matrix", "triu")


def _covariance(rows: jax.Array) -> jax.Array:
  """``C = (1/M) sum_l (x_l - mu)(x_l - mu)^T`` from the centred rows
  ``(*batch, M, d)`` (never the ``M x M`` centring matrix)."""
  centred = rows - jnp.mean(rows, axis=-2, keepdims=True)
  return jnp.einsum("...mi,...mj->...ij", centred, centred) / rows.shape[-2]


def _newton_schulz_sqrt(c: jax.Array, iterations: int) -> jax.Array:
  """iSQRT-COV: ``A = C / tr(C)``, ``Y0 = A``, ``Z0 = I``, ``T = (3I - Z Y) / 2``,
  ``Y <- Y T``, ``Z <- T Z`` (the last step only ``Y T``), then
  ``Y sqrt(tr(C))``. A zero covariance gives 0: the trace is floored at the
  square root of the dtype's smallest normal number, so neither it nor its
  square (in the derivative of the division) underflows to 0."""
  eye = jnp.eye(c.shape[-1], dtype=c.dtype)
  trace = jnp.trace(c, axis1=-2, axis2=-1)[..., None, None]
  trace = jnp.maximum(trace, np.sqrt(jnp.finfo(c.dtype).tiny))
  y, z = c / trace, jnp.zeros_like(c) + eye  # (zeros_like: c's sharding)
  for _ in range(iterations - 1):
    t = 0.5 * (3 * eye - z @ y)
    y, z = y @ t, t @ z
  y = y @ (0.5 * (3 * eye - z @ y))
  return y * jnp.sqrt(trace)


def _log_divided_differences(lam: jax.Array, eps: float) -> jax.Array:
  """``K_ij = (f(l_i) - f(l_j)) / (l_i - l_j)`` for ``f(l) = log(max(l, eps))``,
  with ``f'(l_i)`` on the diagonal and for equal eigenvalues, computed without
  cancellation: for ``l_i, l_j > eps``, ``K = log1p(t) / t / l_j`` with
  ``t = (l_i - l_j) / l_j`` (a series near ``t = 0``); 0 where both are at the
  floor."""
  a, b = lam[..., :, None], lam[..., None, :]
  above_a, above_b = a > eps, b > eps
  floor_a, floor_b = jnp.maximum(a, eps), jnp.maximum(b, eps)
  t = (floor_a - floor_b) / floor_b
  small = jnp.abs(t) < 1e-3
  safe_t = jnp.where(small, 1.0, t)
  series = 1 - t / 2 + t * t / 3 - t * t * t / 4
  ratio = jnp.where(small, series, jnp.log1p(jnp.where(small, 0.0, safe_t)) / safe_t)
  both = ratio / floor_b
  # One eigenvalue at the floor: the other is strictly larger, no 0/0.
  gap = jnp.where(above_a == above_b, 1.0, a - b)
  one = (jnp.log(floor_a) - jnp.log(floor_b)) / gap
  return jnp.where(above_a & above_b, both, jnp.where(above_a | above_b, one, 0.0))


@jax.custom_vjp
def _logm_psd(c: jax.Array, eps: float) -> jax.Array:
  lam, u = jnp.linalg.eigh(c)
  return (u * jnp.log(jnp.maximum(lam, eps))[..., None, :]) @ jnp.swapaxes(u, -1, -2)


def _logm_fwd(c, eps):
  lam, u = jnp.linalg.eigh(c)
  out = (u * jnp.log(jnp.maximum(lam, eps))[..., None, :]) @ jnp.swapaxes(u, -1, -2)
  return out, (lam, u, eps)


def _logm_bwd(residuals, g):
  """Daleckii-Krein: ``dC = U (K o (U^T sym(G) U)) U^T``."""
  lam, u, eps = residuals
  ut = jnp.swapaxes(u, -1, -2)
  sym = 0.5 * (g + jnp.swapaxes(g, -1, -2))
  inner = _log_divided_differences(lam, eps) * (ut @ sym @ u)
  return u @ inner @ ut, None


_logm_psd.defvjp(_logm_fwd, _logm_bwd)


def triu_vector(m: jax.Array) -> jax.Array:
  """The upper triangle of ``(..., d, d)`` in ``np.triu_indices(d)`` order,
  ``(..., d (d + 1) / 2)``, off-diagonal entries unscaled (as iSQRT-COV's
  ``Triuvec``)."""
  rows, cols = np.triu_indices(m.shape[-1])
  return m[..., rows, cols]


def covariance_pool(
    x: jax.typing.ArrayLike,
    *,
    normalize: str | None = "sqrtm",
    output: str = "matrix",
    iterations: int = 5,
    eps: float = 1e-5,
    spatial_ndim: int | None = None,
) -> jax.Array:
  """Covariance pooling, with iSQRT-COV's matrix square root or the matrix log.

  The covariance of the ``M`` positions' feature vectors ``x_l`` (centred,
  biased, as MPN-COV/iSQRT-COV)::

      C = (1/M) sum_l (x_l - mu)(x_l - mu)^T,     mu = (1/M) sum_l x_l,

  then ``normalize``:

  * ``"sqrtm"``: iSQRT-COV (Li et al., CVPR 2018): ``A = C / tr(C)``,
    ``Y_0 = A``, ``Z_0 = I``, ``T_k = (3I - Z_k Y_k) / 2``,
    ``Y_{k+1} = Y_k T_k``, ``Z_{k+1} = T_k Z_k`` for ``iterations`` steps
    (the last computes only ``Y``), then ``sqrt(tr(C)) Y``, which
    approximates ``C^{1/2}`` (exactly as ``iterations`` grows, for every
    positive semi-definite ``C``). Matmuls only; the gradient is the
    derivative of the iteration (autodiff through it).
  * ``"logm"``: ``U diag(log(max(lambda, eps))) U^T`` from ``C = U diag(lambda)
    U^T`` (``eigh``); its custom derivative is the Daleckii-Krein formula
    with guarded divided differences, finite for repeated eigenvalues (plain
    ``eigh`` autodiff divides by ``lambda_i - lambda_j`` and gives NaN).
    Rank-deficient covariances (more features than positions) are the
    normal case: their zero eigenvalues sit at the floor ``eps``.
  * ``None``: ``C`` itself.

  Every mode is finite, with finite gradients, for rank-deficient
  covariances and for a constant map (``C = 0``; ``"sqrtm"`` gives 0).

  Args:
    x: ``(batch, *spatial, features)``, floating point; half precision is
      computed in float32.
    normalize: ``"sqrtm"``, ``"logm"`` or ``None``.
    output: ``"matrix"`` (``(batch, d, d)``) or ``"triu"`` (the upper
      triangle in ``np.triu_indices`` order, ``d (d + 1) / 2`` values).
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
  c = _covariance(rows)
  if normalize == "sqrtm":
    c = _newton_schulz_sqrt(c, iterations)
  elif normalize == "logm":
    c = _logm_psd(c, eps)
  if output == "triu":
    c = triu_vector(c)
  return c.astype(x.dtype)
