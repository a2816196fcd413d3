"""The backward pass of every pooling operator: one fused phase-layout scatter.

`scatter_to_input` sums every window's per-tap contributions onto the
input cells, the transpose of reading ``x`` through
`window_taps`.

Phase layout: along an axis with stride ``s``, input cell ``p`` is written
``p = q * s + r`` (block ``q``, phase ``r``). Tap ``t`` of window ``o`` sits at
``p = o * s + t * d - low``, that is in block ``q = o + shift`` and phase ``r``
with ``(shift, r) = divmod(t * d - low, s)``. So the cells of block ``q``
receive contributions only from the windows ``o = q - shift``, one per distinct
``shift`` (about ``ceil(k * d / s)`` of them), and which tap a window
contributes through is a constant of ``(shift, r)``. Reshaping the input to
``(..., Q, s, ...)`` (a free reshape) turns the scatter into a sum of a few
broadcasts of output-sized arrays shifted by whole blocks: no interior padding,
no ``select_and_scatter``.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxpool._src.core.backend import POLICIES, choose
from jaxpool._src.core.geometry import WindowGeometry
from jaxpool._src.core.sharding import reshape_spatial

__all__ = ["phase_shifts", "phase_view", "scatter_to_input"]


def phase_shifts(geom: WindowGeometry) -> list[tuple[tuple[int, ...], np.ndarray]]:
  """The block shifts of the phase layout and the tap each phase receives.

  Returns ``(shift, taps)`` pairs, one per combination of per-axis shifts
  that reaches some tap, ordered so that the contributing windows come in
  row-major order (earliest window first, torch's accumulation order).
  ``taps`` has shape ``strides``: the row-major tap index through which window
  ``q - shift`` reaches phase ``r`` of block ``q``, or ``-1`` where none does.
  """
  per_axis = []
  for k, s, d, (lo, _) in zip(geom.window_shape, geom.strides, geom.dilation, geom.padding):
    by_shift: dict[int, dict[int, int]] = {}
    for t in range(k):
      shift, phase = divmod(t * d - lo, s)
      by_shift.setdefault(shift, {})[phase] = t
    per_axis.append(by_shift)
  pairs = []
  for shift in itertools.product(*(sorted(a, reverse=True) for a in per_axis)):
    taps = np.full(geom.strides, -1, dtype=np.int64)
    for phase in np.ndindex(*geom.strides):
      tap = [a[sh].get(r) for a, sh, r in zip(per_axis, shift, phase)]
      if None not in tap:
        taps[phase] = np.ravel_multi_index(tap, geom.window_shape)
    if (taps >= 0).any():
      pairs.append((tuple(int(v) for v in shift), taps))
  return pairs


def _blocks(geom: WindowGeometry) -> tuple[int, ...]:
  """Blocks ``Q = ceil(in / s)`` per axis of the phase layout."""
  return tuple(-(-n // s) for n, s in zip(geom.in_shape, geom.strides))


def _interleaved(shape, batch: int, pairs) -> tuple[int, ...]:
  """``shape``'s spatial axes replaced by ``(a, b)`` pairs."""
  pairs = list(pairs)
  spatial = [v for pair in pairs for v in pair]
  return tuple(shape[:batch]) + tuple(spatial) + tuple(shape[batch + len(pairs) :])


def phase_view(x: jax.Array, geom: WindowGeometry, fill=0) -> jax.Array:
  """``x`` (input-shaped) as ``(*batch, Q1, s1, Q2, s2, ..., features)``.

  Cells past the input (when ``s`` does not divide its size) are ``fill``.
  """
  batch = x.ndim - geom.num_spatial - 1
  blocks = _blocks(geom)
  config = [(0, 0, 0)] * x.ndim
  for axis, (q, s, n) in enumerate(zip(blocks, geom.strides, geom.in_shape)):
    config[batch + axis] = (0, q * s - n, 0)
  if any(hi for _, hi, _ in config):
    x = lax.pad(x, np.array(fill, dtype=x.dtype), config)
  return reshape_spatial(x, _interleaved(x.shape, batch, zip(blocks, geom.strides)), batch)


def scatter_to_input(contribution, geom: WindowGeometry, operands, fills, pad_once=None):
  """Every window's per-tap contributions summed onto the input cells.

  Computes ``dx[p] = sum over (window o, tap t) with position(o, t) = p of
  contribution(t, *operands[o])``, the transpose of reading ``x`` through
  `window_taps`: the backward pass of a pooling operator, in one fused
  pass over the input (see the phase layout in the module docstring).

  Args:
    contribution: ``contribution(taps, *values)``, elementwise: ``taps`` is an
      int array broadcastable to the phase layout holding the row-major tap
      index (``-1`` where the window has no tap at that cell; the result must
      then be zero), ``values`` are the operands at the contributing window,
      of shape ``(*batch, Q1, 1, Q2, 1, ..., features)``. Returns an array
      broadcastable to ``(*batch, Q1, s1, Q2, s2, ..., features)``, or a
      tuple of them (then so is the result); it may close over
      `phase_view` arrays of the input.
    geom: the geometry.
    operands: output-shaped arrays ``(*batch, *out_shape, features)`` (or
      with a size-1 feature axis).
    fills: one value per operand for windows outside the output grid; the
      contribution of a window made of fills must be zero.
    pad_once: one bool per operand (default all ``True``): pad the operand
      once and slice it per block shift (a materialised copy, one output
      size of temp memory), or pad it per shift inside the fused pass (no
      temp). Which is faster depends on how the contribution uses the
      operand: on XLA:CPU a cotangent (or ``y``) padded in the pass costs
      nothing, while a max-pool winner or a log-normaliser under ``exp``
      padded in the pass is 3-4x slower. Past the platform's
      `max_fused_pads` block shifts
      every operand is padded once (XLA:CPU does not vectorise a pass
      with that many pads). Without shifts (windows that tile the input)
      nothing is padded.

  Returns:
    Array of shape ``(*batch, *in_shape, features)``.
  """
  pairs = phase_shifts(geom)
  if pad_once is None:
    pad_once = (True,) * len(operands)
  pad_once = tuple(pad_once)
  limits = {p.max_fused_pads for p in POLICIES.values()} - {None}
  if all(pad_once) or len(pairs) <= min(limits, default=len(pairs)):
    return _scatter(contribution, geom, pairs, operands, fills, pad_once)

  def formulation(policy, *values):
    limit = policy.max_fused_pads
    once = pad_once if limit is None or len(pairs) <= limit else (True,) * len(values)
    return _scatter(contribution, geom, pairs, values, fills, once)

  return choose(formulation, *operands, reads=("max_fused_pads",))


def _scatter(contribution, geom, pairs, operands, fills, pad_once):
  """`scatter_to_input` with each operand padded as ``pad_once`` says."""
  n = geom.num_spatial
  batch = operands[0].ndim - n - 1
  blocks = _blocks(geom)

  def pad(value, fill, low, high):
    """``value`` padded (negative: cropped) along the spatial axes."""
    config = [(0, 0, 0)] * value.ndim
    for a in range(n):
      config[batch + a] = (low[a], high[a], 0)
    return lax.pad(value, np.array(fill, dtype=value.dtype), config)

  # Block q of shift s reads window q - s: the operand shifted by s blocks,
  # cut to the input's blocks.
  def tail(shift):
    return [blocks[a] - geom.out_shape[a] - shift[a] for a in range(n)]

  most = [max(sh[a] for sh, _ in pairs) for a in range(n)]
  least = [min(sh[a] for sh, _ in pairs) for a in range(n)]
  padded = [
    pad(value, fill, most, tail(least)) if once else None
    for value, fill, once in zip(operands, fills, pad_once)
  ]
  total = None
  for shift, taps in pairs:
    shifted = []
    for value, fill, wide in zip(operands, fills, padded):
      if wide is None:
        part = pad(value, fill, shift, tail(shift))
      else:
        start = [0] * value.ndim
        limit = list(wide.shape)
        for a in range(n):
          start[batch + a] = most[a] - shift[a]
          limit[batch + a] = start[batch + a] + blocks[a]
        part = lax.slice(wide, start, limit)
      shifted.append(
        reshape_spatial(part, _interleaved(part.shape, batch, zip(blocks, (1,) * n)), batch)
      )
    table = taps.reshape(
      (1,) * batch + _interleaved(taps.shape + (1,), 0, zip((1,) * n, geom.strides))
    )
    term = contribution(table, *shifted)
    total = term if total is None else jax.tree.map(jnp.add, total, term)
  return jax.tree.map(lambda t: _merge_phases(t, geom, batch, blocks), total)


def _merge_phases(total, geom: WindowGeometry, batch: int, blocks) -> jax.Array:
  """Phase layout ``(*batch, Q1, s1, ..., features)`` back to the input's."""
  n = geom.num_spatial
  spatial = tuple(v for pair in zip(blocks, geom.strides) for v in pair)
  full = jnp.broadcast_to(total, total.shape[:batch] + spatial + total.shape[batch + 2 * n :])
  merged = reshape_spatial(
    full,
    full.shape[:batch]
    + tuple(q * s for q, s in zip(blocks, geom.strides))
    + full.shape[batch + 2 * n :],
    batch,
  )
  if merged.shape[batch : batch + n] != geom.in_shape:
    index = (slice(None),) * batch + tuple(slice(0, v) for v in geom.in_shape)
    merged = merged[index]
  return merged
