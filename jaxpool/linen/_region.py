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
  """RoIPool over :func:`jaxpool.roi_pool`: ``layer(x, boxes)``.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxpool import linen as jplinen
    >>> x = jnp.arange(16.0).reshape(1, 4, 4, 1)
    >>> boxes = jnp.array([[0, 0, 0, 3, 3], [0, 2, 2, 3, 3]])  # (batch, x1, y1, x2, y2)
    >>> jplinen.RoIPool(2).apply({}, x, boxes)[..., 0]
    Array([[[ 5.,  7.],
            [13., 15.]],
    <BLANKLINE>
           [[10., 11.],
            [14., 15.]]], dtype=float32)
  """

  function = staticmethod(jaxpool.roi_pool)

  output_shape: int | Sequence[int]
  _: dataclasses.KW_ONLY
  spatial_scale: float = 1.0

  def __call__(self, x: jax.typing.ArrayLike, boxes: jax.typing.ArrayLike) -> jax.Array:
    return jaxpool.roi_pool(x, boxes, self.output_shape, spatial_scale=self.spatial_scale)


class RoIAlign(PoolModule):
  """RoIAlign over :func:`jaxpool.roi_align`: ``layer(x, boxes)``.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxpool import linen as jplinen
    >>> x = jnp.arange(16.0).reshape(1, 4, 4, 1)
    >>> boxes = jnp.array([[0, 0.0, 0.0, 2.0, 2.0]])
    >>> jplinen.RoIAlign(2).apply({}, x, boxes)[0, ..., 0]  # one sample per bin
    Array([[2.5, 3.5],
           [6.5, 7.5]], dtype=float32)
    >>> jplinen.RoIAlign(2, aligned=True).apply({}, x, boxes)[0, ..., 0]
    Array([[0., 1.],
           [4., 5.]], dtype=float32)
  """

  function = staticmethod(jaxpool.roi_align)

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
  ``layer(levels, boxes)``, ``levels`` finest first.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxpool import linen as jplinen
    >>> pyramid = [jnp.ones((1, 64, 64, 8)), jnp.full((1, 32, 32, 8), 2.0)]  # strides 4, 8
    >>> boxes = jnp.array([[0, 0, 0, 50, 50], [0, 0, 0, 250, 250]])
    >>> layer = jplinen.MultiScaleRoIAlign(7, image_shape=(256, 256))
    >>> y = layer.apply({}, pyramid, boxes)
    >>> y.shape, y[:, 0, 0, 0]  # the small box reads level 0, the large one level 1
    ((2, 7, 7, 8), Array([1., 2.], dtype=float32))
  """

  function = staticmethod(jaxpool.multi_scale_roi_align)

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
