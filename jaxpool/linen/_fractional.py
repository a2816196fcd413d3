"""Linen layer of fractional max pooling."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Literal

import jax

import jaxpool
from jaxpool._src import fractional
from jaxpool._src.core.checks import check_choice, check_unpadded
from jaxpool.linen._base import RandomModule
from jaxpool.linen._registry import register_pool

__all__ = ["FractionalMaxPool"]


class FractionalMaxPool(RandomModule):
  """Fractional max pooling over :func:`jaxpool.fractional_max_pool`.

  Examples:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> from jaxpool import linen as jplinen
    >>> layer = jplinen.FractionalMaxPool((2, 2), output_shape=(3, 3))
    >>> x = jnp.arange(25.0).reshape(1, 5, 5, 1)
    >>> y = layer.apply({}, x, deterministic=False, rngs={"pool": jax.random.key(0)})
    >>> y.shape, bool(jnp.isin(y, x).all())  # random regions, maxima of x
    ((1, 3, 3, 1), True)
    >>> y = layer.apply({}, x, deterministic=True)  # the mean over the regions
    >>> [round(float(v), 3) for v in y[0, 0, :, 0]]
    [6.0, 7.333, 9.0]
  """

  window_shape: Sequence[int] | None = None
  _: dataclasses.KW_ONLY
  output_shape: Sequence[int] | None = None
  output_ratio: float | Sequence[float] | None = None
  regions: Literal["torch", "pseudorandom", "random"] = "torch"
  overlapping: bool = False
  deterministic: bool | None = None
  rng_collection: str = "pool"

  def __post_init__(self):
    check_choice("regions", self.regions, ("torch", "pseudorandom", "random"))
    super().__post_init__()

  @classmethod
  def from_window(cls, window_shape, strides=None, padding="VALID", *,
                  overlap: int = 1, regions: str = "torch", **options):
    """The layer ``make_pool`` builds: average stride ``strides``.

    See :meth:`jaxpool.nnx.FractionalMaxPool.from_window`.
    """
    check_unpadded(cls.__name__, padding)
    arguments = fractional.layer_arguments(
        window_shape, strides, overlap=overlap, regions=regions
    )
    return cls(arguments.pop("window_shape", None), **arguments, **options)

  def __call__(
      self, x: jax.typing.ArrayLike, deterministic: bool | None = None
  ) -> jax.Array:
    return jaxpool.fractional_max_pool(
        x, self.window_shape, output_shape=self.output_shape,
        output_ratio=self.output_ratio, regions=self.regions,
        overlapping=self.overlapping, key=self.key(deterministic),
    )


register_pool("fractional", FractionalMaxPool)
