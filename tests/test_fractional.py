"""fractional_max_pool: torch 2.13 parity given the same samples, the paper's
region formula, inference as the exact expectation, locality and argument checks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxpool

from reference import INF, NAN

KEY = jax.random.key(0)


def _torch_fractional(x, output, window, torch_samples, cotangent):
  from oracle import F, from_torch, to_torch, torch

  op = F.fractional_max_pool2d if len(window) == 2 else F.fractional_max_pool3d
  xt = to_torch(x, requires_grad=True)
  y, indices = op(
    xt,
    window,
    output_size=output,
    return_indices=True,
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
  x = rng.integers(0, 3, (2, *shape, 3)) if ties else rng.standard_normal((2, *shape, 3))
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
    to_torch(x),
    (2, 2),
    output_ratio=(0.6, 0.5),
    _random_samples=torch.tensor(torch_samples),
  )
  y = jaxpool.fractional_max_pool(
    x,
    window_shape=(2, 2),
    output_ratio=(0.6, 0.5),
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
          expected[b, i, j, c] = x[b, rows[i] : r1, cols[j] : c1, c].max()
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


@pytest.mark.parametrize(
  "regions,window,overlapping",
  [
    ("torch", (2, 3), False),
    ("pseudorandom", None, False),
    ("pseudorandom", None, True),
  ],
)
def test_fractional_max_pool_inference_is_the_mean_over_samples(regions, window, overlapping, x64):
  # A midpoint rule over a 200 x 200 grid of (u_height, u_width) per plane
  # (its error here is about 0.01).
  x = jax.random.normal(KEY, (1, 11, 9, 1), jnp.float64)
  out = (6, 4)
  grid = (np.arange(200) + 0.5) / 200
  u = np.stack(np.meshgrid(grid, grid, indexing="ij"), axis=-1).reshape(-1, 2, 1)
  sampled = jaxpool.fractional_max_pool(
    jnp.broadcast_to(x, (len(u), 11, 9, 1)),
    window,
    output_shape=out,
    samples=u,
    regions=regions,
    overlapping=overlapping,
  )
  expected = jaxpool.fractional_max_pool(
    x, window, output_shape=out, regions=regions, overlapping=overlapping
  )
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
    jaxpool.fractional_max_pool(
      x, (2, 2), output_shape=(4, 4), key=KEY, samples=jnp.ones((2, 2, 3))
    )
  with pytest.raises(ValueError, match="cannot describe"):
    jaxpool.fractional_max_pool(
      x, output_shape=(4, 4), regions="random", samples=jnp.ones((2, 2, 3))
    )
  with pytest.raises(ValueError, match="overlapping applies"):
    jaxpool.fractional_max_pool(x, (2, 2), output_shape=(4, 4), overlapping=True)
  with pytest.raises(ValueError, match="regions must be"):
    jaxpool.fractional_max_pool(x, (2, 2), output_shape=(4, 4), regions="graham")
  with pytest.raises(TypeError, match="key must be a jax.random key"):
    jaxpool.fractional_max_pool(x, (2, 2), output_shape=(4, 4), key=0)


FRACTIONAL = [
  dict(window_shape=(2, 2), output_shape=(5, 4)),
  dict(output_shape=(5, 4), regions="pseudorandom"),
  dict(output_shape=(5, 4), regions="pseudorandom", overlapping=True),
  dict(output_shape=(5, 4), regions="random"),
]


@pytest.mark.parametrize("kwargs", FRACTIONAL)
def test_fractional_max_pool_inference_is_local(kwargs):
  # A cell reaches exactly the outputs that a large value there changes:
  # those whose possible regions hold it.
  x = np.random.default_rng(2).uniform(0, 1, (1, 11, 9, 2)).astype(np.float32)
  cell = (0, 4, 3, 1)
  pool = jax.jit(lambda v: jaxpool.fractional_max_pool(v, **kwargs))
  base = np.asarray(pool(x))
  big = x.copy()
  big[cell] = 1e6
  reached = np.asarray(pool(big)) != base
  assert 0 < reached.sum() < reached[..., 1].size  # not the whole plane
  assert not reached[..., 0].any()
  for bad in (NAN, INF):
    xb = x.copy()
    xb[cell] = bad
    y = np.asarray(pool(xb))
    np.testing.assert_array_equal(np.isfinite(y), ~reached)
    np.testing.assert_array_equal(y[reached], bad)
    np.testing.assert_array_equal(y[~reached], base[~reached])


def test_fractional_max_pool_checks_samples_and_overlapping():
  x = jnp.ones((2, 8, 8, 3))
  kw = dict(window_shape=(2, 2), output_shape=(4, 4))
  good = np.full((2, 2, 3), 0.5, np.float32)
  for value in (1.0, -0.1, NAN):
    samples = good.copy()
    samples[1, 0, 2] = value
    with pytest.raises(ValueError, match="samples must lie in"):
      jaxpool.fractional_max_pool(x, samples=samples, **kw)
  # Traced samples cannot be checked: they are used as given.
  y = jax.jit(lambda u: jaxpool.fractional_max_pool(x, samples=u, **kw))(good)
  assert y.shape == (2, 4, 4, 3)
  with pytest.raises(TypeError, match="overlapping must be a bool"):
    jaxpool.fractional_max_pool(x, output_shape=(4, 4), regions="pseudorandom", overlapping="yes")
