"""Test configuration: 8 fake CPU devices, strict dtype promotion, and XLA's
quick compile mode.

All three must be set before any JAX computation initialises the backend.

Most of the suite's time is XLA:CPU compiling thousands of small programs,
whose results the tests compare with oracles; those programs compile with
``jax_disable_most_optimizations`` (backend optimisation level 0), about a
third faster to compile and the same values. Tests that read what XLA's
optimiser makes of a program (temp memory, the optimised HLO) and the
example trainers (the main job as users run it) use the ``optimized``
fixture: optimisations on, with JAX's caches cleared, because the flag is
not part of the compilation cache key.
"""

import jax

jax.config.update("jax_num_cpu_devices", 8)
jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_disable_most_optimizations", True)

import pytest  # noqa: E402


@pytest.fixture
def x64():
  """Runs the test with 64-bit JAX types enabled (for check_grads)."""
  with jax.enable_x64(True):
    yield


@pytest.fixture(scope="module")
def optimized():
  """XLA's full optimisation for a module's tests (see the module docstring)."""
  jax.config.update("jax_disable_most_optimizations", False)
  jax.clear_caches()  # no program compiled in quick mode is reused
  yield
  jax.config.update("jax_disable_most_optimizations", True)
  jax.clear_caches()
