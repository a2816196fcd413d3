"""NNX layers of max pooling with indices and max unpooling."""

from __future__ import annotations

from jaxpool.nnx._base import FunctionLayer

__all__ = ["MaxPoolWithIndices", "MaxUnpool"]


class MaxPoolWithIndices(FunctionLayer, spec="MaxPoolWithIndices"):
  """Max pooling returning ``(values, indices)`` for [`MaxUnpool`][jaxpool.nnx.MaxUnpool].

  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxpool import nnx as jpnnx
    >>> x = jnp.array([[1.0, 5.0], [7.0, 2.0]]).reshape(1, 2, 2, 1)
    >>> values, indices = jpnnx.MaxPoolWithIndices((2, 2))(x)
    >>> values[0, ..., 0], indices[0, ..., 0]  # 7 is at flat position 2
    (Array([[7.]], dtype=float32), Array([[2]], dtype=int32))
  """


class MaxUnpool(FunctionLayer, spec="MaxUnpool"):
  """Max unpooling: ``MaxUnpool(output_shape)(values, indices)``.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxpool import nnx as jpnnx
    >>> x = jnp.arange(16.0).reshape(1, 4, 4, 1)
    >>> values, indices = jpnnx.MaxPoolWithIndices((2, 2))(x)
    >>> jpnnx.MaxUnpool((4, 4))(values, indices)[0, ..., 0]  # maxima back in place
    Array([[ 0.,  0.,  0.,  0.],
           [ 0.,  5.,  0.,  7.],
           [ 0.,  0.,  0.,  0.],
           [ 0., 13.,  0., 15.]], dtype=float32)
  """
