"""Linen layers of the classic poolings: max, min, average, LP, median, avg+max."""

from __future__ import annotations

from jaxpool.linen._base import FunctionModule

__all__ = ["AvgMaxPool", "AvgPool", "LpPool", "MaxPool", "MedianPool", "MinPool"]


class MaxPool(FunctionModule, spec="MaxPool"):
  """Max pooling layer over [`jaxpool.max_pool`][jaxpool.max_pool].

  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxpool import linen as jplinen
    >>> x = jnp.arange(16.0).reshape(1, 4, 4, 1)
    >>> jplinen.MaxPool((2, 2)).apply({}, x)[..., 0]
    Array([[[ 5.,  7.],
            [13., 15.]]], dtype=float32)
    >>> jplinen.MaxPool((3, 3), strides=1, padding="SAME").apply({}, x).shape
    (1, 4, 4, 1)
  """


class MinPool(FunctionModule, spec="MinPool"):
  """Min pooling layer over [`jaxpool.min_pool`][jaxpool.min_pool].

  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxpool import linen as jplinen
    >>> x = jnp.arange(16.0).reshape(1, 4, 4, 1)
    >>> jplinen.MinPool((2, 2)).apply({}, x)[..., 0]
    Array([[[ 0.,  2.],
            [ 8., 10.]]], dtype=float32)
  """


class AvgPool(FunctionModule, spec="AvgPool"):
  """Average pooling layer over [`jaxpool.avg_pool`][jaxpool.avg_pool].

  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxpool import linen as jplinen
    >>> x = jnp.arange(16.0).reshape(1, 4, 4, 1)
    >>> jplinen.AvgPool((2, 2)).apply({}, x)[..., 0]
    Array([[[ 2.5,  4.5],
            [10.5, 12.5]]], dtype=float32)
    >>> layer = jplinen.AvgPool((3, 3), 1, 1, count_include_pad=False)
    >>> layer.apply({}, jnp.ones((1, 4, 4, 1)))[0, 0, 0, 0]  # padding not counted
    Array(1., dtype=float32)
  """


class LpPool(FunctionModule, spec="LpPool"):
  """Power-average pooling layer over [`jaxpool.lp_pool`][jaxpool.lp_pool] (``p=2`` default).

  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxpool import linen as jplinen
    >>> x = jnp.array([3.0, -4.0]).reshape(1, 2, 1)
    >>> jplinen.LpPool((2,), p=2.0).apply({}, x)  # sqrt(3**2 + 4**2)
    Array([[[5.]]], dtype=float32)
  """


class MedianPool(FunctionModule, spec="MedianPool"):
  """Median pooling layer over [`jaxpool.median_pool`][jaxpool.median_pool].

  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxpool import linen as jplinen
    >>> x = jnp.array([1.0, 9.0, 2.0, 4.0, 3.0, 8.0]).reshape(1, 6, 1)
    >>> jplinen.MedianPool((3,)).apply({}, x)[0, :, 0]
    Array([2., 4.], dtype=float32)
  """


class AvgMaxPool(FunctionModule, spec="AvgMaxPool"):
  """Average and max pooling combined, over [`jaxpool.avg_max_pool`][jaxpool.avg_max_pool].

  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxpool import linen as jplinen
    >>> x = jnp.array([1.0, 3.0]).reshape(1, 2, 1)
    >>> jplinen.AvgMaxPool((2,)).apply({}, x)  # (avg + max) / 2
    Array([[[2.5]]], dtype=float32)
    >>> layer = jplinen.AvgMaxPool((2, 2), combine="concat")
    >>> layer.apply({}, jnp.ones((1, 4, 4, 3))).shape, layer.feature_multiplier
    ((1, 2, 2, 6), 2)
  """
