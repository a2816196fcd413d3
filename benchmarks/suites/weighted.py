"""SoftPool and LIP against average/max pooling, the formula with autodiff,
and the official SoftPool repository's torch formula."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from flax import linen
from harness import Row, Suite, torch
from jax import lax

import jaxpool

SHAPE = (32, 64, 64, 64)


def _window_sum(v, k):
  return lax.reduce_window(v, 0.0, lax.add, (1, k, k, 1), (1, 2, 2, 1), "VALID")


def rows() -> list[Row]:
  logits = lambda rng: (rng.standard_normal(SHAPE).astype(np.float32),)
  out = []
  for k in (2, 3):
    window = (k, k)

    def soft_naive(v, k=k):
      e = jnp.exp(v - lax.stop_gradient(jnp.max(v)))
      return _window_sum(e * v, k) / _window_sum(e, k)

    def lip_naive(v, logits, k=k):
      e = jnp.exp(logits)
      return _window_sum(e * v, k) / _window_sum(e, k)

    soft_torch = lip_torch = None
    if torch is not None:
      avg = torch.nn.functional.avg_pool2d

      def soft_torch(t, k=k):
        e = torch.exp(t)
        return avg(t * e, k, 2) / avg(e, k, 2)

      def lip_torch(t, logits, k=k):
        e = torch.exp(logits.permute(0, 3, 1, 2))
        return avg(t * e, k, 2) / avg(e, k, 2)

    out += [
      Row(
        f"soft_pool {k}x{k}/2",
        lambda v, window=window: jaxpool.soft_pool(v, window, 2),
        SHAPE,
        baseline=soft_naive,
        baseline_name="formula + autodiff",
        torch=soft_torch,
      ),
      Row(
        f"lip_pool {k}x{k}/2",
        lambda v, l, window=window: jaxpool.lip_pool(v, l, window, 2),
        SHAPE,
        args=logits,
        baseline=lip_naive,
        baseline_name="formula + autodiff",
        torch=lip_torch,
      ),
      Row(
        f"avg_pool {k}x{k}/2",
        lambda v, window=window: jaxpool.avg_pool(v, window, 2),
        SHAPE,
        baseline=lambda v, window=window: linen.avg_pool(v, window, (2, 2)),
        baseline_name="flax",
      ),
      Row(
        f"max_pool {k}x{k}/2",
        lambda v, window=window: jaxpool.max_pool(v, window, 2),
        SHAPE,
        baseline=lambda v, window=window: linen.max_pool(v, window, (2, 2)),
        baseline_name="flax",
      ),
    ]
  return out


SUITE = Suite(
  "weighted",
  rows,
  f"Input {SHAPE} float32; LIP's logits are a jit argument. The baseline is"
  " the formula `sum(e^w x) / sum(e^w)` with `reduce_window` sums and"
  " autodiff (SoftPool's shifted by the global maximum), Flax for avg/max;"
  " torch runs the official SoftPool repository's pure-PyTorch formula"
  " `avg_pool(x e^x) / avg_pool(e^x)` (with `e^logits` for LIP).",
  reference="avg_pool 2x2/2",
)
