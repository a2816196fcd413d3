"""The stochastic family: torch parity, sampling statistics, inference rules, keys."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from jax.test_util import check_grads

import jaxpool
from reference import CONFIGS, jax_args, normal_input, weighted_mean

KEY = jax.random.key(0)


# ----------------------------------------------------------------------------
# fractional_max_pool


def _torch_fractional(x, output, window, torch_samples, cotangent):
  from oracle import F, from_torch, to_torch, torch

  op = F.fractional_max_pool2d if len(window) == 2 else F.fractional_max_pool3d
  xt = to_torch(x, requires_grad=True)
  y, indices = op(
      xt, window, output_size=output, return_indices=True,
      _random_samples=torch.tensor(torch_samples),
  )
  y.backward(to_torch(cotangent))
  return from_torch(y), from_torch(xt.grad), from_torch(indices)


# (input spatial shape, output shape, window, tie-heavy input)
FRACTIONAL_CASES = [
    ((11, 9), (5, 4), (2, 3), False),
    ((7, 7), (3, 3), (3, 3), True),
    ((10, 10), (1, 6), (2, 2), False),
    ((25, 16), (17, 11), (2, 2), True),
    ((9, 8, 7), (4, 5, 3), (2, 2, 3), False),
    ((6, 7, 9), (3, 3, 4), (2, 3, 3), True),
]


@pytest.mark.parametrize("case", FRACTIONAL_CASES)
def test_fractional_max_pool_matches_torch_given_the_same_samples(case):
  shape, output, window, ties = case
  rng = np.random.default_rng(len(shape) + sum(output))
  n = len(shape)
  x = (rng.integers(0, 3, (2, *shape, 3)) if ties else rng.standard_normal((2, *shape, 3)))
  x = x.astype(np.float32)
  torch_samples = rng.random((2, 3, n), dtype=np.float32)
  # torch: (N, C, n); 2-D holds (width, height), 3-D (time, height, width).
  samples = torch_samples.transpose(0, 2, 1)
  if n == 2:
    samples = samples[:, ::-1]
  cotangent = rng.standard_normal((2, *output, 3)).astype(np.float32)
  y_ref, dx_ref, _ = _torch_fractional(x, output, window, torch_samples, cotangent)
  y, vjp = jax.vjp(
      lambda v: jaxpool.fractional_max_pool(v, window, output_shape=output, samples=samples), x
  )
  np.testing.assert_array_equal(y, y_ref)
  np.testing.assert_allclose(vjp(jnp.asarray(cotangent))[0], dx_ref, rtol=1e-6, atol=1e-6)


def test_fractional_max_pool_output_ratio_and_float64_match_torch(x64):
  from oracle import F, from_torch, to_torch, torch

  rng = np.random.default_rng(3)
  x = rng.standard_normal((2, 13, 10, 2))
  torch_samples = rng.random((2, 2, 2))
  expected = F.fractional_max_pool2d(
      to_torch(x), (2, 2), output_ratio=(0.6, 0.5),
      _random_samples=torch.tensor(torch_samples),
  )
  y = jaxpool.fractional_max_pool(
      x, window_shape=(2, 2), output_ratio=(0.6, 0.5),
      samples=torch_samples.transpose(0, 2, 1)[:, ::-1],
  )
  assert y.shape == (2, 7, 5, 2) and y.dtype == jnp.float64
  np.testing.assert_array_equal(y, from_torch(expected))


def _paper_regions(u, size, out):
  alpha = size / out
  bounds = [int(np.ceil(alpha * (i + u)) - np.ceil(alpha * u)) for i in range(out + 1)]
  bounds[0], bounds[-1] = 0, size
  return bounds


@pytest.mark.parametrize("overlapping", [False, True])
def test_fractional_max_pool_paper_regions_match_numpy_formula(overlapping, x64):
  rng = np.random.default_rng(5)
  x = rng.standard_normal((2, 17, 12, 3))
  samples = rng.random((2, 2, 3))
  out = (11, 5)
  y = jaxpool.fractional_max_pool(
      x, output_shape=out, samples=samples, regions="pseudorandom", overlapping=overlapping
  )
  expected = np.zeros((2, *out, 3))
  for b in range(2):
    for c in range(3):
      rows = _paper_regions(samples[b, 0, c], 17, out[0])
      cols = _paper_regions(samples[b, 1, c], 12, out[1])
      for i in range(out[0]):
        for j in range(out[1]):
          r1 = min(rows[i + 1] + overlapping, 17)
          c1 = min(cols[j + 1] + overlapping, 12)
          expected[b, i, j, c] = x[b, rows[i]:r1, cols[j]:c1, c].max()
  np.testing.assert_array_equal(y, expected)


def test_fractional_max_pool_random_regions_are_a_shuffle_of_two_sizes():
  # Index-valued input: the max of a disjoint 1-D region is its last cell.
  size, out = 23, 10  # alpha = 2.3: 3 regions of 3 cells, 7 of 2
  x = jnp.broadcast_to(jnp.arange(size, dtype=jnp.float32)[None, :, None], (64, size, 2))
  y = np.asarray(jaxpool.fractional_max_pool(x, output_shape=(out,), regions="random", key=KEY))
  ends = np.concatenate([np.full((64, 1, 2), -1), y.astype(int)], axis=1)
  lengths = np.diff(ends, axis=1)
  assert np.all(np.sort(lengths, axis=1) == np.array([2] * 7 + [3] * 3)[None, :, None])
  assert len({tuple(row) for row in lengths[:, :, 0]}) > 10  # orders differ by example
  assert np.any(lengths[:, :, 0] != lengths[:, :, 1])  # and by feature


@pytest.mark.parametrize("regions,window,overlapping", [
    ("torch", (2, 3), False), ("pseudorandom", None, False), ("pseudorandom", None, True),
])
def test_fractional_max_pool_inference_is_the_mean_over_samples(regions, window, overlapping, x64):
  # A midpoint rule over a 200 x 200 grid of (u_height, u_width) per plane
  # (its error here is about 0.01).
  x = jax.random.normal(KEY, (1, 11, 9, 1), jnp.float64)
  out = (6, 4)
  grid = (np.arange(200) + 0.5) / 200
  u = np.stack(np.meshgrid(grid, grid, indexing="ij"), axis=-1).reshape(-1, 2, 1)
  sampled = jaxpool.fractional_max_pool(
      jnp.broadcast_to(x, (len(u), 11, 9, 1)), window, output_shape=out, samples=u,
      regions=regions, overlapping=overlapping,
  )
  expected = jaxpool.fractional_max_pool(x, window, output_shape=out, regions=regions, overlapping=overlapping)
  np.testing.assert_allclose(expected[0], sampled.mean(axis=0), atol=2e-2)


@pytest.mark.parametrize("overlapping", [False, True])
def test_fractional_max_pool_random_regions_inference_is_the_mean_over_orders(overlapping, x64):
  # 7 -> 5: two 2-cell and three 1-cell regions, C(5, 2) = 10 equally likely orders.
  import itertools

  x = np.random.default_rng(0).standard_normal((2, 7, 3))
  outputs = []
  for large in itertools.combinations(range(5), 2):
    lengths = [2 if i in large else 1 for i in range(5)]
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    ends = [min(e + overlapping, 7) for e in bounds[1:]]
    outputs.append([x[:, a:b].max(axis=1) for a, b in zip(bounds[:-1], ends)])
  expected = np.mean(outputs, axis=0).transpose(1, 0, 2)
  y = jaxpool.fractional_max_pool(x, output_shape=(5,), regions="random", overlapping=overlapping)
  np.testing.assert_allclose(y, expected, rtol=1e-12)


def test_fractional_max_pool_errors():
  x = jnp.ones((2, 8, 8, 3))
  with pytest.raises(ValueError, match="exactly one of output_shape and output_ratio"):
    jaxpool.fractional_max_pool(x, (2, 2), output_shape=(4, 4), output_ratio=0.5)
  with pytest.raises(ValueError, match="output_ratio must lie in"):
    jaxpool.fractional_max_pool(x, window_shape=(2, 2), output_ratio=1.5)
  with pytest.raises(ValueError, match="at least output \\+ window - 1"):
    jaxpool.fractional_max_pool(x, (2, 2), output_shape=(8, 4))
  with pytest.raises(ValueError, match="needs window_shape"):
    jaxpool.fractional_max_pool(x, output_shape=(4, 4))
  with pytest.raises(ValueError, match="window_shape is for regions='torch'"):
    jaxpool.fractional_max_pool(x, (2, 2), output_shape=(4, 4), regions="pseudorandom")
  with pytest.raises(ValueError, match="samples must have shape"):
    jaxpool.fractional_max_pool(x, (2, 2), output_shape=(4, 4), samples=jnp.ones((2, 3, 2)))
  with pytest.raises(ValueError, match="key or samples, not both"):
    jaxpool.fractional_max_pool(x, (2, 2), output_shape=(4, 4), key=KEY, samples=jnp.ones((2, 2, 3)))
  with pytest.raises(ValueError, match="cannot describe"):
    jaxpool.fractional_max_pool(x, output_shape=(4, 4), regions="random", samples=jnp.ones((2, 2, 3)))
  with pytest.raises(ValueError, match="overlapping applies"):
    jaxpool.fractional_max_pool(x, (2, 2), output_shape=(4, 4), overlapping=True)
  with pytest.raises(ValueError, match="regions must be"):
    jaxpool.fractional_max_pool(x, (2, 2), output_shape=(4, 4), regions="graham")
  with pytest.raises(TypeError, match="key must be a jax.random key"):
    jaxpool.fractional_max_pool(x, (2, 2), output_shape=(4, 4), key=0)


# ----------------------------------------------------------------------------
# stochastic_pool


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
  assert np.all(np.isfinite(jax.grad(lambda v: jaxpool.stochastic_pool(v, (2, 2), key=KEY).sum())(x)))


def test_stochastic_pool_gradient_flows_to_the_sampled_element():
  x = jax.random.uniform(KEY, (3, 6, 6, 4), minval=0.1)
  key = jax.random.key(7)
  y, vjp = jax.vjp(lambda v: jaxpool.stochastic_pool(v, (2, 2), key=key), x)
  (grad,) = vjp(jnp.ones_like(y))
  blocks = np.asarray(grad).reshape(3, 3, 2, 3, 2, 4)
  assert np.all(blocks.sum(axis=(2, 4)) == 1.0)  # one cell per window
  picked = np.asarray(x).reshape(3, 3, 2, 3, 2, 4)
  np.testing.assert_array_equal((blocks * picked).sum(axis=(2, 4)), y)


# ----------------------------------------------------------------------------
# mixed_pool and gated_pool


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
      jaxpool.mixed_pool(x, (2, 2), alpha=alpha), alpha * y_max + (1 - alpha) * y_avg,
      rtol=1e-6, atol=1e-6,
  )


def test_mixed_and_gated_pool_gradients(x64):
  # With respect to the mixing weights (test_properties covers x).
  x = jax.random.normal(KEY, (1, 5, 5, 3), jnp.float64)
  check_grads(
      lambda a: jaxpool.mixed_pool(x, (3, 3), 2, 1, alpha=a), (jnp.array([0.2, 0.5, 0.9]),),
      order=1, modes=["rev"], eps=1e-4,
  )
  gate = jax.random.normal(jax.random.key(1), (3, 3, 3), jnp.float64)
  check_grads(lambda g: jaxpool.gated_pool(x, g, (3, 3), 2, 1), (gate,), order=1, modes=["rev"], eps=1e-4)
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
      tap = tuple((p - i * s + lo) // dilation for p, i, s, (lo, _) in zip(cell, idx, strides, pads))
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


# ----------------------------------------------------------------------------
# s3_pool


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
    check_grads(lambda v: jaxpool.s3_pool(v, (3, 3), (2, 2), inference=inference),
                (x,), order=1, modes=["rev"], eps=1e-4)


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


# ----------------------------------------------------------------------------
# Keys: determinism, jit, independence.

RANDOM = {
    "mixed_pool": lambda x, key: jaxpool.mixed_pool(x, (2, 2), key=key),
    "stochastic_pool": lambda x, key: jaxpool.stochastic_pool(jnp.abs(x), (2, 2), key=key),
    "s3_pool": lambda x, key: jaxpool.s3_pool(x, (2, 2), key=key, shared=False),
    "fractional_max_pool": lambda x, key: jaxpool.fractional_max_pool(x, (2, 2), output_shape=(5, 5), key=key),
    "fractional_random": lambda x, key: jaxpool.fractional_max_pool(
        x, output_shape=(5, 5), regions="random", key=key
    ),
}


@pytest.mark.parametrize("name", sorted(RANDOM))
def test_same_key_same_output_with_and_without_jit(name):
  fn = RANDOM[name]
  x = jax.random.normal(KEY, (4, 8, 8, 3))
  eager = fn(x, jax.random.key(1))
  np.testing.assert_array_equal(jax.jit(fn)(x, jax.random.key(1)), eager)
  np.testing.assert_array_equal(fn(x, jax.random.key(1)), eager)
  assert not np.array_equal(fn(x, jax.random.key(2)), eager)
  # Legacy uint32 keys work too.
  np.testing.assert_array_equal(fn(x, jax.random.PRNGKey(1)), fn(x, jax.random.PRNGKey(1)))
