"""Window geometry: the one place that turns window arguments into sizes.

Every operator that slides a window over the spatial axes asks this module for
its geometry instead of computing sizes itself. `window_geometry`
normalises and validates ``window_shape``, ``strides``, ``padding``,
``dilation`` and ``ceil_mode`` against the input shape and returns a
`WindowGeometry`, a hashable description of every window (so it can be a
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
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Sequence

import numpy as np

from jaxpool._src.core.checks import check_bool, is_int

PaddingLike = str | int | Sequence[int | tuple[int, int]]

__all__ = [
  "PaddingLike",
  "WindowGeometry",
  "check_window_options",
  "global_axes",
  "normalize_output_size",
  "normalize_padding",
  "normalize_spatial_shape",
  "spatial_axes",
  "window_geometry",
]


def _int_tuple(name: str, value, n: int, *, minimum: int, allow_scalar: bool):
  """Normalises ``value`` to a tuple of ``n`` ints ``>= minimum``."""
  if is_int(value):
    if not allow_scalar:
      raise TypeError(
        f"{name} must be a tuple of ints, one per spatial dimension; got the"
        f" int {value!r}. Write e.g. {name}=({value}, {value}) for 2-D"
        " pooling."
      )
    value = (int(value),) * n
  elif isinstance(value, Sequence) and not isinstance(value, str):
    value = tuple(value)
    if not all(is_int(v) for v in value):
      raise TypeError(f"{name} must contain only ints; got {value!r}.")
    value = tuple(int(v) for v in value)
  else:
    raise TypeError(
      f"{name} must be {'an int or ' if allow_scalar else ''}a tuple of"
      f" ints; got {value!r} of type {type(value).__name__}."
    )
  if n >= 0 and len(value) != n:
    raise ValueError(
      f"{name} must have one entry per spatial dimension ({n}); got {value!r} with {len(value)}."
    )
  if any(v < minimum for v in value):
    raise ValueError(f"{name} entries must be >= {minimum}; got {value!r}.")
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


def normalize_output_size(name: str, value, n: int) -> tuple[int, ...]:
  """``n`` positive ints from an int (the same on every axis) or a tuple of
  ``n`` (torchvision's ``output_size``)."""
  return _int_tuple(name, value, n, minimum=1, allow_scalar=True)


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


def global_axes(x, spatial_ndim: int | None, op: str) -> tuple[int, ...]:
  """The spatial axes a global operator reduces, non-empty.

  By default ``x`` is ``(batch, *spatial, features)`` (axes 1 to -2);
  ``spatial_ndim=N`` selects the ``N`` axes before the features for other
  batch layouts. Errors name ``op``.
  """
  if spatial_ndim is None:
    if x.ndim < 3:
      raise ValueError(
        f"{op} expects x of shape (batch, *spatial, features) with at least"
        f" one spatial axis; got x.shape={x.shape}. Pass spatial_ndim=N for"
        " other batch layouts."
      )
    axes = tuple(range(1, x.ndim - 1))
  else:
    if isinstance(spatial_ndim, bool) or not isinstance(spatial_ndim, int):
      raise TypeError(f"spatial_ndim must be an int; got {spatial_ndim!r}.")
    if spatial_ndim < 1:
      raise ValueError(f"spatial_ndim must be >= 1; got {spatial_ndim}.")
    axes = spatial_axes(x.ndim, spatial_ndim, "spatial_ndim", x.shape)
  if any(x.shape[a] == 0 for a in axes):
    raise ValueError(
      f"{op} needs non-empty spatial axes (an empty window has no mean or"
      f" maximum); got x.shape={x.shape}, spatial axes {axes}."
    )
  return axes


def normalize_padding(padding, n: int) -> str | tuple[tuple[int, int], ...]:
  """``'VALID'``, ``'SAME'``, or ``n`` non-negative ``(low, high)`` pairs
  from any padding argument; clear errors for anything else."""
  if isinstance(padding, str):
    mode = padding.upper()
    if mode not in ("VALID", "SAME"):
      raise ValueError(
        f"padding must be 'VALID', 'SAME', an int, a sequence of ints or a"
        f" sequence of (low, high) pairs; got the string {padding!r}."
      )
    return mode
  if is_int(padding):
    pairs = ((int(padding), int(padding)),) * n
  elif isinstance(padding, Sequence):
    if len(padding) != n:
      raise ValueError(
        f"padding must have one entry per spatial dimension ({n}); got"
        f" {padding!r} with {len(padding)}."
      )
    pairs = []
    for entry in padding:
      if is_int(entry):
        pairs.append((int(entry), int(entry)))
      elif isinstance(entry, Sequence) and len(entry) == 2 and all(is_int(v) for v in entry):
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
    return tuple((lo, hi + extra) for (lo, hi), extra in zip(self.padding, self.overhang))

  @property
  def is_unpadded(self) -> bool:
    """True when no window touches padding or the ceil-mode overhang."""
    return all(lo == hi == 0 for lo, hi in self.full_padding)

  @property
  def windows_overlap(self) -> bool:
    """True when some cell lies in two windows (taps ``t d`` and ``t' d``
    of one axis fall on the same stride phase)."""
    return any(
      len({(t * d) % s for t in range(k)}) < k
      for k, s, d in zip(self.window_shape, self.strides, self.dilation)
    )

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
    per_axis = [self.tap_valid(axis, include_pad=False) for axis in range(self.num_spatial)]
    masks = []
    for _, tap in self.offsets():
      mask = np.ones((), dtype=bool)
      for axis, t in enumerate(tap):
        mask = np.logical_and.outer(mask, per_axis[axis][:, t])
      masks.append(mask[..., None])
    return masks

  def along(self, axis: int, in_shape: Sequence[int]) -> WindowGeometry:
    """The 1-D window of ``axis`` alone, over an input of spatial shape
    ``in_shape`` (earlier passes of a separable reduction may have resized
    other axes): window, stride, dilation, padding and overhang of ``axis``,
    the identity window elsewhere. A product window is the composition of
    its ``along`` passes."""

    def pick(values, identity):
      return tuple(v if i == axis else identity for i, v in enumerate(values))

    out_shape = tuple(self.out_shape[i] if i == axis else n for i, n in enumerate(in_shape))
    return dataclasses.replace(
      self,
      in_shape=tuple(in_shape),
      window_shape=pick(self.window_shape, 1),
      strides=pick(self.strides, 1),
      dilation=pick(self.dilation, 1),
      padding=pick(self.padding, (0, 0)),
      out_shape=out_shape,
      overhang=pick(self.overhang, 0),
    )

  def first_valid_tap(self) -> np.ndarray:
    """Row-major window offset of the first real (unpadded) cell, per output."""
    flat = np.zeros((), dtype=np.int64)
    for axis in range(self.num_spatial):
      first = self.tap_valid(axis, include_pad=False).argmax(axis=1)
      flat = np.add.outer(flat * self.window_shape[axis], first)
    return flat


def check_window_options(
  window_shape: Sequence[int],
  strides: int | Sequence[int] | None = None,
  padding: PaddingLike = "VALID",
  *,
  dilation: int | Sequence[int] | None = None,
  ceil_mode: bool = False,
):
  """The window arguments checked without an input (as a layer's
  constructor does): ``(window_shape, strides, padding, dilation)``, with
  ``padding`` ``'VALID'``, ``'SAME'`` or ``(low, high)`` pairs; the errors of
  `window_geometry`."""
  window_shape = normalize_spatial_shape("window_shape", window_shape)
  n = len(window_shape)
  if strides is None:
    strides = window_shape
  strides = _int_tuple("strides", strides, n, minimum=1, allow_scalar=True)
  dilation = _int_tuple(
    "dilation",
    1 if dilation is None else dilation,
    n,
    minimum=1,
    allow_scalar=True,
  )
  check_bool("ceil_mode", ceil_mode)
  pad = normalize_padding(padding, n)
  if pad not in ("VALID", "SAME"):
    for (lo, hi), k, d in zip(pad, window_shape, dilation):
      extent = (k - 1) * d + 1
      if max(lo, hi) > extent // 2:
        raise ValueError(
          f"padding must be at most half the dilated window on each side"
          f" (pad <= ((k - 1) * d + 1) // 2 = {extent // 2} for k={k}, d={d});"
          f" got padding={padding!r}."
        )
  return window_shape, strides, pad, dilation


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
    The `WindowGeometry`.

  Raises:
    TypeError: an argument has the wrong type.
    ValueError: an argument has a bad value (non-positive sizes, wrong length,
      rank mismatch, padding above half the dilated window, window larger than
      the padded input).
  """
  window_shape, strides, pad, dilation = check_window_options(
    window_shape, strides, padding, dilation=dilation, ceil_mode=ceil_mode
  )
  n = len(window_shape)
  x_shape = tuple(x_shape)
  axes = spatial_axes(len(x_shape), n, "window_shape", x_shape)
  in_shape = tuple(int(x_shape[a]) for a in axes)
  eff = tuple((k - 1) * d + 1 for k, d in zip(window_shape, dilation))
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
