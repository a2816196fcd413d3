"""Linen layers of region pooling: RoIPool, RoIAlign and multi-scale RoIAlign.
Called as ``layer(x, boxes)``."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax

import jaxpool
from jaxpool.linen._base import PoolModule

__all__ = ["MultiScaleRoIAlign", "RoIAlign", "RoIPool"]


class RoIPool(PoolModule):
  """RoIPool over :func:`jaxpool.roi_pool`: ``layer(x, boxes)``."""

  output_shape: int | Sequence[int]
  _: dataclasses.KW_ONLY
  spatial_scale: float = 1.0

  def __call__(self, x: jax.typing.ArrayLike, boxes: jax.typing.ArrayLike) -> jax.Array:
    return jaxpool.roi_pool(x, boxes, self.output_shape, spatial_scale=self.spatial_scale)


class RoIAlign(PoolModule):
  """RoIAlign over :func:`jaxpool.roi_align`: ``layer(x, boxes)``."""

  output_shape: int | Sequence[int]
  _: dataclasses.KW_ONLY
  spatial_scale: float = 1.0
  sampling_ratio: int = -1
  aligned: bool = False
  max_sampling_ratio: int | None = None
  box_gradient: bool = False

  def __call__(self, x: jax.typing.ArrayLike, boxes: jax.typing.ArrayLike) -> jax.Array:
    return jaxpool.roi_align(
        x, boxes, self.output_shape, spatial_scale=self.spatial_scale,
        sampling_ratio=self.sampling_ratio, aligned=self.aligned,
        max_sampling_ratio=self.max_sampling_ratio, box_gradient=self.box_gradient)


class MultiScaleRoIAlign(PoolModule):
  """RoIAlign over an FPN pyramid, :func:`jaxpool.multi_scale_roi_align`:
  ``layer(levels, boxes)``, ``levels`` finest first."""

  output_shape: int | Sequence[int]
  _: dataclasses.KW_ONLY
  image_shape: Sequence[int]
  sampling_ratio: int = -1
  aligned: bool = False
  canonical_scale: float = 224.0
  canonical_level: int = 4
  max_sampling_ratio: int | None = None
  box_gradient: bool = False

  def __call__(self, x: Sequence[jax.typing.ArrayLike], boxes: jax.typing.ArrayLike) -> jax.Array:
    return jaxpool.multi_scale_roi_align(
        x, boxes, self.output_shape, image_shape=self.image_shape,
        sampling_ratio=self.sampling_ratio, aligned=self.aligned,
        canonical_scale=self.canonical_scale, canonical_level=self.canonical_level,
        max_sampling_ratio=self.max_sampling_ratio, box_gradient=self.box_gradient)
