"""Window reductions with fast, exact derivatives, shared by the families.

* `extremum_pool` (max/min of every window, torch's first-extremum
  derivative), `extremum_and_winner` (the value and the winning tap),
  `select_taps` (the element at a given tap of every window) and
  `scatter_winners` (its transpose);
* `window_sum` (sum of every window) and `scatter_window_sums`
  (its transpose);
* `window_filter` (every window weighted by a fixed filter, the same for
  every feature: a depthwise convolution) and `scatter_window_filter`
  (its transpose).

Forward passes are fused chains over the window taps (`.taps`); every
transpose is one phase-layout pass (`.scatter`). Linear maps whose
transpose must be fast are *written as* transposes (``jax.linear_transpose``),
so that a ``custom_jvp`` gives both forward and reverse mode.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Sequence
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxpool._src.core import dtypes
from jaxpool._src.core.backend import Policy, choose, fence
from jaxpool._src.core.geometry import WindowGeometry
from jaxpool._src.core.scatter import scatter_to_input
from jaxpool._src.core.taps import map_unpadded_blocks, window_taps

__all__ = [
  "extremum_and_winner",
  "extremum_pool",
  "never_wins",
  "reduce_windows",
  "reduce_windows_holding",
  "scatter_window_filter",
  "scatter_window_sums",
  "scatter_winners",
  "select_taps",
  "tap_index_dtype",
  "window_filter",
  "window_sum",
]

Kind = Literal["max", "min"]


def never_wins(dtype, kind: Kind):
  """The fill no element can beat: -inf (integer min) for max, +inf for min."""
  return dtypes.lowest(dtype) if kind == "max" else dtypes.highest(dtype)


def _reduce_extremum(x: jax.Array, geom: WindowGeometry, kind: Kind):
  """Max/min of every window (NaN propagates)."""
  op = lax.max if kind == "max" else lax.min
  if geom.is_unpadded:
    # A chain of strided slices, fused into one pass (faster than
    # reduce_window on XLA:CPU).
    return functools.reduce(op, window_taps(x, geom))
  # Padding never wins: windows clipped to the input, in padding-free blocks
  # (XLA:CPU runs fused pads slowly).
  return map_unpadded_blocks(
    lambda part, part_geom: _reduce_extremum(part, part_geom, kind),
    x,
    geom,
    never_wins(x.dtype, kind),
  )


def tap_index_dtype(geom: WindowGeometry):
  """Smallest integer dtype that holds a row-major tap index."""
  return np.int8 if geom.window_size <= np.iinfo(np.int8).max else np.int32


def extremum_and_winner(
  x: jax.Array, geom: WindowGeometry, kind: Kind
) -> tuple[jax.Array, jax.Array]:
  """One pass over the taps: every window's max (min) and the tap it came from.

  torch's rule: the first extremum in window order wins ties; a NaN always
  wins (so the last NaN of a window is selected, and the value is NaN);
  padding never wins (a window of only -inf selects its first real cell).

  Returns:
    ``(values, winner)``, both of shape ``(*batch, *out_shape, features)``;
      ``winner`` holds row-major window offsets (int8 for windows of at most
      127 taps, else int32).
  """
  return choose(
    lambda policy, v: _extremum_and_winner(v, geom, kind, policy),
    x,
    reads=("separable_min_taps",),
  )


def _extremum_and_winner(x, geom, kind, policy):
  if _is_large(geom, policy):
    return _separable_extremum_and_winner(x, geom, kind)
  if geom.is_unpadded:
    return _extremum_and_winner_of_taps(x, geom, kind)
  # Padding never wins: run the unpadded pass over blocks of windows clipped
  # to the input (no fused pads, which XLA:CPU runs slowly) and translate
  # each block's tap indices to the full window's.
  index_dtype = tap_index_dtype(geom)

  def block(part, part_geom, first_taps):
    local = np.indices(part_geom.window_shape).reshape(geom.num_spatial, -1)
    labels = np.ravel_multi_index(tuple(local + np.asarray(first_taps)[:, None]), geom.window_shape)
    return _extremum_and_winner_of_taps(part, part_geom, kind, labels, index_dtype)

  fill = never_wins(x.dtype, kind)

  def empty(shape):
    return jnp.full(shape, fill, x.dtype), jnp.zeros(shape, index_dtype)

  return map_unpadded_blocks(block, x, geom, empty, with_first_taps=True)


def _separable_extremum_and_winner(x, geom, kind):
  """`extremum_and_winner` one axis at a time, the last axis first.

  Each pass picks, per window of its axis, the first extremum (the last
  NaN) and carries the winner found so far from the chosen cell, so the
  combined offset is the first extremum in row-major window order: torch's
  rule, as in the one-pass chain, in a program that grows with the window's
  sides rather than its taps (large windows compile quickly).
  """
  shape = list(geom.in_shape)
  winner, inner = None, 1  # inner: taps of the axes already reduced
  for axis in reversed(range(geom.num_spatial)):
    along = geom.along(axis, shape)
    shape[axis] = geom.out_shape[axis]
    if not _does_work(along):
      continue
    x, local = extremum_and_winner(fence(x) if winner is not None else x, along, kind)
    local = local.astype(np.int32)
    if winner is not None:
      # The winner so far, read at the chosen cell of this axis's window
      # (carried as float32, exact, so that the fence holds).
      carried = _gather_winners(fence(winner.astype(np.float32)), local, along)
      local = local * inner + carried.astype(np.int32)
    winner, inner = local, inner * geom.window_shape[axis]
  return x, winner.astype(tap_index_dtype(geom))


def _extremum_and_winner_of_taps(x, geom, kind, labels=None, index_dtype=None):
  """`extremum_and_winner`; tap ``i`` is reported as ``labels[i]``."""
  if labels is None:
    labels, index_dtype = np.arange(geom.window_size), tap_index_dtype(geom)
  out_dtype = x.dtype
  x = x.astype(dtypes.compute_dtype(x.dtype))  # exact; bf16 is emulated on CPU
  fill = never_wins(x.dtype, kind)
  better = lax.gt if kind == "max" else lax.lt
  taps = window_taps(x, geom, fill)
  # The running winner is tracked in x's (float) dtype, which XLA:CPU
  # vectorises with the values (an int8 chain it does not), and cast
  # to the small index dtype once. Float or int32, it is exact: taps < 2**24.
  chain_dtype = x.dtype if dtypes.is_float(x.dtype) else np.int32
  # Built from a slice of x so that they carry x's sharding.
  like = taps[0]
  first = labels[geom.first_valid_tap()].astype(chain_dtype)[..., None]
  winner = jnp.zeros_like(like, dtype=chain_dtype) + first
  best = jnp.full_like(like, fill)
  check_nan = dtypes.is_float(x.dtype)
  for flat, value in enumerate(taps):
    take = better(value, best)
    if check_nan:
      take = take | jnp.isnan(value)
    winner = jnp.where(take, np.asarray(labels[flat], chain_dtype), winner)
    best = jnp.where(take, value, best)
  return best.astype(out_dtype), winner.astype(index_dtype)


def scatter_winners(cotangent: jax.Array, winner: jax.Array, geom: WindowGeometry) -> jax.Array:
  """Routes every window's cotangent to the input cell at offset ``winner``.

  The backward pass of max/min pooling (windows' contributions to one cell
  are summed, earliest window first, as torch accumulates): one fused pass
  over the input through `scatter_to_input`.
  """
  compute_dtype = dtypes.compute_dtype(cotangent.dtype)
  # The winner is padded once and sliced per block shift; the cotangent is
  # padded inside the fused pass (no temp; a winner padded there makes the
  # pass slower, see scatter_to_input's pad_once).
  dx = scatter_to_input(
    lambda taps, win, g: jnp.where(win == taps.astype(win.dtype), g, 0),
    geom,
    (winner, cotangent.astype(compute_dtype)),
    (-1, 0),
    pad_once=(True, False),
  )
  return dx.astype(cotangent.dtype)


def _gather_winners(values: jax.Array, winner: jax.Array, geom: WindowGeometry):
  """Every window's element at row-major offset ``winner``: one fused chain
  of selects over the strided taps (padded taps, never winners, read 0)."""
  out = None
  for flat, tap in enumerate(window_taps(values, geom, 0)):
    hit = winner == np.asarray(flat, winner.dtype)
    out = jnp.where(hit, tap, 0) if out is None else jnp.where(hit, tap, out)
  return out


def _select_taps_linear(values: jax.Array, winner: jax.Array, geom: WindowGeometry) -> jax.Array:
  """`select_taps` written as the transpose of `scatter_winners`
  (``jax.linear_transpose``), so that reverse mode, which transposes it back,
  runs the one-pass phase scatter. Evaluating it directly is slow on XLA:CPU
  (a masked copy of the input reduced over the phase axes): it only serves as
  a tangent map."""
  compute_dtype = dtypes.compute_dtype(values.dtype)
  like = jnp.zeros_like(winner, dtype=compute_dtype)  # only its type (and sharding) is read
  (out,) = jax.linear_transpose(lambda g: scatter_winners(g, winner, geom), like)(
    values.astype(compute_dtype)
  )
  return out.astype(values.dtype)


@functools.partial(jax.custom_jvp, nondiff_argnums=(2,))
def select_taps(values: jax.Array, winner: jax.Array, geom: WindowGeometry) -> jax.Array:
  """Gathers, for every window, the element at row-major offset ``winner``.

  Linear in ``values``. Its value is a fused select chain over the window
  taps; its derivative (the same gather of the tangent) is written as the
  transpose of `scatter_winners`, so that reverse mode runs the
  one-pass phase scatter. Both modes differentiate it.
  """
  return _gather_winners(values, winner, geom)


@select_taps.defjvp
def _select_taps_jvp(geom, primals, tangents):
  (values, winner), (t, _) = primals, tangents
  return select_taps(values, winner, geom), _select_taps_linear(t, winner, geom)


@functools.partial(jax.custom_jvp, nondiff_argnums=(1, 2))
def _extremum_pool(x: jax.Array, geom: WindowGeometry, kind: Kind):
  return _reduce_extremum(x, geom, kind)


@_extremum_pool.defjvp
def _extremum_pool_jvp(geom, kind, primals, tangents):
  (x,), (t,) = primals, tangents
  y, winner = extremum_and_winner(x, geom, kind)
  return y, _select_taps_linear(t, winner, geom)


def _is_large(geom: WindowGeometry, policy: Policy) -> bool:
  """Whether ``geom``'s windows are reduced one axis at a time
  (`separable_min_taps`)."""
  reduced_axes = [a for a, k in enumerate(geom.window_shape) if k > 1]
  return geom.window_size >= policy.separable_min_taps and len(reduced_axes) >= 2


def _does_work(along: WindowGeometry) -> bool:
  """Whether a 1-D pass of `_separable` changes its input."""
  return along.window_size > 1 or along.out_shape != along.in_shape or any(map(any, along.padding))


def _separable(reduce, x, geom, policy):
  """``reduce(x, geom)`` for a reduction that is a product of 1-D ones.

  Windows of at least ``policy.separable_min_taps`` taps over two or more
  axes run one 1-D pass per axis, the last axis first, fenced apart
  (`fence`): the program and the run time
  grow with the sum of the window's sides instead of their product. Smaller
  windows run ``reduce`` once.
  """
  if not _is_large(geom, policy):
    return reduce(x, geom)
  shape = list(geom.in_shape)
  passes = 0
  for axis in reversed(range(geom.num_spatial)):
    along = geom.along(axis, shape)
    if _does_work(along):
      x = reduce(fence(x) if passes else x, along)
      passes += 1
    shape[axis] = geom.out_shape[axis]
  return x


def _reduce_window(x, geom: WindowGeometry, init, op):
  """``lax.reduce_window`` over ``geom``'s windows (padded with ``init``).

  ``op`` is one of ``lax``'s monoids (``add``, ``max``, ``min``), which JAX
  differentiates.
  """
  y = lax.reduce_window(x, np.array(init, x.dtype), op, **_window_arguments(x, geom))
  return _keep_output_windows(y, geom)


def _window_arguments(x, geom: WindowGeometry) -> dict:
  batch = x.ndim - geom.num_spatial - 1
  ones = (1,) * batch
  return dict(
    window_dimensions=ones + geom.window_shape + (1,),
    window_strides=ones + geom.strides + (1,),
    padding=((0, 0),) * batch + geom.full_padding + ((0, 0),),
    window_dilation=ones + geom.dilation + (1,),
  )


def _keep_output_windows(y, geom: WindowGeometry):
  # The ceil-mode overhang may admit one more window than torch keeps.
  batch = y.ndim - geom.num_spatial - 1
  return y[(slice(None),) * batch + tuple(slice(0, o) for o in geom.out_shape)]


def reduce_windows(operands, inits, combine, geom: WindowGeometry) -> tuple:
  """Every window of ``geom`` reduced by one monoid over several operands.

  ``combine(a, b)`` merges two tuples of partial results (one per operand,
  elementwise) and must be associative and commutative, with ``inits`` its
  identity; padding holds ``inits``. One ``lax.reduce_window`` reads every
  operand (``(*batch, *spatial, features)``) once; JAX does not
  differentiate it (callers write the derivative). Returns one
  ``(*batch, *out_shape, features)`` array per operand.
  """
  operands = tuple(operands)
  ys = lax.reduce_window(
    operands,
    tuple(np.array(i, v.dtype) for i, v in zip(inits, operands)),
    lambda a, b: tuple(combine(a, b)),
    **_window_arguments(operands[0], geom),
  )
  return tuple(_keep_output_windows(y, geom) for y in ys)


def reduce_windows_holding(operands, inits, combine, geom: WindowGeometry) -> tuple:
  """For every input cell, ``combine`` over the windows that hold it.

  The transpose pattern of `reduce_windows`: ``operands`` have the
  output's shape (one value per window) and the results the input's shape;
  cell ``p`` reduces the values of every window ``o`` with a tap on ``p``
  (a cell no window holds gets ``inits``). One ``lax.reduce_window`` over the
  output dilated by the strides (``base_dilation``, holes holding ``inits``).
  """
  operands = tuple(operands)
  batch = operands[0].ndim - geom.num_spatial - 1
  ones = (1,) * batch
  padding, keep = [], []
  for n, k, s, d, (lo, _), m in zip(
    geom.in_shape,
    geom.window_shape,
    geom.strides,
    geom.dilation,
    geom.padding,
    geom.out_shape,
  ):
    # Cell p is held by the windows at dilated positions p + lo - j d.
    before = (k - 1) * d - lo
    after = n - 1 + lo - (m - 1) * s
    padding.append((before, max(after, 0)))
    keep.append(slice(0, n))
  ys = lax.reduce_window(
    operands,
    tuple(np.array(i, v.dtype) for i, v in zip(inits, operands)),
    lambda a, b: tuple(combine(a, b)),
    window_dimensions=ones + geom.window_shape + (1,),
    window_strides=ones + (1,) * geom.num_spatial + (1,),
    padding=((0, 0),) * batch + tuple(padding) + ((0, 0),),
    base_dilation=ones + geom.strides + (1,),
    window_dilation=ones + geom.dilation + (1,),
  )
  index = (slice(None),) * batch + tuple(keep)
  return tuple(y[index] for y in ys)


def _windowed(taps_formulation, reduce_window_formulation, x, geom):
  """The policy's formulation of a window reduction (see
  `window_reductions`)."""

  def formulation(policy, v):
    if policy.window_reductions == "reduce_window" and reduce_window_formulation:
      return reduce_window_formulation(v)
    return _separable(taps_formulation, v, geom, policy)

  return choose(formulation, x, reads=("window_reductions", "separable_min_taps"))


def extremum_pool(x: jax.Array, geom: WindowGeometry, kind: Kind) -> jax.Array:
  """Max (``kind='max'``) or min pooling of ``x`` over ``geom``'s windows.

  With the ``"taps"`` formulation, windows of many taps are
  `_separable`. The first extremum in row-major window order still
  wins: the last axis's pass picks the first extremum of each row, and each
  earlier axis's pass the first row (plane, ...) holding the window's
  extremum, so the derivative is torch's. The ``"reduce_window"``
  formulation's derivative (``select_and_scatter``, selecting with ``>=``)
  routes to the first extremum too; JAX does not differentiate it with
  dilation, so dilated windows of floats always take the taps. Nor does it
  differentiate it twice exactly in 64 bits on GPU (its second derivative
  packs a value and a tangent into one 64-bit word there, halving
  float64's bits), so float64 always takes the taps too.
  """
  floats = dtypes.is_float(x.dtype)
  pool = _reduce_extremum if not floats else _extremum_pool
  dilated = any(d > 1 for d in geom.dilation) and floats
  wide = floats and jnp.dtype(x.dtype).itemsize > 4
  by_reduce_window = (
    None
    if dilated or wide
    else (
      lambda v: _reduce_window(
        v, geom, never_wins(v.dtype, kind), lax.max if kind == "max" else lax.min
      )
    )
  )
  return _windowed(lambda v, g: pool(v, g, kind), by_reduce_window, x, geom)


def _sum_of_taps(x: jax.Array, geom: WindowGeometry) -> jax.Array:
  return functools.reduce(operator.add, window_taps(x, geom))


def scatter_window_sums(cotangent: jax.Array, geom: WindowGeometry) -> jax.Array:
  """Adds every window's cotangent onto each of its real cells.

  The transpose of `window_sum` (the backward pass of sum and average
  pooling), in one fused pass over the input (`scatter_to_input`).
  """
  return scatter_to_input(
    lambda taps, g: jnp.where(taps >= 0, g, 0),
    geom,
    (cotangent,),
    (0,),
    pad_once=(False,),  # padded inside the pass: no temp, and faster
  )


def window_sum(x: jax.Array, geom: WindowGeometry) -> jax.Array:
  """Sum of every window (padding counts as zero).

  The ``"taps"`` formulation: the sum is linear, so its derivative is the
  same map applied to the tangent, and each direction uses the form XLA:CPU
  runs fastest: strided slices summed in one fused pass (over padding-free
  blocks of clipped windows when there is padding) for the value, and, for
  the tangent map, the transpose of `scatter_window_sums`, so that
  reverse mode (which transposes it back) runs the one-pass phase scatter.
  Large windows are `_separable` sums: plain sums per axis, not
  differences of running sums, so float32 loses nothing to cancellation.
  The ``"reduce_window"`` formulation is XLA's windowed sum, whose transpose
  JAX writes as ``pad`` + ``reduce_window``.
  """
  return _windowed(_window_sum, lambda v: _reduce_window(v, geom, 0, lax.add), x, geom)


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def _window_sum(x: jax.Array, geom: WindowGeometry) -> jax.Array:
  return map_unpadded_blocks(_sum_of_taps, x, geom)


@_window_sum.defjvp
def _window_sum_jvp(geom, primals, tangents):
  (x,), (t,) = primals, tangents
  y = _window_sum(x, geom)
  # y stands for the cotangent's shape, dtype and sharding (only its type is
  # read).
  (dy,) = jax.linear_transpose(lambda g: scatter_window_sums(g, geom), y)(t)
  return y, dy


def _filter_weights(weights) -> tuple[float, ...]:
  """A filter as a hashable row-major tuple (a static argument)."""
  return tuple(float(w) for w in np.asarray(weights, dtype=np.float64).ravel())


def scatter_window_filter(cotangent: jax.Array, geom: WindowGeometry, weights) -> jax.Array:
  """Adds every window's cotangent, times each tap's weight, onto the tap's
  cell: the transpose of `window_filter`, in one phase-layout pass."""
  table = np.asarray(_filter_weights(weights) + (0.0,))  # tap -1 (no tap) weighs 0

  def contribution(taps, g):
    return g * jnp.asarray(table[taps], g.dtype)

  return scatter_to_input(contribution, geom, (cotangent,), (0,), pad_once=(False,))


def window_filter(x: jax.Array, geom: WindowGeometry, factors: Sequence) -> jax.Array:
  """Every window weighted by a fixed separable filter, the same for every
  feature (a depthwise convolution): ``y_o = sum_t w_t x_{o,t}`` with ``w``
  the outer product of ``factors`` (one 1-D filter per spatial axis;
  padded cells are zero).

  The ``"taps"`` formulation is the weighted strided slices in one fused
  pass, with `scatter_window_filter` as the transpose of its tangent map (one
  phase-layout pass backward); windows of at least ``separable_min_taps``
  taps run one axis at a time, fenced apart. The ``"reduce_window"``
  formulation is XLA's depthwise ``conv_general_dilated``, which JAX
  differentiates into convolutions.
  """
  factors = tuple(_filter_weights(f) for f in factors)
  if tuple(map(len, factors)) != geom.window_shape:
    raise ValueError(
      f"filters of {tuple(map(len, factors))} taps for a window {geom.window_shape}."
    )
  weights = functools.reduce(np.multiply.outer, map(np.asarray, factors))

  def taps(v, g):
    return _window_filter(v, g, _filter_weights(weights))

  def separable(v, policy):
    if not _is_large(geom, policy):
      return taps(v, geom)
    shape, passes = list(geom.in_shape), 0
    for axis in reversed(range(geom.num_spatial)):
      along = geom.along(axis, shape)
      if _does_work(along):
        v = _window_filter(fence(v) if passes else v, along, factors[axis])
        passes += 1
      shape[axis] = geom.out_shape[axis]
    return v

  def formulation(policy, v):
    if policy.window_reductions == "reduce_window":
      return _depthwise_convolution(v, geom, _filter_weights(weights))
    return separable(v, policy)

  return choose(formulation, x, reads=("window_reductions", "separable_min_taps"))


@functools.partial(jax.custom_jvp, nondiff_argnums=(1, 2))
def _window_filter(x: jax.Array, geom: WindowGeometry, weights: tuple[float, ...]) -> jax.Array:
  table = np.reshape(weights, geom.window_shape)

  def block(part, part_geom, first_taps):
    clipped = table[tuple(slice(f, f + k) for f, k in zip(first_taps, part_geom.window_shape))]
    terms = [
      tap * jnp.asarray(w, part.dtype)
      for w, tap in zip(clipped.ravel(), window_taps(part, part_geom))
      if w != 0
    ]
    return (
      functools.reduce(operator.add, terms)
      if terms
      else jnp.zeros_like(window_taps(part, part_geom)[0])
    )

  return map_unpadded_blocks(block, x, geom, with_first_taps=True)


@_window_filter.defjvp
def _window_filter_jvp(geom, weights, primals, tangents):
  (x,), (t,) = primals, tangents
  y = _window_filter(x, geom, weights)
  (dy,) = jax.linear_transpose(lambda g: scatter_window_filter(g, geom, weights), y)(t)
  return y, dy


def _depthwise_convolution(x, geom: WindowGeometry, weights: tuple[float, ...]) -> jax.Array:
  """`window_filter` as one depthwise ``conv_general_dilated``."""
  batch_shape = x.shape[: x.ndim - geom.num_spatial - 1]
  features = x.shape[-1]
  flat = x.reshape((-1, *x.shape[len(batch_shape) :]))
  n = geom.num_spatial
  kernel = jnp.broadcast_to(
    jnp.asarray(np.reshape(weights, geom.window_shape), x.dtype)[..., None, None],
    (*geom.window_shape, 1, features),
  )
  spatial = "".join("DHW"[-n:] if n <= 3 else [chr(ord("a") + i) for i in range(n)])
  y = lax.conv_general_dilated(
    flat,
    kernel,
    window_strides=geom.strides,
    padding=geom.full_padding,
    rhs_dilation=geom.dilation,
    dimension_numbers=(f"N{spatial}C", f"{spatial}IO", f"N{spatial}C"),
    feature_group_count=features,
  )
  y = _keep_output_windows(y, geom) if any(geom.overhang) else y
  return y.reshape((*batch_shape, *y.shape[1:]))
