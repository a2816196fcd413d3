"""NNX layers of spatial pyramid pooling: SPPNet's pyramid, YOLO's SPP block
and SPPF."""

from __future__ import annotations

import jaxpool
from jaxpool.nnx._base import FunctionLayer, function_layer

__all__ = ["SPPBlock", "SPPF", "SpatialPyramidPool"]


@function_layer(jaxpool.spatial_pyramid_pool)
class SpatialPyramidPool(FunctionLayer):
  """SPPNet's pyramid: a fixed-length vector for any input size."""


@function_layer(jaxpool.spp_block)
class SPPBlock(FunctionLayer):
  """YOLO's SPP block: the input and its stride-1 max poolings, concatenated
  (the block's 1x1 convolutions are the model's)."""

  @property
  def feature_multiplier(self) -> int:
    sizes = self.args[0] if self.args else self.kwargs.get("kernel_sizes", (5, 9, 13))
    return 1 + len(sizes)


@function_layer(jaxpool.sppf)
class SPPF(FunctionLayer):
  """SPPF: sequential stride-1 max poolings, concatenated (equal to
  :class:`SPPBlock` with windows ``k, 2k - 1, 3k - 2``)."""

  @property
  def feature_multiplier(self) -> int:
    repeats = self.args[1] if len(self.args) > 1 else self.kwargs.get("repeats", 3)
    return 1 + repeats
