"""Values, gradients and indices against torch 2.13 CPU (the oracle)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxpool
from oracle import F, from_torch, to_torch, torch_op, value_and_grad

SPATIAL = {1: (11,), 2: (7, 8), 3: (5, 6, 5)}
# (window, stride, padding, dilation, ceil_mode); padding <= window // 2 (torch).
WINDOWS = [
    (2, None, 0, 1, False),
    (3, 2, 1, 1, False),
    (3, 2, 1, 1, True),
    (2, 2, 1, 1, True),
    (3, 2, 0, 1, True),
    (3, 1, 0, 2, False),
    (2, 3, 1, 2, True),
    (3, 2, 1, 2, False),
]
CASES = [(nd, *w) for nd in SPATIAL for w in WINDOWS]


def _input(nd, kind, seed=0, channels=3, batch=2):
  rng = np.random.default_rng(seed)
  shape = (batch,) + SPATIAL[nd] + (channels,)
  if kind == "ties":  # many equal values: exercises the first-maximum rule
    return rng.integers(0, 3, shape).astype(np.float32)
  return rng.standard_normal(shape).astype(np.float32)


def _jax_args(nd, k, s, p, d, ceil):
  return dict(
      window_shape=(k,) * nd, strides=None if s is None else (s,) * nd,
      padding=p, dilation=d, ceil_mode=ceil,
  )


def _torch_args(k, s, p, d, ceil):
  return dict(kernel_size=k, stride=s, padding=p, dilation=d, ceil_mode=ceil)


def _jax_value_and_grad(fn, x, cotangent):
  y, vjp = jax.vjp(fn, jnp.asarray(x))
  return np.asarray(y), np.asarray(vjp(jnp.asarray(cotangent))[0])


@pytest.mark.parametrize("kind", ["ties", "normal"])
@pytest.mark.parametrize("nd,k,s,p,d,ceil", CASES)
def test_max_pool_values_gradients_indices(nd, k, s, p, d, ceil, kind):
  x = _input(nd, kind)
  targs = _torch_args(k, s, p, d, ceil)
  jargs = _jax_args(nd, k, s, p, d, ceil)
  ref, ref_idx = torch_op("max_pool", nd)(to_torch(x), return_indices=True, **targs)
  cot = np.random.default_rng(1).standard_normal(from_torch(ref).shape)
  cot = cot.astype(np.float32)
  ref_y, ref_g = value_and_grad(
      lambda t: torch_op("max_pool", nd)(t, **targs), x, cot
  )
  y, g = _jax_value_and_grad(
      jax.jit(lambda v: jaxpool.max_pool(v, **jargs)), x, cot
  )
  np.testing.assert_array_equal(y, ref_y)
  np.testing.assert_allclose(g, ref_g, rtol=1e-6, atol=1e-6)
  values, indices = jaxpool.max_pool_with_indices(x, **jargs)
  np.testing.assert_array_equal(values, ref_y)
  np.testing.assert_array_equal(indices, from_torch(ref_idx))
  assert indices.dtype == jnp.int32


@pytest.mark.parametrize("kind", ["ties", "normal"])
@pytest.mark.parametrize("nd,k,s,p,d,ceil", CASES)
def test_min_pool_is_mirrored_torch_max_pool(nd, k, s, p, d, ceil, kind):
  x = _input(nd, kind)
  targs = _torch_args(k, s, p, d, ceil)
  ref = -from_torch(torch_op("max_pool", nd)(to_torch(-x), **targs))
  cot = np.random.default_rng(2).standard_normal(ref.shape).astype(np.float32)
  _, ref_g = value_and_grad(
      lambda t: -torch_op("max_pool", nd)(-t, **targs), x, cot
  )
  y, g = _jax_value_and_grad(
      lambda v: jaxpool.min_pool(v, **_jax_args(nd, k, s, p, d, ceil)), x, cot
  )
  np.testing.assert_array_equal(y, ref)
  np.testing.assert_allclose(g, ref_g, rtol=1e-6, atol=1e-6)


def _torch_avg_pool(nd):
  """torch avg_pool; 1-D through avg_pool2d, which has divisor_override."""
  if nd > 1:
    return torch_op("avg_pool", nd)

  def pool1d(t, kernel_size, stride, padding, **kwargs):
    out = F.avg_pool2d(
        t[:, :, None, :], (1, kernel_size), (1, stride or kernel_size),
        (0, padding), **kwargs,
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
  x = _input(nd, "normal")
  targs = dict(
      kernel_size=k, stride=s, padding=p, ceil_mode=ceil,
      count_include_pad=cip, divisor_override=div,
  )
  fn = _torch_avg_pool(nd)
  ref = from_torch(fn(to_torch(x), **targs))
  cot = np.random.default_rng(3).standard_normal(ref.shape).astype(np.float32)
  ref_y, ref_g = value_and_grad(lambda t: fn(t, **targs), x, cot)
  jargs = _jax_args(nd, k, s, p, 1, ceil)
  y, g = _jax_value_and_grad(
      jax.jit(
          lambda v: jaxpool.avg_pool(v, count_include_pad=cip, divisor=div, **jargs)
      ),
      x, cot,
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
  x = np.abs(_input(nd, "normal")) + 0.1
  x = x[(slice(None),) + tuple(slice(0, 6) for _ in range(nd))]
  fn = torch_op("lp_pool", nd)
  targs = dict(norm_type=p, kernel_size=k, stride=s, ceil_mode=ceil)
  ref = from_torch(fn(to_torch(x), **targs))
  cot = np.random.default_rng(4).standard_normal(ref.shape).astype(np.float32)
  ref_y, ref_g = value_and_grad(lambda t: fn(t, **targs), x, cot)
  y, g = _jax_value_and_grad(
      lambda v: jaxpool.lp_pool(
          v, (k,) * nd, None if s is None else (s,) * nd, p=p, ceil_mode=ceil
      ),
      x, cot,
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


# Uniform bins of more than 16 (avg) / 64 (max) cells take other paths:
# (40,) -> (2,), (16, 18) -> (2, 2) and (20, 20) -> (1, 1) cover them.
ADAPTIVE_SIZES = {
    1: [((11,), (3,)), ((5,), (3,)), ((4,), (7,)), ((8,), (4,)), ((40,), (2,))],
    2: [((7, 8), (3, 5)), ((6, 6), (3, 2)), ((5, 4), (1, 1)), ((3, 4), (5, 6)),
        ((16, 18), (2, 2)), ((20, 20), (1, 1))],
    3: [((5, 6, 5), (2, 3, 4)), ((4, 4, 4), (2, 2, 2))],
}
ADAPTIVE_CASES = [(nd, i, o) for nd, sizes in ADAPTIVE_SIZES.items() for i, o in sizes]


@pytest.mark.parametrize("kind", ["ties", "normal"])
@pytest.mark.parametrize("nd,in_shape,out_shape", ADAPTIVE_CASES)
@pytest.mark.parametrize("op", ["avg", "max"])
def test_adaptive_pool(op, nd, in_shape, out_shape, kind):
  rng = np.random.default_rng(5)
  shape = (2,) + in_shape + (3,)
  if kind == "ties":
    x = rng.integers(0, 3, shape).astype(np.float32)
  else:
    x = rng.standard_normal(shape).astype(np.float32)
  fn = torch_op(f"adaptive_{op}_pool", nd)
  ref = from_torch(fn(to_torch(x), out_shape))
  cot = rng.standard_normal(ref.shape).astype(np.float32)
  ref_y, ref_g = value_and_grad(lambda t: fn(t, out_shape), x, cot)
  ours = getattr(jaxpool, f"adaptive_{op}_pool")
  y, g = _jax_value_and_grad(jax.jit(lambda v: ours(v, out_shape)), x, cot)
  np.testing.assert_allclose(y, ref_y, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(g, ref_g, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("op", ["avg", "max"])
def test_global_pool_matches_torch_adaptive_one(op, nd):
  x = _input(nd, "ties", seed=6)
  fn = torch_op(f"adaptive_{op}_pool", nd)
  ref = from_torch(fn(to_torch(x), 1))
  cot = np.random.default_rng(7).standard_normal((2, 3)).astype(np.float32)
  _, ref_g = value_and_grad(
      lambda t: fn(t, 1), x, cot.reshape((2,) + (1,) * nd + (3,))
  )
  ours = getattr(jaxpool, f"global_{op}_pool")
  y, g = _jax_value_and_grad(ours, x, cot)
  np.testing.assert_allclose(y, ref.reshape(2, 3), rtol=1e-6)
  np.testing.assert_allclose(g, ref_g, rtol=1e-6, atol=1e-7)
  kept = ours(x, keepdims=True)
  assert kept.shape == (2,) + (1,) * nd + (3,)


@pytest.mark.parametrize("nd,k,s,p,d,ceil", [c for c in CASES if c[4] == 1])
def test_max_unpool_values_and_gradients(nd, k, s, p, d, ceil):
  x = _input(nd, "ties", seed=8)
  targs = _torch_args(k, s, p, d, ceil)
  ref_v, ref_i = torch_op("max_pool", nd)(to_torch(x), return_indices=True, **targs)
  out_size = SPATIAL[nd]
  unpool = torch_op("max_unpool", nd)
  v = from_torch(ref_v)
  cot = np.random.default_rng(9).standard_normal(x.shape).astype(np.float32)
  ref_y, ref_g = value_and_grad(
      lambda t: unpool(t, ref_i, k, s, p, output_size=out_size), v, cot
  )
  values, indices = jaxpool.max_pool_with_indices(x, **_jax_args(nd, k, s, p, d, ceil))
  y, g = _jax_value_and_grad(
      lambda t: jaxpool.max_unpool(t, indices, out_size), values, cot
  )
  np.testing.assert_array_equal(y, ref_y)
  np.testing.assert_allclose(g, ref_g, rtol=1e-6)


def test_nan_propagates_and_index_follows_torch():
  x = np.array([[np.nan, 1.0], [np.nan, 0.0]], np.float32).reshape(1, 2, 2, 1)
  ref_v, ref_i = F.max_pool2d(to_torch(x), 2, return_indices=True)
  values, indices = jaxpool.max_pool_with_indices(x, (2, 2))
  assert np.isnan(values).all() and np.isnan(from_torch(ref_v)).all()
  np.testing.assert_array_equal(indices, from_torch(ref_i))
  g = jax.grad(lambda v: jnp.nansum(jaxpool.max_pool(v, (2, 2))))(jnp.asarray(x))
  assert np.isfinite(np.asarray(g)).all()


def test_window_of_minus_infinity_points_at_first_real_cell():
  x = np.full((1, 3, 3, 1), -np.inf, np.float32)
  ref_v, ref_i = F.max_pool2d(to_torch(x), 2, 2, 1, return_indices=True)
  values, indices = jaxpool.max_pool_with_indices(x, (2, 2), padding=1)
  np.testing.assert_array_equal(values, from_torch(ref_v))
  np.testing.assert_array_equal(indices, from_torch(ref_i))
