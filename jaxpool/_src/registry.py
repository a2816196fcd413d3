"""Names under which models pick a sliding-window pooling layer.

One table serves :func:`jaxpool.nnx.make_pool` and
:func:`jaxpool.linen.make_pool`: each entry names the layer class (the same
class name in both Flax APIs) and the options it gets by default. This module
imports no Flax.
"""

from __future__ import annotations

import types

__all__ = ["POOL_LAYERS", "lookup"]

POOL_LAYERS = types.MappingProxyType({
    "max": ("MaxPool", {}),
    "min": ("MinPool", {}),
    "avg": ("AvgPool", {}),
    "lp": ("LpPool", {"p": 2.0}),
    "median": ("MedianPool", {}),
    "avgmax": ("AvgMaxPool", {"combine": "mean"}),
    "catavgmax": ("AvgMaxPool", {"combine": "concat"}),
    "soft": ("SoftPool", {}),
    "lip": ("LIP", {}),
    "dpp": ("DPP", {}),
})


def lookup(name: str, extra: dict | None = None) -> tuple[str, dict]:
  """``(class_name, default_options)`` for ``name``; a clear error if unknown."""
  table = dict(POOL_LAYERS)
  table.update(extra or {})
  if not isinstance(name, str) or name not in table:
    raise ValueError(
        f"unknown pooling {name!r}; available: {', '.join(sorted(table))}."
    )
  class_name, defaults = table[name]
  return class_name, dict(defaults)
