"""Linen layers of the generalised means: GeM, LSE pooling (learned strength)."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
from flax import linen as nn

from jaxpool._src import means
from jaxpool._src.core import checks
from jaxpool.linen._base import PoolModule

__all__ = ["GeM", "LSEPool"]


class GeM(PoolModule, spec="GeM"):
  """Generalised-mean pooling with a learned power ``p`` (see
  [`jaxpool.nnx.GeM`][jaxpool.nnx.GeM]); ``features`` comes from the input.

  Examples:
    >>> import jax, jax.numpy as jnp
    >>> from jaxpool import linen as jplinen
    >>> head = jplinen.GeM(p=3.0, per_feature=True)
    >>> x = jnp.ones((2, 7, 7, 16))
    >>> variables = head.init(jax.random.key(0), x)
    >>> jax.tree.map(jnp.shape, variables), head.apply(variables, x).shape
    ({'params': {'p': (16,)}}, (2, 16))
  """

  window_shape: Any = None
  strides: Any = None
  padding: Any = "VALID"
  _: dataclasses.KW_ONLY
  p: float = 3.0
  per_feature: bool = False
  eps: float = 1e-6
  spatial_ndim: int | None = None

  def __post_init__(self):
    checks.per_feature_shape("GeM", self.per_feature, 1)
    means.check_layer_options("GeM", means.gem_pool, self.p, self._options())
    super().__post_init__()

  def _options(self) -> dict:
    return dict(
      window_shape=self.window_shape,
      strides=self.strides,
      padding=self.padding,
      eps=self.eps,
      spatial_ndim=self.spatial_ndim,
    )

  @nn.compact
  def __call__(self, x: jax.typing.ArrayLike) -> jax.Array:
    x = jnp.asarray(x)
    shape = checks.per_feature_shape("GeM", self.per_feature, x.shape[-1])
    p = self.param("p", lambda key: jnp.full(shape, self.p, jnp.float32))
    return means.gem_pool(x, p, **self._options())


class LSEPool(PoolModule, spec="LSEPool"):
  """Log-sum-exp pooling with a learned sharpness ``r`` (see
  [`jaxpool.nnx.LSEPool`][jaxpool.nnx.LSEPool]); ``features`` comes from the input.

  Examples:
    >>> import jax, jax.numpy as jnp
    >>> from jaxpool import linen as jplinen
    >>> head = jplinen.LSEPool(r=10.0)
    >>> x = jnp.ones((2, 7, 7, 16))
    >>> variables = head.init(jax.random.key(0), x)
    >>> jax.tree.map(jnp.shape, variables), head.apply(variables, x).shape
    ({'params': {'r': ()}}, (2, 16))
  """

  window_shape: Any = None
  strides: Any = None
  padding: Any = "VALID"
  _: dataclasses.KW_ONLY
  r: float = 10.0
  per_feature: bool = False
  spatial_ndim: int | None = None

  def __post_init__(self):
    checks.per_feature_shape("LSEPool", self.per_feature, 1)
    means.check_layer_options("LSEPool", means.lse_pool, self.r, self._options())
    super().__post_init__()

  def _options(self) -> dict:
    return dict(
      window_shape=self.window_shape,
      strides=self.strides,
      padding=self.padding,
      spatial_ndim=self.spatial_ndim,
    )

  @nn.compact
  def __call__(self, x: jax.typing.ArrayLike) -> jax.Array:
    x = jnp.asarray(x)
    shape = checks.per_feature_shape("LSEPool", self.per_feature, x.shape[-1])
    r = self.param("r", lambda key: jnp.full(shape, self.r, jnp.float32))
    return means.lse_pool(x, r, **self._options())
