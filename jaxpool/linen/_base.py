"""Base classes of the Linen layers: window fields, random-key plumbing."""

from __future__ import annotations

import dataclasses
import fractions
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
from flax import linen as nn

from jaxpool._src.core.geometry import PaddingLike
from jaxpool._src.core.options import check_layer_options
from jaxpool._src.layers import LayerSpec, spec_of, window_arguments

__all__ = [
  "LOSSES",
  "FunctionModule",
  "PoolModule",
  "RandomFunctionModule",
  "RandomModule",
  "WindowModule",
  "auxiliary_loss",
]

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
  # The layer's entry in jaxpool._src.layers (``spec="Name"`` in the class
  # statement): registry names, feature multiplier, functions.
  spec: ClassVar[LayerSpec | None] = None

  def __init_subclass__(cls, spec: str | None = None, **kwargs):
    if spec is not None:
      cls.spec = spec_of(cls, spec)
      if cls.function is None:
        cls.function = staticmethod(cls.spec.function)
    super().__init_subclass__(**kwargs)

  def construction_options(self) -> dict[str, Any]:
    """The layer's fields by name (its construction options)."""
    return {
      f.name: getattr(self, f.name)
      for f in dataclasses.fields(self)
      if f.name not in ("parent", "name")
    }

  def __post_init__(self):
    check_layer_options(type(self).__name__, type(self).function, self.construction_options())
    super().__post_init__()

  @property
  def feature_multiplier(self) -> int | fractions.Fraction:
    """Output features per input feature (2 for concatenating layers,
    ``Fraction(1, ph * pw)`` for position-sensitive RoI pooling)."""
    spec = type(self).spec
    return 1 if spec is None else spec.feature_multiplier(self.construction_options())

  @classmethod
  def from_window(cls, window_shape, strides=None, padding="VALID", **options):
    """The layer [`jaxpool.linen.make_pool`][jaxpool.linen.make_pool] builds for a window (by
    default ``cls(window_shape, strides, padding, **options)``)."""
    args, options = window_arguments(cls, window_shape, strides, padding, options)
    return cls(*args, **options)


def _function_fields(cls, function, call_arrays: tuple[str, ...]) -> None:
  """Declares the dataclass fields of ``cls`` from ``function``'s arguments
  after ``call_arrays``: same names, defaults and kinds (keyword-only after
  ``dataclasses.KW_ONLY``). Runs before Flax makes ``cls`` a dataclass."""
  annotations = dict(cls.__dict__.get("__annotations__", {}))
  fields = {}
  keyword_only = False
  for name, parameter in inspect.signature(function).parameters.items():
    if name in call_arrays:
      continue
    if parameter.kind is parameter.KEYWORD_ONLY and not keyword_only:
      fields["_"] = dataclasses.KW_ONLY
      keyword_only = True
    fields[name] = parameter.annotation if parameter.annotation is not parameter.empty else Any
    if parameter.default is not parameter.empty:
      setattr(cls, name, parameter.default)
  if not keyword_only and any(k not in fields for k in annotations):
    fields["_"] = dataclasses.KW_ONLY
  cls.__annotations__ = {**fields, **annotations}


class FunctionModule(PoolModule):
  """A layer that applies a jaxpool function with its fields as options.

  ``class MaxPool(FunctionModule, spec="MaxPool")`` makes the fields from the
  spec's function (`jaxpool._src.layers`): its arguments after the
  call-time arrays, with the same names, defaults and kinds, checked at
  construction by the function's own option checks; the call applies the
  function to the arrays.

  Examples:
    >>> import dataclasses
    >>> import jax.numpy as jnp
    >>> import jaxpool
    >>> from jaxpool import linen as jplinen
    >>> layer = jplinen.MaxPool((2, 2), strides=1)
    >>> isinstance(layer, jplinen.FunctionModule), layer.function is jaxpool.max_pool
    (True, True)
    >>> [f.name for f in dataclasses.fields(layer)][:5]
    ['window_shape', 'strides', 'padding', 'dilation', 'ceil_mode']
    >>> layer.apply({}, jnp.ones((1, 3, 3, 1))).shape
    (1, 2, 2, 1)
  """

  def __init_subclass__(cls, spec: str | None = None, **kwargs):
    if spec is not None:
      layer = spec_of(cls, spec)
      extra = tuple(cls.__dict__.get("__annotations__", {}))
      _function_fields(cls, layer.function, layer.call_arrays + extra)
      cls.__doc__ = (
        f"{cls.__doc__}\n\n  Fields are the arguments of"
        f" `jaxpool.{layer.function.__name__}` after the array input(s)"
        f" {', '.join(layer.inputs)}; see its documentation.\n"
      )
    super().__init_subclass__(spec=spec, **kwargs)

  def function_options(self) -> dict[str, Any]:
    """The fields the function takes, by name."""
    names = inspect.signature(type(self).function).parameters
    return {k: v for k, v in self.construction_options().items() if k in names}

  def __call__(self, *inputs: jax.typing.ArrayLike):
    spec = type(self).spec
    if len(inputs) != len(spec.inputs):
      raise TypeError(
        f"{type(self).__name__} takes {len(spec.inputs)} array input(s)"
        f" {spec.inputs}; got {len(inputs)}."
      )
    return type(self).function(*inputs, **self.function_options())


class WindowModule(PoolModule):
  """Fields shared by the sliding-window layers (see [`jaxpool.max_pool`][jaxpool.max_pool]):
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
      window_shape=self.window_shape,
      strides=self.strides,
      padding=self.padding,
      dilation=self.dilation,
      ceil_mode=self.ceil_mode,
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


class RandomFunctionModule(FunctionModule, RandomModule):
  """A [`FunctionModule`][jaxpool.linen.FunctionModule] over a random function: training calls draw a
  key from the ``rng_collection`` stream (``'pool'``), inference
  (``deterministic=True``, a field or call argument) passes ``key=None``,
  the operator's documented inference rule.

  Examples:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> from jaxpool import linen as jplinen
    >>> layer = jplinen.StochasticPool((2,))
    >>> x = jnp.array([1.0, 3.0]).reshape(1, 2, 1)
    >>> layer.apply({}, x, deterministic=True)  # the probability-weighted average
    Array([[[2.5]]], dtype=float32)
    >>> layer.apply({}, x, deterministic=False, rngs={"pool": jax.random.key(0)}).shape
    (1, 1, 1)
  """

  _: dataclasses.KW_ONLY
  deterministic: bool | None = None
  rng_collection: str = "pool"

  def __call__(self, x: jax.typing.ArrayLike, deterministic: bool | None = None) -> jax.Array:
    return type(self).function(x, key=self.key(deterministic), **self.function_options())


def auxiliary_loss(state: Mapping) -> jax.Array:
  """The sum of the auxiliary training losses the layers sowed into the
  ``'losses'`` collection (e.g. each [`LiftDownPool`][jaxpool.linen.LiftDownPool]'s
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
