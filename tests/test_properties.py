"""Properties every operator of the table (tests/cases.py) keeps: jit, vmap,
dtypes, exact derivatives (random operators in inference mode)."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from derivatives import check_grads

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
  mapped = jax.jit(jax.vmap(lambda row: fn(row[None])[0]))(x)
  chex.assert_trees_all_close(mapped, fn(x), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
@pytest.mark.parametrize("name", sorted(OPERATORS))
def test_half_precision_in_same_dtype_out(name, dtype):
  fn, x = OPERATORS[name], _x()
  low = fn(x.astype(dtype))
  assert low.dtype == dtype
  tol = 2e-2 if dtype == jnp.bfloat16 else 2e-3
  np.testing.assert_allclose(
    np.asarray(low, np.float32),
    fn(x.astype(dtype).astype(jnp.float32)),
    rtol=tol,
    atol=tol,
  )
  grad = jax.jit(jax.grad(lambda v: jnp.sum(fn(v).astype(jnp.float32))))(x.astype(dtype))
  assert grad.dtype == dtype


@pytest.mark.parametrize("name", sorted(OPERATORS))
def test_gradients_are_the_true_derivative(name, x64):
  # Distinct values, away from ties, so finite differences are meaningful.
  x = jax.random.permutation(jax.random.key(1), 4 * 7 * 9 * 3).reshape(4, 7, 9, 3)
  x = x.astype(jnp.float64) / 7.0 + 0.5
  modes = ["rev"] if name in REVERSE_ONLY else ["fwd", "rev"]
  check_grads(OPERATORS[name], (x,), order=1, modes=modes, eps=1e-4)


def test_unbatched_input():
  x = _x(shape=(6, 6, 2))
  np.testing.assert_array_equal(jaxpool.max_pool(x, (2, 2)), jaxpool.max_pool(x[None], (2, 2))[0])
  y, i = jaxpool.max_pool_with_indices(x, (2, 2))
  np.testing.assert_array_equal(
    jaxpool.max_unpool(y, i, (6, 6)), jaxpool.max_unpool(y[None], i[None], (6, 6))[0]
  )
  np.testing.assert_allclose(
    jaxpool.global_avg_pool(x, spatial_ndim=2), x.mean(axis=(0, 1)), rtol=1e-6
  )
