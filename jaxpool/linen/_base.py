"""Base classes of the Linen layers: window fields, random-key plumbing."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
from flax import linen as nn

from jaxpool._src.core.geometry import PaddingLike
from jaxpool._src.core.options import check_options

__all__ = ["LOSSES", "PoolModule", "RandomModule", "WindowModule", "auxiliary_loss"]

# The collection layers sow their auxiliary training losses into.
LOSSES = "losses"


class PoolModule(nn.Module):
  """Base of every jaxpool Linen layer.

  Examples:
    >>> from jaxpool import linen as jplinen
    >>> layer = jplinen.AvgMaxPool.from_window((2, 2), combine="concat")
    >>> isinstance(layer, jplinen.PoolModule), layer.feature_multiplier
    (True, 2)
    >>> jplinen.MaxPool.from_window((3, 3), 1, "SAME").padding
    'SAME'
  """

  # The jaxpool function whose option checks the fields of the same names
  # pass at construction (window fields are checked in any case).
  function: ClassVar[Callable[..., Any] | None] = None

  def __post_init__(self):
    options = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
               if f.name not in ("parent", "name")}
    function = type(self).function
    if function is not None:
      params = inspect.signature(function).parameters
      options = {
          **{k: p.default for k, p in params.items() if p.default is not p.empty},
          **{k: v for k, v in options.items() if k in params},
      }
    try:
      check_options(function, options)
    except (TypeError, ValueError) as error:
      raise type(error)(f"{type(self).__name__}: {error}") from None
    super().__post_init__()

  @property
  def feature_multiplier(self) -> int:
    """Output features per input feature (2 for concatenating layers)."""
    return 1

  @classmethod
  def from_window(cls, window_shape, strides=None, padding="VALID", **options):
    """The layer :func:`jaxpool.linen.make_pool` builds for a window (by
    default ``cls(window_shape, strides, padding, **options)``)."""
    return cls(window_shape, strides, padding, **options)


class WindowModule(PoolModule):
  """Fields shared by the sliding-window layers (see :func:`jaxpool.max_pool`):
  the window triple positional, the rest keyword-only.

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxpool
    >>> from jaxpool import linen as jplinen
    >>> class RangePool(jplinen.WindowModule):  # max - min of each window
    ...   def __call__(self, x):
    ...     return jaxpool.max_pool(x, **self.window()) - jaxpool.min_pool(x, **self.window())
    >>> layer = RangePool((2, 2), strides=1)
    >>> layer.window()
    {'window_shape': (2, 2), 'strides': 1, 'padding': 'VALID', 'dilation': None, 'ceil_mode': False}
    >>> layer.apply({}, jnp.arange(16.0).reshape(1, 4, 4, 1))[0, ..., 0]
    Array([[5., 5., 5.],
           [5., 5., 5.],
           [5., 5., 5.]], dtype=float32)
  """

  window_shape: Sequence[int]
  strides: int | Sequence[int] | None = None
  padding: PaddingLike = "VALID"
  _: dataclasses.KW_ONLY
  dilation: int | Sequence[int] | None = None
  ceil_mode: bool = False

  def window(self) -> dict:
    return dict(
        window_shape=self.window_shape, strides=self.strides,
        padding=self.padding, dilation=self.dilation, ceil_mode=self.ceil_mode,
    )


class RandomModule(PoolModule):
  """Dropout-style mode and key handling shared by the random layers: a
  ``deterministic`` field or call argument, keys from the ``rng_collection``
  stream (``'pool'``).

  Examples:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import jaxpool
    >>> from jaxpool import linen as jplinen
    >>> class NoisyAvgPool(jplinen.RandomModule):  # noise in training only
    ...   deterministic: bool | None = None
    ...   rng_collection: str = "pool"
    ...   def __call__(self, x, deterministic=None):
    ...     y = jaxpool.avg_pool(x, (2, 2))
    ...     key = self.key(deterministic)
    ...     return y if key is None else y + 0.1 * jax.random.normal(key, y.shape)
    >>> layer = NoisyAvgPool()
    >>> x = jnp.arange(16.0).reshape(1, 4, 4, 1)
    >>> layer.apply({}, x, deterministic=True)[0, ..., 0]
    Array([[ 2.5,  4.5],
           [10.5, 12.5]], dtype=float32)
    >>> y = layer.apply({}, x, deterministic=False, rngs={"pool": jax.random.key(0)})
    >>> y.shape
    (1, 2, 2, 1)
  """

  def key(self, deterministic: bool | None) -> jax.Array | None:
    """A key from the ``rng_collection`` stream, or ``None`` when deterministic."""
    deterministic = nn.merge_param("deterministic", self.deterministic, deterministic)
    if deterministic:
      return None
    # Flax falls back to the 'params' stream (e.g. in init) when one is missing.
    if not (self.has_rng(self.rng_collection) or self.has_rng("params")):
      raise ValueError(
          f"{type(self).__name__} is in training mode (deterministic=False) and"
          f" draws from the {self.rng_collection!r} rng stream, which this call"
          f" lacks: pass rngs={{{self.rng_collection!r}: key}} to apply (or init),"
          " or deterministic=True for inference."
      )
    return self.make_rng(self.rng_collection)


def auxiliary_loss(state: Mapping) -> jax.Array:
  """The sum of the auxiliary training losses the layers sowed into the
  ``'losses'`` collection (e.g. each :class:`LiftDownPool`'s
  ``lambda_u * c_u + lambda_p * c_p``).

  Args:
    state: the variables returned by ``apply(..., mutable=['losses'])`` (or
      any variables mapping: only its ``'losses'`` collection is read).

  Returns:
    A float32 scalar; 0 when nothing was sown.

  Examples:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> from jaxpool import linen as jplinen
    >>> layer = jplinen.LiftDownPool()
    >>> x = jax.random.normal(jax.random.key(1), (1, 8, 8, 3))
    >>> variables = layer.init(jax.random.key(0), x)
    >>> y, state = layer.apply(variables, x, mutable=["losses"])
    >>> jax.tree.map(jnp.shape, state)
    {'losses': {'lift_constraints': ()}}
    >>> float(jplinen.auxiliary_loss(state)) > 0
    True
    >>> jplinen.auxiliary_loss({"losses": {"a": jnp.array(1.5), "b": jnp.array([0.25, 0.25])}})
    Array(2., dtype=float32)
    >>> float(jplinen.auxiliary_loss({}))
    0.0
  """
  if not isinstance(state, Mapping):
    raise TypeError(
        "auxiliary_loss expects the variables returned by"
        f" apply(..., mutable=['losses']); got {type(state).__name__}."
    )
  leaves = jax.tree.leaves(state.get(LOSSES, {}))
  return sum((jnp.sum(leaf).astype(jnp.float32) for leaf in leaves), jnp.zeros((), jnp.float32))
