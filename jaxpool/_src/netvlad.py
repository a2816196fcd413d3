"""NetVLAD (Arandjelovic et al., CVPR 2016): soft-assigned residual
aggregation, with the k-means initialisation of the official code."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxpool._src.core.checks import check_bool
from jaxpool._src.core.descriptors import l2_normalize, positions

__all__ = ["netvlad"]


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


def netvlad(
    x: jax.typing.ArrayLike,
    centers: jax.typing.ArrayLike,
    *,
    assign_weights: jax.typing.ArrayLike,
    assign_bias: jax.typing.ArrayLike | None = None,
    normalize_input: bool = True,
    spatial_ndim: int | None = None,
) -> jax.Array:
  """NetVLAD: soft-assigned residuals to ``K`` centres, normalised.

  For the descriptors ``x_l`` of the ``M`` positions (L2-normalised first
  when ``normalize_input``)::

      a_lk = softmax_k(x_l . w_k + b_k)
      V_k  = sum_l a_lk (x_l - c_k)

  then each ``V_k`` is L2-normalised (intra-normalisation), the ``K`` of them
  are flattened cluster-major to ``K * D`` values, and the whole vector is
  L2-normalised. ``V_k`` is computed as ``a^T x - (sum_l a_lk) c_k``, never
  materialising the ``(M, K, D)`` residuals.

  Args:
    x: ``(batch, *spatial, D)``, floating point (half precision computed in
      float32).
    centers: ``(K, D)``, the cluster centres ``c_k``.
    assign_weights: ``(D, K)``, the assignment's ``w_k`` as columns.
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
        f"netvlad: centers must have shape (clusters, {dim}) for {dim}"
        f" features; got {centers.shape}."
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
    raise ValueError(
        f"netvlad: assign_bias must have shape ({clusters},); got {bias.shape}."
    )
  if normalize_input:
    rows = l2_normalize(rows, axis=-1)
  logits = rows @ weights.astype(dtype) + bias.astype(dtype)
  assign = _soft_assignment(logits)  # (..., M, K)
  vlad = jnp.einsum("...mk,...md->...kd", assign, rows)
  vlad = vlad - jnp.sum(assign, axis=-2)[..., None] * centers.astype(dtype)
  vlad = l2_normalize(vlad, axis=-1)
  vlad = vlad.reshape(vlad.shape[:-2] + (clusters * dim,))
  return l2_normalize(vlad, axis=-1).astype(x.dtype)
