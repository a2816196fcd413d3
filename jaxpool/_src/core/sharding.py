"""Sharding helpers: arrays built inside an operator keep the input's sharding.

Under explicit sharding JAX asks reshapes and random draws for their output
sharding. The helpers here derive it from the input: batch and feature axes
keep theirs, new or resized spatial axes are unsharded.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from jax import lax

from jaxpool._src.core.checks import check_key

__all__ = ["partition_spec", "replicated", "reshape_spatial", "sharding_like", "uniform"]


def partition_spec(x) -> tuple:
  """``x``'s explicit sharding as one entry per axis (``None``: unsharded);
  all ``None`` when ``x`` is not sharded explicitly."""
  spec = tuple(jax.typeof(x).sharding.spec)
  return spec + (None,) * (jnp.ndim(x) - len(spec))


def sharding_like(like: jax.Array, shape: Sequence[int], keep: Sequence[int]):
  """An ``out_sharding`` for an array of ``shape`` made from ``like``.

  Axes in ``keep`` (same rank as ``like``) take ``like``'s sharding, the
  others are unsharded. ``None`` where JAX has no sharding-in-types, or for
  ranks that differ.
  """
  if like is None or len(shape) != like.ndim:
    return None
  sharding = jax.typeof(like).sharding
  spec = partition_spec(like)
  keep = {a % like.ndim for a in keep}
  return jax.sharding.NamedSharding(
    sharding.mesh,
    jax.sharding.PartitionSpec(
      *(s if a in keep and shape[a] == like.shape[a] else None for a, s in enumerate(spec))
    ),
  )


def reshape_spatial(x: jax.Array, shape: Sequence[int], batch: int) -> jax.Array:
  """Reshapes the spatial axes of ``x``, keeping batch and feature sharding.

  Under explicit sharding JAX asks reshapes for their output sharding: the
  batch axes and the feature axis keep theirs, the new spatial axes are
  unsharded.
  """
  shape = tuple(shape)
  spec = partition_spec(x)
  if not any(spec):
    return x.reshape(shape)
  new = spec[:batch] + (None,) * (len(shape) - batch - 1) + spec[-1:]
  mesh = jax.typeof(x).sharding.mesh
  out = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(*new))
  return lax.reshape(x, shape, out_sharding=out)


def replicated(x: jax.Array) -> jax.Array:
  """``x`` resharded to every device when it is sharded explicitly.

  For gathers whose indices may point anywhere in ``x`` (a box may read any
  image of the batch): the all-gather is the data movement the gather needs
  anyway, and its transpose scatters the gradient back to ``x``'s sharding.
  """
  if not any(partition_spec(x)):
    return x
  return jax.sharding.reshard(x, jax.sharding.PartitionSpec())


def uniform(key, shape, like=None, keep: Sequence[int] = (), dtype=None):
  """``U[0, 1)`` draws of ``shape`` with ``like``'s sharding on ``keep`` axes.

  ``key`` is validated first (`check_key`), so a malformed key is a
  clear error naming ``key``, not a PRNG internal one.
  """
  check_key(key)
  shape = tuple(shape)
  dtype = jax.numpy.float32 if dtype is None else dtype
  sharding = sharding_like(like, shape, keep)
  return jax.random.uniform(key, shape, dtype, out_sharding=sharding)
