"""Names under which models pick a Linen pooling layer: name -> layer class."""

from __future__ import annotations

from collections.abc import Sequence

from jaxpool._src.registry import Registry
from jaxpool.linen._base import PoolModule

__all__ = ["available_pools", "make_pool", "register_layers", "register_pool", "unregister_pool"]

_REGISTRY = Registry(PoolModule, "jaxpool.linen.PoolModule")


def register_pool(name: str, layer: type[PoolModule], **defaults) -> None:
  """Makes ``make_pool(name, ...)`` build ``layer`` with ``defaults``.

  ``layer`` must be a [`PoolModule`][jaxpool.linen.PoolModule] subclass; it is built with
  ``layer.from_window(window_shape, strides, padding, **defaults,
  **options)``.

  Examples:
    >>> from jaxpool import linen as jplinen
    >>> jplinen.register_pool("lp4", jplinen.LpPool, p=4.0)
    >>> jplinen.make_pool("lp4", (2, 2)).p
    4.0
    >>> jplinen.unregister_pool("lp4")
  """
  _REGISTRY.register(name, layer, defaults)


def register_layers(namespace: dict) -> None:
  """Registers every layer class in ``namespace`` under the names its spec
  lists (``jaxpool._src.layers.LAYERS[...].pools``)."""
  for layer in namespace.values():
    if isinstance(layer, type) and issubclass(layer, PoolModule) and layer.spec is not None:
      for name, defaults in layer.spec.pools.items():
        register_pool(name, layer, **defaults)


def unregister_pool(name: str) -> None:
  """Removes ``name`` from the registry (nothing happens if it is absent).

  Examples:
    >>> from jaxpool import linen as jplinen
    >>> jplinen.register_pool("lp3", jplinen.LpPool, p=3.0)
    >>> jplinen.make_pool("lp3", (2, 2)).p
    3.0
    >>> jplinen.unregister_pool("lp3")
    >>> "lp3" in jplinen.available_pools()
    False
    >>> jplinen.unregister_pool("lp3")  # absent: nothing happens
  """
  _REGISTRY.unregister(name)


def available_pools() -> tuple[str, ...]:
  """The names [`make_pool`][jaxpool.linen.make_pool] accepts, sorted.

  Examples:
    >>> from jaxpool import linen as jplinen
    >>> names = jplinen.available_pools()
    >>> "max" in names, "lift" in names, names == tuple(sorted(names))
    (True, True, True)
  """
  return _REGISTRY.names()


def make_pool(
  name: str, window_shape: Sequence[int], strides=None, padding="VALID", **options
) -> PoolModule:
  """Builds a sliding-window Linen layer from its name.

  The names and their default options are those of
  [`jaxpool.nnx.make_pool`][jaxpool.nnx.make_pool] (``"max"``, ``"avg"``, ``"lp"``, ...). Linen
  layers infer ``features`` from the input and draw their randomness from
  the ``'pool'`` stream at ``apply`` time.

  Examples:
    >>> from jaxpool import linen as jplinen
    >>> jplinen.make_pool("avgmax", (2, 2)).combine
    'add'
  """
  layer, defaults = _REGISTRY.lookup(name)
  return layer.from_window(window_shape, strides, padding, **{**defaults, **options})
