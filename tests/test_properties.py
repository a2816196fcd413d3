"""Properties every operator of the table (tests/cases.py) keeps: jit, vmap,
dtypes, exact derivatives (random operators in inference mode)."""

import itertools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import jaxpool
from cases import CASES

OPERATORS = {case.id: (lambda x, case=case: case.call(x, None)) for case in CASES}
REVERSE_ONLY = {case.id for case in CASES if case.reverse_only}


def _x(dtype=jnp.float32, shape=(4, 7, 9, 3), seed=0):
  return jax.random.normal(jax.random.key(seed), shape, dtype)


@pytest.mark.parametrize("name", sorted(OPERATORS))
def test_jit_equals_eager(name):
  fn, x = OPERATORS[name], _x()
  chex.assert_trees_all_close(jax.jit(fn)(x), fn(x), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", sorted(OPERATORS))
def test_vmap_equals_batched_call(name):
  fn, x = OPERATORS[name], _x()
  mapped = jax.vmap(lambda row: fn(row[None])[0])(x)
  chex.assert_trees_all_close(mapped, fn(x), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
@pytest.mark.parametrize("name", sorted(OPERATORS))
def test_half_precision_in_same_dtype_out(name, dtype):
  fn, x = OPERATORS[name], _x()
  low = fn(x.astype(dtype))
  assert low.dtype == dtype
  tol = 2e-2 if dtype == jnp.bfloat16 else 2e-3
  np.testing.assert_allclose(
      np.asarray(low, np.float32), fn(x.astype(dtype).astype(jnp.float32)),
      rtol=tol, atol=tol,
  )
  grad = jax.grad(lambda v: jnp.sum(fn(v).astype(jnp.float32)))(x.astype(dtype))
  assert grad.dtype == dtype


@pytest.mark.parametrize("name", sorted(OPERATORS))
def test_gradients_are_the_true_derivative(name, x64):
  # Distinct values, away from ties, so finite differences are meaningful.
  x = jax.random.permutation(jax.random.key(1), 4 * 7 * 9 * 3).reshape(4, 7, 9, 3)
  x = x.astype(jnp.float64) / 7.0 + 0.5
  modes = ["rev"] if name in REVERSE_ONLY else ["fwd", "rev"]
  check_grads(OPERATORS[name], (x,), order=1, modes=modes, eps=1e-4)


def test_max_pool_second_order(x64):
  x = jax.random.permutation(jax.random.key(2), 72).reshape(2, 6, 6, 1).astype(jnp.float64) / 5.0
  check_grads(lambda v: jaxpool.max_pool(v, (3, 3), 2, 1, dilation=1), (x,), order=2)


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
  x, t = _x(seed=3), _x(seed=4)
  fn = lambda v: jaxpool.max_pool(v, (2, 3), 1, 1, dilation=(2, 2))
  _, tangent = jax.jvp(fn, (x,), (t,))
  eps = 1e-3
  np.testing.assert_allclose(tangent, (fn(x + eps * t) - fn(x - eps * t)) / (2 * eps), atol=2e-2)


def test_unbatched_input():
  x = _x(shape=(6, 6, 2))
  np.testing.assert_array_equal(jaxpool.max_pool(x, (2, 2)), jaxpool.max_pool(x[None], (2, 2))[0])
  y, i = jaxpool.max_pool_with_indices(x, (2, 2))
  np.testing.assert_array_equal(jaxpool.max_unpool(y, i, (6, 6)), jaxpool.max_unpool(y[None], i[None], (6, 6))[0])
  np.testing.assert_allclose(jaxpool.global_avg_pool(x, spatial_ndim=2), x.mean(axis=(0, 1)), rtol=1e-6)


def test_max_unpool_ignores_out_of_range_indices():
  values = jnp.array([1.0, 2.0, 3.0]).reshape(3, 1)
  indices = jnp.array([0, -1, 7]).reshape(3, 1)
  y = jaxpool.max_unpool(values, indices, (4,))
  np.testing.assert_array_equal(y[:, 0], [1.0, 0.0, 0.0, 0.0])


def test_lp_pool_scales_each_window_by_its_own_maximum(x64):
  """Fuzz reproducers: a per-channel scale made |x / scale|^p underflow."""
  y = jaxpool.lp_pool(jnp.array([3.0, 0.0, 1.0, 1.0], jnp.float32).reshape(4, 1), (2,), p=100.0)
  np.testing.assert_allclose(y[:, 0], [3.0, 2.0 ** (1 / 100)], rtol=1e-6)
  x = np.random.default_rng(0).standard_normal((2, 8, 12, 3))
  y32 = jaxpool.lp_pool(x.astype(np.float32), (2, 2), p=100.0)
  windows = np.abs(x).reshape(2, 4, 2, 6, 2, 3).transpose(0, 1, 3, 5, 2, 4).reshape(2, 4, 6, 3, 4)
  expected = np.sum(windows ** 100.0, axis=-1) ** (1 / 100)
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
  check_grads(lambda v: jaxpool.lp_pool(v, (3, 3), 2, 1, p=p), (x,), order=1, modes=["fwd", "rev"], eps=1e-5)
