"""``check_grads`` on the compiled function.

``jax.test_util.check_grads`` evaluates ``f`` and its JVP/VJP at many points;
eagerly every primitive of a pooling operator would compile on its own, at
each new shape. Checking ``jax.jit(f)`` checks the same derivatives (the
operators' custom rules are the same under ``jit``) as a few whole programs.
"""

import jax
from jax.test_util import check_grads as _check_grads


def check_grads(f, args, order, **kwargs):
  """``jax.test_util.check_grads(jax.jit(f), args, order, **kwargs)``."""
  _check_grads(jax.jit(f), args, order, **kwargs)
