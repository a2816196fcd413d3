"""Linen layers of the generalised means: GeM, LSE pooling (learned strength)."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
from flax import linen as nn

from jaxpool._src import means
from jaxpool._src.core import checks
from jaxpool.linen._base import PoolModule

__all__ = ["GeM", "LSEPool"]


class _LearnedMean(PoolModule):
  """A generalised mean with a learned strength, the field (and parameter)
  named ``strength_name``: one value, or one per feature. The function's
  other options are the window fields, ``spatial_ndim`` and
  ``extra_options``."""

  strength_name: ClassVar[str] = ""
  extra_options: ClassVar[tuple[str, ...]] = ()

  window_shape: Any = None
  strides: Any = None
  padding: Any = "VALID"
  _: dataclasses.KW_ONLY
  per_feature: bool = False
  spatial_ndim: int | None = None

  def __post_init__(self):
    owner = type(self).__name__
    checks.per_feature_shape(owner, self.per_feature, 1)
    strength = getattr(self, self.strength_name)
    means.check_layer_options(owner, type(self).function, strength, self._options())
    super().__post_init__()

  def _options(self) -> dict:
    names = ("window_shape", "strides", "padding", "spatial_ndim") + self.extra_options
    return {name: getattr(self, name) for name in names}

  @nn.compact
  def __call__(self, x: jax.typing.ArrayLike) -> jax.Array:
    x = jnp.asarray(x)
    shape = checks.per_feature_shape(type(self).__name__, self.per_feature, x.shape[-1])
    initial = getattr(self, self.strength_name)
    strength = self.param(self.strength_name, lambda key: jnp.full(shape, initial, jnp.float32))
    return type(self).function(x, strength, **self._options())


class GeM(_LearnedMean, spec="GeM"):
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

  strength_name = "p"
  extra_options = ("eps",)

  _: dataclasses.KW_ONLY
  p: float = 3.0
  eps: float = 1e-6


class LSEPool(_LearnedMean, spec="LSEPool"):
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

  strength_name = "r"

  _: dataclasses.KW_ONLY
  r: float = 10.0
