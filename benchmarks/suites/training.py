"""What a training step pays for its pooling: step time and XLA temp memory.

The step is conv -> relu -> pool -> conv with gradients to both kernels, the
loss a dot with a target (a jit argument, so no cotangent is a folded
constant). Reported: the step's time against the same step with a 2x2 strided
slice in place of the pool, and its temp bytes minus the slice step's, as a
multiple of the activation's bytes.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen
from harness import Suite, interleaved_medians
from tables import device_line, markdown_table

import jaxpool

SHAPE = (32, 64, 64, 64)


def _conv(v, w):
  return jax.lax.conv_general_dilated(
    v, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
  )


def _naive_soft_pool(x):
  """SoftPool by plain autodiff of ``sum(e^x x) / sum(e^x)`` over windows."""
  e = jnp.exp(x - jax.lax.stop_gradient(x.max()))
  return jaxpool.avg_pool(e * x, (2, 2)) / jaxpool.avg_pool(e, (2, 2))


def table(repeats: int) -> str:
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.standard_normal(SHAPE).astype(np.float32))
  w = jnp.asarray(0.05 * rng.standard_normal((3, 3, 64, 64)).astype(np.float32))
  target = jnp.asarray(rng.standard_normal((32, 32, 32, 64)).astype(np.float32))
  logits = jnp.asarray(rng.standard_normal(SHAPE).astype(np.float32))
  pools = {
    "strided slice (baseline)": lambda h: h[:, ::2, ::2, :],
    "jaxpool.max_pool 2x2": lambda h: jaxpool.max_pool(h, (2, 2)),
    "jaxpool.avg_pool 2x2": lambda h: jaxpool.avg_pool(h, (2, 2)),
    "jaxpool.soft_pool 2x2": lambda h: jaxpool.soft_pool(h, (2, 2)),
    "jaxpool.lip_pool 2x2 (fixed logits)": lambda h: jaxpool.lip_pool(h, logits, (2, 2)),
    "jaxpool.lp_pool 2x2, p=3": lambda h: jaxpool.lp_pool(h, (2, 2), p=3.0),
    "flax.linen.max_pool 2x2": lambda h: linen.max_pool(h, (2, 2), (2, 2)),
    "naive SoftPool (autodiff)": _naive_soft_pool,
  }
  fns, temps = {}, {}
  for name, pool in pools.items():

    def loss(w1, w2, v, t, pool=pool):
      return jnp.vdot(_conv(pool(jax.nn.relu(_conv(v, w1))), w2), t)

    step = jax.jit(jax.grad(loss, argnums=(0, 1)))
    memory = step.lower(w, w, x, target).compile().memory_analysis()
    temps[name] = None if memory is None else memory.temp_size_in_bytes / x.nbytes
    fns[name] = lambda step=step: jax.block_until_ready(step(w, w, x, target))
  t = interleaved_medians(fns, repeats)
  base = "strided slice (baseline)"
  rows = []
  for name in pools:
    extra = None if temps[name] is None else temps[name] - temps[base]
    rows.append(
      [
        name,
        f"{1e3 * t[name]:.1f}",
        f"{t[name] / t[base]:.2f}",
        "" if temps[name] is None else f"{temps[name]:.2f}x",
        "" if extra is None else f"{extra:+.2f}x",
      ]
    )
  return markdown_table(
    [
      device_line(repeats),
      f"Training step: conv3x3 -> relu -> pool -> conv3x3 on {SHAPE} float32,"
      " gradients to both kernels, loss a dot with a target passed as a jit"
      " argument. Extra temp: the step's XLA temp bytes minus the strided-slice"
      " step's, over the activation's bytes.",
    ],
    ["pool", "step ms", "/ slice step", "temp", "extra temp"],
    rows,
  )


SUITE = Suite("training", lambda: [], __doc__.split("\n")[0], table=table)
