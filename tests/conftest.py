"""Test configuration: 8 fake CPU devices and strict dtype promotion.

Both must be set before any JAX computation initialises the backend.
"""

import jax

jax.config.update("jax_num_cpu_devices", 8)
jax.config.update("jax_numpy_dtype_promotion", "strict")

import pytest  # noqa: E402


@pytest.fixture
def x64():
  """Runs the test with 64-bit JAX types enabled (for check_grads)."""
  with jax.enable_x64(True):
    yield
