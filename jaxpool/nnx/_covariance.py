"""NNX layer of covariance pooling (iSQRT-COV / log-Euclidean)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

import jaxpool
from jaxpool._src import covariance
from jaxpool.nnx._base import PoolLayer, parameters, require_rngs, values

__all__ = ["CovariancePool"]


class CovariancePool(PoolLayer, spec="CovariancePool"):
  """Covariance pooling head: [`jaxpool.covariance_pool`][jaxpool.covariance_pool], optionally
  after iSQRT-COV's reduction of the features to ``reduce_dim``.

  The reduction is a learned 1x1 convolution and ReLU
  (``relu(x @ kernel + bias)``; iSQRT-COV has a BatchNorm in between, which
  a model can add before this layer), e.g. 256 -> 64 features, so the
  matrix is ``reduce_dim x reduce_dim``.

  Args:
    features: input features (needed with ``reduce_dim``).
    reduce_dim: ``None`` (no reduction) or the reduced feature count.
    normalize: ``"sqrtm"`` (default, iSQRT-COV's matrix square root), ``"logm"``
      or ``None``, as in [`jaxpool.covariance_pool`][jaxpool.covariance_pool].
    output: ``"matrix"`` (default, ``(batch, d, d)``) or ``"triu"`` (the upper
      triangle, ``d (d + 1) / 2`` values).
    iterations: Newton-Schulz steps of ``"sqrtm"``; default 5, as iSQRT-COV.
    eps: the eigenvalue floor of ``"logm"``; default ``1e-5``.
    spatial_ndim: the number of spatial axes before the features; ``None``
      (default) means axes 1 to -2 (one batch axis).
    rngs: initialises the reduction.

  Examples:
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> from jaxpool import nnx as jpnnx
    >>> head = jpnnx.CovariancePool(features=8, reduce_dim=4, output="triu", rngs=nnx.Rngs(0))
    >>> head(jnp.ones((2, 5, 5, 8))).shape
    (2, 10)
  """

  def __init__(
    self,
    *,
    features: int | None = None,
    reduce_dim: int | None = None,
    normalize: str | None = "sqrtm",
    output: str = "matrix",
    iterations: int = 5,
    eps: float = 1e-5,
    spatial_ndim: int | None = None,
    rngs: nnx.Rngs | None = None,
  ):
    self.pool_options = dict(
      normalize=normalize, output=output, iterations=iterations, eps=eps, spatial_ndim=spatial_ndim
    )
    # Checks every option once, at construction (no computation runs).
    jax.eval_shape(lambda: jaxpool.covariance_pool(jnp.zeros((1, 2, 1)), **self.pool_options))
    if reduce_dim is None:
      self.reduction = None
    else:
      rngs = require_rngs("CovariancePool(reduce_dim=...)", rngs)
      self.reduction = parameters(
        covariance.init_reduction_params(rngs.params(), features, reduce_dim)
      )

  def __call__(self, x: jax.typing.ArrayLike) -> jax.Array:
    x = jnp.asarray(x)
    if self.reduction is not None:
      x = covariance.reduce_features(values(self.reduction), x)
    return jaxpool.covariance_pool(x, **self.pool_options)
