"""NNX layers of region pooling: RoIPool, RoIAlign and multi-scale RoIAlign.
Called as ``layer(x, boxes)``."""

from __future__ import annotations

import jaxpool
from jaxpool.nnx._base import FunctionLayer, function_layer

__all__ = ["MultiScaleRoIAlign", "RoIAlign", "RoIPool"]


@function_layer(jaxpool.roi_pool, inputs=("x", "boxes"))
class RoIPool(FunctionLayer):
  """RoIPool (Fast R-CNN): ``RoIPool(7, spatial_scale=1 / 16)(x, boxes)``."""


@function_layer(jaxpool.roi_align, inputs=("x", "boxes"))
class RoIAlign(FunctionLayer):
  """RoIAlign (Mask R-CNN): ``RoIAlign(7, spatial_scale=1 / 16,
  sampling_ratio=2)(x, boxes)``."""


@function_layer(jaxpool.multi_scale_roi_align, inputs=("x", "boxes"))
class MultiScaleRoIAlign(FunctionLayer):
  """RoIAlign over an FPN pyramid: ``MultiScaleRoIAlign(7, image_shape=(800,
  800), sampling_ratio=2)(levels, boxes)``, ``levels`` finest first."""
