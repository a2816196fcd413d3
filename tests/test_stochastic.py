"""stochastic_pool and s3_pool: sampling statistics, inference rules, numerics at
extreme scales, flags."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from derivatives import check_grads

import jaxpool

from reference import (
  CONFIGS,
  INF,
  column,
  jax_args,
  normal_input,
  weighted_mean,
)

KEY = jax.random.key(0)


def test_stochastic_pool_sampling_frequencies_match_probabilities():
  # 40000 independent windows, each holding (0, 1, 2, 3, 4) * 0.5 in 1-D.
  window = np.array([0.0, 1.0, 2.0, 3.0, 4.0]) * 0.5
  x = jnp.broadcast_to(jnp.asarray(window, jnp.float32)[None, :, None], (8000, 5, 5))
  y = np.asarray(jaxpool.stochastic_pool(x, (5,), key=KEY)).ravel()
  counts = np.array([np.sum(y == v) for v in window])
  assert counts.sum() == y.size and counts[0] == 0  # zero mass is never drawn
  p = window[1:] / window.sum()
  chi2 = scipy.stats.chisquare(counts[1:], p * y.size)
  assert chi2.pvalue > 1e-3, (counts, p * y.size)


def test_stochastic_pool_padded_window_never_samples_padding():
  x = jnp.ones((4000, 3, 1)) * jnp.array([1.0, 2.0, 5.0])[None, :, None]
  y = np.asarray(jaxpool.stochastic_pool(x, (2,), 2, padding=1, key=KEY))
  # windows: [pad, 1] and [2, 5]
  assert np.all(y[:, 0] == 1.0)
  frac = np.mean(y[:, 1] == 5.0)
  assert abs(frac - 5 / 7) < 0.03


@pytest.mark.parametrize("config", CONFIGS)
def test_stochastic_pool_inference_is_probability_weighted_average(config, x64):
  x = np.abs(normal_input(config))
  ref = weighted_mean(x, lambda v, *_: v, config)
  np.testing.assert_allclose(jaxpool.stochastic_pool(x, **jax_args(config)), ref, rtol=1e-12)


def test_stochastic_pool_zero_and_negative_windows_are_documented_and_finite(x64):
  x = np.zeros((1, 4, 4, 1))
  x[0, 0, 0, 0] = -1.0  # window 0: no positive mass -> mean of its cells
  x[0, 2, 2, 0] = -1.0
  x[0, 2, 3, 0] = 2.0  # window 3: relu weights -> only the 2 counts
  y = jaxpool.stochastic_pool(x, (2, 2))
  np.testing.assert_allclose(y[0, :, :, 0], [[-0.25, 0.0], [0.0, 2.0]])
  grad = jax.grad(lambda v: jaxpool.stochastic_pool(v, (2, 2)).sum())(x)
  assert np.all(np.isfinite(grad))
  np.testing.assert_allclose(grad[0, :2, :2, 0], 0.25)  # the mean's derivative
  sampled = jaxpool.stochastic_pool(x, (2, 2), key=KEY)
  assert sampled[0, 1, 1, 0] == 2.0 and sampled[0, 0, 1, 0] == 0.0
  assert np.all(
    np.isfinite(jax.grad(lambda v: jaxpool.stochastic_pool(v, (2, 2), key=KEY).sum())(x))
  )


def test_stochastic_pool_gradient_flows_to_the_sampled_element():
  x = jax.random.uniform(KEY, (3, 6, 6, 4), minval=0.1)
  key = jax.random.key(7)
  y, vjp = jax.vjp(lambda v: jaxpool.stochastic_pool(v, (2, 2), key=key), x)
  (grad,) = vjp(jnp.ones_like(y))
  blocks = np.asarray(grad).reshape(3, 3, 2, 3, 2, 4)
  assert np.all(blocks.sum(axis=(2, 4)) == 1.0)  # one cell per window
  picked = np.asarray(x).reshape(3, 3, 2, 3, 2, 4)
  np.testing.assert_array_equal((blocks * picked).sum(axis=(2, 4)), y)


def _stride_one_max_map(x, window):
  pad = [(0, 0)] + [(0, k - 1) for k in window] + [(0, 0)]
  return np.asarray(jaxpool.max_pool(jnp.pad(x, pad, constant_values=-jnp.inf), window, 1))


@pytest.mark.parametrize("window", [(2, 2), (3, 2)])
def test_s3_pool_outputs_are_elements_of_the_stride_one_max_map(window):
  x = jax.random.normal(KEY, (2, 12, 8, 3))
  y = np.asarray(jaxpool.s3_pool(x, window, (2, 2), key=KEY, shared=False))
  m = _stride_one_max_map(x, window)
  for b in range(2):
    for c in range(3):
      assert np.all(np.isin(y[b, :, :, c], m[b, :, :, c]))


@pytest.mark.parametrize("shared", [True, False])
def test_s3_pool_keeps_sorted_rows_and_columns_per_grid_cell(shared):
  # Decreasing along rows and columns: the stride-1 max map equals x, and
  # every value names its row and column.
  h, w = 12, 8
  position = np.arange(h * w, dtype=np.float32).reshape(1, h, w, 1)
  x = -(position + 1000 * np.arange(6, dtype=np.float32).reshape(2, 1, 1, 3))
  y = np.asarray(jaxpool.s3_pool(x, (2, 2), grid_shape=(4, 8), key=KEY, shared=shared))
  assert y.shape == (2, 6, 4, 3)
  flat = (-y) % 1000
  rows, cols = flat // w, flat % w
  # One row per output row, one column per output column, both increasing.
  assert np.all(rows == rows[:, :, :1]) and np.all(cols == cols[:, :1])
  r, q = rows[:, :, 0], cols[:, 0]
  assert np.all(np.diff(r, axis=1) > 0) and np.all(np.diff(q, axis=1) > 0)
  # Two rows from each grid cell of 4 rows; 4 columns from the single cell.
  assert np.all(r[:, 0::2] // 4 == np.arange(3)[None, :, None])
  assert np.all(r[:, 1::2] // 4 == np.arange(3)[None, :, None])
  if shared:
    assert np.all(r == r[:1, :, :1]) and np.all(q == q[:1, :, :1])
  else:
    assert np.any(r != r[:, :, :1]) and np.any(r != r[:1])


@pytest.mark.parametrize("inference", ["average", "official"])
def test_s3_pool_inference_averages_the_max_map(inference, x64):
  x = jax.random.normal(KEY, (2, 8, 6, 3), jnp.float64)
  m = _stride_one_max_map(x, (2, 2))
  shift = 1 if inference == "official" else 0  # official: padding s // 2
  expected = np.zeros((2, 4, 3, 3))
  for i in range(4):
    for j in range(3):
      rows = slice(max(2 * i - shift, 0), 2 * i + 2 - shift)
      cols = slice(max(2 * j - shift, 0), 2 * j + 2 - shift)
      expected[:, i, j] = m[:, rows, cols].mean(axis=(1, 2))
  np.testing.assert_allclose(jaxpool.s3_pool(x, (2, 2), inference=inference), expected, rtol=1e-12)
  if inference == "official":  # test_properties covers the default
    check_grads(
      lambda v: jaxpool.s3_pool(v, (3, 3), (2, 2), inference=inference),
      (x,),
      order=1,
      modes=["rev"],
      eps=1e-4,
    )


def test_s3_pool_errors():
  x = jnp.ones((2, 8, 6, 3))
  with pytest.raises(ValueError, match="divisible by strides"):
    jaxpool.s3_pool(x, (3, 2))
  with pytest.raises(ValueError, match="grid_shape must be multiples"):
    jaxpool.s3_pool(x, (2, 2), grid_shape=(3, 6))
  with pytest.raises(ValueError, match="strides has 1 entries"):
    jaxpool.s3_pool(x, (2, 2), (2,))
  with pytest.raises(ValueError, match="inference must be"):
    jaxpool.s3_pool(x, (2, 2), inference="centred")


def test_stochastic_pool_infinite_limits():
  x = column([1, INF, 2, 3, -INF, 4, -INF, -2])
  y = jaxpool.stochastic_pool(x, (2,))
  np.testing.assert_allclose(y[:, 0], [INF, 2.6, 4.0, -INF], rtol=1e-6)
  for seed in range(5):
    sampled = jaxpool.stochastic_pool(x, (2,), key=jax.random.key(seed))
    np.testing.assert_array_equal(sampled[[0, 2], 0], [INF, 4.0])


def test_stochastic_pool_inference_scale_invariant():
  x = jax.random.uniform(KEY, (2, 6, 6, 3), minval=0.01)
  y = jaxpool.stochastic_pool(x, (2, 2))
  for scale in (1e20, 1e-20, 1e-30, 1e30):
    np.testing.assert_allclose(jaxpool.stochastic_pool(x * scale, (2, 2)), y * scale, rtol=1e-5)


@pytest.mark.parametrize("scale", [1e-19, 1e-20, 1e-30, 1.0, 1e20])
def test_stochastic_pool_inference_gradient_of_a_tiny_window(scale):
  x = column([1.0, 2.0]) * scale
  y = jaxpool.stochastic_pool(x, (2,))
  np.testing.assert_allclose(y[0, 0], 5.0 / 3 * scale, rtol=1e-6)
  grad = jax.grad(lambda v: jaxpool.stochastic_pool(v, (2,)).sum())(x)
  # y = sum a^2 / sum a: dy/da_j = (2 a_j S - Q) / S^2 = (1/9, 7/9).
  np.testing.assert_allclose(grad[:, 0], [1.0 / 9, 7.0 / 9], rtol=1e-5)


def test_stochastic_pool_inference_gradient_is_true_derivative(x64):
  x = np.random.default_rng(5).uniform(0.1, 2.0, (2, 6, 6, 3))
  check_grads(lambda v: jaxpool.stochastic_pool(v, (3, 3), 2, 1), (x,), order=1)
  check_grads(lambda v: jaxpool.stochastic_pool(v * 1e-150, (2, 2)) * 1e150, (x,), order=1)


def test_s3_pool_checks_flags():
  x = jnp.ones((2, 8, 8, 3))
  with pytest.raises(TypeError, match="shared must be a bool"):
    jaxpool.s3_pool(x, (2, 2), key=KEY, shared="no")
  with pytest.raises(ValueError, match="inference must be"):
    jaxpool.s3_pool(x, (2, 2), inference=1)


def test_s3_pool_names_an_empty_spatial_axis():
  # Issue 24: the error came from a window check inside.
  with pytest.raises(ValueError, match="s3_pool needs non-empty spatial axes"):
    jaxpool.s3_pool(jnp.ones((2, 0, 8, 3)), (2, 2), key=jax.random.key(0))
