"""Adaptive pooling (fixed output size, torch's bins) and global pooling.

torch's adaptive bins along an axis of length ``L`` pooled to ``T`` cells:
``bin i = [floor(i * L / T), ceil((i + 1) * L / T))``. Bins overlap when ``T``
does not divide ``L``. Every shape here is static (it depends only on
``x.shape`` and ``output_shape``).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxpool._src.core import dtypes
from jaxpool._src.core.backend import fence
from jaxpool._src.core.checks import check_bool
from jaxpool._src.core.eager import compiled_when_eager
from jaxpool._src.core.geometry import (
  global_axes,
  normalize_spatial_shape,
  spatial_axes,
  window_geometry,
)
from jaxpool._src.core.options import register_option_check
from jaxpool._src.core.reductions import extremum_pool, window_sum
from jaxpool._src.core.scatter import phase_view

__all__ = [
  "adaptive_avg_pool",
  "adaptive_max_pool",
  "adaptive_bins",
  "global_avg_pool",
  "global_max_pool",
]


def adaptive_bins(size: int, out: int) -> tuple[np.ndarray, np.ndarray]:
  """``(starts, ends)`` of torch's adaptive bins, as int arrays of length out."""
  i = np.arange(out)
  starts = (i * size) // out
  ends = -((-(i + 1) * size) // out)
  return starts, ends


def _adaptive_setup(x, output_shape, op):
  output_shape = normalize_spatial_shape("output_shape", output_shape)
  axes = spatial_axes(x.ndim, len(output_shape), "output_shape", x.shape)
  in_shape = tuple(x.shape[a] for a in axes)
  if any(n == 0 for n in in_shape):
    raise ValueError(f"{op} needs non-empty spatial axes; got x.shape={x.shape}.")
  return output_shape, axes, in_shape


def _uniform_window(in_shape, output_shape):
  """The equivalent window when every output size divides its input size."""
  if all(n % t == 0 for n, t in zip(in_shape, output_shape)):
    return tuple(n // t for n, t in zip(in_shape, output_shape))
  return None


def _regular_bins(in_shape, output_shape):
  """``(window, strides)`` when every axis's bins have one width and one
  spacing (e.g. 64 cells into 7 bins: 10 wide, 9 apart), so that they are
  the windows of a plain sliding-window pooling; otherwise None."""
  window, strides = [], []
  for n, t in zip(in_shape, output_shape):
    starts, ends = adaptive_bins(n, t)
    widths, steps = set(ends - starts), set(np.diff(starts)) or {n}
    if len(widths) != 1 or len(steps) != 1 or min(steps) < 1:
      return None  # (more bins than cells repeat a start: no stride)
    window.append(int(widths.pop()))
    strides.append(int(steps.pop()))
  return tuple(window), tuple(strides)


# Uniform bins of up to this many cells are averaged as one pass over their
# taps (strided slices); larger ones as a reshaped sum (its derivative is a
# broadcast). Other regular bins (one width and one spacing per axis) at most
# this many cells wide per axis are one sliding-window maximum or mean;
# wider ones are reduced one axis at a time (a chain over very many taps
# compiles slowly). The thresholds come from
# benchmarks/ (docs/architecture.md, "Adaptive pooling").
_AVG_SLICED_TAPS = 16
_MAX_WINDOW_SIDE = 32


@compiled_when_eager()
def adaptive_avg_pool(x: jax.typing.ArrayLike, output_shape: Sequence[int]) -> jax.Array:
  r"""Average over torch's adaptive bins, for a fixed output size.

  $y[i] = \operatorname{mean}(x[\lfloor i L / T \rfloor : \lceil (i + 1) L / T \rceil])$
  along every spatial axis ($L$ input size, $T$ output size); equal to
  ``torch.nn.functional.adaptive_avg_pool{1,2,3}d``. Bins overlap when $T$
  does not divide $L$ (Equinox's ``AdaptivePool`` partitions instead and
  gives other numbers). $T$ may exceed $L$. A NaN or an infinity reaches
  only the bins that hold it (``+inf`` in a bin gives ``+inf``, ``+inf`` and
  ``-inf`` give NaN), as in torch.

  Args:
    x: floating-point input of shape ``(*batch, *spatial, features)``.
    output_shape: output size per spatial axis; its length sets the number of
      spatial axes.

  Returns:
    Array of shape ``(*batch, *output_shape, features)`` and ``x``'s dtype.

  Examples:
    >>> import jax.numpy as jnp, jaxpool
    >>> x = jnp.arange(5.0).reshape(5, 1)
    >>> jaxpool.adaptive_avg_pool(x, (3,))[:, 0]
    Array([0.5, 2. , 3.5], dtype=float32)
  """
  x = dtypes.float_input(x, "adaptive_avg_pool")
  output_shape, axes, in_shape = _adaptive_setup(x, output_shape, "adaptive_avg_pool")
  compute_dtype = dtypes.compute_dtype(x.dtype)
  xc = x.astype(compute_dtype)
  window = _uniform_window(in_shape, output_shape)
  if window is not None:
    geom = window_geometry(x.shape, window)
    if geom.window_size <= _AVG_SLICED_TAPS:
      # Slices forward, one-pass phase scatter back.
      total = window_sum(xc, geom)
    else:
      # Large bins tile the input (stride = window): in the phase layout
      # each bin is one block, so sum its phase axes.
      batch = x.ndim - len(window) - 1
      total = phase_view(xc, geom).sum(axis=tuple(batch + 2 * i + 1 for i in range(len(window))))
    return (total / np.asarray(geom.window_size, dtype=compute_dtype)).astype(x.dtype)
  regular = _regular_bins(in_shape, output_shape)
  if regular is not None and max(regular[0]) <= _MAX_WINDOW_SIDE:
    # Overlapping bins of one width and spacing: a sliding-window mean.
    geom = window_geometry(x.shape, *regular)
    total = window_sum(xc, geom)
    return (total / np.asarray(geom.window_size, dtype=compute_dtype)).astype(x.dtype)
  return _uneven_adaptive_avg(xc, axes, output_shape).astype(x.dtype)


def _uneven_adaptive_avg(x, axes, output_shape):
  """Adaptive average with overlapping bins, one axis at a time."""
  for axis, out in zip(axes, output_shape):
    if x.shape[axis] != out:
      x = _adaptive_avg_axis(x, axis, out)
  return x


def _bin_weights(size: int, out: int) -> np.ndarray:
  """``(out, size)`` matrix of the bin means: ``1 / len(bin)`` on each bin."""
  starts, ends = adaptive_bins(size, out)
  weights = np.zeros((out, size))
  for i, (lo, hi) in enumerate(zip(starts, ends)):
    weights[i, lo:hi] = 1.0 / (hi - lo)
  return weights


@functools.partial(jax.custom_jvp, nondiff_argnums=(1, 2))
def _adaptive_avg_axis(x: jax.Array, axis: int, out: int) -> jax.Array:
  """Adaptive average along one axis.

  The value sums each bin's own cells (a gather, `_bin_cells`), so a
  NaN or inf reaches only the bins that hold it; a product with the
  bin-weight matrix over the whole axis would spread it by ``0 * NaN``. The
  map is linear: its tangent is that product (`_bin_weights`), whose
  transpose, the reverse-mode derivative, is one more fast product (a
  gather's transpose is a slow scatter-add).
  """
  cells, counts = _bin_cells(x, axis, out, 0)
  counts = counts.reshape(counts.shape + (1,) * (x.ndim - axis - 1))
  return cells.sum(axis=axis + 1) / jnp.asarray(counts, dtype=x.dtype)


@_adaptive_avg_axis.defjvp
def _adaptive_avg_axis_jvp(axis, out, primals, tangents):
  (x,), (t,) = primals, tangents
  weights = jnp.asarray(_bin_weights(x.shape[axis], out).T, dtype=t.dtype)
  moved = jnp.moveaxis(t, axis, -1)
  dt = jnp.matmul(moved, weights, precision=jax.lax.Precision.HIGHEST)
  return _adaptive_avg_axis(x, axis, out), jnp.moveaxis(dt, -1, axis)


def _bin_cells(x: jax.Array, axis: int, out: int, fill):
  """Every bin's cells along ``axis``, padded to the widest bin with ``fill``.

  Returns ``(cells, counts)``: ``cells`` has ``axis`` split into ``(out,
  width)`` in place (no transpose of ``x``); ``counts`` is the number of real
  cells per bin. The padding cells are replaced by ``fill`` with a select
  (never multiplied by 0), so a NaN or inf only reaches the bins that hold it.
  """
  size = x.shape[axis]
  starts, ends = adaptive_bins(size, out)
  width = int((ends - starts).max())
  index = starts[:, None] + np.arange(width)[None, :]
  valid = index < ends[:, None]
  index = np.minimum(index, size - 1)
  cells = jnp.take(x, jnp.asarray(index.ravel()), axis=axis)
  cells = cells.reshape(x.shape[:axis] + (out, width) + x.shape[axis + 1 :])
  valid = valid.reshape(valid.shape + (1,) * (x.ndim - axis - 1))
  cells = jnp.where(valid, cells, jnp.array(fill, dtype=x.dtype))
  return cells, ends - starts


# Up to this many bins along an axis, adaptive max reads each bin as a static
# slice (faster than a gather); beyond, the program would grow with the bins
# and take seconds to compile, so they are gathered.
_MAX_SLICED_BINS = 32


def _adaptive_max_axis(x: jax.Array, axis: int, out: int, axes) -> jax.Array:
  """Adaptive max along one axis; the first maximum of each bin is selected.

  With few bins, each is a static slice reduced by `extremum_pool` (a
  window covering the slice), so the derivative is one winner scatter per
  bin rather than the scatter-add a gather transposes to. Otherwise every
  bin's cells are gathered (padded with -inf) and reduced by ``argmax``.
  """
  starts, ends = adaptive_bins(x.shape[axis], out)
  if out > _MAX_SLICED_BINS:
    gathered, _ = _bin_cells(x, axis, out, dtypes.lowest(x.dtype))
    pick = jnp.argmax(gathered, axis=axis + 1, keepdims=True)
    return jnp.take_along_axis(gathered, pick, axis=axis + 1).squeeze(axis + 1)
  bins = []
  for lo, hi in zip(starts, ends):
    part = lax.slice_in_dim(x, int(lo), int(hi), axis=axis)
    window = tuple(int(hi - lo) if a == axis else 1 for a in axes)
    bins.append(extremum_pool(part, window_geometry(part.shape, window), "max"))
  return jnp.concatenate(bins, axis=axis)


@compiled_when_eager()
def adaptive_max_pool(x: jax.typing.ArrayLike, output_shape: Sequence[int]) -> jax.Array:
  """Maximum over torch's adaptive bins, for a fixed output size.

  Bins as in [`adaptive_avg_pool`][jaxpool.adaptive_avg_pool]; equal to
  ``torch.nn.functional.adaptive_max_pool{1,2,3}d`` in values and gradients:
  the gradient reaches the first maximum of each bin in row-major order. The
  bins are separable, so the maximum is taken one axis at a time, last axis
  first (which keeps the row-major tie rule). Integers keep their dtype.

  Args:
    x: input of shape ``(*batch, *spatial, features)``.
    output_shape: output size per spatial axis.

  Returns:
    Array of shape ``(*batch, *output_shape, features)`` and ``x``'s dtype.

  Examples:
    >>> import jax.numpy as jnp, jaxpool
    >>> x = jnp.array([0.0, 4.0, 1.0, 3.0, 2.0]).reshape(5, 1)
    >>> jaxpool.adaptive_max_pool(x, (3,))[:, 0]
    Array([4., 4., 3.], dtype=float32)
  """
  x = dtypes.numeric_input(x, "adaptive_max_pool")
  output_shape, axes, in_shape = _adaptive_setup(x, output_shape, "adaptive_max_pool")
  regular = _regular_bins(in_shape, output_shape)
  if regular is not None and max(regular[0]) <= _MAX_WINDOW_SIDE:
    # One sliding-window max (separable when large: see extremum_pool).
    return extremum_pool(x, window_geometry(x.shape, *regular), "max")
  # Bins of several widths or spacings, or too wide for passes over taps.
  passes = 0
  for axis, out in reversed(list(zip(axes, output_shape))):
    if x.shape[axis] != out:
      x = _adaptive_max_axis(fence(x) if passes else x, axis, out, axes)
      passes += 1
  return x


@compiled_when_eager()
def global_avg_pool(
  x: jax.typing.ArrayLike,
  *,
  keepdims: bool = False,
  spatial_ndim: int | None = None,
) -> jax.Array:
  """Mean over every spatial axis.

  Args:
    x: floating-point input; by default ``(batch, *spatial, features)`` and the
      axes ``1 .. ndim - 2`` are reduced.
    keepdims: keep the reduced axes with size 1 (a bool).
    spatial_ndim: reduce the ``spatial_ndim`` axes just before the feature
      axis instead (for zero or several batch axes).

  Raises:
    ValueError: if a reduced axis is empty (size 0).

  Returns:
    ``(batch, features)`` (or ``(*batch, features)``), ``x``'s dtype; with
      ``keepdims`` the spatial axes stay as ones.

  Examples:
    >>> import jax.numpy as jnp, jaxpool
    >>> jaxpool.global_avg_pool(jnp.ones((2, 4, 4, 3))).shape
    (2, 3)
  """
  keepdims = _global_options(keepdims)
  x = dtypes.float_input(x, "global_avg_pool")
  axes = global_axes(x, spatial_ndim, "global_avg_pool")
  compute_dtype = dtypes.compute_dtype(x.dtype)
  return jnp.mean(x.astype(compute_dtype), axis=axes, keepdims=keepdims).astype(x.dtype)


@compiled_when_eager()
def global_max_pool(
  x: jax.typing.ArrayLike,
  *,
  keepdims: bool = False,
  spatial_ndim: int | None = None,
) -> jax.Array:
  """Maximum over every spatial axis.

  Equal to ``adaptive_max_pool(x, (1,) * n)``: the gradient goes to the first
  maximum in row-major order (``jnp.max`` would split it between ties).

  Args:
    x: input; by default ``(batch, *spatial, features)``.
    keepdims: keep the reduced axes with size 1 (a bool).
    spatial_ndim: reduce the ``spatial_ndim`` axes just before the feature
      axis instead.

  Raises:
    ValueError: if a reduced axis is empty (size 0).

  Returns:
    ``(batch, features)`` (or ``(*batch, features)``), ``x``'s dtype.

  Examples:
    >>> import jax.numpy as jnp, jaxpool
    >>> x = jnp.arange(8.0).reshape(1, 2, 2, 2)
    >>> jaxpool.global_max_pool(x)
    Array([[6., 7.]], dtype=float32)
  """
  keepdims = _global_options(keepdims)
  x = dtypes.numeric_input(x, "global_max_pool")
  axes = global_axes(x, spatial_ndim, "global_max_pool")
  lead = x.shape[: axes[0]]
  flat = x.reshape(lead + (math.prod(x.shape[a] for a in axes),) + x.shape[-1:])
  pick = jnp.argmax(flat, axis=-2, keepdims=True)
  pooled = jnp.take_along_axis(flat, pick, axis=-2)
  if keepdims:
    return pooled.reshape(lead + (1,) * len(axes) + x.shape[-1:])
  return pooled[..., 0, :]


# Option checks shared by the functions and their layers' constructors.


def _global_options(keepdims, **_) -> bool:
  return check_bool("keepdims", keepdims)


register_option_check(global_avg_pool, _global_options)
register_option_check(global_max_pool, _global_options)
