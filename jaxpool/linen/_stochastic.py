"""Linen layers of stochastic pooling and S3Pool."""

from __future__ import annotations

from jaxpool.linen._base import RandomFunctionModule

__all__ = ["S3Pool", "StochasticPool"]


class StochasticPool(RandomFunctionModule, spec="StochasticPool"):
  """Zeiler & Fergus stochastic pooling over [`jaxpool.stochastic_pool`][jaxpool.stochastic_pool].

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


class S3Pool(RandomFunctionModule, spec="S3Pool"):
  """S3Pool over [`jaxpool.s3_pool`][jaxpool.s3_pool].

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
