r"""Anti-aliased downsampling (Zhang, "Making Convolutional Networks
Shift-Invariant Again", ICML 2019): low-pass filter, then subsample.

`blur_pool` is a depthwise binomial filter applied at a stride; `max_blur_pool`
is Zhang's MaxBlurPool, a stride-1 max pool followed by `blur_pool`. Both
follow timm's ``BlurPool2d``, antialiased-cnns' ``BlurPool`` and kornia's
``blur_pool2d`` / ``max_blur_pool2d``, in any number of spatial dimensions.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxpool._src.classic import max_pool
from jaxpool._src.core import dtypes
from jaxpool._src.core.backend import fence
from jaxpool._src.core.checks import check_choice, is_int
from jaxpool._src.core.eager import compiled_when_eager
from jaxpool._src.core.geometry import (
  PaddingLike,
  check_window_options,
  normalize_padding,
  normalize_spatial_shape,
  spatial_axes,
  window_geometry,
)
from jaxpool._src.core.options import register_option_check
from jaxpool._src.core.reductions import scatter_window_filter, window_filter

__all__ = ["PAD_MODES", "binomial_filter", "blur_pool", "max_blur_pool"]

PAD_MODES = ("reflect", "zeros", "edge", "wrap")
"""How `blur_pool` extends the input: torch's ``F.pad`` modes ``reflect``,
``constant`` (zeros), ``replicate`` (edge) and ``circular`` (wrap)."""
_NUMPY_MODES = {"reflect": "reflect", "zeros": "constant", "edge": "edge", "wrap": "wrap"}


def binomial_filter(size: int) -> np.ndarray:
  r"""The normalised 1-D binomial filter of ``size`` taps,
  $w_k = \binom{f-1}{k} / 2^{f-1}$ (``[1, 2, 1] / 4`` for 3 taps).

  Args:
    size: the number of taps $f \ge 1$.

  Returns:
    A float64 array of shape ``(size,)`` that sums to 1.

  Examples:
    >>> from jaxpool._src.antialias import binomial_filter
    >>> binomial_filter(3).tolist()
    [0.25, 0.5, 0.25]
  """
  if not is_int(size) or size < 1:
    raise ValueError(f"a binomial filter needs a positive int size; got {size!r}.")
  return np.array([math.comb(size - 1, k) for k in range(size)], dtype=np.float64) / 2.0 ** (
    size - 1
  )


def _blur_arguments(window_shape, strides, padding, pad_mode):
  """``(window_shape, strides, pairs or None)``: the checked arguments of
  `blur_pool`, ``None`` standing for the padding rule that needs no input."""
  window_shape = normalize_spatial_shape("window_shape", window_shape)
  n = len(window_shape)
  window_shape, strides, _, _ = check_window_options(window_shape, strides)
  check_choice("pad_mode", pad_mode, PAD_MODES)
  if padding is None:
    pairs = tuple(((s - 1) + (f - 1)) // 2 for f, s in zip(window_shape, strides))
    return window_shape, strides, tuple((p, p) for p in pairs)
  pairs = normalize_padding(padding, n)
  if pairs == "VALID":
    pairs = ((0, 0),) * n
  return window_shape, strides, None if pairs == "SAME" else pairs


def _check_blur_options(window_shape, strides, padding, pad_mode, **_):
  _blur_arguments(window_shape, strides, padding, pad_mode)


def _same_padding(in_shape, window_shape, strides):
  """TensorFlow's ``'SAME'``: ``ceil(n / s)`` outputs, the extra cell high."""
  pairs = []
  for n, f, s in zip(in_shape, window_shape, strides):
    total = max((-(-n // s) - 1) * s + f - n, 0)
    pairs.append((total // 2, total - total // 2))
  return tuple(pairs)


def _check_extension(size: int, pair: tuple[int, int], pad_mode: str) -> None:
  """torch's limits: a reflection must not reach past the opposite edge, a
  wrap must not wrap twice."""
  if pad_mode == "reflect" and max(pair) >= size:
    raise ValueError(
      f"pad_mode='reflect' needs padding smaller than the input along each axis"
      f" (as torch); got padding {pair} for an axis of {size}."
    )
  if pad_mode == "wrap" and max(pair) > size:
    raise ValueError(
      f"pad_mode='wrap' needs padding at most the input along each axis"
      f" (as torch's 'circular'); got padding {pair} for an axis of {size}."
    )


@dataclasses.dataclass(frozen=True)
class _Borders:
  """A box of an array ``x`` (``origin``: its first cell in ``x``; ``shape``)
  known only through thin slabs of ``x``: ``slabs[axis]`` holds
  ``(start, stop, slab)`` triples, ``slab`` being ``x``'s cells ``start`` to
  ``stop`` along ``axis`` (whole along the others).

  The extension blocks read ``x`` only near its ends, and only through
  `_extension`, along axes the box is not narrowed on; reading those cells
  from the slabs makes their transpose a few slab-sized cotangents, not
  input-sized pads of thin blocks summed over the whole input."""

  slabs: dict
  origin: tuple[int, ...]
  shape: tuple[int, ...]
  dtype: np.dtype
  reads: list | None = None  # where given, every read appends (axis, first, last)


def _narrow(v, start: int, stop: int, axis: int):
  """``v``'s cells ``start`` to ``stop`` along ``axis`` (an array or `_Borders`)."""
  if not isinstance(v, _Borders):
    return lax.slice_in_dim(v, start, stop, axis=axis)
  origin, shape = list(v.origin), list(v.shape)
  origin[axis] += start
  shape[axis] = stop - start
  return dataclasses.replace(v, origin=tuple(origin), shape=tuple(shape))


def _cells(v, start: int, stop: int, axis: int) -> jax.Array:
  """`_narrow`, as an array: a `_Borders` box reads the cells from the slab
  along ``axis`` that holds them."""
  if not isinstance(v, _Borders):
    return lax.slice_in_dim(v, start, stop, axis=axis)
  first, last = v.origin[axis] + start, v.origin[axis] + stop
  if first == last:
    return _zeros(_narrow(v, start, stop, axis))
  if v.reads is not None:
    v.reads.append((axis, first, last))
  for a, b, slab in v.slabs[axis]:
    if a <= first and last <= b:
      starts = [o - (a if d == axis else 0) for d, o in enumerate(v.origin)]
      starts[axis] = first - a
      stops = [o + n for o, n in zip(starts, v.shape)]
      stops[axis] = last - a
      return lax.slice(slab, starts, stops)
  raise AssertionError(f"cells {first}:{last} of axis {axis} are in no slab")


def _zeros(v) -> jax.Array:
  """Zeros shaped like ``v`` (an array or `_Borders`), with its sharding."""
  if not isinstance(v, _Borders):
    return jnp.zeros_like(v)
  slab = next(slab for slabs in v.slabs.values() for _, _, slab in slabs)
  cell = lax.slice(
    slab, (0,) * slab.ndim, [1 if a in v.slabs else n for a, n in enumerate(slab.shape)]
  )
  return jnp.broadcast_to(jnp.zeros_like(cell), v.shape)


def _extension(v, axis: int, side: str, count: int, pad_mode: str) -> jax.Array:
  """The ``count`` cells ``pad_mode`` puts before (``side='low'``) or after
  ``v`` (an array or `_Borders`) along ``axis``, from the few cells of ``v``
  they copy."""
  n = v.shape[axis]

  def cells(start, stop):
    return _cells(v, start, stop, axis)

  if count == 0:
    return cells(0, 0)
  if pad_mode in ("zeros", "edge"):
    edge = cells(0, 1) if side == "low" else cells(n - 1, n)
    if pad_mode == "zeros":  # from a cell of v, so that it keeps v's sharding
      return jnp.repeat(jnp.zeros_like(edge), count, axis=axis)
    return jnp.repeat(edge, count, axis=axis)
  if pad_mode == "wrap":
    return cells(n - count, n) if side == "low" else cells(0, count)
  # reflect: the edge cell is not repeated
  return jnp.flip(cells(1, count + 1) if side == "low" else cells(n - 1 - count, n - 1), axis)


def _extend(v, axes, pairs, pad_mode):
  """``v`` extended along every one of ``axes`` by ``pairs``."""
  for axis, (lo, hi) in zip(axes, pairs):
    parts = [_extension(v, axis, "low", lo, pad_mode), v, _extension(v, axis, "high", hi, pad_mode)]
    v = jnp.concatenate(parts, axis)
  return v


def _extended_filter(v, k, axes, pairs, pad_mode, geom, factors):
  """`window_filter` of ``v`` extended by ``pairs`` as ``pad_mode`` says,
  without extending all of ``v``: along each axis (from ``k`` on) the
  outputs whose windows lie inside ``v`` read a slice of it, and only the
  few at each end read a thin slab with its extension concatenated. The
  large interior block runs the one-pass filter (and phase-scatter
  backward) of an unpadded window; the slabs are a window thick."""
  if k == len(axes):
    shape = tuple(v.shape[a] for a in axes) + (1,)
    return window_filter(v, window_geometry(shape, geom.window_shape, geom.strides), factors)
  axis, (lo, hi) = axes[k], pairs[k]
  n, f, s, out = v.shape[axis], geom.window_shape[k], geom.strides[k], geom.out_shape[k]
  low = min(out, -(-lo // s))  # windows starting in the low extension
  high = min(out, max(0, out - ((lo + n - f) // s + 1)))  # windows reaching the high one
  if low + high >= out:  # a short axis: extend all of it
    blocks = [_extend(v, (axis,), (pairs[k],), pad_mode)]
  else:
    blocks = [lax.slice_in_dim(v, low * s - lo, (out - high - 1) * s + f - lo, axis=axis)]
    if low:
      inside = lax.slice_in_dim(v, 0, (low - 1) * s + f - lo, axis=axis)
      blocks.insert(0, jnp.concatenate([_extension(v, axis, "low", lo, pad_mode), inside], axis))
    if high:
      reach = (out - 1) * s + f - lo - n  # cells of the high extension read
      inside = lax.slice_in_dim(v, (out - high) * s - lo, n, axis=axis)
      extension = _extension(v, axis, "high", hi, pad_mode)[_first(axis, reach)]
      blocks.append(jnp.concatenate([inside, extension], axis))
  outs = [_extended_filter(b, k + 1, axes, pairs, pad_mode, geom, factors) for b in blocks]
  return jnp.concatenate(outs, axis) if len(outs) > 1 else outs[0]


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def _extended_filter_op(x: jax.Array, spec: tuple) -> jax.Array:
  """The filter of ``x`` extended as ``spec = (axes, pairs, pad_mode, geom,
  factors)`` says (``geom``: the windows over the extended input)."""
  axes, pairs, pad_mode, geom, factors = spec
  return _extended_filter(x, 0, axes, pairs, pad_mode, geom, factors)


def _extension_only(v, axes, pairs, pad_mode):
  """``v`` extended along ``axes`` by ``pad_mode`` minus ``v`` extended by
  zeros, built so that the cells of ``v`` itself are exact zeros (never
  ``inf - inf``): the extension cells alone."""
  if not axes:
    return _zeros(v)
  axis, (lo, hi) = axes[0], pairs[0]
  rest = (axes[1:], pairs[1:])
  parts = [
    _extend(_extension(v, axis, "low", lo, pad_mode), *rest, pad_mode),
    _extension_only(v, *rest, pad_mode),
    _extend(_extension(v, axis, "high", hi, pad_mode), *rest, pad_mode),
  ]
  return jnp.concatenate(parts, axis)


def _extension_blocks(v, k, axes, pairs, pad_mode, geom, start=()):
  """The extension cells alone, in the blocks the filter reads them in:
  ``(output ranges, block, block geometry)`` triples, whose filters are
  what the ``pad_mode`` extension adds to the zero-extended filter. Only
  outputs whose windows reach an extension get a block; along each axis
  (from ``k`` on) those are the few at each end, and each block is a slab a
  window thick. ``start`` holds the ``(first, count)`` output range of ``v``
  along the axes before ``k``."""
  if k == len(axes):
    return []
  axis, (lo, hi) = axes[k], pairs[k]
  n, f, s, out = v.shape[axis], geom.window_shape[k], geom.strides[k], geom.out_shape[k]
  low = min(out, -(-lo // s))
  high = min(out, max(0, out - ((lo + n - f) // s + 1)))
  rest = (axes[k + 1 :], pairs[k + 1 :])
  every_later = tuple((0, geom.out_shape[j]) for j in range(k + 1, len(axes)))

  def block(first, count, parts):
    slab = jnp.concatenate(parts, axis)
    shape = tuple(slab.shape[a] for a in axes) + (1,)
    block_geom = window_geometry(shape, geom.window_shape, geom.strides)
    return start + ((first, count),) + every_later, slab, block_geom

  def extended(cells):
    return _extend(cells, *rest, pad_mode)

  if low + high >= out:  # a short axis: one slab holds every output
    parts = [
      extended(_extension(v, axis, "low", lo, pad_mode)),
      _extension_only(v, *rest, pad_mode),
      extended(_extension(v, axis, "high", hi, pad_mode)),
    ]
    return [block(0, out, parts)]
  blocks = []
  if low:
    inside = _narrow(v, 0, (low - 1) * s + f - lo, axis)
    extension = extended(_extension(v, axis, "low", lo, pad_mode))
    blocks.append(block(0, low, [extension, _extension_only(inside, *rest, pad_mode)]))
  if high:
    reach = (out - 1) * s + f - lo - n
    inside = _narrow(v, (out - high) * s - lo, n, axis)
    extension = extended(_extension(v, axis, "high", hi, pad_mode)[_first(axis, reach)])
    blocks.append(block(out - high, high, [_extension_only(inside, *rest, pad_mode), extension]))
  middle = _narrow(v, low * s - lo, (out - high - 1) * s + f - lo, axis)
  return blocks + _extension_blocks(
    middle, k + 1, axes, pairs, pad_mode, geom, start + ((low, out - low - high),)
  )


def _extended_filter_transpose(g: jax.Array, x: jax.Array, spec: tuple) -> jax.Array:
  """The transpose of `_extended_filter_op`: the zero-extended filter's
  one-pass phase scatter, plus the fold of the extension cells' gradient
  back onto the cells they copy.

  The extension term, the filter of the extension cells alone, is a few
  thin blocks (`_extension_blocks`); each block's gradient is the same
  one-pass phase scatter at the block's size, and the blocks are built from
  thin slabs at the ends of ``x`` (`_Borders`), so their transpose is one
  slab-sized fold per slab. Each fold is computed apart (`fence`) and
  added to the scatter's gradient padded, which XLA fuses into the
  scatter's pass as a read of a small array: that pass is the only one over
  the input, and it carries none of the blocks' arithmetic.

  On XLA:CPU at (32, 64, 64, 64), 3x3/2, reflect: transposed with respect
  to all of ``x``, every block became an input-sized pad and the pass summed
  a dozen of them (fwd+bwd 5.9x ``avg_pool``'s, temp 0.46x the input);
  unfenced, the folds' arithmetic fuses into the pass and makes it several
  times slower again; a ``dynamic_update_slice`` per slab is exact too, but
  slow for a slab along an inner axis (a strided update)."""
  axes, pairs, pad_mode, geom, factors = spec
  zero_extended = dataclasses.replace(
    geom, in_shape=tuple(x.shape[a] for a in axes), padding=tuple(pairs)
  )
  weights = functools.reduce(np.multiply.outer, factors)
  dx = scatter_window_filter(g, zero_extended, weights)
  if pad_mode == "zeros":
    return dx
  places, blocks = _slab_places(x, spec)
  reached = _reached(x, spec)

  def block_inputs(*slabs):
    v = _borders(x, axes, places, slabs)
    return [b for _, b, _ in _extension_blocks(v, 0, axes, reached, pad_mode, geom)]

  cotangents = []
  for ranges, block_geom in blocks:
    index = (Ellipsis, *(slice(a, a + c) for a, c in ranges), slice(None))
    cotangents.append(scatter_window_filter(g[index], block_geom, weights))
  like = [lax.slice_in_dim(x, start, stop, axis=axis) for axis, start, stop in places]
  folds = jax.linear_transpose(block_inputs, *like)(cotangents)
  for (axis, start, _), fold in zip(places, folds):
    config = [(0, 0, 0)] * x.ndim
    config[axis] = (start, x.shape[axis] - start - fold.shape[axis], 0)
    dx = dx + lax.pad(fence(fold), np.zeros((), fold.dtype), config)
  return dx


def _reached(x, spec) -> tuple[tuple[int, int], ...]:
  """``spec``'s padding with each high side cut to the cells some window
  reads (windows at the stride may stop short of the last ones), so that
  the extension blocks copy no cell whose gradient is zero."""
  axes, pairs, _, geom, _ = spec
  ends = zip(axes, pairs, geom.out_shape, geom.window_shape, geom.strides)
  return tuple(
    (lo, max(0, min(hi, (out - 1) * s + f - lo - x.shape[a]))) for a, (lo, hi), out, f, s in ends
  )


def _borders(x, axes, places, slabs) -> _Borders:
  """All of ``x`` as `_Borders` over ``slabs`` (at ``places``)."""
  by_axis = {a: [] for a in axes}
  for (axis, start, stop), slab in zip(places, slabs):
    by_axis[axis].append((start, stop, slab))
  return _Borders(by_axis, (0,) * x.ndim, tuple(x.shape), x.dtype)


def _slab_places(x, spec) -> tuple[list, list]:
  """``(places, blocks)``: the ``(axis, start, stop)`` of the slabs of
  ``x`` the extension blocks read (the cell ranges read along each axis,
  merged where they touch), and every block's ``(output ranges, block
  geometry)``; found by building the blocks once, abstractly, over
  `_Borders` that record their reads."""
  axes, _, pad_mode, geom, _ = spec
  reached = _reached(x, spec)
  reads, blocks = [], []

  def build(v):
    whole = [(axis, 0, v.shape[axis]) for axis in axes]
    recorder = dataclasses.replace(_borders(v, axes, whole, [v] * len(axes)), reads=reads)
    for ranges, _, block_geom in _extension_blocks(recorder, 0, axes, reached, pad_mode, geom):
      blocks.append((ranges, block_geom))

  jax.eval_shape(build, x)  # traced only
  places = []
  for axis, start, stop in sorted(set(reads)):
    if places and places[-1][0] == axis and start <= places[-1][2]:
      places[-1] = (axis, places[-1][1], max(stop, places[-1][2]))
    else:
      places.append((axis, start, stop))
  return places, blocks


@_extended_filter_op.defjvp
def _extended_filter_op_jvp(spec, primals, tangents):
  (x,), (t,) = primals, tangents
  y = _extended_filter_op(x, spec)
  (dy,) = jax.linear_transpose(lambda g: _extended_filter_transpose(g, x, spec), y)(t)
  return y, dy


def _first(axis: int, count: int) -> tuple:
  """An index taking the first ``count`` cells along ``axis``."""
  return (slice(None),) * axis + (slice(0, count),)


@compiled_when_eager()
def blur_pool(
  x: jax.typing.ArrayLike,
  window_shape: Sequence[int],
  strides: int | Sequence[int] = 2,
  padding: PaddingLike | None = None,
  *,
  pad_mode: str = "reflect",
) -> jax.Array:
  r"""Anti-aliased downsampling: a binomial low-pass filter applied at a stride.

  Per feature, $y_o = \sum_t w_t \tilde x_{o s + t}$ with $\tilde x$ the
  input extended by ``padding`` cells as ``pad_mode`` says and $w$ the
  normalised binomial filter of side $f$ per axis,
  $w = \bigotimes_a b_{f_a}$, $b_{f,k} = \binom{f-1}{k} / 2^{f-1}$
  (``[1, 2, 1] / 4`` for $f = 3$). The filter is separable, so it runs one
  axis at a time ($\sum_a f_a$ taps per output, not $\prod_a f_a$).

  * ``blur_pool(x, (3, 3), 2)`` is timm's ``BlurPool2d(filt_size=3,
    stride=2)``;
  * ``blur_pool(x, (4, 4), 2, ((1, 2), (1, 2)))`` is antialiased-cnns'
    ``BlurPool(filt_size=4)``;
  * ``blur_pool(x, (3, 3), 2, pad_mode="zeros")`` is kornia's
    ``blur_pool2d(x, 3)`` and timm's ``'blurpc'``.

  Args:
    x: floating-point input of shape ``(*batch, *spatial, features)``
      (float16/bfloat16 are filtered in float32 and cast back).
    window_shape: the filter side $f$ per spatial axis, e.g. ``(3, 3)``.
    strides: the subsampling step per axis (int or tuple; default 2).
    padding: ``None`` (default) pads $\lfloor ((s - 1) + (f - 1)) / 2 \rfloor$
      cells on both sides, timm's rule (the output keeps $\lceil n / s \rceil$
      cells for odd $f$); or ``'VALID'``, ``'SAME'``, an int, ints or
      ``(low, high)`` pairs, as in [`max_pool`][jaxpool.max_pool] but
      without its half-window limit.
    pad_mode: how the input is extended: ``'reflect'`` (default; the edge
      cell is not repeated, torch's ``reflect``), ``'zeros'``, ``'edge'``
      (torch's ``replicate``) or ``'wrap'`` (torch's ``circular``).

  Returns:
    Array of shape ``(*batch, *out_spatial, features)`` and ``x``'s dtype,
    with ``out = (n + low + high - f) // s + 1`` per axis.

  Examples:
    >>> import jax.numpy as jnp, jaxpool
    >>> x = jnp.zeros((1, 6, 6, 1)).at[0, 2, 2, 0].set(16.0)
    >>> jaxpool.blur_pool(x, (3, 3))[0, ..., 0]
    Array([[0., 0., 0.],
           [0., 4., 0.],
           [0., 0., 0.]], dtype=float32)
  """
  x = dtypes.float_input(x, "blur_pool")
  window_shape, strides, pairs = _blur_arguments(window_shape, strides, padding, pad_mode)
  n = len(window_shape)
  axes = spatial_axes(x.ndim, n, "window_shape", x.shape)
  if pairs is None:
    pairs = _same_padding([x.shape[a] for a in axes], window_shape, strides)
  for a, pair in zip(axes, pairs):
    _check_extension(x.shape[a], pair, pad_mode)
  padded = [x.shape[a] + lo + hi for a, (lo, hi) in zip(axes, pairs)]
  geom = window_geometry((*padded, 1), window_shape, strides)  # validates sizes
  factors = [binomial_filter(f) for f in window_shape]
  y = x.astype(dtypes.compute_dtype(x.dtype))
  spec = (axes, tuple(pairs), pad_mode, geom, tuple(tuple(f) for f in factors))
  y = _extended_filter_op(y, spec)
  return y.astype(x.dtype)


register_option_check(blur_pool, _check_blur_options, checks_window=True)


@compiled_when_eager()
def max_blur_pool(
  x: jax.typing.ArrayLike,
  window_shape: Sequence[int],
  strides: int | Sequence[int] = 2,
  padding: PaddingLike = "VALID",
  *,
  blur_shape: int | Sequence[int] = 3,
  blur_padding: PaddingLike | None = None,
  pad_mode: str = "reflect",
) -> jax.Array:
  r"""MaxBlurPool: max pooling at stride 1, then [`blur_pool`][jaxpool.blur_pool]
  at ``strides`` (Zhang 2019), $y = \mathrm{blur}_s(\max_{R}(x))$.

  * ``max_blur_pool(x, (2, 2), 2, blur_shape=(3, 3), pad_mode="zeros")`` is
    kornia's ``max_blur_pool2d(x, 3)``;
  * ``max_blur_pool(x, (3, 3), 2, 1, blur_shape=(3, 3))`` is timm's
    anti-aliased ResNet stem (max pool 3x3/1 with padding 1, then
    ``BlurPool2d(filt_size=3, stride=2)``).

  Args:
    x: input of shape ``(*batch, *spatial, features)``, floating point.
    window_shape: the max-pooling window per spatial axis, e.g. ``(2, 2)``.
    strides: the blur's subsampling step (int or tuple; default 2).
    padding: the max pooling's padding: ``'VALID'`` (default), ``'SAME'``,
      an int, ints or ``(low, high)`` pairs, as in
      [`max_pool`][jaxpool.max_pool] (padding never wins the max).
    blur_shape: the blur filter's side per axis (an int: every axis;
      default 3).
    blur_padding: the blur's padding, as `blur_pool`'s ``padding``
      (default ``None``: timm's rule).
    pad_mode: how the blur extends its input, as `blur_pool`'s.

  Returns:
    Array of shape ``(*batch, *out_spatial, features)`` and ``x``'s dtype.

  Examples:
    >>> import jax.numpy as jnp, jaxpool
    >>> x = jnp.arange(36.0).reshape(1, 6, 6, 1)
    >>> jaxpool.max_blur_pool(x, (2, 2)).shape
    (1, 3, 3, 1)
  """
  x = dtypes.float_input(x, "max_blur_pool")
  window_shape = normalize_spatial_shape("window_shape", window_shape)
  blur_shape = _blur_shape(blur_shape, len(window_shape))
  _blur_arguments(blur_shape, strides, blur_padding, pad_mode)
  peaks = max_pool(x, window_shape, 1, padding)
  return blur_pool(peaks, blur_shape, strides, blur_padding, pad_mode=pad_mode)


def _blur_shape(blur_shape, n: int) -> tuple[int, ...]:
  if is_int(blur_shape):
    blur_shape = (blur_shape,) * n
  blur_shape = normalize_spatial_shape("blur_shape", blur_shape)
  if len(blur_shape) != n:
    raise ValueError(
      f"blur_shape must have one entry per spatial axis of window_shape ({n}); got {blur_shape}."
    )
  return blur_shape


def _check_max_blur_options(
  window_shape, strides, padding, blur_shape, blur_padding, pad_mode, **_
):
  window_shape, _, _, _ = check_window_options(window_shape, 1, padding)
  _blur_arguments(_blur_shape(blur_shape, len(window_shape)), strides, blur_padding, pad_mode)


register_option_check(max_blur_pool, _check_max_blur_options, checks_window=True)
