"""max_pool_with_indices and max_unpool: torch 2.13 parity, NaN and -inf windows,
index dtypes and out-of-range indices."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxpool

from oracle import (
  SPATIAL,
  WINDOW_CASES,
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
from reference import column


@pytest.mark.parametrize("nd,k,s,p,d,ceil", [c for c in WINDOW_CASES if c[4] == 1])
def test_max_unpool_values_and_gradients(nd, k, s, p, d, ceil):
  x = torch_input(nd, "ties", seed=8)
  targs = torch_window_args(k, s, p, d, ceil)
  ref_v, ref_i = torch_op("max_pool", nd)(to_torch(x), return_indices=True, **targs)
  out_size = SPATIAL[nd]
  unpool = torch_op("max_unpool", nd)
  v = from_torch(ref_v)
  cot = np.random.default_rng(9).standard_normal(x.shape).astype(np.float32)
  ref_y, ref_g = value_and_grad(lambda t: unpool(t, ref_i, k, s, p, output_size=out_size), v, cot)
  values, indices = jaxpool.max_pool_with_indices(x, **jax_window_args(nd, k, s, p, d, ceil))
  y, g = jax_value_and_grad(lambda t: jaxpool.max_unpool(t, indices, out_size), values, cot)
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


KEY = jax.random.key(0)


def test_max_unpool_out_of_range_unsigned_indices_are_dropped():
  x = column([1.0, 2.0, 3.0, 4.0])
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
  x = column([1.0, 2.0, 3.0, 4.0])
  indices = jnp.array([2**32 + 3, 1, 2**63 + 2 if dtype == jnp.uint64 else -1, 2], dtype).reshape(
    4, 1
  )
  np.testing.assert_array_equal(jaxpool.max_unpool(x, indices, (4,))[:, 0], [0, 2, 4, 0])


def test_max_unpool_in_range_unsigned_indices_match_int32():
  x, indices = jaxpool.max_pool_with_indices(jax.random.normal(KEY, (2, 6, 6, 3)), (2, 2))
  expected = jaxpool.max_unpool(x, indices, (6, 6))
  for dtype in (jnp.uint32, jnp.uint8, jnp.int8, jnp.int16):
    np.testing.assert_array_equal(jaxpool.max_unpool(x, indices.astype(dtype), (6, 6)), expected)


def test_max_unpool_ignores_out_of_range_indices():
  values = jnp.array([1.0, 2.0, 3.0]).reshape(3, 1)
  indices = jnp.array([0, -1, 7]).reshape(3, 1)
  y = jaxpool.max_unpool(values, indices, (4,))
  np.testing.assert_array_equal(y[:, 0], [1.0, 0.0, 0.0, 0.0])


@pytest.mark.parametrize("fill", ["ties", "normal", "nan", "-inf"])
@pytest.mark.parametrize("nd,k,s,p", [(2, 9, 1, 4), (2, 13, 2, 6), (3, 5, 1, 2)])
def test_large_window_indices_match_torch(nd, k, s, p, fill):
  # Windows of 49+ taps find their winner one axis at a time
  # (core.reductions); the index is still torch's first maximum in
  # row-major order, the last NaN, or the first real cell of a -inf window.
  rng = np.random.default_rng(k)
  shape = {2: (2, 15, 17, 3), 3: (2, 7, 8, 6, 2)}[nd]
  x = (rng.integers(0, 3, shape) if fill == "ties" else rng.standard_normal(shape)).astype(
    np.float32
  )
  if fill == "nan":
    x[rng.random(shape) < 0.02] = np.nan
  if fill == "-inf":
    x[..., 0] = -np.inf
  targs = torch_window_args(k, s, p, 1, False)
  ref_v, ref_i = torch_op("max_pool", nd)(to_torch(x), return_indices=True, **targs)
  values, indices = jax.jit(
    lambda v: jaxpool.max_pool_with_indices(v, **jax_window_args(nd, k, s, p, 1, False))
  )(x)
  np.testing.assert_array_equal(values, from_torch(ref_v))
  np.testing.assert_array_equal(indices, from_torch(ref_i))
