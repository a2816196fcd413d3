"""DynOPool (Jang et al., CVPR 2022): pooling with a learned output size.

The input is divided into ``out`` cells per spatial axis. Cell ``j`` of an
axis has its centre at ``p_j = -1 + (2j + 1) / out`` in normalised
coordinates (``[-1, 1]`` spans the input, pixel ``i`` of a length-``L`` axis
sits at ``-1 + (2i + 1) / L``: ``align_corners=False``). Each cell is read at
the ``2**n`` query points ``p +- delta``, each by multilinear interpolation
with border clamping, and the reads are combined by ``max`` (the paper) or
``mean``.

The output size is an integer and sets the array shape, so it is static. The
learned scale ``alpha = 1 / r`` reaches the result through the sampling
positions, which use the straight-through size
``round(L / alpha) + L / alpha - sg(L / alpha)``: its value is the integer,
its derivative with respect to ``alpha`` that of ``L / alpha``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxpool._src.core.checks import (
  check_bool,
  check_choice,
  check_number_array,
  check_positive_number,
  concrete_values,
  is_int,
  per_feature_shape,
)
from jaxpool._src.core.dtypes import compute_dtype, float_input
from jaxpool._src.core.eager import compiled_when_eager

__all__ = [
  "AGGREGATES",
  "check_dyno_ratios",
  "check_output_shape",
  "dyno_area_ratio",
  "dyno_delta",
  "DYNO_OFFSETS",
  "dyno_pool",
  "dyno_scale",
  "init_dyno_params",
  "rounded_sizes",
  "straight_through_sizes",
]

AGGREGATES = ("max", "mean")


def check_output_shape(output_shape, x_shape: tuple[int, ...] | None = None) -> tuple[int, ...]:
  """``output_shape`` as a tuple of 1 to 3 positive ints; with ``x_shape``,
  also that ``x`` has those spatial axes plus a feature axis."""
  if is_int(output_shape):
    raise ValueError(
      "output_shape must be a tuple of 1 to 3 positive ints, one per spatial"
      f" axis (an int does not say how many: write ({output_shape},"
      f" {output_shape}) for a 2-D map); got {output_shape!r}."
    )
  if (
    not isinstance(output_shape, Sequence)
    or not 1 <= len(output_shape) <= 3
    or not all(is_int(n) and n >= 1 for n in output_shape)
  ):
    raise ValueError(
      "output_shape must be a tuple of 1 to 3 positive ints (one per"
      f" spatial axis); got {output_shape!r}."
    )
  output_shape = tuple(int(n) for n in output_shape)
  if x_shape is not None and len(x_shape) < len(output_shape) + 1:
    raise ValueError(
      f"dyno_pool: output_shape {output_shape} has {len(output_shape)}"
      f" spatial axes, so x must have shape (*batch, *spatial, features)"
      f" with {len(output_shape) + 1} or more axes; got shape {x_shape}."
    )
  return output_shape


def straight_through_sizes(in_sizes, scale, output_shape) -> jax.Array:
  """``round(L / alpha) + L / alpha - sg(L / alpha)`` per axis, with the
  rounded value taken from the static ``output_shape``.

  Its value is ``output_shape``; its derivative with respect to ``scale``
  (``alpha``, shape ``(num_spatial,)``) is that of ``L / alpha``.
  """
  ratio = jnp.asarray(in_sizes, scale.dtype) / scale
  return jnp.asarray(output_shape, scale.dtype) + ratio - jax.lax.stop_gradient(ratio)


def rounded_sizes(in_sizes: Sequence[int], scale) -> tuple[int, ...]:
  """``max(1, round(L / alpha))`` per axis, for a concrete ``scale``.

  Examples:
    >>> rounded_sizes((32, 30), np.array([2.0, 3.0]))
    (16, 10)
  """
  scale = np.asarray(scale, np.float64)
  return tuple(max(1, int(np.floor(length / a + 0.5))) for length, a in zip(in_sizes, scale))


def _check_scale(scale, num_spatial: int) -> jax.Array:
  scale = jnp.asarray(scale)
  if not jnp.issubdtype(scale.dtype, jnp.floating):
    raise TypeError(f"scale must be a floating-point array; got dtype {scale.dtype}.")
  if scale.shape != (num_spatial,):
    raise ValueError(
      f"scale must have shape ({num_spatial},), one alpha = 1 / r per"
      f" spatial axis; got shape {scale.shape}."
    )
  check_number_array("scale", scale, low=0.0, high=np.inf, low_open=True, high_open=True)
  return scale


def _check_delta(delta, num_spatial: int, features: int) -> jax.Array:
  delta = jnp.asarray(delta)
  if not jnp.issubdtype(delta.dtype, jnp.floating):
    raise TypeError(f"delta must be a floating-point array; got dtype {delta.dtype}.")
  if delta.shape not in ((num_spatial,), (num_spatial, features)):
    raise ValueError(
      f"delta must have shape ({num_spatial},) or ({num_spatial},"
      f" {features}) (per spatial axis, optionally per feature); got shape"
      f" {delta.shape}."
    )
  check_number_array("delta", delta, low=-np.inf, high=np.inf, low_open=True, high_open=True)
  return delta


def _is_zero(tangent) -> bool:
  return isinstance(tangent, jax.custom_derivatives.SymbolicZero)


@functools.partial(jax.custom_jvp, nondiff_argnums=(3,))
def _lerp(a: jax.Array, b: jax.Array, t: jax.Array, w: _Weights) -> jax.Array:
  """``(1 - w) a + w b``, exactly ``a`` where ``w = 0`` (so a ``b`` the read
  does not reach, even an infinite one, never gives ``0 * inf``).

  The weights are ``w.value + t``: ``w`` holds the static weights when the
  positions are known at trace time (``t`` is then zero-valued and carries
  only the positions' tangents), else ``w.value`` is ``None`` and ``t`` is
  the traced weight.
  """
  weight = t if w.value is None else w.value
  if w.value is not None and not w.value.any():
    return a
  return jnp.where(weight == 0, a, (1 - weight) * a + weight * b)


def _lerp_jvp(w, primals, tangents):
  a, b, t = primals
  da, db, dt = tangents
  weight = t if w.value is None else w.value
  out = _lerp(a, b, t, w)
  tangent = jnp.zeros_like(out)
  if not _is_zero(da):
    tangent = tangent + (1 - weight) * da
  if not _is_zero(db) and (w.value is None or w.value.any()):
    tangent = tangent + weight * db
  if not _is_zero(dt):
    # The derivative in the position at a knot is the one-sided slope toward
    # the next pixel (as grid_sample's), so a query sitting on a pixel
    # centre (the quarter-cell start) still moves.
    tangent = tangent + (b - a) * dt
  return out, tangent


_lerp.defjvp(_lerp_jvp, symbolic_zeros=True)


class _Weights:
  """Static interpolation weights (a NumPy array, broadcastable to the
  reads) or ``None``; hashable by identity, for ``nondiff_argnums``."""

  def __init__(self, value):
    self.value = value


def _clamp(u: jax.Array, length: int) -> jax.Array:
  """``u`` clamped to ``[0, length - 1]`` (grid_sample's border rule); the
  derivative is 1 on the closed interval and 0 outside it. Positions within
  a few ulps of the interval count as inside, so a query that sits on the
  first pixel up to rounding still moves."""
  tol = 8 * jnp.finfo(u.dtype).eps * max(length, 1)
  clipped = jnp.clip(u, 0, length - 1)
  inside = (u >= -tol) & (u <= length - 1 + tol)
  return jnp.where(inside, u + jax.lax.stop_gradient(clipped - u), jax.lax.stop_gradient(clipped))


def _runs(index: np.ndarray) -> list[tuple[int, int, int]]:
  """``index`` as maximal arithmetic runs ``(start, step, count)``, in order
  (``step`` may be 0: a clamped index repeated)."""
  runs, begin = [], 0
  while begin < len(index):
    step = int(index[begin + 1] - index[begin]) if begin + 1 < len(index) else 1
    if step < 0:
      step = 1
    end = begin + 1
    while end < len(index) and index[end] - index[end - 1] == step:
      end += 1
    runs.append((int(index[begin]), step, end - begin))
    begin = end
  return runs


_MAX_SLICE_RUNS = 4


def _static_take(x: jax.Array, index: np.ndarray, axis: int) -> jax.Array:
  """``jnp.take(x, index, axis)`` for static indices: strided slices (which
  XLA fuses and transposes cheaply) when ``index`` is a few arithmetic runs,
  such as an integer-ratio grid with a clamped end; a gather otherwise."""
  runs = _runs(index)
  if len(runs) > _MAX_SLICE_RUNS:
    return jnp.take(x, jnp.asarray(index, jnp.int32), axis=axis)
  parts = []
  for start, step, count in runs:
    if step == 0:
      part = jax.lax.slice_in_dim(x, start, start + 1, axis=axis)
      parts.append(jnp.repeat(part, count, axis=axis))
    else:
      stop = start + step * (count - 1) + 1
      parts.append(jax.lax.slice_in_dim(x, start, stop, step, axis=axis))
  return parts[0] if len(parts) == 1 else jnp.concatenate(parts, axis=axis)


def _read_axis(x: jax.Array, axis: int, u: jax.Array, u_static: np.ndarray | None) -> jax.Array:
  """Linear interpolation of ``x`` along ``axis`` at pixel coordinates ``u``
  (shape ``(m,)``, or ``(m, features)`` per feature), clamped to the border.

  ``u_static``, when given, is ``u``'s value known at trace time: the reads
  are then static slices, and ``u`` only carries the tangents.
  """
  length = x.shape[axis]
  u = _clamp(u, length)
  trailing = x.ndim - axis - 1
  if u_static is not None:
    # Snap rounding errors of the float64 positions: knots stay exact.
    nearest = np.round(u_static)
    u_static = np.where(np.abs(u_static - nearest) < 1e-9, nearest, u_static)
    u_static = np.clip(u_static, 0, length - 1)
    i0 = np.floor(u_static).astype(np.int64)
    i1 = np.minimum(i0 + 1, length - 1)
    w = (u_static - i0).reshape(u_static.shape + (1,) * trailing).astype(x.dtype)
    t = u - jax.lax.stop_gradient(u)
    t = t.reshape(t.shape + (1,) * trailing).astype(x.dtype)
    return _lerp(_static_take(x, i0, axis), _static_take(x, i1, axis), t, _Weights(w))
  i0 = jnp.floor(u)
  w = u - i0
  i0 = i0.astype(jnp.int32)
  i1 = jnp.minimum(i0 + 1, length - 1)
  if u.ndim == 1:
    a = jnp.take(x, i0, axis=axis, mode="clip")
    b = jnp.take(x, i1, axis=axis, mode="clip")
    w = w.reshape(w.shape + (1,) * trailing)
  else:  # per feature: (m, features) indices along the axis, features last
    shape = (1,) * axis + (u.shape[0],) + (1,) * (trailing - 1) + (u.shape[1],)
    i0, i1, w = (v.reshape(shape) for v in (i0, i1, w))
    a = jnp.take_along_axis(x, i0, axis=axis, mode="clip")
    b = jnp.take_along_axis(x, i1, axis=axis, mode="clip")
  return _lerp(a, b, w.astype(x.dtype), _Weights(None))


def _query_coordinates(length: int, sizes, delta, out: int, sign: int, xp=jnp):
  """Pixel coordinates of the ``sign * delta`` queries of the ``out`` cells
  of one axis: shape ``(out,)``, or ``(out, features)`` per feature.

  ``p_j = -1 + (2j + 1) / sizes`` and ``u = ((p +- delta) + 1) L / 2 - 1/2``.
  ``xp`` is ``jnp`` (traced) or ``np`` (the static value, in float64).
  """
  j = xp.arange(out, dtype=xp.float64 if xp is np else delta.dtype)
  # The same formula arranged for rounding: cell centres in pixels, then
  # the offset in pixels (exact for the usual power-of-two sizes).
  centres = (2 * j + 1) * (length / 2) / sizes - 0.5
  if xp.ndim(delta):  # per feature
    centres = centres[:, None]
  return centres + sign * delta * (length / 2)


def _combine(queries: list[jax.Array], aggregate: str) -> jax.Array:
  """Combines the ``2**n`` query reads, given in row-major sign order (minus
  before plus, the first spatial axis slowest). ``max`` keeps the first
  maximum in that order (the gradient goes to it, as torch's max pooling),
  and NaN wins."""
  if aggregate == "mean":
    return functools.reduce(jnp.add, queries) / len(queries)
  best = queries[0]
  for q in queries[1:]:
    best = jnp.where((q > best) | jnp.isnan(q), q, best)
  return best


@compiled_when_eager(inspects=("scale", "delta"))
def dyno_pool(
  x: jax.typing.ArrayLike,
  output_shape: Sequence[int],
  delta: jax.typing.ArrayLike | None = None,
  *,
  aggregate: str = "max",
  scale: jax.typing.ArrayLike | None = None,
) -> jax.Array:
  r"""DynOPool's resizing: $2^n$ bilinear reads per cell, combined.

  Jang, Chu, Kim & Han, "Pooling Revisited: Your Receptive Field is
  Suboptimal", CVPR 2022. Per spatial axis of length $L$ divided into
  $\mathrm{out}$ cells, the cell centres and the query points are, in
  normalised coordinates (``align_corners=False``, pixel $i$ at
  $-1 + (2i + 1) / L$):

  $$
  p_j = -1 + \frac{2j + 1}{\mathrm{out}}, \qquad q = p_j \pm \delta,
  $$

  and $y[j] = \max_q \operatorname{bilinear}(x, q)$ over the $2^n$ queries,
  each read clamped to the border (``mean`` with ``aggregate="mean"``). In
  2-D this is ``torch.nn.functional.grid_sample(..., mode="bilinear",
  padding_mode="border", align_corners=False)`` at the four grids
  $(p_w \pm \delta_w, p_h \pm \delta_h)$, combined by max. At half the input
  size, $\delta = 0$ is 2x2/2 average pooling and the quarter cell
  $\delta = 1 / (2\, \mathrm{out})$ is 2x2/2 max pooling.

  With ``scale=alpha`` the cell centres use the straight-through size
  $\mathrm{out} + L / \alpha - \operatorname{sg}(L / \alpha)$ in place of
  $\mathrm{out}$: the values are the same, and $\alpha$ (the paper's $1 / r$)
  gets the gradient that makes the size learnable. ``output_shape`` is the
  static rounded size, $\operatorname{round}(L / \alpha)$
  ([`jaxpool.nnx.DynOPool`][jaxpool.nnx.DynOPool] keeps it in sync).

  Speed: when ``delta`` is ``None`` or concrete (not traced) the query
  positions are known at trace time and every read is a static strided
  slice, fused into one pass; a traced ``delta`` (a learned offset) needs a
  gather per read and is several times slower.

  Differentiable with respect to ``x``, ``delta`` and ``scale``. At a
  pixel centre the derivative in the position is the one-sided slope toward
  the next pixel (as grid_sample's). Queries beyond the cell or the border
  are clamped, never NaN. An input NaN or inf reaches only the outputs
  whose reads touch it (and the gradient of ``delta``/``scale``, which
  sums over every read).

  Args:
    x: input of shape ``(*batch, *spatial, features)``, floating point;
      half precision is computed in float32.
    output_shape: ``(out_1, ..., out_n)``, 1 to 3 positive ints; $n$ is
      the number of spatial axes (the $n$ axes before the features).
    delta: query offsets in normalised units, shape ``(n,)``, or
      ``(n, features)`` per feature; any finite value. ``None`` (the
      default) is the quarter cell $1 / (2\, \mathrm{size})$, which moves with the
      (straight-through) size: at half the input size the queries then sit
      on the four pixels of each 2x2 block.
    aggregate: ``"max"`` (the paper; the gradient goes to the first maximum
      in row-major query order, minus before plus) or ``"mean"``.
    scale: ``None``, or $\alpha$ of shape ``(n,)``, positive: the cell
      centres then follow the straight-through size.

  Returns:
    Array of shape ``(*batch, *output_shape, features)``, ``x``'s dtype.

  Examples:
    >>> import jax.numpy as jnp
    >>> x = jnp.arange(16.0).reshape(1, 4, 4, 1)
    >>> dyno_pool(x, (2, 2))[0, ..., 0]  # the quarter cell: 2x2 max pooling
    Array([[ 5.,  7.],
           [13., 15.]], dtype=float32)
    >>> dyno_pool(x, (2, 2), jnp.zeros(2))[0, ..., 0]  # 2x2 average pooling
    Array([[ 2.5,  4.5],
           [10.5, 12.5]], dtype=float32)
  """
  x = float_input(x, "dyno_pool")
  out = check_output_shape(output_shape, x.shape)
  check_choice("aggregate", aggregate, AGGREGATES)
  num_spatial = len(out)
  dtype = compute_dtype(x.dtype)
  spatial0 = x.ndim - num_spatial - 1
  in_sizes = x.shape[spatial0:-1]
  if scale is None:
    sizes = jnp.asarray(out, dtype)
  else:
    scale = _check_scale(scale, num_spatial)
    sizes = straight_through_sizes(in_sizes, scale.astype(dtype), out)
  if delta is None:  # the quarter cell, moving with the size
    delta, static_delta = 1 / (2 * sizes), 1 / (2 * np.asarray(out, np.float64))
  else:
    delta = _check_delta(delta, num_spatial, x.shape[-1]).astype(dtype)
    static_delta = concrete_values(delta)
    if static_delta is not None and static_delta.ndim > 1:
      static_delta = None  # per feature: the gather path
  # Separable: read the last spatial axis first, then each earlier one, at
  # the minus and the plus queries; the reads stay separate arrays so that
  # XLA fuses them into the combination.
  queries = [x.astype(dtype)]
  for i in reversed(range(num_spatial)):
    reads = {}
    for sign in (-1, 1):
      u = _query_coordinates(in_sizes[i], sizes[i], delta[i], out[i], sign)
      u_static = None
      if static_delta is not None:
        u_static = _query_coordinates(in_sizes[i], out[i], static_delta[i], out[i], sign, xp=np)
      reads[sign] = [_read_axis(q, spatial0 + i, u, u_static) for q in queries]
    # Axis i's sign becomes the most significant: row-major order.
    queries = reads[-1] + reads[1]
  return _combine(queries, aggregate).astype(x.dtype)


# ---------------------------------------------------------------------------
# The layer's parametrisation: the learned size and offset.
# ---------------------------------------------------------------------------


DYNO_OFFSETS = ("cell", "learned")


def check_dyno_ratios(name: str, value, spatial_dims: int) -> tuple[float, ...]:
  """``value`` (a positive number, or one per axis) as ``spatial_dims`` floats."""
  values = tuple(value) if isinstance(value, Sequence) else (value,) * spatial_dims
  if len(values) != spatial_dims:
    raise ValueError(
      f"{name} must be a number or {spatial_dims} numbers (one per spatial axis); got {value!r}."
    )
  return tuple(check_positive_number(name, v) for v in values)


def init_dyno_params(
  spatial_dims: int,
  *,
  init_ratio=0.5,
  offset: str = "cell",
  features: int | None = None,
  per_feature: bool = False,
  max_ratio: Sequence[float] | None = None,
) -> dict[str, jax.Array]:
  """DynOPool's parameters: ``alpha = 1 / r`` per spatial axis (the paper's
  reparameterisation), and with ``offset='learned'`` the query offset
  ``offset`` in input pixels, per axis (``(spatial_dims,)``) or per axis and
  feature (``(spatial_dims, features)``), initialised to a quarter of the
  initial cell, ``alpha / 4``. So both start as the quarter-cell reading (2x2
  max pooling for ``init_ratio=0.5``). With ``max_ratio`` (checked floats),
  every initial ratio must be at most its bound."""
  check_choice("offset", offset, DYNO_OFFSETS)
  ratios = check_dyno_ratios("init_ratio", init_ratio, spatial_dims)
  if max_ratio is not None and any(r > m for r, m in zip(ratios, max_ratio)):
    raise ValueError(
      f"init_ratio {ratios} exceeds max_ratio {tuple(max_ratio)} on some"
      " axis: the layer would start clamped at max_ratio. Lower init_ratio"
      " or raise max_ratio."
    )
  alpha = 1 / jnp.asarray(ratios, jnp.float32)
  params = {"alpha": alpha}
  if offset == "learned":
    extra = per_feature_shape("DynOPool", per_feature, features)
    quarter = (alpha / 4).reshape((spatial_dims,) + (1,) * len(extra))
    params["offset"] = jnp.broadcast_to(quarter, (spatial_dims, *extra))
  elif check_bool("per_feature", per_feature):
    raise ValueError("per_feature=True needs offset='learned' (the cell offset has no parameters).")
  return params


def dyno_scale(params: dict[str, jax.Array], max_ratio: Sequence[float]) -> jax.Array:
  """``alpha``, kept at ``alpha >= 1 / max_ratio`` (so the output is at most
  ``max_ratio`` times the input; the gradient stops at the bound)."""
  return jnp.maximum(params["alpha"], 1 / jnp.asarray(max_ratio, params["alpha"].dtype))


def dyno_delta(params: dict[str, jax.Array], in_sizes: Sequence[int]) -> jax.Array | None:
  """The learned offset in [`jaxpool.dyno_pool`][jaxpool.dyno_pool]'s normalised units
  (``2 * offset / L``), or ``None`` for the quarter cell."""
  if "offset" not in params:
    return None
  offset = params["offset"]
  lengths = jnp.asarray(in_sizes, offset.dtype).reshape((-1,) + (1,) * (offset.ndim - 1))
  return 2 * offset / lengths


def dyno_area_ratio(
  in_sizes: Sequence[int],
  scale: jax.Array,
  output_shape: Sequence[int],
  initial_shape: Sequence[int],
) -> jax.Array:
  """``prod(straight-through sizes) / prod(initial sizes)``: the factor by
  which the layers after this one cost more than at initialisation, the
  weight of their MACs in the complexity loss (differentiable in ``alpha``)."""
  sizes = straight_through_sizes(in_sizes, scale, output_shape)
  return jnp.prod(sizes) / math.prod(initial_shape)
