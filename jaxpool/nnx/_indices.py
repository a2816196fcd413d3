"""NNX layers of max pooling with indices and max unpooling."""

from __future__ import annotations

import jaxpool
from jaxpool.nnx._base import FunctionLayer, function_layer

__all__ = ["MaxPoolWithIndices", "MaxUnpool"]


@function_layer(jaxpool.max_pool_with_indices)
class MaxPoolWithIndices(FunctionLayer):
  """Max pooling returning ``(values, indices)`` for :class:`MaxUnpool`."""


@function_layer(jaxpool.max_unpool, inputs=("x", "indices"))
class MaxUnpool(FunctionLayer):
  """Max unpooling: ``MaxUnpool(output_shape)(values, indices)``."""
