"""NNX layer of fractional max pooling."""

from __future__ import annotations

import jaxpool
from jaxpool._src import fractional
from jaxpool._src.core.checks import check_unpadded
from jaxpool.nnx._base import RandomLayer, function_layer
from jaxpool.nnx._registry import register_pool

__all__ = ["FractionalMaxPool"]


@function_layer(jaxpool.fractional_max_pool)
class FractionalMaxPool(RandomLayer):
  """Fractional max pooling: ``FractionalMaxPool((2, 2), output_ratio=0.7)``.

  Training draws fresh samples per call; inference computes the exact
  expectation of the training output over the samples. See
  :func:`jaxpool.fractional_max_pool`.

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

  @classmethod
  def from_window(cls, window_shape, strides=None, padding="VALID", *,
                  features=None, rngs=None, overlap: int = 1,
                  regions: str = "torch", **options):
    """The layer :func:`make_pool` builds: average stride ``strides``, with
    torch's windows of ``window_shape + overlap`` (default 1, which makes
    the starts pseudo-random at an integer ratio)."""
    del features
    check_unpadded(cls.__name__, padding)
    arguments = fractional.layer_arguments(
        window_shape, strides, overlap=overlap, regions=regions
    )
    return cls(arguments.pop("window_shape", None), rngs=rngs, **arguments, **options)


register_pool("fractional", FractionalMaxPool)
