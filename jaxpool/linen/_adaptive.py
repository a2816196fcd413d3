"""Linen layers of adaptive and global pooling."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax

import jaxpool
from jaxpool.linen._base import PoolModule

__all__ = ["AdaptiveAvgPool", "AdaptiveMaxPool", "GlobalAvgPool", "GlobalMaxPool"]


class AdaptiveAvgPool(PoolModule):
  """Adaptive average pooling over :func:`jaxpool.adaptive_avg_pool`."""

  output_shape: Sequence[int]

  def __call__(self, x: jax.typing.ArrayLike) -> jax.Array:
    return jaxpool.adaptive_avg_pool(x, self.output_shape)


class AdaptiveMaxPool(PoolModule):
  """Adaptive max pooling over :func:`jaxpool.adaptive_max_pool`."""

  output_shape: Sequence[int]

  def __call__(self, x: jax.typing.ArrayLike) -> jax.Array:
    return jaxpool.adaptive_max_pool(x, self.output_shape)


class _Global(PoolModule):
  _: dataclasses.KW_ONLY
  keepdims: bool = False
  spatial_ndim: int | None = None

  def options(self) -> dict:
    return dict(keepdims=self.keepdims, spatial_ndim=self.spatial_ndim)


class GlobalAvgPool(_Global):
  """Mean over the spatial axes, over :func:`jaxpool.global_avg_pool`."""

  def __call__(self, x: jax.typing.ArrayLike) -> jax.Array:
    return jaxpool.global_avg_pool(x, **self.options())


class GlobalMaxPool(_Global):
  """Maximum over the spatial axes, over :func:`jaxpool.global_max_pool`."""

  def __call__(self, x: jax.typing.ArrayLike) -> jax.Array:
    return jaxpool.global_max_pool(x, **self.options())
