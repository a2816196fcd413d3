"""NNX layer of fractional max pooling."""

from __future__ import annotations

from jaxpool.nnx._base import RandomLayer

__all__ = ["FractionalMaxPool"]


class FractionalMaxPool(RandomLayer, spec="FractionalMaxPool"):
  """Fractional max pooling: ``FractionalMaxPool((2, 2), output_ratio=0.7)``.

  Training draws fresh samples per call; inference computes the exact
  expectation of the training output over the samples. See
  [`jaxpool.fractional_max_pool`][jaxpool.fractional_max_pool].

  Examples:
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> from jaxpool import nnx as jpnnx
    >>> x = jnp.arange(25.0).reshape(1, 5, 5, 1)
    >>> layer = jpnnx.FractionalMaxPool((2, 2), output_shape=(3, 3), rngs=nnx.Rngs(0))
    >>> layer(x).shape  # training: pseudo-random windows
    (1, 3, 3, 1)
    >>> y = nnx.view(layer, deterministic=True)(x)  # inference: the expectation
    >>> [round(float(v), 3) for v in y[0, 0, :, 0]]
    [6.0, 7.333, 9.0]
  """
