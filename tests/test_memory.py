"""XLA memory of the gradients (compile only; nothing large is executed)."""

import jax
import jax.numpy as jnp
import pytest
from flax import linen

import jaxpool

SHAPE = (32, 64, 64, 64)


def _temp_bytes_ratio(fn):
  x = jax.ShapeDtypeStruct(SHAPE, jnp.float32)

  def forward_backward(v):
    y, pullback = jax.vjp(fn, v)
    return y, pullback(jnp.ones_like(y))[0]

  compiled = jax.jit(forward_backward).lower(x).compile()
  analysis = compiled.memory_analysis()
  if analysis is None:
    pytest.skip("this backend reports no memory analysis")
  return analysis.temp_size_in_bytes / (4 * jnp.prod(jnp.array(SHAPE)).item())


@pytest.mark.parametrize("window", [2, 3])
def test_max_pool_gradient_temp_memory_at_most_input_size(window):
  ratio = _temp_bytes_ratio(lambda v: jaxpool.max_pool(v, (window, window), 2))
  assert ratio <= 1.0, ratio
  flax_ratio = _temp_bytes_ratio(lambda v: linen.max_pool(v, (window, window), (2, 2)))
  assert ratio < flax_ratio


def test_avg_pool_gradient_temp_memory_at_most_input_size():
  assert _temp_bytes_ratio(lambda v: jaxpool.avg_pool(v, (3, 3), 2)) <= 1.0
