"""Bilinear pooling against float64 numpy, compact bilinear pooling's
unbiasedness over sketches, finite derivatives at zero, errors, layers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from derivatives import check_grads
from flax import nnx

import jaxpool
from jaxpool import linen as jplinen
from jaxpool import nnx as jpnnx


def _normal(shape, seed=0):
  return np.random.default_rng(seed).standard_normal(shape)


def _numpy_bilinear(x, y, normalize=True, eps=0.0):
  rows_x = x.reshape(x.shape[0], -1, x.shape[-1])
  rows_y = y.reshape(y.shape[0], -1, y.shape[-1])
  z = np.einsum("bmi,bmj->bij", rows_x, rows_y).reshape(x.shape[0], -1) / rows_x.shape[1]
  if not normalize:
    return z
  z = np.sign(z) * np.sqrt(np.abs(z) + eps)
  return z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)


@pytest.mark.parametrize("normalize,eps", [(True, 0.0), (True, 1e-5), (False, 0.0)])
def test_bilinear_matches_numpy(normalize, eps, x64):
  x, y = _normal((2, 4, 5, 3)), _normal((2, 4, 5, 2), seed=1)
  for other in (None, y):
    expected = _numpy_bilinear(x, x if other is None else other, normalize, eps)
    got = jaxpool.bilinear_pool(x, other, normalize=normalize, eps=eps)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14)
  check_grads(
    lambda a, b: jaxpool.bilinear_pool(a, b, normalize=normalize, eps=eps), (x, y), order=1
  )


def test_signed_sqrt_and_l2_have_finite_gradients_at_zero():
  x = jnp.zeros((2, 3, 3, 4)).at[:, :, :, 0].set(1.0)  # most products exactly 0
  for fn in (
    jaxpool.bilinear_pool,
    lambda v: jaxpool.compact_bilinear_pool(v, output_dim=8, key=jax.random.key(0)),
  ):
    grad = jax.grad(lambda v: jnp.sum(fn(v) * jnp.arange(fn(v).shape[-1], dtype=jnp.float32)))(x)
    assert np.isfinite(grad).all()
    zero = jax.grad(lambda v: jnp.sum(fn(v)))(jnp.zeros((2, 3, 3, 4)))
    assert np.isfinite(zero).all() and np.all(fn(jnp.zeros((2, 3, 3, 4))) == 0)


def test_compact_bilinear_inner_products_are_unbiased_over_sketches(x64):
  # <phi(X), phi(Y)> estimates <sum_l x_l x_l^T, sum_l y_l y_l^T> (y = x).
  x, y = _normal((1, 3, 3, 6), seed=2), _normal((1, 3, 3, 6), seed=3)
  exact = np.sum(
    np.einsum("mi,mj->ij", x[0].reshape(9, 6), x[0].reshape(9, 6))
    * np.einsum("mi,mj->ij", y[0].reshape(9, 6), y[0].reshape(9, 6))
  )

  def estimate(key):
    phi = lambda v: jaxpool.compact_bilinear_pool(  # noqa: E731
      v, output_dim=16, key=key, normalize=False
    )
    return jnp.vdot(phi(x), phi(y))

  samples = np.asarray(jax.jit(jax.vmap(estimate))(jax.random.split(jax.random.key(0), 2000)))
  error = abs(samples.mean() - exact)
  assert error < 4 * samples.std() / np.sqrt(len(samples)), (samples.mean(), exact)
  # Larger sketches estimate better (the variance falls as 1 / D).
  assert samples.std() > 0


def test_compact_bilinear_with_given_sketches_and_its_layers():
  x = jax.random.normal(jax.random.key(1), (2, 4, 4, 5))
  by_key = jaxpool.compact_bilinear_pool(x, output_dim=32, key=jax.random.key(7))
  np.testing.assert_array_equal(
    by_key, jaxpool.compact_bilinear_pool(x, output_dim=32, key=jax.random.key(7))
  )
  assert not np.allclose(
    by_key, jaxpool.compact_bilinear_pool(x, output_dim=32, key=jax.random.key(8))
  )
  head = jpnnx.CompactBilinearPool(features=5, output_dim=32, rngs=nnx.Rngs(3))
  np.testing.assert_allclose(
    head(x), jaxpool.compact_bilinear_pool(x, output_dim=32, sketches=head.sketches()), rtol=1e-6
  )
  assert not nnx.state(head, nnx.Param)  # the sketches are not trained
  assert len(jax.tree.leaves(nnx.state(head, jpnnx.Sketch))) == 4
  linen = jplinen.CompactBilinearPool(output_dim=32)
  variables = linen.init(jax.random.key(0), x)
  assert "params" not in variables
  np.testing.assert_allclose(
    linen.apply(variables, x),
    jaxpool.compact_bilinear_pool(x, output_dim=32, sketches=variables["sketch"]["sketches"]),
    rtol=1e-6,
  )
  np.testing.assert_allclose(jpnnx.BilinearPool()(x), jaxpool.bilinear_pool(x))
  np.testing.assert_allclose(jplinen.BilinearPool().apply({}, x, x), jaxpool.bilinear_pool(x, x))


@pytest.mark.parametrize(
  "call,error,match",
  [
    (
      lambda x: jaxpool.compact_bilinear_pool(x, output_dim=0, key=jax.random.key(0)),
      ValueError,
      "output_dim must be",
    ),
    (lambda x: jaxpool.compact_bilinear_pool(x, output_dim=8), TypeError, "exactly one of key"),
    (
      lambda x: jaxpool.compact_bilinear_pool(
        x,
        output_dim=8,
        key=jax.random.key(0),
        sketches=((jnp.zeros(4, jnp.int32), jnp.ones(4)),) * 2,
      ),
      TypeError,
      "exactly one of key",
    ),
    (
      lambda x: jaxpool.compact_bilinear_pool(
        x, output_dim=8, sketches=((jnp.zeros(3, jnp.int32), jnp.ones(3)),) * 2
      ),
      ValueError,
      "the sketches hash",
    ),
    (lambda x: jaxpool.bilinear_pool(x, x[:, :2]), ValueError, "share their batch and spatial"),
    (lambda x: jaxpool.bilinear_pool(x, eps=-1.0), ValueError, "eps must be"),
    (lambda x: jaxpool.bilinear_pool(x, normalize=1), TypeError, "normalize must be a bool"),
    (lambda x: jaxpool.bilinear_pool(x[0, 0]), ValueError, "at least one spatial axis"),
  ],
)
def test_clear_errors(call, error, match):
  with pytest.raises(error, match=match):
    call(jnp.ones((2, 3, 3, 4)))


@pytest.mark.parametrize("value", [1e30, -1e30, 1.0])
def test_normalised_descriptors_of_huge_maps_are_finite(value):
  # Issue 24: the outer products of 1e30 overflowed (NaN after the L2).
  x = jnp.full((2, 8, 8, 3), value)
  sketch = lambda v: jaxpool.compact_bilinear_pool(v, output_dim=16, key=jax.random.key(0))
  for fn in (jaxpool.bilinear_pool, lambda v: jaxpool.bilinear_pool(v, eps=1e-5), sketch):
    y = fn(x)
    np.testing.assert_allclose(jnp.linalg.norm(y, axis=-1), 1.0, rtol=1e-5)
    grad = jax.grad(lambda v: jnp.sum(jnp.sin(fn(v))))(x)
    assert np.isfinite(np.asarray(grad)).all()
  np.testing.assert_allclose(jaxpool.bilinear_pool(x), 1 / 3, rtol=1e-6)


def test_normalised_descriptors_do_not_depend_on_the_scale():
  x = jax.random.normal(jax.random.key(0), (2, 6, 6, 4))
  y = jax.random.normal(jax.random.key(1), (2, 6, 6, 3))
  for scale in (1e30, 1e-20):
    np.testing.assert_allclose(
      jaxpool.bilinear_pool(x * scale, y), jaxpool.bilinear_pool(x, y), rtol=2e-5, atol=1e-6
    )
    sketch = lambda a: jaxpool.compact_bilinear_pool(a, y, output_dim=32, key=jax.random.key(2))
    # FFT rounding near 0 is amplified by the signed square root.
    np.testing.assert_allclose(sketch(x * scale), sketch(x), rtol=2e-5, atol=5e-4)


def test_compact_bilinear_checks_concrete_sketch_hashes():
  x = jnp.ones((1, 2, 2, 3))
  h1, s1 = jnp.array([0, 3, 7]), jnp.array([1.0, -1.0, 1.0])
  sketch2 = (jnp.array([1, 2, 5]), jnp.ones(3))
  with pytest.raises(ValueError, match=r"sketch hashes h1 must lie in \[0, output_dim = 8\)"):
    jaxpool.compact_bilinear_pool(x, output_dim=8, sketches=((h1.at[0].set(8), s1), sketch2))
  with pytest.raises(ValueError, match="h1 must lie"):
    jaxpool.compact_bilinear_pool(x, output_dim=8, sketches=((h1.at[1].set(-1), s1), sketch2))
  with pytest.raises(TypeError, match="h1 must be integers"):
    jaxpool.compact_bilinear_pool(x, output_dim=8, sketches=((h1.astype(jnp.float32), s1), sketch2))
  # Traced sketches (e.g. a layer's state under jit) are used as given.
  traced = jax.jit(
    lambda h: jaxpool.compact_bilinear_pool(x, output_dim=8, sketches=((h, s1), sketch2))
  )
  assert traced(h1).shape == (1, 8)
