"""Orbax checkpoints of one training run, resumable exactly.

Written under ``--out/checkpoints/<pooling>/seed<N>`` after every epoch:
model, optimizer state, the random layers' keys, and the metrics so far.
"""

from __future__ import annotations

import pathlib

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp
from flax import nnx


def _is_key(leaf) -> bool:
  return hasattr(leaf, "dtype") and jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key)


def savable(nodes) -> dict:
  """The NNX objects' state as a pure dict of arrays (PRNG keys as their
  raw data, which orbax stores as plain arrays)."""
  pure = nnx.to_pure_dict(nnx.state(nodes))
  return jax.tree.map(lambda a: jax.random.key_data(a) if _is_key(a) else a, pure)


def load_state(nodes, restored: dict) -> None:
  """Writes a `savable` dict back into the NNX objects."""
  state = nnx.state(nodes)
  template = nnx.to_pure_dict(state)
  restored = jax.tree.map(
    lambda t, r: jax.random.wrap_key_data(r, impl=jax.random.key_impl(t)) if _is_key(t) else r,
    template,
    restored,
  )
  nnx.replace_by_pure_dict(state, restored)
  nnx.update(nodes, state)


class RunCheckpoints:
  """Orbax checkpoints of one (pooling, seed) run, one per completed epoch
  (the latest kept), with the metrics so far as JSON."""

  def __init__(self, directory: pathlib.Path):
    self.manager = ocp.CheckpointManager(
      directory.absolute(),
      # Synchronous: each epoch's checkpoint is complete before training
      # goes on (an interrupted run resumes from it).
      options=ocp.CheckpointManagerOptions(
        max_to_keep=1, create=True, enable_async_checkpointing=False
      ),
    )

  def latest_epoch(self) -> int:
    return self.manager.latest_step() or 0

  def save(self, epoch: int, nodes, record: dict) -> None:
    self.manager.save(
      epoch,
      args=ocp.args.Composite(
        state=ocp.args.StandardSave(savable(nodes)), record=ocp.args.JsonSave(record)
      ),
    )

  def restore(self, epoch: int, nodes) -> dict:
    target = jax.tree.map(
      lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=a.sharding), savable(nodes)
    )
    restored = self.manager.restore(
      epoch,
      args=ocp.args.Composite(
        state=ocp.args.StandardRestore(target), record=ocp.args.JsonRestore()
      ),
    )
    load_state(nodes, restored["state"])
    return dict(restored["record"])

  def close(self) -> None:
    self.manager.close()
