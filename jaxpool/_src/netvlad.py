"""NetVLAD (Arandjelovic et al., CVPR 2016): soft-assigned residual
aggregation, with the k-means initialisation of the official code."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from jaxpool._src.core.checks import check_bool, check_choice, check_features, is_int
from jaxpool._src.core.descriptors import l2_normalize, positions
from jaxpool._src.core.eager import compiled_when_eager

__all__ = [
  "check_clusters",
  "check_kmeans_iterations",
  "init_netvlad_params",
  "init_netvlad_random",
  "kmeans",
  "netvlad",
  "NETVLAD_VARIANTS",
]


@jax.custom_jvp
def _soft_assignment(logits: jax.Array) -> jax.Array:
  """``softmax`` over the last axis, whose derivative (in both modes) sends
  nothing through an assignment that is exactly 0, even when its cotangent
  overflowed (the intra-normalisation of an empty cluster's residual sum has
  derivative ``1 / eps``, times residuals up to the float range: ``0 * inf``
  would be NaN)."""
  return jax.nn.softmax(logits, axis=-1)


@_soft_assignment.defjvp
def _soft_assignment_jvp(primals, tangents):
  (logits,), (t,) = primals, tangents
  assign = jax.nn.softmax(logits, axis=-1)
  live = assign > 0
  # s t - s sum(s t), with every product by s behind a select on s > 0, so
  # that the transpose (reverse mode) selects the cotangent before it is
  # multiplied by an assignment of 0.
  weighted = jnp.where(live, assign * t, 0.0)
  mean = jnp.sum(weighted, axis=-1, keepdims=True)
  return assign, weighted - jnp.where(live, assign * mean, 0.0)


@compiled_when_eager()
def netvlad(
  x: jax.typing.ArrayLike,
  centers: jax.typing.ArrayLike,
  *,
  assign_weights: jax.typing.ArrayLike,
  assign_bias: jax.typing.ArrayLike | None = None,
  normalize_input: bool = True,
  spatial_ndim: int | None = None,
) -> jax.Array:
  r"""NetVLAD: soft-assigned residuals to $K$ centres, normalised.

  For the descriptors $x_l$ of the $M$ positions (L2-normalised first
  when ``normalize_input``):

  $$
  a_{lk} = \operatorname{softmax}_k(x_l \cdot w_k + b_k), \qquad
  V_k = \sum_l a_{lk} (x_l - c_k)
  $$

  then each $V_k$ is L2-normalised (intra-normalisation), the $K$ of them
  are flattened cluster-major to $K \cdot D$ values, and the whole vector is
  L2-normalised. $V_k$ is computed as $a^\top x - (\sum_l a_{lk}) c_k$, never
  materialising the ``(M, K, D)`` residuals.

  Args:
    x: ``(batch, *spatial, D)``, floating point (half precision computed in
      float32).
    centers: ``(K, D)``, the cluster centres $c_k$.
    assign_weights: ``(D, K)``, the assignment's $w_k$ as columns.
    assign_bias: ``(K,)`` or ``None`` (0, the official v1 layer).
    normalize_input: L2-normalise each descriptor first.
    spatial_ndim: the number of spatial axes before the features.

  Returns:
    ``(batch, K * D)``, ``x``'s dtype.

  Examples:
    >>> import jax.numpy as jnp, jaxpool
    >>> x = jnp.ones((2, 4, 4, 8))
    >>> centers = jnp.eye(3, 8)
    >>> jaxpool.netvlad(x, centers, assign_weights=centers.T).shape
    (2, 24)
  """
  normalize_input = check_bool("normalize_input", normalize_input)
  x = jnp.asarray(x)
  rows = positions(x, spatial_ndim, "netvlad")
  dtype, dim = rows.dtype, rows.shape[-1]
  centers = jnp.asarray(centers)
  if centers.ndim != 2 or centers.shape[1] != dim:
    raise ValueError(
      f"netvlad: centers must have shape (clusters, {dim}) for {dim} features; got {centers.shape}."
    )
  clusters = centers.shape[0]
  if clusters < 1:
    raise ValueError(
      f"netvlad needs at least one cluster: centers must have shape"
      f" (clusters >= 1, {dim}); got {centers.shape}."
    )
  weights = jnp.asarray(assign_weights)
  if weights.shape != (dim, clusters):
    raise ValueError(
      f"netvlad: assign_weights must have shape ({dim}, {clusters})"
      f" (features, clusters); got {weights.shape}."
    )
  bias = jnp.zeros((clusters,), dtype) if assign_bias is None else jnp.asarray(assign_bias)
  if bias.shape != (clusters,):
    raise ValueError(f"netvlad: assign_bias must have shape ({clusters},); got {bias.shape}.")
  if normalize_input:
    rows = l2_normalize(rows, axis=-1)
  logits = rows @ weights.astype(dtype) + bias.astype(dtype)
  assign = _soft_assignment(logits)  # (..., M, K)
  vlad = jnp.einsum("...mk,...md->...kd", assign, rows)
  vlad = vlad - jnp.sum(assign, axis=-2)[..., None] * centers.astype(dtype)
  vlad = l2_normalize(vlad, axis=-1)
  vlad = vlad.reshape(vlad.shape[:-2] + (clusters * dim,))
  return l2_normalize(vlad, axis=-1).astype(x.dtype)


# ---------------------------------------------------------------------------
# The layer's parametrisation: the k-means start (v2 and the official v1).
# ---------------------------------------------------------------------------


NETVLAD_VARIANTS = ("v2", "v1")


def kmeans(key: jax.Array, points: jax.Array, clusters: int, *, iterations: int = 20) -> jax.Array:
  """``clusters`` centres of ``points`` ``(N, D)``: k-means++ seeding, then
  ``iterations`` Lloyd steps (an empty cluster keeps its centre).

  Examples:
    >>> import jax, jax.numpy as jnp
    >>> points = jnp.array([[0.0], [0.1], [10.0], [10.1]])
    >>> jnp.sort(kmeans(jax.random.key(0), points, 2), axis=0)
    Array([[ 0.05],
           [10.05]], dtype=float32)
  """
  points = jnp.asarray(points, jnp.float32)
  if points.ndim != 2 or points.shape[0] < clusters:
    raise ValueError(
      f"kmeans needs descriptors of shape (N, D) with N >= clusters ="
      f" {clusters}; got {points.shape}."
    )

  def sq_distances(centres):
    return jnp.sum((points[:, None, :] - centres[None]) ** 2, axis=-1)

  keys = jax.random.split(key, clusters)
  centres = points[jax.random.randint(keys[0], (), 0, points.shape[0])][None]
  for k in keys[1:]:  # k-means++: the next centre with probability ~ d^2
    nearest = jnp.min(sq_distances(centres), axis=1)
    logits = jnp.log(jnp.maximum(nearest, 1e-30))
    centres = jnp.concatenate([centres, points[jax.random.categorical(k, logits)][None]])
  for _ in range(iterations):
    assign = jax.nn.one_hot(jnp.argmin(sq_distances(centres), axis=1), clusters)
    counts = jnp.sum(assign, axis=0)[:, None]
    sums = assign.T @ points
    centres = jnp.where(counts > 0, sums / jnp.maximum(counts, 1), centres)
  return centres


def check_clusters(clusters) -> int:
  """NetVLAD's ``clusters`` as an int >= 2 (a soft assignment needs two)."""
  clusters = check_features("NetVLAD(clusters=...)", clusters)
  if clusters < 2:
    raise ValueError(f"NetVLAD needs clusters >= 2 for its soft assignment; got {clusters}.")
  return clusters


def check_kmeans_iterations(iterations) -> int:
  """NetVLAD's ``kmeans_iterations`` as an int >= 0 (0: the sampled start)."""
  if not is_int(iterations) or iterations < 0:
    raise ValueError(f"kmeans_iterations must be an int >= 0; got {iterations!r}.")
  return int(iterations)


def init_netvlad_params(
  key: jax.Array,
  descriptors: jax.typing.ArrayLike,
  clusters: int,
  *,
  variant: str = "v2",
  normalize_input: bool = True,
  iterations: int = 20,
) -> dict[str, jax.Array]:
  """NetVLAD's start from k-means on sample descriptors ``(N, D)``, as the
  official code (Relja/netvlad):

  * ``"v2"`` (the paper): ``w_k = 2 alpha c_k``, ``b_k = -alpha ||c_k||^2``
    with ``alpha = -log(0.01) / mean(d_2^2 - d_1^2)`` (``d_1``, ``d_2``: the
    distances of a descriptor to its nearest and second nearest centre), so
    the soft assignment is about 100 times sharper for the nearest centre.
  * ``"v1"`` (``layerVLAD``, used in all the official experiments):
    ``w_k = alpha c_k / ||c_k||``, ``b_k = 0``, with ``alpha = -log(0.01) /
    mean(top_1 - top_2)`` of the descriptors' dot products with the
    normalised centres.

  The descriptors are L2-normalised first when ``normalize_input`` (as the
  layer normalises its inputs). Returns ``centers`` ``(K, D)``,
  ``assign_weights`` ``(D, K)`` and ``assign_bias`` ``(K,)``.
  """
  check_choice("variant", variant, NETVLAD_VARIANTS)
  clusters = check_clusters(clusters)
  points = jnp.asarray(descriptors, jnp.float32)
  points = points.reshape(-1, points.shape[-1])
  if check_bool("normalize_input", normalize_input):
    points = points / jnp.maximum(jnp.linalg.norm(points, axis=-1, keepdims=True), 1e-12)
  centres = kmeans(key, points, clusters, iterations=iterations)
  if variant == "v2":
    d2 = jnp.sort(jnp.sum((points[:, None] - centres[None]) ** 2, axis=-1), axis=1)
    alpha = -math.log(0.01) / jnp.maximum(jnp.mean(d2[:, 1] - d2[:, 0]), 1e-12)
    weights, bias = 2 * alpha * centres.T, -alpha * jnp.sum(centres**2, axis=1)
  else:
    unit = centres / jnp.maximum(jnp.linalg.norm(centres, axis=1, keepdims=True), 1e-12)
    dots = -jnp.sort(-(points @ unit.T), axis=1)
    alpha = -math.log(0.01) / jnp.maximum(jnp.mean(dots[:, 0] - dots[:, 1]), 1e-12)
    weights, bias = alpha * unit.T, jnp.zeros((clusters,))
  return {"centers": centres, "assign_weights": weights, "assign_bias": bias}


def init_netvlad_random(key: jax.Array, features: int, clusters: int) -> dict[str, jax.Array]:
  """NetVLAD's start without descriptors: unit-norm random centres and the
  v2 assignment with ``alpha = 1`` (``w_k = 2 c_k``, ``b_k = -1``). A start
  from k-means (`init_netvlad_params`) is what the paper uses."""
  features = check_features("NetVLAD", features)
  clusters = check_clusters(clusters)
  centres = jax.random.normal(key, (clusters, features))
  centres = centres / jnp.linalg.norm(centres, axis=1, keepdims=True)
  return {
    "centers": centres,
    "assign_weights": 2 * centres.T,
    "assign_bias": -jnp.ones((clusters,)),
  }
