"""The attention heads' layers' parametrisation, shared by both APIs: each
head's tree as named parts (one init function per top-level name, which a
Linen module declares as one parameter each), with the reference's
initialisers, and the layer-only options' checks."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxpool._src.attention import (
  MHA,
  check_feature_shape,
  check_num_heads,
  head_dim,
  prefix,
)
from jaxpool._src.core.checks import check_bool, check_features, is_int

__all__ = [
  "attention_pool2d_parts",
  "check_size",
  "init_attention_pool2d_params",
  "init_map_head_params",
  "init_sim_pool_params",
  "map_head_parts",
  "sim_pool_parts",
]


def check_size(name: str, value, owner: str | None = None) -> int | None:
  """A layer's optional size (``mlp_dim``, ``output_dim``): ``None`` or an
  int >= 1."""
  if value is None:
    return None
  if not is_int(value) or value < 1:
    raise ValueError(f"{prefix(owner)}{name} must be None or an int >= 1; got {value!r}.")
  return int(value)


Init = Callable[[jax.Array], object]
_xavier = jax.nn.initializers.xavier_uniform()


def _dense(key, shape, kernel_init, bias_init, *, features_out: tuple[int, ...]) -> dict:
  """A Flax ``DenseGeneral``'s ``kernel`` and ``bias``: the kernel drawn as
  its 2-D ``(fan_in, fan_out)`` matrix and reshaped, as ``DenseGeneral``
  does."""
  kernel_key, bias_key = jax.random.split(key)
  fan_out = int(np.prod(features_out))
  flat = (int(np.prod(shape)) // fan_out, fan_out)
  return {
    "kernel": kernel_init(kernel_key, flat, jnp.float32).reshape(shape),
    "bias": bias_init(bias_key, features_out, jnp.float32),
  }


def _layer_norm_params(features: int) -> dict:
  return {"scale": jnp.ones((features,), jnp.float32), "bias": jnp.zeros((features,), jnp.float32)}


def map_head_parts(features: int, num_heads: int, mlp_dim: int | None = None) -> dict[str, Init]:
  """big_vision's ``MAPHead`` initialisation, by top-level name: the probe
  and the attention kernels Xavier-uniform (biases 0), LayerNorm ``1`` and
  ``0``, the MLP's kernels Xavier-uniform with ``normal(1e-6)`` biases."""
  owner = "MAPHead"
  features = check_features(owner, features)
  num_heads = check_num_heads(num_heads, owner)
  depth = head_dim(owner, features, num_heads)
  hidden = check_size("mlp_dim", mlp_dim, owner) or 4 * features
  zeros, tiny = jax.nn.initializers.zeros, jax.nn.initializers.normal(1e-6)
  heads = (num_heads, depth)

  def attention(key):
    keys = jax.random.split(key, 4)
    tree = {
      name: _dense(k, (features,) + heads, _xavier, zeros, features_out=heads)
      for name, k in zip(("query", "key", "value"), keys)
    }
    tree["out"] = _dense(keys[3], heads + (features,), _xavier, zeros, features_out=(features,))
    return tree

  def mlp(key):
    first, second = jax.random.split(key)
    return {
      "Dense_0": _dense(first, (features, hidden), _xavier, tiny, features_out=(hidden,)),
      "Dense_1": _dense(second, (hidden, features), _xavier, tiny, features_out=(features,)),
    }

  return {
    "probe": lambda key: _xavier(key, (1, 1, features), jnp.float32),
    MHA: attention,
    "LayerNorm_0": lambda key: _layer_norm_params(features),
    "MlpBlock_0": mlp,
  }


def attention_pool2d_parts(
  features: int, num_heads: int, feature_shape, output_dim: int | None = None
) -> dict[str, Init]:
  """CLIP's ``AttentionPool2d`` initialisation (``CLIP.initialize_parameters``),
  by top-level name: the positional embedding standard normal divided by
  $\\sqrt{D}$, the four kernels normal with standard deviation $D^{-1/2}$;
  biases 0 (timm's; CLIP leaves torch's default uniform ones)."""
  owner = "AttentionPool2d"
  features = check_features(owner, features)
  num_heads = check_num_heads(num_heads, owner)
  head_dim(owner, features, num_heads)
  feature_shape = check_feature_shape(feature_shape, owner)
  output_dim = check_size("output_dim", output_dim, owner) or features
  normal = jax.nn.initializers.normal(features**-0.5)
  zeros = jax.nn.initializers.zeros
  rows = int(np.prod(feature_shape)) + 1
  parts: dict[str, Init] = {
    "positional_embedding": lambda key: normal(key, (rows, features), jnp.float32)
  }
  for name in ("q_proj", "k_proj", "v_proj"):
    parts[name] = lambda key: _dense(
      key, (features, features), normal, zeros, features_out=(features,)
    )
  parts["c_proj"] = lambda key: _dense(
    key, (features, output_dim), normal, zeros, features_out=(output_dim,)
  )
  return parts


def sim_pool_parts(features: int, num_heads: int = 1, qkv_bias: bool = False) -> dict[str, Init]:
  """timm's ``SimPool2d`` initialisation, by top-level name: LayerNorm ``1``
  and ``0``, the ``q`` and ``k`` kernels (and biases, with ``qkv_bias``)
  uniform in $\\pm D^{-1/2}$, torch's ``Linear`` default."""
  owner = "SimPool"
  features = check_features(owner, features)
  head_dim(owner, features, check_num_heads(num_heads, owner))
  qkv_bias = check_bool("qkv_bias", qkv_bias)
  uniform = jax.nn.initializers.variance_scaling(1 / 3, "fan_in", "uniform")
  bound = features**-0.5

  def linear(key):
    kernel_key, bias_key = jax.random.split(key)
    tree = {"kernel": uniform(kernel_key, (features, features), jnp.float32)}
    if qkv_bias:
      tree["bias"] = jax.random.uniform(bias_key, (features,), jnp.float32, -bound, bound)
    return tree

  return {"norm": lambda key: _layer_norm_params(features), "q": linear, "k": linear}


def _initialise(key: jax.Array, parts: dict[str, Init]) -> dict:
  keys = jax.random.split(key, len(parts))
  return {name: init(k) for (name, init), k in zip(parts.items(), keys)}


def init_map_head_params(
  key: jax.Array, features: int, num_heads: int, mlp_dim: int | None = None
) -> dict:
  """big_vision's ``MAPHead`` tree for ``features`` (``D``) with its
  initialisation (see `map_head_parts`); ``mlp_dim`` ``None``: ``4 D``."""
  return _initialise(key, map_head_parts(features, num_heads, mlp_dim))


def init_attention_pool2d_params(
  key: jax.Array,
  features: int,
  num_heads: int,
  feature_shape: Sequence[int],
  output_dim: int | None = None,
) -> dict:
  """CLIP's ``AttentionPool2d`` tree (see `attention_pool2d_parts`);
  ``output_dim`` ``None``: ``features``."""
  return _initialise(key, attention_pool2d_parts(features, num_heads, feature_shape, output_dim))


def init_sim_pool_params(
  key: jax.Array, features: int, num_heads: int = 1, qkv_bias: bool = False
) -> dict:
  """timm's ``SimPool2d`` tree (see `sim_pool_parts`)."""
  return _initialise(key, sim_pool_parts(features, num_heads, qkv_bias))
