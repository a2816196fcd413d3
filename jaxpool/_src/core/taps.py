"""Window taps: the strided views every window operator is made of.

A window of ``k`` cells per axis has ``prod(k)`` *taps*; tap ``t`` of every
output position, read at once, is one strided slice of the (padded) input
(`window_slice`). A pooling forward pass is a fused chain over the taps
(`window_taps`); for operators that ignore padded cells,
`map_unpadded_blocks` splits the windows into padding-free blocks so
that no pad is fused into the chain (XLA:CPU runs fused pads slowly).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxpool._src.core.geometry import WindowGeometry, spatial_axes, window_geometry

__all__ = ["flatten_batch", "map_unpadded_blocks", "pad_input", "window_slice", "window_taps"]


def pad_input(x: jax.Array, geom: WindowGeometry, value) -> jax.Array:
  """Pads the spatial axes of ``x`` by ``geom.full_padding`` with ``value``."""
  batch = x.ndim - geom.num_spatial - 1
  config = [(0, 0, 0)] * batch + [(lo, hi, 0) for lo, hi in geom.full_padding] + [(0, 0, 0)]
  return lax.pad(x, np.array(value, dtype=x.dtype), config)


def window_slice(x_padded: jax.Array, geom: WindowGeometry, tap: tuple[int, ...]) -> jax.Array:
  """The value under window tap ``tap`` for every output position.

  Args:
    x_padded: input padded by `pad_input`.
    geom: the geometry.
    tap: the tap's index in the window, one int per spatial axis.

  Returns:
    Array of shape ``(*batch, *out_shape, features)``.
  """
  batch = x_padded.ndim - geom.num_spatial - 1
  start = [0] * batch + [t * d for t, d in zip(tap, geom.dilation)] + [0]
  limit = (
    list(x_padded.shape[:batch])
    + [st + (o - 1) * s + 1 for st, o, s in zip(start[batch:], geom.out_shape, geom.strides)]
    + [x_padded.shape[-1]]
  )
  step = [1] * batch + list(geom.strides) + [1]
  return lax.slice(x_padded, start, limit, step)


def window_taps(x: jax.Array, geom: WindowGeometry, fill=0) -> list[jax.Array]:
  """The value under every tap (row-major) for every output position.

  Pads with ``fill`` only when some window touches padding (XLA:CPU runs
  fused pads slowly). Each element has shape ``(*batch, *out_shape,
  features)``.
  """
  padded = x if geom.is_unpadded else pad_input(x, geom, fill)
  return [window_slice(padded, geom, tap) for _, tap in geom.offsets()]


def map_unpadded_blocks(fn, x: jax.Array, geom: WindowGeometry, empty=0, *, with_first_taps=False):
  """``fn(block, block_geom)`` over padding-free blocks of the windows.

  Splits the output grid into the product of every axis's
  `WindowGeometry.clipped_runs`, calls ``fn`` on the slice of ``x``
  under each block with an unpadded geometry (the windows clipped to the
  input), and concatenates the results (arrays or tuples of arrays). For
  operators that ignore padded cells (max, min): their fast unpadded path
  then serves padded windows too.

  Args:
    fn: ``fn(block, block_geom)``, or with ``with_first_taps``
      ``fn(block, block_geom, first_taps)`` where ``first_taps`` gives, per
      axis, the index in the full window of the block's first tap (to
      translate tap indices of the clipped windows).
    x: the input.
    geom: the (padded) geometry.
    empty: the value of windows with no real cell (possible with dilation): a
      scalar, or ``empty(shape)`` returning ``fn``'s output structure.
    with_first_taps: see ``fn``.
  """
  batch = x.ndim - geom.num_spatial - 1
  runs = []
  for axis in range(geom.num_spatial):
    out, lo = 0, geom.padding[axis][0]
    axis_runs = []
    for count, start, taps in geom.clipped_runs(axis):
      first = (start - (out * geom.strides[axis] - lo)) // geom.dilation[axis]
      axis_runs.append((count, start, taps, first))
      out += count
    runs.append(axis_runs)

  def block(chosen):
    if any(taps == 0 for _, _, taps, _ in chosen):
      shape = x.shape[:batch] + tuple(c for c, _, _, _ in chosen) + x.shape[-1:]
      return empty(shape) if callable(empty) else jnp.full(shape, empty, x.dtype)
    index = [slice(None)] * batch
    for (count, start, taps, _), s, d in zip(chosen, geom.strides, geom.dilation):
      index.append(slice(start, start + (count - 1) * s + (taps - 1) * d + 1))
    part = x[tuple(index)]
    part_geom = window_geometry(
      part.shape,
      tuple(taps for _, _, taps, _ in chosen),
      geom.strides,
      dilation=geom.dilation,
    )
    if with_first_taps:
      return fn(part, part_geom, tuple(first for *_, first in chosen))
    return fn(part, part_geom)

  def assemble(axis, chosen):
    if axis == geom.num_spatial:
      return block(chosen)
    parts = [assemble(axis + 1, chosen + (run,)) for run in runs[axis]]
    if len(parts) == 1:
      return parts[0]
    return jax.tree.map(lambda *leaves: jnp.concatenate(leaves, axis=batch + axis), *parts)

  return assemble(0, ())


def flatten_batch(x: jax.Array, num_spatial: int, op: str):
  """``(*batch, *spatial, C) -> (B, *spatial, C)`` and the batch shape."""
  spatial_axes(x.ndim, num_spatial, op, x.shape)
  batch = x.shape[: x.ndim - num_spatial - 1]
  return x.reshape((math.prod(batch),) + x.shape[len(batch) :]), batch
