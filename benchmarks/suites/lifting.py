"""LiftPool against average/max pooling: the fixed wavelets (the sum of the
sub-bands, the paper's pooling), the learned NNX layer (its parameters as jit
arguments) and the exact inverse."""

from __future__ import annotations

from flax import linen
from harness import Row, Suite
from jax import lax

import jaxpool

SHAPE = (32, 64, 64, 64)
BANDS = (4, 32, 32, 32, 64)  # lift_up_pool's four nonzero bands, stacked


def _legall_naive(v):
  """LeGall 5/3 lifting written plainly (one axis after the other), the
  sum of the sub-bands."""

  def lift(u, axis):
    even = lax.slice_in_dim(u, 0, None, 2, axis)
    odd = lax.slice_in_dim(u, 1, None, 2, axis)
    nxt = lax.concatenate(
      [
        lax.slice_in_dim(even, 1, None, 1, axis),
        lax.slice_in_dim(even, even.shape[axis] - 1, None, 1, axis),
      ],
      axis,
    )
    d = odd - 0.5 * (even + nxt)
    prv = lax.concatenate(
      [lax.slice_in_dim(d, 0, 1, 1, axis), lax.slice_in_dim(d, 0, d.shape[axis] - 1, 1, axis)], axis
    )
    return even + 0.25 * (d + prv) + d

  return lift(lift(v, 1), 2)


def _learned_state(rng):
  from flax import nnx

  from jaxpool import nnx as jpnnx

  del rng
  _, state = nnx.split(jpnnx.LiftDownPool(features=SHAPE[-1], rngs=nnx.Rngs(0)))
  return (state,)


def _learned(v, state):
  """The learned layer's training output: the sum of the bands plus the
  weighted constraints (broadcast), so their cost is timed too."""
  from flax import nnx

  from jaxpool import nnx as jpnnx

  graphdef, _ = nnx.split(jpnnx.LiftDownPool(features=SHAPE[-1], rngs=nnx.Rngs(0)))
  predict, update = nnx.merge(graphdef, state).steps()
  bands, (c_u, c_p) = jaxpool.lift_down_pool_with_constraints(v, predict=predict, update=update)
  return sum(bands) + (0.01 * c_u + 0.1 * c_p)


def rows() -> list[Row]:
  return [
    Row(
      "avg_pool 2x2/2",
      lambda v: jaxpool.avg_pool(v, (2, 2)),
      SHAPE,
      baseline=lambda v: linen.avg_pool(v, (2, 2), (2, 2)),
      baseline_name="flax",
    ),
    Row(
      "max_pool 2x2/2",
      lambda v: jaxpool.max_pool(v, (2, 2)),
      SHAPE,
      baseline=lambda v: linen.max_pool(v, (2, 2), (2, 2)),
      baseline_name="flax",
    ),
    Row(
      "lift_down_pool, LeGall 5/3, sum of bands", lambda v: sum(jaxpool.lift_down_pool(v)), SHAPE
    ),
    Row(
      "lift_down_pool, Haar, sum of bands",
      lambda v: sum(jaxpool.lift_down_pool(v, wavelet="haar")),
      SHAPE,
    ),
    Row(
      "lift_pool (the sum of bands in one filter per axis), LeGall 5/3",
      lambda v: jaxpool.lift_pool(v),
      SHAPE,
      baseline=_legall_naive,
      baseline_name="lifting steps as slices",
    ),
    Row(
      "learned P/U (LiftDownPool.steps), sum + 0.01 c_u + 0.1 c_p",
      _learned,
      SHAPE,
      args=_learned_state,
    ),
    Row("lift_up_pool, LeGall 5/3", lambda v: jaxpool.lift_up_pool(tuple(v)), BANDS),
  ]


SUITE = Suite(
  "lifting",
  rows,
  f"Input {SHAPE} float32; the learned layer's parameters are jit arguments."
  f" The lift_up_pool row reads four nonzero {BANDS[1:]} bands (stacked: as"
  " many bytes as the input) and writes (32, 64, 64, 64). The lift_pool"
  " baseline is LeGall 5/3's lifting steps written plainly, one axis after"
  " the other, with autodiff.",
  reference="avg_pool 2x2/2",
)
