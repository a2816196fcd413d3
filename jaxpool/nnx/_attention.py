"""NNX layers of the attention heads: MAPHead, AttentionPool2d, SimPool."""

from __future__ import annotations

from collections.abc import Sequence

import jax
from flax import nnx

import jaxpool
from jaxpool._src import attention, attention_layer
from jaxpool._src.core import checks
from jaxpool._src.core.options import check_layer_options
from jaxpool.nnx._base import PoolLayer, parameters, require_rngs, values

__all__ = ["AttentionPool2d", "MAPHead", "SimPool"]


class _AttentionHead(PoolLayer):
  """A head whose parameters are the reference's nested tree: each
  top-level name is an attribute (an ``nnx.Param``, or an ``nnx.Dict`` of
  them), so ``nnx.state(head, nnx.Param)`` has the reference's structure and
  ``nnx.update(head, tree)`` loads its checkpoint."""

  def _set_parameters(self, tree: dict) -> None:
    self.parameter_names = tuple(tree)
    for name, value in tree.items():
      setattr(self, name, parameters(value) if isinstance(value, dict) else nnx.Param(value))

  def parameter_tree(self) -> dict:
    """The parameters as the nested dict the function takes (and the Linen
    layer stores under ``'params'``)."""
    tree = {}
    for name in self.parameter_names:
      node = getattr(self, name)
      tree[name] = values(node) if isinstance(node, nnx.Dict) else node[...]
    return tree


class MAPHead(_AttentionHead, spec="MAPHead"):
  r"""Multi-head attention pooling head: [`jaxpool.map_head`][jaxpool.map_head] with
  big_vision's ``MAPHead`` parameters and initialisation (SigLIP's pooling).

  A learned probe attends over the positions (or tokens), then
  $y + \operatorname{MLP}(\operatorname{LN}(y))$. The attributes are
  big_vision's names, ``probe``, ``MultiHeadDotProductAttention_0``,
  ``LayerNorm_0`` and ``MlpBlock_0`` (nested ``nnx.Dict``s), so a SigLIP
  head's tree loads with ``nnx.update(head, params["img"]["MAPHead_0"])``.

  Args:
    features: the token size $D$.
    num_heads: attention heads; must divide ``features``.
    mlp_dim: the MLP's hidden size; ``None``: ``4 * features``.
    spatial_ndim: the number of spatial (token) axes before the features;
      ``None``: axes 1 to -2.
    rngs: initialises the parameters (stream ``'params'``).

  Examples:
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> from jaxpool import nnx as jpnnx
    >>> head = jpnnx.MAPHead(8, num_heads=2, rngs=nnx.Rngs(0))
    >>> head(jnp.ones((3, 5, 5, 8))).shape, head(jnp.ones((3, 25, 8))).shape
    ((3, 8), (3, 8))
    >>> head.MultiHeadDotProductAttention_0["out"]["kernel"].shape
    (2, 4, 8)
  """

  def __init__(
    self,
    features: int,
    *,
    num_heads: int,
    mlp_dim: int | None = None,
    spatial_ndim: int | None = None,
    rngs: nnx.Rngs | None = None,
  ):
    self.features = checks.check_features("MAPHead", features)
    self.num_heads = attention.check_num_heads(num_heads, "MAPHead")
    self.mlp_dim = attention_layer.check_size("mlp_dim", mlp_dim, "MAPHead")
    self.spatial_ndim = spatial_ndim
    attention_layer.map_head_parts(self.features, self.num_heads, self.mlp_dim)  # checks
    rngs = require_rngs("MAPHead", rngs)
    self._set_parameters(
      attention_layer.init_map_head_params(
        rngs.params(), self.features, self.num_heads, self.mlp_dim
      )
    )

  def __call__(self, x: jax.typing.ArrayLike) -> jax.Array:
    return jaxpool.map_head(x, self.parameter_tree(), spatial_ndim=self.spatial_ndim)


class AttentionPool2d(_AttentionHead, spec="AttentionPool2d"):
  r"""CLIP's attention pooling head: [`jaxpool.attention_pool2d`][jaxpool.attention_pool2d]
  with a learned positional embedding for a ``feature_shape`` grid.

  The mean token and the positions, each plus its positional embedding,
  attend from the mean token; a map of another size resamples the embedding
  as timm does (antialiased bicubic). The attributes are CLIP's names,
  ``positional_embedding``, ``q_proj``, ``k_proj``, ``v_proj``, ``c_proj``
  (each projection an ``nnx.Dict`` of ``kernel``, ``bias``: a torch
  ``weight`` transposed), initialised as ``CLIP.initialize_parameters``.

  Args:
    features: the input features $D$.
    num_heads: attention heads; must divide ``features``.
    feature_shape: the grid of the positional embedding, e.g. ``(7, 7)``
      (CLIP's ``spacial_dim`` squared).
    output_dim: the output size (``c_proj``); ``None``: ``features``.
    spatial_ndim: the number of spatial axes before the features; ``None``:
      axes 1 to -2.
    rngs: initialises the parameters (stream ``'params'``).

  Examples:
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> from jaxpool import nnx as jpnnx
    >>> head = jpnnx.AttentionPool2d(
    ...   features=8, num_heads=2, feature_shape=(7, 7), output_dim=4, rngs=nnx.Rngs(0))
    >>> head(jnp.ones((3, 7, 7, 8))).shape, head(jnp.ones((3, 9, 12, 8))).shape
    ((3, 4), (3, 4))
    >>> head.positional_embedding.shape
    (50, 8)
  """

  def __init__(
    self,
    features: int,
    *,
    num_heads: int,
    feature_shape: Sequence[int],
    output_dim: int | None = None,
    spatial_ndim: int | None = None,
    rngs: nnx.Rngs | None = None,
  ):
    owner = "AttentionPool2d"
    check_layer_options(
      owner, attention.attention_pool2d, dict(num_heads=num_heads, feature_shape=feature_shape)
    )
    self.features = checks.check_features(owner, features)
    self.num_heads = int(num_heads)
    self.feature_shape = tuple(feature_shape)
    self.output_dim = attention_layer.check_size("output_dim", output_dim, owner)
    self.spatial_ndim = spatial_ndim
    attention_layer.attention_pool2d_parts(  # checks
      self.features, self.num_heads, self.feature_shape, self.output_dim
    )
    rngs = require_rngs(owner, rngs)
    self._set_parameters(
      attention_layer.init_attention_pool2d_params(
        rngs.params(), self.features, self.num_heads, self.feature_shape, self.output_dim
      )
    )

  def __call__(self, x: jax.typing.ArrayLike) -> jax.Array:
    return jaxpool.attention_pool2d(
      x,
      self.parameter_tree(),
      num_heads=self.num_heads,
      feature_shape=self.feature_shape,
      spatial_ndim=self.spatial_ndim,
    )


class SimPool(_AttentionHead, spec="SimPool"):
  r"""SimPool head: [`jaxpool.sim_pool`][jaxpool.sim_pool] with timm's ``SimPool2d``
  parameters and initialisation.

  The global average, projected, attends over the LayerNorm of the tokens,
  projected as keys; the values are the normalised tokens (with ``gamma``, a
  power mean of them). The attributes are timm's names, ``norm`` (``scale``,
  ``bias``), ``q`` and ``k`` (``kernel``, and ``bias`` with ``qkv_bias``).

  Args:
    features: the input features $D$.
    num_heads: attention heads; must divide ``features`` (default 1, timm's).
    gamma: ``None`` (timm's default) or the power, > 0 (the paper: 2 for
      convnets, 1.25 for transformers).
    eps: the LayerNorm's epsilon (timm: ``1e-5``; the official code ``1e-6``).
    qkv_bias: biases in the ``q`` and ``k`` projections (timm: ``False``).
    spatial_ndim: the number of spatial axes before the features; ``None``:
      axes 1 to -2.
    rngs: initialises the parameters (stream ``'params'``).

  Examples:
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> from jaxpool import nnx as jpnnx
    >>> head = jpnnx.SimPool(8, num_heads=2, gamma=2.0, rngs=nnx.Rngs(0))
    >>> head(jnp.ones((3, 5, 5, 8))).shape
    (3, 8)
    >>> sorted(head.parameter_tree())
    ['k', 'norm', 'q']
  """

  def __init__(
    self,
    features: int,
    *,
    num_heads: int = 1,
    gamma: float | None = None,
    eps: float = 1e-5,
    qkv_bias: bool = False,
    spatial_ndim: int | None = None,
    rngs: nnx.Rngs | None = None,
  ):
    owner = "SimPool"
    self.pool_options = dict(num_heads=num_heads, gamma=gamma, eps=eps, spatial_ndim=spatial_ndim)
    check_layer_options(owner, attention.sim_pool, self.pool_options)
    self.features = checks.check_features(owner, features)
    self.num_heads, self.gamma, self.eps = num_heads, gamma, eps
    self.qkv_bias = checks.check_bool("qkv_bias", qkv_bias)
    self.spatial_ndim = spatial_ndim
    attention_layer.sim_pool_parts(self.features, num_heads, self.qkv_bias)  # checks
    rngs = require_rngs(owner, rngs)
    self._set_parameters(
      attention_layer.init_sim_pool_params(rngs.params(), self.features, num_heads, self.qkv_bias)
    )

  def __call__(self, x: jax.typing.ArrayLike) -> jax.Array:
    return jaxpool.sim_pool(x, self.parameter_tree(), **self.pool_options)
