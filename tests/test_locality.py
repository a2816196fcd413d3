"""Locality over the operator table: an extreme value (NaN, +-inf, 1e30) in one
input cell changes only the outputs whose windows (bins, regions) contain it,
in inference and training modes; 1e30 never overflows an output."""

import zlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cases import CASES, SHAPE, reach

VALUES = [np.nan, np.inf, -np.inf, 1e30]
MODES = [(case, False) for case in CASES] + [(case, True) for case in CASES if case.random]


@pytest.mark.parametrize(
    "case,training", MODES,
    ids=[f"{case.id}-{'training' if training else 'inference'}" for case, training in MODES],
)
def test_an_extreme_value_reaches_only_the_windows_that_contain_it(case, training):
  fn = jax.jit(case.call)
  key = jax.random.key(3) if training else None
  x = jax.random.normal(jax.random.key(0), SHAPE)
  base = np.asarray(fn(x, key))
  rng = np.random.default_rng(zlib.crc32(case.id.encode()))
  for value in VALUES:
    for _ in range(3):  # seeded random cells
      cell = tuple(int(rng.integers(n)) for n in SHAPE)
      expected = np.asarray(reach(case, jnp.zeros(SHAPE).at[cell].set(1.0), key))
      y = np.asarray(fn(x.at[cell].set(value), key))
      same = (y == base) | (np.isnan(y) & np.isnan(base))
      leaked = ~same & ~expected
      assert not leaked.any(), (
          f"{value} at {cell} changed {int(leaked.sum())} output(s) whose windows"
          f" do not contain it, e.g. {tuple(int(i) for i in np.argwhere(leaked)[0])}"
      )
      if value == 1e30:
        assert np.isfinite(y).all(), f"1e30 at {cell} overflowed an output"
