"""Data parallelism: a 1-D mesh over the devices, batches split along it.

On one CPU it is plain single-device training;
``XLA_FLAGS=--xla_force_host_platform_device_count=8`` runs it on 8 CPU
devices. On a multi-GPU host the same code uses every GPU; on a multi-host
slice start one process per host with ``--distributed``
(`initialize_distributed` reads the cluster from the environment:
SLURM, Cloud TPU, or ``JAX_COORDINATOR_ADDRESS`` / ``JAX_NUM_PROCESSES`` /
``JAX_PROCESS_ID``); every process builds the same data and feeds the shards
of its own devices.
"""

from __future__ import annotations

import jax
import numpy as np
from flax import nnx
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec


def initialize_distributed() -> None:
  """Joins the multi-host cluster; call before anything touches a device."""
  jax.distributed.initialize()


def barrier(name: str) -> None:
  """Waits until every process reaches the barrier ``name`` (a no-op with
  one process)."""
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(name)


class Parallel:
  """A 1-D mesh over the first ``devices`` devices (every device by
  default): batches split along it, the rest replicated."""

  def __init__(self, devices: int | None = None):
    available = jax.devices()
    if devices is not None and jax.process_count() > 1:
      raise ValueError("devices: a multi-process run uses every device of every process.")
    if devices is not None and not 1 <= devices <= len(available):
      raise ValueError(f"devices={devices}: this run sees {len(available)} device(s).")
    self.devices = available[:devices] if devices else available
    self.mesh = Mesh(np.asarray(self.devices), ("batch",))
    self.batch = NamedSharding(self.mesh, PartitionSpec("batch"))
    self.replicated = NamedSharding(self.mesh, PartitionSpec())

  @property
  def size(self) -> int:
    return len(self.devices)

  def describe(self) -> str:
    kinds = sorted({d.device_kind for d in self.devices})
    hosts = jax.process_count()
    return (
      f"{self.size} device(s) ({', '.join(kinds)}; {hosts} process(es)),"
      " data-parallel over the batch"
    )

  def shard(self, array: np.ndarray) -> jax.Array:
    """A host array (the same on every process) split along its first axis:
    each process places the shards of its own devices."""
    return jax.make_array_from_callback(array.shape, self.batch, lambda index: array[index])

  def replicate(self, *nodes) -> None:
    """Moves the state of NNX objects onto every device."""
    state = nnx.state(nodes)
    nnx.update(nodes, jax.device_put(state, self.replicated))


def padded(images: np.ndarray, labels: np.ndarray, parallel: Parallel):
  """An evaluation set padded to a multiple of the device count, with its
  mask, sharded."""
  n = len(images)
  total = -(-n // parallel.size) * parallel.size
  pad = [(0, total - n)] + [(0, 0)] * (images.ndim - 1)
  mask = np.arange(total) < n
  arrays = (np.pad(images, pad), np.pad(labels, (0, total - n)), mask)
  return tuple(parallel.shard(a) for a in arrays)
