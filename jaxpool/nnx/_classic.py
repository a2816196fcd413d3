"""NNX layers of the classic poolings: max, min, average, LP, median, avg+max."""

from __future__ import annotations

from jaxpool.nnx._base import FunctionLayer

__all__ = ["AvgMaxPool", "AvgPool", "LpPool", "MaxPool", "MedianPool", "MinPool"]


class MaxPool(FunctionLayer, spec="MaxPool"):
  """Max pooling layer: ``MaxPool((2, 2))(x) == jaxpool.max_pool(x, (2, 2))``.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxpool import nnx as jpnnx
    >>> x = jnp.arange(16.0).reshape(1, 4, 4, 1)
    >>> jpnnx.MaxPool((2, 2))(x)[..., 0]
    Array([[[ 5.,  7.],
            [13., 15.]]], dtype=float32)
    >>> jpnnx.MaxPool((3, 3), strides=1, padding=1)(x).shape
    (1, 4, 4, 1)
  """


class MinPool(FunctionLayer, spec="MinPool"):
  """Min pooling layer over [`jaxpool.min_pool`][jaxpool.min_pool].

  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxpool import nnx as jpnnx
    >>> x = jnp.arange(16.0).reshape(1, 4, 4, 1)
    >>> jpnnx.MinPool((2, 2))(x)[..., 0]
    Array([[[ 0.,  2.],
            [ 8., 10.]]], dtype=float32)
  """


class AvgPool(FunctionLayer, spec="AvgPool"):
  """Average pooling layer over [`jaxpool.avg_pool`][jaxpool.avg_pool].

  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxpool import nnx as jpnnx
    >>> x = jnp.arange(16.0).reshape(1, 4, 4, 1)
    >>> jpnnx.AvgPool((2, 2))(x)[..., 0]
    Array([[[ 2.5,  4.5],
            [10.5, 12.5]]], dtype=float32)
  """


class LpPool(FunctionLayer, spec="LpPool"):
  """Power-average pooling layer: ``LpPool((2, 2), p=2.0)``.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxpool import nnx as jpnnx
    >>> x = jnp.array([3.0, -4.0]).reshape(1, 2, 1)
    >>> jpnnx.LpPool((2,), p=2.0)(x)  # sqrt(3 ** 2 + 4 ** 2)
    Array([[[5.]]], dtype=float32)
  """


class MedianPool(FunctionLayer, spec="MedianPool"):
  """Median pooling layer over [`jaxpool.median_pool`][jaxpool.median_pool].

  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxpool import nnx as jpnnx
    >>> x = jnp.array([1.0, 9.0, 2.0, 4.0, 3.0, 8.0]).reshape(1, 6, 1)
    >>> jpnnx.MedianPool((3,))(x)[0, :, 0]
    Array([2., 4.], dtype=float32)
  """


class AvgMaxPool(FunctionLayer, spec="AvgMaxPool"):
  """Average and max pooling combined, over [`jaxpool.avg_max_pool`][jaxpool.avg_max_pool].

  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxpool import nnx as jpnnx
    >>> x = jnp.array([1.0, 3.0]).reshape(1, 2, 1)
    >>> layer = jpnnx.AvgMaxPool((2,), combine="concat")
    >>> layer(x)  # the average, then the maximum
    Array([[[2., 3.]]], dtype=float32)
    >>> layer.feature_multiplier
    2
  """
