"""Linen layers of max pooling with indices and max unpooling."""

from __future__ import annotations

from jaxpool.linen._base import FunctionModule

__all__ = ["MaxPoolWithIndices", "MaxUnpool"]


class MaxPoolWithIndices(FunctionModule, spec="MaxPoolWithIndices"):
  """Max pooling returning ``(values, indices)``; see [`MaxUnpool`][jaxpool.linen.MaxUnpool].

  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxpool import linen as jplinen
    >>> x = jnp.arange(16.0).reshape(1, 4, 4, 1)
    >>> values, indices = jplinen.MaxPoolWithIndices((2, 2)).apply({}, x)
    >>> values[0, ..., 0]
    Array([[ 5.,  7.],
           [13., 15.]], dtype=float32)
    >>> indices[0, ..., 0]  # flat positions in the 4x4 map
    Array([[ 5,  7],
           [13, 15]], dtype=int32)
  """


class MaxUnpool(FunctionModule, spec="MaxUnpool"):
  """Max unpooling over [`jaxpool.max_unpool`][jaxpool.max_unpool]: ``layer(values, indices)``.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxpool import linen as jplinen
    >>> x = jnp.arange(16.0).reshape(1, 4, 4, 1)
    >>> values, indices = jplinen.MaxPoolWithIndices((2, 2)).apply({}, x)
    >>> y = jplinen.MaxUnpool((4, 4)).apply({}, values, indices)
    >>> y[0, ..., 0]  # the maxima back in place, zeros elsewhere
    Array([[ 0.,  0.,  0.,  0.],
           [ 0.,  5.,  0.,  7.],
           [ 0.,  0.,  0.,  0.],
           [ 0., 13.,  0., 15.]], dtype=float32)
    >>> bool(jnp.array_equal(jplinen.MaxPool((2, 2)).apply({}, y), values))
    True
  """
