"""NNX layers of the classic poolings: max, min, average, LP, median, avg+max."""

from __future__ import annotations

import jaxpool
from jaxpool.nnx._base import FunctionLayer, function_layer
from jaxpool.nnx._registry import register_pool

__all__ = ["AvgMaxPool", "AvgPool", "LpPool", "MaxPool", "MedianPool", "MinPool"]


@function_layer(jaxpool.max_pool)
class MaxPool(FunctionLayer):
  """Max pooling layer: ``MaxPool((2, 2))(x) == jaxpool.max_pool(x, (2, 2))``."""


@function_layer(jaxpool.min_pool)
class MinPool(FunctionLayer):
  """Min pooling layer over :func:`jaxpool.min_pool`."""


@function_layer(jaxpool.avg_pool)
class AvgPool(FunctionLayer):
  """Average pooling layer over :func:`jaxpool.avg_pool`."""


@function_layer(jaxpool.lp_pool)
class LpPool(FunctionLayer):
  """Power-average pooling layer: ``LpPool((2, 2), p=2.0)``."""


@function_layer(jaxpool.median_pool)
class MedianPool(FunctionLayer):
  """Median pooling layer over :func:`jaxpool.median_pool`."""


@function_layer(jaxpool.avg_max_pool)
class AvgMaxPool(FunctionLayer):
  """Average and max pooling combined, over :func:`jaxpool.avg_max_pool`."""

  @property
  def feature_multiplier(self) -> int:
    return 2 if self.kwargs.get("combine") == "concat" else 1


register_pool("max", MaxPool)
register_pool("min", MinPool)
register_pool("avg", AvgPool)
register_pool("lp", LpPool, p=2.0)
register_pool("median", MedianPool)
register_pool("avgmax", AvgMaxPool, combine="add")
register_pool("catavgmax", AvgMaxPool, combine="concat")
