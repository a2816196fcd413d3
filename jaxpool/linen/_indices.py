"""Linen layers of max pooling with indices and max unpooling."""

from __future__ import annotations

from collections.abc import Sequence

import jax

import jaxpool
from jaxpool.linen._base import PoolModule, WindowModule

__all__ = ["MaxPoolWithIndices", "MaxUnpool"]


class MaxPoolWithIndices(WindowModule):
  """Max pooling returning ``(values, indices)``; see :class:`MaxUnpool`."""

  def __call__(self, x: jax.typing.ArrayLike) -> tuple[jax.Array, jax.Array]:
    return jaxpool.max_pool_with_indices(x, **self.window())


class MaxUnpool(PoolModule):
  """Max unpooling over :func:`jaxpool.max_unpool`: ``layer(values, indices)``."""

  output_shape: Sequence[int]

  def __call__(
      self, x: jax.typing.ArrayLike, indices: jax.typing.ArrayLike
  ) -> jax.Array:
    return jaxpool.max_unpool(x, indices, self.output_shape)
