"""Max pooling that returns where each maximum came from, and its inverse."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxpool._src.core import dtypes
from jaxpool._src.core.eager import compiled_when_eager
from jaxpool._src.core.geometry import (
  PaddingLike,
  normalize_spatial_shape,
  spatial_axes,
  window_geometry,
)
from jaxpool._src.core.reductions import extremum_and_winner, extremum_pool

__all__ = ["max_pool_with_indices", "max_unpool"]


def _plane_strides(shape: Sequence[int]) -> np.ndarray:
  """Row-major strides of a flat index into a plane of ``shape``."""
  return np.array([math.prod(shape[a + 1 :]) for a in range(len(shape))], dtype=np.int64)


@compiled_when_eager()
def max_pool_with_indices(
  x: jax.typing.ArrayLike,
  window_shape: Sequence[int],
  strides: int | Sequence[int] | None = None,
  padding: PaddingLike = "VALID",
  *,
  dilation: int | Sequence[int] | None = None,
  ceil_mode: bool = False,
) -> tuple[jax.Array, jax.Array]:
  """Max pooling that also returns the flat index of every maximum.

  ``values`` equals [`max_pool`][jaxpool.max_pool]. ``indices[..., i, c]`` is the flat
  row-major index of the selected element in its unpadded spatial plane
  (``h * W + w`` in 2-D, ``(d * H + h) * W + w`` in 3-D), exactly as
  ``torch.nn.functional.max_pool{1,2,3}d(..., return_indices=True)``: the first
  maximum of the window wins ties, the last NaN wins when the window holds NaN,
  and a window of only ``-inf`` points at its first real cell. Feed the
  indices to [`max_unpool`][jaxpool.max_unpool] to invert the pooling.

  Args:
    x: input of shape ``(*batch, *spatial, features)``.
    window_shape: window size per spatial axis, e.g. ``(2, 2)``.
    strides: step per spatial axis (int or tuple); ``None`` (default) means
      ``window_shape``, as in torch.
    padding: ``'VALID'`` (default), ``'SAME'``, an int, ints or ``(low, high)``
      pairs, as in [`max_pool`][jaxpool.max_pool].
    dilation: spacing between window taps (int or tuple); ``None`` (default)
      means 1.
    ceil_mode: round the output size up, as torch's ``ceil_mode`` (default
      ``False``).

  Returns:
    ``(values, indices)``, both of shape ``(*batch, *out_spatial, features)``;
      ``values`` has ``x``'s dtype and is differentiable, ``indices`` is int32.

  Examples:
    >>> import jax.numpy as jnp, jaxpool
    >>> x = jnp.array([[1.0, 5.0], [7.0, 2.0]]).reshape(2, 2, 1)
    >>> values, indices = jaxpool.max_pool_with_indices(x, (2, 2))
    >>> values[..., 0], indices[..., 0]
    (Array([[7.]], dtype=float32), Array([[2]], dtype=int32))
  """
  x = dtypes.numeric_input(x, "max_pool_with_indices")
  geom = window_geometry(
    x.shape,
    window_shape,
    strides,
    padding,
    dilation=dilation,
    ceil_mode=ceil_mode,
  )
  values = extremum_pool(x, geom, "max")
  _, winner = extremum_and_winner(jax.lax.stop_gradient(x), geom, "max")
  winner = winner.astype(jnp.int32)
  plane = _plane_strides(geom.in_shape)
  # Flat index of tap j in window i = start(i) . plane + (j * dilation) . plane
  start = np.zeros((), dtype=np.int64)
  for axis in range(geom.num_spatial):
    first = geom.tap_positions(axis)[:, 0]
    start = np.add.outer(start, first * plane[axis])
  # Decode the row-major tap index arithmetically (a gather from a constant
  # table cannot follow the input's sharding).
  indices = jnp.zeros_like(winner) + start[..., None].astype(np.int32)
  remaining = winner
  for axis in reversed(range(geom.num_spatial)):
    k = geom.window_shape[axis]
    step = int(geom.dilation[axis] * plane[axis])
    indices = indices + (remaining % k) * step
    remaining = remaining // k
  return values, indices


def _scatter_one(values, indices, size, *, add):
  """One sample: ``(in_cells, C)`` values onto a ``(size, C)`` plane."""
  features = jnp.arange(values.shape[-1])[None, :]
  plane = jnp.zeros((size, values.shape[-1]), values.dtype).at[indices, features]
  return plane.add(values, mode="drop") if add else plane.set(values, mode="drop")


@functools.partial(jax.custom_jvp, nondiff_argnums=(2,))
def _scatter_plane(values, indices, size):
  # vmap over the batch keeps a batch-sharded input sharded.
  return jax.vmap(functools.partial(_scatter_one, size=size, add=False))(values, indices)


@_scatter_plane.defjvp
def _scatter_plane_jvp(size, primals, tangents):
  values, indices = primals
  # Linear in the tangent; its transpose gathers the output gradient at each
  # index, which is torch's max_unpool backward (duplicates each receive it).
  t_out = jax.vmap(functools.partial(_scatter_one, size=size, add=True))(tangents[0], indices)
  return _scatter_plane(values, indices, size), t_out


def _plane_indices(indices, size: int):
  """int32 flat indices; ``size`` (dropped by the scatter) wherever an index
  lies outside ``[0, size)``.

  Validity is decided in the indices' own dtype, before any cast: a uint32
  index ``>= 2**31`` or an int64 one ``>= 2**32`` is out of range, never
  wrapped onto a valid cell.
  """
  if size > np.iinfo(np.int32).max:
    raise ValueError(f"max_unpool supports output planes of fewer than 2**31 cells; got {size}.")
  xp = np if isinstance(indices, np.ndarray) else jnp
  info = np.iinfo(indices.dtype)
  valid = xp.ones(indices.shape, bool)
  if info.min < 0:
    valid = valid & (indices >= xp.asarray(0, indices.dtype))
  if size <= info.max:
    valid = valid & (indices < xp.asarray(size, indices.dtype))
  safe = xp.where(valid, indices, xp.asarray(0, indices.dtype))
  return jnp.where(jnp.asarray(valid), jnp.asarray(safe.astype(np.int32)), size)


@compiled_when_eager()
def max_unpool(
  x: jax.typing.ArrayLike,
  indices: jax.typing.ArrayLike,
  output_shape: Sequence[int],
) -> jax.Array:
  """Inverse of [`max_pool_with_indices`][jaxpool.max_pool_with_indices]: scatter values back, zeros elsewhere.

  ``y[..., indices[..., i, c], c] = x[..., i, c]`` on the flattened spatial
  plane of shape ``output_shape``; every other cell is zero. Equal to
  ``torch.nn.functional.max_unpool{1,2,3}d`` with ``output_size`` set. Indices
  outside ``[0, prod(output_shape))`` are ignored, judged in their own dtype
  before any cast (a uint32 index ``>= 2**31`` or an int64 one ``>= 2**32``
  is out of range, never wrapped onto a valid cell). When several entries
  share an index (overlapping windows that picked the same maximum) the forward
  keeps one of them (they hold the same value when they come from
  [`max_pool_with_indices`][jaxpool.max_pool_with_indices]) and the gradient reaches every one of them,
  as in torch.

  Args:
    x: pooled values of shape ``(*batch, *in_spatial, features)``.
    indices: integer array of the same shape (e.g. from
      [`max_pool_with_indices`][jaxpool.max_pool_with_indices]).
    output_shape: spatial shape of the result, one int per spatial axis,
      usually the spatial shape of the input that was pooled.

  Returns:
    Array of shape ``(*batch, *output_shape, features)`` and ``x``'s dtype.

  Examples:
    >>> import jax.numpy as jnp, jaxpool
    >>> x = jnp.array([[1.0, 5.0], [7.0, 2.0]]).reshape(2, 2, 1)
    >>> values, indices = jaxpool.max_pool_with_indices(x, (2, 2))
    >>> jaxpool.max_unpool(values, indices, (2, 2))[..., 0]
    Array([[0., 0.],
           [7., 0.]], dtype=float32)
  """
  output_shape = normalize_spatial_shape("output_shape", output_shape)
  x = dtypes.numeric_input(x, "max_unpool")
  if not isinstance(indices, jax.Array):
    indices = np.asarray(indices)  # keeps a 64-bit host dtype for the check
  if not jnp.issubdtype(indices.dtype, jnp.integer):
    raise TypeError(f"indices must be an integer array; got dtype {indices.dtype}.")
  if indices.shape != x.shape:
    raise ValueError(
      f"indices must have the shape of x; got indices.shape={indices.shape} and x.shape={x.shape}."
    )
  n = len(output_shape)
  axes = spatial_axes(x.ndim, n, "output_shape", x.shape)
  batch_shape = x.shape[: axes[0]]
  size = math.prod(output_shape)
  flat_x = x.reshape(math.prod(batch_shape), -1, x.shape[-1])
  flat_i = _plane_indices(indices.reshape(flat_x.shape), size)
  out = _scatter_plane(flat_x, flat_i, size)
  return out.reshape(batch_shape + output_shape + x.shape[-1:])
