"""Linen layers of spatial pyramid pooling."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax

import jaxpool
from jaxpool.linen._base import PoolModule

__all__ = ["SPPBlock", "SPPF", "SpatialPyramidPool"]


class SpatialPyramidPool(PoolModule):
  """SPPNet's pyramid over :func:`jaxpool.spatial_pyramid_pool`."""

  levels: Sequence[int] = (1, 2, 4)
  _: dataclasses.KW_ONLY
  mode: str = "max"
  spatial_ndim: int | None = None

  def __call__(self, x: jax.typing.ArrayLike) -> jax.Array:
    return jaxpool.spatial_pyramid_pool(x, self.levels, mode=self.mode,
                                        spatial_ndim=self.spatial_ndim)


class SPPBlock(PoolModule):
  """YOLO's SPP block over :func:`jaxpool.spp_block`."""

  kernel_sizes: Sequence[int] = (5, 9, 13)
  _: dataclasses.KW_ONLY
  order: str = "ultralytics"
  spatial_dims: int = 2

  @property
  def feature_multiplier(self) -> int:
    return 1 + len(self.kernel_sizes)

  def __call__(self, x: jax.typing.ArrayLike) -> jax.Array:
    return jaxpool.spp_block(x, self.kernel_sizes, order=self.order,
                             spatial_dims=self.spatial_dims)


class SPPF(PoolModule):
  """SPPF over :func:`jaxpool.sppf`."""

  kernel_size: int = 5
  repeats: int = 3
  _: dataclasses.KW_ONLY
  order: str = "ultralytics"
  spatial_dims: int = 2

  @property
  def feature_multiplier(self) -> int:
    return 1 + self.repeats

  def __call__(self, x: jax.typing.ArrayLike) -> jax.Array:
    return jaxpool.sppf(x, self.kernel_size, self.repeats, order=self.order,
                        spatial_dims=self.spatial_dims)
