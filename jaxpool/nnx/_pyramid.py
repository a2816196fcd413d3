"""NNX layers of spatial pyramid pooling: SPPNet's pyramid, YOLO's SPP block
and SPPF (the pooling alone, or with ultralytics' 1x1 convolutions)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

import jaxpool
from jaxpool._src import pyramid
from jaxpool.nnx._base import FunctionLayer, PoolLayer

__all__ = ["SPPBlock", "SPPF", "SpatialPyramidPool"]


class SpatialPyramidPool(FunctionLayer, spec="SpatialPyramidPool"):
  """SPPNet's pyramid: a fixed-length vector for any input size.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxpool import nnx as jpnnx
    >>> layer = jpnnx.SpatialPyramidPool((1, 2, 4))  # 1 + 4 + 16 bins
    >>> layer(jnp.ones((2, 13, 9, 8))).shape
    (2, 168)
    >>> layer(jnp.ones((2, 30, 40, 8))).shape
    (2, 168)
  """


class _ConvBNSiLU(nnx.Module):
  """ultralytics' ``Conv``: a bias-free 1x1 convolution, batch norm
  (``eps=1e-3``, torch momentum 0.03) and SiLU."""

  def __init__(self, in_features: int, out_features: int, *, rngs: nnx.Rngs):
    self.conv = nnx.Conv(in_features, out_features, (1, 1), use_bias=False, rngs=rngs)
    self.norm = nnx.BatchNorm(out_features, momentum=0.97, epsilon=1e-3, rngs=rngs)

  def __call__(self, x):
    return nnx.silu(self.norm(self.conv(x)))


class _YoloPooling(PoolLayer):
  """The pooling of an SPP block, alone (``features=None``) or between
  ultralytics' convolutions: ``cv1`` to ``features // 2``, the pooling, then
  ``cv2`` to ``out_features`` (default ``features``)."""

  pooling: int  # parts concatenated by the pooling

  def _build(self, features, out_features, rngs):
    pyramid.check_conv_features(type(self).__name__, features, out_features)
    self.features, self.out_features = features, out_features
    if features is None:
      self.cv1 = self.cv2 = None
      return
    out_features = features if out_features is None else out_features
    if rngs is None:
      raise TypeError(f"{type(self).__name__}: the convolutions need rngs.")
    hidden = features // 2
    self.cv1 = _ConvBNSiLU(features, hidden, rngs=rngs)
    self.cv2 = _ConvBNSiLU(hidden * self.pooling, out_features, rngs=rngs)

  def _apply(self, pool: Callable[[jax.Array], jax.Array], x) -> jax.Array:
    if self.cv1 is None:
      return pool(x)
    return self.cv2(pool(self.cv1(jnp.asarray(x))))


class SPPBlock(_YoloPooling, spec="SPPBlock"):
  """YOLO's SPP block over [`jaxpool.spp_block`][jaxpool.spp_block].

  ``SPPBlock(kernel_sizes=(5, 9, 13), *, order="ultralytics", spatial_dims=2)``
  is the pooling alone: the input and its stride-1 max poolings,
  concatenated. With ``features=C`` (and ``rngs``) it is ultralytics'
  ``SPP(C, out_features)``: a 1x1 conv + batch norm + SiLU to ``C // 2``, the
  pooling, and another to ``out_features`` (default ``C``).

  Examples:
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> from jaxpool import nnx as jpnnx
    >>> x = jnp.ones((2, 10, 10, 8))
    >>> jpnnx.SPPBlock((3, 5))(x).shape  # x and its two poolings
    (2, 10, 10, 24)
    >>> jpnnx.SPPBlock(features=8, out_features=16, rngs=nnx.Rngs(0))(x).shape
    (2, 10, 10, 16)
  """

  def __init__(
    self,
    kernel_sizes: Sequence[int] = (5, 9, 13),
    *,
    order: str = "ultralytics",
    spatial_dims: int = 2,
    features: int | None = None,
    out_features: int | None = None,
    rngs: nnx.Rngs | None = None,
  ):
    jaxpool.spp_block(
      jnp.zeros((1,) * (spatial_dims + 1)), kernel_sizes, order=order, spatial_dims=spatial_dims
    )  # validates the options now
    self.kernel_sizes = tuple(kernel_sizes)
    self.order = order
    self.spatial_dims = spatial_dims
    self.pooling = 1 + len(self.kernel_sizes)
    self._build(features, out_features, rngs)

  def __call__(self, x: jax.typing.ArrayLike) -> jax.Array:
    return self._apply(
      lambda v: jaxpool.spp_block(
        v, self.kernel_sizes, order=self.order, spatial_dims=self.spatial_dims
      ),
      x,
    )


class SPPF(_YoloPooling, spec="SPPF"):
  """SPPF over [`jaxpool.sppf`][jaxpool.sppf]: sequential stride-1 max poolings,
  concatenated (equal to [`SPPBlock`][jaxpool.nnx.SPPBlock] with windows
  $k, 2k - 1, 3k - 2$).

  ``SPPF(kernel_size=5, repeats=3, *, order="ultralytics", spatial_dims=2)``
  is the pooling alone; with ``features=C`` (and ``rngs``) it is
  ultralytics' ``SPPF(C, out_features)`` with its two 1x1 convolutions, as
  [`SPPBlock`][jaxpool.nnx.SPPBlock].

  Examples:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> from jaxpool import nnx as jpnnx
    >>> x = jax.random.normal(jax.random.key(0), (1, 12, 12, 4))
    >>> bool(jnp.array_equal(jpnnx.SPPF(3, 2)(x), jpnnx.SPPBlock((3, 5))(x)))
    True
    >>> jpnnx.SPPF(features=4, rngs=nnx.Rngs(0))(x).shape
    (1, 12, 12, 4)
  """

  def __init__(
    self,
    kernel_size: int = 5,
    repeats: int = 3,
    *,
    order: str = "ultralytics",
    spatial_dims: int = 2,
    features: int | None = None,
    out_features: int | None = None,
    rngs: nnx.Rngs | None = None,
  ):
    jaxpool.sppf(
      jnp.zeros((1,) * (spatial_dims + 1)),
      kernel_size,
      repeats,
      order=order,
      spatial_dims=spatial_dims,
    )
    self.kernel_size = kernel_size
    self.repeats = repeats
    self.order = order
    self.spatial_dims = spatial_dims
    self.pooling = 1 + repeats
    self._build(features, out_features, rngs)

  def __call__(self, x: jax.typing.ArrayLike) -> jax.Array:
    return self._apply(
      lambda v: jaxpool.sppf(
        v, self.kernel_size, self.repeats, order=self.order, spatial_dims=self.spatial_dims
      ),
      x,
    )
