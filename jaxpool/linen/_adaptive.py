"""Linen layers of adaptive and global pooling."""

from __future__ import annotations

from jaxpool.linen._base import FunctionModule

__all__ = ["AdaptiveAvgPool", "AdaptiveMaxPool", "GlobalAvgPool", "GlobalMaxPool"]


class AdaptiveAvgPool(FunctionModule, spec="AdaptiveAvgPool"):
  """Adaptive average pooling over [`jaxpool.adaptive_avg_pool`][jaxpool.adaptive_avg_pool].

  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxpool import linen as jplinen
    >>> x = jnp.arange(5.0).reshape(1, 5, 1)
    >>> jplinen.AdaptiveAvgPool((3,)).apply({}, x)[0, :, 0]
    Array([0.5, 2. , 3.5], dtype=float32)
    >>> jplinen.AdaptiveAvgPool((7, 7)).apply({}, jnp.ones((2, 13, 9, 3))).shape
    (2, 7, 7, 3)
  """


class AdaptiveMaxPool(FunctionModule, spec="AdaptiveMaxPool"):
  """Adaptive max pooling over [`jaxpool.adaptive_max_pool`][jaxpool.adaptive_max_pool].

  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxpool import linen as jplinen
    >>> x = jnp.array([0.0, 4.0, 1.0, 3.0, 2.0]).reshape(1, 5, 1)
    >>> jplinen.AdaptiveMaxPool((3,)).apply({}, x)[0, :, 0]
    Array([4., 4., 3.], dtype=float32)
  """


class GlobalAvgPool(FunctionModule, spec="GlobalAvgPool"):
  """Mean over the spatial axes, over [`jaxpool.global_avg_pool`][jaxpool.global_avg_pool].

  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxpool import linen as jplinen
    >>> x = jnp.ones((2, 4, 4, 3))
    >>> jplinen.GlobalAvgPool().apply({}, x).shape
    (2, 3)
    >>> jplinen.GlobalAvgPool(keepdims=True).apply({}, x).shape
    (2, 1, 1, 3)
  """


class GlobalMaxPool(FunctionModule, spec="GlobalMaxPool"):
  """Maximum over the spatial axes, over [`jaxpool.global_max_pool`][jaxpool.global_max_pool].

  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxpool import linen as jplinen
    >>> x = jnp.arange(8.0).reshape(1, 2, 2, 2)
    >>> jplinen.GlobalMaxPool().apply({}, x)
    Array([[6., 7.]], dtype=float32)
  """
