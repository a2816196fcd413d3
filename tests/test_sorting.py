"""The sorting network behind median pooling (core.sorting)."""

import itertools

import jax.numpy as jnp
import numpy as np
import pytest

from jaxpool._src.core.sorting import order_statistics, sorting_network


@pytest.mark.parametrize("n", range(1, 14))
def test_network_sorts_every_zero_one_input(n):
  # The 0-1 principle: a comparator network that sorts every 0/1 sequence
  # sorts every sequence.
  v = np.array(list(itertools.product((0, 1), repeat=n)), np.int8).T.copy()
  for i, j in sorting_network(n):
    v[i], v[j] = np.minimum(v[i], v[j]), np.maximum(v[i], v[j])
  assert (np.diff(v, axis=0) >= 0).all()


@pytest.mark.parametrize("n", [25, 49, 81, 169])
def test_network_sorts_random_input(n):
  v = np.random.default_rng(n).standard_normal((n, 500))
  expected = np.sort(v, axis=0)
  for i, j in sorting_network(n):
    v[i], v[j] = np.minimum(v[i], v[j]), np.maximum(v[i], v[j])
  np.testing.assert_array_equal(v, expected)


def test_order_statistics_keep_only_what_the_ranks_need():
  values = np.random.default_rng(0).standard_normal((9, 30)).astype(np.float32)
  stats = order_statistics([jnp.asarray(v) for v in values], [4, 0])
  np.testing.assert_array_equal(stats[4], np.sort(values, axis=0)[4])
  np.testing.assert_array_equal(stats[0], values.min(axis=0))
  with pytest.raises(ValueError, match="ranks must lie"):
    order_statistics([jnp.zeros(2)] * 3, [3])
  with pytest.raises(ValueError, match="n >= 1"):
    sorting_network(0)
