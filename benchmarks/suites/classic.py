"""Classic max/average pooling (1-D to 3-D, float32 and bfloat16) and the
adaptive bins, against Flax's ``reduce_window`` pooling and torch."""

from __future__ import annotations

import jax.numpy as jnp
from flax import linen
from harness import Row, Suite, torch

import jaxpool

TYPICAL = (32, 64, 64, 64)


def _pool_row(op, shape, k, s, dtype="float32", padding=0):
  nd = len(shape) - 2
  window, strides, pads = (k,) * nd, (s,) * nd, ((padding, padding),) * nd
  ours = getattr(jaxpool, f"{op}_pool")
  flax_pool = getattr(linen, f"{op}_pool")
  pad = f"/p{padding}" if padding else ""
  theirs = None
  if torch is not None:
    pool = getattr(torch.nn.functional, f"{op}_pool{nd}d")
    theirs = lambda t: pool(t, k, s, padding)
  return Row(
    f"{op}_pool {nd}-D {shape} k{k}/s{s}{pad} {dtype}",
    lambda x: ours(x, window, strides, pads),
    shape,
    dtype=dtype,
    baseline=lambda x: flax_pool(x, window, strides, pads),
    baseline_name="flax",
    torch=theirs,
  )


def _adaptive_naive(x, out=7):
  """The bins written as slices and ``jnp.max``, as a user would."""
  n = x.shape[1]
  bins = [(i * n // out, -(-(i + 1) * n // out)) for i in range(out)]
  return jnp.stack(
    [jnp.stack([jnp.max(x[:, a:b, c:d], axis=(1, 2)) for c, d in bins], 1) for a, b in bins], 1
  )


def rows() -> list[Row]:
  out = [_pool_row(op, TYPICAL, k, 2) for op in ("max", "avg") for k in (2, 3)]
  out += [_pool_row(op, TYPICAL, 3, 2, padding=1) for op in ("max", "avg")]
  for op in ("max", "avg"):
    out += [
      _pool_row(op, (8, 32, 32, 16), 2, 2),
      _pool_row(op, (16, 128, 128, 64), 3, 2),
      _pool_row(op, (64, 4096, 64), 2, 2),
      _pool_row(op, (64, 4096, 64), 3, 2),
      _pool_row(op, (8, 32, 32, 32, 32), 2, 2),
      _pool_row(op, (8, 32, 32, 32, 32), 3, 2),
      _pool_row(op, TYPICAL, 3, 1, padding=1),
      _pool_row(op, TYPICAL, 2, 2, "bfloat16"),
      _pool_row(op, TYPICAL, 3, 2, "bfloat16"),
    ]
  out.append(
    Row(
      f"adaptive_max_pool {TYPICAL} -> 7x7",
      lambda x: jaxpool.adaptive_max_pool(x, (7, 7)),
      TYPICAL,
      baseline=_adaptive_naive,
      baseline_name="slices + jnp.max",
      torch=None if torch is None else (lambda t: torch.nn.functional.adaptive_max_pool2d(t, 7)),
    )
  )
  out.append(
    Row(
      f"adaptive_avg_pool {TYPICAL} -> 7x7",
      lambda x: jaxpool.adaptive_avg_pool(x, (7, 7)),
      TYPICAL,
      torch=None if torch is None else (lambda t: torch.nn.functional.adaptive_avg_pool2d(t, 7)),
    )
  )
  return out


SUITE = Suite(
  "classic",
  rows,
  "Max and average pooling over every layout a CNN uses (the label gives"
  " the input shape, channels-last, window k and stride s), and the adaptive"
  " bins of a 7x7 head. The baseline is `flax.linen.max_pool`/`avg_pool`"
  " (XLA's `reduce_window`, differentiated by JAX into `select_and_scatter`"
  " and `pad` + `reduce_window`).",
)
