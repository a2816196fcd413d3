"""DynOPool halving (32, 64, 64, 64): the quarter cell (static positions,
strided reads), the learned scale's gradient and a traced (learned) offset,
against max pooling and torch's four ``grid_sample`` reads + max."""

from __future__ import annotations

import numpy as np
from harness import Row, Suite, torch

import jaxpool

SHAPE, OUT = (32, 64, 64, 64), (32, 32)


def _quarter_cell_grids(device, requires_grad=False) -> list:
  """The four (x, y) grids of the quarter-cell queries, square output."""
  out = OUT[0]
  centres = -1 + (2 * np.arange(out) + 1) / out
  grids = []
  for sh in (-1, 1):
    for sw in (-1, 1):
      gy, gx = np.meshgrid(centres + sh / (2 * out), centres + sw / (2 * out), indexing="ij")
      grid = np.broadcast_to(np.stack([gx, gy], -1), (SHAPE[0], out, out, 2))
      t = torch.tensor(np.ascontiguousarray(grid, np.float32), device=device)
      grids.append(t.requires_grad_(requires_grad))
  return grids


def _grid_sample_reads(t, requires_grad=False):
  """torch's DynOPool formula: four grid_sample reads combined by max."""
  reads = [
    torch.nn.functional.grid_sample(
      t, g, mode="bilinear", padding_mode="border", align_corners=False
    )
    for g in _quarter_cell_grids(t.device, requires_grad)
  ]
  return torch.stack(reads).amax(0)


def rows() -> list[Row]:
  reads = None if torch is None else (lambda t, *_: _grid_sample_reads(t))
  learned_reads = None if torch is None else (lambda t, *_: _grid_sample_reads(t, True))
  return [
    Row("max_pool 2x2/2", lambda v: jaxpool.max_pool(v, (2, 2)), SHAPE),
    Row(
      "dyno_pool, quarter cell (delta=None)",
      lambda v: jaxpool.dyno_pool(v, OUT),
      SHAPE,
      torch=reads,
    ),
    Row(
      "dyno_pool, quarter cell, scale=alpha: grad in x and alpha",
      lambda v, a: jaxpool.dyno_pool(v, OUT, scale=a),
      SHAPE,
      args=lambda rng: (np.array([2.0, 2.0], np.float32),),
      grad_args=True,
      torch=learned_reads,
    ),
    Row(
      "dyno_pool, traced delta (learned offset): grad in x and delta",
      lambda v, d: jaxpool.dyno_pool(v, OUT, d),
      SHAPE,
      args=lambda rng: (np.array([1 / 64, 1 / 64], np.float32),),
      grad_args=True,
      torch=learned_reads,
    ),
  ]


SUITE = Suite(
  "dynamic",
  rows,
  f"Input {SHAPE} float32, output (32, 32, 32, 64). torch is four"
  " `grid_sample(bilinear, border, align_corners=False)` reads at the"
  " quarter-cell grids combined by `amax`; for rows with a gradient in a"
  " learned parameter torch differentiates its grids too.",
  reference="max_pool 2x2/2",
)
