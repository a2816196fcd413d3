"""Linen layers of stochastic pooling and S3Pool."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Literal

import jax

import jaxpool
from jaxpool._src.core.checks import check_choice, check_unpadded
from jaxpool.linen._base import RandomModule, WindowModule
from jaxpool.linen._registry import register_pool

__all__ = ["S3Pool", "StochasticPool"]


class StochasticPool(WindowModule, RandomModule):
  """Zeiler & Fergus stochastic pooling over :func:`jaxpool.stochastic_pool`.

  Examples:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> from jaxpool import linen as jplinen
    >>> layer = jplinen.StochasticPool((2,))
    >>> x = jnp.array([1.0, 3.0]).reshape(1, 2, 1)
    >>> layer.apply({}, x, deterministic=True)  # (1 + 9) / (1 + 3)
    Array([[[2.5]]], dtype=float32)
    >>> y = layer.apply({}, x, deterministic=False, rngs={"pool": jax.random.key(0)})
    >>> float(y[0, 0, 0]) in (1.0, 3.0)  # one sampled element of the window
    True
  """

  _: dataclasses.KW_ONLY
  deterministic: bool | None = None
  rng_collection: str = "pool"

  def __call__(
      self, x: jax.typing.ArrayLike, deterministic: bool | None = None
  ) -> jax.Array:
    return jaxpool.stochastic_pool(x, key=self.key(deterministic), **self.window())


class S3Pool(RandomModule):
  """S3Pool over :func:`jaxpool.s3_pool`.

  Examples:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> from jaxpool import linen as jplinen
    >>> layer = jplinen.S3Pool((2, 2))
    >>> x = jnp.arange(16.0).reshape(1, 4, 4, 1)
    >>> y = layer.apply({}, x, deterministic=False, rngs={"pool": jax.random.key(0)})
    >>> y.shape
    (1, 2, 2, 1)
    >>> layer.apply({}, x, deterministic=True)[0, ..., 0]  # inference: averaging
    Array([[ 7.5,  9. ],
           [13.5, 15. ]], dtype=float32)
  """

  window_shape: Sequence[int]
  strides: Sequence[int] | None = None
  _: dataclasses.KW_ONLY
  grid_shape: Sequence[int] | None = None
  shared: bool = True
  inference: Literal["average", "official"] = "average"
  deterministic: bool | None = None
  rng_collection: str = "pool"

  def __post_init__(self):
    check_choice("inference", self.inference, ("average", "official"))
    super().__post_init__()

  @classmethod
  def from_window(cls, window_shape, strides=None, padding="VALID", **options):
    """The layer ``make_pool`` builds: down-sampling by ``strides``."""
    check_unpadded(cls.__name__, padding)
    return cls(window_shape, strides, **options)

  def __call__(
      self, x: jax.typing.ArrayLike, deterministic: bool | None = None
  ) -> jax.Array:
    return jaxpool.s3_pool(
        x, self.window_shape, self.strides, grid_shape=self.grid_shape,
        shared=self.shared, inference=self.inference,
        key=self.key(deterministic),
    )


register_pool("stochastic", StochasticPool)
register_pool("s3", S3Pool)
