"""NNX layers of the generalised means: GeM, LSE pooling (learned strength)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from jaxpool._src import means
from jaxpool._src.core import checks
from jaxpool.nnx._base import PoolLayer

__all__ = ["GeM", "LSEPool"]


class _LearnedMean(PoolLayer):
  """A generalised mean with a learned strength ``strength_name``: one
  parameter, or one per feature."""

  strength_name = ""

  def __init__(
    self,
    strength: float,
    per_feature: bool,
    features,
    pool_options: dict,
    rngs,
  ):
    del rngs  # deterministic initialisation
    owner = type(self).__name__
    shape = checks.per_feature_shape(owner, per_feature, features)
    self.pool_options = pool_options
    means.check_layer_options(owner, type(self).spec.function, strength, pool_options)
    setattr(self, self.strength_name, nnx.Param(jnp.full(shape, strength, jnp.float32)))

  def __call__(self, x: jax.typing.ArrayLike) -> jax.Array:
    strength = getattr(self, self.strength_name)[...]
    return type(self).spec.function(x, strength, **self.pool_options)


class GeM(_LearnedMean, spec="GeM"):
  r"""Generalised-mean pooling with a learned power $p$, over
  [`jaxpool.gem_pool`][jaxpool.gem_pool]: cirtorch's ``GeM(p=3)`` (one
  $p$) and ``GeMmp`` (``per_feature=True``: one $p$ per feature).

  Args:
    window_shape: ``None`` (default): global, ``(batch, features)``; or a
      sliding window.
    strides: the window's step.
    padding: the window's padding.
    p: the initial power (default 3.0, as cirtorch).
    per_feature: one $p$ per feature (needs ``features``).
    features: number of input features (with ``per_feature``).
    eps: the clamp before the power (default ``1e-6``).
    spatial_ndim: the spatial axes of global pooling (``None``: 1 to -2).
    rngs: unused (deterministic initialisation).

  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxpool import nnx as jpnnx
    >>> head = jpnnx.GeM(p=3.0)
    >>> head(jnp.ones((2, 7, 7, 16))).shape, head.p[...]
    ((2, 16), Array(3., dtype=float32))
    >>> jpnnx.GeM(per_feature=True, features=16).p.shape
    (16,)
  """

  strength_name = "p"

  def __init__(
    self,
    window_shape=None,
    strides=None,
    padding="VALID",
    *,
    p: float = 3.0,
    per_feature: bool = False,
    features: int | None = None,
    eps: float = 1e-6,
    spatial_ndim: int | None = None,
    rngs: nnx.Rngs | None = None,
  ):
    options = dict(
      window_shape=window_shape,
      strides=strides,
      padding=padding,
      eps=eps,
      spatial_ndim=spatial_ndim,
    )
    super().__init__(p, per_feature, features, options, rngs)


class LSEPool(_LearnedMean, spec="LSEPool"):
  r"""Log-sum-exp pooling with a learned sharpness $r$, over
  [`jaxpool.lse_pool`][jaxpool.lse_pool]: timm's ``LsePlus2d(r=10.0,
  r_learnable=True)``.

  Args:
    window_shape: ``None`` (default): global, ``(batch, features)``; or a
      sliding window.
    strides: the window's step.
    padding: the window's padding.
    r: the initial sharpness (default 10.0, as timm).
    per_feature: one $r$ per feature (needs ``features``).
    features: number of input features (with ``per_feature``).
    spatial_ndim: the spatial axes of global pooling (``None``: 1 to -2).
    rngs: unused (deterministic initialisation).

  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxpool import nnx as jpnnx
    >>> jpnnx.LSEPool(r=10.0)(jnp.ones((2, 7, 7, 16))).shape
    (2, 16)
  """

  strength_name = "r"

  def __init__(
    self,
    window_shape=None,
    strides=None,
    padding="VALID",
    *,
    r: float = 10.0,
    per_feature: bool = False,
    features: int | None = None,
    spatial_ndim: int | None = None,
    rngs: nnx.Rngs | None = None,
  ):
    options = dict(
      window_shape=window_shape, strides=strides, padding=padding, spatial_ndim=spatial_ndim
    )
    super().__init__(r, per_feature, features, options, rngs)
