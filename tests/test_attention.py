"""Attention heads against float64 NumPy transcriptions of their reference
code (big_vision's MAPHead, CLIP's AttentionPool2d, timm's SimPool2d), torch
(CLIP's own F.multi_head_attention_forward call, timm's resampling, SimPool
in torch ops), a big_vision-structured Flax Linen tree, derivatives, errors
and the layers."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from derivatives import check_grads
from flax import linen as nn
from flax import nnx

import jaxpool
from jaxpool import linen as jplinen
from jaxpool import nnx as jpnnx
from jaxpool._src import attention, attention_layer


def _normal(shape, seed=0, scale=1.0):
  return scale * np.random.default_rng(seed).standard_normal(shape)


def _randomised(tree, seed=0, scale=0.5):
  """A tree of the same shapes with normal float64 values (biases too)."""
  leaves, treedef = jax.tree.flatten(tree)
  return jax.tree.unflatten(
    treedef, [_normal(np.shape(a), seed + i, scale) for i, a in enumerate(leaves)]
  )


def _softmax(z, axis=-1):
  e = np.exp(z - z.max(axis=axis, keepdims=True))
  return e / e.sum(axis=axis, keepdims=True)


def _layer_norm(v, scale, bias, eps):
  mean = v.mean(-1, keepdims=True)
  var = ((v - mean) ** 2).mean(-1, keepdims=True)
  return (v - mean) / np.sqrt(var + eps) * scale + bias


# ---------------------------------------------------------------------------
# big_vision's MAPHead (models/vit.py).
# ---------------------------------------------------------------------------


def _numpy_map_head(x, p):
  """big_vision's MAPHead in float64: Flax's MultiHeadDotProductAttention
  (DenseGeneral q/k/v, query / sqrt(depth), softmax, DenseGeneral out over
  heads and depth), LayerNorm (epsilon 1e-6), MlpBlock (Dense, tanh GELU,
  Dense), x + mlp, token 0."""
  n, d = x.shape[0], x.shape[-1]
  tokens = x.reshape(n, -1, d)
  mha = p["MultiHeadDotProductAttention_0"]
  probe = np.tile(p["probe"], (n, 1, 1))

  def dense(inputs, name):
    return np.einsum("nld,dhk->nlhk", inputs, mha[name]["kernel"]) + mha[name]["bias"]

  query, key, value = dense(probe, "query"), dense(tokens, "key"), dense(tokens, "value")
  query = query / np.sqrt(query.shape[-1])
  weights = _softmax(np.einsum("nqhk,nmhk->nhqm", query, key))
  attended = np.einsum("nhqm,nmhk->nqhk", weights, value)
  y = np.einsum("nqhk,hkd->nqd", attended, mha["out"]["kernel"]) + mha["out"]["bias"]
  z = _layer_norm(y, p["LayerNorm_0"]["scale"], p["LayerNorm_0"]["bias"], 1e-6)
  mlp = p["MlpBlock_0"]
  h = z @ mlp["Dense_0"]["kernel"] + mlp["Dense_0"]["bias"]
  h = 0.5 * h * (1 + np.tanh(np.sqrt(2 / np.pi) * (h + 0.044715 * h**3)))
  return (y + h @ mlp["Dense_1"]["kernel"] + mlp["Dense_1"]["bias"])[:, 0]


class MlpBlock(nn.Module):
  """big_vision's MlpBlock (the class name makes Linen's ``MlpBlock_0``)."""

  mlp_dim: int | None = None

  @nn.compact
  def __call__(self, x):
    inits = dict(
      kernel_init=nn.initializers.xavier_uniform(),
      bias_init=nn.initializers.normal(stddev=1e-6),
    )
    d = x.shape[-1]
    x = nn.Dense(self.mlp_dim or 4 * d, **inits)(x)
    x = nn.gelu(x)
    return nn.Dense(d, **inits)(x)


class BigVisionMAPHead(nn.Module):
  """big_vision's MAPHead, with Flax's own modules."""

  mlp_dim: int | None = None
  num_heads: int = 12

  @nn.compact
  def __call__(self, x):
    n, _, d = x.shape
    probe = self.param("probe", nn.initializers.xavier_uniform(), (1, 1, d), x.dtype)
    probe = jnp.tile(probe, [n, 1, 1])
    x = nn.MultiHeadDotProductAttention(
      num_heads=self.num_heads, kernel_init=nn.initializers.xavier_uniform()
    )(probe, x)
    y = nn.LayerNorm()(x)
    x = x + MlpBlock(mlp_dim=self.mlp_dim)(y)
    return x[:, 0]


@pytest.mark.parametrize("shape", [(2, 3, 4, 8), (2, 7, 8), (2, 2, 3, 2, 8)])
def test_map_head_matches_big_vision_in_float64(shape, x64):
  params = _randomised(attention_layer.init_map_head_params(jax.random.key(0), 8, 2, mlp_dim=6))
  x = _normal(shape, 9)
  np.testing.assert_allclose(
    jaxpool.map_head(x, params), _numpy_map_head(x, params), rtol=1e-12, atol=1e-12
  )


def test_map_head_loads_a_big_vision_tree_unchanged():
  x = jax.random.normal(jax.random.key(1), (3, 10, 8))
  reference = BigVisionMAPHead(num_heads=2, mlp_dim=12)
  with jax.numpy_dtype_promotion("standard"):  # Flax's own modules
    variables = reference.init(jax.random.key(0), x)
    expected = reference.apply(variables, x)
  mine = jplinen.MAPHead(num_heads=2, mlp_dim=12)
  ours = mine.init(jax.random.key(0), x)
  assert jax.tree.map(jnp.shape, ours) == jax.tree.map(jnp.shape, variables)
  np.testing.assert_allclose(mine.apply(variables, x), expected, rtol=2e-5, atol=2e-5)
  head = jpnnx.MAPHead(8, num_heads=2, mlp_dim=12, rngs=nnx.Rngs(0))  # the pinned call
  nnx.update(head, variables["params"])
  np.testing.assert_allclose(head(x), expected, rtol=2e-5, atol=2e-5)
  # The same on a map: its positions are the tokens.
  np.testing.assert_allclose(
    mine.apply(variables, x.reshape(3, 2, 5, 8)), expected, rtol=2e-5, atol=2e-5
  )


def test_map_head_starts_as_big_vision_does():
  params = attention_layer.init_map_head_params(jax.random.key(0), 64, 4)
  mha = params["MultiHeadDotProductAttention_0"]
  assert mha["query"]["kernel"].shape == (64, 4, 16) and mha["out"]["kernel"].shape == (4, 16, 64)
  limit = math.sqrt(6 / (64 + 64))  # Xavier-uniform over the (64, 64) matrix
  assert 0.9 * limit < float(jnp.abs(mha["key"]["kernel"]).max()) <= limit
  np.testing.assert_array_equal(mha["value"]["bias"], 0)
  assert params["MlpBlock_0"]["Dense_0"]["kernel"].shape == (64, 256)
  assert 0 < float(jnp.abs(params["MlpBlock_0"]["Dense_0"]["bias"]).max()) < 1e-5
  np.testing.assert_array_equal(params["LayerNorm_0"]["scale"], 1)


def test_map_head_gradients(x64):
  params = _randomised(attention_layer.init_map_head_params(jax.random.key(0), 4, 2, mlp_dim=3), 3)
  x = _normal((2, 5, 4), 4)
  check_grads(jaxpool.map_head, (x, params), order=1, modes=("fwd", "rev"))


# ---------------------------------------------------------------------------
# CLIP's AttentionPool2d (clip/model.py), timm's resample_abs_pos_embed.
# ---------------------------------------------------------------------------


def _numpy_clip(x, p, num_heads):
  """CLIP's AttentionPool2d.forward in float64 (every token's attention, as
  F.multi_head_attention_forward computes it; the output is token 0)."""
  n, d = x.shape[0], x.shape[-1]
  tokens = x.reshape(n, -1, d)  # row-major positions: CLIP's NCHW flatten
  tokens = np.concatenate([tokens.mean(1, keepdims=True), tokens], 1) + p["positional_embedding"]

  def project(name):
    out = tokens @ p[name]["kernel"] + p[name]["bias"]
    return out.reshape(n, tokens.shape[1], num_heads, -1)

  q, k, v = project("q_proj"), project("k_proj"), project("v_proj")
  q = q * q.shape[-1] ** -0.5
  weights = _softmax(np.einsum("nqhk,nmhk->nhqm", q, k))
  attended = np.einsum("nhqm,nmhk->nqhk", weights, v).reshape(n, tokens.shape[1], -1)
  return (attended @ p["c_proj"]["kernel"] + p["c_proj"]["bias"])[:, 0]


def _clip_params(features, heads, grid, output_dim, seed=0):
  tree = attention_layer.init_attention_pool2d_params(
    jax.random.key(seed), features, heads, grid, output_dim
  )
  return _randomised(tree, seed)


@pytest.mark.parametrize("shape,heads", [((2, 3, 4, 8), 2), ((2, 5, 6), 3), ((1, 2, 2, 2, 4), 4)])
def test_attention_pool2d_matches_clip_in_float64(shape, heads, x64):
  params = _clip_params(shape[-1], heads, shape[1:-1], 5)
  x = _normal(shape, 7)
  np.testing.assert_allclose(
    jaxpool.attention_pool2d(x, params, num_heads=heads),
    _numpy_clip(x, params, heads),
    rtol=1e-12,
    atol=1e-12,
  )


def _torch_clip(torch, x, params, num_heads, grid=None):
  """CLIP's AttentionPool2d.forward, verbatim but for its attributes, on a
  channels-last map; with ``grid``, the positional embedding is resampled
  first as timm's resample_abs_pos_embed (bicubic, antialias=True)."""
  F = torch.nn.functional
  t = lambda a: torch.tensor(np.asarray(a))
  pos = t(params["positional_embedding"])
  if grid is not None:
    prefix, cells = pos[:1], pos[1:]
    cells = cells.reshape(1, *grid, -1).permute(0, 3, 1, 2)
    cells = F.interpolate(cells, size=x.shape[1:3], mode="bicubic", antialias=True)
    pos = torch.cat([prefix, cells.permute(0, 2, 3, 1).reshape(-1, pos.shape[-1])])
  x = t(x).permute(0, 3, 1, 2)  # NCHW
  x = x.reshape(x.shape[0], x.shape[1], x.shape[2] * x.shape[3]).permute(2, 0, 1)
  x = torch.cat([x.mean(dim=0, keepdim=True), x], dim=0)
  x = x + pos[:, None, :].to(x.dtype)
  weight = lambda name: t(params[name]["kernel"]).T
  bias = lambda name: t(params[name]["bias"])
  x, _ = F.multi_head_attention_forward(
    query=x,
    key=x,
    value=x,
    embed_dim_to_check=x.shape[-1],
    num_heads=num_heads,
    q_proj_weight=weight("q_proj"),
    k_proj_weight=weight("k_proj"),
    v_proj_weight=weight("v_proj"),
    in_proj_weight=None,
    in_proj_bias=torch.cat([bias("q_proj"), bias("k_proj"), bias("v_proj")]),
    bias_k=None,
    bias_v=None,
    add_zero_attn=False,
    dropout_p=0,
    out_proj_weight=weight("c_proj"),
    out_proj_bias=bias("c_proj"),
    use_separate_proj_weight=True,
    training=False,
    need_weights=False,
  )
  return x[0].numpy()


@pytest.mark.parametrize(
  "learned,size", [((4, 4), (4, 4)), ((4, 4), (3, 5)), ((3, 5), (7, 6)), ((6, 5), (2, 3))]
)
def test_attention_pool2d_matches_clip_and_timm_in_torch(learned, size, x64):
  torch = pytest.importorskip("torch", reason="torch==2.13.0 is the test oracle")
  params = _clip_params(8, 4, learned, 6, seed=2)
  x = _normal((2, *size, 8), 5)
  got = jaxpool.attention_pool2d(x, params, num_heads=4, feature_shape=learned)
  np.testing.assert_allclose(
    got, _torch_clip(torch, x, params, 4, grid=learned), rtol=1e-11, atol=1e-12
  )


@pytest.mark.parametrize(
  "size_in,size_out", [(7, 5), (9, 12), (3, 7), (8, 3), (5, 2), (2, 9), (14, 14), (24, 7)]
)
def test_resampling_is_torchs_antialiased_bicubic(size_in, size_out):
  torch = pytest.importorskip("torch", reason="torch==2.13.0 is the test oracle")
  # Along H, with W = 4 kept (torch 2.13's antialiased kernel misreads maps
  # with an axis of size 1, so none is used).
  grid = _normal((size_in, 4), 1)
  expected = torch.nn.functional.interpolate(
    torch.tensor(grid)[None, None], size=(size_out, 4), mode="bicubic", antialias=True
  )[0, 0].numpy()
  np.testing.assert_allclose(
    attention.resample_weights(size_in, size_out) @ grid, expected, rtol=1e-12, atol=1e-13
  )


def test_attention_pool2d_gradients_through_the_resampling(x64):
  params = _clip_params(4, 2, (3, 2), 3, seed=4)
  x = _normal((2, 4, 3, 4), 6)
  check_grads(
    lambda v, p: jaxpool.attention_pool2d(v, p, num_heads=2, feature_shape=(3, 2)),
    (x, params),
    order=1,
    modes=("fwd", "rev"),
  )


# ---------------------------------------------------------------------------
# timm's SimPool2d (layers/other_pool.py).
# ---------------------------------------------------------------------------


def _numpy_simpool(x, p, num_heads, gamma=None, eps=1e-5):
  """timm's SimPool2d.forward in float64 (its non-fused path)."""
  n, c = x.shape[0], x.shape[-1]
  tokens = x.reshape(n, -1, c)
  q = tokens.mean(1, keepdims=True)
  normed = _layer_norm(tokens, p["norm"]["scale"], p["norm"]["bias"], eps)
  head = c // num_heads
  split = lambda a: a.reshape(n, a.shape[1], num_heads, head).transpose(0, 2, 1, 3)
  q = split(q @ p["q"]["kernel"] + p["q"].get("bias", 0))
  k = split(normed @ p["k"]["kernel"] + p["k"].get("bias", 0))
  v = split(normed)
  attn = _softmax((q * head**-0.5) @ k.transpose(0, 1, 3, 2))
  if gamma is None:
    out = attn @ v
  else:
    shifted = v - v.min(axis=-2, keepdims=True) + 1e-6
    out = (attn @ shifted**gamma) ** (1 / gamma)
  return out.transpose(0, 2, 1, 3).reshape(n, c)


def _torch_simpool(torch, x, p, num_heads, gamma=None, eps=1e-5):
  """timm's SimPool2d.forward in torch ops (its fused path)."""
  F = torch.nn.functional
  t = lambda a: torch.tensor(np.asarray(a))
  x = t(x).permute(0, 3, 1, 2)
  B, C, H, W = x.shape
  x = x.flatten(2).transpose(1, 2)
  q = x.mean(dim=1, keepdim=True)
  x_norm = F.layer_norm(x, (C,), t(p["norm"]["scale"]), t(p["norm"]["bias"]), eps)
  linear = lambda v, name: F.linear(
    v, t(p[name]["kernel"]).T, t(p[name]["bias"]) if "bias" in p[name] else None
  )
  q = linear(q, "q").reshape(B, 1, num_heads, C // num_heads).transpose(1, 2)
  k = linear(x_norm, "k").reshape(B, H * W, num_heads, C // num_heads).transpose(1, 2)
  v = x_norm.reshape(B, H * W, num_heads, C // num_heads).transpose(1, 2)
  if gamma is None:
    out = F.scaled_dot_product_attention(q, k, v)
  else:
    v_shifted = v - v.amin(dim=-2, keepdim=True) + 1e-6
    out = F.scaled_dot_product_attention(q, k, v_shifted.pow(gamma)).pow(1.0 / gamma)
  return out.transpose(1, 2).reshape(B, C).numpy()


def _simpool_params(features, heads, qkv_bias, seed=0):
  tree = attention_layer.init_sim_pool_params(jax.random.key(seed), features, heads, qkv_bias)
  return _randomised(tree, seed)


SIMPOOL_CASES = [(1, None, False), (2, None, True), (1, 2.0, False), (4, 1.25, True)]


@pytest.mark.parametrize("heads,gamma,qkv_bias", SIMPOOL_CASES)
def test_sim_pool_matches_timm_in_float64_and_torch(heads, gamma, qkv_bias, x64):
  params = _simpool_params(8, heads, qkv_bias, seed=heads)
  x = _normal((2, 3, 5, 8), 11)
  got = jaxpool.sim_pool(x, params, num_heads=heads, gamma=gamma)
  np.testing.assert_allclose(got, _numpy_simpool(x, params, heads, gamma), rtol=1e-12, atol=1e-12)
  tokens = jaxpool.sim_pool(x.reshape(2, 15, 8), params, num_heads=heads, gamma=gamma)
  np.testing.assert_allclose(tokens, got, rtol=1e-13, atol=1e-13)  # SimPool1d
  torch = pytest.importorskip("torch", reason="torch==2.13.0 is the test oracle")
  np.testing.assert_allclose(
    got, _torch_simpool(torch, x, params, heads, gamma), rtol=1e-11, atol=1e-12
  )


def test_sim_pool_official_epsilon_and_each_image_on_its_own(x64):
  params = _simpool_params(4, 1, False, seed=5)
  x = _normal((3, 4, 4, 4), 12)
  np.testing.assert_allclose(
    jaxpool.sim_pool(x, params, gamma=2.0, eps=1e-6),
    _numpy_simpool(x, params, 1, 2.0, eps=1e-6),
    rtol=1e-12,
  )
  # The shift is per image (timm), not over the batch (the official code).
  alone = jaxpool.sim_pool(x[:1], params, gamma=2.0)
  np.testing.assert_array_equal(jaxpool.sim_pool(x, params, gamma=2.0)[:1], alone)


@pytest.mark.parametrize("gamma", [None, 2.0])
def test_sim_pool_gradients(gamma, x64):
  params = _simpool_params(4, 2, True, seed=6)
  x = _normal((2, 3, 3, 4), 13)
  check_grads(
    lambda v, p: jaxpool.sim_pool(v, p, num_heads=2, gamma=gamma),
    (x, params),
    order=1,
    modes=("fwd", "rev"),
  )


# ---------------------------------------------------------------------------
# All three: extremes, layouts, errors, layers.
# ---------------------------------------------------------------------------


def _heads_and_params(name, features=4):
  """(function with its options, params) for each head."""
  key = jax.random.key(3)
  if name == "map":
    return jaxpool.map_head, attention_layer.init_map_head_params(key, features, 2)
  if name == "clip":
    params = attention_layer.init_attention_pool2d_params(key, features, 2, (3, 4))
    return lambda x, p, **o: jaxpool.attention_pool2d(x, p, num_heads=2, **o), params
  params = attention_layer.init_sim_pool_params(key, features, 2, True)
  return lambda x, p, **o: jaxpool.sim_pool(x, p, num_heads=2, gamma=2.0, **o), params


HEADS = ["map", "clip", "simpool"]


@pytest.mark.parametrize("name", HEADS)
def test_logits_past_the_float_range_give_the_softmax_limit(name):
  # A token of +-1e30 or 1e36 (logits near 1e58 or 1e70 for CLIP's quadratic
  # ones): finite outputs, the other images untouched.
  fn, params = _heads_and_params(name)
  x = jax.random.normal(jax.random.key(0), (3, 3, 4, 4))
  base = jax.jit(fn)(x, params)
  for value in (1e30, -1e30, 1e36):
    y = jax.jit(fn)(x.at[1, 2, 1, 0].set(value), params)
    assert np.isfinite(np.asarray(y)).all(), value
    np.testing.assert_array_equal(y[::2], base[::2])


@pytest.mark.parametrize("name", HEADS)
def test_any_number_of_spatial_axes_and_batch_axes(name):
  fn, params = _heads_and_params(name)
  x = jax.random.normal(jax.random.key(1), (2, 3, 4, 4))
  if name == "clip":  # the learned grid is (3, 4): compare on a (3, 4) layout
    maps = fn(x, params)
    batched = fn(x.reshape(1, 2, 3, 4, 4), params, spatial_ndim=2)[0]
  else:
    maps = fn(x, params)
    np.testing.assert_allclose(fn(x.reshape(2, 12, 4), params), maps, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(fn(x.reshape(2, 3, 2, 2, 4), params), maps, rtol=1e-6, atol=1e-6)
    batched = fn(x.reshape(1, 2, 12, 4), params, spatial_ndim=1)[0]
  np.testing.assert_allclose(batched, maps, rtol=1e-6, atol=1e-6)
  low = fn(x.astype(jnp.bfloat16), params)
  assert low.dtype == jnp.bfloat16
  np.testing.assert_allclose(np.asarray(low, np.float32), maps, rtol=3e-2, atol=3e-2)


def test_map_head_errors():
  params = attention_layer.init_map_head_params(jax.random.key(0), 4, 2)
  x = jnp.ones((2, 3, 4))
  with pytest.raises(ValueError, match="at least one spatial axis"):
    jaxpool.map_head(jnp.ones((2, 4)), params)
  with pytest.raises(TypeError, match="floating-point input"):
    jaxpool.map_head(jnp.ones((2, 3, 4), jnp.int32), params)
  with pytest.raises(ValueError, match=r"params has no 'LayerNorm_0'"):
    jaxpool.map_head(x, {k: v for k, v in params.items() if k != "LayerNorm_0"})
  bad = {**params, "probe": jnp.ones((1, 1, 5))}
  with pytest.raises(
    ValueError, match=r"params\['probe'\] must have shape \(1, 1, D\) = \(1, 1, 4\)"
  ):
    jaxpool.map_head(x, bad)
  with pytest.raises(ValueError, match=r"\['query'\]\['kernel'\] must have shape"):
    jaxpool.map_head(jnp.ones((2, 3, 6)), params)  # 6 features, kernels for 4
  with pytest.raises(TypeError, match="must be a dict"):
    jaxpool.map_head(x, {**params, "LayerNorm_0": jnp.ones(4)})
  with pytest.raises(ValueError, match="divisible by num_heads=3"):
    jpnnx.MAPHead(features=4, num_heads=3, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="divisible by num_heads=3"):
    jplinen.MAPHead(num_heads=3).init(jax.random.key(0), x)
  for module in (jpnnx, jplinen):
    kwargs = {"features": 4, "rngs": nnx.Rngs(0)} if module is jpnnx else {}
    with pytest.raises(ValueError, match="MAPHead: num_heads must be an int >= 1; got 0"):
      module.MAPHead(num_heads=0, **kwargs)
    with pytest.raises(ValueError, match="mlp_dim must be None or an int >= 1"):
      module.MAPHead(num_heads=2, mlp_dim=0, **kwargs)
  with pytest.raises(TypeError, match="MAPHead needs rngs"):
    jpnnx.MAPHead(features=4, num_heads=2)


def test_attention_pool2d_errors():
  params = attention_layer.init_attention_pool2d_params(jax.random.key(0), 4, 2, (3, 3))
  x = jnp.ones((2, 3, 3, 4))
  with pytest.raises(ValueError, match="4 features must be divisible by num_heads=3"):
    jaxpool.attention_pool2d(x, params, num_heads=3)
  with pytest.raises(ValueError, match="num_heads must be an int >= 1; got 1.5"):
    jaxpool.attention_pool2d(x, params, num_heads=1.5)
  with pytest.raises(ValueError, match="has 10 rows; a map of \\(4, 4\\) needs 17"):
    jaxpool.attention_pool2d(jnp.ones((2, 4, 4, 4)), params, num_heads=2)
  with pytest.raises(TypeError, match="feature_shape must be a tuple of ints"):
    jaxpool.attention_pool2d(x, params, num_heads=2, feature_shape=3)
  with pytest.raises(ValueError, match="feature_shape=\\(9,\\) has 1 axes; the input has 2"):
    jaxpool.attention_pool2d(x, params, num_heads=2, feature_shape=(9,))
  with pytest.raises(ValueError, match="feature_shape=\\(2, 2\\) needs 5"):
    jaxpool.attention_pool2d(x, params, num_heads=2, feature_shape=(2, 2))
  with pytest.raises(ValueError, match=r"params\['c_proj'\] has no 'bias'"):
    jaxpool.attention_pool2d(x, {**params, "c_proj": {"kernel": jnp.ones((4, 4))}}, num_heads=2)
  for module in (jpnnx, jplinen):
    kwargs = {"features": 4, "rngs": nnx.Rngs(0)} if module is jpnnx else {}
    with pytest.raises(TypeError, match="AttentionPool2d: feature_shape must be a tuple"):
      module.AttentionPool2d(num_heads=2, feature_shape=7, **kwargs)
    with pytest.raises(ValueError, match="feature_shape must hold ints >= 1"):
      module.AttentionPool2d(num_heads=2, feature_shape=(0, 7), **kwargs)
    with pytest.raises(ValueError, match="output_dim must be None or an int >= 1"):
      module.AttentionPool2d(num_heads=2, feature_shape=(7, 7), output_dim=0, **kwargs)
  with pytest.raises(ValueError, match="divisible by num_heads=3"):
    jpnnx.AttentionPool2d(features=4, num_heads=3, feature_shape=(3, 3), rngs=nnx.Rngs(0))


@pytest.mark.parametrize(
  "gamma,error,match",
  [
    (0.0, ValueError, "gamma must be a finite number > 0"),
    (-2.0, ValueError, "gamma must be a finite number > 0"),
    (float("nan"), ValueError, "gamma must be a finite number > 0"),
    (float("inf"), ValueError, "gamma must be a finite number > 0"),
    ("2", TypeError, "gamma must be a number"),
  ],
)
def test_sim_pool_rejects_bad_gamma(gamma, error, match):
  params = attention_layer.init_sim_pool_params(jax.random.key(0), 4)
  with pytest.raises(error, match=match):
    jaxpool.sim_pool(jnp.ones((2, 3, 3, 4)), params, gamma=gamma)
  with pytest.raises(error, match=f"SimPool: {match}"):
    jpnnx.SimPool(features=4, gamma=gamma, rngs=nnx.Rngs(0))
  with pytest.raises(error, match=f"SimPool: {match}"):
    jplinen.SimPool(gamma=gamma)


def test_sim_pool_errors():
  params = attention_layer.init_sim_pool_params(jax.random.key(0), 6)
  x = jnp.ones((2, 3, 3, 6))
  with pytest.raises(ValueError, match="6 features must be divisible by num_heads=4"):
    jaxpool.sim_pool(x, params, num_heads=4)
  with pytest.raises(ValueError, match="eps must be a finite number > 0"):
    jaxpool.sim_pool(x, params, eps=0.0)
  with pytest.raises(ValueError, match=r"params\['k'\]\['kernel'\] must have shape \(D, D\)"):
    jaxpool.sim_pool(x, {**params, "k": {"kernel": jnp.ones((6, 4))}})
  with pytest.raises(TypeError, match="qkv_bias must be a bool"):
    jpnnx.SimPool(features=6, qkv_bias="yes", rngs=nnx.Rngs(0))
  with pytest.raises(TypeError, match="qkv_bias must be a bool"):
    jplinen.SimPool(qkv_bias="yes")
  with pytest.raises(ValueError, match="divisible by num_heads=4"):
    jplinen.SimPool(num_heads=4).init(jax.random.key(0), x)


LAYERS = [
  ("MAPHead", {"num_heads": 2, "mlp_dim": 6}),
  ("AttentionPool2d", {"num_heads": 2, "feature_shape": (3, 3), "output_dim": 5}),
  ("SimPool", {"num_heads": 2, "gamma": 2.0, "qkv_bias": True}),
]


@pytest.mark.parametrize("name,options", LAYERS, ids=[name for name, _ in LAYERS])
def test_nnx_and_linen_layers_agree_and_train(name, options):
  x = jax.random.normal(jax.random.key(2), (2, 4, 5, 4))  # (4, 5): CLIP resamples
  head = getattr(jpnnx, name)(features=4, rngs=nnx.Rngs(0), **options)
  tree = head.parameter_tree()
  linen = getattr(jplinen, name)(**options)
  variables = linen.init(jax.random.key(0), x)
  assert jax.tree.map(jnp.shape, variables["params"]) == jax.tree.map(jnp.shape, tree)
  assert jax.tree.map(jnp.shape, nnx.to_pure_dict(nnx.state(head, nnx.Param))) == jax.tree.map(
    jnp.shape, tree
  )
  out = head(x)
  np.testing.assert_array_equal(linen.apply({"params": tree}, x), out)
  np.testing.assert_allclose(nnx.jit(lambda m, v: m(v))(head, x), out, rtol=1e-6, atol=1e-6)
  grads = nnx.grad(lambda m: jnp.sum(m(x) ** 2))(head)
  leaves = jax.tree.leaves(nnx.state(grads, nnx.Param))
  assert all(np.isfinite(leaf).all() for leaf in leaves)
  assert any(np.abs(leaf).max() > 0 for leaf in leaves)
