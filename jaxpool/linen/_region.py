"""Linen layers of region pooling: RoIPool, RoIAlign, multi-scale RoIAlign and
the position-sensitive PSRoIAlign and PSRoIPool.
Called as ``layer(x, boxes)``."""

from __future__ import annotations

from jaxpool.linen._base import FunctionModule

__all__ = ["MultiScaleRoIAlign", "PSRoIAlign", "PSRoIPool", "RoIAlign", "RoIPool"]


class RoIPool(FunctionModule, spec="RoIPool"):
  """RoIPool over [`jaxpool.roi_pool`][jaxpool.roi_pool]: ``layer(x, boxes)``.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxpool import linen as jplinen
    >>> x = jnp.arange(16.0).reshape(1, 4, 4, 1)
    >>> boxes = jnp.array([[0, 0, 0, 3, 3], [0, 2, 2, 3, 3]])  # (batch, x1, y1, x2, y2)
    >>> jplinen.RoIPool(2).apply({}, x, boxes)[..., 0]
    Array([[[ 5.,  7.],
            [13., 15.]],
    <BLANKLINE>
           [[10., 11.],
            [14., 15.]]], dtype=float32)
  """


class RoIAlign(FunctionModule, spec="RoIAlign"):
  """RoIAlign over [`jaxpool.roi_align`][jaxpool.roi_align]: ``layer(x, boxes)``.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxpool import linen as jplinen
    >>> x = jnp.arange(16.0).reshape(1, 4, 4, 1)
    >>> boxes = jnp.array([[0, 0.0, 0.0, 2.0, 2.0]])
    >>> jplinen.RoIAlign(2).apply({}, x, boxes)[0, ..., 0]  # one sample per bin
    Array([[2.5, 3.5],
           [6.5, 7.5]], dtype=float32)
    >>> jplinen.RoIAlign(2, aligned=True).apply({}, x, boxes)[0, ..., 0]
    Array([[0., 1.],
           [4., 5.]], dtype=float32)
  """


class MultiScaleRoIAlign(FunctionModule, spec="MultiScaleRoIAlign"):
  """RoIAlign over an FPN pyramid, [`jaxpool.multi_scale_roi_align`][jaxpool.multi_scale_roi_align]:
  ``layer(levels, boxes)``, ``levels`` finest first.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxpool import linen as jplinen
    >>> pyramid = [jnp.ones((1, 64, 64, 8)), jnp.full((1, 32, 32, 8), 2.0)]  # strides 4, 8
    >>> boxes = jnp.array([[0, 0, 0, 50, 50], [0, 0, 0, 250, 250]])
    >>> layer = jplinen.MultiScaleRoIAlign(7, image_shape=(256, 256))
    >>> y = layer.apply({}, pyramid, boxes)
    >>> y.shape, y[:, 0, 0, 0]  # the small box reads level 0, the large one level 1
    ((2, 7, 7, 8), Array([1., 2.], dtype=float32))
  """


class PSRoIAlign(FunctionModule, spec="PSRoIAlign"):
  """Position-sensitive RoIAlign over [`jaxpool.ps_roi_align`][jaxpool.ps_roi_align]:
  ``layer(x, boxes)``.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxpool import linen as jplinen
    >>> x = jnp.broadcast_to(jnp.arange(4.0), (1, 4, 4, 4))  # feature i holds i
    >>> boxes = jnp.array([[0, 0.0, 0.0, 4.0, 4.0]])  # (batch, x1, y1, x2, y2)
    >>> jplinen.PSRoIAlign(2).apply({}, x, boxes)[0, ..., 0]  # bin (p, q) reads feature 2 p + q
    Array([[0., 1.],
           [2., 3.]], dtype=float32)
  """


class PSRoIPool(FunctionModule, spec="PSRoIPool"):
  """Position-sensitive RoIPool over [`jaxpool.ps_roi_pool`][jaxpool.ps_roi_pool]:
  ``layer(x, boxes)``.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxpool import linen as jplinen
    >>> x = jnp.broadcast_to(jnp.arange(4.0), (1, 5, 5, 4))  # feature i holds i
    >>> boxes = jnp.array([[0, 0, 0, 4, 4]])  # (batch, x1, y1, x2, y2)
    >>> jplinen.PSRoIPool(2).apply({}, x, boxes)[0, ..., 0]  # bin (p, q) reads feature 2 p + q
    Array([[0., 1.],
           [2., 3.]], dtype=float32)
  """
