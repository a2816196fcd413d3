"""Fractional max pooling (Graham 2014), torch's regions and the paper's."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

from jaxpool._src.classic import max_pool
from jaxpool._src.core import dtypes
from jaxpool._src.core.checks import (
  check_bool,
  check_choice,
  check_number_array,
  check_one_key,
)
from jaxpool._src.core.eager import compiled_when_eager
from jaxpool._src.core.geometry import normalize_spatial_shape, spatial_axes
from jaxpool._src.core.options import register_option_check
from jaxpool._src.core.sharding import uniform
from jaxpool._src.core.taps import flatten_batch

__all__ = ["fractional_max_pool"]

# Fractional max pooling (Graham; torch).

_Regions = Literal["torch", "pseudorandom", "random"]


def _torch_starts(u: jax.Array, size: int, out: int, k: int) -> jax.Array:
  """torch's window starts ``int((i + u) a) - int(u a)``, ``a = (n-k)/(out-1)``.

  Computed in ``u``'s dtype with torch's operation order, so that the
  truncations agree bit for bit.
  """
  last = jnp.zeros_like(u, jnp.int32)[..., None] + (size - k)  # u's sharding
  if out == 1:
    return last
  alpha = jnp.asarray(size - k, u.dtype) / jnp.asarray(out - 1, u.dtype)
  i = jnp.arange(out - 1, dtype=u.dtype)
  u = u[..., None]
  starts = jnp.floor((i + u) * alpha).astype(jnp.int32) - jnp.floor(u * alpha).astype(jnp.int32)
  return jnp.concatenate([starts, last], axis=-1)


def _graham_bounds(u: jax.Array, size: int, out: int) -> jax.Array:
  """Graham's pseudo-random boundaries ``ceil(a (i + u)) - ceil(a u)``, ``a = n / out``.

  ``out + 1`` boundaries from 0 to ``size``; every region has ``floor(a)`` or
  ``ceil(a)`` cells. Evaluated in integers from one rounding of ``n u``, so
  rounding never breaks those properties.
  """
  t = size * u.astype(jnp.float32)
  q = jnp.floor(t)
  fraction = (t - q)[..., None]
  a = size * jnp.arange(out + 1, dtype=jnp.int32) + q.astype(jnp.int32)[..., None]
  ceil = a // out + ((a % out > 0) | (fraction > 0)).astype(jnp.int32)
  return ceil - ceil[..., :1]


def _random_bounds(key, shape, size: int, out: int) -> jax.Array:
  """Graham's random regions: a random order of ``floor(a)``/``ceil(a)`` sizes."""
  small = size // out
  num_large = size - out * small
  order = jnp.argsort(jnp.argsort(uniform(key, shape + (out,)), axis=-1), axis=-1)
  lengths = small + (order < num_large).astype(jnp.int32)
  zeros = jnp.zeros(shape + (1,), jnp.int32)
  return jnp.concatenate([zeros, jnp.cumsum(lengths, axis=-1)], axis=-1)


def _regions_at(u: float, size: int, out: int, regions, window) -> np.ndarray:
  """``(out, 2)`` region ``[start, end)`` bounds for one ``u`` (float64 numpy)."""
  if regions == "torch":
    starts = np.full(out, size - window, np.int64)
    if out > 1:
      alpha = (size - window) / (out - 1)
      i = np.arange(out - 1)
      starts[:-1] = np.floor((i + u) * alpha) - np.floor(u * alpha)
    return np.stack([starts, starts + window], axis=1)
  bounds = np.ceil(size * (np.arange(out + 1) + u) / out) - np.ceil(size * u / out)
  bounds = bounds.astype(np.int64)
  return np.stack([bounds[:-1], bounds[1:]], axis=1)


def _region_probabilities(size, out, regions, window, overlapping):
  """``{length: P}`` with ``P[i, p]`` the probability that region ``i`` is
  ``[p, p + length)``, over ``u ~ U[0, 1)`` (or the random order).

  The regions are piecewise constant in ``u``; they change only where some
  ``(i + u) a`` is an integer, so evaluating them once per piece is exact.
  """
  table: dict[int, np.ndarray] = {}

  def add(i, start, end, p):
    if overlapping:
      end = min(end + 1, size)
    length = end - start
    table.setdefault(length, np.zeros((out, size - length + 1)))[i, start] += p

  if regions == "random":
    small = size // out
    num_large = size - out * small
    for i in range(out):
      for large_before in range(min(i, num_large) + 1):
        # Hypergeometric: large regions among the first i.
        p = (
          math.comb(num_large, large_before)
          * math.comb(out - num_large, i - large_before)
          / math.comb(out, i)
        )
        start = i * small + large_before
        p_large = (num_large - large_before) / (out - i)
        if p * p_large > 0:
          add(i, start, start + small + 1, p * p_large)
        if p * (1 - p_large) > 0:
          add(i, start, start + small, p * (1 - p_large))
    return table
  alpha = (
    (size - window) / (out - 1)
    if regions == "torch" and out > 1
    else 0.0
    if regions == "torch"
    else size / out
  )
  cuts = {0.0, 1.0}
  if alpha > 0:
    for i in range(out + 1):
      for m in range(math.ceil(i * alpha), math.floor((i + 1) * alpha) + 1):
        cut = m / alpha - i
        if 0 < cut < 1:
          cuts.add(cut)
  cuts = sorted(cuts)
  for lo, hi in zip(cuts[:-1], cuts[1:]):
    for i, (start, end) in enumerate(_regions_at((lo + hi) / 2, size, out, regions, window)):
      add(i, int(start), int(end), hi - lo)
  return table


def _expected_over_starts(m: jax.Array, probabilities: np.ndarray, axis: int):
  """``y[i] = sum_p P[i, p] m[p]`` along ``axis``, over the nonzero entries only.

  Each output reads its possible starts (a static, width-padded list per
  output) with one gather; the padding entries are dropped with a select, not
  multiplied by 0, so a NaN or inf of ``m`` reaches only the outputs whose
  possible regions hold it.
  """
  out = probabilities.shape[0]
  support = [np.flatnonzero(row > 0) for row in probabilities]
  width = max(len(starts) for starts in support)
  index = np.zeros((out, width), np.int32)
  weight = np.zeros((out, width))
  valid = np.zeros((out, width), bool)
  for i, starts in enumerate(support):
    index[i, : len(starts)] = starts
    weight[i, : len(starts)] = probabilities[i, starts]
    valid[i, : len(starts)] = True
  moved = jnp.moveaxis(m, axis, -1)
  read = jnp.take(moved, jnp.asarray(index.ravel()), axis=-1)
  read = read.reshape(moved.shape[:-1] + (out, width))
  terms = jnp.where(valid, read * jnp.asarray(weight, m.dtype), 0)
  return jnp.moveaxis(terms.sum(axis=-1), -1, axis)


def _expected_fractional_max_pool(x, sizes, output_shape, regions, window_shape, overlapping):
  """``E_u[fractional_max_pool(x, samples=u)]``, exactly.

  A sum, over the region sizes per axis, of stride-1 max maps read at every
  output's possible region starts and weighted by their (static)
  probabilities.
  """
  n = len(sizes)
  tables = [
    _region_probabilities(
      sizes[a],
      output_shape[a],
      regions,
      None if window_shape is None else window_shape[a],
      overlapping,
    )
    for a in range(n)
  ]
  wide = dtypes.compute_dtype(x.dtype)
  first = x.ndim - n - 1
  y = None
  for combo in itertools.product(*(sorted(t.items()) for t in tables)):
    m = max_pool(x, tuple(length for length, _ in combo), strides=1).astype(wide)
    for axis, (_, probabilities) in enumerate(combo):
      m = _expected_over_starts(m, probabilities, first + axis)
    y = m if y is None else y + m
  return y.astype(x.dtype)


def _max_over_regions(x, starts, lengths, lengths_present, axis: int):
  """``max(x[..., p : p + L, ...])`` along ``axis`` for every region.

  ``starts``/``lengths`` have ``x``'s rank, one entry per region at ``axis``
  and broadcast elsewhere; ``lengths_present`` lists the values ``lengths``
  takes. Per length: a stride-1 max map (torch's first-maximum rule and its
  fast gradient), read at the starts. Gradients reach the winner only.
  """
  num_spatial = x.ndim - 2
  y = None
  for length in lengths_present:
    window = tuple(length if d == axis - 1 else 1 for d in range(num_spatial))
    m = max_pool(x, window, strides=1)
    # The index stays unbroadcast: take_along_axis turns its size-1 axes into
    # slices instead of materialising a full index array.
    read = jnp.take_along_axis(m, jnp.minimum(starts, m.shape[axis] - 1), axis=axis)
    y = read if y is None else jnp.where(lengths == length, read, y)
  return y


def layer_arguments(
  window_shape: Sequence[int],
  strides: int | Sequence[int] | None = None,
  *,
  overlap: int = 1,
  regions: _Regions = "torch",
) -> dict:
  """``fractional_max_pool`` arguments for a layer built from a window.

  Average stride ``strides`` (``output_ratio = 1 / strides``, default the
  window) and, for torch regions, windows of ``window_shape + overlap``: at an
  integer ratio with windows no larger than the stride torch's starts are
  regular (plain max pooling); ``overlap=1`` makes them pseudo-random.
  """
  window_shape = normalize_spatial_shape("window_shape", window_shape)
  if strides is None:
    strides = window_shape
  elif isinstance(strides, int):
    strides = (strides,) * len(window_shape)
  strides = normalize_spatial_shape("strides", strides)
  arguments = dict(output_ratio=tuple(1.0 / s for s in strides), regions=regions)
  if regions == "torch":
    arguments["window_shape"] = tuple(k + overlap for k in window_shape)
  return arguments


def _fractional_shapes(x, window_shape, output_shape, output_ratio, regions, overlapping):
  """Validates the shape arguments of [`fractional_max_pool`][jaxpool.fractional_max_pool].

  Returns ``(num_spatial, sizes, output_shape, window_shape)``.
  """
  if (output_shape is None) == (output_ratio is None):
    raise ValueError(
      "give exactly one of output_shape and output_ratio; got"
      f" output_shape={output_shape!r}, output_ratio={output_ratio!r}."
    )
  if output_shape is not None:
    output_shape = normalize_spatial_shape("output_shape", output_shape)
    n = len(output_shape)
  else:
    ratios = (
      tuple(output_ratio)
      if isinstance(output_ratio, Sequence)
      else None
      if window_shape is None
      else (output_ratio,) * len(window_shape)
    )
    if ratios is None:
      raise ValueError(
        "a scalar output_ratio needs window_shape to tell the number of"
        " spatial axes; give one ratio per axis."
      )
    if not all(isinstance(r, (int, float)) and 0 < r < 1 for r in ratios):
      raise ValueError(f"output_ratio must lie in (0, 1); got {output_ratio!r}.")
    n = len(ratios)
  spatial_axes(x.ndim, n, "fractional_max_pool", x.shape)
  sizes = x.shape[x.ndim - n - 1 : -1]
  if output_shape is None:
    output_shape = tuple(int(size * r) for size, r in zip(sizes, ratios))
    if min(output_shape) < 1:
      raise ValueError(
        f"output_ratio {output_ratio!r} gives output shape {output_shape}"
        f" for spatial sizes {sizes}; every size must be >= 1."
      )
  if len(output_shape) != n:
    raise ValueError(f"output_shape needs {n} entries; got {output_shape}.")
  if regions == "torch":
    if window_shape is None:
      raise ValueError("regions='torch' needs window_shape (torch's kernel_size).")
    window_shape = normalize_spatial_shape("window_shape", window_shape)
    if len(window_shape) != n:
      raise ValueError(f"window_shape has {len(window_shape)} entries; the output has {n}.")
    if overlapping:
      raise ValueError(
        "overlapping applies to the paper's regions ('pseudorandom',"
        " 'random'); torch windows overlap whenever window_shape exceeds"
        " the stride."
      )
    for size, out, k in zip(sizes, output_shape, window_shape):
      if out + k - 1 > size:
        raise ValueError(
          f"fractional_max_pool: output_shape {output_shape} with"
          f" window_shape {window_shape} needs spatial sizes of at least"
          f" output + window - 1; got {sizes}."
        )
  else:
    if window_shape is not None:
      raise ValueError(
        f"window_shape is for regions='torch'; regions={regions!r} sizes its"
        " regions from the ratio input/output."
      )
    if any(out > size for size, out in zip(sizes, output_shape)):
      raise ValueError(f"output_shape {output_shape} exceeds the spatial sizes {sizes}.")
  return n, sizes, output_shape, window_shape


@compiled_when_eager(inspects=("samples",))
def fractional_max_pool(
  x: jax.typing.ArrayLike,
  window_shape: Sequence[int] | None = None,
  *,
  output_shape: Sequence[int] | None = None,
  output_ratio: float | Sequence[float] | None = None,
  key: jax.Array | None = None,
  samples: jax.typing.ArrayLike | None = None,
  regions: _Regions = "torch",
  overlapping: bool = False,
) -> jax.Array:
  r"""Fractional max pooling (Graham 2014), torch's and the paper's regions.

  Max pooling over pseudo-random regions whose average stride
  $a = n / \mathrm{out}$ need not be an integer. Each spatial axis of each
  ``(example, feature)`` plane gets its own regions from one number $u$ in
  $[0, 1)$:

  * ``regions='torch'`` (default): windows of the fixed size ``k =
    window_shape`` starting at $\lfloor (i + u) a' \rfloor - \lfloor u a' \rfloor$,
    $a' = (n - k) / (\mathrm{out} - 1)$, the last one at $n - k$; generally
    overlapping. Identical to ``torch.nn.functional.fractional_max_pool2d/3d``
    given the same samples (values, winners and gradients).
  * ``regions='pseudorandom'``: Graham's disjoint regions between the
    boundaries $\lceil a (i + u) \rceil - \lceil a u \rceil$,
    $i = 0, \dots, \mathrm{out}$ (from 0 to $n$; each region has
    $\lfloor a \rfloor$ or $\lceil a \rceil$ cells).
  * ``regions='random'``: Graham's random regions: the $\lfloor a \rfloor$-
    and $\lceil a \rceil$-cell regions in a uniformly random order (drawn from
    ``key``; ``samples`` cannot describe it).

  ``overlapping=True`` (Graham's overlapping variant, paper regions only)
  extends every region by one cell into the next, like TensorFlow's
  ``overlapping``. Within a window the first maximum in row-major order wins,
  as in torch; gradients flow to it.

  The samples: with ``key``, $u \sim U[0, 1)$ independently per example,
  spatial axis and feature (torch's draw). ``samples`` gives them explicitly,
  shape ``(*batch, num_spatial, features)``; ``samples[..., i, c]`` drives
  spatial axis ``i``. torch's 2-D samples ``(N, C, 2)`` hold the axes
  reversed (``[..., 0]`` drives the width): pass
  ``torch_samples.permute(0, 2, 1).flip(1)``; its 3-D samples ``(N, C, 3)``
  are in axis order (time, height, width): pass
  ``torch_samples.permute(0, 2, 1)``. With neither (inference), the
  output is the **expectation of the training output** over the samples
  (or the random order), computed exactly: the regions are piecewise
  constant in $u$, so it is a fixed linear combination of stride-1 max
  maps, each output reading only its possible regions (so a NaN or inf
  reaches only the outputs whose regions may hold it). Graham instead
  averages the predictions of several random draws at test time (do that by
  calling with several keys); a fixed draw such as $u = 0.5$ would shift
  every window by about half a cell.

  Args:
    x: ``(*batch, *spatial, features)`` floating-point array.
    window_shape: window size $k$ per axis, for ``regions='torch'`` only
      (torch's ``kernel_size``).
    output_shape: output spatial shape; or give ``output_ratio``.
    output_ratio: ``output_shape = int(n * ratio)`` per axis (as torch), a
      float or one per axis in ``(0, 1)``.
    key: one PRNG key for the samples (a batch of keys is an error).
    samples: explicit samples in ``[0, 1)`` (excludes ``key``). Concrete
      samples outside ``[0, 1)`` or NaN are a ``ValueError``; traced samples
      (under ``jit``) cannot be checked and are used as given.
    regions: ``'torch'``, ``'pseudorandom'`` or ``'random'``.
    overlapping: overlapping paper regions (``'pseudorandom'``/``'random'``),
      a bool.

  Returns:
    ``(*batch, *output_shape, features)`` array, ``x``'s dtype.

  Examples:
    >>> import jax.numpy as jnp, jaxpool
    >>> x = jnp.arange(25.0).reshape(1, 5, 5, 1)
    >>> u = jnp.full((1, 2, 1), 0.5)  # (batch, spatial axes, features)
    >>> jaxpool.fractional_max_pool(x, (2, 2), output_shape=(3, 3), samples=u)[0, :, :, 0]
    Array([[ 6.,  8.,  9.],
           [16., 18., 19.],
           [21., 23., 24.]], dtype=float32)
    >>> # Inference: the mean over u (the middle window starts at 1 or 2).
    >>> y = jaxpool.fractional_max_pool(x, (2, 2), output_shape=(3, 3))
    >>> [round(float(v), 3) for v in y[0, 0, :, 0]]
    [6.0, 7.333, 9.0]
  """
  if key is not None:
    check_one_key(key)
  overlapping = _fractional_options(overlapping, regions)
  x = dtypes.float_input(x, "fractional_max_pool")
  n, sizes, output_shape, window_shape = _fractional_shapes(
    x, window_shape, output_shape, output_ratio, regions, overlapping
  )

  flat, batch = flatten_batch(x, n, "fractional_max_pool")
  planes = (flat.shape[0], flat.shape[-1])
  wide = x.dtype if x.dtype == jnp.float64 else jnp.float32
  if samples is not None:
    if key is not None:
      raise ValueError("give key or samples, not both.")
    if regions == "random":
      raise ValueError(
        "regions='random' draws a random order of region sizes from key;"
        " samples cannot describe it."
      )
    samples = jnp.asarray(samples)
    expected = batch + (n, x.shape[-1])
    if samples.shape != expected:
      raise ValueError(
        f"samples must have shape (*batch, num_spatial, features) ="
        f" {expected}; got {samples.shape}."
      )
    check_number_array("samples", samples, low=0.0, high=1.0, high_open=True)
    u = jnp.moveaxis(samples.reshape(planes[:1] + (n,) + planes[1:]), 1, 0)
  elif key is not None:
    key, order_key = jax.random.split(key)
    like = flat[(slice(None),) + (slice(0, 1),) * n]  # (B, 1.., C)
    u = jnp.stack(
      [
        uniform(k, like.shape, like, (0, n + 1), wide).reshape(planes)
        for k in jax.random.split(key, n)
      ]
    )
  else:
    return _expected_fractional_max_pool(x, sizes, output_shape, regions, window_shape, overlapping)
  u = jax.lax.stop_gradient(u)

  # Separable: the max over a box is the max over rows of row maxima. Last
  # spatial axis first, so the row-major first maximum wins, as in torch.
  for axis in reversed(range(n)):
    size, out = sizes[axis], output_shape[axis]
    if regions == "torch":
      k = window_shape[axis]
      starts = _torch_starts(u[axis], size, out, k)
      lengths, lengths_present = k, (k,)
    else:
      if regions == "random":
        bounds = _random_bounds(jax.random.fold_in(order_key, axis), planes, size, out)
      else:
        bounds = _graham_bounds(u[axis], size, out)
      starts, ends = bounds[..., :-1], bounds[..., 1:]
      small = size // out
      lengths_present = range(small, small + 2 + overlapping)
      if overlapping:
        ends = jnp.minimum(ends + 1, size)
      lengths = ends - starts
    # (B, C, out) -> (B, 1.., out at the axis, 1.., C)
    placed = planes[:1] + tuple(out if d == axis else 1 for d in range(n)) + planes[1:]
    place = lambda a: a if isinstance(a, int) else jnp.swapaxes(a, 1, 2).reshape(placed)  # noqa: E731
    flat = _max_over_regions(flat, place(starts), place(lengths), lengths_present, axis + 1)
  return flat.reshape(batch + flat.shape[1:])


# Option checks shared by the function and its layers' constructors.


def _fractional_options(overlapping, regions, **_) -> bool:
  check_choice("regions", regions, ("torch", "pseudorandom", "random"))
  return check_bool("overlapping", overlapping)


register_option_check(fractional_max_pool, _fractional_options)
