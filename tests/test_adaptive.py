"""Adaptive and global pooling: torch 2.13 parity, bins that do not divide,
non-finite values kept in their bins, argument checks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from derivatives import check_grads

import jaxpool

from oracle import (
  from_torch,
  jax_value_and_grad,
  to_torch,
  torch_input,
  torch_op,
  value_and_grad,
)
from reference import INF, NAN, column

# Uniform bins of more than 16 (avg) / 64 (max) cells take other paths:
# (40,) -> (2,), (16, 18) -> (2, 2) and (20, 20) -> (1, 1) cover them.
ADAPTIVE_SIZES = {
  1: [((11,), (3,)), ((5,), (3,)), ((4,), (7,)), ((8,), (4,)), ((40,), (2,))],
  2: [
    ((7, 8), (3, 5)),
    ((6, 6), (3, 2)),
    ((5, 4), (1, 1)),
    ((3, 4), (5, 6)),
    ((16, 18), (2, 2)),
    ((20, 20), (1, 1)),
  ],
  3: [((5, 6, 5), (2, 3, 4)), ((4, 4, 4), (2, 2, 2))],
}


ADAPTIVE_CASES = [(nd, i, o) for nd, sizes in ADAPTIVE_SIZES.items() for i, o in sizes]


@pytest.mark.parametrize("kind", ["ties", "normal"])
@pytest.mark.parametrize("nd,in_shape,out_shape", ADAPTIVE_CASES)
@pytest.mark.parametrize("op", ["avg", "max"])
def test_adaptive_pool(op, nd, in_shape, out_shape, kind):
  rng = np.random.default_rng(5)
  shape = (2,) + in_shape + (3,)
  if kind == "ties":
    x = rng.integers(0, 3, shape).astype(np.float32)
  else:
    x = rng.standard_normal(shape).astype(np.float32)
  fn = torch_op(f"adaptive_{op}_pool", nd)
  ref = from_torch(fn(to_torch(x), out_shape))
  cot = rng.standard_normal(ref.shape).astype(np.float32)
  ref_y, ref_g = value_and_grad(lambda t: fn(t, out_shape), x, cot)
  ours = getattr(jaxpool, f"adaptive_{op}_pool")
  y, g = jax_value_and_grad(jax.jit(lambda v: ours(v, out_shape)), x, cot)
  np.testing.assert_allclose(y, ref_y, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(g, ref_g, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("op", ["avg", "max"])
def test_global_pool_matches_torch_adaptive_one(op, nd):
  x = torch_input(nd, "ties", seed=6)
  fn = torch_op(f"adaptive_{op}_pool", nd)
  ref = from_torch(fn(to_torch(x), 1))
  cot = np.random.default_rng(7).standard_normal((2, 3)).astype(np.float32)
  _, ref_g = value_and_grad(lambda t: fn(t, 1), x, cot.reshape((2,) + (1,) * nd + (3,)))
  ours = getattr(jaxpool, f"global_{op}_pool")
  y, g = jax_value_and_grad(ours, x, cot)
  np.testing.assert_allclose(y, ref.reshape(2, 3), rtol=1e-6)
  np.testing.assert_allclose(g, ref_g, rtol=1e-6, atol=1e-7)
  kept = ours(x, keepdims=True)
  assert kept.shape == (2,) + (1,) * nd + (3,)


def _adaptive_bins(size, out):
  i = np.arange(out)
  return (i * size) // out, -((-(i + 1) * size) // out)


def test_adaptive_avg_pool_nan_reaches_only_its_bins():
  y = jaxpool.adaptive_avg_pool(column([NAN, 1, 2, 3, 4]), (3,))
  np.testing.assert_array_equal(y[:, 0], [NAN, 2.0, 3.5])  # torch's output


def test_adaptive_avg_pool_2d_nan_and_inf_stay_in_their_bins():
  rng = np.random.default_rng(0)
  x = rng.standard_normal((23, 19, 1))
  cell = (5, 7)
  starts_h, ends_h = _adaptive_bins(23, 16)
  starts_w, ends_w = _adaptive_bins(19, 16)
  holds = ((starts_h <= cell[0]) & (cell[0] < ends_h))[:, None] & (
    (starts_w <= cell[1]) & (cell[1] < ends_w)
  )[None, :]
  expected = np.array(
    [
      [x[starts_h[i] : ends_h[i], starts_w[j] : ends_w[j], 0].mean() for j in range(16)]
      for i in range(16)
    ]
  )
  for bad, fill in ((NAN, NAN), (INF, INF), (-INF, -INF)):
    xb = x.copy()
    xb[cell] = bad
    y = np.asarray(jaxpool.adaptive_avg_pool(jnp.asarray(xb, jnp.float32), (16, 16)))[..., 0]
    assert holds.sum() == 4
    np.testing.assert_array_equal(np.isfinite(y), ~holds)  # torch: 4 of 256
    np.testing.assert_array_equal(y[holds], fill)
    np.testing.assert_allclose(y[~holds], expected[~holds], rtol=1e-5, atol=1e-6)


def test_adaptive_avg_pool_uneven_bins_gradient(x64):
  x = np.random.default_rng(1).standard_normal((2, 7, 5, 3))
  check_grads(lambda v: jaxpool.adaptive_avg_pool(v, (3, 4)), (x,), order=1)
  x[0, 3, 2, 1] = NAN
  grad = jax.grad(lambda v: jnp.nansum(jaxpool.adaptive_avg_pool(v, (3, 4))))(jnp.asarray(x))
  assert np.isfinite(np.asarray(grad)).all()


@pytest.mark.parametrize("op", [jaxpool.global_avg_pool, jaxpool.global_max_pool])
def test_global_pools_reject_empty_axes_and_non_bool_keepdims(op):
  with pytest.raises(ValueError, match="non-empty spatial axes"):
    op(jnp.ones((2, 0, 3, 4)))
  with pytest.raises(ValueError, match="non-empty spatial axes"):
    op(jnp.ones((0, 4)), spatial_ndim=1)
  with pytest.raises(TypeError, match="keepdims must be a bool"):
    op(jnp.ones((2, 3, 3, 4)), keepdims="no")
  assert op(jnp.ones((2, 3, 3, 4)), keepdims=np.bool_(True)).shape == (2, 1, 1, 4)


def test_regular_bins_are_sliding_windows():
  from jaxpool._src.adaptive import _regular_bins

  assert _regular_bins((64, 64), (7, 7)) == ((10, 10), (9, 9))
  assert _regular_bins((13, 8), (4, 1)) == ((4, 8), (3, 8))
  assert _regular_bins((64, 64), (8, 4)) == ((8, 16), (8, 16))
  assert _regular_bins((64, 64), (7, 5)) is None  # 5 bins: 12 or 13 apart
  assert _regular_bins((5,), (7,)) is None
  assert _regular_bins((1, 2), (4, 4)) is None  # repeated starts


@pytest.mark.parametrize("path", ["regular", "sliced", "gathered"])
@pytest.mark.parametrize(
  "in_shape,out_shape", [((13, 10), (4, 3)), ((5, 9), (7, 2)), ((64, 64), (7, 7))]
)
def test_adaptive_max_bins_sliced_or_gathered_match_torch_with_ties(
  in_shape, out_shape, path, monkeypatch
):
  # Regular bins are one sliding-window max; others, few bins per axis are
  # static slices, many are gathered: all are torch's.
  from jaxpool._src import adaptive

  if path != "regular":
    monkeypatch.setattr(adaptive, "_MAX_WINDOW_SIDE", 0)
  monkeypatch.setattr(adaptive, "_MAX_SLICED_BINS", 0 if path == "gathered" else 32)
  rng = np.random.default_rng(1)
  x = rng.integers(0, 3, (2,) + in_shape + (3,)).astype(np.float32)
  fn = torch_op("adaptive_max_pool", 2)
  ref = from_torch(fn(to_torch(x), out_shape))
  cot = rng.standard_normal(ref.shape).astype(np.float32)
  ref_y, ref_g = value_and_grad(lambda t: fn(t, out_shape), x, cot)
  y, g = jax_value_and_grad(jax.jit(lambda v: jaxpool.adaptive_max_pool(v, out_shape)), x, cot)
  np.testing.assert_array_equal(y, ref_y)
  np.testing.assert_allclose(g, ref_g, rtol=1e-6, atol=1e-6)
