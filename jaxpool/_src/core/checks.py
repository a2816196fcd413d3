"""Argument checks shared by every operator and layer.

Each check raises a ``TypeError`` (wrong kind of value) or ``ValueError``
(right kind, bad value) whose message names the argument, the value received
and what was expected, at trace time. Flags are bools (``"no"`` is not
``True``); ranges of array arguments are checked whenever the array is
concrete (a traced array cannot be inspected, and is used as given).
"""

from __future__ import annotations

import numbers
from collections.abc import Collection

import jax
import numpy as np

__all__ = [
  "check_bool",
  "check_choice",
  "check_features",
  "check_layer_input",
  "per_feature_shape",
  "check_key",
  "check_number_array",
  "check_one_key",
  "check_positive_number",
  "check_spatial_dims",
  "check_unpadded",
  "concrete_values",
  "is_int",
]


def is_int(value) -> bool:
  """True for Python and NumPy integers (bools excluded)."""
  return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_bool(name: str, value) -> bool:
  """``value`` as a bool; a ``TypeError`` unless it is a Python or NumPy bool."""
  if not isinstance(value, (bool, np.bool_)):
    raise TypeError(
      f"{name} must be a bool (True or False); got {value!r} of type {type(value).__name__}."
    )
  return bool(value)


def check_choice(name: str, value, choices: Collection) -> None:
  """A ``ValueError`` unless ``value`` is one of ``choices``."""
  if not isinstance(value, str) or value not in choices:
    options = ", ".join(repr(c) for c in choices)
    raise ValueError(f"{name} must be one of {options}; got {value!r}.")


def check_positive_number(name: str, value, *, allow_zero: bool = False) -> float:
  """``value`` as a float; a ``ValueError`` unless a finite number > 0 (>= 0)."""
  if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
    raise TypeError(f"{name} must be a number; got {value!r}.")
  value = float(value)
  low_ok = value >= 0 if allow_zero else value > 0
  if not (np.isfinite(value) and low_ok):
    bound = ">= 0" if allow_zero else "> 0"
    raise ValueError(f"{name} must be a finite number {bound}; got {value!r}.")
  return value


def concrete_values(value) -> np.ndarray | None:
  """``value`` as a NumPy array when it is concrete, ``None`` when traced."""
  try:
    return np.asarray(value)
  except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
    return None


def check_key(key, name: str = "key") -> None:
  """A clear error unless ``key`` is one PRNG key.

  Accepts a typed key (``jax.random.key(0)``, shape ``()``) or a raw
  ``uint32`` key (``jax.random.PRNGKey(0)``, shape ``(2,)`` for threefry).
  A batch of keys, a float array or anything else is an error naming ``key``.
  """
  if not isinstance(key, jax.Array):
    raise TypeError(
      f"{name} must be a jax.random key (jax.random.key(0) or"
      f" jax.random.PRNGKey(0)), or None for inference; got"
      f" {type(key).__name__}."
    )
  if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
    if key.shape != ():
      raise ValueError(
        f"{name} must be a single key of shape (); got a batch of keys of"
        f" shape {key.shape}. Split it outside, or vmap over the keys."
      )
    return
  if key.dtype != np.uint32:
    raise TypeError(
      f"{name} must be a jax.random key (typed, or a raw uint32 key); got"
      f" an array of dtype {key.dtype}."
    )
  if key.ndim != 1:
    raise ValueError(
      f"{name} must be a single raw key of shape (2,) (jax.random.PRNGKey); got shape {key.shape}."
    )


def check_one_key(key, name: str = "key") -> None:
  """`check_key`, and a raw key's shape checked against the PRNG in use.

  A raw ``uint32`` key must have the shape of ``jax.random.PRNGKey(0)`` under
  the default PRNG implementation (``(2,)`` for threefry); a ``(3,)`` array is
  an error naming ``key``, not a PRNG internal one.
  """
  check_key(key, name)
  if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
    return
  raw = jax.eval_shape(lambda: jax.random.key_data(jax.random.key(0)))
  expected = raw.shape
  if key.shape != expected:
    raise ValueError(
      f"{name} must be a single raw key of shape {expected}"
      f" (jax.random.PRNGKey under the default PRNG); got shape {key.shape}."
    )


def check_number_array(
  name: str,
  value,
  *,
  low: float,
  high: float,
  low_open: bool = False,
  high_open: bool = False,
) -> None:
  """A ``ValueError`` unless every element of ``value`` lies in the interval.

  ``[low, high]`` (``(`` / ``)`` with ``low_open`` / ``high_open``); NaN is
  outside every interval, infinities are outside any finite bound. Checked
  only when ``value`` is concrete: a traced array cannot be inspected and is
  used as given.
  """
  values = concrete_values(value)
  if values is None or values.size == 0:
    return
  if not (
    jax.numpy.issubdtype(values.dtype, np.integer)
    or jax.numpy.issubdtype(values.dtype, np.floating)
  ):
    raise TypeError(f"{name} must be a number or an array of numbers; got {value!r}.")
  values = values.astype(np.float64)
  above = values > low if low_open else values >= low
  below = values < high if high_open else values <= high
  ok = above & below
  if not np.all(ok):
    bad = float(values[~ok].ravel()[0])
    interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    where = f" among its values of shape {values.shape}" if values.ndim else ""
    raise ValueError(f"{name} must lie in {interval} (no NaN); got {bad!r}{where}.")


def check_spatial_dims(spatial_dims) -> int:
  """``spatial_dims`` as an int in 1..3 (signals, images, volumes)."""
  if not is_int(spatial_dims) or not 1 <= spatial_dims <= 3:
    raise ValueError(f"spatial_dims must be 1, 2 or 3; got {spatial_dims!r}.")
  return int(spatial_dims)


def check_unpadded(owner: str, padding) -> None:
  """A ``ValueError`` unless ``padding`` means no padding (layers that do not pad)."""
  if not (padding == "VALID" or (is_int(padding) and padding == 0)):
    raise ValueError(f"{owner} does not pad; got padding={padding!r}.")


def check_features(owner: str, features, *, required: bool = True) -> int | None:
  """``features`` as an int >= 1 (or ``None`` when not ``required``)."""
  if features is None and not required:
    return None
  if not is_int(features) or features < 1:
    raise ValueError(
      f"{owner} needs features=<int >= 1> (the number of input features);"
      f" got features={features!r}."
    )
  return int(features)


def check_layer_input(owner: str, x, num_spatial: int, features: int) -> None:
  """A ``ValueError`` naming ``features`` unless ``x`` is ``(*batch,
  *spatial, features)`` with the layer's spatial axes and features."""
  if x.ndim < num_spatial + 1:
    raise ValueError(
      f"{owner} pools {num_spatial} spatial axes, so it needs an input of shape"
      f" (*batch, *spatial, features) with {num_spatial + 1} or more axes; got"
      f" shape {x.shape}."
    )
  if x.shape[-1] != features:
    raise ValueError(
      f"{owner}(features={features}) got an input with {x.shape[-1]} features"
      f" (shape {x.shape}); its parameters are per feature."
    )


def per_feature_shape(owner: str, per_feature, features) -> tuple[int, ...]:
  """``(features,)`` when ``per_feature`` (features then required), else ``()``."""
  if check_bool("per_feature", per_feature):
    return (check_features(f"{owner}(per_feature=True)", features),)
  return ()
