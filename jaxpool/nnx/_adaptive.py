"""NNX layers of adaptive and global pooling."""

from __future__ import annotations

from jaxpool.nnx._base import FunctionLayer

__all__ = ["AdaptiveAvgPool", "AdaptiveMaxPool", "GlobalAvgPool", "GlobalMaxPool"]


class AdaptiveAvgPool(FunctionLayer, spec="AdaptiveAvgPool"):
  """Adaptive average pooling to a fixed ``output_shape``.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxpool import nnx as jpnnx
    >>> x = jnp.arange(16.0).reshape(1, 4, 4, 1)
    >>> jpnnx.AdaptiveAvgPool((2, 2))(x)[..., 0]
    Array([[[ 2.5,  4.5],
            [10.5, 12.5]]], dtype=float32)
    >>> jpnnx.AdaptiveAvgPool((3, 3))(jnp.ones((2, 7, 10, 8))).shape
    (2, 3, 3, 8)
  """


class AdaptiveMaxPool(FunctionLayer, spec="AdaptiveMaxPool"):
  """Adaptive max pooling to a fixed ``output_shape``.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxpool import nnx as jpnnx
    >>> x = jnp.arange(16.0).reshape(1, 4, 4, 1)
    >>> jpnnx.AdaptiveMaxPool((2, 2))(x)[..., 0]
    Array([[[ 5.,  7.],
            [13., 15.]]], dtype=float32)
    >>> jpnnx.AdaptiveMaxPool((3, 3))(jnp.ones((2, 7, 10, 8))).shape
    (2, 3, 3, 8)
  """


class GlobalAvgPool(FunctionLayer, spec="GlobalAvgPool"):
  """Mean over the spatial axes: ``(batch, *spatial, C) -> (batch, C)``.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxpool import nnx as jpnnx
    >>> x = jnp.arange(8.0).reshape(1, 2, 2, 2)
    >>> jpnnx.GlobalAvgPool()(x)
    Array([[3., 4.]], dtype=float32)
    >>> jpnnx.GlobalAvgPool(keepdims=True)(x).shape
    (1, 1, 1, 2)
  """


class GlobalMaxPool(FunctionLayer, spec="GlobalMaxPool"):
  """Maximum over the spatial axes: ``(batch, *spatial, C) -> (batch, C)``.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxpool import nnx as jpnnx
    >>> x = jnp.arange(8.0).reshape(1, 2, 2, 2)
    >>> jpnnx.GlobalMaxPool()(x)
    Array([[6., 7.]], dtype=float32)
    >>> jpnnx.GlobalMaxPool(keepdims=True)(x).shape
    (1, 1, 1, 2)
  """
