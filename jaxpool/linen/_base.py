"""Base classes of the Linen layers: window fields, random-key plumbing."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
from flax import linen as nn

from jaxpool._src.core.geometry import PaddingLike

__all__ = ["LOSSES", "PoolModule", "RandomModule", "WindowModule", "auxiliary_loss"]

# The collection layers sow their auxiliary training losses into.
LOSSES = "losses"


class PoolModule(nn.Module):
  """Base of every jaxpool Linen layer."""

  @property
  def feature_multiplier(self) -> int:
    """Output features per input feature (2 for concatenating layers)."""
    return 1

  @classmethod
  def from_window(cls, window_shape, strides=None, padding="VALID", **options):
    """The layer :func:`jaxpool.linen.make_pool` builds for a window (by
    default ``cls(window_shape, strides, padding, **options)``)."""
    return cls(window_shape, strides, padding, **options)


class WindowModule(PoolModule):
  """Fields shared by the sliding-window layers (see :func:`jaxpool.max_pool`):
  the window triple positional, the rest keyword-only."""

  window_shape: Sequence[int]
  strides: int | Sequence[int] | None = None
  padding: PaddingLike = "VALID"
  _: dataclasses.KW_ONLY
  dilation: int | Sequence[int] | None = None
  ceil_mode: bool = False

  def window(self) -> dict:
    return dict(
        window_shape=self.window_shape, strides=self.strides,
        padding=self.padding, dilation=self.dilation, ceil_mode=self.ceil_mode,
    )


class RandomModule(PoolModule):
  """Dropout-style mode and key handling shared by the random layers: a
  ``deterministic`` field or call argument, keys from the ``rng_collection``
  stream (``'pool'``)."""

  def key(self, deterministic: bool | None) -> jax.Array | None:
    """A key from the ``rng_collection`` stream, or ``None`` when deterministic."""
    deterministic = nn.merge_param("deterministic", self.deterministic, deterministic)
    return None if deterministic else self.make_rng(self.rng_collection)


def auxiliary_loss(state: Mapping) -> jax.Array:
  """The sum of the auxiliary training losses the layers sowed into the
  ``'losses'`` collection (e.g. each :class:`LiftDownPool`'s
  ``lambda_u * c_u + lambda_p * c_p``).

  Args:
    state: the variables returned by ``apply(..., mutable=['losses'])`` (or
      any variables mapping: only its ``'losses'`` collection is read).

  Returns:
    A float32 scalar; 0 when nothing was sown.
  """
  if not isinstance(state, Mapping):
    raise TypeError(
        "auxiliary_loss expects the variables returned by"
        f" apply(..., mutable=['losses']); got {type(state).__name__}."
    )
  leaves = jax.tree.leaves(state.get(LOSSES, {}))
  return sum((jnp.sum(leaf).astype(jnp.float32) for leaf in leaves), jnp.zeros((), jnp.float32))
