"""dtype rules shared by the operators.

* Half-precision floats (float16, bfloat16) are computed in float32 inside and
  cast back, so the output dtype equals the input dtype.
* Selection operators (max, min, median) keep integer dtypes; averaging
  operators reject them with a ``TypeError``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def is_float(dtype) -> bool:
  return jnp.issubdtype(dtype, jnp.floating)


def compute_dtype(dtype):
  """float32 for half-precision floats, the dtype itself otherwise."""
  dtype = jnp.dtype(dtype)
  if is_float(dtype) and dtype.itemsize < 4:
    return jnp.dtype(jnp.float32)
  return dtype


def array_input(x, op: str) -> jax.Array:
  """``x`` as an array; a ``TypeError`` naming ``op`` for ``None``."""
  if x is None:
    raise TypeError(f"{op} expects an array; got None.")
  return jnp.asarray(x)


def float_input(x, op: str) -> jax.Array:
  """``x`` as an array; a ``TypeError`` naming ``op`` unless it is floating."""
  x = array_input(x, op)
  if not is_float(x.dtype):
    raise TypeError(
      f"{op} expects a floating-point input; got dtype {x.dtype}. Cast it"
      " first, e.g. x.astype(jnp.float32)."
    )
  return x


def numeric_input(x, op: str) -> jax.Array:
  """``x`` as an array; a ``TypeError`` naming ``op`` unless int or float."""
  x = array_input(x, op)
  if not (is_float(x.dtype) or jnp.issubdtype(x.dtype, jnp.integer)):
    raise TypeError(f"{op} expects a floating-point or integer input; got dtype {x.dtype}.")
  return x


def lowest(dtype):
  """The value no element can beat in a max: -inf, or the integer minimum."""
  dtype = jnp.dtype(dtype)
  if is_float(dtype):
    return -np.inf
  return int(jnp.iinfo(dtype).min)


def highest(dtype):
  """The value no element can beat in a min: +inf, or the integer maximum."""
  dtype = jnp.dtype(dtype)
  if is_float(dtype):
    return np.inf
  return int(jnp.iinfo(dtype).max)
