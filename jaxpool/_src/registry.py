"""A name -> layer class table, one instance per layer API (NNX, Linen).

Models pick their pooling by string (``make_pool("soft", ...)``); each layer
API keeps its own `Registry` of its own layer classes, filled by its
family modules. This module imports no Flax.
"""

from __future__ import annotations

__all__ = ["Registry"]


class Registry:
  """Registered names, each a layer class and its default options.

  Args:
    base: the layer base class every registered class must subclass.
    base_name: how errors name it (e.g. ``"jaxpool.nnx.PoolLayer"``).
  """

  def __init__(self, base: type, base_name: str):
    self._base, self._base_name = base, base_name
    self._table: dict[str, tuple[type, dict]] = {}

  def register(self, name: str, layer: type, defaults: dict) -> None:
    if not isinstance(name, str) or not name:
      raise ValueError(f"name must be a non-empty string; got {name!r}.")
    if not (isinstance(layer, type) and issubclass(layer, self._base)):
      raise TypeError(
        f"layer must be a {self._base_name} subclass (a layer class, not an"
        f" instance or a function); got {layer!r}."
      )
    self._table[name] = (layer, dict(defaults))

  def unregister(self, name: str) -> None:
    self._table.pop(name, None)

  def names(self) -> tuple[str, ...]:
    return tuple(sorted(self._table))

  def lookup(self, name: str) -> tuple[type, dict]:
    """``(layer class, default options)``; a ``ValueError`` listing the names."""
    if not isinstance(name, str) or name not in self._table:
      raise ValueError(f"unknown pooling {name!r}; available: {', '.join(self.names())}.")
    layer, defaults = self._table[name]
    return layer, dict(defaults)
