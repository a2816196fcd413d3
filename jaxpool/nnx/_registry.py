"""Names under which models pick an NNX pooling layer: name -> layer class."""

from __future__ import annotations

from collections.abc import Sequence

from flax import nnx

from jaxpool._src.registry import Registry
from jaxpool.nnx._base import PoolLayer

__all__ = ["available_pools", "make_pool", "register_layers", "register_pool", "unregister_pool"]

_REGISTRY = Registry(PoolLayer, "jaxpool.nnx.PoolLayer")


def register_pool(name: str, layer: type[PoolLayer], **defaults) -> None:
  """Makes ``make_pool(name, ...)`` build ``layer`` with ``defaults``.

  ``layer`` must be a [`PoolLayer`][jaxpool.nnx.PoolLayer] subclass; it is built with
  ``layer.from_window(window_shape, strides, padding, features=...,
  rngs=..., **defaults, **options)`` (by default the constructor with the
  window arguments).

  Examples:
    >>> from jaxpool import nnx as jpnnx
    >>> jpnnx.register_pool("lp4", jpnnx.LpPool, p=4.0)
    >>> jpnnx.make_pool("lp4", (2, 2)).kwargs["p"]
    4.0
    >>> jpnnx.unregister_pool("lp4")
  """
  _REGISTRY.register(name, layer, defaults)


def register_layers(namespace: dict) -> None:
  """Registers every layer class in ``namespace`` under the names its spec
  lists (``jaxpool._src.layers.LAYERS[...].pools``)."""
  for layer in namespace.values():
    if isinstance(layer, type) and issubclass(layer, PoolLayer) and layer.spec is not None:
      for name, defaults in layer.spec.pools.items():
        register_pool(name, layer, **defaults)


def unregister_pool(name: str) -> None:
  """Removes ``name`` from the registry (nothing happens if it is absent).

  Examples:
    >>> from jaxpool import nnx as jpnnx
    >>> jpnnx.register_pool("lp3", jpnnx.LpPool, p=3.0)
    >>> jpnnx.make_pool("lp3", (2, 2)).kwargs["p"]
    3.0
    >>> jpnnx.unregister_pool("lp3")
    >>> "lp3" in jpnnx.available_pools()
    False
    >>> jpnnx.unregister_pool("lp3")  # absent: nothing happens
  """
  _REGISTRY.unregister(name)


def available_pools() -> tuple[str, ...]:
  """The names [`make_pool`][jaxpool.nnx.make_pool] accepts, sorted.

  Examples:
    >>> from jaxpool import nnx as jpnnx
    >>> names = jpnnx.available_pools()
    >>> {"max", "avg", "soft", "lip", "mixed"} <= set(names)
    True
    >>> list(names) == sorted(names)
    True
  """
  return _REGISTRY.names()


def make_pool(
  name: str,
  window_shape: Sequence[int],
  strides=None,
  padding="VALID",
  *,
  features: int | None = None,
  rngs: nnx.Rngs | None = None,
  **options,
) -> PoolLayer:
  """Builds a sliding-window pooling layer from its name.

  Args:
    name: one of [`available_pools`][jaxpool.nnx.available_pools]: ``"max"``, ``"min"``, ``"avg"``,
      ``"lp"`` (p=2), ``"median"``, ``"avgmax"`` (half avg plus half max),
      ``"catavgmax"`` (avg and max concatenated), ``"soft"``, ``"lip"``
      (simplified logit module), ``"dpp"`` (symmetric lite),
      ``"learnedmixed"`` and ``"gated"`` (Lee et al.), and the random layers
      ``"mixed"`` (Yu et al.), ``"stochastic"`` (Zeiler & Fergus), ``"s3"``
      (S3Pool, one grid cell per axis) and ``"fractional"`` (ratio
      ``1 / strides``, torch windows of ``window_shape + 1``), plus anything
      added with [`register_pool`][jaxpool.nnx.register_pool].
    window_shape: window size per spatial axis, e.g. ``(2, 2)``.
    strides: step per spatial axis (int or tuple); ``None`` (default) means
      ``window_shape``, as in torch.
    padding: ``'VALID'`` (default), ``'SAME'``, an int, ints or ``(low, high)``
      pairs, as in [`max_pool`][jaxpool.max_pool].
    features: number of input features, for layers with learned parameters
      (``"lip"``, ``"dpp"``, ``"gated"``/``"learnedmixed"`` with
      ``per_feature=True``); ignored by the others.
    rngs: for layers that draw random numbers or initialise parameters;
      ignored by the others.
    **options: further keyword options of the layer (override the defaults).

  Returns:
    The layer.

  Examples:
    >>> from jaxpool import nnx as jpnnx
    >>> type(jpnnx.make_pool("lp", (2, 2))).__name__
    'LpPool'
  """
  layer, defaults = _REGISTRY.lookup(name)
  return layer.from_window(
    window_shape,
    strides,
    padding,
    features=features,
    rngs=rngs,
    **{**defaults, **options},
  )
