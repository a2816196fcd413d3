"""Linen layer of covariance pooling."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import linen as nn

import jaxpool
from jaxpool._src import covariance
from jaxpool._src.core import checks
from jaxpool.linen._base import PoolModule

__all__ = ["CovariancePool"]


class CovariancePool(PoolModule, spec="CovariancePool"):
  """Covariance pooling head (see [`jaxpool.nnx.CovariancePool`][jaxpool.nnx.CovariancePool]): the
  optional reduction is one ``reduction`` parameter dict made and applied by
  the same functions as the NNX layer's; ``features`` comes from the input.

  Examples:
    >>> import jax, jax.numpy as jnp
    >>> from jaxpool import linen as jplinen
    >>> head = jplinen.CovariancePool(reduce_dim=4, output="triu")
    >>> x = jnp.ones((2, 5, 5, 8))
    >>> head.apply(head.init(jax.random.key(0), x), x).shape
    (2, 10)
  """

  _: dataclasses.KW_ONLY
  reduce_dim: int | None = None
  normalize: str | None = "sqrtm"
  output: str = "matrix"
  iterations: int = 5
  eps: float = 1e-5
  spatial_ndim: int | None = None

  def __post_init__(self):
    jax.eval_shape(lambda: jaxpool.covariance_pool(jnp.zeros((1, 2, 1)), **self._options()))
    if self.reduce_dim is not None:
      checks.check_features("CovariancePool(reduce_dim=...)", self.reduce_dim)
    super().__post_init__()

  def _options(self) -> dict:
    return dict(
      normalize=self.normalize,
      output=self.output,
      iterations=self.iterations,
      eps=self.eps,
      spatial_ndim=self.spatial_ndim,
    )

  @nn.compact
  def __call__(self, x: jax.typing.ArrayLike) -> jax.Array:
    x = jnp.asarray(x)
    if self.reduce_dim is not None:
      params = self.param(
        "reduction", lambda key: covariance.init_reduction_params(key, x.shape[-1], self.reduce_dim)
      )
      x = covariance.reduce_features(params, x)
    return jaxpool.covariance_pool(x, **self._options())
