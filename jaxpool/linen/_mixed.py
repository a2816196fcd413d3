"""Linen layers of mixed and gated pooling (Yu et al.; Lee et al.)."""

from __future__ import annotations

import dataclasses

import jax
from flax import linen as nn

import jaxpool
from jaxpool._src import mixed
from jaxpool._src.core import checks
from jaxpool._src.core.checks import check_bool
from jaxpool.linen._base import RandomFunctionModule, WindowModule

__all__ = ["GatedPool", "LearnedMixedPool", "MixedPool"]


class MixedPool(RandomFunctionModule, spec="MixedPool"):
  """Yu et al.'s random max/average pooling over [`jaxpool.mixed_pool`][jaxpool.mixed_pool].

  Examples:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> from jaxpool import linen as jplinen
    >>> x = jnp.arange(16.0).reshape(1, 4, 4, 1)
    >>> layer = jplinen.MixedPool((2, 2), alpha=1.0)  # max pooling with probability 1
    >>> y = layer.apply({}, x, deterministic=False, rngs={"pool": jax.random.key(0)})
    >>> bool(jnp.array_equal(y, jplinen.MaxPool((2, 2)).apply({}, x)))
    True
    >>> layer = jplinen.MixedPool((2, 2), alpha=0.25)
    >>> layer.apply({}, x, deterministic=True)[0, ..., 0]  # 0.25 max + 0.75 avg
    Array([[ 3.125,  5.125],
           [11.125, 13.125]], dtype=float32)
  """


class _LearnedMixture(WindowModule):
  """The window, and one learned mixture per layer or per feature."""

  _: dataclasses.KW_ONLY
  per_feature: bool = False
  count_include_pad: bool = True

  def __post_init__(self):
    check_bool("per_feature", self.per_feature)
    super().__post_init__()


class LearnedMixedPool(_LearnedMixture, spec="LearnedMixedPool"):
  """Lee et al.'s mixed pooling, ``a = sigmoid(w)`` learned.

  See [`jaxpool.nnx.LearnedMixedPool`][jaxpool.nnx.LearnedMixedPool]. One weight per layer, or per
  feature with ``per_feature=True``.

  Examples:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> from jaxpool import linen as jplinen
    >>> layer = jplinen.LearnedMixedPool((2, 2))
    >>> x = jnp.arange(16.0).reshape(1, 4, 4, 1)
    >>> variables = layer.init(jax.random.key(0), x)
    >>> jax.tree.map(jnp.shape, variables)
    {'params': {'mix_logit': ()}}
    >>> layer.apply(variables, x)[0, ..., 0]  # w = 0: (max + avg) / 2
    Array([[ 3.75,  5.75],
           [11.75, 13.75]], dtype=float32)
  """

  @nn.compact
  def __call__(self, x: jax.typing.ArrayLike) -> jax.Array:
    x = jax.numpy.asarray(x)
    shape = checks.per_feature_shape("LearnedMixedPool", self.per_feature, x.shape[-1])
    logit = self.param("mix_logit", jax.nn.initializers.zeros, shape)
    return jaxpool.mixed_pool(
      x,
      alpha=mixed.mix_proportion(logit),
      count_include_pad=self.count_include_pad,
      **self.window(),
    )


class GatedPool(_LearnedMixture, spec="GatedPool"):
  """Lee et al.'s gated pooling with a learned mask (see [`jaxpool.nnx.GatedPool`][jaxpool.nnx.GatedPool]).

  Examples:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> from jaxpool import linen as jplinen
    >>> layer = jplinen.GatedPool((2, 2), per_feature=True)
    >>> x = jnp.ones((1, 4, 4, 3))
    >>> variables = layer.init(jax.random.key(0), x)
    >>> jax.tree.map(jnp.shape, variables), layer.apply(variables, x).shape
    ({'params': {'gate': (2, 2, 3)}}, (1, 2, 2, 3))
    >>> x = jnp.arange(16.0).reshape(1, 4, 4, 1)
    >>> zero_gate = {"params": {"gate": jnp.zeros((2, 2))}}
    >>> jplinen.GatedPool((2, 2)).apply(zero_gate, x)[0, ..., 0]  # (max + avg) / 2
    Array([[ 3.75,  5.75],
           [11.75, 13.75]], dtype=float32)
  """

  @nn.compact
  def __call__(self, x: jax.typing.ArrayLike) -> jax.Array:
    x = jax.numpy.asarray(x)
    shape = checks.per_feature_shape("GatedPool", self.per_feature, x.shape[-1])
    gate = self.param("gate", mixed.gate_init, self.window_shape, shape[0] if shape else None)
    return jaxpool.gated_pool(x, gate, count_include_pad=self.count_include_pad, **self.window())
