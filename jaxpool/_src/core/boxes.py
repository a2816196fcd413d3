"""Boxes for region pooling: ``(K, 5)`` rows ``(batch_index, x1, y1, x2, y2)``
in input-image coordinates, scaled to the map by ``spatial_scale``.

The checks shared by the RoI operators (eager where the boxes are concrete,
NaN outputs for traced non-finite rows), the IEEE division they use for bin
sizes, the position-sensitive feature layout (R-FCN: bin ``(p, q)`` reads
its own group of features), and `sum_taps`, the weighted sum of taps
gathered from flattened maps that RoIAlign and the position-sensitive
operators share.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxpool._src.core import dtypes
from jaxpool._src.core.checks import check_positive_number, concrete_values

__all__ = [
  "bins_first",
  "check_boxes",
  "check_map",
  "check_scale",
  "divide",
  "nan_where_invalid",
  "position_dtype",
  "position_sensitive_features",
  "sum_taps",
]


def check_map(x, op: str) -> jax.Array:
  x = dtypes.numeric_input(x, op) if op == "roi_pool" else dtypes.float_input(x, op)
  if x.ndim != 4:
    raise ValueError(f"{op} expects x of shape (batch, H, W, features); got x.shape={x.shape}.")
  return x


def position_dtype(x_dtype):
  """torchvision computes box geometry in the input's precision: float64 for
  float64 maps, float32 otherwise (half precision included)."""
  return jnp.float64 if jnp.dtype(x_dtype) == jnp.float64 else jnp.float32


def check_boxes(boxes, batch: int, op: str, dtype):
  """``(batch_index int32 (K,), corners (K, 4), invalid)``; eager checks.

  Concrete boxes must have finite coordinates and batch indices in range.
  Traced ones cannot be checked: their indices are clamped, and ``invalid``
  (``(K,)`` bool, else ``None``) flags rows with a non-finite number, whose
  corners are read as 0 and whose outputs the caller sets to NaN
  (``nan_where_invalid``).
  """
  boxes = jnp.asarray(boxes)
  if boxes.ndim != 2 or boxes.shape[1] != 5:
    raise ValueError(
      f"{op}: boxes must have shape (K, 5), rows (batch_index, x1, y1, x2,"
      f" y2); got boxes.shape={boxes.shape}."
    )
  if not (dtypes.is_float(boxes.dtype) or jnp.issubdtype(boxes.dtype, jnp.integer)):
    raise TypeError(f"{op}: boxes must be numbers; got dtype {boxes.dtype}.")
  values = concrete_values(boxes)
  invalid = None
  if values is not None and values.size:
    finite = np.isfinite(values).all(axis=1)
    if not finite.all():
      row = int(np.argmin(finite))
      raise ValueError(
        f"{op}: boxes must hold finite numbers; row {row} is {values[row].tolist()}."
      )
    index = values[:, 0]
    bad = (index != np.floor(index)) | (index < 0) | (index >= batch)
    if np.any(bad):
      raise ValueError(
        f"{op}: box batch indices must be integers in [0, {batch}) for x with"
        f" batch {batch}; got {index[bad][0]!r} in row {int(np.argmax(bad))}."
      )
  elif values is None and dtypes.is_float(boxes.dtype):
    invalid = ~jnp.all(jnp.isfinite(boxes), axis=1)
    boxes = jnp.where(invalid[:, None], 0, boxes)
  index = jnp.clip(boxes[:, 0].astype(jnp.int32), 0, batch - 1)  # traced: clamped
  return index, boxes[:, 1:].astype(dtype), invalid


def nan_where_invalid(out: jax.Array, invalid) -> jax.Array:
  """NaN (0 for integer maps) in the outputs of the boxes
  ``check_boxes`` flagged."""
  if invalid is None:
    return out
  fill = np.array(np.nan if dtypes.is_float(out.dtype) else 0, out.dtype)
  return jnp.where(invalid.reshape((-1,) + (1,) * (out.ndim - 1)), fill, out)


def check_scale(spatial_scale) -> float:
  return check_positive_number("spatial_scale", spatial_scale)


def _split(c: jax.Array, low_bits: int) -> tuple[jax.Array, jax.Array]:
  """``c = hi + lo`` exactly, ``lo`` the low ``low_bits`` of the
  significand (bit masking: no product a compiler could contract)."""
  unsigned = {4: jnp.uint32, 8: jnp.uint64}[c.dtype.itemsize]
  bits = jax.lax.bitcast_convert_type(c, unsigned)
  hi = jax.lax.bitcast_convert_type(bits & ~unsigned((1 << low_bits) - 1), c.dtype)
  return hi, c - hi


def divide(a: jax.Array, n: int) -> jax.Array:
  """``a / n`` for a positive int ``n``, rounded as IEEE division (to
  nearest, ties to even), as torchvision's kernels divide.

  The hardware's quotient is not trusted: XLA:CPU rewrites a division by a
  broadcast value into a multiplication by its reciprocal, and XLA:GPU
  divides float32 to within 2 ulp, either of which moves a ``floor`` or
  ``ceil`` of an exact integer quotient by a whole cell (``ceil(7 *
  fl(31 / 7))`` is 32, ``ceil(31 * fl(1/7) * 7)`` may not be). Each of the
  five floats nearest that quotient is tried: its residual $a - c n$ is
  exact (``c`` split in two halves of its significand, each product exact
  for ``n`` below $2^{12}$ in float32, $2^{26}$ in float64; every partial
  difference a multiple of ``c``'s ulp that fits), and the candidate of the
  smallest residual wins, the even one on a tie. Larger ``n`` and other
  dtypes are divided plainly. Non-finite quotients pass through; 0 stays 0. A constant
  for the derivative: the operators divide only sizes they stop gradients
  at.
  """
  a = jax.lax.stop_gradient(jnp.asarray(a))
  return correctly_rounded(a, n, a / n)


def correctly_rounded(a: jax.Array, n: int, quotient: jax.Array) -> jax.Array:
  """`divide`'s rounding of ``a / n`` from a ``quotient`` within 2 ulp."""
  digits = jnp.finfo(a.dtype).nmant + 1
  low_bits = (digits + 1) // 2
  if a.dtype.itemsize not in (4, 8) or n >= 2 ** (digits - low_bits) - 4:
    return quotient
  unsigned = {4: jnp.uint32, 8: jnp.uint64}[a.dtype.itemsize]
  up, down = jnp.full_like(quotient, jnp.inf), jnp.full_like(quotient, -jnp.inf)
  below, above = jnp.nextafter(quotient, down), jnp.nextafter(quotient, up)
  # The quotient first: a tie moves only from an odd candidate to an even
  # one (a tie is a quotient halfway between two floats, or, where the
  # backend flushes subnormals, any of these near 0).
  best, best_error, best_even = quotient, None, None
  for c in (quotient, below, above, jnp.nextafter(below, down), jnp.nextafter(above, up)):
    hi, lo = _split(c, low_bits)
    error = jnp.abs((a - hi * n) - lo * n)
    even = (jax.lax.bitcast_convert_type(c, unsigned) & 1) == 0
    if best_error is None:
      best_error, best_even = error, even
      continue
    better = (error < best_error) | ((error == best_error) & even & ~best_even)
    best = jnp.where(better, c, best)
    best_error = jnp.where(better, error, best_error)
    best_even = jnp.where(better, even, best_even)
  best = jnp.where(a == 0, a, best)  # exactly, whether or not the backend flushes subnormals
  return jnp.where(jnp.isfinite(quotient), best, quotient)


def position_sensitive_features(features: int, output_shape, op: str) -> int:
  """The output features of a position-sensitive operator, ``features / (ph
  * pw)``; a ``ValueError`` naming the numbers unless it divides."""
  ph, pw = output_shape
  if features % (ph * pw):
    raise ValueError(
      f"{op}: x has {features} features, not a multiple of ph * pw = {ph} * {pw} ="
      f" {ph * pw} (output feature c of bin (p, q) reads input feature (c * ph + p) * pw"
      " + q)."
    )
  return features // (ph * pw)


def bins_first(x: jax.Array, output_shape) -> jax.Array:
  """``(batch, H, W, features)`` maps as ``(batch * H * W * ph * pw,
  features / (ph * pw))`` rows: row ``cell * ph * pw + p * pw + q`` holds
  the features bin ``(p, q)`` reads, input feature ``(c * ph + p) * pw + q``
  in column ``c`` (torchvision's channel mapping), so `sum_taps` gathers a
  bin's features as one row."""
  batch, height, width, features = x.shape
  bins = output_shape[0] * output_shape[1]
  grouped = x.reshape(batch, height, width, features // bins, bins)
  return jnp.swapaxes(grouped, -1, -2).reshape(-1, features // bins)


def sum_taps(
  flat: jax.Array,
  rows: jax.Array,
  row_weights: jax.Array,
  cols: jax.Array,
  col_weights: jax.Array,
  out_dtype,
  *,
  position_sensitive: bool = False,
) -> jax.Array:
  """Every bin's ``sum_{r, s} row_weights[r] col_weights[s] flat[rows[r] +
  cols[s]]``, ``(K, ph, pw, flat features)``.

  The taps factor into a row part ``rows, row_weights (K, ph, R)`` (the
  flat index of the row, box offset included) and a column part ``cols,
  col_weights (K, pw, S)``. A ``lax.scan`` over the ``R * S`` taps forms
  each tap's ``(K, ph, pw)`` cells, gathers one ``(K, ph, pw, features)``
  slab and accumulates it, weighted, in the compute dtype; the step is
  rematerialised, so the backward re-reads a tap instead of storing one per
  step. A tap of weight 0 adds nothing, not even ``0 * inf``, and
  its cell must still be a valid row. ``position_sensitive``: ``flat`` is
  `bins_first`'s layout and bin ``(p, q)`` reads row ``cell * ph * pw + p *
  pw + q``.
  """
  boxes, ph, row_taps = rows.shape
  pw, col_taps = cols.shape[1:]
  compute = dtypes.compute_dtype(flat.dtype)
  own_bin = jnp.arange(ph * pw, dtype=rows.dtype).reshape(1, ph, pw)
  # Tap (r, s) of bin (p, q) is row tap r of p times column tap s of q. The
  # step forms the tap's (K, ph, pw) cells from the factors, so only the
  # weights are stored per tap (formed in the step as well, XLA:CPU keeps one
  # more (K, ph, pw, features) slab in the backward), as one flat row each:
  # (taps, K, ph, pw) would pad its minor (ph, pw) axes to (8, 128) on TPU,
  # 18x for 7 x 7 bins.
  weights = (row_weights[:, :, None, :, None] * col_weights[:, None, :, None, :]).astype(compute)
  weights = jnp.moveaxis(weights.reshape(boxes * ph * pw, -1), -1, 0)

  @jax.checkpoint  # the backward re-reads a tap rather than storing one per step
  def add(total, tap):
    tap, weight = tap
    weight = weight.reshape(boxes, ph, pw)
    r, s = jnp.divmod(tap, col_taps)
    cell = rows[:, :, r, None] + cols[:, None, :, s]  # (K, ph, pw)
    if position_sensitive:
      cell = cell * (ph * pw) + own_bin
    value = flat[cell].astype(compute)
    return total + jnp.where(weight[..., None] != 0, weight[..., None] * value, 0), None

  total = jnp.zeros((boxes, ph, pw, flat.shape[-1]), compute)
  taps = (jnp.arange(row_taps * col_taps, dtype=jnp.int32), weights)
  return jax.lax.scan(add, total, taps)[0].astype(out_dtype)
