"""The benchmark suites: one module per family, each declaring its rows once.

Every module defines ``SUITE`` (a `Suite`); ``SUITES`` maps
``--suite`` names to them.
"""

from __future__ import annotations

import importlib

NAMES = (
  "classic",
  "antialias",
  "weighted",
  "stochastic",
  "training",
  "lifting",
  "dynamic",
  "second_order",
  "heads",
  "pyramid",
  "region",
)


def load(name: str):
  """The ``Suite`` of ``benchmarks/suites/<name>.py``."""
  return importlib.import_module(f"suites.{name}").SUITE
