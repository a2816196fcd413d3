"""RoIPool (Fast R-CNN) with torchvision's rules on channels-last maps.

Every box has its own, data-dependent bin sizes, so the operator fixes a
static number of reads per bin (exact for concrete boxes, a bound under
``jit``) and runs one compiled kernel. It scans each bin cell by cell, in two
light passes (the maximum, then the lowest row-major index holding it), and
gathers that cell, so the derivative is the gather's: the bin's cotangent
goes to its winner, as in torchvision. Bins larger than the bound (a box
larger than the map under ``jit``) are covered by blocks of a sparse table of
``(value, first index)`` pairs, built only then.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxpool._src.core import boxes as box_args
from jaxpool._src.core import dtypes
from jaxpool._src.core.backend import choose
from jaxpool._src.core.checks import (
  concrete_values,
)
from jaxpool._src.core.geometry import normalize_output_size
from jaxpool._src.core.options import register_option_check
from jaxpool._src.core.sharding import replicated

__all__ = ["roi_pool"]


def _round_half_away(v: jax.Array) -> jax.Array:
  """C's ``round``: halves go away from zero (``jnp.round`` goes to even)."""
  magnitude = jnp.abs(v)
  low = jnp.floor(magnitude)
  return jnp.sign(v) * jnp.where(magnitude - low >= 0.5, low + 1, low)


def _pool_bins(start, end, bins: int, length: int, dtype):
  """torchvision's RoIPool bin edges along one axis, ``[lo, hi)`` each ``(K, bins)``.

  The rounded box spans ``end - start + 1`` cells (at least 1); bin ``p``
  covers ``floor(p * size / bins)`` to ``ceil((p + 1) * size / bins)`` from
  the box start (in the positions' precision, as torchvision), clipped to
  the map.
  """
  size = jnp.maximum(end - start + 1, 1)
  step = box_args.divide(size, bins)[:, None]
  p = jnp.arange(bins, dtype=dtype)[None]
  lo = jnp.floor(p * step).astype(jnp.int32) + start[:, None].astype(jnp.int32)
  hi = jnp.ceil((p + 1) * step).astype(jnp.int32) + start[:, None].astype(jnp.int32)
  return jnp.clip(lo, 0, length), jnp.clip(hi, 0, length)


def _wins(value, index, other, other_index):
  """``other`` beats ``value``: larger, or NaN over a number, or equal (both
  NaN included) and earlier in row-major order."""
  nan, other_nan = jnp.isnan(value), jnp.isnan(other)
  equal = (other == value) | (nan & other_nan)
  return (other > value) | (other_nan & ~nan) | (equal & (other_index < index))


def _combine(a, b):
  wins = _wins(a[0], a[1], b[0], b[1])
  return jnp.where(wins, b[0], a[0]), jnp.where(wins, b[1], a[1])


def _shift(pair, step: int, axis: int, fill):
  """``pair`` read ``step`` cells ahead along ``axis``, ``fill`` past the end."""
  value, index = pair
  n = value.shape[axis]
  step = min(step, n)
  pad = [(0, 0)] * value.ndim
  pad[axis] = (0, step)

  def ahead(v, pad_value):
    return jax.lax.slice_in_dim(
      jnp.pad(v, pad, constant_values=pad_value), step, step + n, axis=axis
    )

  return ahead(value, fill), ahead(index, np.iinfo(np.int32).max)


def _sparse_table(x, levels_h: int, levels_w: int):
  """``(value, index)`` of the first maximum of every ``2**i x 2**j`` block,
  stacked ``(levels_h, levels_w, batch, H, W, features)``; ``index`` is the
  cell's row-major position ``h * W + w`` in its map."""
  batch, height, width, features = x.shape
  flat = jnp.arange(height * width, dtype=jnp.int32).reshape(1, height, width, 1)
  base = (x, jnp.broadcast_to(flat, x.shape))
  fill = dtypes.lowest(x.dtype)
  rows = [base]
  for i in range(1, levels_h):
    rows.append(_combine(rows[-1], _shift(rows[-1], 2 ** (i - 1), 1, fill)))
  table = []
  for row in rows:
    cols = [row]
    for j in range(1, levels_w):
      cols.append(_combine(cols[-1], _shift(cols[-1], 2 ** (j - 1), 2, fill)))
    table.append(cols)
  value = jnp.stack([jnp.stack([c[0] for c in r]) for r in table])
  index = jnp.stack([jnp.stack([c[1] for c in r]) for r in table])
  return value, index


def _block_level(n, taps: int, levels: int):
  """The smallest ``a < levels`` with ``ceil(n / 2**a) <= taps``: bins of at
  most ``taps`` cells are read cell by cell, larger ones by ``taps`` blocks
  of ``2**a`` cells."""
  return sum((n > taps * 2 ** (l - 1)).astype(jnp.int32) for l in range(1, levels))


def _tap_starts(lo, hi, level, taps: int):
  """``(taps, *lo.shape)`` starts of the blocks covering ``[lo, hi)``: block
  ``i`` at ``lo + i * 2**level``, clamped to end at ``hi`` (a repeated block
  changes no maximum)."""
  size = jnp.left_shift(1, level)
  i = jnp.arange(taps, dtype=jnp.int32).reshape((taps,) + (1,) * lo.ndim)
  return jnp.maximum(jnp.minimum(lo + i * size, hi - size), 0)


def _pool_taps(sizes, length: int, bins: int) -> tuple[int, int]:
  """``(taps, levels)`` of one axis: exact for concrete bin sizes (cell by
  cell, no table); under jit, taps for a bin of a box inside the map and
  table levels for a bin as large as the map."""
  if sizes is not None:
    return max(1, int(sizes.max(initial=1))), 1
  taps = min(length, -(-(length + 1) // bins) + 1)
  return taps, 1 + max(0, math.ceil(math.log2(length / taps)))


def roi_pool(
  x: jax.typing.ArrayLike,
  boxes: jax.typing.ArrayLike,
  output_shape: int | Sequence[int],
  *,
  spatial_scale: float = 1.0,
) -> jax.Array:
  r"""RoIPool (Fast R-CNN): the maximum of each bin of each box, torchvision's rules.

  For a box ``(b, x1, y1, x2, y2)``, its corners are scaled and rounded like
  C's ``round`` (halves away from zero): $w_0 = \operatorname{round}(x_1 s)$,
  $w_1 = \operatorname{round}(x_2 s)$ (the same for $h$); the box spans
  $\mathrm{size} = \max(w_1 - w_0 + 1, 1)$ cells and output column $q$ of
  $\mathrm{pw}$ covers cells:

  $$
  [w_0 + \lfloor q \, \mathrm{size} / \mathrm{pw} \rfloor,\;
  w_0 + \lceil (q + 1) \, \mathrm{size} / \mathrm{pw} \rceil)
  $$

  clipped to the map (rows alike). Each output is the maximum over its bin
  of ``x[b]``; an empty bin gives 0 and no gradient. The gradient of a bin
  goes to its first maximum in row-major order (torchvision's tie rule).

  Unlike torchvision's kernel, a NaN in a bin gives NaN (as
  [`jaxpool.max_pool`][jaxpool.max_pool]), and a bin of ``-inf`` gives ``-inf`` (not
  ``-FLT_MAX``).

  Args:
    x: ``(batch, H, W, features)`` feature maps (float or int).
    boxes: ``(K, 5)`` rows ``(batch_index, x1, y1, x2, y2)`` in image
      coordinates. Concrete boxes must hold finite numbers and batch
      indices in ``[0, batch)``; traced ones cannot be checked: an index
      outside is clamped, and a box with a NaN or infinite number gives
      NaN in its own outputs only (0 for integer maps). ``K = 0`` gives an
      empty ``(0, ph, pw, features)``.
    output_shape: ``(ph, pw)`` or an int for both.
    spatial_scale: map size over image size (``1/16`` for a stride-16 map).

  Returns:
    ``(K, ph, pw, features)``, ``x``'s dtype.

  Examples:
    >>> import jax.numpy as jnp, jaxpool
    >>> x = jnp.arange(16.0).reshape(1, 4, 4, 1)
    >>> boxes = jnp.array([[0, 0, 0, 3, 3], [0, 2, 2, 3, 3]])
    >>> jaxpool.roi_pool(x, boxes, 2)[..., 0]
    Array([[[ 5.,  7.],
            [13., 15.]],
    <BLANKLINE>
           [[10., 11.],
            [14., 15.]]], dtype=float32)
  """
  (ph, pw), scale = _roi_pool_options(output_shape, spatial_scale)
  x = box_args.check_map(x, "roi_pool")
  batch, height, width, features = x.shape
  pdtype = box_args.position_dtype(x.dtype)
  index, corners, invalid = box_args.check_boxes(boxes, batch, "roi_pool", pdtype)
  corners = jax.lax.stop_gradient(corners)
  rounded = _round_half_away(corners * jnp.asarray(scale, pdtype))
  h_lo, h_hi = _pool_bins(rounded[:, 1], rounded[:, 3], ph, height, pdtype)
  w_lo, w_hi = _pool_bins(rounded[:, 0], rounded[:, 2], pw, width, pdtype)

  taps_h, levels_h = _pool_taps(concrete_values(h_hi - h_lo), height, ph)
  taps_w, levels_w = _pool_taps(concrete_values(w_hi - w_lo), width, pw)
  out = _roi_pool_bins(
    replicated(x), index, h_lo, h_hi, w_lo, w_hi, taps_h, levels_h, taps_w, levels_w
  )
  return box_args.nan_where_invalid(out, invalid)


def _roi_pool_options(output_shape, spatial_scale, **_):
  return normalize_output_size("output_shape", output_shape, 2), box_args.check_scale(spatial_scale)


@functools.partial(jax.jit, static_argnums=(6, 7, 8, 9))
def _roi_pool_bins(x, index, h_lo, h_hi, w_lo, w_hi, taps_h, levels_h, taps_w, levels_w):
  """The maximum of every bin ``[h_lo, h_hi) x [w_lo, w_hi)`` of ``x[index]``
  (0 for an empty bin), compiled once per static bound (also when called
  eagerly).

  A bin of at most ``taps_h x taps_w`` cells is scanned cell by cell; when a
  larger one exists (only under jit: a box larger than the map), every bin
  is scanned by blocks of a sparse table instead, built only then (on
  platforms without conditionals, always).
  """
  batch, height, width, features = x.shape
  level_h = _block_level(h_hi - h_lo, taps_h, levels_h)  # (K, ph)
  level_w = _block_level(w_hi - w_lo, taps_w, levels_w)  # (K, pw)
  rows = _tap_starts(h_lo, h_hi, level_h, taps_h)  # (taps_h, K, ph)
  cols = _tap_starts(w_lo, w_hi, level_w, taps_w)  # (taps_w, K, pw)
  # Every (row tap, column tap) pair of every bin, one pair per step.
  steps = (
    jnp.repeat(rows, taps_w, axis=0)[:, :, :, None],
    jnp.tile(cols, (taps_h, 1, 1))[:, :, None, :],
  )
  k = index[:, None, None]
  source = jax.lax.stop_gradient(x)

  def cells(row, col):
    value = source[k, row, col]  # (K, ph, pw, features)
    return value, jnp.broadcast_to((row * width + col)[..., None], value.shape)

  def scan(read):
    # Two light passes (the maximum, then the lowest index holding it) cost
    # less than one pass carrying (value, index) pairs.
    def fold(op, init):
      return jax.lax.scan(lambda acc, step: (op(acc, *read(*step)), None), init, steps)[0]

    best = fold(lambda acc, value, _: jnp.maximum(acc, value), read(steps[0][0], steps[1][0])[0])
    nan = jnp.isnan(best) if dtypes.is_float(best.dtype) else None

    def lowest(acc, value, index):
      hit = value == best if nan is None else (value == best) | (jnp.isnan(value) & nan)
      return jnp.where(hit, jnp.minimum(acc, index), acc)

    return fold(lowest, jnp.full(best.shape, np.iinfo(np.int32).max, jnp.int32))

  def by_cells():
    return scan(cells)

  def by_blocks():
    values, winners = _sparse_table(source, levels_h, levels_w)
    at = lambda row, col: (level_h[:, :, None], level_w[:, None, :], k, row, col)
    return scan(lambda row, col: (values[at(row, col)], winners[at(row, col)]))

  def by_policy(policy):
    if not policy.conditionals:
      return by_blocks()
    return jax.lax.cond(jnp.any(level_h > 0) | jnp.any(level_w > 0), by_blocks, by_cells)

  if levels_h == levels_w == 1:
    winner = by_cells()
  else:
    winner = choose(by_policy, reads=("conditionals",))
  flat = x.reshape(batch * height * width, features)
  cell = index[:, None, None, None] * (height * width) + winner
  y = jnp.take_along_axis(flat, cell.reshape(-1, features), axis=0).reshape(winner.shape)
  empty = ((h_hi <= h_lo)[:, :, None] | (w_hi <= w_lo)[:, None, :])[..., None]
  return jnp.where(empty, jnp.zeros((), x.dtype), y)


register_option_check(roi_pool, _roi_pool_options)
