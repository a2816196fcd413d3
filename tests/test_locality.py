"""Locality over the operator table: an extreme value (NaN, +-inf, 1e30) in one
input cell changes only the outputs whose windows (bins, regions) contain it,
in inference and training modes; 1e30 never overflows an output."""

import zlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxpool

from cases import CASES, SHAPE, reach
from reference import INF, windows

VALUES = [np.nan, np.inf, -np.inf, 1e30]
MODES = [(case, False) for case in CASES] + [(case, True) for case in CASES if case.random]


@pytest.mark.parametrize(
  "case,training",
  MODES,
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
      if value == 1e30 and not case.squares:
        assert np.isfinite(y).all(), f"1e30 at {cell} overflowed an output"


def _windows_holding(cell, shape, window, strides, padding):
  """Output indices of the windows that hold ``cell`` (dilation 1, floor)."""
  return {
    idx
    for idx, cells, _ in windows(shape, window, strides, padding, 1, False)
    if tuple(cell) in cells
  }

  # +inf logits take all the weight, -inf none, all -inf: uniform.


@pytest.mark.parametrize("bad", [INF, -INF])
@pytest.mark.parametrize("name", ["soft", "lip", "dpp", "mixed", "gated", "stochastic"])
def test_infinite_cell_changes_only_its_windows(name, bad):
  ops = {
    "soft": lambda v, **w: jaxpool.soft_pool(v, **w),
    "lip": lambda v, **w: jaxpool.lip_pool(v, 0.5 * jnp.where(jnp.isinf(v), 0.0, v), **w),
    "dpp": lambda v, **w: jaxpool.dpp_pool(v, 1.0, 2.0, **w),
    "mixed": lambda v, **w: jaxpool.mixed_pool(v, alpha=0.3, **w),
    "gated": lambda v, **w: jaxpool.gated_pool(v, jnp.full((3, 3), 0.1), **w),
    "stochastic": lambda v, **w: jaxpool.stochastic_pool(v, **w),
  }
  window = dict(window_shape=(3, 3), strides=(2, 2), padding=1)
  x = np.abs(np.random.default_rng(3).standard_normal((1, 7, 8, 2))).astype(np.float32)
  cell = (4, 3)
  op = jax.jit(lambda v: ops[name](v, **window))
  base = np.asarray(op(x))
  xb = x.copy()
  xb[(0, *cell, 0)] = bad
  y = np.asarray(op(xb))
  holding = _windows_holding(cell, (7, 8), (3, 3), (2, 2), [(1, 1), (1, 1)])
  mask = np.zeros(base.shape[1:3], bool)
  for idx in holding:
    mask[idx] = True
  np.testing.assert_array_equal(y[0, ~mask], base[0, ~mask])
  np.testing.assert_array_equal(y[..., 1], base[..., 1])
  assert not np.isnan(y).any()
  if bad == INF:  # +inf dominates every window holding it
    np.testing.assert_array_equal(y[0, mask, 0], INF)
