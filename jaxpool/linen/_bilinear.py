"""Linen layers of bilinear and compact bilinear pooling."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import linen as nn

import jaxpool
from jaxpool._src.bilinear import count_sketches
from jaxpool.linen._base import PoolModule

__all__ = ["SKETCH", "BilinearPool", "CompactBilinearPool"]

# The collection CompactBilinearPool keeps its fixed count sketches in.
SKETCH = "sketch"


class BilinearPool(PoolModule, spec="BilinearPool"):
  """Bilinear pooling head: [`jaxpool.bilinear_pool`][jaxpool.bilinear_pool] (``x`` or ``x, y``).

  Examples:
    >>> import jax, jax.numpy as jnp
    >>> from jaxpool import linen as jplinen
    >>> jplinen.BilinearPool().apply({}, jnp.ones((2, 3, 3, 4))).shape
    (2, 16)
  """

  _: dataclasses.KW_ONLY
  normalize: bool = True
  eps: float = 0.0
  spatial_ndim: int | None = None

  def __post_init__(self):
    jax.eval_shape(lambda: jaxpool.bilinear_pool(jnp.zeros((1, 1, 1)), **self._options()))
    super().__post_init__()

  def _options(self) -> dict:
    return dict(normalize=self.normalize, eps=self.eps, spatial_ndim=self.spatial_ndim)

  def __call__(self, x, y=None) -> jax.Array:
    return jaxpool.bilinear_pool(x, y, **self._options())


class CompactBilinearPool(PoolModule, spec="CompactBilinearPool"):
  """Compact bilinear pooling head (Tensor Sketch): the two count sketches
  are drawn at ``init`` from the ``'params'`` rng and kept, never trained, in
  the ``'sketch'`` collection (pass the whole ``variables`` to ``apply``).

  Examples:
    >>> import jax, jax.numpy as jnp
    >>> from jaxpool import linen as jplinen
    >>> head = jplinen.CompactBilinearPool(output_dim=64)
    >>> x = jnp.ones((2, 3, 3, 8))
    >>> variables = head.init(jax.random.key(0), x)
    >>> head.apply(variables, x).shape, sorted(variables)
    ((2, 64), ['sketch'])
  """

  _: dataclasses.KW_ONLY
  output_dim: int
  normalize: bool = True
  eps: float = 0.0
  spatial_ndim: int | None = None

  def __post_init__(self):
    jax.eval_shape(
      lambda: jaxpool.compact_bilinear_pool(
        jnp.zeros((1, 1, 1)), key=jax.random.key(0), **self._options()
      )
    )
    super().__post_init__()

  def _options(self) -> dict:
    return dict(
      output_dim=self.output_dim,
      normalize=self.normalize,
      eps=self.eps,
      spatial_ndim=self.spatial_ndim,
    )

  @nn.compact
  def __call__(self, x, y=None) -> jax.Array:
    dims = (jnp.shape(x)[-1], jnp.shape(x if y is None else y)[-1])
    sketch = self.variable(
      SKETCH, "sketches", lambda: count_sketches(self.make_rng("params"), dims, self.output_dim)
    )
    return jaxpool.compact_bilinear_pool(x, y, sketches=sketch.value, **self._options())
