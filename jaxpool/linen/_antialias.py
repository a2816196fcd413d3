"""Linen layers of anti-aliased downsampling: BlurPool, MaxBlurPool."""

from __future__ import annotations

from jaxpool.linen._base import FunctionModule

__all__ = ["BlurPool", "MaxBlurPool"]


class BlurPool(FunctionModule, spec="BlurPool"):
  """Anti-aliased downsampling layer over [`jaxpool.blur_pool`][jaxpool.blur_pool]:
  ``BlurPool((3, 3), 2)`` is timm's ``BlurPool2d(filt_size=3, stride=2)``.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxpool import linen as jplinen
    >>> jplinen.BlurPool((3, 3), 2).apply({}, jnp.ones((1, 8, 8, 4))).shape
    (1, 4, 4, 4)
  """


class MaxBlurPool(FunctionModule, spec="MaxBlurPool"):
  """Zhang's MaxBlurPool over [`jaxpool.max_blur_pool`][jaxpool.max_blur_pool]:
  max pooling at stride 1, then a binomial blur at ``strides``.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxpool import linen as jplinen
    >>> jplinen.MaxBlurPool((2, 2), 2).apply({}, jnp.ones((1, 8, 8, 4))).shape
    (1, 4, 4, 4)
  """
