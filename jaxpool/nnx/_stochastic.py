"""NNX layers of stochastic pooling and S3Pool."""

from __future__ import annotations

from jaxpool.nnx._base import RandomLayer

__all__ = ["S3Pool", "StochasticPool"]


class StochasticPool(RandomLayer, spec="StochasticPool"):
  """Zeiler & Fergus stochastic pooling: samples in training, weights at inference.

  Examples:
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> from jaxpool import nnx as jpnnx
    >>> x = jnp.array([1.0, 3.0]).reshape(1, 2, 1)
    >>> layer = jpnnx.StochasticPool((2,), rngs=nnx.Rngs(0))
    >>> float(layer(x)[0, 0, 0]) in (1.0, 3.0)  # training: one sampled value
    True
    >>> layer.eval()
    >>> layer(x)[0, 0, 0]  # inference: (1 * 1 + 3 * 3) / (1 + 3)
    Array(2.5, dtype=float32)
  """


class S3Pool(RandomLayer, spec="S3Pool"):
  """S3Pool: ``S3Pool((2, 2), grid_shape=(16, 16), rngs=rngs)``.

  Training samples rows/columns of the stride-1 max map; inference averages
  it. See [`jaxpool.s3_pool`][jaxpool.s3_pool].

  Examples:
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> from jaxpool import nnx as jpnnx
    >>> x = jnp.ones((2, 8, 8, 3))
    >>> layer = jpnnx.S3Pool((2, 2), grid_shape=(4, 4), rngs=nnx.Rngs(0))
    >>> layer(x).shape  # training: sampled rows and columns
    (2, 4, 4, 3)
    >>> nnx.view(layer, deterministic=True)(x).shape  # inference: averaged
    (2, 4, 4, 3)
  """
