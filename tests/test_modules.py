"""Flax NNX and Linen layers: same results as the functions, train under jit."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import linen as nn
from flax import nnx

import jaxpool
from jaxpool import linen as jplinen
from jaxpool import nnx as jpnnx

from cases import CASES, SHAPE

X = jax.random.normal(jax.random.key(0), (2, 8, 8, 3))
XT = jax.random.normal(jax.random.key(0), SHAPE)  # the operator table's input

# (layer name, constructor args, constructor kwargs, function call) from the
# operator table; random layers are compared in inference mode.
LAYERS = [(*case.layer, case) for case in CASES if case.layer is not None]


def _inference(layer_is_random):
  return {"deterministic": True} if layer_is_random else {}


@pytest.mark.parametrize("name,args,kwargs,case", LAYERS, ids=[l[0] for l in LAYERS])
def test_nnx_layer_equals_function(name, args, kwargs, case):
  layer = getattr(jpnnx, name)(*args, **kwargs)
  mode = _inference(case.random)
  expected = case.call(XT, None)
  jax.tree.map(
    lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7), layer(XT, **mode), expected
  )
  jitted = nnx.jit(lambda m, x: m(x, **mode))(layer, XT)
  jax.tree.map(
    lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7), jitted, expected
  )


@pytest.mark.parametrize("name,args,kwargs,case", LAYERS, ids=[l[0] for l in LAYERS])
def test_linen_layer_equals_function(name, args, kwargs, case):
  layer = getattr(jplinen, name)(*args, **kwargs)
  mode = _inference(case.random)
  variables = layer.init(jax.random.key(0), XT, **mode)
  out = jax.jit(lambda v, x: layer.apply(v, x, **mode))(variables, XT)
  jax.tree.map(
    lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7), out, case.call(XT, None)
  )


def test_unpool_layers_invert_indices_layers():
  values, indices = jpnnx.MaxPoolWithIndices((2, 2))(X)
  np.testing.assert_array_equal(
    jpnnx.MaxUnpool((8, 8))(values, indices), jaxpool.max_unpool(values, indices, (8, 8))
  )
  out = jplinen.MaxUnpool(output_shape=(8, 8)).apply({}, values, indices)
  np.testing.assert_array_equal(out, jaxpool.max_unpool(values, indices, (8, 8)))


def test_nnx_layer_rejects_unknown_options_at_construction():
  with pytest.raises(TypeError, match="MaxPool: got an unexpected keyword argument 'paddin'"):
    jpnnx.MaxPool((2, 2), paddin=1)
  with pytest.raises(TypeError, match="takes 1 array input"):
    jpnnx.MaxPool((2, 2))(X, X)


def test_registry_builds_every_named_layer_in_both_apis():
  assert set(jpnnx.available_pools()) >= {
    "max",
    "min",
    "avg",
    "lp",
    "median",
    "avgmax",
    "catavgmax",
  }
  for name in jpnnx.available_pools():
    layer = jpnnx.make_pool(name, (2, 2), features=3, rngs=nnx.Rngs(0))
    random = isinstance(layer, jpnnx.RandomLayer)
    mode = {"deterministic": True} if random else {}  # compare inference
    out = layer(X, **mode)
    assert out.shape == (2, 4, 4, 3 * layer.feature_multiplier)
    if name not in jplinen.available_pools():  # NNX only (test_api.NNX_ONLY)
      continue
    linen_layer = jplinen.make_pool(name, (2, 2))
    variables = linen_layer.init(jax.random.key(0), X, **mode)
    if name == "gated":  # randomly initialised: use the NNX layer's mask
      variables = {"params": {"gate": layer.gate[...]}}
    linen_out = linen_layer.apply(variables, X, **mode)
    np.testing.assert_allclose(linen_out, out, rtol=1e-6, atol=1e-6)
  with pytest.raises(ValueError, match="needs features=<int >= 1>"):
    jpnnx.make_pool("lip", (2, 2), rngs=nnx.Rngs(0))
  with pytest.raises(TypeError, match="LIP needs rngs"):
    jpnnx.make_pool("lip", (2, 2), features=3)
  with pytest.raises(ValueError, match="unknown pooling 'maxx'; available: avg"):
    jpnnx.make_pool("maxx", (2, 2))


def test_register_pool_extends_make_pool():
  jpnnx.register_pool("wide_lp", jpnnx.LpPool, p=4.0)
  try:
    layer = jpnnx.make_pool("wide_lp", (2, 2))
    np.testing.assert_allclose(layer(X), jaxpool.lp_pool(X, (2, 2), p=4.0), rtol=1e-6)
    assert "wide_lp" in jpnnx.available_pools()
  finally:
    jpnnx.unregister_pool("wide_lp")
  assert "wide_lp" not in jpnnx.available_pools()


class _Net(nnx.Module):
  def __init__(self, pool: str, *, rngs: nnx.Rngs):
    self.conv = nnx.Conv(1, 4, (3, 3), rngs=rngs)
    self.pool = jpnnx.make_pool(pool, (2, 2), features=4, rngs=rngs)
    self.head = nnx.Linear(4 * 4 * 4 * self.pool.feature_multiplier, 2, rngs=rngs)

  def __call__(self, x):
    x = self.pool(nnx.relu(self.conv(x)))
    return self.head(x.reshape(x.shape[0], -1))


@pytest.mark.parametrize(
  "pool",
  [
    "max",
    "lp",
    "median",
    "catavgmax",
    "soft",
    "lip",
    "dpp",
    "learnedmixed",
    "gated",
    "mixed",
    "stochastic",
    "s3",
    "fractional",
    "lift",
    "dyno",
  ],
)
def test_nnx_training_step_under_jit(pool):
  model = _Net(pool, rngs=nnx.Rngs(0))
  optimizer = nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)
  x = jax.random.normal(jax.random.key(1), (8, 8, 8, 1))
  labels = (x.mean(axis=(1, 2, 3)) > 0).astype(jnp.int32)

  @nnx.jit
  def step(model, optimizer):
    def loss_fn(model):
      return optax.softmax_cross_entropy_with_integer_labels(model(x), labels).mean()

    loss, grads = nnx.value_and_grad(loss_fn)(model)
    optimizer.update(model, grads)
    return loss

  with jax.numpy_dtype_promotion("standard"):  # optax mixes int32 step counts
    losses = [float(step(model, optimizer)) for _ in range(15)]
  assert np.isfinite(losses).all() and losses[-1] < losses[0]


def test_linen_layer_inside_a_linen_model_trains():
  class Net(nn.Module):
    @nn.compact
    def __call__(self, x):
      x = jplinen.MaxPool(window_shape=(2, 2), dilation=1)(nn.relu(nn.Conv(4, (3, 3))(x)))
      return nn.Dense(2)(x.reshape(x.shape[0], -1))

  net = Net()
  x = jax.random.normal(jax.random.key(1), (8, 8, 8, 1))
  params = net.init(jax.random.key(0), x)
  grads = jax.jit(jax.grad(lambda p: net.apply(p, x).sum()))(params)
  assert all(np.isfinite(g).all() for g in jax.tree.leaves(grads))


def test_learned_layers_start_as_average_pooling_and_have_parameters():
  x = jax.random.normal(jax.random.key(3), (2, 8, 8, 3))
  avg = jaxpool.avg_pool(x, (3, 3), 2, 1, count_include_pad=False)
  for logit_module in ("simplified", "bottleneck"):
    lip = jpnnx.LIP((3, 3), 2, 1, features=3, logit_module=logit_module, rngs=nnx.Rngs(0))
    np.testing.assert_allclose(lip(x), avg, rtol=1e-5, atol=1e-5)
    assert nnx.state(lip, nnx.Param)
    linen_lip = jplinen.LIP(logit_module=logit_module)
    np.testing.assert_allclose(
      linen_lip.apply(linen_lip.init(jax.random.key(0), x), x), avg, rtol=1e-5, atol=1e-5
    )
  lite, full = jpnnx.DPP(features=3), jpnnx.DPP(features=3, variant="full")
  np.testing.assert_allclose(full(x), lite(x), rtol=1e-5, atol=1e-5)  # box-filter init
  np.testing.assert_allclose(lite(x), jaxpool.dpp_pool(x, 1.0, 1.0, (2, 2)), rtol=1e-5)
  with pytest.raises(ValueError, match="logit_module must be"):
    jpnnx.LIP(features=3, logit_module="deep", rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="variant must be"):
    jpnnx.DPP(features=3, variant="heavy")


# The random layers: (NNX layer, its function, constructor args and kwargs).
RANDOM_LAYERS = [
  (jpnnx.MixedPool, jaxpool.mixed_pool, ((2, 2),), {"granularity": "map"}),
  (jpnnx.StochasticPool, jaxpool.stochastic_pool, ((3, 3), 2, 1), {}),
  (jpnnx.S3Pool, jaxpool.s3_pool, ((2, 2),), {"grid_shape": (4, 4)}),
  (jpnnx.FractionalMaxPool, jaxpool.fractional_max_pool, ((2, 2),), {"output_shape": (5, 5)}),
]


class _Block(nnx.Module):
  """A random layer next to Dropout, to check both switch together."""

  def __init__(self, layer):
    self.pool = layer
    self.dropout = nnx.Dropout(0.5, rngs=nnx.Rngs(dropout=5))

  def __call__(self, x):
    return self.dropout(self.pool(x))


@pytest.mark.parametrize(
  "layer,function,args,kwargs", RANDOM_LAYERS, ids=[r[0].__name__ for r in RANDOM_LAYERS]
)
def test_random_nnx_layers_train_randomly_and_switch_with_eval_and_view(
  layer, function, args, kwargs
):
  x = jnp.abs(X)
  pool = layer(*args, **kwargs, rngs=nnx.Rngs(pool=1))
  first, second = pool(x), pool(x)  # the stream advances
  assert not np.array_equal(first, second)
  # The first draw used the forked 'pool' stream's first key.
  key = nnx.Rngs(pool=1)["pool"].fork()()
  np.testing.assert_array_equal(first, function(x, *args, **kwargs, key=key))
  inference = function(x, *args, **kwargs)
  np.testing.assert_array_equal(pool(x, deterministic=True), inference)
  # nnx.view and eval()/train() both switch it (and Dropout alongside).
  block = _Block(pool)
  view = nnx.view(block, deterministic=True)
  np.testing.assert_array_equal(view(x), inference)
  block.eval()
  np.testing.assert_array_equal(block(x), inference)
  block.train()
  assert not np.array_equal(block(x), inference)
  # Keys at call time: a raw key, an Rngs, and the jitted call agree.
  direct = function(x, *args, **kwargs, key=jax.random.key(9))
  np.testing.assert_array_equal(pool(x, rngs=jax.random.key(9)), direct)
  jitted = nnx.jit(lambda m, v, k: m(v, rngs=k))(pool, x, jax.random.key(9))
  np.testing.assert_array_equal(jitted, direct)
  # Linen: the 'pool' stream and a deterministic argument.
  module = getattr(jplinen, layer.__name__)(*args, **kwargs)
  out = module.apply({}, x, deterministic=False, rngs={"pool": jax.random.key(9)})
  np.testing.assert_array_equal(
    out, module.apply({}, x, deterministic=False, rngs={"pool": jax.random.key(9)})
  )
  assert not np.array_equal(
    out, module.apply({}, x, deterministic=False, rngs={"pool": jax.random.key(8)})
  )
  assert not np.array_equal(out, inference)
  np.testing.assert_array_equal(module.apply({}, x, deterministic=True), inference)


def test_random_nnx_layer_errors():
  with pytest.raises(ValueError, match="has no rngs"):
    jpnnx.StochasticPool((2, 2))(X)
  with pytest.raises(ValueError, match="deterministic is None"):
    jpnnx.StochasticPool((2, 2), deterministic=None)(X)
  with pytest.raises(TypeError, match="draws its keys from rngs"):
    jpnnx.MixedPool((2, 2), key=jax.random.key(0))
  with pytest.raises(TypeError, match="unexpected keyword argument 'grid'"):
    jpnnx.S3Pool((2, 2), grid=4)
  assert jpnnx.StochasticPool((2, 2))(X, deterministic=True).shape == (2, 4, 4, 3)
  with pytest.raises(ValueError, match="does not pad"):
    jpnnx.make_pool("s3", (2, 2), padding=1, rngs=nnx.Rngs(0))


def test_lee_layers_start_as_half_max_half_average_and_learn_their_parameters():
  x = jax.random.normal(jax.random.key(3), (2, 8, 8, 3))
  half = jaxpool.mixed_pool(x, (2, 2), alpha=0.5)
  np.testing.assert_allclose(jpnnx.LearnedMixedPool((2, 2))(x), half, rtol=1e-6)
  per_feature = jpnnx.LearnedMixedPool((2, 2), features=3, per_feature=True)
  assert per_feature.mix_logit.shape == (3,)
  gated = jpnnx.GatedPool((3, 3), 2, 1, rngs=nnx.Rngs(0))
  assert gated.gate.shape == (3, 3)
  np.testing.assert_allclose(
    gated(x), jaxpool.gated_pool(x, gated.gate[...], (3, 3), 2, 1), rtol=1e-6
  )
  assert jpnnx.GatedPool((3, 3), features=3, per_feature=True, rngs=nnx.Rngs(0)).gate.shape == (
    3,
    3,
    3,
  )
  linen_gated = jplinen.GatedPool((3, 3), 2, 1, per_feature=True)
  assert linen_gated.init(jax.random.key(0), x)["params"]["gate"].shape == (3, 3, 3)
  with pytest.raises(ValueError, match="needs features"):
    jpnnx.LearnedMixedPool((2, 2), per_feature=True)
  with pytest.raises(TypeError, match="GatedPool needs rngs"):
    jpnnx.make_pool("gated", (2, 2))


def test_layers_validate_their_options_at_construction():
  """Reproducers of the layer fuzz: every bad option fails in the constructor."""
  rngs = nnx.Rngs(0)
  with pytest.raises(TypeError, match="unexpected keyword argument.*cout_include_pad"):
    jpnnx.GatedPool((2, 2), cout_include_pad=False, rngs=rngs)
  with pytest.raises(TypeError, match="unexpected keyword argument.*granularty"):
    jpnnx.LearnedMixedPool((2, 2), granularty="map")
  with pytest.raises(ValueError, match="features=<int >= 1>"):
    jpnnx.LIP(features=0, rngs=rngs)
  with pytest.raises(ValueError, match="reward must be one of"):
    jpnnx.DPP(features=3, reward="bad")
  with pytest.raises(TypeError, match="LIP needs rngs"):
    jpnnx.make_pool("lip", (2, 2), features=3)
  with pytest.raises(TypeError, match="deterministic must be a bool"):
    jpnnx.StochasticPool((2, 2), deterministic="no")
  for bad in (dict(reward="bad"), dict(variant="heavy"), dict(normalize="sum")):
    with pytest.raises(ValueError, match="must be one of"):
      jplinen.DPP(**bad)
  with pytest.raises(ValueError, match="logit_module must be one of"):
    jplinen.LIP(logit_module="deep")
  with pytest.raises(ValueError, match="combine must be one of"):
    jplinen.AvgMaxPool((2, 2), combine="mean")


@pytest.mark.parametrize("logit_module", ["simplified", "bottleneck"])
def test_nnx_and_linen_learned_layers_share_one_parametrisation(logit_module):
  """The same parameters give the same output in both APIs: one implementation."""
  x = jax.random.normal(jax.random.key(4), (2, 8, 8, 4))
  lip = jpnnx.LIP(features=4, logit_module=logit_module, rngs=nnx.Rngs(1))
  # Non-trivial parameters: perturb every one.
  for i, param in enumerate(lip.logit_params.values()):
    param[...] = param[...] + 0.1 * jax.random.normal(jax.random.key(i), param.shape)
  linen_lip = jplinen.LIP(logit_module=logit_module)
  params = {name: p[...] for name, p in lip.logit_params.items()}
  out = linen_lip.apply({"params": {"logit_params": params}}, x)
  np.testing.assert_allclose(out, lip(x), rtol=1e-5, atol=1e-6)
  dpp = jpnnx.DPP(features=4, variant="full")
  for i, param in enumerate(dpp.dpp_params.values()):
    param[...] = param[...] + 0.1 * jax.random.normal(jax.random.key(10 + i), param.shape)
  linen_dpp = jplinen.DPP(variant="full")
  params = {name: p[...] for name, p in dpp.dpp_params.items()}
  np.testing.assert_allclose(
    linen_dpp.apply({"params": {"dpp_params": params}}, x), dpp(x), rtol=1e-5, atol=1e-6
  )


@pytest.mark.parametrize(
  "make,error,match",
  [
    (lambda: jpnnx.RoIAlign(7, aligned="no"), TypeError, "RoIAlign: aligned must be a bool"),
    (lambda: jpnnx.RoIAlign(7, sampling_ratio=1.5), TypeError, "RoIAlign: sampling_ratio"),
    (
      lambda: jpnnx.RoIPool(output_shape=0),
      ValueError,
      "RoIPool: output_shape entries must be >= 1",
    ),
    (lambda: jpnnx.RoIPool(2, spatial_scale=0.0), ValueError, "RoIPool: spatial_scale"),
    (
      lambda: jpnnx.MultiScaleRoIAlign(7, image_shape=(64, 64), canonical_scale=-1),
      ValueError,
      "MultiScaleRoIAlign: canonical_scale",
    ),
    (lambda: jpnnx.SpatialPyramidPool(levels=(0,)), ValueError, "SpatialPyramidPool: levels"),
    (lambda: jpnnx.MaxPool((2, 2), strides=0), ValueError, "MaxPool: strides entries must be >= 1"),
    (lambda: jpnnx.MaxPool(2), TypeError, r"MaxPool: window_shape must be a tuple of ints"),
    (lambda: jpnnx.AvgPool((3, 3), padding=2), ValueError, "AvgPool: padding must be at most half"),
    (lambda: jpnnx.MedianPool((3, 3), dilation=0), ValueError, "MedianPool: dilation entries"),
  ],
)
def test_bad_options_fail_at_construction(make, error, match):
  # Issue 24: these used to fail only at the first call.
  with pytest.raises(error, match=match):
    make()


@pytest.mark.parametrize(
  "make,error,match",
  [
    (lambda: jplinen.RoIAlign(7, aligned="no"), TypeError, "RoIAlign: aligned must be a bool"),
    (lambda: jplinen.RoIPool(output_shape=0), ValueError, "RoIPool: output_shape entries"),
    (
      lambda: jplinen.MultiScaleRoIAlign(7, image_shape=(64, 64), canonical_scale=-1),
      ValueError,
      "MultiScaleRoIAlign: canonical_scale",
    ),
    (lambda: jplinen.SpatialPyramidPool(levels=(0,)), ValueError, "SpatialPyramidPool: levels"),
    (lambda: jplinen.SPPF(kernel_size=4), ValueError, "SPPF: kernel_size"),
    (
      lambda: jplinen.MaxPool((2, 2), strides=0),
      ValueError,
      "MaxPool: strides entries must be >= 1",
    ),
    (lambda: jplinen.MaxPool(2), TypeError, "MaxPool: window_shape must be a tuple of ints"),
    (
      lambda: jplinen.AvgPool((3, 3), padding=2),
      ValueError,
      "AvgPool: padding must be at most half",
    ),
  ],
)
def test_linen_bad_options_fail_at_construction(make, error, match):
  with pytest.raises(error, match=match):
    make()


def test_linen_random_layers_say_which_rng_stream_to_pass():
  # Issue 24: Flax's InvalidRngError did not say which stream or how.
  layer = jplinen.StochasticPool((2, 2))
  x = jnp.ones((1, 4, 4, 1))
  with pytest.raises(ValueError, match=r"draws from the 'pool' rng stream.*rngs=\{'pool': key\}"):
    layer.apply({}, x, deterministic=False)
  assert layer.apply({}, x, deterministic=False, rngs={"pool": jax.random.key(0)}).shape == (
    1,
    2,
    2,
    1,
  )
  assert (
    layer.init(jax.random.key(0), x, deterministic=False) == {}
  )  # init's 'params' stream serves


@pytest.mark.parametrize(
  "call,match",
  [
    (
      lambda: jpnnx.LIP((3, 3), 2, 1, features=4, rngs=nnx.Rngs(0))(jnp.ones((1, 8, 8, 3))),
      r"LIP\(features=4\) got an input with 3 features",
    ),
    (
      lambda: jpnnx.LIP((3, 3), 2, 1, features=4, rngs=nnx.Rngs(0))(jnp.ones((8, 8))),
      "LIP pools 2 spatial axes",
    ),
    (
      lambda: jplinen.LIP((3, 3), 2, 1).init(jax.random.key(0), jnp.ones((8, 8))),
      "LIP pools 2 spatial axes",
    ),
    (
      lambda: jpnnx.DPP((2, 2), features=4)(jnp.ones((1, 8, 8, 3))),
      r"DPP\(features=4\) got an input with 3 features",
    ),
    (
      lambda: jpnnx.DPP((2, 2), features=4, variant="full")(jnp.ones((1, 8, 8, 3))),
      r"DPP\(features=4\) got an input with 3 features",
    ),
  ],
)
def test_learned_layers_name_a_features_mismatch(call, match):
  # Issue 24: the errors came from a convolution or the alpha check.
  with pytest.raises(ValueError, match=match):
    call()
