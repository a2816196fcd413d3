"""Global heads with learned parameters on (32, 14, 14, 256): GeM, LSE and the
attention heads (big_vision's MAP head, CLIP's AttentionPool2d, timm's
SimPool), against the reference code's math in torch ops, with the gradient
in the learned parameters on both sides."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn
from harness import Row, Suite, torch

import jaxpool

SHAPE = (32, 14, 14, 256)
DIM, HEADS, MLP = SHAPE[-1], 8, 1024
DEPTH, GRID = DIM // HEADS, SHAPE[1:3]
GEM_EPS = 1e-6
MHA = "MultiHeadDotProductAttention_0"

# Each head's learned arrays as (path in the parameter tree, shape, scale):
# passed to the rows as a flat tuple (the torch side receives arrays, not
# trees) and rebuilt into the reference's tree inside each program. Kernels
# are drawn normal with standard deviation fan_in^-1/2, biases small and
# nonzero, LayerNorm scales around 1, so every array matters to the output.
MAP_SPEC = (
  (("probe",), (1, 1, DIM), 1.0),
  *(
    ((MHA, name, part), shape, scale)
    for name in ("query", "key", "value")
    for part, shape, scale in (
      ("kernel", (DIM, HEADS, DEPTH), DIM**-0.5),
      ("bias", (HEADS, DEPTH), 0.1),
    )
  ),
  ((MHA, "out", "kernel"), (HEADS, DEPTH, DIM), DIM**-0.5),
  ((MHA, "out", "bias"), (DIM,), 0.1),
  (("LayerNorm_0", "scale"), (DIM,), 0.1),
  (("LayerNorm_0", "bias"), (DIM,), 0.1),
  (("MlpBlock_0", "Dense_0", "kernel"), (DIM, MLP), DIM**-0.5),
  (("MlpBlock_0", "Dense_0", "bias"), (MLP,), 0.1),
  (("MlpBlock_0", "Dense_1", "kernel"), (MLP, DIM), MLP**-0.5),
  (("MlpBlock_0", "Dense_1", "bias"), (DIM,), 0.1),
)
CLIP_SPEC = (
  (("positional_embedding",), (1 + GRID[0] * GRID[1], DIM), DIM**-0.5),
  *(
    ((name, part), shape, scale)
    for name in ("q_proj", "k_proj", "v_proj", "c_proj")
    for part, shape, scale in (("kernel", (DIM, DIM), DIM**-0.5), ("bias", (DIM,), 0.1))
  ),
)
SIMPOOL_SPEC = (
  (("norm", "scale"), (DIM,), 0.1),
  (("norm", "bias"), (DIM,), 0.1),
  (("q", "kernel"), (DIM, DIM), DIM**-0.5),
  (("k", "kernel"), (DIM, DIM), DIM**-0.5),
)


def _draw(spec):
  """``args(rng)``: the spec's arrays (a LayerNorm ``scale`` is 1 plus its
  draw)."""

  def draw(rng):
    arrays = []
    for path, shape, scale in spec:
      a = (scale * rng.standard_normal(shape)).astype(np.float32)
      arrays.append(a + 1 if path[-1] == "scale" else a)
    return tuple(arrays)

  return draw


def _tree(spec, arrays) -> dict:
  """The nested parameter dict of a flat tuple of arrays (JAX or torch)."""
  tree = {}
  for (path, _, _), a in zip(spec, arrays, strict=True):
    node = tree
    for name in path[:-1]:
      node = node.setdefault(name, {})
    node[path[-1]] = a
  return tree


def _learned(tensors):
  """torch's parameters: fresh leaves that require their gradient (the
  harness passes plain tensors; only ``x`` is made a leaf there)."""
  return [t.detach().requires_grad_() for t in tensors]


# ---------------------------------------------------------------------------
# The reference code's math in torch ops.
# ---------------------------------------------------------------------------


def _torch_gem(x, p):
  """cirtorch's ``gem`` (NCHW), flattened to ``(B, C)``."""
  F = torch.nn.functional
  (p,) = _learned((p,))
  return F.avg_pool2d(x.clamp(min=GEM_EPS).pow(p), (x.size(-2), x.size(-1))).pow(1.0 / p).flatten(1)


def _torch_lse(x, r):
  """timm's ``LsePlus2d.forward`` (NCHW), flattened to ``(B, C)``."""
  F = torch.nn.functional
  (r,) = _learned((r,))
  x_max = F.adaptive_max_pool2d(x, 1)
  sum_exp = torch.exp(r * (x - x_max)).mean(dim=(2, 3), keepdim=True)
  return (x_max + (1.0 / r) * torch.log(sum_exp)).flatten(1)


def _torch_map(x, *arrays):
  """big_vision's MAPHead as timm's ``AttentionPoolLatent`` computes it (the
  latent's query, ``scaled_dot_product_attention``, the output projection,
  ``x + mlp(norm(x))`` with a tanh GELU, token 0), on channels-last tokens,
  reading big_vision's tree (``DenseGeneral`` kernels reshaped)."""
  F = torch.nn.functional
  p = _tree(MAP_SPEC, _learned(arrays))
  mha, mlp = p[MHA], p["MlpBlock_0"]
  b, c = x.shape[0], x.shape[-1]
  tokens = x.reshape(b, -1, c)

  def project(v, name):
    w = mha[name]["kernel"].reshape(c, -1).T
    out = F.linear(v, w, mha[name]["bias"].reshape(-1))
    return out.reshape(b, v.shape[1], HEADS, DEPTH).transpose(1, 2)

  q = project(p["probe"].expand(b, -1, -1), "query")
  k, v = project(tokens, "key"), project(tokens, "value")
  y = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, 1, c)
  y = F.linear(y, mha["out"]["kernel"].reshape(-1, c).T, mha["out"]["bias"])
  norm = p["LayerNorm_0"]
  z = F.layer_norm(y, (c,), norm["scale"], norm["bias"], eps=1e-6)
  z = F.gelu(F.linear(z, mlp["Dense_0"]["kernel"].T, mlp["Dense_0"]["bias"]), approximate="tanh")
  return (y + F.linear(z, mlp["Dense_1"]["kernel"].T, mlp["Dense_1"]["bias"]))[:, 0]


def _torch_clip(x, *arrays):
  """CLIP's ``AttentionPool2d.forward`` (NCHW), its attributes read from the
  Flax tree (a ``kernel`` is the ``Linear`` ``weight`` transposed)."""
  F = torch.nn.functional
  p = _tree(CLIP_SPEC, _learned(arrays))
  x = x.flatten(start_dim=2).permute(2, 0, 1)  # NCHW -> (HW)NC
  x = torch.cat([x.mean(dim=0, keepdim=True), x], dim=0)  # (HW+1)NC
  x = x + p["positional_embedding"][:, None, :].to(x.dtype)
  x, _ = F.multi_head_attention_forward(
    query=x[:1],
    key=x,
    value=x,
    embed_dim_to_check=x.shape[-1],
    num_heads=HEADS,
    q_proj_weight=p["q_proj"]["kernel"].T,
    k_proj_weight=p["k_proj"]["kernel"].T,
    v_proj_weight=p["v_proj"]["kernel"].T,
    in_proj_weight=None,
    in_proj_bias=torch.cat([p[n]["bias"] for n in ("q_proj", "k_proj", "v_proj")]),
    bias_k=None,
    bias_v=None,
    add_zero_attn=False,
    dropout_p=0,
    out_proj_weight=p["c_proj"]["kernel"].T,
    out_proj_bias=p["c_proj"]["bias"],
    use_separate_proj_weight=True,
    training=True,
    need_weights=False,
  )
  return x.squeeze(0)


def _torch_simpool(x, *arrays, num_heads=1, gamma=None):
  """timm's ``SimPool2d.forward`` (NCHW; its fused path, ``qkv_bias=False``,
  ``flatten=True``)."""
  F = torch.nn.functional
  p = _tree(SIMPOOL_SPEC, _learned(arrays))
  b, c, h, w = x.shape
  depth = c // num_heads
  x = x.flatten(2).transpose(1, 2)
  q = x.mean(dim=1, keepdim=True)
  x_norm = F.layer_norm(x, (c,), p["norm"]["scale"], p["norm"]["bias"], 1e-5)
  q = F.linear(q, p["q"]["kernel"].T).reshape(b, 1, num_heads, depth).transpose(1, 2)
  k = F.linear(x_norm, p["k"]["kernel"].T).reshape(b, h * w, num_heads, depth).transpose(1, 2)
  v = x_norm.reshape(b, h * w, num_heads, depth).transpose(1, 2)
  if gamma is None:
    out = F.scaled_dot_product_attention(q, k, v)
  else:
    v_shifted = v - v.amin(dim=-2, keepdim=True) + 1e-6
    out = F.scaled_dot_product_attention(q, k, v_shifted.pow(gamma)).pow(1.0 / gamma)
  return out.transpose(1, 2).reshape(b, c)


# ---------------------------------------------------------------------------
# The JAX a user would write: the formulas with autodiff, big_vision's
# MAPHead with Flax's modules.
# ---------------------------------------------------------------------------


def _jax_gem(x, p):
  return jnp.mean(jnp.maximum(x, GEM_EPS) ** p, axis=(1, 2)) ** (1 / p)


def _jax_lse(x, r):
  n = x.shape[1] * x.shape[2]
  return (jax.nn.logsumexp(r * x, axis=(1, 2)) - jnp.log(n)) / r


class MlpBlock(nn.Module):
  """big_vision's ``MlpBlock`` (the class name gives Linen's ``MlpBlock_0``)."""

  @nn.compact
  def __call__(self, x):
    d = x.shape[-1]
    x = nn.gelu(nn.Dense(MLP)(x))
    return nn.Dense(d)(x)


class MAPHead(nn.Module):
  """big_vision's ``MAPHead``: Flax's ``MultiHeadDotProductAttention`` from a
  probe, ``LayerNorm``, ``x + MlpBlock(y)``, token 0."""

  @nn.compact
  def __call__(self, x):
    n, _, d = x.shape
    probe = jnp.tile(self.param("probe", nn.initializers.zeros, (1, 1, d)), [n, 1, 1])
    x = nn.MultiHeadDotProductAttention(num_heads=HEADS)(probe, x)
    return (x + MlpBlock()(nn.LayerNorm()(x)))[:, 0]


def _flax_map(x, *arrays):
  tokens = x.reshape(x.shape[0], -1, x.shape[-1])
  return MAPHead().apply({"params": _tree(MAP_SPEC, arrays)}, tokens)


def rows() -> list[Row]:
  def row(name, fn, theirs=None, layout="nc", **kw):
    return Row(
      name,
      fn,
      SHAPE,
      grad_args=True,
      torch=theirs if torch is not None else None,
      torch_layout=layout,
      **kw,
    )

  def simpool(num_heads, gamma):
    return lambda t, *a: _torch_simpool(t, *a, num_heads=num_heads, gamma=gamma)

  return [
    row(
      "gem_pool, p = 3 (learned)",
      lambda v, p: jaxpool.gem_pool(v, p),
      _torch_gem,
      args=lambda rng: (np.array(3.0, np.float32),),
      positive=True,
      baseline=_jax_gem,
      baseline_name="formula + autodiff",
    ),
    row(
      "lse_pool, r = 10 (learned)",
      lambda v, r: jaxpool.lse_pool(v, r),
      _torch_lse,
      args=lambda rng: (np.array(10.0, np.float32),),
      baseline=_jax_lse,
      baseline_name="logsumexp + autodiff",
    ),
    row(
      f"map_head, {HEADS} heads, mlp {MLP}",
      lambda v, *a: jaxpool.map_head(v, _tree(MAP_SPEC, a)),
      _torch_map,
      layout="nhwc",
      args=_draw(MAP_SPEC),
      baseline=_flax_map,
      baseline_name="flax MultiHeadDotProductAttention",
    ),
    row(
      f"attention_pool2d, {HEADS} heads",
      lambda v, *a: jaxpool.attention_pool2d(
        v, _tree(CLIP_SPEC, a), num_heads=HEADS, feature_shape=GRID
      ),
      _torch_clip,
      args=_draw(CLIP_SPEC),
    ),
    row(
      "sim_pool, 1 head",
      lambda v, *a: jaxpool.sim_pool(v, _tree(SIMPOOL_SPEC, a)),
      simpool(1, None),
      args=_draw(SIMPOOL_SPEC),
    ),
    row(
      "sim_pool, gamma = 2",
      lambda v, *a: jaxpool.sim_pool(v, _tree(SIMPOOL_SPEC, a), gamma=2.0),
      simpool(1, 2.0),
      args=_draw(SIMPOOL_SPEC),
    ),
  ]


SUITE = Suite(
  "heads",
  rows,
  f"Input {SHAPE} float32 (GeM's `|normal|`, as after a ReLU), output (32, 256);"
  " every row learns its parameters: fwd+bwd returns their gradient too, on"
  " both sides. torch runs the reference code's math with its ops and"
  " autograd, on the same parameter values: cirtorch's `gem`"
  " (`avg_pool2d(x.clamp(eps).pow(p)).pow(1/p)`), timm's `LsePlus2d`, big_vision's"
  f" MAPHead as timm's `AttentionPoolLatent` computes it (`scaled_dot_product_attention`,"
  f" {HEADS} heads, LayerNorm, a {MLP}-wide tanh-GELU MLP), CLIP's `AttentionPool2d`"
  " (its `F.multi_head_attention_forward` call, the mean token's query only) and"
  " timm's `SimPool2d` (fused path, `qkv_bias=False`). The JAX baselines are the"
  " GeM formula and `jax.nn.logsumexp` with autodiff, and big_vision's MAPHead"
  " written with Flax's `MultiHeadDotProductAttention`, `LayerNorm` and `Dense`.",
)
