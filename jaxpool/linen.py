"""Flax Linen layers for jaxpool's operators.

Each layer is a thin :class:`flax.linen.Module` dataclass over the function of
the same name (``MaxPool`` over :func:`jaxpool.max_pool`); its fields are the
function's options with the same names and defaults. Random layers (added with
the stochastic operators) draw from the ``'pool'`` rng stream and take a
``deterministic`` field/call argument, like :class:`flax.linen.Dropout`.

Example:
  >>> import jax, jax.numpy as jnp
  >>> from jaxpool import linen as jplinen
  >>> layer = jplinen.AvgPool(window_shape=(2, 2))
  >>> layer.apply({}, jnp.ones((1, 4, 4, 3))).shape
  (1, 2, 2, 3)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import jax
from flax import linen as nn

import jaxpool
from jaxpool._src import registry
from jaxpool._src.windows import PaddingLike

__all__ = [
    "AdaptiveAvgPool",
    "AdaptiveMaxPool",
    "AvgMaxPool",
    "AvgPool",
    "GlobalAvgPool",
    "GlobalMaxPool",
    "LpPool",
    "MaxPool",
    "MaxPoolWithIndices",
    "MaxUnpool",
    "MedianPool",
    "MinPool",
    "make_pool",
]


class _WindowPool(nn.Module):
  """Fields shared by the sliding-window layers (see :func:`jaxpool.max_pool`)."""

  window_shape: Sequence[int]
  strides: int | Sequence[int] | None = None
  padding: PaddingLike = "VALID"
  dilation: int | Sequence[int] | None = None
  ceil_mode: bool = False

  def window(self) -> dict:
    return dict(
        window_shape=self.window_shape, strides=self.strides,
        padding=self.padding, dilation=self.dilation, ceil_mode=self.ceil_mode,
    )


class MaxPool(_WindowPool):
  """Max pooling layer over :func:`jaxpool.max_pool`."""

  def __call__(self, x: jax.typing.ArrayLike) -> jax.Array:
    return jaxpool.max_pool(x, **self.window())


class MinPool(_WindowPool):
  """Min pooling layer over :func:`jaxpool.min_pool`."""

  def __call__(self, x: jax.typing.ArrayLike) -> jax.Array:
    return jaxpool.min_pool(x, **self.window())


class AvgPool(_WindowPool):
  """Average pooling layer over :func:`jaxpool.avg_pool`."""

  count_include_pad: bool = True
  divisor: int | None = None

  def __call__(self, x: jax.typing.ArrayLike) -> jax.Array:
    return jaxpool.avg_pool(
        x, count_include_pad=self.count_include_pad, divisor=self.divisor,
        **self.window(),
    )


class LpPool(_WindowPool):
  """Power-average pooling layer over :func:`jaxpool.lp_pool` (``p=2`` default)."""

  p: float = 2.0

  def __call__(self, x: jax.typing.ArrayLike) -> jax.Array:
    return jaxpool.lp_pool(x, p=self.p, **self.window())


class MedianPool(_WindowPool):
  """Median pooling layer over :func:`jaxpool.median_pool`."""

  even: Literal["lower", "mean"] = "lower"

  def __call__(self, x: jax.typing.ArrayLike) -> jax.Array:
    return jaxpool.median_pool(x, even=self.even, **self.window())


class AvgMaxPool(_WindowPool):
  """Average and max pooling combined, over :func:`jaxpool.avg_max_pool`."""

  count_include_pad: bool = True
  combine: Literal["add", "mean", "concat"] = "add"

  def __call__(self, x: jax.typing.ArrayLike) -> jax.Array:
    return jaxpool.avg_max_pool(
        x, count_include_pad=self.count_include_pad, combine=self.combine,
        **self.window(),
    )


class MaxPoolWithIndices(_WindowPool):
  """Max pooling returning ``(values, indices)``; see :class:`MaxUnpool`."""

  def __call__(self, x: jax.typing.ArrayLike) -> tuple[jax.Array, jax.Array]:
    return jaxpool.max_pool_with_indices(x, **self.window())


class MaxUnpool(nn.Module):
  """Max unpooling over :func:`jaxpool.max_unpool`: ``layer(values, indices)``."""

  output_shape: Sequence[int]

  def __call__(
      self, x: jax.typing.ArrayLike, indices: jax.typing.ArrayLike
  ) -> jax.Array:
    return jaxpool.max_unpool(x, indices, self.output_shape)


class AdaptiveAvgPool(nn.Module):
  """Adaptive average pooling over :func:`jaxpool.adaptive_avg_pool`."""

  output_shape: Sequence[int]

  def __call__(self, x: jax.typing.ArrayLike) -> jax.Array:
    return jaxpool.adaptive_avg_pool(x, self.output_shape)


class AdaptiveMaxPool(nn.Module):
  """Adaptive max pooling over :func:`jaxpool.adaptive_max_pool`."""

  output_shape: Sequence[int]

  def __call__(self, x: jax.typing.ArrayLike) -> jax.Array:
    return jaxpool.adaptive_max_pool(x, self.output_shape)


class GlobalAvgPool(nn.Module):
  """Mean over the spatial axes, over :func:`jaxpool.global_avg_pool`."""

  keepdims: bool = False
  spatial_ndim: int | None = None

  def __call__(self, x: jax.typing.ArrayLike) -> jax.Array:
    return jaxpool.global_avg_pool(
        x, keepdims=self.keepdims, spatial_ndim=self.spatial_ndim
    )


class GlobalMaxPool(nn.Module):
  """Maximum over the spatial axes, over :func:`jaxpool.global_max_pool`."""

  keepdims: bool = False
  spatial_ndim: int | None = None

  def __call__(self, x: jax.typing.ArrayLike) -> jax.Array:
    return jaxpool.global_max_pool(
        x, keepdims=self.keepdims, spatial_ndim=self.spatial_ndim
    )


def make_pool(
    name: str, window_shape, strides=None, padding="VALID", **options
) -> nn.Module:
  """Builds a sliding-window Linen layer from its name.

  The names and their default options are those of
  :func:`jaxpool.nnx.make_pool` (``"max"``, ``"avg"``, ``"lp"``, ...).

  Example:
    >>> from jaxpool import linen as jplinen
    >>> jplinen.make_pool("avgmax", (2, 2)).combine
    'mean'
  """
  class_name, defaults = registry.lookup(name)
  layer = globals()[class_name]
  return layer(
      window_shape=window_shape, strides=strides, padding=padding,
      **{**defaults, **options},
  )
