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
  """Max pooling layer over :func:`jaxpool.max_pool`."""

  def __call__(self, x: jax.typing.ArrayLike) -> jax.Array:
    return jaxpool.max_pool(x, **self.window())


class MinPool(WindowModule):
  """Min pooling layer over :func:`jaxpool.min_pool`."""

  def __call__(self, x: jax.typing.ArrayLike) -> jax.Array:
    return jaxpool.min_pool(x, **self.window())


class AvgPool(WindowModule):
  """Average pooling layer over :func:`jaxpool.avg_pool`."""

  _: dataclasses.KW_ONLY
  count_include_pad: bool = True
  divisor: int | None = None

  def __call__(self, x: jax.typing.ArrayLike) -> jax.Array:
    return jaxpool.avg_pool(
        x, count_include_pad=self.count_include_pad, divisor=self.divisor,
        **self.window(),
    )


class LpPool(WindowModule):
  """Power-average pooling layer over :func:`jaxpool.lp_pool` (``p=2`` default)."""

  _: dataclasses.KW_ONLY
  p: float = 2.0

  def __call__(self, x: jax.typing.ArrayLike) -> jax.Array:
    return jaxpool.lp_pool(x, p=self.p, **self.window())


class MedianPool(WindowModule):
  """Median pooling layer over :func:`jaxpool.median_pool`."""

  _: dataclasses.KW_ONLY
  even: Literal["lower", "mean"] = "lower"

  def __post_init__(self):
    check_choice("even", self.even, ("lower", "mean"))
    super().__post_init__()

  def __call__(self, x: jax.typing.ArrayLike) -> jax.Array:
    return jaxpool.median_pool(x, even=self.even, **self.window())


class AvgMaxPool(WindowModule):
  """Average and max pooling combined, over :func:`jaxpool.avg_max_pool`."""

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
