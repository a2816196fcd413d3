"""NNX layers of adaptive and global pooling."""

from __future__ import annotations

import jaxpool
from jaxpool.nnx._base import FunctionLayer, function_layer

__all__ = ["AdaptiveAvgPool", "AdaptiveMaxPool", "GlobalAvgPool", "GlobalMaxPool"]


@function_layer(jaxpool.adaptive_avg_pool)
class AdaptiveAvgPool(FunctionLayer):
  """Adaptive average pooling to a fixed ``output_shape``."""


@function_layer(jaxpool.adaptive_max_pool)
class AdaptiveMaxPool(FunctionLayer):
  """Adaptive max pooling to a fixed ``output_shape``."""


@function_layer(jaxpool.global_avg_pool)
class GlobalAvgPool(FunctionLayer):
  """Mean over the spatial axes: ``(batch, *spatial, C) -> (batch, C)``."""


@function_layer(jaxpool.global_max_pool)
class GlobalMaxPool(FunctionLayer):
  """Maximum over the spatial axes: ``(batch, *spatial, C) -> (batch, C)``."""
