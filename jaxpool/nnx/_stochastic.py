"""NNX layers of stochastic pooling and S3Pool."""

from __future__ import annotations

import jaxpool
from jaxpool._src.core.checks import check_unpadded
from jaxpool.nnx._base import RandomLayer, function_layer
from jaxpool.nnx._registry import register_pool

__all__ = ["S3Pool", "StochasticPool"]


@function_layer(jaxpool.stochastic_pool)
class StochasticPool(RandomLayer):
  """Zeiler & Fergus stochastic pooling: samples in training, weights at inference."""


@function_layer(jaxpool.s3_pool)
class S3Pool(RandomLayer):
  """S3Pool: ``S3Pool((2, 2), grid_shape=(16, 16), rngs=rngs)``.

  Training samples rows/columns of the stride-1 max map; inference averages
  it. See :func:`jaxpool.s3_pool`.
  """

  @classmethod
  def from_window(cls, window_shape, strides=None, padding="VALID", *,
                  features=None, rngs=None, **options):
    """The layer :func:`make_pool` builds: down-sampling by ``strides``."""
    del features
    check_unpadded(cls.__name__, padding)
    return cls(window_shape, strides, rngs=rngs, **options)


register_pool("stochastic", StochasticPool)
register_pool("s3", S3Pool)
