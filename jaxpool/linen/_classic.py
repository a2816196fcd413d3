"""Linen layers of the classic poolings: max, min, average, LP, median, avg+max."""

from __future__ import annotations

import dataclasses
from typing import Literal

import jax

import jaxpool
from jaxpool._src.core.checks import check_choice
from jaxpool.linen._base import WindowModule
from jaxpool.linen._registry import register_pool

__all__ = ["AvgMaxPool", "AvgPool", "LpPool", "MaxPool", "MedianPool", "MinPool"]


class MaxPool(WindowModule):
  """Max pooling layer over :func:`jaxpool.max_pool`.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxpool import linen as jplinen
    >>> x = jnp.arange(16.0).reshape(1, 4, 4, 1)
    >>> jplinen.MaxPool((2, 2)).apply({}, x)[..., 0]
    Array([[[ 5.,  7.],
            [13., 15.]]], dtype=float32)
    >>> jplinen.MaxPool((3, 3), strides=1, padding="SAME").apply({}, x).shape
    (1, 4, 4, 1)
  """

  def __call__(self, x: jax.typing.ArrayLike) -> jax.Array:
    return jaxpool.max_pool(x, **self.window())


class MinPool(WindowModule):
  """Min pooling layer over :func:`jaxpool.min_pool`.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxpool import linen as jplinen
    >>> x = jnp.arange(16.0).reshape(1, 4, 4, 1)
    >>> jplinen.MinPool((2, 2)).apply({}, x)[..., 0]
    Array([[[ 0.,  2.],
            [ 8., 10.]]], dtype=float32)
  """

  def __call__(self, x: jax.typing.ArrayLike) -> jax.Array:
    return jaxpool.min_pool(x, **self.window())


class AvgPool(WindowModule):
  """Average pooling layer over :func:`jaxpool.avg_pool`.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxpool import linen as jplinen
    >>> x = jnp.arange(16.0).reshape(1, 4, 4, 1)
    >>> jplinen.AvgPool((2, 2)).apply({}, x)[..., 0]
    Array([[[ 2.5,  4.5],
            [10.5, 12.5]]], dtype=float32)
    >>> layer = jplinen.AvgPool((3, 3), 1, 1, count_include_pad=False)
    >>> layer.apply({}, jnp.ones((1, 4, 4, 1)))[0, 0, 0, 0]  # padding not counted
    Array(1., dtype=float32)
  """

  _: dataclasses.KW_ONLY
  count_include_pad: bool = True
  divisor: int | None = None

  def __call__(self, x: jax.typing.ArrayLike) -> jax.Array:
    return jaxpool.avg_pool(
        x, count_include_pad=self.count_include_pad, divisor=self.divisor,
        **self.window(),
    )


class LpPool(WindowModule):
  """Power-average pooling layer over :func:`jaxpool.lp_pool` (``p=2`` default).

  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxpool import linen as jplinen
    >>> x = jnp.array([3.0, -4.0]).reshape(1, 2, 1)
    >>> jplinen.LpPool((2,), p=2.0).apply({}, x)  # sqrt(3**2 + 4**2)
    Array([[[5.]]], dtype=float32)
  """

  _: dataclasses.KW_ONLY
  p: float = 2.0

  def __call__(self, x: jax.typing.ArrayLike) -> jax.Array:
    return jaxpool.lp_pool(x, p=self.p, **self.window())


class MedianPool(WindowModule):
  """Median pooling layer over :func:`jaxpool.median_pool`.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxpool import linen as jplinen
    >>> x = jnp.array([1.0, 9.0, 2.0, 4.0, 3.0, 8.0]).reshape(1, 6, 1)
    >>> jplinen.MedianPool((3,)).apply({}, x)[0, :, 0]
    Array([2., 4.], dtype=float32)
  """

  _: dataclasses.KW_ONLY
  even: Literal["lower", "mean"] = "lower"

  def __post_init__(self):
    check_choice("even", self.even, ("lower", "mean"))
    super().__post_init__()

  def __call__(self, x: jax.typing.ArrayLike) -> jax.Array:
    return jaxpool.median_pool(x, even=self.even, **self.window())


class AvgMaxPool(WindowModule):
  """Average and max pooling combined, over :func:`jaxpool.avg_max_pool`.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxpool import linen as jplinen
    >>> x = jnp.array([1.0, 3.0]).reshape(1, 2, 1)
    >>> jplinen.AvgMaxPool((2,)).apply({}, x)  # (avg + max) / 2
    Array([[[2.5]]], dtype=float32)
    >>> layer = jplinen.AvgMaxPool((2, 2), combine="concat")
    >>> layer.apply({}, jnp.ones((1, 4, 4, 3))).shape, layer.feature_multiplier
    ((1, 2, 2, 6), 2)
  """

  _: dataclasses.KW_ONLY
  count_include_pad: bool = True
  combine: Literal["add", "concat", "sum"] = "add"

  def __post_init__(self):
    check_choice("combine", self.combine, ("add", "concat", "sum"))
    super().__post_init__()

  @property
  def feature_multiplier(self) -> int:
    return 2 if self.combine == "concat" else 1

  def __call__(self, x: jax.typing.ArrayLike) -> jax.Array:
    return jaxpool.avg_max_pool(
        x, count_include_pad=self.count_include_pad, combine=self.combine,
        **self.window(),
    )


register_pool("max", MaxPool)
register_pool("min", MinPool)
register_pool("avg", AvgPool)
register_pool("lp", LpPool, p=2.0)
register_pool("median", MedianPool)
register_pool("avgmax", AvgMaxPool, combine="add")
register_pool("catavgmax", AvgMaxPool, combine="concat")
