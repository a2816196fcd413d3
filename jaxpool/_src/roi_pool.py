"""RoIPool (Fast R-CNN) and position-sensitive RoIPool (R-FCN) with
torchvision's rules on channels-last maps.

Every box has its own, data-dependent bin sizes, so the operator fixes a
static number of reads per bin (exact for concrete boxes, a bound under
``jit``) and runs one compiled kernel. It scans each bin cell by cell, in two
light passes (the maximum, then the lowest row-major index holding it), and
gathers that cell, so the derivative is the gather's: the bin's cotangent
goes to its winner, as in torchvision. Bins larger than the bound (a box
larger than the map under ``jit``) are covered by blocks of a sparse table of
``(value, first index)`` pairs, built only then.

Position-sensitive RoIPool averages each bin's own features over the bin:
``core.boxes.sum_taps`` over the bin's cells up to the bound, and past it
over the cells near the bin's edges plus the whole aligned blocks of a
coarser map of block sums between them (plain sums: nothing cancels, and a
cell reaches only the bins holding it).
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

__all__ = ["ps_roi_pool", "roi_pool"]


def _round_half_away(v: jax.Array) -> jax.Array:
  """C's ``round``: halves go away from zero (``jnp.round`` goes to even)."""
  magnitude = jnp.abs(v)
  low = jnp.floor(magnitude)
  return jnp.sign(v) * jnp.where(magnitude - low >= 0.5, low + 1, low)


def _pool_bins(start, size, bins: int, limit: int, dtype):
  """torchvision's RoIPool bin edges along one axis, ``[lo, hi)`` each ``(K, bins)``.

  Over a rounded box of ``size`` cells from ``start``, bin ``p`` covers
  ``floor(p * size / bins)`` to ``ceil((p + 1) * size / bins)`` from the box
  start (in the positions' precision, as torchvision), clipped to ``[0,
  limit]``.
  """
  step = box_args.divide(size, bins)[:, None]
  p = jnp.arange(bins, dtype=dtype)[None]
  lo = jnp.floor(p * step).astype(jnp.int32) + start[:, None].astype(jnp.int32)
  hi = jnp.ceil((p + 1) * step).astype(jnp.int32) + start[:, None].astype(jnp.int32)
  return jnp.clip(lo, 0, limit), jnp.clip(hi, 0, limit)


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


def _sparse_table(x, levels_h: int, levels_w: int, side_by_side: bool):
  """``(value, index)`` of the first maximum of every ``2**i x 2**j`` block,
  stacked ``(levels_h, levels_w, batch, H, W, features)``, or with
  ``side_by_side`` ``(levels_h, levels_w, batch, H, W * features)``: a row's
  cells side by side, one dense minor axis. ``index`` is the cell's
  row-major position ``h * W + w`` in its map."""
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
  shape = (batch, height, width * features) if side_by_side else x.shape
  value = jnp.stack([jnp.stack([c[0].reshape(shape) for c in r]) for r in table])
  index = jnp.stack([jnp.stack([c[1].reshape(shape) for c in r]) for r in table])
  return value, index


def _divisor_at_least(n: int, least: int) -> int:
  """The smallest divisor of ``n`` that is at least ``least`` (``n`` if none)."""
  return next((c for c in range(min(least, n), n) if n % c == 0), n)


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
  # The rounded corners are both inside the box: it spans end - start + 1 cells.
  size = jnp.maximum(rounded[:, 2:] - rounded[:, :2] + 1, 1)
  h_lo, h_hi = _pool_bins(rounded[:, 1], size[:, 1], ph, height, pdtype)
  w_lo, w_hi = _pool_bins(rounded[:, 0], size[:, 0], pw, width, pdtype)

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
  k = index[:, None, None]
  source = jax.lax.stop_gradient(x)

  def cells(row, col):
    value = source[k, row, col]  # (K, ph, pw, features)
    return value, jnp.broadcast_to((row * width + col)[..., None], value.shape)

  def scan(read, counts=(taps_h, taps_w), unroll=1):
    # Two light passes (the maximum, then the lowest index holding it) cost
    # less than one pass carrying (value, index) pairs. Step t reads row tap
    # t // count_w and column tap t % count_w of every bin (indexed, not
    # stacked: (steps, K, ph) index arrays pad to 128 lanes on TPU).
    count_h, count_w = counts

    def at(t):
      return read(rows[t // count_w][:, :, None], cols[t % count_w][:, None, :])

    def fold(op, init):
      body = lambda t, acc: op(acc, *at(t))
      return jax.lax.fori_loop(0, count_h * count_w, body, init, unroll=unroll)

    best = fold(lambda acc, value, _: jnp.maximum(acc, value), at(0)[0])
    nan = jnp.isnan(best) if dtypes.is_float(best.dtype) else None

    def lowest(acc, value, index):
      hit = value == best if nan is None else (value == best) | (jnp.isnan(value) & nan)
      return jnp.where(hit, jnp.minimum(acc, index), acc)

    return fold(lowest, jnp.full(best.shape, np.iinfo(np.int32).max, jnp.int32))

  def by_cells():
    return scan(cells)

  def by_largest_cells():
    # With conditionals (a loop of run-time length costs no host round trip
    # on CPU): as many steps as the largest bin has cells, not the bound.
    largest = lambda lo, hi: jnp.maximum(jnp.max(hi - lo, initial=1), 1)
    return scan(cells, (largest(h_lo, h_hi), largest(w_lo, w_hi)))

  def by_blocks(policy):
    # The table holds levels_h * levels_w (value, index) pairs per cell: it
    # is built for a slice of the features at a time, about 1 / (levels_h *
    # levels_w) of them, so it stays near twice the map's size.
    chunks = _divisor_at_least(features, levels_h * levels_w)
    parts = jnp.moveaxis(source.reshape(batch, height, width, chunks, -1), 3, 0)
    at = lambda row, col: (level_h[:, :, None], level_w[:, None, :], k, row, col)
    side_by_side = policy.lane_dense_tables

    def part_winners(part):
      table = _sparse_table(part, levels_h, levels_w, side_by_side)
      if not side_by_side:
        read = lambda row, col: tuple(t[at(row, col)] for t in table)
      else:
        # A cell's features start at col * size of its table row.
        size = part.shape[-1]
        dims = jax.lax.GatherDimensionNumbers(
          offset_dims=(3,), collapsed_slice_dims=(0, 1, 2, 3), start_index_map=(0, 1, 2, 3, 4)
        )

        def read(row, col):
          starts = jnp.stack(jnp.broadcast_arrays(*at(row, col * size)), axis=-1)
          return tuple(jax.lax.gather(t, starts, dims, (1, 1, 1, 1, size)) for t in table)

      # A row of taps per iteration where the policy says loop steps cost
      # launches (GPU): one fused pass each.
      return scan(read, unroll=taps_w if policy.unrolled_loops else 1)

    winners = jax.lax.map(part_winners, parts)  # (chunks, K, ph, pw, features / chunks)
    return jnp.moveaxis(winners, 0, 3).reshape(winners.shape[1:4] + (features,))

  def by_policy(policy):
    blocks = functools.partial(by_blocks, policy)
    if not policy.conditionals:
      return blocks()
    return jax.lax.cond(jnp.any(level_h > 0) | jnp.any(level_w > 0), blocks, by_largest_cells)

  if levels_h == levels_w == 1:
    winner = by_cells()
  else:
    winner = choose(by_policy, reads=("conditionals", "unrolled_loops", "lane_dense_tables"))
  cell = index[:, None, None, None] * (height * width) + winner
  if x.size < 2**31:
    # One flat index per output: its transpose, the backward's scatter,
    # reads that one array (a gather over (cell, feature) pairs would build
    # two index columns per output for it).
    y = x.reshape(-1)[cell * features + jnp.arange(features, dtype=cell.dtype)]
  else:
    flat = x.reshape(batch * height * width, features)
    y = jnp.take_along_axis(flat, cell.reshape(-1, features), axis=0).reshape(winner.shape)
  empty = ((h_hi <= h_lo)[:, :, None] | (w_hi <= w_lo)[:, None, :])[..., None]
  return jnp.where(empty, jnp.zeros((), x.dtype), y)


# ---------------------------------------------------------------------------
# Position-sensitive RoIPool (R-FCN).


def _sum_taps_bound(sizes, length: int, bins: int) -> tuple[int, int | None]:
  """``(taps, block)`` of one axis of position-sensitive RoIPool, whose bins
  end at ``length - 1``: exact for concrete bin sizes (cell by cell, no
  block); under jit, taps for a bin of a box inside the map (at most
  ``ceil(length / bins) + 1`` cells), and the block size that covers a bin
  as large as the map in the fewest taps (``None`` when the taps already
  do)."""
  if sizes is not None:
    return max(1, int(sizes.max(initial=1))), None
  largest = max(1, length - 1)
  taps = min(largest, -(-length // bins) + 1)
  if taps >= largest:
    return taps, None
  return taps, min(range(2, largest + 1), key=lambda b: 2 * (b - 1) + largest // b)


def _cell_taps(lo, hi, taps: int):
  """Cells ``lo + t`` of each bin ``[lo, hi)`` and their weights (1 for
  ``t < hi - lo``, else 0 at cell ``lo``), ``(K, bins, taps)`` each."""
  t = jnp.arange(taps, dtype=jnp.int32)
  used = t < (hi - lo)[..., None]
  return jnp.where(used, lo[..., None] + t, lo[..., None]), used


def _axis_taps(lo, hi, taps: int, block: int | None, length: int):
  """One axis of every bin ``[lo, hi)`` as ``(cells, weights)`` taps of the
  map and ``(blocks, weights)`` taps of its ``block``-cell sums (``None``
  without a block).

  With a block, a bin is its cells up to the first multiple of ``block``,
  the whole aligned blocks after it, and the cells after the last one: at
  most ``2 (block - 1)`` cells and ``(length - 1) // block`` blocks.
  """
  if block is None:
    return _cell_taps(lo, hi, taps), None
  first = jnp.minimum(-(-lo // block) * block, hi)
  last = jnp.maximum(hi // block * block, first)
  head, tail = _cell_taps(lo, first, block - 1), _cell_taps(last, hi, block - 1)
  cells = tuple(jnp.concatenate(pair, axis=-1) for pair in zip(head, tail))
  return cells, _cell_taps(first // block, last // block, (length - 1) // block)


def _block_sums(x, block: int, axis: int):
  """The sums of ``x`` over aligned blocks of ``block`` cells along ``axis``
  (the last block padded with 0)."""
  n = x.shape[axis]
  blocks = -(-n // block)
  pad = [(0, 0)] * x.ndim
  pad[axis] = (0, blocks * block - n)
  x = jnp.pad(x, pad)
  return x.reshape(x.shape[:axis] + (blocks, block) + x.shape[axis + 1 :]).sum(axis + 1)


def ps_roi_pool(
  x: jax.typing.ArrayLike,
  boxes: jax.typing.ArrayLike,
  output_shape: int | Sequence[int],
  *,
  spatial_scale: float = 1.0,
) -> jax.Array:
  r"""Position-sensitive RoIPool (R-FCN): each bin's own features averaged over the bin.

  The features split into $\mathrm{ph} \cdot \mathrm{pw}$ groups; output
  feature $c$ of bin $(p, q)$ reads only input feature
  $(c \, \mathrm{ph} + p) \, \mathrm{pw} + q$ (torchvision's channel
  mapping). For a box ``(b, x1, y1, x2, y2)``, the corners are scaled and
  rounded like C's ``round``: $w_0 = \operatorname{round}(x_1 s)$,
  $w_1 = \operatorname{round}(x_2 s)$; the box spans
  $\mathrm{size} = \max(w_1 - w_0, 1)$ cells (no ``+ 1``, unlike
  [`roi_pool`][jaxpool.roi_pool]) and output column $q$ of $\mathrm{pw}$
  covers the cells $[\mathrm{lo}_q, \mathrm{hi}_q)$:

  $$
  \mathrm{lo}_q = \operatorname{clip}(w_0 + \lfloor q \, \mathrm{size} / \mathrm{pw} \rfloor,\,
  0, W - 1), \quad
  \mathrm{hi}_q = \operatorname{clip}(w_0 + \lceil (q + 1) \, \mathrm{size} / \mathrm{pw} \rceil,\,
  0, W - 1)
  $$

  (rows alike), and

  $$
  y[p, q, c] = \frac{1}{|\mathrm{bin}|} \sum_{(h, w) \in \mathrm{bin}}
  x[b, h, w, (c \, \mathrm{ph} + p) \, \mathrm{pw} + q]
  $$

  with an empty bin giving 0. As in torchvision's forward kernels (CPU and
  CUDA), bins end at $H - 1$ and $W - 1$: the last row and column of the map
  are never read. torchvision's backward clips at $H$ and $W$ instead, so
  it is not the derivative of its forward; jaxpool's gradient is the true
  derivative of the output above (the two agree for bins clear of the last
  row and column).

  Args:
    x: ``(batch, H, W, features)`` floating-point feature maps; ``features``
      a multiple of ``ph * pw``.
    boxes: ``(K, 5)`` rows ``(batch_index, x1, y1, x2, y2)`` in image
      coordinates, checked and handled as in [`roi_pool`][jaxpool.roi_pool].
    output_shape: ``(ph, pw)`` or an int for both.
    spatial_scale: map size over image size (``1/16`` for a stride-16 map).

  Returns:
    ``(K, ph, pw, features / (ph * pw))``, ``x``'s dtype.

  Examples:
    >>> import jax.numpy as jnp, jaxpool
    >>> x = jnp.broadcast_to(jnp.arange(4.0), (1, 5, 5, 4))  # feature i holds i
    >>> boxes = jnp.array([[0, 0, 0, 4, 4]])
    >>> jaxpool.ps_roi_pool(x, boxes, 2)[0, ..., 0]  # bin (p, q) reads feature 2 p + q
    Array([[0., 1.],
           [2., 3.]], dtype=float32)
    >>> x = jnp.arange(25.0).reshape(1, 5, 5, 1)
    >>> jaxpool.ps_roi_pool(x, boxes, 1)[0, 0, 0]  # rows and columns 0-3 of 0-4
    Array([9.], dtype=float32)
  """
  (ph, pw), scale = _roi_pool_options(output_shape, spatial_scale)
  x = box_args.check_map(x, "ps_roi_pool")
  batch, height, width, features = x.shape
  out_features = box_args.position_sensitive_features(features, (ph, pw), "ps_roi_pool")
  pdtype = box_args.position_dtype(x.dtype)
  index, corners, invalid = box_args.check_boxes(boxes, batch, "ps_roi_pool", pdtype)
  if not corners.shape[0]:
    return jnp.zeros((0, ph, pw, out_features), x.dtype)
  corners = jax.lax.stop_gradient(corners)
  rounded = _round_half_away(corners * jnp.asarray(scale, pdtype))
  size = jnp.maximum(rounded[:, 2:] - rounded[:, :2], 1)  # torchvision: no + 1 here
  h_lo, h_hi = _pool_bins(rounded[:, 1], size[:, 1], ph, height - 1, pdtype)
  w_lo, w_hi = _pool_bins(rounded[:, 0], size[:, 0], pw, width - 1, pdtype)

  taps_h, block_h = _sum_taps_bound(concrete_values(h_hi - h_lo), height, ph)
  taps_w, block_w = _sum_taps_bound(concrete_values(w_hi - w_lo), width, pw)
  grouped = box_args.bins_first(replicated(x), (ph, pw)).reshape(
    batch, height, width, ph * pw * out_features
  )
  out = _average_bins(
    grouped, index, h_lo, h_hi, w_lo, w_hi, (ph, pw), taps_h, block_h, taps_w, block_w
  )
  return box_args.nan_where_invalid(out, invalid)


@functools.partial(jax.jit, static_argnums=(6, 7, 8, 9, 10))
def _average_bins(x, index, h_lo, h_hi, w_lo, w_hi, output_shape, taps_h, block_h, taps_w, block_w):
  """The mean of every bin ``[h_lo, h_hi) x [w_lo, w_hi)`` of ``x[index]``
  over the bin's own features (``x``: `bins_first`'s rows as ``(batch, H, W,
  ph * pw * out_features)``), 0 for an empty bin; compiled once per static
  bound (also when called eagerly).

  A bin of at most ``taps_h x taps_w`` cells is summed cell by cell; when a
  larger one exists (only under jit: a box larger than the map), every bin
  is summed from its cells near its edges and the whole aligned blocks of
  maps of block sums (``block_h`` rows, ``block_w`` columns, or both)
  between them, built only then (on platforms without conditionals, always).
  The derivative always takes the blocks.
  """
  out_features = x.shape[-1] // (output_shape[0] * output_shape[1])
  compute = dtypes.compute_dtype(x.dtype)

  def bin_sums(x, bins, blocks: bool):
    """Every bin's sum, cell by cell or by blocks: linear in ``x``."""
    index, h_lo, h_hi, w_lo, w_hi = bins

    def gather_sum(table, rows, cols):
      """The bins' sums over ``table (batch, rows, cols, features)``'s taps."""
      _, table_h, table_w, _ = table.shape
      (rows, wy), (cols, wx) = rows, cols
      rows = (index * (table_h * table_w))[:, None, None] + rows * table_w
      flat = table.reshape(-1, out_features)
      return box_args.sum_taps(flat, rows, wy, cols, wx, compute, position_sensitive=True)

    if not blocks:
      return gather_sum(x, _cell_taps(h_lo, h_hi, taps_h), _cell_taps(w_lo, w_hi, taps_w))
    row_cells, row_blocks = _axis_taps(h_lo, h_hi, taps_h, block_h, x.shape[1])
    col_cells, col_blocks = _axis_taps(w_lo, w_hi, taps_w, block_w, x.shape[2])
    wide = x.astype(compute)  # block sums in the compute dtype
    by_rows = None if block_h is None else _block_sums(wide, block_h, 1)
    total = gather_sum(x, row_cells, col_cells)
    if block_h is not None:
      total += gather_sum(by_rows, row_blocks, col_cells)
    if block_w is not None:
      total += gather_sum(_block_sums(wide, block_w, 2), row_cells, col_blocks)
    if block_h is not None and block_w is not None:
      total += gather_sum(_block_sums(by_rows, block_w, 2), row_blocks, col_blocks)
    return total

  @jax.custom_jvp
  def chosen_sums(x, bins):
    """`bin_sums` by blocks only where a bin needs them (a conditional on
    CPU), else always."""

    def by_policy(policy, x, *bins):
      if not policy.conditionals:
        return bin_sums(x, bins, True)
      _, h_lo, h_hi, w_lo, w_hi = bins
      needs_blocks = jnp.any(h_hi - h_lo > taps_h) | jnp.any(w_hi - w_lo > taps_w)
      return jax.lax.cond(
        needs_blocks, lambda v: bin_sums(v, bins, True), lambda v: bin_sums(v, bins, False), x
      )

    return choose(by_policy, x, *bins, reads=("conditionals",))

  @chosen_sums.defjvp
  def _chosen_sums_jvp(primals, tangents):
    # Linear in x. The tangent takes the blocks on every platform: a
    # formulation chosen per platform would leave the backward program a
    # conditional on the forward's choice.
    x, bins = primals
    return chosen_sums(x, bins), bin_sums(tangents[0], bins, True)

  bins = (index, h_lo, h_hi, w_lo, w_hi)
  if block_h is None and block_w is None:
    total = bin_sums(x, bins, False)
  else:
    total = chosen_sums(x, bins)
  area = ((h_hi - h_lo)[:, :, None] * (w_hi - w_lo)[:, None, :])[..., None]
  mean = total / jnp.maximum(area, 1).astype(compute)
  return jnp.where(area > 0, mean, jnp.zeros((), compute)).astype(x.dtype)


register_option_check(roi_pool, _roi_pool_options)
register_option_check(ps_roi_pool, _roi_pool_options)
