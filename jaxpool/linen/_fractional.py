"""Linen layer of fractional max pooling."""

from __future__ import annotations

from jaxpool.linen._base import RandomFunctionModule

__all__ = ["FractionalMaxPool"]


class FractionalMaxPool(RandomFunctionModule, spec="FractionalMaxPool"):
  """Fractional max pooling over [`jaxpool.fractional_max_pool`][jaxpool.fractional_max_pool].

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
