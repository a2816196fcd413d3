"""What the LiftDownPool layers of ``jaxpool.nnx`` and ``jaxpool.linen`` share:
the ``output`` option (which bands, summed or concatenated), the rule that
builds the layer from a pooling window, and the weights of the paper's
constraint losses. The learned predictor and updater are at the end of
``lifting.py``, beside the operator.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from jaxpool._src.lifting import LiftConstraints, band_names

# The paper's weights of the constraint losses.
LAMBDA_U, LAMBDA_P = 0.01, 0.1


def check_output(output, spatial_dims: int):
  """``output`` of a LiftDownPool layer, normalised: ``'sum'``, ``'all'``, a
  band name or a tuple of band names."""
  names = band_names(spatial_dims)
  if isinstance(output, str):
    if output in ("sum", "all") or output in names:
      return output
  elif (
    isinstance(output, (tuple, list))
    and output
    and all(isinstance(o, str) and o in names for o in output)
  ):
    return tuple(output)
  raise ValueError(
    f"output must be 'sum', 'all', one of {names} or a non-empty tuple of them; got {output!r}."
  )


def select_output(bands, output):
  """The layer output: the sum of the bands, all of them, one, or several
  concatenated on the features axis."""
  if output == "sum":
    return functools.reduce(jnp.add, bands)
  if output == "all":
    return bands
  if isinstance(output, str):
    return getattr(bands, output)
  return jnp.concatenate([getattr(bands, o) for o in output], axis=-1)


def output_multiplier(output) -> int:
  """Output features per input feature of a given ``output``."""
  return len(output) if isinstance(output, tuple) else 1


def spatial_dims_of_window(window_shape, strides, padding) -> int:
  """The ``spatial_dims`` of a LiftDownPool built from a pooling window
  (``make_pool``): only 2 per axis, stride 2, no padding, is a lifting."""
  shape = tuple(window_shape) if isinstance(window_shape, (tuple, list)) else None
  stride_ok = (
    strides is None
    or strides == 2
    or (isinstance(strides, (tuple, list)) and all(s == 2 for s in strides))
  )
  if (
    not shape
    or not 1 <= len(shape) <= 3
    or any(k != 2 for k in shape)
    or not stride_ok
    or padding not in ("VALID", 0)
  ):
    raise ValueError(
      "LiftDownPool halves every spatial axis: build it from window (2,) * n"
      " with strides 2 (or None) and no padding; got"
      f" window_shape={window_shape!r}, strides={strides!r},"
      f" padding={padding!r}."
    )
  return len(shape)


def weighted_constraints(constraints: LiftConstraints, lambda_u, lambda_p) -> jax.Array:
  """``lambda_u * c_u + lambda_p * c_p``."""
  return lambda_u * constraints.c_u + lambda_p * constraints.c_p
