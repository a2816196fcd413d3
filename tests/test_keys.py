"""Keys of the random operators: determinism under jit, independence, and clear
errors for malformed keys."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxpool

KEY = jax.random.key(0)


RANDOM = {
  "mixed_pool": lambda x, key: jaxpool.mixed_pool(x, (2, 2), key=key),
  "stochastic_pool": lambda x, key: jaxpool.stochastic_pool(jnp.abs(x), (2, 2), key=key),
  "s3_pool": lambda x, key: jaxpool.s3_pool(x, (2, 2), key=key, shared=False),
  "fractional_max_pool": lambda x, key: jaxpool.fractional_max_pool(
    x, (2, 2), output_shape=(5, 5), key=key
  ),
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
