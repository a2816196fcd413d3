"""The random family in training mode (fixed key) against max pooling,
torch's fractional max pooling (same samples) and a naive JAX stochastic pool."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from harness import Row, Suite, torch

import jaxpool

SHAPE = (32, 64, 64, 64)
FRACTIONAL_OUT = (45, 45)  # ratio ~ 1/sqrt(2), Graham's setting


def _args(rng):
  """A key and fractional pooling's samples, shape (batch, 2, features) with
  the last spatial axis first (torch's ``_random_samples`` is (batch,
  features, 2), width first)."""
  samples = rng.random((SHAPE[0], SHAPE[-1], 2), dtype=np.float32)
  return jax.random.key(0), np.ascontiguousarray(samples.transpose(0, 2, 1)[:, ::-1])


def _naive_stochastic_pool(x, key, samples):
  """The textbook JAX route: 2x2 patches, ``jax.random.categorical``, gather."""
  del samples
  b, h, w, c = x.shape
  patches = x.reshape(b, h // 2, 2, w // 2, 2, c).transpose(0, 1, 3, 5, 2, 4)
  patches = patches.reshape(b, h // 2, w // 2, c, 4)
  choice = jax.random.categorical(key, jnp.log(patches + 1e-12), axis=-1)
  return jnp.take_along_axis(patches, choice[..., None], axis=-1)[..., 0]


def _torch_fractional(t, key, samples):
  del key
  torch_samples = samples.flip(1).transpose(1, 2).contiguous()
  return torch.nn.functional.fractional_max_pool2d(
    t, 2, output_size=FRACTIONAL_OUT, _random_samples=torch_samples
  )


def rows() -> list[Row]:
  def row(name, fn, **kw):
    return Row(name, fn, SHAPE, args=_args, positive=True, **kw)

  return [
    row("max_pool 2x2/2", lambda v, key, s: jaxpool.max_pool(v, (2, 2))),
    row("mixed_pool 2x2/2", lambda v, key, s: jaxpool.mixed_pool(v, (2, 2), key=key)),
    row(
      "stochastic_pool 2x2/2",
      lambda v, key, s: jaxpool.stochastic_pool(v, (2, 2), key=key),
      baseline=_naive_stochastic_pool,
      baseline_name="patches + categorical + gather",
    ),
    row("stochastic_pool 2x2/2, inference", lambda v, key, s: jaxpool.stochastic_pool(v, (2, 2))),
    row(
      "s3_pool s2, grid 16",
      lambda v, key, s: jaxpool.s3_pool(v, (2, 2), grid_shape=(16, 16), key=key),
    ),
    row(
      "fractional 64->45, k2",
      lambda v, key, s: jaxpool.fractional_max_pool(
        v, (2, 2), output_shape=FRACTIONAL_OUT, samples=s
      ),
      torch=None if torch is None else _torch_fractional,
    ),
    row(
      "fractional 64->45, k2, inference",
      lambda v, key, s: jaxpool.fractional_max_pool(v, (2, 2), output_shape=FRACTIONAL_OUT),
    ),
    row(
      "fractional 64->45, pseudorandom overlapping",
      lambda v, key, s: jaxpool.fractional_max_pool(
        v, output_shape=FRACTIONAL_OUT, regions="pseudorandom", overlapping=True, key=key
      ),
    ),
  ]


SUITE = Suite(
  "stochastic",
  rows,
  f"Input {SHAPE} float32, non-negative; training mode with a fixed key"
  " (a jit argument) unless marked inference. torch is"
  " `fractional_max_pool2d` with the same samples; the stochastic pool's"
  " baseline is the textbook JAX route (2x2 patches,"
  " `jax.random.categorical`, a gather).",
  reference="max_pool 2x2/2",
)
