"""Band maps at stride 2 (a fixed lifting step and its inverse), as sums of
shifted phase planes.

A fixed wavelet's lifting step along an axis is a linear map ``M`` from a
signal ``x`` of even length ``n = 2m`` to two bands of length ``m`` (one for
their sum):

    band[b, k] = sum_j M[b, k, j] x[j]

whose band sample ``k`` reads only the blocks ``k - 1, k, k + 1`` of ``x``
(block ``i`` being the pair ``x[2i], x[2i + 1]``). Written per block shift
``h`` and phase ``p``:

    band[b, k] = sum_(h, p) w[b, h, p][k] * x[2(k + h) + p]

with ``w[b, h, p][k] = M[b, k, 2(k + h) + p]``: a few shifted, weighted
planes of ``x``, with the symmetric extension at the borders folded into the
weights. `analysis_terms` and `synthesis_terms` read the weights
off a map by probing it; `to_bands` computes the bands; `from_bands` computes the
transpose ``x = M^T band`` in the phase layout ``(m, 2)`` of ``x``, as sums
of shifted bands broadcast over the phases (the layout of
`scatter`), with no interleaving copy. Each is the
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

__all__ = ["BandTerms", "analysis_terms", "from_bands", "synthesis_terms", "to_bands"]


class BandTerms(NamedTuple):
  """A band map ``M`` of shape ``(bands, m, 2m)`` as its nonzero terms.

  ``terms`` holds ``(band, shift, phase, weights)`` with ``weights`` a tuple
  of ``m`` floats: ``band[k] += weights[k] * x[2(k + shift) + phase]``.
  Hashable, so it can be a static argument.
  """

  bands: int
  m: int
  terms: tuple[tuple[int, int, int, tuple[float, ...]], ...]


_SHIFTS = (-1, 0, 1)


def _terms(weights: np.ndarray) -> BandTerms:
  """``weights[band, shift + 1, phase, k]`` -> the nonzero terms."""
  bands, _, _, m = weights.shape
  terms = tuple(
    (band, shift, phase, tuple(float(w) for w in weights[band, shift + 1, phase]))
    for band in range(bands)
    for shift in _SHIFTS
    for phase in range(2)
    if weights[band, shift + 1, phase].any()
  )
  return BandTerms(bands, m, terms)


def _reads(m: int, shift: int, phase: int):
  """Band samples ``k`` whose signal sample ``j = 2(k + shift) + phase`` is
  inside the signal, and those ``j``."""
  k = np.arange(m)
  j = 2 * (k + shift) + phase
  inside = (j >= 0) & (j < 2 * m)
  return k[inside], j[inside]


def _apply_terms(bank: BandTerms, signal: np.ndarray) -> np.ndarray:
  """``M x`` from the terms, in numpy: ``(probes, 2m) -> (bands, probes, m)``."""
  out = np.zeros((bank.bands, signal.shape[0], bank.m))
  for band, shift, phase, weights in bank.terms:
    k, j = _reads(bank.m, shift, phase)
    out[band][:, k] += np.asarray(weights)[k] * signal[:, j]
  return out


def _check_local(bank: BandTerms, signal: np.ndarray, bands: np.ndarray, what: str):
  """The terms reproduce the map on random input, so it reads nothing beyond
  the neighbouring blocks (which the probes could not have told apart)."""
  expected = _apply_terms(bank, signal)
  if not np.allclose(bands, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max()):
    raise ValueError(f"the {what} reads beyond the neighbouring blocks.")


def analysis_terms(apply, n: int) -> BandTerms:
  """The terms of a linear map ``apply`` from signals to bands.

  ``apply`` maps ``(probes, n)`` float32 signals to a tuple of
  ``(probes, n // 2)`` bands. Band sample ``k`` may read signal samples
  ``2k - 2 .. 2k + 3`` only (blocks ``k - 1 .. k + 1``): six comb signals
  (ones at ``j = r mod 6``) then give every weight, one per window position,
  in O(n) memory, and a random signal checks the result.

  Examples:
    >>> import jax.numpy as jnp
    >>> haar = analysis_terms(lambda x: ((x[:, 0::2] + x[:, 1::2]) / 2, x[:, 1::2] - x[:, 0::2]), 2)
    >>> haar.terms
    ((0, 0, 0, (0.5,)), (0, 0, 1, (0.5,)), (1, 0, 0, (-1.0,)), (1, 0, 1, (1.0,)))
  """
  m = n // 2
  run = jax.jit(apply)  # one compilation (op by op: one per op and shape)
  combs = (np.arange(n)[None, :] % 6 == np.arange(6)[:, None]).astype(np.float32)
  with jax.ensure_compile_time_eval():
    responses = np.stack([np.asarray(b, np.float64) for b in run(jnp.asarray(combs))])
  weights = np.zeros((responses.shape[0], 3, 2, m))
  for shift in _SHIFTS:
    for phase in range(2):
      k, j = _reads(m, shift, phase)
      weights[:, shift + 1, phase, k] = responses[:, j % 6, k]
  bank = _terms(weights)
  signal = np.random.default_rng(0).standard_normal(combs.shape).astype(np.float32)
  with jax.ensure_compile_time_eval():
    bands = np.stack([np.asarray(b, np.float64) for b in run(jnp.asarray(signal))])
  _check_local(bank, signal.astype(np.float64), bands, "map")
  return bank


def synthesis_terms(apply, m: int, bands: int = 2) -> BandTerms:
  """The terms of ``M`` for a linear map ``apply`` from bands to signals,
  ``x = M^T bands``.

  ``apply`` maps a tuple of ``bands`` ``(probes, m)`` float32 arrays to
  ``(probes, 2m)`` signals. Signal block ``i`` may read band samples
  ``i - 1 .. i + 1`` only; three comb probes per band give every weight and a
  random input checks the result.

  Examples:
    >>> import jax.numpy as jnp
    >>> inverse_haar = synthesis_terms(
    ...     lambda b: jnp.stack([b[0] - b[1] / 2, b[0] + b[1] / 2], -1).reshape(b[0].shape[0], -1), 1)
    >>> inverse_haar.terms
    ((0, 0, 0, (1.0,)), (0, 0, 1, (1.0,)), (1, 0, 0, (-0.5,)), (1, 0, 1, (0.5,)))
  """
  run = jax.jit(apply)  # one compilation (op by op: one per op and shape)
  combs = (np.arange(m)[None, :] % 3 == np.arange(3)[:, None]).astype(np.float32)
  zeros = np.zeros_like(combs)
  weights = np.zeros((bands, 3, 2, m))
  with jax.ensure_compile_time_eval():
    for band in range(bands):
      probes = tuple(jnp.asarray(combs if b == band else zeros) for b in range(bands))
      response = np.asarray(run(probes), np.float64)  # (3, 2m)
      for shift in _SHIFTS:
        for phase in range(2):
          k, j = _reads(m, shift, phase)
          weights[band, shift + 1, phase, k] = response[k % 3, j]
  bank = _terms(weights)
  rng = np.random.default_rng(0)
  inputs = [rng.standard_normal(combs.shape).astype(np.float32) for _ in range(bands)]
  with jax.ensure_compile_time_eval():
    signal = np.asarray(run(tuple(jnp.asarray(b) for b in inputs)), np.float64)
  # x = M^T bands, evaluated from the terms.
  expected = np.zeros_like(signal)
  for band, shift, phase, weights_k in bank.terms:
    k, j = _reads(m, shift, phase)
    expected[:, j] += np.asarray(weights_k)[k] * inputs[band].astype(np.float64)[:, k]
  if not np.allclose(signal, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max()):
    raise ValueError("the synthesis reads beyond the neighbouring blocks.")
  return bank


def _along(vector, ndim: int, axis: int, dtype, trailing: int = 0) -> jax.Array:
  """``vector`` (a constant, so it has no sharding to match) shaped to
  broadcast along ``axis`` of an ``ndim`` array; ``trailing`` more axes of
  the vector's own (the phases) follow it."""
  vector = np.asarray(vector)
  shape = [1] * ndim
  shape[axis : axis + 1 + trailing] = vector.shape
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
  shape[axis : axis + weights.ndim] = weights.shape
  return jnp.where(~zero.reshape(shape), term, jnp.zeros((), term.dtype))


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
  phased = x.reshape(x.shape[:axis] + (bank.m, 2) + x.shape[axis + 1 :])
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
  total = jnp.broadcast_to(total, shape[:axis] + (m, 2) + shape[axis + 1 :])
  return total.reshape(shape[:axis] + (2 * m,) + shape[axis + 1 :])


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
  the derivative is `from_bands`.

  Examples:
    >>> import jax.numpy as jnp
    >>> haar = analysis_terms(lambda x: ((x[:, 0::2] + x[:, 1::2]) / 2, x[:, 1::2] - x[:, 0::2]), 4)
    >>> low, high = to_bands(jnp.array([1.0, 3.0, 4.0, 4.0]), 0, haar)
    >>> low, high
    (Array([2., 4.], dtype=float32), Array([2., 0.], dtype=float32))
  """
  return _to_bands(x, axis % x.ndim, bank)


def from_bands(bands, axis: int, bank: BandTerms) -> jax.Array:
  """``M^T`` applied to the bands (a tuple) along ``axis``: an array twice as long
  there; the derivative is `to_bands`.

  Examples:
    >>> import jax.numpy as jnp
    >>> inverse_haar = synthesis_terms(
    ...     lambda b: jnp.stack([b[0] - b[1] / 2, b[0] + b[1] / 2], -1).reshape(b[0].shape[0], -1), 1)
    >>> from_bands((jnp.array([2.0]), jnp.array([2.0])), 0, inverse_haar)
    Array([1., 3.], dtype=float32)
  """
  bands = tuple(bands)
  return _from_bands(bands, axis % bands[0].ndim, bank)
