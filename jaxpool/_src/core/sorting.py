"""Order statistics of a few arrays by a sorting network.

A sorting network is a fixed list of compare-exchange steps ``(i, j)``,
``i < j``: ``v[i], v[j] = min(v[i], v[j]), max(v[i], v[j])``. Applied to the
window taps of a pooling (one array per tap), every step is two elementwise
ops, so the whole network is one fused pass over the output, with no sort
primitive and no stacked copy of the taps. Only the steps that can reach the
wanted ranks are kept.

The network is Batcher's odd-even merge sort, ``O(n log^2 n)`` steps, built for
the next power of two; steps that touch the phantom positions ``>= n`` are
dropped, which is exact when the phantoms are taken to be ``+inf`` (they never
move). NaN propagates through ``min``/``max``, so a NaN anywhere in the input
may reach every output: callers that care test for NaN themselves.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence

import jax
import jax.numpy as jnp

__all__ = ["order_statistics", "sorting_network"]


def _merge(lo: int, hi: int, r: int) -> Iterable[tuple[int, int]]:
  """Merges the two sorted halves of positions ``lo..hi`` (stride ``r``)."""
  step = 2 * r
  if step < hi - lo:
    yield from _merge(lo, hi, step)
    yield from _merge(lo + r, hi, step)
    for i in range(lo + r, hi - r, step):
      yield (i, i + r)
  else:
    yield (lo, lo + r)


def _sort(lo: int, hi: int) -> Iterable[tuple[int, int]]:
  """Sorts positions ``lo..hi`` (inclusive; ``hi - lo + 1`` a power of two)."""
  if hi > lo:
    mid = (lo + hi) // 2
    yield from _sort(lo, mid)
    yield from _sort(mid + 1, hi)
    yield from _merge(lo, hi, 1)


@functools.cache
def sorting_network(n: int) -> tuple[tuple[int, int], ...]:
  """Batcher's odd-even merge sort network for ``n`` items, ascending."""
  if n < 1:
    raise ValueError(f"a sorting network needs n >= 1; got {n}.")
  size = 1 << (n - 1).bit_length()
  return tuple((i, j) for i, j in _sort(0, size - 1) if j < n)


@functools.cache
def _pruned(n: int, ranks: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
  """The steps of `sorting_network` that can reach positions ``ranks``."""
  needed, kept = set(ranks), []
  for i, j in reversed(sorting_network(n)):
    if i in needed or j in needed:
      kept.append((i, j))
      needed.update((i, j))
  return tuple(reversed(kept))


def order_statistics(values: Sequence[jax.Array], ranks: Iterable[int]) -> dict[int, jax.Array]:
  """The ``rank``-th smallest of ``values`` (elementwise), for every rank.

  Args:
    values: ``n`` arrays of one shape and dtype.
    ranks: 0-based ranks in ``[0, n)``.

  Returns:
    ``{rank: array}``; exact (every output is one of the inputs), NaN
      propagating as described in the module docstring.

  Examples:
    >>> import jax.numpy as jnp
    >>> v = [jnp.array([3.0, 0.0]), jnp.array([1.0, 5.0]), jnp.array([2.0, 4.0])]
    >>> order_statistics(v, [1])[1]
    Array([2., 4.], dtype=float32)
  """
  v = list(values)
  ranks = tuple(sorted(set(int(r) for r in ranks)))
  if not ranks or ranks[0] < 0 or ranks[-1] >= len(v):
    raise ValueError(f"ranks must lie in [0, {len(v)}); got {ranks}.")
  for i, j in _pruned(len(v), ranks):
    v[i], v[j] = jnp.minimum(v[i], v[j]), jnp.maximum(v[i], v[j])
  return {r: v[r] for r in ranks}
