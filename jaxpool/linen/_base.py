"""Base classes of the Linen layers: window fields, random-key plumbing."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
from flax import linen as nn

from jaxpool._src.core.geometry import PaddingLike

__all__ = ["PoolModule", "RandomModule", "WindowModule"]


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
