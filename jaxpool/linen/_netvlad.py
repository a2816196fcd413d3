"""Linen layer of NetVLAD."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
from flax import linen as nn

import jaxpool
from jaxpool._src import netvlad
from jaxpool._src.core.checks import check_bool, check_choice
from jaxpool.linen._base import PoolModule

__all__ = ["NetVLAD"]


class NetVLAD(PoolModule, spec="NetVLAD"):
  """NetVLAD head (see [`jaxpool.nnx.NetVLAD`][jaxpool.nnx.NetVLAD]): one ``vlad``
  parameter dict (``centers``, ``assign_weights`` and, for ``variant="v2"``,
  ``assign_bias``), started from k-means on ``descriptors`` when given (else
  random unit centres), by the same functions as the NNX layer.

  Examples:
    >>> import jax, jax.numpy as jnp
    >>> from jaxpool import linen as jplinen
    >>> sample = jax.random.normal(jax.random.key(1), (200, 8))
    >>> head = jplinen.NetVLAD(clusters=4, descriptors=sample)
    >>> x = jnp.ones((2, 5, 5, 8))
    >>> head.apply(head.init(jax.random.key(0), x), x).shape
    (2, 32)
  """

  _: dataclasses.KW_ONLY
  clusters: int
  descriptors: Any = None
  variant: str = "v2"
  normalize_input: bool = True
  kmeans_iterations: int = 20
  spatial_ndim: int | None = None

  def __post_init__(self):
    netvlad.check_clusters(self.clusters)
    check_choice("variant", self.variant, netvlad.NETVLAD_VARIANTS)
    check_bool("normalize_input", self.normalize_input)
    netvlad.check_kmeans_iterations(self.kmeans_iterations)
    super().__post_init__()

  def _init(self, key, features: int) -> dict:
    if self.descriptors is None:
      params = netvlad.init_netvlad_random(key, features, self.clusters)
    else:
      params = netvlad.init_netvlad_params(
        key,
        self.descriptors,
        self.clusters,
        variant=self.variant,
        normalize_input=self.normalize_input,
        iterations=self.kmeans_iterations,
      )
    if self.variant == "v1":
      params.pop("assign_bias")
    return params

  @nn.compact
  def __call__(self, x: jax.typing.ArrayLike) -> jax.Array:
    x = jnp.asarray(x)
    params = self.param("vlad", lambda key: self._init(key, x.shape[-1]))
    return jaxpool.netvlad(
      x,
      params["centers"],
      assign_weights=params["assign_weights"],
      assign_bias=params.get("assign_bias"),
      normalize_input=self.normalize_input,
      spatial_ndim=self.spatial_ndim,
    )
