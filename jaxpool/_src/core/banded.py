"""Two-band linear maps at stride 2, as sums of shifted phase planes.

A fixed wavelet's lifting step along an axis is a linear map ``M`` from a
signal ``x`` of even length ``n = 2m`` to two bands of length ``m``::

    band[b, k] = sum_j M[b, k, j] x[j]

whose band sample ``k`` reads only the blocks ``k - 1, k, k + 1`` of ``x``
(block ``i`` being the pair ``x[2i], x[2i + 1]``). Written per block shift
``h`` and phase ``p``::

    band[b, k] = sum_(h, p) w[b, h, p][k] * x[2(k + h) + p]

with ``w[b, h, p][k] = M[b, k, 2(k + h) + p]``: a few shifted, weighted
planes of ``x``, with the symmetric extension at the borders folded into the
weights. :func:`to_bands` computes this; :func:`from_bands` computes the
transpose ``x = M^T band`` in the phase layout ``(m, 2)`` of ``x``, as sums
of shifted bands broadcast over the phases (the layout of
:mod:`~jaxpool._src.core.scatter`), with no interleaving copy. Each is the
other's derivative. Lifting as two chained steps would be fused by XLA into
every tap of the next one (each output recomputing its neighbours' predict
and update); these forms read ``x`` (or the bands) once per tap.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

__all__ = ["BandTerms", "band_terms", "from_bands", "to_bands"]


class BandTerms(NamedTuple):
  """A band map ``M`` of shape ``(bands, m, 2m)`` as its nonzero terms.

  ``terms`` holds ``(band, shift, phase, weights)`` with ``weights`` a tuple
  of ``m`` floats: ``band[k] += weights[k] * x[2(k + shift) + phase]``.
  Hashable, so it can be a static argument.
  """

  bands: int
  m: int
  terms: tuple[tuple[int, int, int, tuple[float, ...]], ...]


def band_terms(matrix: np.ndarray) -> BandTerms:
  """The terms of ``matrix`` (``(bands, m, 2m)``, usually two bands; one
  for a sum of bands), checked to read only blocks ``k - 1 .. k + 1``.

  Examples:
    >>> import numpy as np
    >>> haar = np.zeros((2, 1, 2)); haar[0, 0] = 0.5; haar[1, 0] = (-1, 1)
    >>> band_terms(haar).terms
    ((0, 0, 0, (0.5,)), (0, 0, 1, (0.5,)), (1, 0, 0, (-1.0,)), (1, 0, 1, (1.0,)))
  """
  matrix = np.asarray(matrix, np.float64)
  bands, m, n = matrix.shape
  if matrix.ndim != 3 or n != 2 * m:
    raise ValueError(f"expected a (bands, m, 2m) matrix; got shape {matrix.shape}.")
  k = np.arange(m)
  covered = np.zeros(matrix.shape, bool)
  terms = []
  for band in range(bands):
    for shift in (-1, 0, 1):
      for phase in range(2):
        j = 2 * (k + shift) + phase
        inside = (j >= 0) & (j < n)
        weights = np.zeros(m)
        weights[inside] = matrix[band, k[inside], j[inside]]
        covered[band, k[inside], j[inside]] = True
        if weights.any():
          terms.append((band, shift, phase, tuple(float(w) for w in weights)))
  if matrix[~covered].any():
    raise ValueError("the map reads beyond the neighbouring blocks.")
  return BandTerms(bands, m, tuple(terms))


def _along(vector, ndim: int, axis: int, dtype, trailing: int = 0) -> jax.Array:
  """``vector`` (a constant, so it has no sharding to match) shaped to
  broadcast along ``axis`` of an ``ndim`` array; ``trailing`` more axes of
  the vector's own (the phases) follow it."""
  vector = np.asarray(vector)
  shape = [1] * ndim
  shape[axis:axis + 1 + trailing] = vector.shape
  if np.all(vector == vector.flat[0]):
    return jnp.asarray(vector.flat[0], dtype)
  return jnp.asarray(vector.reshape(shape), dtype)


def _guarded(term: jax.Array, weights: np.ndarray, read: np.ndarray, axis: int) -> jax.Array:
  """``term`` (values times ``weights``) with exact zeros where a weight is
  zero at a position that is read, so that an infinite or NaN value there
  does not reach a sample that does not depend on it (``0 * inf`` is NaN).
  Free when no read weight is zero (the fixed wavelets' analysis)."""
  zero = (weights == 0) & read
  if not zero.any():
    return term
  shape = [1] * term.ndim
  shape[axis:axis + weights.ndim] = weights.shape
  return jnp.where(~zero.reshape(shape), term, jnp.zeros((), term.dtype))


def _clamped(a: jax.Array, axis: int, shift: int) -> jax.Array:
  """``a[k + shift]`` along ``axis`` (``shift`` = -1, 0, 1), the end sample
  repeated: a zero-padded slice with the end sample selected back in, which
  XLA fuses into its consumer even when several consumers share it (a bare
  pad is materialised once). The terms' weights are zero where ``k + shift``
  leaves the axis, so the repeated sample never counts."""
  if shift == 0:
    return a
  n = a.shape[axis]
  config = [(0, 0, 0)] * a.ndim
  config[axis] = (0, 1, 0) if shift > 0 else (1, 0, 0)
  kept = lax.slice_in_dim(a, 1, n, axis=axis) if shift > 0 else lax.slice_in_dim(a, 0, n - 1, axis=axis)
  moved = lax.pad(kept, jnp.zeros((), a.dtype), config)
  end = np.zeros([n if d == axis else 1 for d in range(a.ndim)], bool)
  end.reshape(-1)[n - 1 if shift > 0 else 0] = True
  return jnp.where(end, a, moved)


def _zero_shifted(a: jax.Array, axis: int, shift: int) -> jax.Array:
  """``a[k + shift]`` along ``axis``, zero outside."""
  if shift == 0:
    return a
  n = a.shape[axis]
  config = [(0, 0, 0)] * a.ndim
  if shift > 0:
    part, config[axis] = lax.slice_in_dim(a, shift, n, axis=axis), (0, shift, 0)
  else:
    part, config[axis] = lax.slice_in_dim(a, 0, n + shift, axis=axis), (-shift, 0, 0)
  return lax.pad(part, jnp.zeros((), a.dtype), config)


def _gather(x: jax.Array, axis: int, bank: BandTerms) -> tuple[jax.Array, ...]:
  """``M x``: the bands, each a sum of weighted shifted phase planes."""
  phased = x.reshape(x.shape[:axis] + (bank.m, 2) + x.shape[axis + 1:])
  planes = [lax.index_in_dim(phased, p, axis + 1, keepdims=False) for p in range(2)]
  bands = [None] * bank.bands
  for band, shift, phase, weights in bank.terms:
    # Weighted before the shift (by the weight of the band sample that reads
    # it), so that two bands reading one plane do not share a shifted copy,
    # which XLA would materialise.
    source = np.zeros(bank.m)
    k = np.arange(bank.m)
    inside = (k + shift >= 0) & (k + shift < bank.m)
    source[k[inside] + shift] = np.asarray(weights)[inside]
    read = np.zeros(bank.m, bool)
    read[k[inside] + shift] = True
    weighted = _guarded(planes[phase] * _along(source, x.ndim, axis, x.dtype), source, read, axis)
    term = _zero_shifted(weighted, axis, shift)
    bands[band] = term if bands[band] is None else bands[band] + term
  return tuple(b if b is not None else jnp.zeros_like(planes[0]) for b in bands)


def _scatter(bands, axis: int, bank: BandTerms) -> jax.Array:
  """``M^T bands``, computed in the phase layout ``(..., m, 2, ...)``: input
  block ``i`` receives band sample ``i - shift`` through each term, so every
  ``(band, shift)`` is one shifted band broadcast over the phases with an
  ``(m, 2)`` weight table."""
  m = bank.m
  tables: dict[tuple[int, int], np.ndarray] = {}
  for band, shift, phase, weights in bank.terms:
    table = tables.setdefault((band, shift), np.zeros((m, 2)))
    i = np.arange(m)
    source = i - shift
    inside = (source >= 0) & (source < m)
    table[i[inside], phase] = np.asarray(weights)[source[inside]]
  ndim = bands[0].ndim + 1
  total = None
  for (band, shift), table in tables.items():
    value = _zero_shifted(jnp.expand_dims(bands[band], axis + 1), axis, -shift)
    i = np.arange(m)
    read = np.repeat(((i - shift >= 0) & (i - shift < m))[:, None], 2, axis=1)
    term = _guarded(value * _along(table, ndim, axis, value.dtype, trailing=1), table, read, axis)
    total = term if total is None else total + term
  shape = bands[0].shape
  total = jnp.broadcast_to(total, shape[:axis] + (m, 2) + shape[axis + 1:])
  return total.reshape(shape[:axis] + (2 * m,) + shape[axis + 1:])


# Each map is linear, so its derivative is the map itself applied to the
# tangent. The tangent map is written as the transpose of the other form, so
# that reverse mode, which transposes it back, runs the other form (the
# pattern of core.reductions.window_sum); forward mode stays available.


@functools.partial(jax.custom_jvp, nondiff_argnums=(1, 2))
def _to_bands(x, axis, bank):
  return _gather(x, axis, bank)


@_to_bands.defjvp
def _to_bands_jvp(axis, bank, primals, tangents):
  (x,), (t,) = primals, tangents
  bands = _to_bands(x, axis, bank)
  # The bands stand for the cotangents' types (only those are read).
  (dx,) = jax.linear_transpose(lambda g: _scatter(g, axis, bank), bands)(t)
  return bands, dx


@functools.partial(jax.custom_jvp, nondiff_argnums=(1, 2))
def _from_bands(bands, axis, bank):
  return _scatter(bands, axis, bank)


@_from_bands.defjvp
def _from_bands_jvp(axis, bank, primals, tangents):
  (bands,), (tangents,) = primals, tangents
  x = _from_bands(bands, axis, bank)
  # x stands for the cotangent's type (only that is read).
  (dx,) = jax.linear_transpose(lambda g: _gather(g, axis, bank), x)(tuple(tangents))
  return x, dx


def to_bands(x: jax.Array, axis: int, bank: BandTerms) -> tuple[jax.Array, ...]:
  """The bands ``M x`` along ``axis`` of ``x`` (length ``2 * bank.m``);
  the derivative is :func:`from_bands`.

  Examples:
    >>> import numpy as np, jax.numpy as jnp
    >>> haar = np.zeros((2, 2, 4)); haar[0, [0, 0, 1, 1], [0, 1, 2, 3]] = 0.5
    >>> haar[1, [0, 0, 1, 1], [0, 1, 2, 3]] = (-1, 1, -1, 1)
    >>> low, high = to_bands(jnp.array([1.0, 3.0, 4.0, 4.0]), 0, band_terms(haar))
    >>> low, high
    (Array([2., 4.], dtype=float32), Array([2., 0.], dtype=float32))
  """
  return _to_bands(x, axis % x.ndim, bank)


def from_bands(bands, axis: int, bank: BandTerms) -> jax.Array:
  """``M^T`` applied to the bands (a tuple) along ``axis``: an array twice as long
  there; the derivative is :func:`to_bands`.

  Examples:
    >>> import numpy as np, jax.numpy as jnp
    >>> inverse_haar = np.zeros((2, 1, 2)); inverse_haar[0, 0] = 1
    >>> inverse_haar[1, 0] = (-0.5, 0.5)
    >>> from_bands((jnp.array([2.0]), jnp.array([2.0])), 0, band_terms(inverse_haar))
    Array([1., 3.], dtype=float32)
  """
  bands = tuple(bands)
  return _from_bands(bands, axis % bands[0].ndim, bank)
