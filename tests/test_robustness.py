"""Robustness: locality, infinite limits, extreme scales, argument checks.

Regression tests for fuzz findings: an input cell may only change the outputs
whose windows (bins, regions) hold it; +-inf gives the limit where it exists;
finite input never gives NaN or inf, and gradients stay the true derivative.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import jaxpool
from reference import windows

KEY = jax.random.key(0)
NAN, INF = np.nan, np.inf


def _column(values, dtype=np.float32):
  """A 1-D signal as ``(length, 1)``: one spatial axis, one feature."""
  return jnp.asarray(np.asarray(values, dtype).reshape(-1, 1))


def _windows_holding(cell, shape, window, strides, padding):
  """Output indices of the windows that hold ``cell`` (dilation 1, floor)."""
  return {
      idx for idx, cells, _ in windows(shape, window, strides, padding, 1, False)
      if tuple(cell) in cells
  }


def _adaptive_bins(size, out):
  i = np.arange(out)
  return (i * size) // out, -((-(i + 1) * size) // out)


# ----------------------------------------------------------------------------
# 1. adaptive_avg_pool and the global pools


def test_adaptive_avg_pool_nan_reaches_only_its_bins():
  y = jaxpool.adaptive_avg_pool(_column([NAN, 1, 2, 3, 4]), (3,))
  np.testing.assert_array_equal(y[:, 0], [NAN, 2.0, 3.5])  # torch's output


def test_adaptive_avg_pool_2d_nan_and_inf_stay_in_their_bins():
  rng = np.random.default_rng(0)
  x = rng.standard_normal((23, 19, 1))
  cell = (5, 7)
  starts_h, ends_h = _adaptive_bins(23, 16)
  starts_w, ends_w = _adaptive_bins(19, 16)
  holds = (
      ((starts_h <= cell[0]) & (cell[0] < ends_h))[:, None]
      & ((starts_w <= cell[1]) & (cell[1] < ends_w))[None, :]
  )
  expected = np.array([
      [x[starts_h[i]:ends_h[i], starts_w[j]:ends_w[j], 0].mean() for j in range(16)]
      for i in range(16)
  ])
  for bad, fill in ((NAN, NAN), (INF, INF), (-INF, -INF)):
    xb = x.copy()
    xb[cell] = bad
    y = np.asarray(jaxpool.adaptive_avg_pool(jnp.asarray(xb, jnp.float32), (16, 16)))[..., 0]
    assert holds.sum() == 4
    np.testing.assert_array_equal(np.isfinite(y), ~holds)  # torch: 4 of 256
    np.testing.assert_array_equal(y[holds], fill)
    np.testing.assert_allclose(y[~holds], expected[~holds], rtol=1e-5, atol=1e-6)


def test_adaptive_avg_pool_uneven_bins_gradient(x64):
  x = np.random.default_rng(1).standard_normal((2, 7, 5, 3))
  check_grads(lambda v: jaxpool.adaptive_avg_pool(v, (3, 4)), (x,), order=1)
  x[0, 3, 2, 1] = NAN
  grad = jax.grad(
      lambda v: jnp.nansum(jaxpool.adaptive_avg_pool(v, (3, 4)))
  )(jnp.asarray(x))
  assert np.isfinite(np.asarray(grad)).all()


@pytest.mark.parametrize("op", [jaxpool.global_avg_pool, jaxpool.global_max_pool])
def test_global_pools_reject_empty_axes_and_non_bool_keepdims(op):
  with pytest.raises(ValueError, match="non-empty spatial axes"):
    op(jnp.ones((2, 0, 3, 4)))
  with pytest.raises(ValueError, match="non-empty spatial axes"):
    op(jnp.ones((0, 4)), spatial_ndim=1)
  with pytest.raises(TypeError, match="keepdims must be a bool"):
    op(jnp.ones((2, 3, 3, 4)), keepdims="no")
  assert op(jnp.ones((2, 3, 3, 4)), keepdims=np.bool_(True)).shape == (2, 1, 1, 4)


# ----------------------------------------------------------------------------
# 2. fractional_max_pool inference


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


# ----------------------------------------------------------------------------
# 3. soft_pool gradient with one-hot weights


def test_soft_pool_gradient_with_one_hot_weights():
  a = _column([0.0, 3e7])
  grad = jax.grad(lambda v: jaxpool.soft_pool(v, (2,)).sum())(a)
  np.testing.assert_array_equal(grad[:, 0], [0.0, 1.0])
  lip = jax.grad(lambda v: jaxpool.lip_pool(v, v, (2,)).sum())(a)
  np.testing.assert_array_equal(grad, lip)


@pytest.mark.parametrize("scale", [1e3, 3e7, 1e20])
def test_soft_pool_gradient_sums_to_one_per_window(scale):
  # y(x + c) = y(x) + c, so the gradient of each window's output sums to 1.
  x = jax.random.normal(KEY, (2, 8, 8, 3)) * scale
  grad = jax.grad(lambda v: jaxpool.soft_pool(v, (2, 2)).sum())(x)
  sums = np.asarray(grad).reshape(2, 4, 2, 4, 2, 3).sum(axis=(2, 4))
  np.testing.assert_allclose(sums, 1.0, atol=1e-3)


# ----------------------------------------------------------------------------
# 4. Infinite inputs give the limit, and only in their windows


def test_soft_pool_infinite_limits():
  y = jaxpool.soft_pool(_column([1, INF, 2, 3, -INF, 4, -INF, -INF, INF, -INF]), (2,))
  w = np.exp([2.0, 3.0])
  expected_23 = (w * [2.0, 3.0]).sum() / w.sum()
  np.testing.assert_allclose(y[:, 0], [INF, expected_23, 4.0, -INF, INF], rtol=1e-6)
  assert np.isnan(jaxpool.soft_pool(_column([NAN, INF]), (2,))[0, 0])


def test_lip_pool_infinite_limits():
  x = _column([1, 5, 2, 6, 3, 7, 4, 8, -INF, 9, INF, 1])
  logits = _column([INF, 0, -INF, 0, -INF, -INF, INF, INF, -INF, 0, 0, 0])
  y = jaxpool.lip_pool(x, logits, (2,))
  np.testing.assert_allclose(
      y[:, 0], [1.0, 6.0, 5.0, 6.0, 9.0, INF], rtol=1e-6
  )
  # +inf logits take all the weight, -inf none, all -inf: uniform.


@pytest.mark.parametrize("bad", [INF, -INF])
@pytest.mark.parametrize("name", ["soft", "lip", "dpp", "mixed", "gated", "stochastic"])
def test_infinite_cell_changes_only_its_windows(name, bad):
  ops = {
      "soft": lambda v, **w: jaxpool.soft_pool(v, **w),
      "lip": lambda v, **w: jaxpool.lip_pool(v, 0.5 * jnp.where(jnp.isinf(v), 0.0, v), **w),
      "dpp": lambda v, **w: jaxpool.dpp_pool(v, 1.0, 2.0, **w),
      "mixed": lambda v, **w: jaxpool.mixed_pool(v, alpha=0.3, **w),
      "gated": lambda v, **w: jaxpool.gated_pool(v, jnp.full((3, 3), 0.1), **w),
      "stochastic": lambda v, **w: jaxpool.stochastic_pool(v, **w),
  }
  window = dict(window_shape=(3, 3), strides=(2, 2), padding=1)
  x = np.abs(np.random.default_rng(3).standard_normal((1, 7, 8, 2))).astype(np.float32)
  cell = (4, 3)
  op = jax.jit(lambda v: ops[name](v, **window))
  base = np.asarray(op(x))
  xb = x.copy()
  xb[(0, *cell, 0)] = bad
  y = np.asarray(op(xb))
  holding = _windows_holding(cell, (7, 8), (3, 3), (2, 2), [(1, 1), (1, 1)])
  mask = np.zeros(base.shape[1:3], bool)
  for idx in holding:
    mask[idx] = True
  np.testing.assert_array_equal(y[0, ~mask], base[0, ~mask])
  np.testing.assert_array_equal(y[..., 1], base[..., 1])
  assert not np.isnan(y).any()
  if bad == INF:  # +inf dominates every window holding it
    np.testing.assert_array_equal(y[0, mask, 0], INF)


def test_soft_lip_gradients_finite_for_finite_input():
  x = jax.random.normal(KEY, (2, 9, 9, 3)) * 50
  for fn in (
      lambda v: jaxpool.soft_pool(v, (3, 3), 2, 1),
      lambda v: jaxpool.lip_pool(v, v * 3, (3, 3), 2, 1),
  ):
    assert np.isfinite(np.asarray(jax.grad(lambda v: fn(v).sum())(x))).all()


def test_mixed_pool_infinite_limits():
  x = _column([1, INF, 2, 3, -INF, 4, -INF, -INF])
  avg = jaxpool.avg_pool(x, (2,))[:, 0]
  np.testing.assert_array_equal(avg, [INF, 2.5, -INF, -INF])
  np.testing.assert_array_equal(jaxpool.mixed_pool(x, (2,), alpha=0.0)[:, 0], avg)
  np.testing.assert_array_equal(jaxpool.mixed_pool(x, (2,), alpha=1.0)[:, 0], [INF, 3, 4, -INF])
  np.testing.assert_allclose(jaxpool.mixed_pool(x, (2,), alpha=0.3)[:, 0], [INF, 2.65, -INF, -INF], rtol=1e-6)
  # A zero gate ignores the infinite cell (s = 1/2); an infinite score
  # saturates s (-inf with gate -1 gives s = 1: the window's max); an
  # undefined score (inf - inf) still gives -inf when max = avg = -inf.
  np.testing.assert_allclose(jaxpool.gated_pool(x, jnp.zeros(2), (2,))[:, 0], [INF, 2.75, -INF, -INF], rtol=1e-6)
  s = 1 / (1 + np.exp(-1.0))  # window (2, 3): score -2 + 3
  np.testing.assert_allclose(
      jaxpool.gated_pool(x, jnp.array([-1.0, 1.0]), (2,))[:, 0], [INF, 3 * s + 2.5 * (1 - s), 4, -INF], rtol=1e-6
  )


def test_mixed_pool_gradient_to_alpha_at_the_ends(x64):
  x = np.random.default_rng(4).standard_normal((2, 4, 4, 3))
  for alpha in (0.0, 1.0):
    grad = jax.grad(lambda a: jaxpool.mixed_pool(x, (2, 2), alpha=a).sum())(alpha)
    expected = (jaxpool.max_pool(x, (2, 2)) - jaxpool.avg_pool(x, (2, 2))).sum()
    np.testing.assert_allclose(grad, expected, rtol=1e-12)
  check_grads(lambda v: jaxpool.gated_pool(v, jnp.zeros((2, 2)), (2, 2)), (x,), order=1)


def test_stochastic_pool_infinite_limits():
  x = _column([1, INF, 2, 3, -INF, 4, -INF, -2])
  y = jaxpool.stochastic_pool(x, (2,))
  np.testing.assert_allclose(y[:, 0], [INF, 2.6, 4.0, -INF], rtol=1e-6)
  for seed in range(5):
    sampled = jaxpool.stochastic_pool(x, (2,), key=jax.random.key(seed))
    np.testing.assert_array_equal(sampled[[0, 2], 0], [INF, 4.0])


@pytest.mark.parametrize("reward", ["sym", "asym"])
def test_dpp_pool_positive_inf_gives_inf(reward):
  x = _column([1, INF, 2, 3, INF, -INF])
  y = jaxpool.dpp_pool(x, 1.0, 2.0, (2,), reward=reward)
  assert y[0, 0] == INF and y[1, 0] == jaxpool.dpp_pool(_column([2, 3]), 1.0, 2.0, (2,), reward=reward)[0, 0]
  assert np.isnan(y[2, 0])


@pytest.mark.parametrize("lam", [0.5, 1.0, 2.0, 3.0])
@pytest.mark.parametrize("reward", ["sym", "asym"])
def test_dpp_pool_negative_inf_is_the_limit(reward, lam, x64):
  # The limit, approached numerically in float64.
  cells = [1.0, -INF, 2.0, 4.0]
  y = jaxpool.dpp_pool(_column(cells, np.float64), 1.0, lam, (4,), reward=reward)[0, 0]
  approach = [jaxpool.dpp_pool(_column([1.0, -t, 2.0, 4.0], np.float64), 1.0, lam, (4,), reward=reward)[0, 0]
              for t in (1e12, 1e14)]
  if reward == "asym" and lam >= 1:
    expected = 7.0 / 3 - (0 if lam > 1 else (1 + np.sqrt(1e-3)) * 4 / 3)
    np.testing.assert_allclose(y, expected, rtol=1e-12)
    np.testing.assert_allclose(approach, expected, rtol=1e-4)
  else:
    assert y == -INF and approach[1] < approach[0] < -1e3
  # Full-DPP with a finite reference: the -inf cell keeps a positive weight.
  full = jaxpool.dpp_pool(_column(cells, np.float64), 1.0, lam, (4,), reward=reward,
                          reference=jnp.zeros((1, 1)))
  assert full[0, 0] == -INF


def test_dpp_pool_infinite_reference_gives_the_mean():
  x = _column([1.0, 2.0, 3.0, 5.0])
  ref = jnp.array([[INF], [-INF]])
  y = jaxpool.dpp_pool(x, 1.0, 2.0, (2,), reference=ref)
  np.testing.assert_array_equal(y[:, 0], [1.5, 4.0])


# ----------------------------------------------------------------------------
# 5. stochastic_pool inference at extreme scales


def test_stochastic_pool_inference_scale_invariant():
  x = jax.random.uniform(KEY, (2, 6, 6, 3), minval=0.01)
  y = jaxpool.stochastic_pool(x, (2, 2))
  for scale in (1e20, 1e-20, 1e-30, 1e30):
    np.testing.assert_allclose(
        jaxpool.stochastic_pool(x * scale, (2, 2)), y * scale, rtol=1e-5
    )


@pytest.mark.parametrize("scale", [1e-19, 1e-20, 1e-30, 1.0, 1e20])
def test_stochastic_pool_inference_gradient_of_a_tiny_window(scale):
  x = _column([1.0, 2.0]) * scale
  y = jaxpool.stochastic_pool(x, (2,))
  np.testing.assert_allclose(y[0, 0], 5.0 / 3 * scale, rtol=1e-6)
  grad = jax.grad(lambda v: jaxpool.stochastic_pool(v, (2,)).sum())(x)
  # y = sum a^2 / sum a: dy/da_j = (2 a_j S - Q) / S^2 = (1/9, 7/9).
  np.testing.assert_allclose(grad[:, 0], [1.0 / 9, 7.0 / 9], rtol=1e-5)


def test_stochastic_pool_inference_gradient_is_true_derivative(x64):
  x = np.random.default_rng(5).uniform(0.1, 2.0, (2, 6, 6, 3))
  check_grads(lambda v: jaxpool.stochastic_pool(v, (3, 3), 2, 1), (x,), order=1)
  check_grads(lambda v: jaxpool.stochastic_pool(v * 1e-150, (2, 2)) * 1e150, (x,), order=1)


# ----------------------------------------------------------------------------
# 6. dpp_pool numerics and arguments


def test_dpp_pool_large_input_is_finite_and_correct():
  x = np.array([1.0, 2.0, 4.0, 7.0, -5.0, 0.0])
  # At 1e30 the rewards (d^2 + eps^2) dwarf alpha and eps: w ~ d^2.
  windows3 = x.reshape(2, 3)
  d = windows3 - windows3.mean(axis=1, keepdims=True)
  expected = (d**2 * windows3).sum(axis=1) / (d**2).sum(axis=1) * 1e30
  xs = _column(x * 1e30)
  y, vjp = jax.vjp(lambda v: jaxpool.dpp_pool(v, 1.0, 2.0, (3,)), xs)
  np.testing.assert_allclose(y[:, 0], expected, rtol=1e-4)  # float32 cancellation
  assert np.isfinite(np.asarray(vjp(jnp.ones_like(y))[0])).all()


def test_dpp_pool_tiny_epsilon_on_constant_windows():
  x = jnp.ones((1, 4, 4, 2))
  for epsilon in (1e-30, 2e-38):
    y, vjp = jax.vjp(lambda v: jaxpool.dpp_pool(v, 1.0, 2.0, (2, 2), epsilon=epsilon), x)
    np.testing.assert_array_equal(y, 1.0)
    (grad,) = vjp(jnp.ones_like(y))
    np.testing.assert_allclose(grad, 0.25)  # the mean's derivative
    grad = jax.grad(lambda v: jaxpool.dpp_pool(v, 1.0, 2.0, (2, 2), epsilon=epsilon, normalize="mean").sum())(x)
    np.testing.assert_allclose(grad, 0.25)


def test_dpp_pool_gradient_with_tiny_epsilon_is_true_derivative(x64):
  x = np.random.default_rng(6).standard_normal((2, 4, 4, 3))
  check_grads(lambda v: jaxpool.dpp_pool(v, 1.0, 2.0, (2, 2), epsilon=1e-200), (x,), order=1)
  check_grads(lambda v: jaxpool.dpp_pool(v * 1e200, 1.0, 0.5, (2, 2), reward="asym") * 1e-200, (x,), order=1)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(alpha=-1.0), "alpha"),
        (dict(alpha=NAN), "alpha"),
        (dict(alpha=0.0), "alpha"),
        (dict(alpha=INF), "alpha"),
        (dict(alpha=jnp.array([1.0, -1.0])), "alpha"),
        (dict(lam=-1.0), "lam"),
        (dict(lam=np.float32(NAN)), "lam"),
        (dict(lam=jnp.array(INF)), "lam"),
        (dict(epsilon=0.0), "epsilon"),
        (dict(epsilon=INF), "epsilon"),
        (dict(epsilon=1e-300), "epsilon"),
    ],
)
def test_dpp_pool_checks_concrete_parameters(kwargs, name):
  x = jnp.ones((1, 4, 4, 2))
  args = dict(alpha=1.0, lam=2.0) | kwargs
  alpha, lam = args.pop("alpha"), args.pop("lam")
  with pytest.raises(ValueError, match=name):
    jaxpool.dpp_pool(x, alpha, lam, (2, 2), **args)


def test_dpp_pool_traced_parameters_are_used_as_given():
  x = jnp.ones((1, 4, 4, 2))
  y = jax.jit(lambda a, l: jaxpool.dpp_pool(x, a, l, (2, 2)))(1.0, 2.0)
  np.testing.assert_array_equal(y, 1.0)


# ----------------------------------------------------------------------------
# 7. mixed_pool and gated_pool arguments


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


# ----------------------------------------------------------------------------
# 8. s3_pool flags


def test_s3_pool_checks_flags():
  x = jnp.ones((2, 8, 8, 3))
  with pytest.raises(TypeError, match="shared must be a bool"):
    jaxpool.s3_pool(x, (2, 2), key=KEY, shared="no")
  with pytest.raises(ValueError, match="inference must be"):
    jaxpool.s3_pool(x, (2, 2), inference=1)


# ----------------------------------------------------------------------------
# 9. max_unpool index dtypes


def test_max_unpool_out_of_range_unsigned_indices_are_dropped():
  x = _column([1.0, 2.0, 3.0, 4.0])
  big = jnp.array([0, 2**31 + 1, 2**32 - 1, 3], jnp.uint32).reshape(4, 1)
  np.testing.assert_array_equal(jaxpool.max_unpool(x, big, (4,))[:, 0], [1, 0, 0, 4])
  np.testing.assert_array_equal(
      jax.jit(lambda v, i: jaxpool.max_unpool(v, i, (4,)))(x, big)[:, 0], [1, 0, 0, 4]
  )
  grad = jax.grad(lambda v: jaxpool.max_unpool(v, big, (4,)).sum())(x)
  np.testing.assert_array_equal(grad[:, 0], [1, 0, 0, 1])
  host = np.array([2**32 + 3, 1, -1, 2], np.int64).reshape(4, 1)  # no wrap to 3
  np.testing.assert_array_equal(jaxpool.max_unpool(x, host, (4,))[:, 0], [0, 2, 4, 0])


@pytest.mark.parametrize("dtype", [jnp.int64, jnp.uint64])
def test_max_unpool_64_bit_indices_never_wrap(dtype, x64):
  x = _column([1.0, 2.0, 3.0, 4.0])
  indices = jnp.array([2**32 + 3, 1, 2**63 + 2 if dtype == jnp.uint64 else -1, 2], dtype).reshape(4, 1)
  np.testing.assert_array_equal(jaxpool.max_unpool(x, indices, (4,))[:, 0], [0, 2, 4, 0])


def test_max_unpool_in_range_unsigned_indices_match_int32():
  x, indices = jaxpool.max_pool_with_indices(jax.random.normal(KEY, (2, 6, 6, 3)), (2, 2))
  expected = jaxpool.max_unpool(x, indices, (6, 6))
  for dtype in (jnp.uint32, jnp.uint8, jnp.int8, jnp.int16):
    np.testing.assert_array_equal(jaxpool.max_unpool(x, indices.astype(dtype), (6, 6)), expected)


# ----------------------------------------------------------------------------
# 10. Malformed keys


RANDOM_OPS = {
    "mixed_pool": lambda x, key: jaxpool.mixed_pool(x, (2, 2), key=key),
    "stochastic_pool": lambda x, key: jaxpool.stochastic_pool(x, (2, 2), key=key),
    "s3_pool": lambda x, key: jaxpool.s3_pool(x, (2, 2), key=key),
    "fractional_max_pool": lambda x, key: jaxpool.fractional_max_pool(
        x, (2, 2), output_shape=(3, 3), key=key
    ),
    "fractional_random": lambda x, key: jaxpool.fractional_max_pool(
        x, output_shape=(3, 3), regions="random", key=key
    ),
}
BAD_KEYS = {
    "float": lambda: jnp.zeros(2, jnp.float32),
    "wrong_shape": lambda: jnp.zeros(3, jnp.uint32),
    "batch": lambda: jax.random.split(KEY, 2),
    "raw_batch": lambda: jax.random.split(jax.random.PRNGKey(0), 2),
    "int": lambda: 3,
}


@pytest.mark.parametrize("bad", sorted(BAD_KEYS))
@pytest.mark.parametrize("name", sorted(RANDOM_OPS))
def test_malformed_keys_are_clear_errors(name, bad):
  x = jnp.ones((2, 6, 6, 3))
  with pytest.raises((TypeError, ValueError), match="key must be"):
    RANDOM_OPS[name](x, BAD_KEYS[bad]())


# ----------------------------------------------------------------------------
# NaN in a max window stays NaN


def test_nan_in_a_max_window_gives_nan():
  x = _column([1.0, NAN, 2.0, 3.0])
  np.testing.assert_array_equal(jaxpool.max_pool(x, (2,))[:, 0], [NAN, 3.0])
  np.testing.assert_array_equal(jaxpool.adaptive_max_pool(_column([1, NAN, 2, 3, 4]), (3,))[:, 0], [NAN, NAN, 4.0])
  for op in (
      lambda v: jaxpool.mixed_pool(v, (2,), alpha=1.0),
      lambda v: jaxpool.soft_pool(v, (2,)),
      lambda v: jaxpool.stochastic_pool(v, (2,)),
      lambda v: jaxpool.dpp_pool(v, 1.0, 2.0, (2,)),
  ):
    y = op(x)[:, 0]
    assert np.isnan(y[0]) and np.isfinite(y[1])
