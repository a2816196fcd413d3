"""SoftPool, LIP and DPP against float64 numpy formulas written from the papers."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import jaxpool
from reference import CONFIGS, jax_args, normal_input, weighted_mean

@pytest.mark.parametrize("config", CONFIGS)
def test_soft_pool_matches_formula(config, x64):
  x = normal_input(config)
  ref = weighted_mean(x, lambda v, *_: np.exp(v - v.max()), config)
  np.testing.assert_allclose(jaxpool.soft_pool(x, **jax_args(config)), ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("config", CONFIGS)
def test_lip_pool_matches_formula(config, x64):
  x, logits = normal_input(config), 3 * normal_input(config, seed=1)
  ref = weighted_mean(x, lambda v, b, c, cells, _: np.exp(np.array([logits[(b,) + q + (c,)] for q in cells])), config)
  np.testing.assert_allclose(jaxpool.lip_pool(x, logits, **jax_args(config)), ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("reward", ["sym", "asym"])
@pytest.mark.parametrize("normalize", ["none", "mean"])
@pytest.mark.parametrize("config", CONFIGS[:4])
def test_dpp_pool_matches_paper_formula(config, reward, normalize, x64):
  x = normal_input(config)
  alpha = np.array([0.5, 1.0, 2.0])
  lam = np.array([0.5, 2.0, 3.0])
  eps2 = 1e-3

  def weights(v, b, c, cells, idx):
    d = v - v.mean()  # Lite-DPP: reference = mean of the window's real cells
    if reward == "asym":
      d = np.maximum(d, 0)
    s = d**2 + eps2
    if normalize == "mean":
      s = s / s.mean()
    return alpha[c] + s ** (lam[c] / 2)

  ref = weighted_mean(x, weights, config)
  y = jaxpool.dpp_pool(x, alpha, lam, reward=reward, normalize=normalize, **jax_args(config))
  np.testing.assert_allclose(y, ref, rtol=1e-10, atol=1e-12)


def test_dpp_pool_with_reference_and_special_cases(x64):
  x = np.random.default_rng(2).standard_normal((2, 6, 6, 3))
  ref_map = np.random.default_rng(3).standard_normal((2, 3, 3, 3))
  config = ((6, 6), (2, 2), None, 0, 1, False)
  expected = weighted_mean(
      x, lambda v, b, c, cells, idx: 1.0 + ((v - ref_map[(b,) + idx + (c,)]) ** 2 + 1e-3) ** 1.5, config
  )
  y = jaxpool.dpp_pool(x, 1.0, 3.0, (2, 2), reference=ref_map)
  np.testing.assert_allclose(y, expected, rtol=1e-10)
  avg = jaxpool.avg_pool(x, (3, 3), 2, 1, count_include_pad=False)
  np.testing.assert_allclose(jaxpool.dpp_pool(x, 1.0, 0.0, (3, 3), 2, 1), avg, rtol=1e-12)
  np.testing.assert_allclose(jaxpool.dpp_pool(x, 1e12, 2.0, (3, 3), 2, 1), avg, rtol=1e-9)


def test_lip_special_cases_and_softpool_identity():
  x = jax.random.normal(jax.random.key(0), (2, 9, 9, 4))
  kw = dict(window_shape=(3, 3), strides=2, padding=1)
  np.testing.assert_allclose(jaxpool.lip_pool(x, x, **kw), jaxpool.soft_pool(x, **kw), rtol=1e-6)
  np.testing.assert_allclose(
      jaxpool.lip_pool(x, jnp.zeros_like(x), **kw),
      jaxpool.avg_pool(x, count_include_pad=False, **kw), rtol=1e-6, atol=1e-6,
  )
  np.testing.assert_allclose(jaxpool.lip_pool(x, 5000 * x, **kw), jaxpool.max_pool(x, **kw), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("config", CONFIGS)
def test_custom_vjps_are_the_true_derivative(config, x64):
  x, logits = normal_input(config), normal_input(config, seed=1)
  kw = jax_args(config)
  check_grads(lambda v: jaxpool.soft_pool(v, **kw), (x,), order=1, modes=["rev"])
  check_grads(lambda v, l: jaxpool.lip_pool(v, l, **kw), (x, logits), order=1, modes=["rev"])


@pytest.mark.parametrize("reward", ["sym", "asym"])
def test_dpp_gradients_to_every_argument(reward, x64):
  x = np.random.default_rng(4).standard_normal((2, 6, 6, 3))
  reference = np.random.default_rng(5).standard_normal((2, 3, 3, 3))
  fn = lambda v, a, l, r: jaxpool.dpp_pool(v, a, l, (2, 2), reference=r, reward=reward)
  check_grads(fn, (x, np.array([0.5, 1.0, 2.0]), np.array([1.0, 2.0, 0.7]), reference), order=1, modes=["rev", "fwd"])
  check_grads(lambda v: jaxpool.dpp_pool(v, 1.0, 2.0, (3, 3), 2, 1, normalize="mean"), (x,), order=1)


def test_stable_for_extreme_values_in_float32():
  x = jnp.array([1e4, -1e4, 5e3, 1e4 - 1.0, -1e4, -1e4 + 2.0], jnp.float32).reshape(1, 6, 1)
  y = jaxpool.soft_pool(x, (2,))
  pairs = np.asarray(x, np.float64).reshape(3, 2)
  w = np.exp(pairs - pairs.max(axis=1, keepdims=True))
  expected = (w * pairs).sum(axis=1) / w.sum(axis=1)  # e.g. -9998 - 2 e^-2 / (1 + e^-2)
  np.testing.assert_allclose(y[0, :, 0], expected, rtol=1e-6)
  grad = jax.grad(lambda v: jaxpool.soft_pool(v, (2,)).sum())(x)
  assert np.isfinite(np.asarray(grad)).all()
  big_logits = jnp.full_like(x, 1e4)
  assert np.isfinite(np.asarray(jaxpool.lip_pool(x, big_logits, (2,)))).all()
  d = jaxpool.dpp_pool(x, 1.0, 40.0, (2,))
  assert np.isfinite(np.asarray(d)).all()


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_half_precision(dtype):
  x = jax.random.normal(jax.random.key(1), (2, 8, 8, 3))
  for fn in (
      lambda v: jaxpool.soft_pool(v, (2, 2)),
      lambda v: jaxpool.lip_pool(v, v * 0.5, (3, 3), 2, 1),
      lambda v: jaxpool.dpp_pool(v, 1.0, 2.0, (2, 2)),
  ):
    y = fn(x.astype(dtype))
    assert y.dtype == dtype
    np.testing.assert_allclose(np.asarray(y, np.float32), fn(x.astype(dtype).astype(jnp.float32)), rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize(
    "call,error,message",
    [
        (lambda x: jaxpool.lip_pool(x, x[..., :1], (2, 2)), ValueError, "logits must have the shape of x"),
        (lambda x: jaxpool.dpp_pool(x, 1.0, 1.0, (2, 2), reward="max"), ValueError, "reward must be"),
        (lambda x: jaxpool.dpp_pool(x, 1.0, 1.0, (2, 2), normalize="sum"), ValueError, "normalize must be"),
        (lambda x: jaxpool.dpp_pool(x, jnp.ones(5), 1.0, (2, 2)), ValueError, "alpha must be a scalar or have shape (2,)"),
        (lambda x: jaxpool.dpp_pool(x, 1.0, 1.0, (2, 2), reference=x), ValueError, "reference must have the output's shape"),
        (lambda x: jaxpool.soft_pool(x.astype(jnp.int32), (2, 2)), TypeError, "floating-point input"),
        (lambda x: jaxpool.soft_pool(x, 2), TypeError, "window_shape must be a tuple"),
    ],
)
def test_bad_inputs(call, error, message):
  with pytest.raises(error, match=re.escape(message)):
    call(jnp.ones((1, 4, 4, 2)))
