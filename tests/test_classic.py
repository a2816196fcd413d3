"""max, min, avg, LP, median and avg+max pooling: torch 2.13 parity for values,
gradients and indices; numerics of LP pooling; integer dtypes."""

import itertools
import warnings

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from derivatives import check_grads

import jaxpool

from oracle import (
  SPATIAL,
  WINDOW_CASES,
  WINDOWS,
  F,
  from_torch,
  jax_value_and_grad,
  jax_window_args,
  to_torch,
  torch_input,
  torch_op,
  torch_window_args,
  value_and_grad,
)
from reference import NAN, column


@pytest.mark.parametrize("kind", ["ties", "normal"])
@pytest.mark.parametrize("nd,k,s,p,d,ceil", WINDOW_CASES)
def test_max_pool_values_gradients_indices(nd, k, s, p, d, ceil, kind):
  x = torch_input(nd, kind)
  targs = torch_window_args(k, s, p, d, ceil)
  jargs = jax_window_args(nd, k, s, p, d, ceil)
  ref, ref_idx = torch_op("max_pool", nd)(to_torch(x), return_indices=True, **targs)
  cot = np.random.default_rng(1).standard_normal(from_torch(ref).shape)
  cot = cot.astype(np.float32)
  ref_y, ref_g = value_and_grad(lambda t: torch_op("max_pool", nd)(t, **targs), x, cot)
  y, g = jax_value_and_grad(jax.jit(lambda v: jaxpool.max_pool(v, **jargs)), x, cot)
  np.testing.assert_array_equal(y, ref_y)
  np.testing.assert_allclose(g, ref_g, rtol=1e-6, atol=1e-6)
  values, indices = jaxpool.max_pool_with_indices(x, **jargs)
  np.testing.assert_array_equal(values, ref_y)
  np.testing.assert_array_equal(indices, from_torch(ref_idx))
  assert indices.dtype == jnp.int32


@pytest.mark.parametrize("kind", ["ties", "normal"])
@pytest.mark.parametrize("nd,k,s,p,d,ceil", WINDOW_CASES)
def test_min_pool_is_mirrored_torch_max_pool(nd, k, s, p, d, ceil, kind):
  x = torch_input(nd, kind)
  targs = torch_window_args(k, s, p, d, ceil)
  ref = -from_torch(torch_op("max_pool", nd)(to_torch(-x), **targs))
  cot = np.random.default_rng(2).standard_normal(ref.shape).astype(np.float32)
  _, ref_g = value_and_grad(lambda t: -torch_op("max_pool", nd)(-t, **targs), x, cot)
  y, g = jax_value_and_grad(
    lambda v: jaxpool.min_pool(v, **jax_window_args(nd, k, s, p, d, ceil)), x, cot
  )
  np.testing.assert_array_equal(y, ref)
  np.testing.assert_allclose(g, ref_g, rtol=1e-6, atol=1e-6)


def _torch_avg_pool(nd):
  """torch avg_pool; 1-D through avg_pool2d, which has divisor_override."""
  if nd > 1:
    return torch_op("avg_pool", nd)

  def pool1d(t, kernel_size, stride, padding, **kwargs):
    out = F.avg_pool2d(
      t[:, :, None, :],
      (1, kernel_size),
      (1, stride or kernel_size),
      (0, padding),
      **kwargs,
    )
    return out[:, :, 0, :]

  return pool1d


AVG_CASES = [
  (nd, k, s, p, ceil, cip, div)
  for nd in SPATIAL
  for (k, s, p, d, ceil) in WINDOWS
  if d == 1
  for cip, div in [(True, None), (False, None), (True, 3)]
]


@pytest.mark.parametrize("nd,k,s,p,ceil,cip,div", AVG_CASES)
def test_avg_pool_values_and_gradients(nd, k, s, p, ceil, cip, div):
  x = torch_input(nd, "normal")
  targs = dict(
    kernel_size=k,
    stride=s,
    padding=p,
    ceil_mode=ceil,
    count_include_pad=cip,
    divisor_override=div,
  )
  fn = _torch_avg_pool(nd)
  ref = from_torch(fn(to_torch(x), **targs))
  cot = np.random.default_rng(3).standard_normal(ref.shape).astype(np.float32)
  ref_y, ref_g = value_and_grad(lambda t: fn(t, **targs), x, cot)
  jargs = jax_window_args(nd, k, s, p, 1, ceil)
  y, g = jax_value_and_grad(
    jax.jit(lambda v: jaxpool.avg_pool(v, count_include_pad=cip, divisor=div, **jargs)),
    x,
    cot,
  )
  np.testing.assert_allclose(y, ref_y, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(g, ref_g, rtol=1e-5, atol=1e-6)


LP_CASES = [
  (nd, k, s, ceil, p)
  for nd in (1, 2)  # torch has lp_pool1d and lp_pool2d (lp_pool3d too in 2.13)
  for (k, s, ceil) in [(2, None, False), (3, 2, False), (3, 1, False), (2, 2, True)]
  for p in (1.0, 2.0, 3.5)
]


@pytest.mark.parametrize("nd,k,s,ceil,p", LP_CASES)
def test_lp_pool_matches_torch_on_nonnegative_input(nd, k, s, ceil, p):
  # Sizes chosen so ceil-mode windows end inside the input: torch rescales
  # windows that hang past it (documented deviation, tested below).
  x = np.abs(torch_input(nd, "normal")) + 0.1
  x = x[(slice(None),) + tuple(slice(0, 6) for _ in range(nd))]
  fn = torch_op("lp_pool", nd)
  targs = dict(norm_type=p, kernel_size=k, stride=s, ceil_mode=ceil)
  ref = from_torch(fn(to_torch(x), **targs))
  cot = np.random.default_rng(4).standard_normal(ref.shape).astype(np.float32)
  ref_y, ref_g = value_and_grad(lambda t: fn(t, **targs), x, cot)
  y, g = jax_value_and_grad(
    lambda v: jaxpool.lp_pool(v, (k,) * nd, None if s is None else (s,) * nd, p=p, ceil_mode=ceil),
    x,
    cot,
  )
  np.testing.assert_allclose(y, ref_y, rtol=2e-5, atol=1e-5)
  np.testing.assert_allclose(g, ref_g, rtol=2e-4, atol=1e-5)


def test_lp_pool_ceil_mode_partial_windows_differ_from_torch_as_documented():
  x = np.ones((1, 5, 1), np.float32)
  ours = jaxpool.lp_pool(x, (2,), p=2.0, ceil_mode=True)
  theirs = from_torch(F.lp_pool1d(to_torch(x), 2.0, 2, ceil_mode=True))
  # The last window covers one real cell: ours sums it, torch scales it by 2/1.
  np.testing.assert_allclose(ours[0, :, 0], [np.sqrt(2), np.sqrt(2), 1.0], rtol=1e-6)
  np.testing.assert_allclose(theirs[0, :, 0], [np.sqrt(2), np.sqrt(2), np.sqrt(2)], rtol=1e-6)


def test_nan_in_a_max_window_gives_nan():
  x = column([1.0, NAN, 2.0, 3.0])
  np.testing.assert_array_equal(jaxpool.max_pool(x, (2,))[:, 0], [NAN, 3.0])
  np.testing.assert_array_equal(
    jaxpool.adaptive_max_pool(column([1, NAN, 2, 3, 4]), (3,))[:, 0], [NAN, NAN, 4.0]
  )
  for op in (
    lambda v: jaxpool.mixed_pool(v, (2,), alpha=1.0),
    lambda v: jaxpool.soft_pool(v, (2,)),
    lambda v: jaxpool.stochastic_pool(v, (2,)),
    lambda v: jaxpool.dpp_pool(v, 1.0, 2.0, (2,)),
  ):
    y = op(x)[:, 0]
    assert np.isnan(y[0]) and np.isfinite(y[1])


def test_max_pool_second_order(x64):
  x = jax.random.permutation(jax.random.key(2), 72).reshape(2, 6, 6, 1).astype(jnp.float64) / 5.0
  check_grads(lambda v: jaxpool.max_pool(v, (3, 3), 2, 1, dilation=1), (x,), order=2)


def test_max_pool_second_derivative_keeps_float64_on_gpu(x64):
  # JAX's second derivative of reduce_window's max packs a value and a
  # tangent into one 64-bit word on GPU ("Using reduced precision for
  # gradient of reduce-window min/max operator"): an H200 was 2.9% off in
  # test_max_pool_second_order. float64 takes the taps, which it lowers exactly.
  f = lambda v: jaxpool.max_pool(v, (3, 3), 2, 1)
  hvp = lambda v: jax.jvp(jax.grad(lambda u: jnp.sum(jnp.sin(f(u)))), (v,), (v,))[1]
  for dtype in (jnp.float64, jnp.float32):
    with warnings.catch_warnings():
      warnings.filterwarnings("error", message=".*reduced precision.*")
      jax.jit(hvp).trace(jax.ShapeDtypeStruct((2, 6, 6, 1), dtype)).lower(
        lowering_platforms=("cuda",)
      )


def _median_reference(x, k, s, p, even):
  """float64 numpy median over the real cells of every window (2-D)."""
  n, h, w, c = x.shape
  oh, ow = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
  out = np.zeros((n, oh, ow, c))
  for i, j in itertools.product(range(oh), range(ow)):
    r0, c0 = i * s - p, j * s - p
    rows = slice(max(r0, 0), min(r0 + k, h))
    cols = slice(max(c0, 0), min(c0 + k, w))
    window = x[:, rows, cols, :].reshape(n, -1, c)
    ordered = np.sort(window, axis=1)
    m = window.shape[1]
    lower = ordered[:, (m - 1) // 2]
    out[:, i, j] = lower if even == "lower" else 0.5 * (lower + ordered[:, m // 2])
  return out


@pytest.mark.parametrize("k,s,p", [(3, 1, 1), (2, 2, 0), (4, 2, 2), (3, 2, 1)])
@pytest.mark.parametrize("even", ["lower", "mean"])
def test_median_pool_matches_numpy_reference(k, s, p, even, x64):
  x = np.random.default_rng(0).standard_normal((2, 7, 8, 3))
  y = jaxpool.median_pool(x, (k, k), s, p, even=even)
  np.testing.assert_allclose(y, _median_reference(x, k, s, p, even), rtol=1e-12)


def test_median_pool_integers_and_nan():
  x = jnp.array([5, 1, 4, 2, 3, 9], jnp.int32).reshape(6, 1)
  y = jaxpool.median_pool(x, (2,))
  assert y.dtype == jnp.int32
  np.testing.assert_array_equal(y[:, 0], [1, 2, 3])
  z = jaxpool.median_pool(jnp.array([1.0, jnp.nan, 3.0, 4.0]).reshape(4, 1), (2,))
  assert np.isnan(z[0, 0]) and z[1, 0] == 3.0


@pytest.mark.parametrize(
  "fn",
  [
    lambda x: jaxpool.max_pool(x, (2, 2)),
    lambda x: jaxpool.min_pool(x, (2, 2), 1, 1),
    lambda x: jaxpool.median_pool(x, (3, 3)),
    lambda x: jaxpool.adaptive_max_pool(x, (2, 3)),
    lambda x: jaxpool.global_max_pool(x),
    lambda x: jaxpool.max_pool_with_indices(x, (2, 2))[0],
  ],
)
def test_selection_operators_keep_integer_dtype(fn):
  x = jax.random.randint(jax.random.key(0), (2, 6, 6, 3), -50, 50, jnp.int32)
  y = fn(x)
  assert y.dtype == jnp.int32
  np.testing.assert_array_equal(y, fn(x.astype(jnp.float32)).astype(jnp.int32))


def test_lp_pool_numerics():
  big = jnp.full((1, 4, 4, 1), 1e4, jnp.float32).at[0, 0, 0, 0].set(-3e4)
  y = jaxpool.lp_pool(big, (2, 2), p=8.0)
  chex.assert_tree_all_finite(y)
  expected = (3e4**8 + 3 * 1e4**8) ** (1 / 8)
  np.testing.assert_allclose(y[0, 0, 0, 0], expected, rtol=1e-5)
  zeros = jnp.zeros((1, 4, 4, 2)).at[0, 0, 0, 1].set(-2.0)
  for p in (0.5, 1.0, 2.0, 3.0):
    y, grad = jax.value_and_grad(lambda v: jaxpool.lp_pool(v, (2, 2), p=p).sum())(zeros)
    chex.assert_tree_all_finite((y, grad))
  np.testing.assert_allclose(jaxpool.lp_pool(zeros, (2, 2), p=2.0)[0, 0, 0], [0.0, 2.0])


def test_max_pool_jvp_with_dilation_equals_finite_difference():
  x, t = (jax.random.normal(jax.random.key(seed), (4, 7, 9, 3)) for seed in (3, 4))
  fn = lambda v: jaxpool.max_pool(v, (2, 3), 1, 1, dilation=(2, 2))
  _, tangent = jax.jvp(fn, (x,), (t,))
  eps = 1e-3
  np.testing.assert_allclose(tangent, (fn(x + eps * t) - fn(x - eps * t)) / (2 * eps), atol=2e-2)


def test_lp_pool_scales_each_window_by_its_own_maximum(x64):
  """Fuzz reproducers: a per-channel scale made |x / scale|^p underflow."""
  y = jaxpool.lp_pool(jnp.array([3.0, 0.0, 1.0, 1.0], jnp.float32).reshape(4, 1), (2,), p=100.0)
  np.testing.assert_allclose(y[:, 0], [3.0, 2.0 ** (1 / 100)], rtol=1e-6)
  x = np.random.default_rng(0).standard_normal((2, 8, 12, 3))
  y32 = jaxpool.lp_pool(x.astype(np.float32), (2, 2), p=100.0)
  windows = np.abs(x).reshape(2, 4, 2, 6, 2, 3).transpose(0, 1, 3, 5, 2, 4).reshape(2, 4, 6, 3, 4)
  expected = np.sum(windows**100.0, axis=-1) ** (1 / 100)
  np.testing.assert_allclose(y32, expected, rtol=1e-5)
  assert (np.asarray(y32) > 0).all()
  for big, p in ((1e20, 2.0), (1e4, 10.0)):
    z = x.astype(np.float32).copy()
    z[0, 0, 0, 0] = big
    out = np.array(jaxpool.lp_pool(z, (2, 2), p=p))
    ref = np.asarray(jaxpool.lp_pool(x.astype(np.float32), (2, 2), p=p))
    np.testing.assert_allclose(out[0, 0, 0, 0], big, rtol=1e-5)
    out[0, 0, 0, 0] = ref[0, 0, 0, 0]
    np.testing.assert_array_equal(out, ref)  # no other window moved


def test_lp_pool_nan_and_inf_stay_in_their_windows():
  x = jnp.ones((1, 4, 4, 1))
  y = jaxpool.lp_pool(x.at[0, 0, 0, 0].set(jnp.nan), (2, 2), p=2.0)
  assert np.isnan(y[0, 0, 0, 0]) and np.isfinite(np.asarray(y)).sum() == 3
  y = jaxpool.lp_pool(x.at[0, 0, 0, 0].set(-jnp.inf), (2, 2), p=2.0)
  assert y[0, 0, 0, 0] == jnp.inf
  np.testing.assert_allclose(np.asarray(y).ravel()[1:], 2.0)


@pytest.mark.parametrize("p", [0.5, 1.0, 2.5, 7.0])
def test_lp_pool_gradient_is_the_true_derivative_in_both_modes(p, x64):
  x = jax.random.normal(jax.random.key(5), (2, 7, 9, 2), jnp.float64)
  check_grads(
    lambda v: jaxpool.lp_pool(v, (3, 3), 2, 1, p=p), (x,), order=1, modes=["fwd", "rev"], eps=1e-5
  )


# Large windows run one axis at a time (core.reductions.extremum_pool); the
# row-major first-maximum rule must survive, ties included.
LARGE_WINDOWS = [
  (2, 9, 1, 4, 1, False),
  (2, 13, 1, 6, 1, False),
  (2, 7, 2, 3, 1, True),
  (2, 7, 1, 0, 2, False),
  (3, 5, 1, 2, 1, False),
]


@pytest.mark.parametrize("kind", ["ties", "normal"])
@pytest.mark.parametrize("nd,k,s,p,d,ceil", LARGE_WINDOWS)
def test_large_windows_match_torch_with_ties(nd, k, s, p, d, ceil, kind):
  rng = np.random.default_rng(k)
  shape = {1: (2, 29, 3), 2: (2, 15, 17, 3), 3: (2, 7, 8, 6, 2)}[nd]
  x = (rng.integers(0, 3, shape) if kind == "ties" else rng.standard_normal(shape)).astype(
    np.float32
  )
  targs = torch_window_args(k, s, p, d, ceil)
  jargs = jax_window_args(nd, k, s, p, d, ceil)
  for sign, name in ((1, "max_pool"), (-1, "min_pool")):
    ref = from_torch(torch_op("max_pool", nd)(to_torch(sign * x), **targs))
    cot = np.random.default_rng(1).standard_normal(ref.shape).astype(np.float32)
    ref_y, ref_g = value_and_grad(lambda t: torch_op("max_pool", nd)(t, **targs), sign * x, cot)
    fn = getattr(jaxpool, name)
    y, g = jax_value_and_grad(jax.jit(lambda v: fn(v, **jargs)), x, cot)
    np.testing.assert_array_equal(y, sign * ref_y)
    # d min(x) = d (-max(-x)): the same cells, the same cotangent. A cell
    # can win up to k**2 windows: float32 sums in another order.
    np.testing.assert_allclose(g, ref_g, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
  "k,s,p,ceil,include",
  [
    (9, 1, 4, False, True),
    (13, 1, 6, False, False),
    (7, 2, 3, True, False),
    (9, 3, 0, True, True),
  ],
)
def test_large_average_windows_match_torch(k, s, p, ceil, include):
  # Large windows are summed one axis at a time (core.reductions.separable).
  x = np.random.default_rng(k).standard_normal((2, 15, 17, 3)).astype(np.float32)
  targs = dict(torch_window_args(k, s, p, 1, ceil), count_include_pad=include)
  del targs["dilation"]
  jargs = dict(jax_window_args(2, k, s, p, 1, ceil), count_include_pad=include)
  ref_y = from_torch(torch_op("avg_pool", 2)(to_torch(x), **targs))
  cot = np.random.default_rng(1).standard_normal(ref_y.shape).astype(np.float32)
  ref_y, ref_g = value_and_grad(lambda t: torch_op("avg_pool", 2)(t, **targs), x, cot)
  y, g = jax_value_and_grad(jax.jit(lambda v: jaxpool.avg_pool(v, **jargs)), x, cot)
  np.testing.assert_allclose(y, ref_y, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(g, ref_g, rtol=1e-5, atol=1e-6)


def _median_gradient_reference(x, k, s, p, cot):
  """The cotangent of every window added to the first real cell, in row-major
  window order, equal to its lower median (2-D, numpy)."""
  n, h, w, c = x.shape
  grad = np.zeros_like(x)
  y = _median_reference(x, k, s, p, "lower")
  for b, i, j, f in itertools.product(range(n), range(y.shape[1]), range(y.shape[2]), range(c)):
    r0, c0 = i * s - p, j * s - p
    cells = [
      (r, q) for r in range(max(r0, 0), min(r0 + k, h)) for q in range(max(c0, 0), min(c0 + k, w))
    ]
    r, q = next(cell for cell in cells if x[(b, *cell, f)] == y[b, i, j, f])
    grad[b, r, q, f] += cot[b, i, j, f]
  return grad


@pytest.mark.parametrize("network", [True, False])
@pytest.mark.parametrize("k,s,p", [(3, 1, 1), (2, 2, 0), (5, 2, 2), (9, 1, 4)])
def test_median_pool_order_statistic_paths_with_ties(k, s, p, network, monkeypatch):
  # Windows up to MEDIAN_NETWORK_MAX_TAPS use a sorting network, larger
  # ones a sort: both give the numpy median, and the gradient reaches the
  # first cell holding it, ties included.
  from jaxpool._src import classic

  monkeypatch.setattr(classic, "MEDIAN_NETWORK_MAX_TAPS", 169 if network else 0)
  rng = np.random.default_rng(k)
  x = rng.integers(0, 4, (2, 11, 12, 2)).astype(np.float32)
  y = jaxpool.median_pool(x, (k, k), s, p)
  np.testing.assert_array_equal(y, _median_reference(x, k, s, p, "lower"))
  cot = rng.standard_normal(y.shape).astype(np.float32)
  _, g = jax_value_and_grad(jax.jit(lambda v: jaxpool.median_pool(v, (k, k), s, p)), x, cot)
  np.testing.assert_allclose(g, _median_gradient_reference(x, k, s, p, cot), rtol=1e-6, atol=1e-6)
  mean = jaxpool.median_pool(x, (k, k), s, p, even="mean")
  np.testing.assert_array_equal(mean, _median_reference(x, k, s, p, "mean").astype(np.float32))


def test_median_pool_gradient_is_the_true_derivative(x64):
  x = (
    jax.random.permutation(jax.random.key(3), 2 * 7 * 8).reshape(2, 7, 8, 1).astype(jnp.float64)
    / 7.0
  )
  check_grads(lambda v: jaxpool.median_pool(v, (3, 3), 2, 1, even="mean"), (x,), order=2)
