"""Stride-1 'SAME' max, average and median pooling as the window grows, and
YOLO's SPP block and SPPF, against ``reduce_window`` and torch."""

from __future__ import annotations

import jax.numpy as jnp
from harness import Row, Suite, torch
from jax import lax

import jaxpool

SHAPE = (8, 40, 40, 128)


def _reduce_window(v, k, init, op):
  p = k // 2
  return lax.reduce_window(
    v, init, op, (1, k, k, 1), (1, 1, 1, 1), ((0, 0), (p, p), (p, p), (0, 0))
  )


def _max(v, k):
  return _reduce_window(v, k, -jnp.inf, lax.max)


def _stacked_taps(v, k):
  """Every tap of the k x k stride-1 'SAME' windows, stacked last (zero
  padding, as torch's unfold)."""
  p = k // 2
  padded = jnp.pad(v, ((0, 0), (p, p), (p, p), (0, 0)))
  h, w = v.shape[1:3]
  return jnp.stack([padded[:, i : i + h, j : j + w] for i in range(k) for j in range(k)], -1)


def _sppf_naive(v, k=5, repeats=3):
  outs = [v]
  for _ in range(repeats):
    outs.append(_max(outs[-1], k))
  return jnp.concatenate(outs, -1)


def rows() -> list[Row]:
  F = None if torch is None else torch.nn.functional
  out = []
  for k in (3, 5, 9, 13):
    out.append(
      Row(
        f"max_pool {k}x{k}/1 SAME",
        lambda v, k=k: jaxpool.max_pool(v, (k, k), 1, k // 2),
        SHAPE,
        baseline=lambda v, k=k: _max(v, k),
        baseline_name="reduce_window",
        torch=F and (lambda t, k=k: F.max_pool2d(t, k, 1, k // 2)),
      )
    )
  for k in (3, 9, 13):
    out.append(
      Row(
        f"avg_pool {k}x{k}/1 SAME",
        lambda v, k=k: jaxpool.avg_pool(v, (k, k), 1, k // 2),
        SHAPE,
        baseline=lambda v, k=k: _reduce_window(v, k, 0.0, lax.add) / (k * k),
        baseline_name="reduce_window",
        torch=F and (lambda t, k=k: F.avg_pool2d(t, k, 1, k // 2)),
      )
    )
  for k in (3, 5, 9):
    # torch has no median pooling: its unfold + median is the torch-ops way
    # (zero padding; the time, not the border values, is compared).
    # The stacked-taps baseline only at 3x3: it takes 6 s a call at 5x5.
    out.append(
      Row(
        f"median_pool {k}x{k}/1 SAME",
        lambda v, k=k: jaxpool.median_pool(v, (k, k), 1, k // 2),
        SHAPE,
        baseline=(lambda v, k=k: jnp.median(_stacked_taps(v, k), axis=-1)) if k == 3 else None,
        baseline_name="stacked taps + jnp.median",
        torch=F
        and (
          lambda t, k=k: (
            F.unfold(t, k, padding=k // 2)
            .reshape(t.shape[0], t.shape[1], k * k, -1)
            .median(dim=2)
            .values.reshape(t.shape)
          )
        ),
      )
    )
  out.append(
    Row(
      "spp_block (5, 9, 13)",
      lambda v: jaxpool.spp_block(v),
      SHAPE,
      baseline=lambda v: jnp.concatenate([v] + [_max(v, k) for k in (5, 9, 13)], -1),
      baseline_name="reduce_window",
      torch=F
      and (lambda t: torch.cat([t] + [F.max_pool2d(t, k, 1, k // 2) for k in (5, 9, 13)], 1)),
    )
  )
  out.append(
    Row(
      "sppf (5, 3 repeats)",
      lambda v: jaxpool.sppf(v),
      SHAPE,
      baseline=_sppf_naive,
      baseline_name="reduce_window",
      torch=F and (lambda t: _torch_sppf(t)),
    )
  )
  return out


def _torch_sppf(t, k=5, repeats=3):
  outs = [t]
  for _ in range(repeats):
    outs.append(torch.nn.functional.max_pool2d(outs[-1], k, 1, k // 2))
  return torch.cat(outs, 1)


SUITE = Suite(
  "pyramid",
  rows,
  f"Input {SHAPE} float32. The baseline is `lax.reduce_window` with"
  " autodiff (what Flax runs), the median's the stacked taps and"
  " `jnp.median`; torch's median is `unfold` + `median` (zero padding; the"
  " time, not the border values, is compared).",
  reference="max_pool 3x3/1 SAME",
)
