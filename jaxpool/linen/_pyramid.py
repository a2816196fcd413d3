"""Linen layers of spatial pyramid pooling."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import linen as nn

import jaxpool
from jaxpool._src import pyramid
from jaxpool.linen._base import FunctionModule, PoolModule

__all__ = ["SPPBlock", "SPPF", "SpatialPyramidPool"]


class SpatialPyramidPool(FunctionModule, spec="SpatialPyramidPool"):
  """SPPNet's pyramid over [`jaxpool.spatial_pyramid_pool`][jaxpool.spatial_pyramid_pool].

  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxpool import linen as jplinen
    >>> layer = jplinen.SpatialPyramidPool()  # levels (1, 2, 4): 21 cells
    >>> layer.apply({}, jnp.ones((2, 13, 9, 8))).shape  # any input size
    (2, 168)
    >>> layer.apply({}, jnp.ones((2, 30, 40, 8))).shape
    (2, 168)
  """


class _ConvBNSiLU(nn.Module):
  """ultralytics' ``Conv``: bias-free 1x1 convolution, batch norm (``eps=1e-3``,
  torch momentum 0.03), SiLU."""

  features: int

  @nn.compact
  def __call__(self, x, use_running_average: bool):
    x = nn.Conv(self.features, (1, 1), use_bias=False)(x)
    x = nn.BatchNorm(use_running_average=use_running_average, momentum=0.97, epsilon=1e-3)(x)
    return nn.silu(x)


class _YoloPooling(PoolModule):
  """The pooling alone (``features=None``) or between ultralytics' 1x1
  convolutions (``cv1`` to ``features // 2``, ``cv2`` to ``out_features``,
  default ``features``); batch statistics live in ``'batch_stats'``."""

  def __post_init__(self):
    pyramid.check_conv_features(type(self).__name__, self.features, self.out_features)
    super().__post_init__()

  def pool(self, x):
    raise NotImplementedError

  @nn.compact
  def __call__(self, x: jax.typing.ArrayLike, use_running_average: bool | None = None) -> jax.Array:
    if self.features is None:
      return self.pool(x)
    running = nn.merge_param("use_running_average", self.use_running_average, use_running_average)
    hidden = _ConvBNSiLU(self.features // 2, name="cv1")(jnp.asarray(x), running)
    out = self.features if self.out_features is None else self.out_features
    return _ConvBNSiLU(out, name="cv2")(self.pool(hidden), running)


class SPPBlock(_YoloPooling, spec="SPPBlock"):
  """YOLO's SPP block over [`jaxpool.spp_block`][jaxpool.spp_block]; with ``features`` set,
  ultralytics' ``SPP`` with its two 1x1 conv + batch norm + SiLU (pass
  ``use_running_average`` as a field or call argument).

  Examples:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> from jaxpool import linen as jplinen
    >>> x = jnp.ones((2, 10, 10, 8))
    >>> jplinen.SPPBlock().apply({}, x).shape  # x and 3 max poolings concatenated
    (2, 10, 10, 32)
    >>> block = jplinen.SPPBlock(features=8, out_features=16)
    >>> variables = block.init(jax.random.key(0), x, use_running_average=True)
    >>> y, state = block.apply(
    ...     variables, x, use_running_average=False, mutable=["batch_stats"])
    >>> y.shape, sorted(variables)
    ((2, 10, 10, 16), ['batch_stats', 'params'])
  """

  function = staticmethod(jaxpool.spp_block)

  kernel_sizes: Sequence[int] = (5, 9, 13)
  _: dataclasses.KW_ONLY
  order: str = "ultralytics"
  spatial_dims: int = 2
  features: int | None = None
  out_features: int | None = None
  use_running_average: bool | None = None

  def pool(self, x):
    return jaxpool.spp_block(x, self.kernel_sizes, order=self.order, spatial_dims=self.spatial_dims)


class SPPF(_YoloPooling, spec="SPPF"):
  """SPPF over [`jaxpool.sppf`][jaxpool.sppf]; with ``features`` set, ultralytics'
  ``SPPF`` with its two 1x1 convolutions, as [`SPPBlock`][jaxpool.linen.SPPBlock].

  Examples:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> from jaxpool import linen as jplinen
    >>> x = jax.random.normal(jax.random.key(0), (1, 12, 12, 4))
    >>> y = jplinen.SPPF(3, 2).apply({}, x)  # chained 3x3 max poolings
    >>> y.shape, bool(jnp.array_equal(y, jplinen.SPPBlock((3, 5)).apply({}, x)))
    ((1, 12, 12, 12), True)
    >>> layer = jplinen.SPPF(features=8)
    >>> variables = layer.init(jax.random.key(0), x, use_running_average=True)
    >>> layer.apply(variables, x, use_running_average=True).shape
    (1, 12, 12, 8)
  """

  function = staticmethod(jaxpool.sppf)

  kernel_size: int = 5
  repeats: int = 3
  _: dataclasses.KW_ONLY
  order: str = "ultralytics"
  spatial_dims: int = 2
  features: int | None = None
  out_features: int | None = None
  use_running_average: bool | None = None

  def pool(self, x):
    return jaxpool.sppf(
      x, self.kernel_size, self.repeats, order=self.order, spatial_dims=self.spatial_dims
    )
