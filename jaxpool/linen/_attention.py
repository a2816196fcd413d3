"""Linen layers of the attention heads: MAPHead, AttentionPool2d, SimPool."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import linen as nn

import jaxpool
from jaxpool._src import attention, attention_layer
from jaxpool._src.core import checks
from jaxpool.linen._base import PoolModule

__all__ = ["AttentionPool2d", "MAPHead", "SimPool"]


def _declare(module: nn.Module, parts: dict) -> dict:
  """One parameter per top-level name of the reference's tree."""
  return {name: module.param(name, init) for name, init in parts.items()}


class MAPHead(PoolModule, spec="MAPHead"):
  """Multi-head attention pooling head (see [`jaxpool.nnx.MAPHead`][jaxpool.nnx.MAPHead]):
  its parameters are big_vision's ``MAPHead`` tree (``probe``,
  ``MultiHeadDotProductAttention_0``, ``LayerNorm_0``, ``MlpBlock_0``), so a
  SigLIP head's ``params`` apply unchanged; ``features`` comes from the
  input.

  Examples:
    >>> import jax, jax.numpy as jnp
    >>> from jaxpool import linen as jplinen
    >>> head = jplinen.MAPHead(num_heads=2)
    >>> x = jnp.ones((3, 25, 8))
    >>> variables = head.init(jax.random.key(0), x)
    >>> sorted(variables["params"]), head.apply(variables, x).shape
    (['LayerNorm_0', 'MlpBlock_0', 'MultiHeadDotProductAttention_0', 'probe'], (3, 8))
  """

  _: dataclasses.KW_ONLY
  num_heads: int
  mlp_dim: int | None = None
  spatial_ndim: int | None = None

  def __post_init__(self):
    attention.check_num_heads(self.num_heads, "MAPHead")
    attention_layer.check_size("mlp_dim", self.mlp_dim, "MAPHead")
    super().__post_init__()

  @nn.compact
  def __call__(self, x: jax.typing.ArrayLike) -> jax.Array:
    x = jnp.asarray(x)
    parts = attention_layer.map_head_parts(x.shape[-1], self.num_heads, self.mlp_dim)
    return jaxpool.map_head(x, _declare(self, parts), spatial_ndim=self.spatial_ndim)


class AttentionPool2d(PoolModule, spec="AttentionPool2d"):
  """CLIP's attention pooling head (see
  [`jaxpool.nnx.AttentionPool2d`][jaxpool.nnx.AttentionPool2d]): parameters
  ``positional_embedding``, ``q_proj``, ``k_proj``, ``v_proj``, ``c_proj``
  (CLIP's names; each projection's ``kernel`` a torch ``weight``
  transposed); ``features`` comes from the input.

  Examples:
    >>> import jax, jax.numpy as jnp
    >>> from jaxpool import linen as jplinen
    >>> head = jplinen.AttentionPool2d(num_heads=2, feature_shape=(7, 7))
    >>> x = jnp.ones((3, 7, 7, 8))
    >>> variables = head.init(jax.random.key(0), x)
    >>> variables["params"]["positional_embedding"].shape, head.apply(variables, x).shape
    ((50, 8), (3, 8))
  """

  _: dataclasses.KW_ONLY
  num_heads: int
  feature_shape: Sequence[int]
  output_dim: int | None = None
  spatial_ndim: int | None = None

  def __post_init__(self):
    attention_layer.check_size("output_dim", self.output_dim, "AttentionPool2d")
    super().__post_init__()  # num_heads and feature_shape: attention_pool2d's checks

  @nn.compact
  def __call__(self, x: jax.typing.ArrayLike) -> jax.Array:
    x = jnp.asarray(x)
    parts = attention_layer.attention_pool2d_parts(
      x.shape[-1], self.num_heads, self.feature_shape, self.output_dim
    )
    return jaxpool.attention_pool2d(
      x,
      _declare(self, parts),
      num_heads=self.num_heads,
      feature_shape=tuple(self.feature_shape),
      spatial_ndim=self.spatial_ndim,
    )


class SimPool(PoolModule, spec="SimPool"):
  """SimPool head (see [`jaxpool.nnx.SimPool`][jaxpool.nnx.SimPool]): parameters
  ``norm``, ``q``, ``k`` (timm's names); ``features`` comes from the input.

  Examples:
    >>> import jax, jax.numpy as jnp
    >>> from jaxpool import linen as jplinen
    >>> head = jplinen.SimPool(num_heads=2, gamma=2.0)
    >>> x = jax.random.normal(jax.random.key(1), (3, 5, 5, 8))
    >>> variables = head.init(jax.random.key(0), x)
    >>> jax.tree.map(jnp.shape, variables["params"]["q"]), head.apply(variables, x).shape
    ({'kernel': (8, 8)}, (3, 8))
  """

  _: dataclasses.KW_ONLY
  num_heads: int = 1
  gamma: float | None = None
  eps: float = 1e-5
  qkv_bias: bool = False
  spatial_ndim: int | None = None

  def __post_init__(self):
    checks.check_bool("qkv_bias", self.qkv_bias)
    super().__post_init__()  # num_heads, gamma, eps: sim_pool's checks

  @nn.compact
  def __call__(self, x: jax.typing.ArrayLike) -> jax.Array:
    x = jnp.asarray(x)
    parts = attention_layer.sim_pool_parts(x.shape[-1], self.num_heads, self.qkv_bias)
    return jaxpool.sim_pool(
      x,
      _declare(self, parts),
      num_heads=self.num_heads,
      gamma=self.gamma,
      eps=self.eps,
      spatial_ndim=self.spatial_ndim,
    )
