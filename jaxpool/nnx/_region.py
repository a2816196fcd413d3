"""NNX layers of region pooling: RoIPool, RoIAlign, multi-scale RoIAlign and
the position-sensitive PSRoIAlign and PSRoIPool.
Called as ``layer(x, boxes)``."""

from __future__ import annotations

from jaxpool.nnx._base import FunctionLayer

__all__ = ["MultiScaleRoIAlign", "PSRoIAlign", "PSRoIPool", "RoIAlign", "RoIPool"]


class RoIPool(FunctionLayer, spec="RoIPool"):
  """RoIPool (Fast R-CNN): ``RoIPool(7, spatial_scale=1 / 16)(x, boxes)``.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxpool import nnx as jpnnx
    >>> x = jnp.arange(16.0).reshape(1, 4, 4, 1)
    >>> boxes = jnp.array([[0, 0, 0, 3, 3], [0, 2, 2, 3, 3]])  # (batch, x1, y1, x2, y2)
    >>> jpnnx.RoIPool(2)(x, boxes)[..., 0]
    Array([[[ 5.,  7.],
            [13., 15.]],
    <BLANKLINE>
           [[10., 11.],
            [14., 15.]]], dtype=float32)
  """


class RoIAlign(FunctionLayer, spec="RoIAlign"):
  """RoIAlign (Mask R-CNN): ``RoIAlign(7, spatial_scale=1 / 16,
  sampling_ratio=2)(x, boxes)``.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxpool import nnx as jpnnx
    >>> x = jnp.arange(16.0).reshape(1, 4, 4, 1)
    >>> boxes = jnp.array([[0, 0.0, 0.0, 2.0, 2.0]])  # (batch, x1, y1, x2, y2)
    >>> jpnnx.RoIAlign(2, aligned=True)(x, boxes)[0, ..., 0]
    Array([[0., 1.],
           [4., 5.]], dtype=float32)
    >>> jpnnx.RoIAlign(7, sampling_ratio=2)(x, boxes).shape
    (1, 7, 7, 1)
  """


class MultiScaleRoIAlign(FunctionLayer, spec="MultiScaleRoIAlign"):
  """RoIAlign over an FPN pyramid: ``MultiScaleRoIAlign(7, image_shape=(800,
  800), sampling_ratio=2)(levels, boxes)``, ``levels`` finest first.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxpool import nnx as jpnnx
    >>> levels = [jnp.ones((1, 64, 64, 8)), jnp.ones((1, 32, 32, 8))]  # strides 4, 8
    >>> boxes = jnp.array([[0, 0, 0, 50, 50], [0, 0, 0, 250, 250]])
    >>> layer = jpnnx.MultiScaleRoIAlign(7, image_shape=(256, 256), sampling_ratio=2)
    >>> layer(levels, boxes).shape
    (2, 7, 7, 8)
  """


class PSRoIAlign(FunctionLayer, spec="PSRoIAlign"):
  """Position-sensitive RoIAlign (R-FCN): ``PSRoIAlign(7, spatial_scale=1 /
  16, sampling_ratio=2)(x, boxes)``, ``x`` with ``7 * 7 * c`` features.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxpool import nnx as jpnnx
    >>> x = jnp.broadcast_to(jnp.arange(4.0), (1, 4, 4, 4))  # feature i holds i
    >>> boxes = jnp.array([[0, 0.0, 0.0, 4.0, 4.0]])  # (batch, x1, y1, x2, y2)
    >>> jpnnx.PSRoIAlign(2)(x, boxes)[0, ..., 0]  # bin (p, q) reads feature 2 p + q
    Array([[0., 1.],
           [2., 3.]], dtype=float32)
  """


class PSRoIPool(FunctionLayer, spec="PSRoIPool"):
  """Position-sensitive RoIPool (R-FCN): ``PSRoIPool(7, spatial_scale=1 /
  16)(x, boxes)``, ``x`` with ``7 * 7 * c`` features.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxpool import nnx as jpnnx
    >>> x = jnp.broadcast_to(jnp.arange(4.0), (1, 5, 5, 4))  # feature i holds i
    >>> boxes = jnp.array([[0, 0, 0, 4, 4]])  # (batch, x1, y1, x2, y2)
    >>> jpnnx.PSRoIPool(2)(x, boxes)[0, ..., 0]  # bin (p, q) reads feature 2 p + q
    Array([[0., 1.],
           [2., 3.]], dtype=float32)
  """
