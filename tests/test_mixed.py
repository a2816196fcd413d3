"""mixed_pool and gated_pool: sampling granularity, the numpy formula, gradients,
infinite limits and argument checks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from derivatives import check_grads

import jaxpool

from reference import (
  CONFIGS,
  INF,
  NAN,
  column,
  jax_args,
  normal_input,
  weighted_mean,
)

KEY = jax.random.key(0)


@pytest.mark.parametrize("granularity", ["region", "map", "layer"])
def test_mixed_pool_outputs_are_exactly_max_or_average_at_granularity(granularity):
  x = jax.random.normal(KEY, (16, 8, 8, 6))
  y_max, y_avg = jaxpool.max_pool(x, (2, 2)), jaxpool.avg_pool(x, (2, 2))
  chose_max = []
  for seed in range(8 if granularity == "layer" else 1):
    y = jaxpool.mixed_pool(x, (2, 2), key=jax.random.key(seed), granularity=granularity)
    is_max, is_avg = y == y_max, y == y_avg
    assert bool(jnp.all(is_max | is_avg))
    chose_max.append(np.asarray(is_max))
  chose_max = np.stack(chose_max)
  if granularity == "region":
    assert 0.4 < chose_max.mean() < 0.6
  elif granularity == "map":  # one choice per (example, feature)
    assert np.all(chose_max == chose_max[:, :, :1, :1, :])
    assert 0 < chose_max.mean() < 1
  else:  # one choice per call
    assert np.all(chose_max == chose_max[:, :1, :1, :1, :1])
    assert 0 < chose_max.mean() < 1


def test_mixed_pool_probability_follows_alpha_and_inference_mixes():
  x = jax.random.normal(KEY, (64, 8, 8, 8))
  y_max, y_avg = jaxpool.max_pool(x, (2, 2)), jaxpool.avg_pool(x, (2, 2))
  alpha = jnp.array([0.0, 0.1, 0.5, 0.9, 1.0, 0.3, 0.3, 0.3])  # per feature
  y = jaxpool.mixed_pool(x, (2, 2), alpha=alpha, key=KEY)
  rate = np.asarray(jnp.mean(y == y_max, axis=(0, 1, 2)))
  np.testing.assert_allclose(rate, alpha, atol=0.075)  # 5 sigma at 1024 draws
  np.testing.assert_allclose(
    jaxpool.mixed_pool(x, (2, 2), alpha=alpha),
    alpha * y_max + (1 - alpha) * y_avg,
    rtol=1e-6,
    atol=1e-6,
  )


def test_mixed_and_gated_pool_gradients(x64):
  # With respect to the mixing weights (test_properties covers x).
  x = jax.random.normal(KEY, (1, 5, 5, 3), jnp.float64)
  check_grads(
    lambda a: jaxpool.mixed_pool(x, (3, 3), 2, 1, alpha=a),
    (jnp.array([0.2, 0.5, 0.9]),),
    order=1,
    modes=["rev"],
    eps=1e-4,
  )
  gate = jax.random.normal(jax.random.key(1), (3, 3, 3), jnp.float64)
  check_grads(
    lambda g: jaxpool.gated_pool(x, g, (3, 3), 2, 1), (gate,), order=1, modes=["rev"], eps=1e-4
  )
  # Training mode: the gradient goes through the drawn branch only.
  grad = jax.grad(lambda v: jaxpool.mixed_pool(v, (2, 2), alpha=1.0, key=KEY).sum())(x)
  np.testing.assert_allclose(grad, jax.grad(lambda v: jaxpool.max_pool(v, (2, 2)).sum())(x))


@pytest.mark.parametrize("config", CONFIGS[:4])
def test_gated_pool_matches_numpy_formula(config, x64):
  x = normal_input(config)
  window = config[1]
  gate = np.random.default_rng(2).standard_normal(window + (3,))
  y = jaxpool.gated_pool(x, gate, **jax_args(config), count_include_pad=False)
  y_max = np.asarray(jaxpool.max_pool(x, **jax_args(config)))
  y_avg = weighted_mean(x, lambda v, *_: np.ones_like(v), config)
  shape, _, strides, padding, dilation, ceil = config
  from reference import windows

  score = np.zeros_like(y_avg)
  strides = window if strides is None else strides
  pads = [(padding, padding)] * 2 if isinstance(padding, int) else padding
  for idx, cells, _ in windows(shape, window, strides, padding, dilation, ceil):
    for cell in cells:
      tap = tuple(
        (p - i * s + lo) // dilation for p, i, s, (lo, _) in zip(cell, idx, strides, pads)
      )
      score[(slice(None),) + idx] += gate[tap] * x[(slice(None),) + cell]
  s = 1 / (1 + np.exp(-score))
  np.testing.assert_allclose(y, s * y_max + (1 - s) * y_avg, rtol=1e-12, atol=1e-12)


def test_mixed_and_gated_pool_errors():
  x = jnp.ones((2, 4, 4, 3))
  with pytest.raises(ValueError, match="granularity must be"):
    jaxpool.mixed_pool(x, (2, 2), key=KEY, granularity="pixel")
  with pytest.raises(ValueError, match="alpha must lie in"):
    jaxpool.mixed_pool(x, (2, 2), alpha=1.5)
  with pytest.raises(ValueError, match="does not broadcast"):
    jaxpool.mixed_pool(x, (2, 2), alpha=jnp.ones(4))
  with pytest.raises(ValueError, match="gate must have shape"):
    jaxpool.gated_pool(x, jnp.ones((3, 3)), (2, 2))
  with pytest.raises(TypeError, match="floating-point"):
    jaxpool.mixed_pool(jnp.ones((1, 4, 4, 1), jnp.int32), (2, 2))


def test_mixed_pool_infinite_limits():
  x = column([1, INF, 2, 3, -INF, 4, -INF, -INF])
  avg = jaxpool.avg_pool(x, (2,))[:, 0]
  np.testing.assert_array_equal(avg, [INF, 2.5, -INF, -INF])
  np.testing.assert_array_equal(jaxpool.mixed_pool(x, (2,), alpha=0.0)[:, 0], avg)
  np.testing.assert_array_equal(jaxpool.mixed_pool(x, (2,), alpha=1.0)[:, 0], [INF, 3, 4, -INF])
  np.testing.assert_allclose(
    jaxpool.mixed_pool(x, (2,), alpha=0.3)[:, 0], [INF, 2.65, -INF, -INF], rtol=1e-6
  )
  # A zero gate ignores the infinite cell (s = 1/2); an infinite score
  # saturates s (-inf with gate -1 gives s = 1: the window's max); an
  # undefined score (inf - inf) still gives -inf when max = avg = -inf.
  np.testing.assert_allclose(
    jaxpool.gated_pool(x, jnp.zeros(2), (2,))[:, 0], [INF, 2.75, -INF, -INF], rtol=1e-6
  )
  s = 1 / (1 + np.exp(-1.0))  # window (2, 3): score -2 + 3
  np.testing.assert_allclose(
    jaxpool.gated_pool(x, jnp.array([-1.0, 1.0]), (2,))[:, 0],
    [INF, 3 * s + 2.5 * (1 - s), 4, -INF],
    rtol=1e-6,
  )


def test_mixed_pool_gradient_to_alpha_at_the_ends(x64):
  x = np.random.default_rng(4).standard_normal((2, 4, 4, 3))
  for alpha in (0.0, 1.0):
    grad = jax.grad(lambda a: jaxpool.mixed_pool(x, (2, 2), alpha=a).sum())(alpha)
    expected = (jaxpool.max_pool(x, (2, 2)) - jaxpool.avg_pool(x, (2, 2))).sum()
    np.testing.assert_allclose(grad, expected, rtol=1e-12)
  check_grads(lambda v: jaxpool.gated_pool(v, jnp.zeros((2, 2)), (2, 2)), (x,), order=1)


@pytest.mark.parametrize(
  "alpha", [1.5, jnp.array(1.5), np.float32(1.5), jnp.array([0.5, NAN]), -0.5, NAN]
)
def test_mixed_pool_checks_concrete_alpha(alpha):
  with pytest.raises(ValueError, match="alpha must lie in"):
    jaxpool.mixed_pool(jnp.ones((1, 4, 4, 2)), (2, 2), alpha=alpha)


def test_mixed_pool_traced_alpha_is_used_as_given_and_flags_are_checked():
  x = jnp.arange(16.0).reshape(1, 4, 4, 1)
  y = jax.jit(lambda a: jaxpool.mixed_pool(x, (2, 2), alpha=a))(jnp.float32(0.25))
  np.testing.assert_array_equal(y, jaxpool.mixed_pool(x, (2, 2), alpha=0.25))
  with pytest.raises(TypeError, match="count_include_pad must be a bool"):
    jaxpool.mixed_pool(x, (2, 2), count_include_pad="no")
  with pytest.raises(TypeError, match="count_include_pad must be a bool"):
    jaxpool.gated_pool(x, jnp.zeros((2, 2)), (2, 2), count_include_pad=1)
  with pytest.raises(ValueError, match="granularity must be"):
    jaxpool.mixed_pool(x, (2, 2), key=KEY, granularity=1)


def test_gated_pool_names_a_missing_gate():
  # Issue 24: the error came from inside jnp.array.
  with pytest.raises(TypeError, match=r"gated_pool \(gate\) expects an array; got None"):
    jaxpool.gated_pool(jnp.ones((2, 4, 4, 3)), None, (2, 2))
