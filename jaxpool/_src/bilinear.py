"""Bilinear pooling (Lin et al., B-CNN, ICCV 2015) and compact bilinear
pooling by Tensor Sketch (Gao et al., CVPR 2016)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxpool._src.core.checks import check_bool, check_one_key, check_positive_number, is_int
from jaxpool._src.core.descriptors import (
  l2_normalize,
  positions,
  power_of_two_scale,
  signed_sqrt,
)
from jaxpool._src.core.eager import compiled_when_eager

__all__ = ["bilinear_pool", "compact_bilinear_pool", "count_sketches"]


def _pair(x, y, spatial_ndim, op: str):
  """The rows of ``x`` and ``y`` (``y = x`` when ``None``), checked to share
  the batch and position axes."""
  x = jnp.asarray(x)
  rows_x = positions(x, spatial_ndim, op)
  if y is None:
    return x, rows_x, rows_x
  y = jnp.asarray(y)
  rows_y = positions(y, spatial_ndim, op)
  if rows_x.shape[:-1] != rows_y.shape[:-1]:
    raise ValueError(
      f"{op}: x and y must share their batch and spatial axes; got shapes {x.shape} and {y.shape}."
    )
  return x, rows_x, rows_y.astype(rows_x.dtype)


def _scaled(rows_x, rows_y, normalize: bool):
  """``(rows_x', rows_y', k)``: for the normalised descriptors, the rows
  divided by powers of two into ``[-1, 1]`` (so no product overflows) and
  ``k`` (``(*batch, 1)``), the log2 of the factor the descriptor lost;
  unnormalised ones keep their scale (``k = 0``) and overflow to inf only
  where the value leaves the dtype's range."""
  if not normalize:
    return rows_x, rows_y, 0
  same = rows_y is rows_x
  rows_x, ex = power_of_two_scale(rows_x)
  rows_y, ey = (rows_x, ex) if same else power_of_two_scale(rows_y)
  return rows_x, rows_y, (ex + ey)[..., 0]


def _finish(v: jax.Array, normalize: bool, eps: float, k) -> jax.Array:
  """Signed square root (``sqrt(|v| + eps)`` with ``eps``) and L2 of the
  descriptor ``2^k v``: the L2 normalisation removes the factor
  ``2^(k / 2)`` the square root leaves, so only ``eps`` and the L2 floor are
  scaled (each kept at or above the smallest normal number)."""
  if not normalize:
    return v
  tiny = jnp.finfo(v.dtype).tiny
  if eps:
    # Clipped to the range: beyond it eps alone decides the direction.
    shifted = jnp.clip(jnp.ldexp(jnp.asarray(eps, v.dtype), -k), tiny, jnp.finfo(v.dtype).max / 4)
    v = jnp.sign(v) * jnp.sqrt(jnp.abs(v) + shifted)
  else:
    v = signed_sqrt(v)
  floor = jnp.ldexp(jnp.asarray(1e-12, v.dtype), -(k // 2))
  floor = jnp.where(k % 2 == 1, floor * np.sqrt(0.5).astype(v.dtype), floor)
  return l2_normalize(v, axis=-1, eps=jnp.maximum(floor, tiny))


@compiled_when_eager()
def bilinear_pool(
  x: jax.typing.ArrayLike,
  y: jax.typing.ArrayLike | None = None,
  *,
  normalize: bool = True,
  eps: float = 0.0,
  spatial_ndim: int | None = None,
) -> jax.Array:
  r"""Bilinear pooling: the mean outer product, signed square root, L2.

  $z = \frac{1}{M} \sum_l x_l y_l^\top$ over the $M$ positions (``y = x`` when
  ``None``), flattened row-major (``x``'s features major), then
  $\operatorname{sign}(z) \sqrt{\lvert z \rvert}$ and $z / \lVert z \rVert_2$
  (B-CNN). The signed square root is exact in value; its derivative is taken
  as 0 where $z = 0$ (finite). ``eps > 0`` uses
  $\operatorname{sign}(z) \sqrt{\lvert z \rvert + \mathrm{eps}}$ instead, as the
  common B-CNN snippets (``1e-5``; fast-MPN-COV's ``1e-8``). With
  ``normalize``, the rows are divided by powers of two into ``[-1, 1]`` first
  (the L2 normalisation removes the scale; ``eps`` is scaled with it), so the
  result is finite for any finite input; without, $z$ itself leaves float32
  (``inf``, never NaN) for features above about ``1e19``.

  Args:
    x: ``(batch, *spatial, d_x)``, floating point (half precision computed
      in float32).
    y: ``(batch, *spatial, d_y)`` with the same batch and spatial axes, or
      ``None``.
    normalize: apply the signed square root and the L2 normalisation.
    eps: added inside the square root (0: exact).
    spatial_ndim: the number of spatial axes before the features, for
      layouts other than one batch axis.

  Returns:
    ``(batch, d_x * d_y)``, ``x``'s dtype.

  Examples:
    >>> import jax.numpy as jnp, jaxpool
    >>> x = jnp.ones((2, 3, 3, 4))
    >>> jaxpool.bilinear_pool(x).shape
    (2, 16)
    >>> float(jnp.linalg.norm(jaxpool.bilinear_pool(x)[0]))
    1.0
  """
  normalize = check_bool("normalize", normalize)
  eps = check_positive_number("eps", eps, allow_zero=True)
  x, rows_x, rows_y = _pair(x, y, spatial_ndim, "bilinear_pool")
  rows_x, rows_y, k = _scaled(rows_x, rows_y, normalize)
  z = jnp.einsum("...mi,...mj->...ij", rows_x, rows_y) / rows_x.shape[-2]
  z = z.reshape(z.shape[:-2] + (-1,))
  return _finish(z, normalize, eps, k).astype(x.dtype)


def count_sketches(key: jax.Array, in_dims: tuple[int, int], output_dim: int):
  """Tensor Sketch's two count sketches ``((h1, s1), (h2, s2))``: hashes
  ``h_k`` uniform in ``[0, output_dim)`` and signs ``s_k`` uniform in
  ``{-1, +1}``, one per input feature, independent, drawn from ``key``."""
  keys = jax.random.split(key, 4)
  sketches = []
  for dim, (kh, ks) in zip(in_dims, (keys[:2], keys[2:])):
    h = jax.random.randint(kh, (dim,), 0, output_dim)
    s = jnp.where(jax.random.bernoulli(ks, 0.5, (dim,)), 1.0, -1.0)
    sketches.append((h, s))
  return tuple(sketches)


def _count_sketch(rows: jax.Array, h: jax.Array, s: jax.Array, output_dim: int) -> jax.Array:
  """``Psi(v)[k] = sum_{i: h(i) = k} s(i) v_i`` for every row: a scatter-add
  over the feature axis."""
  # zeros_like keeps the rows' (batch) sharding.
  out = jnp.zeros_like(rows[..., :1]) + jnp.zeros((output_dim,), rows.dtype)
  return out.at[..., h].add(rows * s.astype(rows.dtype))


@compiled_when_eager(inspects=("sketches",))
def compact_bilinear_pool(
  x: jax.typing.ArrayLike,
  y: jax.typing.ArrayLike | None = None,
  *,
  output_dim: int,
  key: jax.Array | None = None,
  sketches=None,
  normalize: bool = True,
  eps: float = 0.0,
  spatial_ndim: int | None = None,
) -> jax.Array:
  r"""Compact bilinear pooling by Tensor Sketch (Gao et al., CVPR 2016).

  Two independent count sketches $\Psi_1$ (for ``x``) and $\Psi_2$ (for
  ``y``, which is ``x`` when ``None``), each a random hash $h: [d] \to [D]$
  and sign $s: [d] \to \{-1, 1\}$, $\Psi(v)_k = \sum_{i : h(i) = k} s(i) v_i$.
  Per position, $\operatorname{TS}(x_l, y_l) =
  \operatorname{irfft}(\operatorname{rfft}(\Psi_1 x_l) \odot \operatorname{rfft}(\Psi_2 y_l))$
  (the circular convolution of the sketches), summed over the positions
  (Gao et al.'s sum pooling):

  $$
  \phi(X, Y) = \sum_l \operatorname{TS}(x_l, y_l),
  $$

  so $\langle \phi(X, Y), \phi(X', Y') \rangle$ is an unbiased estimate of
  $\langle \sum_l x_l y_l^\top, \sum_l x'_l {y'_l}^\top \rangle$ over the
  sketches. ``normalize=True`` then applies the signed square root and L2, as
  [`bilinear_pool`][jaxpool.bilinear_pool].

  Args:
    x: ``(batch, *spatial, d_x)``, floating point.
    y: ``(batch, *spatial, d_y)`` or ``None``.
    output_dim: $D$, the sketch size (>= 1).
    key: draws the sketches (the same key gives the same sketches); or
    sketches: ``((h1, s1), (h2, s2))`` from `count_sketches`, e.g. a
      layer's stored state. Exactly one of ``key`` and ``sketches``;
      concrete hashes must be integers in ``[0, output_dim)``.
    normalize: signed square root and L2 normalisation.
    eps: added inside the square root (0: exact).
    spatial_ndim: the number of spatial axes before the features.

  Returns:
    ``(batch, output_dim)``, ``x``'s dtype.

  Examples:
    >>> import jax, jax.numpy as jnp, jaxpool
    >>> x = jnp.ones((2, 3, 3, 8))
    >>> jaxpool.compact_bilinear_pool(x, output_dim=32, key=jax.random.key(0)).shape
    (2, 32)
  """
  if not is_int(output_dim) or output_dim < 1:
    raise ValueError(f"output_dim must be an int >= 1; got {output_dim!r}.")
  normalize = check_bool("normalize", normalize)
  eps = check_positive_number("eps", eps, allow_zero=True)
  x, rows_x, rows_y = _pair(x, y, spatial_ndim, "compact_bilinear_pool")
  dims = (rows_x.shape[-1], rows_y.shape[-1])
  if (key is None) == (sketches is None):
    raise TypeError("compact_bilinear_pool takes exactly one of key and sketches.")
  if key is not None:
    check_one_key(key)
    sketches = count_sketches(key, dims, output_dim)
  (h1, s1), (h2, s2) = sketches
  if (h1.shape, h2.shape) != ((dims[0],), (dims[1],)):
    raise ValueError(
      f"compact_bilinear_pool: the sketches hash {h1.shape} and {h2.shape}"
      f" features; the inputs have {dims}."
    )
  for name, h in (("h1", h1), ("h2", h2)):
    _check_hashes(name, h, output_dim)
  rows_x, rows_y, k = _scaled(rows_x, rows_y, normalize)
  spectrum = _sketch_spectrum_sum(rows_x, rows_y, (h1, s1), (h2, s2), output_dim)
  # The sum over positions commutes with the (linear) inverse transform.
  phi = jnp.fft.irfft(spectrum, n=output_dim, axis=-1)
  return _finish(phi.astype(rows_x.dtype), normalize, eps, k).astype(x.dtype)


def _sketch_spectrum_sum(rows_x, rows_y, sketch_x, sketch_y, output_dim: int) -> jax.Array:
  """``sum_l rfft(Psi_1 x_l) * rfft(Psi_2 y_l)`` over the positions, in
  chunks of positions (a ``scan`` whose steps are recomputed in the
  backward), so that the per-position spectra, ``output_dim / features``
  times the rows' size, exist for one chunk at a time."""
  positions = rows_x.shape[-2]
  features = rows_x.shape[-1] + rows_y.shape[-1]
  # Chunks of at most about the rows' size in spectra (two arrays of
  # output_dim / 2 + 1 complex values per position).
  chunk = max(1, min(positions, (positions * features) // (2 * output_dim + 2)))
  count = -(-positions // chunk)

  def chunks(rows):  # (count, *batch, chunk, d); zero rows add nothing
    pad = [(0, 0)] * rows.ndim
    pad[-2] = (0, count * chunk - positions)
    rows = jnp.pad(rows, pad)
    rows = rows.reshape(rows.shape[:-2] + (count, chunk, rows.shape[-1]))
    return jnp.moveaxis(rows, -3, 0)

  @jax.checkpoint
  def step(total, pair):
    cx, cy = pair
    fx = jnp.fft.rfft(_count_sketch(cx, *sketch_x, output_dim), axis=-1)
    fy = jnp.fft.rfft(_count_sketch(cy, *sketch_y, output_dim), axis=-1)
    return total + jnp.sum(fx * fy, axis=-2), None

  dtype = jnp.complex128 if rows_x.dtype == jnp.float64 else jnp.complex64
  # zeros_like keeps the rows' (batch) sharding.
  total = jnp.zeros_like(rows_x[..., 0, :1], dtype) + jnp.zeros((output_dim // 2 + 1,), dtype)
  if count == 1:
    return step(total, (rows_x, rows_y))[0]
  return jax.lax.scan(step, total, (chunks(rows_x), chunks(rows_y)))[0]


def _check_hashes(name: str, h, output_dim: int) -> None:
  """Concrete hashes must be integers in ``[0, output_dim)`` (a hash out of
  range would drop its feature); traced ones are used as given."""
  try:
    values = np.asarray(h)
  except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
    return
  if not np.issubdtype(values.dtype, np.integer):
    raise TypeError(
      f"compact_bilinear_pool: sketch hashes {name} must be integers; got {values.dtype}."
    )
  if values.size and (values.min() < 0 or values.max() >= output_dim):
    raise ValueError(
      f"compact_bilinear_pool: sketch hashes {name} must lie in [0, output_dim ="
      f" {output_dim}); got values from {values.min()} to {values.max()}."
    )
