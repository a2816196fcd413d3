"""Flax NNX layers for jaxpool's operators.

Each layer is a thin :class:`flax.nnx.Module` over the function of the same
name (``MaxPool`` over :func:`jaxpool.max_pool`): the constructor takes the
function's arguments after ``x`` (same names, same defaults) and the call
applies the function. No layer re-implements math.

The pattern later learned and stochastic layers follow:

* learned quantities are :class:`flax.nnx.Param` attributes passed to the
  function (``lip_pool(x, logits, ...)``);
* random layers take ``rngs`` in the constructor or at call time, have a
  ``deterministic`` attribute and a ``set_view(deterministic=None)`` method,
  like :class:`flax.nnx.Dropout`, so that both ``model.eval()`` and
  ``nnx.view(model, deterministic=True)`` switch them to inference.

:func:`make_pool` builds a sliding-window layer from a name (``"max"``,
``"avg"``, ``"lp"``, ...), for models that choose their pooling by string.

Example:
  >>> import jax.numpy as jnp
  >>> from jaxpool import nnx as jpnnx
  >>> pool = jpnnx.MaxPool((2, 2))
  >>> pool(jnp.ones((1, 4, 4, 3))).shape
  (1, 2, 2, 3)
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, ClassVar

import jax
from flax import nnx

import jaxpool
from jaxpool._src import registry

__all__ = [
    "AdaptiveAvgPool",
    "AdaptiveMaxPool",
    "AvgMaxPool",
    "AvgPool",
    "GlobalAvgPool",
    "GlobalMaxPool",
    "LpPool",
    "MaxPool",
    "MaxPoolWithIndices",
    "MaxUnpool",
    "MedianPool",
    "MinPool",
    "available_pools",
    "make_pool",
    "register_pool",
]


def _freeze(value):
  """Lists to tuples, recursively, so configurations are hashable."""
  if isinstance(value, (list, tuple)):
    return tuple(_freeze(v) for v in value)
  return value


class FunctionLayer(nnx.Module):
  """A layer that applies a fixed jaxpool function with bound options.

  Subclasses set ``function`` (the jaxpool function) and ``num_inputs`` (how
  many leading array arguments the call takes, usually 1). The constructor
  checks its arguments against the function's signature, so a misspelt
  option fails at construction, not at the first call.
  """

  function: ClassVar[Callable[..., Any]]
  num_inputs: ClassVar[int] = 1

  def __init__(self, *args, **kwargs):
    inputs = (None,) * self.num_inputs
    try:
      inspect.signature(type(self).function).bind(*inputs, *args, **kwargs)
    except TypeError as error:
      raise TypeError(
          f"{type(self).__name__}: {error} (arguments are those of"
          f" jaxpool.{type(self).function.__name__} after the input)"
      ) from None
    self.args = _freeze(args)
    self.kwargs = {k: _freeze(v) for k, v in kwargs.items()}

  def __call__(self, *inputs: jax.typing.ArrayLike):
    if len(inputs) != self.num_inputs:
      raise TypeError(
          f"{type(self).__name__} takes {self.num_inputs} array input(s);"
          f" got {len(inputs)}."
      )
    return type(self).function(*inputs, *self.args, **self.kwargs)

  @property
  def feature_multiplier(self) -> int:
    """Output features per input feature (2 for concatenating layers)."""
    return 1


def _layer(function: Callable[..., Any], *, num_inputs: int = 1):
  """Class decorator: binds ``function`` and appends its docs to the layer's."""

  def wrap(cls):
    cls.function = staticmethod(function)
    cls.num_inputs = num_inputs
    cls.__doc__ = (
        f"{cls.__doc__}\n\n  Constructor arguments are those of"
        f" :func:`jaxpool.{function.__name__}` after the input array(s):\n\n"
        f"  ``{function.__name__}{inspect.signature(function)}``\n"
    )
    return cls

  return wrap


@_layer(jaxpool.max_pool)
class MaxPool(FunctionLayer):
  """Max pooling layer: ``MaxPool((2, 2))(x) == jaxpool.max_pool(x, (2, 2))``."""


@_layer(jaxpool.min_pool)
class MinPool(FunctionLayer):
  """Min pooling layer over :func:`jaxpool.min_pool`."""


@_layer(jaxpool.avg_pool)
class AvgPool(FunctionLayer):
  """Average pooling layer over :func:`jaxpool.avg_pool`."""


@_layer(jaxpool.lp_pool)
class LpPool(FunctionLayer):
  """Power-average pooling layer: ``LpPool((2, 2), p=2.0)``."""


@_layer(jaxpool.median_pool)
class MedianPool(FunctionLayer):
  """Median pooling layer over :func:`jaxpool.median_pool`."""


@_layer(jaxpool.avg_max_pool)
class AvgMaxPool(FunctionLayer):
  """Average and max pooling combined, over :func:`jaxpool.avg_max_pool`."""

  @property
  def feature_multiplier(self) -> int:
    return 2 if self.kwargs.get("combine") == "concat" else 1


@_layer(jaxpool.adaptive_avg_pool)
class AdaptiveAvgPool(FunctionLayer):
  """Adaptive average pooling to a fixed ``output_shape``."""


@_layer(jaxpool.adaptive_max_pool)
class AdaptiveMaxPool(FunctionLayer):
  """Adaptive max pooling to a fixed ``output_shape``."""


@_layer(jaxpool.global_avg_pool)
class GlobalAvgPool(FunctionLayer):
  """Mean over the spatial axes: ``(batch, *spatial, C) -> (batch, C)``."""


@_layer(jaxpool.global_max_pool)
class GlobalMaxPool(FunctionLayer):
  """Maximum over the spatial axes: ``(batch, *spatial, C) -> (batch, C)``."""


@_layer(jaxpool.max_pool_with_indices)
class MaxPoolWithIndices(FunctionLayer):
  """Max pooling returning ``(values, indices)`` for :class:`MaxUnpool`."""


@_layer(jaxpool.max_unpool, num_inputs=2)
class MaxUnpool(FunctionLayer):
  """Max unpooling: ``MaxUnpool(output_shape)(values, indices)``."""


_registered: dict[str, tuple[Any, dict]] = {}


def register_pool(name: str, layer: type[nnx.Module], **defaults) -> None:
  """Makes ``make_pool(name, ...)`` build ``layer`` with ``defaults``.

  ``layer`` is constructed as ``layer(window_shape, strides, padding,
  **defaults, **options)``, plus ``rngs=rngs`` when its constructor takes
  ``rngs``.
  """
  if not isinstance(name, str) or not name:
    raise ValueError(f"name must be a non-empty string; got {name!r}.")
  _registered[name] = (layer, defaults)


def available_pools() -> tuple[str, ...]:
  """The names :func:`make_pool` accepts."""
  return tuple(sorted({*registry.POOL_LAYERS, *_registered}))


def make_pool(
    name: str,
    window_shape,
    strides=None,
    padding="VALID",
    *,
    rngs: nnx.Rngs | None = None,
    **options,
) -> nnx.Module:
  """Builds a sliding-window pooling layer from its name.

  Args:
    name: one of :func:`available_pools` (``"max"``, ``"min"``, ``"avg"``,
      ``"lp"`` (p=2 by default), ``"median"``, ``"avgmax"`` (mean of avg and
      max), ``"catavgmax"`` (avg and max concatenated), plus anything added
      with :func:`register_pool`).
    window_shape, strides, padding: the window, as in :func:`jaxpool.max_pool`.
    rngs: passed to layers that draw random numbers; ignored by the others.
    **options: further keyword options of the layer (override the defaults).

  Returns:
    The layer.

  Example:
    >>> from jaxpool import nnx as jpnnx
    >>> type(jpnnx.make_pool("lp", (2, 2))).__name__
    'LpPool'
  """
  layer, defaults = registry.lookup(name, _registered)
  if isinstance(layer, str):
    layer = globals()[layer]
  kwargs = {**defaults, **options}
  if "rngs" in inspect.signature(layer.__init__).parameters:
    kwargs["rngs"] = rngs
  return layer(window_shape, strides, padding, **kwargs)
