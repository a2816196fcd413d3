"""8-device CPU mesh: batch-sharded inputs keep their sharding."""

import jax
import jax.numpy as jnp
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

import jaxpool

from cases import CASES, Case

pytestmark = pytest.mark.skipif(
  jax.device_count() < 8, reason="needs 8 devices (tests/conftest.py fakes them on CPU)"
)

SHARDED = [case for case in CASES if case.sharding]
SHAPE = (16, 7, 9, 4)  # the table's spatial shape; batch and features divide the meshes


@pytest.mark.parametrize("case", SHARDED, ids=[c.id for c in SHARDED])
def test_batch_sharding_survives_forward_and_gradient(case):
  mesh = jax.make_mesh((8,), ("data",))
  sharding = NamedSharding(mesh, P("data"))
  x = jax.device_put(jax.random.normal(jax.random.key(0), SHAPE), sharding)
  fn = lambda v: case.call(v, None)
  with jax.set_mesh(mesh):
    y = jax.jit(fn)(x)
    grad = jax.jit(jax.grad(lambda v: jnp.sum(fn(v) ** 2)))(x)
  assert y.sharding.spec[0] == "data"
  assert grad.sharding.is_equivalent_to(x.sharding, x.ndim)
  reference = jax.jit(jax.grad(lambda v: jnp.sum(fn(v) ** 2)))(jax.device_get(x))
  assert jnp.allclose(grad, reference, atol=1e-5)


RANDOM = [case for case in SHARDED if case.random] + [
  # draws per feature map, and unshared S3Pool rows
  Case("mixed_pool_map", lambda x, k: jaxpool.mixed_pool(x, (2, 2), key=k, granularity="map")),
  Case("s3_pool_unshared", lambda x, k: jaxpool.s3_pool(x[:, :6, :8], (2, 2), key=k, shared=False)),
]


@pytest.mark.parametrize("case", RANDOM, ids=[c.id for c in RANDOM])
def test_random_draws_keep_batch_and_feature_sharding(case):
  mesh = jax.make_mesh((4, 2), ("data", "model"))
  sharding = NamedSharding(mesh, P("data", None, None, "model"))
  x = jax.device_put(jax.random.normal(jax.random.key(0), SHAPE), sharding)
  fn, key = case.call, jax.random.key(1)
  with jax.set_mesh(mesh):
    y = jax.jit(fn)(x, key)
    grad = jax.jit(jax.grad(lambda v: jnp.sum(fn(v, key) ** 2)))(x)
  assert y.sharding.spec == P("data", None, None, "model")
  assert grad.sharding.is_equivalent_to(x.sharding, x.ndim)
  # Partitionable threefry: the same draws as on one device.
  assert jnp.array_equal(y, fn(jax.device_get(x), key))
