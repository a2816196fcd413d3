"""Window geometry shared by every sliding-window operator.

Every operator that slides a window over the spatial axes asks this module for
its geometry instead of computing sizes itself. :func:`window_geometry`
normalises and validates ``window_shape``, ``strides``, ``padding``,
``dilation`` and ``ceil_mode`` against the input shape and returns a
:class:`WindowGeometry`, a hashable description of every window (so it can be a
static argument of ``jax.custom_jvp``/``jax.jit``).

Conventions (torch semantics, channels-last layout):

* ``x.shape == (*batch, *spatial, features)``; the number of spatial axes is
  ``len(window_shape)``; any number of leading batch axes, including none.
* ``strides=None`` means ``strides = window_shape`` (torch, Keras, the papers;
  Flax defaults to 1).
* Output size per axis: ``floor((in + lo + hi - eff) / s) + 1`` with
  ``eff = (k - 1) * d + 1``; with ``ceil_mode`` the division rounds up, but a
  window that would start in the right padding is dropped. The cells the last
  ceil-mode window hangs past the padded input ("overhang") are never counted.
* Explicit padding on either side must be at most half the dilated window
  (``pad <= eff // 2``). A dilated window can still fall entirely on padding
  (its taps straddle the input, e.g. ``in=1, k=2, d=2, pad=1``): max pooling
  then gives ``-inf`` (as torch), sums give zero.

The module also holds the array primitives that window operators are built
from: :func:`window_slice` (the strided view of one window tap for every output
position) and :func:`window_unslice` (its transpose, scattering back onto the
unpadded input), and :func:`scatter_to_input`, which scatters every window's
per-tap contributions back onto the input in one fused pass (the backward pass
of every pooling operator).

Phase layout (used by :func:`scatter_to_input`): along an axis with stride
``s``, input cell ``p`` is written ``p = q * s + r`` (block ``q``, phase
``r``). Tap ``t`` of window ``o`` sits at ``p = o * s + t * d - low``, that is
in block ``q = o + shift`` and phase ``r`` with ``(shift, r) =
divmod(t * d - low, s)``. So the cells of block ``q`` receive contributions
only from the windows ``o = q - shift``, one per distinct ``shift`` (about
``ceil(k * d / s)`` of them), and which tap a window contributes through is a
constant of ``(shift, r)``. Reshaping the input to ``(..., Q, s, ...)`` (a
free reshape) turns the scatter into a sum of a few broadcasts of
output-sized arrays shifted by whole blocks: no interior padding, no
``select_and_scatter``.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import numbers
from collections.abc import Iterator, Sequence
from typing import Union

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

PaddingLike = Union[str, int, Sequence[Union[int, tuple[int, int]]]]

__all__ = [
    "PaddingLike",
    "WindowGeometry",
    "window_geometry",
    "normalize_spatial_shape",
    "spatial_axes",
    "window_slice",
    "window_taps",
    "window_unslice",
    "pad_input",
    "phase_shifts",
    "phase_view",
    "scatter_to_input",
    "sharding_like",
]


def _is_int(value) -> bool:
  return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _int_tuple(name: str, value, n: int, *, minimum: int, allow_scalar: bool):
  """Normalises ``value`` to a tuple of ``n`` ints ``>= minimum``."""
  if _is_int(value):
    if not allow_scalar:
      raise TypeError(
          f"{name} must be a tuple of ints, one per spatial dimension; got the"
          f" int {value!r}. Write e.g. {name}=({value}, {value}) for 2-D"
          " pooling."
      )
    value = (int(value),) * n
  elif isinstance(value, Sequence) and not isinstance(value, str):
    value = tuple(value)
    if not all(_is_int(v) for v in value):
      raise TypeError(
          f"{name} must contain only ints; got {value!r}."
      )
    value = tuple(int(v) for v in value)
  else:
    raise TypeError(
        f"{name} must be {'an int or ' if allow_scalar else ''}a tuple of"
        f" ints; got {value!r} of type {type(value).__name__}."
    )
  if n >= 0 and len(value) != n:
    raise ValueError(
        f"{name} must have one entry per spatial dimension ({n}); got"
        f" {value!r} with {len(value)}."
    )
  if any(v < minimum for v in value):
    raise ValueError(
        f"{name} entries must be >= {minimum}; got {value!r}."
    )
  return value


def normalize_spatial_shape(name: str, value) -> tuple[int, ...]:
  """Validates a tuple of positive ints that fixes the number of spatial dims.

  Used for ``window_shape`` and for ``output_shape`` of adaptive/unpooling
  operators. An int is a ``TypeError``: it cannot say how many spatial
  dimensions are meant.
  """
  shape = _int_tuple(name, value, -1, minimum=1, allow_scalar=False)
  if not shape:
    raise ValueError(f"{name} must have at least one entry; got {value!r}.")
  return shape


def spatial_axes(ndim: int, num_spatial: int, name: str, x_shape) -> tuple[int, ...]:
  """The spatial axes of a ``(*batch, *spatial, features)`` array.

  Raises a ``ValueError`` that names ``name`` when ``x`` has too few axes.
  """
  if ndim < num_spatial + 1:
    raise ValueError(
        f"x must have shape (*batch, *spatial, features) with {num_spatial}"
        f" spatial dimension(s) given by {name}; got x.shape={tuple(x_shape)}"
        f" (rank {ndim}, need at least {num_spatial + 1})."
    )
  return tuple(range(ndim - 1 - num_spatial, ndim - 1))


def _normalize_padding(padding, n: int) -> str | tuple[tuple[int, int], ...]:
  if isinstance(padding, str):
    mode = padding.upper()
    if mode not in ("VALID", "SAME"):
      raise ValueError(
          f"padding must be 'VALID', 'SAME', an int, a sequence of ints or a"
          f" sequence of (low, high) pairs; got the string {padding!r}."
      )
    return mode
  if _is_int(padding):
    pairs = ((int(padding), int(padding)),) * n
  elif isinstance(padding, Sequence):
    if len(padding) != n:
      raise ValueError(
          f"padding must have one entry per spatial dimension ({n}); got"
          f" {padding!r} with {len(padding)}."
      )
    pairs = []
    for entry in padding:
      if _is_int(entry):
        pairs.append((int(entry), int(entry)))
      elif (
          isinstance(entry, Sequence)
          and len(entry) == 2
          and all(_is_int(v) for v in entry)
      ):
        pairs.append((int(entry[0]), int(entry[1])))
      else:
        raise TypeError(
            "padding entries must be ints or (low, high) pairs of ints; got"
            f" {entry!r} in padding={padding!r}."
        )
    pairs = tuple(pairs)
  else:
    raise TypeError(
        "padding must be 'VALID', 'SAME', an int, a sequence of ints or a"
        f" sequence of (low, high) pairs; got {padding!r} of type"
        f" {type(padding).__name__}."
    )
  if any(v < 0 for pair in pairs for v in pair):
    raise ValueError(f"padding must be non-negative; got {padding!r}.")
  return pairs


@dataclasses.dataclass(frozen=True)
class WindowGeometry:
  """Every window of a sliding-window pooling, per spatial axis.

  Attributes:
    in_shape: spatial input sizes.
    window_shape: window size ``k`` per axis.
    strides: stride ``s`` per axis.
    dilation: dilation ``d`` per axis (tap ``j`` sits ``j * d`` cells from the
      window start).
    padding: ``(low, high)`` cells of padding per axis: the explicit (or
      ``'SAME'``) padding that ``count_include_pad`` counts.
    out_shape: spatial output sizes.
    overhang: cells past ``in + low + high`` the last ceil-mode window reaches,
      per axis (never counted, never selected).
  """

  in_shape: tuple[int, ...]
  window_shape: tuple[int, ...]
  strides: tuple[int, ...]
  dilation: tuple[int, ...]
  padding: tuple[tuple[int, int], ...]
  out_shape: tuple[int, ...]
  overhang: tuple[int, ...]

  @property
  def num_spatial(self) -> int:
    return len(self.window_shape)

  @property
  def window_size(self) -> int:
    """Number of taps in one window, ``prod(window_shape)``."""
    return math.prod(self.window_shape)

  @property
  def full_padding(self) -> tuple[tuple[int, int], ...]:
    """Padding that covers every window: ``padding`` plus the overhang."""
    return tuple(
        (lo, hi + extra) for (lo, hi), extra in zip(self.padding, self.overhang)
    )

  @property
  def is_unpadded(self) -> bool:
    """True when no window touches padding or the ceil-mode overhang."""
    return all(lo == hi == 0 for lo, hi in self.full_padding)

  def offsets(self) -> Iterator[tuple[int, tuple[int, ...]]]:
    """``(flat, tap)`` for every tap in row-major window order."""
    for flat, tap in enumerate(np.ndindex(*self.window_shape)):
      yield flat, tuple(int(t) for t in tap)

  def tap_positions(self, axis: int) -> np.ndarray:
    """Input coordinate of every tap, shape ``(out, k)``, for one axis.

    Coordinates are in the unpadded input: negative or ``>= in`` means a
    padding cell.
    """
    out, k = self.out_shape[axis], self.window_shape[axis]
    start = np.arange(out) * self.strides[axis] - self.padding[axis][0]
    return start[:, None] + np.arange(k)[None, :] * self.dilation[axis]

  def tap_valid(self, axis: int, *, include_pad: bool) -> np.ndarray:
    """Boolean ``(out, k)``: does the tap fall on a counted cell?

    With ``include_pad`` the explicit padding counts (torch's
    ``count_include_pad=True``); the ceil-mode overhang never does.
    """
    pos = self.tap_positions(axis)
    lo, hi = self.padding[axis]
    n = self.in_shape[axis]
    if include_pad:
      return (pos >= -lo) & (pos < n + hi)
    return (pos >= 0) & (pos < n)

  def clipped_runs(self, axis: int) -> list[tuple[int, int, int]]:
    """Runs of outputs along ``axis`` whose windows clip to the same taps.

    Returns ``(count, in_start, taps)`` per run, in output order: ``count``
    consecutive outputs whose real (unpadded) cells are ``taps`` taps starting
    at input cell ``in_start`` (then every ``stride``). Interior outputs form
    one run with the full window; each output touching padding or the
    ceil-mode overhang forms its own, with its window clipped to the input.
    """
    valid = self.tap_valid(axis, include_pad=False)
    first, taps = valid.argmax(axis=1), valid.sum(axis=1)
    starts = self.tap_positions(axis)[np.arange(len(first)), first]
    runs: list[tuple[int, int, int]] = []
    k = self.window_shape[axis]
    for start, count in zip(starts.tolist(), taps.tolist()):
      if count == k and runs and runs[-1][2] == k:  # the interior run grows
        runs[-1] = (runs[-1][0] + 1, runs[-1][1], k)
      else:
        runs.append((1, start, count))
    return runs

  def window_counts(self, *, include_pad: bool) -> np.ndarray:
    """Number of counted cells in every window, shape ``out_shape``."""
    counts = np.ones((), dtype=np.int64)
    for axis in range(self.num_spatial):
      per_axis = self.tap_valid(axis, include_pad=include_pad).sum(axis=1)
      counts = np.multiply.outer(counts, per_axis)
    return counts

  def tap_masks(self) -> list[np.ndarray | None]:
    """Per tap (row-major), a boolean ``out_shape + (1,)`` array of real cells.

    ``None`` for every tap when the windows never touch padding, so callers
    can skip masking entirely.
    """
    if self.is_unpadded:
      return [None] * self.window_size
    per_axis = [
        self.tap_valid(axis, include_pad=False) for axis in range(self.num_spatial)
    ]
    masks = []
    for _, tap in self.offsets():
      mask = np.ones((), dtype=bool)
      for axis, t in enumerate(tap):
        mask = np.logical_and.outer(mask, per_axis[axis][:, t])
      masks.append(mask[..., None])
    return masks

  def first_valid_tap(self) -> np.ndarray:
    """Row-major window offset of the first real (unpadded) cell, per output."""
    flat = np.zeros((), dtype=np.int64)
    for axis in range(self.num_spatial):
      first = self.tap_valid(axis, include_pad=False).argmax(axis=1)
      flat = np.add.outer(flat * self.window_shape[axis], first)
    return flat

  def reduce_window_args(self, ndim: int) -> dict:
    """Keyword arguments of ``lax.reduce_window`` for a rank-``ndim`` input."""
    batch = ndim - self.num_spatial - 1
    return dict(
        window_dimensions=(1,) * batch + self.window_shape + (1,),
        window_strides=(1,) * batch + self.strides + (1,),
        padding=((0, 0),) * batch + self.full_padding + ((0, 0),),
        window_dilation=(1,) * batch + self.dilation + (1,),
    )


def window_geometry(
    x_shape: Sequence[int],
    window_shape: Sequence[int],
    strides: int | Sequence[int] | None = None,
    padding: PaddingLike = "VALID",
    *,
    dilation: int | Sequence[int] | None = None,
    ceil_mode: bool = False,
) -> WindowGeometry:
  """Validates the window arguments against ``x_shape`` and sizes the output.

  Args:
    x_shape: shape of the input, ``(*batch, *spatial, features)``.
    window_shape: tuple of ints, one per spatial axis (an int is a
      ``TypeError``).
    strides: int or tuple; ``None`` means ``window_shape``.
    padding: ``'VALID'``, ``'SAME'``, an int, a sequence of ints (symmetric
      per axis) or a sequence of ``(low, high)`` pairs.
    dilation: int or tuple; ``None`` means 1.
    ceil_mode: round the output size up (torch semantics).

  Returns:
    The :class:`WindowGeometry`.

  Raises:
    TypeError: an argument has the wrong type.
    ValueError: an argument has a bad value (non-positive sizes, wrong length,
      rank mismatch, padding above half the dilated window, window larger than
      the padded input).
  """
  window_shape = normalize_spatial_shape("window_shape", window_shape)
  n = len(window_shape)
  x_shape = tuple(x_shape)
  axes = spatial_axes(len(x_shape), n, "window_shape", x_shape)
  in_shape = tuple(int(x_shape[a]) for a in axes)
  if strides is None:
    strides = window_shape
  strides = _int_tuple("strides", strides, n, minimum=1, allow_scalar=True)
  dilation = _int_tuple(
      "dilation", 1 if dilation is None else dilation, n, minimum=1,
      allow_scalar=True,
  )
  if not isinstance(ceil_mode, (bool, np.bool_)):
    raise TypeError(f"ceil_mode must be a bool; got {ceil_mode!r}.")
  eff = tuple((k - 1) * d + 1 for k, d in zip(window_shape, dilation))

  pad = _normalize_padding(padding, n)
  if pad == "VALID":
    pairs = ((0, 0),) * n
  elif pad == "SAME":
    pairs = []
    for size, s, e in zip(in_shape, strides, eff):
      out = -(-size // s)
      total = max((out - 1) * s + e - size, 0)
      pairs.append((total // 2, total - total // 2))
    pairs = tuple(pairs)
  else:
    pairs = pad
    for (lo, hi), e, k, d in zip(pairs, eff, window_shape, dilation):
      if max(lo, hi) > e // 2:
        raise ValueError(
            f"padding must be at most half the dilated window on each side"
            f" (pad <= ((k - 1) * d + 1) // 2 = {e // 2} for k={k}, d={d});"
            f" got padding={padding!r}."
        )

  out_shape, overhang = [], []
  for size, (lo, hi), s, e in zip(in_shape, pairs, strides, eff):
    span = size + lo + hi - e
    if span < 0:
      raise ValueError(
          f"window_shape={window_shape} (dilated extent {eff}) is larger than"
          f" the padded input: spatial shape {in_shape} with padding {pairs}."
      )
    if ceil_mode:
      out = -(-span // s) + 1
      if (out - 1) * s >= size + lo:  # last window would start in the padding
        out -= 1
    else:
      out = span // s + 1
    out_shape.append(out)
    overhang.append(max(0, (out - 1) * s + e - (size + lo + hi)))
  return WindowGeometry(
      in_shape=in_shape,
      window_shape=window_shape,
      strides=strides,
      dilation=dilation,
      padding=pairs,
      out_shape=tuple(out_shape),
      overhang=tuple(overhang),
  )


def pad_input(x: jax.Array, geom: WindowGeometry, value) -> jax.Array:
  """Pads the spatial axes of ``x`` by ``geom.full_padding`` with ``value``."""
  batch = x.ndim - geom.num_spatial - 1
  config = (
      [(0, 0, 0)] * batch
      + [(lo, hi, 0) for lo, hi in geom.full_padding]
      + [(0, 0, 0)]
  )
  return lax.pad(x, np.array(value, dtype=x.dtype), config)


def window_slice(
    x_padded: jax.Array, geom: WindowGeometry, tap: tuple[int, ...]
) -> jax.Array:
  """The value under window tap ``tap`` for every output position.

  Args:
    x_padded: input padded by :func:`pad_input`.
    geom: the geometry.
    tap: the tap's index in the window, one int per spatial axis.

  Returns:
    Array of shape ``(*batch, *out_shape, features)``.
  """
  batch = x_padded.ndim - geom.num_spatial - 1
  start = [0] * batch + [t * d for t, d in zip(tap, geom.dilation)] + [0]
  limit = (
      list(x_padded.shape[:batch])
      + [
          st + (o - 1) * s + 1
          for st, o, s in zip(start[batch:], geom.out_shape, geom.strides)
      ]
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


def map_unpadded_blocks(
    fn, x: jax.Array, geom: WindowGeometry, empty=0, *, with_first_taps=False
):
  """``fn(block, block_geom)`` over padding-free blocks of the windows.

  Splits the output grid into the product of every axis's
  :meth:`WindowGeometry.clipped_runs`, calls ``fn`` on the slice of ``x``
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
        part.shape, tuple(taps for _, _, taps, _ in chosen), geom.strides,
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
    return jax.tree.map(
        lambda *leaves: jnp.concatenate(leaves, axis=batch + axis), *parts
    )

  return assemble(0, ())


def window_unslice(
    values: jax.Array, geom: WindowGeometry, tap: tuple[int, ...]
) -> jax.Array:
  """Transpose of :func:`window_slice`, cropped to the unpadded input.

  Places ``values[..., i, ...]`` (output-shaped) on the input cell under tap
  ``tap`` of window ``i``; cells under padding are dropped, other cells are
  zero.
  """
  batch = values.ndim - geom.num_spatial - 1
  config = [(0, 0, 0)] * batch
  for t, d, (lo, _), o, s, n in zip(
      tap, geom.dilation, geom.padding, geom.out_shape, geom.strides,
      geom.in_shape,
  ):
    low = t * d - lo
    high = n - (low + (o - 1) * s + 1)
    config.append((low, high, s - 1))
  config.append((0, 0, 0))
  return lax.pad(values, np.array(0, dtype=values.dtype), config)


def sharding_like(like: jax.Array, shape: Sequence[int], keep: Sequence[int]):
  """An ``out_sharding`` for an array of ``shape`` made from ``like``.

  Axes in ``keep`` (same rank as ``like``) take ``like``'s sharding, the
  others are unsharded. ``None`` where JAX has no sharding-in-types, or for
  ranks that differ.
  """
  typeof = getattr(jax, "typeof", None)
  if like is None or typeof is None or len(shape) != like.ndim:
    return None
  sharding = getattr(typeof(like), "sharding", None)
  spec = getattr(sharding, "spec", None)
  if spec is None:
    return None
  spec = tuple(spec) + (None,) * (like.ndim - len(spec))
  keep = {a % like.ndim for a in keep}
  return jax.sharding.NamedSharding(
      sharding.mesh,
      jax.sharding.PartitionSpec(*(
          s if a in keep and shape[a] == like.shape[a] else None
          for a, s in enumerate(spec)
      )),
  )


def _reshape_spatial(x: jax.Array, shape: Sequence[int], batch: int) -> jax.Array:
  """Reshapes the spatial axes of ``x``, keeping batch and feature sharding.

  Under explicit sharding JAX asks reshapes for their output sharding: the
  batch axes and the feature axis keep theirs, the new spatial axes are
  unsharded.
  """
  shape = tuple(shape)
  typeof = getattr(jax, "typeof", None)
  sharding = getattr(typeof(x), "sharding", None) if typeof else None
  spec = tuple(getattr(sharding, "spec", None) or ())
  if not any(spec):
    return x.reshape(shape)
  spec = spec + (None,) * (x.ndim - len(spec))
  new = spec[:batch] + (None,) * (len(shape) - batch - 1) + spec[-1:]
  out = jax.sharding.NamedSharding(sharding.mesh, jax.sharding.PartitionSpec(*new))
  return lax.reshape(x, shape, out_sharding=out)


def phase_shifts(geom: WindowGeometry) -> list[tuple[tuple[int, ...], np.ndarray]]:
  """The block shifts of the phase layout and the tap each phase receives.

  Returns ``(shift, taps)`` pairs, one per combination of per-axis shifts
  that reaches some tap, ordered so that the contributing windows come in
  row-major order (earliest window first, torch's accumulation order).
  ``taps`` has shape ``strides``: the row-major tap index through which window
  ``q - shift`` reaches phase ``r`` of block ``q``, or ``-1`` where none does.
  """
  per_axis = []
  for k, s, d, (lo, _) in zip(
      geom.window_shape, geom.strides, geom.dilation, geom.padding
  ):
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
  return tuple(shape[:batch]) + tuple(spatial) + tuple(shape[batch + len(pairs):])


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
  return _reshape_spatial(
      x, _interleaved(x.shape, batch, zip(blocks, geom.strides)), batch
  )


def scatter_to_input(
    contribution, geom: WindowGeometry, operands, fills, pad_once=None
):
  """Every window's per-tap contributions summed onto the input cells.

  Computes ``dx[p] = sum over (window o, tap t) with position(o, t) = p of
  contribution(t, *operands[o])``, the transpose of reading ``x`` through
  :func:`window_taps`: the backward pass of a pooling operator, in one fused
  pass over the input (see the phase layout in the module docstring).

  Args:
    contribution: ``contribution(taps, *values)``, elementwise: ``taps`` is an
      int array broadcastable to the phase layout holding the row-major tap
      index (``-1`` where the window has no tap at that cell; the result must
      then be zero), ``values`` are the operands at the contributing window,
      of shape ``(*batch, Q1, 1, Q2, 1, ..., features)``. Returns an array
      broadcastable to ``(*batch, Q1, s1, Q2, s2, ..., features)``, or a
      tuple of them (then so is the result); it may close over
      :func:`phase_view` arrays of the input.
    geom: the geometry.
    operands: output-shaped arrays ``(*batch, *out_shape, features)`` (or
      with a size-1 feature axis).
    fills: one value per operand for windows outside the output grid; the
      contribution of a window made of fills must be zero.
    pad_once: one bool per operand (default all ``True``): pad the operand
      once and slice it per block shift (a materialised copy, one output
      size of temp memory), or pad it per shift inside the fused pass (no
      temp). Which is faster depends on how the contribution uses the
      operand; measured on XLA:CPU for 3x3 stride-2 windows, a cotangent (or
      ``y``) padded in the pass costs nothing or is faster, while a max-pool
      winner or a log-normaliser under ``exp`` padded in the pass is 3-4x
      slower. Without shifts (windows that tile the input) nothing is padded.

  Returns:
    Array of shape ``(*batch, *in_shape, features)``.
  """
  n = geom.num_spatial
  batch = operands[0].ndim - n - 1
  blocks = _blocks(geom)
  pairs = phase_shifts(geom)
  if pad_once is None:
    pad_once = (True,) * len(operands)

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
      shifted.append(_reshape_spatial(
          part, _interleaved(part.shape, batch, zip(blocks, (1,) * n)), batch
      ))
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
  full = jnp.broadcast_to(
      total, total.shape[:batch] + spatial + total.shape[batch + 2 * n:]
  )
  merged = _reshape_spatial(
      full,
      full.shape[:batch] + tuple(q * s for q, s in zip(blocks, geom.strides))
      + full.shape[batch + 2 * n:],
      batch,
  )
  if merged.shape[batch:batch + n] != geom.in_shape:
    index = (slice(None),) * batch + tuple(slice(0, v) for v in geom.in_shape)
    merged = merged[index]
  return merged
