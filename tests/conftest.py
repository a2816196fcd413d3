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


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session):
  """Free the session's compiled programs before the session reports done.

  Under pytest-xdist a worker tells the controller it has finished right
  after this hook; the controller then closes the connection, and execnet
  sends a worker whose main thread is still busy 5 s later a SIGINT. The
  busy part was pytest's final ``gc.collect()``, whose JAX callback
  (``_xla_gc_callback``) frees thousands of executables: on a loaded machine
  it ran past 5 s, the SIGINT landed inside the callback, and the run ended
  with a ``KeyboardInterrupt`` "unraisable exception" warning. Clearing the
  caches and collecting here, before the clock starts, leaves that final
  collection nothing to do.
  """
  import gc

  jax.clear_caches()
  gc.collect()
