"""Base classes of the NNX layers: function layers, random layers, learned layers."""

from __future__ import annotations

import fractions
import inspect
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
from flax import nnx

from jaxpool._src.core.checks import check_bool
from jaxpool._src.core.options import bound_options, check_layer_options
from jaxpool._src.layers import LayerSpec, spec_of, window_arguments

__all__ = [
  "FunctionLayer",
  "LearnedLayer",
  "PoolLayer",
  "RandomLayer",
  "auxiliary_loss",
  "function_layer",
  "window_options",
]


def freeze(value):
  """Lists to tuples, recursively, so configurations are hashable."""
  if isinstance(value, (list, tuple)):
    return tuple(freeze(v) for v in value)
  return value


def window_options(owner: type, window_shape, strides, padding, **options) -> dict:
  """The window keyword arguments a learned layer passes to its function,
  checked as the function checks them (the error names ``owner``)."""
  options = dict(window_shape=window_shape, strides=strides, padding=padding, **options)
  check_layer_options(owner.__name__, owner.spec.function, options)
  return {k: freeze(v) for k, v in options.items()}


def constructor_parameters(cls: type) -> dict[str, inspect.Parameter]:
  """The constructor's parameters: a function layer's generated signature,
  else ``__init__``'s (NNX's metaclass hides both from ``inspect.signature``)."""
  signature = getattr(cls, "__signature__", None) or inspect.signature(cls.__init__)
  return {k: p for k, p in signature.parameters.items() if k != "self"}


class PoolLayer(nnx.Module):
  """Base of every jaxpool NNX layer.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxpool import nnx as jpnnx
    >>> layer = jpnnx.make_pool("catavgmax", (2, 2))
    >>> isinstance(layer, jpnnx.PoolLayer), layer.feature_multiplier
    (True, 2)
    >>> layer(jnp.ones((1, 4, 4, 3))).shape
    (1, 2, 2, 6)
    >>> print(layer.auxiliary_loss())
    None
  """

  # The layer's entry in jaxpool._src.layers (set by ``spec="Name"`` in the
  # class statement): its functions, call-time arrays, registry names and
  # feature multiplier.
  spec: ClassVar[LayerSpec | None] = None

  def __init_subclass__(cls, spec: str | None = None, **kwargs):
    super().__init_subclass__(**kwargs)
    if spec is not None:
      cls.spec = spec_of(cls, spec)

  def construction_options(self) -> dict[str, Any]:
    """The layer's construction options by name (those it keeps)."""
    return {
      name: getattr(self, name)
      for name in constructor_parameters(type(self))
      if hasattr(self, name)
    }

  @property
  def feature_multiplier(self) -> int | fractions.Fraction:
    """Output features per input feature (2 for concatenating layers,
    ``Fraction(1, ph * pw)`` for position-sensitive RoI pooling)."""
    spec = type(self).spec
    return 1 if spec is None else spec.feature_multiplier(self.construction_options())

  def auxiliary_loss(self) -> jax.Array | None:
    """The training loss term this layer recorded in its latest call, or
    ``None`` (most layers); summed over a model by [`auxiliary_loss`][jaxpool.nnx.auxiliary_loss]."""
    return None

  @classmethod
  def from_window(
    cls,
    window_shape: Sequence[int],
    strides=None,
    padding="VALID",
    *,
    features: int | None = None,
    rngs: nnx.Rngs | None = None,
    **options,
  ) -> PoolLayer:
    """The layer [`jaxpool.nnx.make_pool`][jaxpool.nnx.make_pool] builds for a window.

    By default ``cls(window_shape, strides, padding, **options)``; layers with
    parameters or randomness also take ``features`` and ``rngs``.
    """
    del features, rngs  # this layer has neither parameters nor randomness
    args, options = window_arguments(cls, window_shape, strides, padding, options)
    return cls(*args, **options)


class FunctionLayer(PoolLayer):
  """A layer that applies a fixed jaxpool function with bound options.

  Subclasses are made with `function_layer`, which sets ``function`` and
  ``inputs`` (the array arguments the call takes, e.g. ``('x',)``). The
  constructor takes the function's other arguments (same names, defaults and
  kinds) and checks them against its signature and the function's own option
  checks (`jaxpool._src.core.options`), so a misspelt or bad option
  fails at construction, not at the first call.

  Examples:
    >>> import jaxpool
    >>> from jaxpool import nnx as jpnnx
    >>> layer = jpnnx.MaxPool((2, 2), strides=1)
    >>> isinstance(layer, jpnnx.FunctionLayer), layer.function is jaxpool.max_pool
    (True, True)
    >>> layer.args, layer.kwargs
    (((2, 2),), {'strides': 1})
    >>> jpnnx.MaxPool((2, 2), stride=1)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    TypeError: MaxPool: got an unexpected keyword argument 'stride' (...)
  """

  function: ClassVar[Callable[..., Any]]
  inputs: ClassVar[tuple[str, ...]] = ("x",)

  def __init_subclass__(cls, spec: str | None = None, **kwargs):
    super().__init_subclass__(spec=spec, **kwargs)
    if spec is not None:
      _bind_function(cls, cls.spec.function, cls.spec.inputs, cls.spec.call_arrays)

  def construction_options(self) -> dict[str, Any]:
    signature = inspect.signature(type(self).function)
    bound = signature.bind_partial(*([None] * len(self.inputs)), *self.args, **self.kwargs)
    return {k: v for k, v in bound.arguments.items() if k not in self.inputs}

  def __init__(self, *args, **kwargs):
    function = type(self).function
    try:
      options = bound_options(function, self.inputs, *args, **kwargs)
    except TypeError as error:
      raise TypeError(
        f"{type(self).__name__}: {error} (arguments are those of"
        f" jaxpool.{function.__name__} after the input)"
      ) from None
    check_layer_options(type(self).__name__, function, options)
    self.args = freeze(args)
    self.kwargs = {k: freeze(v) for k, v in kwargs.items()}

  def __call__(self, *inputs: jax.typing.ArrayLike):
    if len(inputs) != len(self.inputs):
      raise TypeError(
        f"{type(self).__name__} takes {len(self.inputs)} array input(s)"
        f" {self.inputs}; got {len(inputs)}."
      )
    return type(self).function(*inputs, *self.args, **self.kwargs)


def _bind_function(cls, function, inputs: tuple[str, ...], call_arrays: tuple[str, ...]):
  """Makes ``cls`` apply ``function``: its constructor signature (the
  function's arguments but ``call_arrays``) and docs."""
  cls.function = staticmethod(function)
  cls.inputs = inputs
  params = [
    p for name, p in inspect.signature(function).parameters.items() if name not in call_arrays
  ]
  extra = getattr(cls, "_extra_parameters", ())
  cls.__signature__ = inspect.Signature(params + list(extra))
  cls.__doc__ = (
    f"{cls.__doc__}\n\n  Constructor arguments are those of"
    f" `jaxpool.{function.__name__}` after the array input(s)"
    f" {', '.join(inputs)}; see its documentation.\n"
  )


def function_layer(function: Callable[..., Any], *, inputs: tuple[str, ...] = ("x",)):
  """Class decorator for a [`FunctionLayer`][jaxpool.nnx.FunctionLayer] over a function of your
  own: binds ``function``, its constructor signature and docs (jaxpool's
  layers take theirs from ``spec="Name"``)."""

  def wrap(cls):
    call_arrays = inputs + (("key",) if issubclass(cls, RandomLayer) else ())
    _bind_function(cls, function, inputs, call_arrays)
    return cls

  return wrap


def _keyword(name, default):
  return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default)


def fork_rngs(rngs, collection: str, owner: str):
  """The layer's own stream: forked from ``rngs`` (or ``None``)."""
  if isinstance(rngs, nnx.Rngs):
    return rngs[collection].fork()
  if isinstance(rngs, nnx.RngStream):
    return rngs.fork()
  if rngs is None:
    return nnx.data(None)
  raise TypeError(
    f"{owner}: rngs must be nnx.Rngs, nnx.RngStream or None; got {type(rngs).__name__}."
  )


class RandomLayer(FunctionLayer):
  """A layer over a random jaxpool function, switched like `nnx.Dropout`.

  Training (``deterministic=False``) calls the function with a fresh key from
  ``rngs``; inference (``deterministic=True``, set by ``model.eval()``,
  ``nnx.view(model, deterministic=True)`` or the call argument) calls it
  with ``key=None``, the operator's documented inference rule.

  Args (after the function's own):
    deterministic: the default mode; ``None`` requires it at call time.
    rng_collection: the `nnx.Rngs` stream to draw from (``'pool'``;
      ``Rngs`` without that stream use ``'default'``).
    rngs: ``Rngs``, ``RngStream`` or ``None`` (then pass ``rngs`` at call
      time in training).

  Examples:
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> from jaxpool import nnx as jpnnx
    >>> x = jnp.array([1.0, 3.0]).reshape(1, 2, 1)
    >>> model = nnx.Sequential(jpnnx.StochasticPool((2,), rngs=nnx.Rngs(0)))
    >>> isinstance(model.layers[0], jpnnx.RandomLayer), model.layers[0].deterministic
    (True, False)
    >>> eval_model = nnx.view(model, deterministic=True)
    >>> eval_model(x)  # inference: the probability-weighted average
    Array([[[2.5]]], dtype=float32)
    >>> model.eval()  # the same switch, in place
    >>> model.layers[0].deterministic
    True
  """

  _extra_parameters = (
    _keyword("deterministic", False),
    _keyword("rng_collection", "pool"),
    _keyword("rngs", None),
  )

  def __init__(
    self,
    *args,
    deterministic: bool | None = False,
    rng_collection: str = "pool",
    rngs: nnx.Rngs | nnx.RngStream | None = None,
    **kwargs,
  ):
    if "key" in kwargs:
      raise TypeError(f"{type(self).__name__} draws its keys from rngs; do not pass key.")
    super().__init__(*args, **kwargs)
    if deterministic is not None:
      check_bool("deterministic", deterministic)
    self.deterministic = deterministic
    self.rng_collection = rng_collection
    self.rngs = fork_rngs(rngs, rng_collection, type(self).__name__)

  @classmethod
  def from_window(
    cls, window_shape, strides=None, padding="VALID", *, features=None, rngs=None, **options
  ):
    del features  # no parameters
    args, options = window_arguments(cls, window_shape, strides, padding, options)
    return cls(*args, rngs=rngs, **options)

  def __call__(
    self,
    x: jax.typing.ArrayLike,
    *,
    deterministic: bool | None = None,
    rngs: nnx.Rngs | nnx.RngStream | jax.Array | None = None,
  ) -> jax.Array:
    key = self.key(deterministic, rngs)
    return type(self).function(x, *self.args, key=key, **self.kwargs)

  def key(self, deterministic=None, rngs=None) -> jax.Array | None:
    """The key for one call, or ``None`` in deterministic mode."""
    deterministic = self.deterministic if deterministic is None else deterministic
    if deterministic is None:
      raise ValueError(
        f"{type(self).__name__}: deterministic is None; pass it to the"
        " constructor or the call, or use nnx.view(model,"
        " deterministic=...)."
      )
    if check_bool("deterministic", deterministic):
      return None
    rngs = self.rngs if rngs is None else rngs
    if isinstance(rngs, nnx.Rngs):
      return rngs[self.rng_collection]()
    if isinstance(rngs, nnx.RngStream):
      return rngs()
    if isinstance(rngs, jax.Array):
      return rngs
    raise ValueError(
      f"{type(self).__name__} is in training mode (deterministic=False) but"
      " has no rngs: pass rngs=nnx.Rngs(...) to the constructor or the"
      f" call, or switch to inference; got rngs={rngs!r}."
    )

  def set_view(self, deterministic: bool | None = None):
    """Used by ``nnx.view(model, deterministic=...)``."""
    if deterministic is not None:
      self.deterministic = deterministic


class LearnedLayer(PoolLayer):
  """A layer that owns learned parameters; ``make_pool`` passes it
  ``features`` and ``rngs``.

  Examples:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> from jaxpool import nnx as jpnnx
    >>> layer = jpnnx.make_pool("dpp", (2, 2), features=3, rngs=nnx.Rngs(0))
    >>> isinstance(layer, jpnnx.LearnedLayer)
    True
    >>> [p.shape for p in jax.tree.leaves(nnx.state(layer, nnx.Param))]
    [(3,), (3,)]
    >>> layer(jnp.ones((1, 4, 4, 3))).shape
    (1, 2, 2, 3)
  """

  @classmethod
  def from_window(
    cls, window_shape, strides=None, padding="VALID", *, features=None, rngs=None, **options
  ):
    args, options = window_arguments(cls, window_shape, strides, padding, options)
    return cls(*args, features=features, rngs=rngs, **options)


def require_rngs(owner: str, rngs) -> nnx.Rngs:
  """``rngs`` if it is an ``nnx.Rngs``; a ``TypeError`` naming ``owner`` else."""
  if not isinstance(rngs, nnx.Rngs):
    raise TypeError(
      f"{owner} needs rngs=nnx.Rngs(...) to initialise its parameters; got rngs={rngs!r}."
    )
  return rngs


def parameters(params: dict) -> nnx.Dict:
  """A dict of arrays (nested dicts too) as ``nnx.Param`` attributes."""
  return nnx.Dict(
    {
      name: parameters(value) if isinstance(value, dict) else nnx.Param(value)
      for name, value in params.items()
    }
  )


def values(params: nnx.Dict) -> dict:
  """The arrays of `parameters` (nested as given), for the pure functions."""
  return {
    name: values(param) if isinstance(param, nnx.Dict) else param[...]
    for name, param in params.items()
  }


def auxiliary_loss(model: nnx.Module) -> jax.Array:
  """The sum of the auxiliary training losses the layers of ``model``
  recorded in their latest call ([`PoolLayer.auxiliary_loss`][jaxpool.nnx.PoolLayer.auxiliary_loss], e.g. each
  [`LiftDownPool`][jaxpool.nnx.LiftDownPool]'s ``lambda_u * c_u + lambda_p * c_p``); 0 when there
  are none.

  Call it after the forward pass, inside the loss function, so that it works
  under ``nnx.jit`` and ``nnx.value_and_grad``.

  Examples:
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> from jaxpool import nnx as jpnnx
    >>> model = jpnnx.LiftDownPool(features=1, rngs=nnx.Rngs(0))
    >>> def loss_fn(model, x):
    ...   return model(x).mean() + jpnnx.auxiliary_loss(model)
    >>> loss, grads = nnx.value_and_grad(loss_fn)(model, jnp.ones((1, 4, 4, 1)))
  """
  total = jnp.zeros((), jnp.float32)
  for _, node in nnx.iter_graph(model):
    loss = node.auxiliary_loss() if isinstance(node, PoolLayer) else None
    if loss is not None:
      total = total + loss
  return total
