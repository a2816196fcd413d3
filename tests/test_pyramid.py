"""Spatial pyramid pooling against torch: SPPNet's pyramid from torch's
adaptive pools, YOLO's SPP block from torch's stride-1 max pools, SPPF equal
to the SPP block, lengths for any input size, errors and layers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxpool
from jaxpool import linen as jplinen
from jaxpool import nnx as jpnnx

from oracle import F, from_torch, to_torch, torch, value_and_grad


def _normal(shape, seed=0):
  return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("mode", ["max", "avg"])
def test_spatial_pyramid_pool_is_torchs_adaptive_pools_concatenated(mode):
  x = _normal((2, 13, 10, 3))
  cot = _normal((2, 3 * 21), seed=1)
  pool = F.adaptive_max_pool2d if mode == "max" else F.adaptive_avg_pool2d

  def torch_spp(t):  # channels-last flattening: (n, n, features) per level
    return torch.cat([pool(t, n).permute(0, 2, 3, 1).reshape(t.shape[0], -1) for n in (1, 2, 4)], 1)

  xt = to_torch(x, requires_grad=True)
  ref = torch_spp(xt)
  ref.backward(torch.tensor(cot))
  y, pullback = jax.vjp(lambda v: jaxpool.spatial_pyramid_pool(v, mode=mode), jnp.asarray(x))
  np.testing.assert_allclose(y, ref.detach().numpy(), rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(
    pullback(jnp.asarray(cot))[0], from_torch(xt.grad), rtol=1e-6, atol=1e-6
  )


@pytest.mark.parametrize("spatial", [(4, 4), (7, 13), (32, 20), (1, 1)])
def test_pyramid_length_does_not_depend_on_the_input_size(spatial):
  x = jnp.ones((2, *spatial, 5))
  assert jaxpool.spatial_pyramid_pool(x).shape == (2, 5 * 21)
  assert jaxpool.spatial_pyramid_pool(x, (1, 3)).shape == (2, 5 * 10)
  assert jaxpool.spatial_pyramid_pool(jnp.ones((2, 9, 8)), (1, 2, 4)).shape == (2, 8 * 7)  # 1-D


@pytest.mark.parametrize("order,kernels", [("ultralytics", (5, 9, 13)), ("darknet", (3, 7))])
def test_spp_block_is_torchs_stride_one_max_pools_concatenated(order, kernels):
  x = _normal((2, 15, 14, 3))

  def torch_spp(t):
    parts = [t] + [F.max_pool2d(t, k, 1, k // 2) for k in kernels]
    return torch.cat(parts if order == "ultralytics" else parts[::-1], 1)

  cot = _normal((2, 15, 14, 3 * (1 + len(kernels))), seed=2)
  ref_y, ref_g = value_and_grad(torch_spp, x, cot)
  y, pullback = jax.vjp(
    jax.jit(lambda v: jaxpool.spp_block(v, kernels, order=order)), jnp.asarray(x)
  )
  np.testing.assert_array_equal(y, ref_y)
  np.testing.assert_allclose(pullback(jnp.asarray(cot))[0], ref_g, rtol=1e-5, atol=1e-5)


def test_sppf_equals_spp_block_exactly():
  x = jnp.asarray(_normal((2, 16, 15, 3)))
  np.testing.assert_array_equal(
    jax.jit(lambda v: jaxpool.sppf(v, 5, 3))(x),
    jax.jit(lambda v: jaxpool.spp_block(v, (5, 9, 13)))(x),
  )
  # Without ties the gradients agree too (smaller windows: compile time).
  cot = jnp.asarray(_normal((2, 16, 15, 12), seed=3))
  spp = jax.jit(lambda v: jaxpool.spp_block(v, (3, 5, 7)))
  fast = jax.jit(lambda v: jaxpool.sppf(v, 3, 3))
  np.testing.assert_allclose(
    jax.vjp(fast, x)[1](cot)[0], jax.vjp(spp, x)[1](cot)[0], rtol=1e-5, atol=1e-5
  )
  np.testing.assert_array_equal(
    jaxpool.sppf(x, 3, 2, order="darknet"), jaxpool.spp_block(x, (3, 5), order="darknet")
  )


def test_layers_in_both_apis():
  x = jnp.asarray(_normal((2, 9, 9, 4)))
  assert (
    jpnnx.SPPBlock((3, 5)).feature_multiplier == 3 == jplinen.SPPBlock((3, 5)).feature_multiplier
  )
  assert jpnnx.SPPF(3, 2).feature_multiplier == 3 == jplinen.SPPF(3, 2).feature_multiplier
  np.testing.assert_array_equal(jpnnx.SPPF(3, 2)(x), jplinen.SPPF(3, 2).apply({}, x))
  np.testing.assert_array_equal(
    jpnnx.SpatialPyramidPool((1, 2), mode="avg")(x),
    jplinen.SpatialPyramidPool((1, 2), mode="avg").apply({}, x),
  )


@pytest.mark.parametrize(
  "call,match",
  [
    (lambda x: jaxpool.spp_block(x, (4, 9)), "odd positive ints"),
    (lambda x: jaxpool.spp_block(x, ()), "non-empty"),
    (lambda x: jaxpool.spp_block(x, order="yolo"), "order must be"),
    (lambda x: jaxpool.sppf(x, 5, 0), "repeats must be"),
    (lambda x: jaxpool.sppf(x, 6), "kernel_size must be"),
    (lambda x: jaxpool.spatial_pyramid_pool(x, (1, 0)), "levels must be"),
    (lambda x: jaxpool.spatial_pyramid_pool(x, mode="sum"), "mode must be"),
  ],
)
def test_clear_errors(call, match):
  with pytest.raises(ValueError, match=match):
    call(jnp.ones((2, 8, 8, 3)))


@pytest.mark.parametrize("layer,args", [("SPPBlock", ((5, 9, 13),)), ("SPPF", (5, 3))])
def test_ultralytics_convolutions_around_the_pooling(layer, args):
  # ultralytics' SPP(c1=8, c2=12) / SPPF: Conv(8, 4, 1) -> pooling -> Conv(16, 12, 1), each
  # Conv = bias-free conv + BatchNorm(eps=1e-3, momentum=0.03) + SiLU.
  from flax import nnx

  x = jnp.asarray(_normal((2, 11, 13, 8)))
  model = getattr(jpnnx, layer)(*args, features=8, out_features=12, rngs=nnx.Rngs(0))
  params = nnx.state(model, nnx.Param)
  assert sum(p.size for p in jax.tree.leaves(params)) == 8 * 4 + 2 * 4 + 16 * 12 + 2 * 12
  y = model(x)
  assert y.shape == (2, 11, 13, 12)

  def conv_bn_silu(block, v):  # training mode: batch statistics
    v = jnp.einsum("bhwc,cd->bhwd", v, block.conv.kernel[0, 0])
    mean, var = v.mean((0, 1, 2)), v.var((0, 1, 2))
    return jax.nn.silu((v - mean) / jnp.sqrt(var + 1e-3) * block.norm.scale + block.norm.bias)

  pool = (
    (lambda v: jaxpool.spp_block(v, args[0]))
    if layer == "SPPBlock"
    else (lambda v: jaxpool.sppf(v, *args))
  )
  expected = conv_bn_silu(model.cv2, pool(conv_bn_silu(model.cv1, x)))
  np.testing.assert_allclose(y, expected, rtol=2e-4, atol=2e-4)
  # Linen: the same parameters give the same output.
  linen_layer = getattr(jplinen, layer)(*args, features=8, out_features=12)
  variables = linen_layer.init(jax.random.key(1), x, use_running_average=False)
  variables = jax.tree.map(lambda a: a, variables)
  for name in ("cv1", "cv2"):
    block = getattr(model, name)
    variables["params"][name]["Conv_0"]["kernel"] = block.conv.kernel[...]
    variables["params"][name]["BatchNorm_0"] = {
      "scale": block.norm.scale[...],
      "bias": block.norm.bias[...],
    }
  linen_y, _ = linen_layer.apply(variables, x, use_running_average=False, mutable=["batch_stats"])
  np.testing.assert_allclose(linen_y, y, rtol=1e-5, atol=1e-5)
  model.eval()  # running averages after one step of momentum 0.03
  assert model(x).shape == y.shape
  with pytest.raises(ValueError, match="out_features needs features"):
    getattr(jpnnx, layer)(*args, out_features=4)
  with pytest.raises(TypeError, match="need rngs"):
    getattr(jpnnx, layer)(*args, features=8)


@pytest.mark.parametrize("op", [jaxpool.spp_block, jaxpool.sppf])
def test_spp_names_a_bad_spatial_dims(op):
  # Issue 24: the error used to be about window_shape.
  with pytest.raises(ValueError, match="spatial_dims must be 1, 2 or 3; got 0"):
    op(jnp.ones((2, 8, 8, 3)), spatial_dims=0)
