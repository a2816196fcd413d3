"""NNX layer of NetVLAD."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

import jaxpool
from jaxpool._src import netvlad
from jaxpool._src.core import checks
from jaxpool._src.core.checks import check_bool, check_choice
from jaxpool.nnx._base import PoolLayer, require_rngs

__all__ = ["NetVLAD"]


class NetVLAD(PoolLayer, spec="NetVLAD"):
  r"""NetVLAD head: [`jaxpool.netvlad`][jaxpool.netvlad] with learned centres and soft
  assignment.

  With ``descriptors`` (sample feature vectors, ``(..., features)``, e.g.
  the backbone's output on a few training images) the layer starts from
  k-means on them, as the official code: ``variant="v2"`` (the paper,
  $w_k = 2 \alpha c_k$, $b_k = -\alpha \lVert c_k \rVert^2$) or ``"v1"`` (the
  official ``layerVLAD``, $w_k = \alpha c_k / \lVert c_k \rVert$, $b_k = 0$;
  the bias then stays 0 and is not learned); see
  `jaxpool._src.netvlad.init_netvlad_params`. Without descriptors it
  starts from random unit centres (call `initialize` with descriptors
  later). The popular port's v2 bugs (neighbour *indices* used as distances,
  $-\alpha \lVert c_k \rVert$ for $-\alpha \lVert c_k \rVert^2$) are not reproduced.

  Args:
    features: descriptor size $D$.
    clusters: $K$.
    descriptors: sample descriptors for the k-means start, or ``None``.
    variant: ``"v2"`` or ``"v1"``.
    normalize_input: L2-normalise each descriptor first (the official
      default).
    kmeans_iterations: Lloyd steps of the start.
    rngs: for the k-means seeding or the random start (stream ``'params'``).

  Examples:
    >>> import jax, jax.numpy as jnp
    >>> from flax import nnx
    >>> from jaxpool import nnx as jpnnx
    >>> sample = jax.random.normal(jax.random.key(1), (200, 8))
    >>> head = jpnnx.NetVLAD(features=8, clusters=4, descriptors=sample, rngs=nnx.Rngs(0))
    >>> head(jnp.ones((2, 5, 5, 8))).shape
    (2, 32)
  """

  def __init__(
    self,
    *,
    features: int,
    clusters: int,
    descriptors=None,
    variant: str = "v2",
    normalize_input: bool = True,
    kmeans_iterations: int = 20,
    spatial_ndim: int | None = None,
    rngs: nnx.Rngs | None = None,
  ):
    self.features = checks.check_features("NetVLAD", features)
    self.clusters = netvlad.check_clusters(clusters)
    check_choice("variant", variant, netvlad.NETVLAD_VARIANTS)
    self.variant = variant
    self.normalize_input = check_bool("normalize_input", normalize_input)
    self.kmeans_iterations = netvlad.check_kmeans_iterations(kmeans_iterations)
    self.spatial_ndim = spatial_ndim
    rngs = require_rngs("NetVLAD", rngs)
    params = netvlad.init_netvlad_random(rngs.params(), self.features, self.clusters)
    self.centers = nnx.Param(params["centers"])
    self.assign_weights = nnx.Param(params["assign_weights"])
    self.assign_bias = nnx.Param(params["assign_bias"]) if variant == "v2" else None
    if descriptors is not None:
      self.initialize(descriptors, key=rngs.params())

  def initialize(self, descriptors: jax.typing.ArrayLike, *, key: jax.Array) -> None:
    """Restarts the centres and assignment from k-means on ``descriptors``
    (``(..., features)``)."""
    descriptors = jnp.asarray(descriptors)
    if descriptors.shape[-1] != self.features:
      raise ValueError(
        f"NetVLAD(features={self.features}) got descriptors with"
        f" {descriptors.shape[-1]} features (shape {descriptors.shape})."
      )
    params = netvlad.init_netvlad_params(
      key,
      descriptors,
      self.clusters,
      variant=self.variant,
      normalize_input=self.normalize_input,
      iterations=self.kmeans_iterations,
    )
    self.centers[...] = params["centers"]
    self.assign_weights[...] = params["assign_weights"]
    if self.assign_bias is not None:
      self.assign_bias[...] = params["assign_bias"]

  def __call__(self, x: jax.typing.ArrayLike) -> jax.Array:
    bias = None if self.assign_bias is None else self.assign_bias[...]
    return jaxpool.netvlad(
      x,
      self.centers[...],
      assign_weights=self.assign_weights[...],
      assign_bias=bias,
      normalize_input=self.normalize_input,
      spatial_ndim=self.spatial_ndim,
    )
