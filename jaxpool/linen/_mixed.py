"""Linen layers of mixed and gated pooling (Yu et al.; Lee et al.)."""

from __future__ import annotations

import dataclasses
from typing import Literal

import jax
from flax import linen as nn

import jaxpool
from jaxpool._src import params as P
from jaxpool._src.core.checks import check_choice
from jaxpool.linen._base import RandomModule, WindowModule
from jaxpool.linen._registry import register_pool

__all__ = ["GatedPool", "LearnedMixedPool", "MixedPool"]


class MixedPool(WindowModule, RandomModule):
  """Yu et al.'s random max/average pooling over :func:`jaxpool.mixed_pool`."""

  _: dataclasses.KW_ONLY
  alpha: float = 0.5
  granularity: Literal["region", "map", "layer"] = "region"
  count_include_pad: bool = True
  deterministic: bool | None = None
  rng_collection: str = "pool"

  def __post_init__(self):
    check_choice("granularity", self.granularity, ("region", "map", "layer"))
    super().__post_init__()

  def __call__(
      self, x: jax.typing.ArrayLike, deterministic: bool | None = None
  ) -> jax.Array:
    return jaxpool.mixed_pool(
        x, alpha=self.alpha, granularity=self.granularity,
        count_include_pad=self.count_include_pad,
        key=self.key(deterministic), **self.window(),
    )


class LearnedMixedPool(WindowModule):
  """Lee et al.'s mixed pooling, ``a = sigmoid(w)`` learned.

  See :class:`jaxpool.nnx.LearnedMixedPool`. One weight per layer, or per
  feature with ``per_feature=True``.
  """

  _: dataclasses.KW_ONLY
  per_feature: bool = False
  count_include_pad: bool = True

  @nn.compact
  def __call__(self, x: jax.typing.ArrayLike) -> jax.Array:
    x = jax.numpy.asarray(x)
    shape = P.per_feature_shape("LearnedMixedPool", self.per_feature, x.shape[-1])
    logit = self.param("mix_logit", jax.nn.initializers.zeros, shape)
    return jaxpool.mixed_pool(
        x, alpha=P.mix_proportion(logit),
        count_include_pad=self.count_include_pad, **self.window(),
    )


class GatedPool(WindowModule):
  """Lee et al.'s gated pooling with a learned mask (see :class:`jaxpool.nnx.GatedPool`)."""

  _: dataclasses.KW_ONLY
  per_feature: bool = False
  count_include_pad: bool = True

  @nn.compact
  def __call__(self, x: jax.typing.ArrayLike) -> jax.Array:
    x = jax.numpy.asarray(x)
    shape = P.per_feature_shape("GatedPool", self.per_feature, x.shape[-1])
    gate = self.param(
        "gate", P.gate_init, self.window_shape, shape[0] if shape else None
    )
    return jaxpool.gated_pool(
        x, gate, count_include_pad=self.count_include_pad, **self.window()
    )


register_pool("mixed", MixedPool)
register_pool("learnedmixed", LearnedMixedPool)
register_pool("gated", GatedPool)
