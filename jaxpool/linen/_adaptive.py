"""Linen layers of adaptive and global pooling."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax

import jaxpool
from jaxpool.linen._base import PoolModule

__all__ = ["AdaptiveAvgPool", "AdaptiveMaxPool", "GlobalAvgPool", "GlobalMaxPool"]


class AdaptiveAvgPool(PoolModule):
  """Adaptive average pooling over :func:`jaxpool.adaptive_avg_pool`.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxpool import linen as jplinen
    >>> x = jnp.arange(5.0).reshape(1, 5, 1)
    >>> jplinen.AdaptiveAvgPool((3,)).apply({}, x)[0, :, 0]
    Array([0.5, 2. , 3.5], dtype=float32)
    >>> jplinen.AdaptiveAvgPool((7, 7)).apply({}, jnp.ones((2, 13, 9, 3))).shape
    (2, 7, 7, 3)
  """

  output_shape: Sequence[int]

  def __call__(self, x: jax.typing.ArrayLike) -> jax.Array:
    return jaxpool.adaptive_avg_pool(x, self.output_shape)


class AdaptiveMaxPool(PoolModule):
  """Adaptive max pooling over :func:`jaxpool.adaptive_max_pool`.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxpool import linen as jplinen
    >>> x = jnp.array([0.0, 4.0, 1.0, 3.0, 2.0]).reshape(1, 5, 1)
    >>> jplinen.AdaptiveMaxPool((3,)).apply({}, x)[0, :, 0]
    Array([4., 4., 3.], dtype=float32)
  """

  output_shape: Sequence[int]

  def __call__(self, x: jax.typing.ArrayLike) -> jax.Array:
    return jaxpool.adaptive_max_pool(x, self.output_shape)


class _Global(PoolModule):
  _: dataclasses.KW_ONLY
  keepdims: bool = False
  spatial_ndim: int | None = None

  def options(self) -> dict:
    return dict(keepdims=self.keepdims, spatial_ndim=self.spatial_ndim)


class GlobalAvgPool(_Global):
  """Mean over the spatial axes, over :func:`jaxpool.global_avg_pool`.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxpool import linen as jplinen
    >>> x = jnp.ones((2, 4, 4, 3))
    >>> jplinen.GlobalAvgPool().apply({}, x).shape
    (2, 3)
    >>> jplinen.GlobalAvgPool(keepdims=True).apply({}, x).shape
    (2, 1, 1, 3)
  """

  def __call__(self, x: jax.typing.ArrayLike) -> jax.Array:
    return jaxpool.global_avg_pool(x, **self.options())


class GlobalMaxPool(_Global):
  """Maximum over the spatial axes, over :func:`jaxpool.global_max_pool`.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxpool import linen as jplinen
    >>> x = jnp.arange(8.0).reshape(1, 2, 2, 2)
    >>> jplinen.GlobalMaxPool().apply({}, x)
    Array([[6., 7.]], dtype=float32)
  """

  def __call__(self, x: jax.typing.ArrayLike) -> jax.Array:
    return jaxpool.global_max_pool(x, **self.options())
