"""NNX layers of bilinear and compact bilinear pooling."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

import jaxpool
from jaxpool._src.bilinear import count_sketches
from jaxpool._src.core import checks
from jaxpool.nnx._base import PoolLayer, require_rngs

__all__ = ["BilinearPool", "CompactBilinearPool"]


class BilinearPool(PoolLayer, spec="BilinearPool"):
  """Bilinear pooling head: [`jaxpool.bilinear_pool`][jaxpool.bilinear_pool] (``layer(x)`` or
  ``layer(x, y)``), no parameters.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxpool import nnx as jpnnx
    >>> jpnnx.BilinearPool()(jnp.ones((2, 3, 3, 4))).shape
    (2, 16)
  """

  def __init__(self, *, normalize: bool = True, eps: float = 0.0, spatial_ndim: int | None = None):
    self.pool_options = dict(normalize=normalize, eps=eps, spatial_ndim=spatial_ndim)
    jax.eval_shape(lambda: jaxpool.bilinear_pool(jnp.zeros((1, 1, 1)), **self.pool_options))

  def __call__(self, x: jax.typing.ArrayLike, y: jax.typing.ArrayLike | None = None) -> jax.Array:
    return jaxpool.bilinear_pool(x, y, **self.pool_options)


class Sketch(nnx.Variable):
  """A fixed count sketch (hashes or signs) of a [`CompactBilinearPool`][jaxpool.nnx.CompactBilinearPool]:
  drawn once from ``rngs``, never trained.

  Examples:
    >>> import jax
    >>> from flax import nnx
    >>> from jaxpool import nnx as jpnnx
    >>> head = jpnnx.CompactBilinearPool(features=8, output_dim=64, rngs=nnx.Rngs(0))
    >>> sorted(nnx.state(head, jpnnx.Sketch).keys())
    ['hash_x', 'hash_y', 'sign_x', 'sign_y']
    >>> isinstance(head.hash_x, jpnnx.Sketch), head.hash_x.shape
    (True, (8,))
    >>> jax.tree.leaves(nnx.state(head, nnx.Param))  # nothing to train
    []
  """


class CompactBilinearPool(PoolLayer, spec="CompactBilinearPool"):
  """Compact bilinear pooling head (Tensor Sketch):
  [`jaxpool.compact_bilinear_pool`][jaxpool.compact_bilinear_pool] with the two count sketches drawn
  once from ``rngs`` and kept as non-trainable [`Sketch`][jaxpool.nnx.Sketch] state (so an
  optimiser over ``nnx.Param`` leaves them alone and checkpoints keep them).

  Args:
    features: input features of ``x``.
    output_dim: the sketch size ``D``.
    features_y: input features of ``y`` (default ``features``).
    normalize: apply the signed square root and L2 normalisation (default
      ``True``), as in
      [`jaxpool.compact_bilinear_pool`][jaxpool.compact_bilinear_pool].
    eps: added inside the square root; default 0 (exact).
    spatial_ndim: the number of spatial axes before the features; ``None``
      (default) means axes 1 to -2 (one batch axis).
    rngs: draws the sketches (stream ``'params'``).

  Examples:
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> from jaxpool import nnx as jpnnx
    >>> head = jpnnx.CompactBilinearPool(features=8, output_dim=64, rngs=nnx.Rngs(0))
    >>> head(jnp.ones((2, 3, 3, 8))).shape
    (2, 64)
  """

  def __init__(
    self,
    *,
    features: int,
    output_dim: int,
    features_y: int | None = None,
    normalize: bool = True,
    eps: float = 0.0,
    spatial_ndim: int | None = None,
    rngs: nnx.Rngs | None = None,
  ):
    features = checks.check_features("CompactBilinearPool", features)
    features_y = (
      features
      if features_y is None
      else checks.check_features("CompactBilinearPool(features_y=...)", features_y)
    )
    self.pool_options = dict(
      output_dim=output_dim, normalize=normalize, eps=eps, spatial_ndim=spatial_ndim
    )
    rngs = require_rngs("CompactBilinearPool", rngs)
    jax.eval_shape(
      lambda: jaxpool.compact_bilinear_pool(
        jnp.zeros((1, 1, 1)), key=jax.random.key(0), **self.pool_options
      )
    )
    (h1, s1), (h2, s2) = count_sketches(rngs.params(), (features, features_y), output_dim)
    self.hash_x, self.sign_x = Sketch(h1), Sketch(s1)
    self.hash_y, self.sign_y = Sketch(h2), Sketch(s2)

  def sketches(self):
    """``((h1, s1), (h2, s2))`` for [`jaxpool.compact_bilinear_pool`][jaxpool.compact_bilinear_pool]."""
    return ((self.hash_x[...], self.sign_x[...]), (self.hash_y[...], self.sign_y[...]))

  def __call__(self, x: jax.typing.ArrayLike, y: jax.typing.ArrayLike | None = None) -> jax.Array:
    return jaxpool.compact_bilinear_pool(x, y, sketches=self.sketches(), **self.pool_options)
