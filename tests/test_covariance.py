"""Covariance pooling against float64 numpy and scipy's matrix functions:
the covariance, iSQRT-COV's iteration and its limit, its custom derivative
against autodiff through the plain iteration, the matrix log and its custom
derivative, finite results for degenerate covariances, and the head
layers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
from derivatives import check_grads
from flax import nnx

import jaxpool
from jaxpool import linen as jplinen
from jaxpool import nnx as jpnnx
from jaxpool._src.core.backend import forced_platform


def _normal(shape, seed=0):
  return np.random.default_rng(seed).standard_normal(shape)


def _numpy_covariance(x, spatial_axes):
  rows = np.moveaxis(x, spatial_axes, range(1, 1 + len(spatial_axes)))
  rows = rows.reshape(x.shape[0], -1, x.shape[-1])
  centred = rows - rows.mean(axis=1, keepdims=True)
  return np.einsum("bmi,bmj->bij", centred, centred) / rows.shape[1]


def _numpy_newton_schulz(c, iterations):
  """iSQRT-COV written from the paper, float64."""
  out = []
  for a in c:
    trace = np.trace(a)
    y, z, eye = a / trace, np.eye(len(a)), np.eye(len(a))
    for _ in range(iterations - 1):
      t = 0.5 * (3 * eye - z @ y)
      y, z = y @ t, t @ z
    out.append(y @ (0.5 * (3 * eye - z @ y)) * np.sqrt(trace))
  return np.stack(out)


def _autodiff_sqrtm(x, iterations=5):
  """``covariance_pool(x)`` written plainly in JAX, for its autodiff: the
  rows shifted by the first one and centred, the trace floored as
  ``covariance_pool`` does (no derivative below the floor), and iSQRT-COV's
  coupled iteration from ``Z_0 = I``, every product included."""
  rows = x.reshape(x.shape[0], -1, x.shape[-1])
  rows = rows - rows[:, :1]
  centred = rows - jnp.mean(rows, axis=1, keepdims=True)
  c = jnp.einsum("bmi,bmj->bij", centred, centred) / rows.shape[1]
  eye = jnp.eye(c.shape[-1], dtype=c.dtype)
  trace = jnp.trace(c, axis1=-2, axis2=-1)[:, None, None]
  floor = np.sqrt(jnp.finfo(c.dtype).tiny)
  above = trace > floor
  c = jnp.where(above, c, jax.lax.stop_gradient(c))
  trace = jnp.where(above, trace, floor)
  y, z = c / trace, jnp.zeros_like(c) + eye
  for _ in range(iterations - 1):
    t = 0.5 * (3 * eye - z @ y)
    y, z = y @ t, t @ z
  return y @ (0.5 * (3 * eye - z @ y)) * jnp.sqrt(trace)


@pytest.mark.parametrize("shape", [(2, 9, 4), (2, 5, 6, 4), (2, 3, 4, 3, 4)])
def test_covariance_matches_numpy(shape, x64):
  x = _normal(shape)
  expected = _numpy_covariance(x, list(range(1, len(shape) - 1)))
  np.testing.assert_allclose(
    jaxpool.covariance_pool(x, normalize=None), expected, rtol=1e-12, atol=1e-12
  )
  # spatial_ndim: two batch axes, one spatial axis.
  y = jaxpool.covariance_pool(x.reshape(1, 2, -1, 4), normalize=None, spatial_ndim=1)
  np.testing.assert_allclose(y[0], expected, rtol=1e-12, atol=1e-12)


def test_sqrtm_with_fewer_positions_than_features_is_the_newton_schulz_iteration(x64):
  # The iteration runs on X X^T / M (M x M); the result is the same polynomial of C.
  x = _normal((2, 2, 3, 8))
  c = _numpy_covariance(x, [1, 2])
  for iterations in (1, 2, 5, 8):
    y = np.asarray(jaxpool.covariance_pool(x, iterations=iterations))
    np.testing.assert_allclose(y, _numpy_newton_schulz(c, iterations), rtol=1e-10, atol=1e-12)


def test_sqrtm_is_the_newton_schulz_iteration_and_converges_to_scipy(x64):
  x = _normal((2, 6, 6, 5))
  c = _numpy_covariance(x, [1, 2])
  exact = np.stack([scipy.linalg.sqrtm(a).real for a in c])
  errors = []
  for iterations in (1, 3, 5, 8, 15):
    y = np.asarray(jaxpool.covariance_pool(x, iterations=iterations))
    np.testing.assert_allclose(y, _numpy_newton_schulz(c, iterations), rtol=1e-10, atol=1e-12)
    errors.append(np.abs(y - exact).max())
  assert all(a > b for a, b in zip(errors[:4], errors[1:4]))  # converging
  assert errors[-1] < 1e-12  # at float64 precision


def test_logm_matches_scipy_in_float64(x64):
  x = _normal((3, 5, 6, 4), seed=1)
  c = _numpy_covariance(x, [1, 2])
  expected = np.stack([scipy.linalg.logm(a).real for a in c])
  np.testing.assert_allclose(
    jaxpool.covariance_pool(x, normalize="logm", eps=1e-12), expected, atol=1e-6
  )


def test_triu_order_is_numpy_triu_indices():
  x = jnp.asarray(_normal((2, 5, 5, 4)), jnp.float32)
  rows, cols = np.triu_indices(4)
  for normalize in ("sqrtm", "logm", None):
    full = jaxpool.covariance_pool(x, normalize=normalize)
    triu = jaxpool.covariance_pool(x, normalize=normalize, output="triu")
    assert triu.shape == (2, 10)
    np.testing.assert_array_equal(triu, full[:, rows, cols])


def test_logm_custom_derivative_passes_check_grads(x64):
  x = _normal((2, 4, 5, 3), seed=2)
  check_grads(lambda v: jaxpool.covariance_pool(v, normalize="logm"), (x,), order=1, modes=("rev",))
  # Repeated eigenvalues: isotropic points give C = I / 2, where eigh's own
  # derivative divides by 0; the guarded divided differences do not.
  iso = np.zeros((1, 4, 1, 2))
  iso[0, :, 0] = [[1, 0], [-1, 0], [0, 1], [0, -1]]
  c = jaxpool.covariance_pool(iso, normalize=None)
  np.testing.assert_allclose(c[0], np.eye(2) / 2, atol=1e-15)
  check_grads(
    lambda v: jaxpool.covariance_pool(v, normalize="logm"), (iso,), order=1, modes=("rev",)
  )


def _numpy_logm_and_pullback(x, g, eps):
  """The floored matrix log of the covariance of ``(batch, M, 1, d)`` maps
  and its vector-Jacobian product for the cotangent ``g``, float64 numpy
  from the ``d x d`` covariance's ``eigh`` (Daleckii-Krein: the divided
  differences of ``log max(l, eps)``, 0 where both eigenvalues are at the
  floor, ``1 / l`` where they are equal)."""
  rows = x.reshape(x.shape[0], -1, x.shape[-1])
  centred = rows - rows.mean(axis=1, keepdims=True)
  values, grads = [], []
  for xc, gi in zip(centred, g):
    lam, u = np.linalg.eigh(xc.T @ xc / len(xc))
    f = np.log(np.maximum(lam, eps))
    values.append((u * f) @ u.T)
    a, b = lam[:, None], lam[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
      k = np.where(np.isclose(a, b, rtol=1e-9, atol=0), 1 / a, (f[:, None] - f[None, :]) / (a - b))
    k = np.where((a <= eps) & (b <= eps), 0.0, k)
    dc = u @ (k * (u.T @ (0.5 * (gi + gi.T)) @ u)) @ u.T
    dx = 2 * xc @ dc / len(xc)
    grads.append(dx - dx.mean(axis=0))
  return np.stack(values), np.stack(grads).reshape(x.shape)


def _sqrtm_maps(dtype):
  """Feature maps ``(batch, M, 1, d)`` for the derivative tests: general
  (more positions than features), rank-deficient (fewer positions than
  features, where the iteration runs on the ``M x M`` Gram matrix;
  duplicated channels) and batches holding a constant map, in both forms."""
  general = _normal((3, 9, 1, 5), seed=3)
  fewer_positions = _normal((2, 4, 1, 7), seed=4)
  duplicated = _normal((2, 9, 1, 6), seed=5)
  duplicated[..., 3:] = duplicated[..., :3]
  with_constant = _normal((3, 6, 1, 4), seed=6)
  with_constant[1] = 0.7
  fewer_with_constant = _normal((3, 3, 1, 5), seed=8)
  fewer_with_constant[0] = -0.2
  maps = [general, fewer_positions, duplicated, with_constant, fewer_with_constant]
  return [jnp.asarray(m, dtype) for m in maps]


def _value_and_pullback(fn, x, g):
  """``fn(x)`` and its pullback of ``g``, in one jitted program."""

  def both(v, c):
    y, pullback = jax.vjp(fn, v)
    return y, pullback(c)[0]

  return jax.jit(both)(x, g)


@pytest.mark.parametrize("platform", ["cpu", "tpu"])  # an image at a time / the whole batch
@pytest.mark.parametrize("iterations", [1, 2, 5])
def test_sqrtm_derivative_is_autodiff_of_the_iteration_float64(iterations, platform, x64):
  for x in _sqrtm_maps(jnp.float64):
    g = jnp.asarray(_normal(x.shape[:1] + 2 * x.shape[-1:], seed=7))  # not symmetric
    # Jitted: eager, the unrolled iterations dispatch op by op (seconds each).
    expected, reference = _value_and_pullback(lambda v: _autodiff_sqrtm(v, iterations), x, g)
    with forced_platform(platform):
      y, grad = _value_and_pullback(
        lambda v: jaxpool.covariance_pool(v, iterations=iterations), x, g
      )
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(grad, reference, rtol=1e-10, atol=1e-12 * np.abs(reference).max())


def test_sqrtm_derivative_is_autodiff_of_the_iteration_float32():
  for x in _sqrtm_maps(jnp.float32):
    g = jnp.asarray(_normal(x.shape[:1] + 2 * x.shape[-1:], seed=7), jnp.float32)
    expected, reference = _value_and_pullback(_autodiff_sqrtm, x, g)
    y, grad = _value_and_pullback(jaxpool.covariance_pool, x, g)
    assert np.isfinite(grad).all()
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(grad, reference, rtol=1e-4, atol=1e-5 * np.abs(reference).max())
  constant = jnp.full((2, 3, 3, 4), 0.3)
  grad = jax.grad(lambda v: jnp.sum(jaxpool.covariance_pool(v) * jnp.arange(16.0).reshape(4, 4)))
  np.testing.assert_array_equal(grad(constant), 0.0)  # the derivative below the floor


def test_sqrtm_custom_derivative_passes_check_grads(x64):
  for x in _sqrtm_maps(jnp.float64)[:3]:
    check_grads(lambda v: jaxpool.covariance_pool(v), (x,), order=1, modes=("rev",))
  x = _normal((2, 4, 5, 3), seed=2)
  check_grads(
    lambda v: jaxpool.covariance_pool(v, iterations=3, output="triu"), (x,), order=1, modes=("rev",)
  )


@pytest.mark.parametrize("platform", ["cpu", "tpu"])  # an image at a time / the whole batch
def test_logm_and_its_derivative_match_float64_numpy(platform, x64):
  # Fewer positions than features take the M x M Gram form, the others the
  # d x d covariance; constant maps sit entirely at the floor.
  for x in _sqrtm_maps(jnp.float64):
    g = _normal(x.shape[:1] + 2 * x.shape[-1:], seed=9)  # not symmetric
    expected, expected_grad = _numpy_logm_and_pullback(np.asarray(x), g, 1e-5)
    with forced_platform(platform):
      y, pullback = jax.vjp(lambda v: jaxpool.covariance_pool(v, normalize="logm"), x)
      grad = pullback(jnp.asarray(g))[0]
    np.testing.assert_allclose(y, expected, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-7, atol=1e-9 * np.abs(grad).max())


def test_logm_gram_form_passes_check_grads(x64):
  fewer_positions = _normal((2, 2, 3, 9), seed=10)  # 6 positions, 9 features
  check_grads(
    lambda v: jaxpool.covariance_pool(v, normalize="logm", eps=1e-3),
    (fewer_positions,),
    order=1,
    modes=("rev",),
  )


@pytest.mark.parametrize("normalize", ["sqrtm", "logm", None])
def test_degenerate_covariances_give_finite_values_and_gradients(normalize):
  rank_deficient = jnp.asarray(_normal((2, 2, 2, 6)), jnp.float32)  # 4 positions, 6 features
  constant = jnp.ones((2, 3, 3, 6))
  for x in (rank_deficient, constant):
    fn = lambda v: jaxpool.covariance_pool(v, normalize=normalize)  # noqa: E731
    y, grad = jax.value_and_grad(lambda v: jnp.sum(fn(v) * jnp.arange(36.0).reshape(6, 6)))(x)
    assert np.isfinite(fn(x)).all() and np.isfinite(grad).all()
  if normalize == "sqrtm":
    np.testing.assert_array_equal(jaxpool.covariance_pool(constant), 0.0)
  if normalize == "logm":  # the zero eigenvalues sit at the floor
    np.testing.assert_allclose(
      jaxpool.covariance_pool(constant, normalize="logm", eps=1e-4),
      np.log(1e-4) * np.broadcast_to(np.eye(6), (2, 6, 6)),
      rtol=1e-5,
    )


@pytest.mark.parametrize(
  "kwargs,error,match",
  [
    ({"normalize": "sqrt"}, ValueError, "normalize must be"),
    ({"output": "vector"}, ValueError, "output must be"),
    ({"iterations": 0}, ValueError, "iterations must be"),
    ({"eps": 0.0}, ValueError, "eps must be"),
  ],
)
def test_clear_errors(kwargs, error, match):
  with pytest.raises(error, match=match):
    jaxpool.covariance_pool(jnp.ones((2, 3, 3, 4)), **kwargs)
  with pytest.raises(ValueError, match="at least 2 spatial positions"):
    jaxpool.covariance_pool(jnp.ones((2, 1, 1, 4)))
  with pytest.raises(TypeError, match="floating-point"):
    jaxpool.covariance_pool(jnp.ones((2, 3, 3, 4), jnp.int32))


def test_head_layers_reduce_then_pool_in_both_apis():
  x = jax.random.normal(jax.random.key(0), (2, 5, 5, 8))
  head = jpnnx.CovariancePool(features=8, reduce_dim=3, output="triu", rngs=nnx.Rngs(0))
  kernel, bias = head.reduction["kernel"][...], head.reduction["bias"][...]
  expected = jaxpool.covariance_pool(jax.nn.relu(x @ kernel + bias), output="triu")
  np.testing.assert_allclose(head(x), expected, rtol=1e-6)
  linen = jplinen.CovariancePool(reduce_dim=3, output="triu")
  variables = linen.init(jax.random.key(0), x)
  variables = {"params": {"reduction": {"kernel": kernel, "bias": bias}}}
  np.testing.assert_allclose(linen.apply(variables, x), expected, rtol=1e-6)
  grads = nnx.grad(lambda m: m(x).sum())(head)
  assert np.isfinite(grads["reduction"]["kernel"][...]).all()
  with pytest.raises(TypeError, match="needs rngs"):
    jpnnx.CovariancePool(features=8, reduce_dim=3)
  with pytest.raises(ValueError, match="normalize must be"):
    jplinen.CovariancePool(normalize="sqrt")


def _finite_gradient(fn, x):
  grad = jax.grad(lambda v: jnp.sum(jnp.sin(fn(v))))(x)
  return bool(np.isfinite(np.asarray(grad)).all())


@pytest.mark.parametrize("normalize", ["sqrtm", "logm", None])
@pytest.mark.parametrize("value", [1e30, -1e30, 1e-30])
def test_constant_maps_of_any_magnitude_have_zero_covariance(normalize, value):
  # Issue 24: the mean's rounding used to leave a residual whose square
  # overflowed (NaN for 1e30).
  x = jnp.full((2, 8, 8, 3), value)
  fn = lambda v: jaxpool.covariance_pool(v, normalize=normalize)
  expected = np.log(1e-5) * np.eye(3) if normalize == "logm" else np.zeros((3, 3))
  np.testing.assert_allclose(fn(x), np.broadcast_to(expected, (2, 3, 3)), rtol=1e-6)
  assert _finite_gradient(fn, x)


def test_large_and_small_maps_scale_exactly():
  x = jax.random.normal(jax.random.key(0), (2, 8, 8, 3))
  for scale in (1e30, 1e-30):
    sqrtm = jaxpool.covariance_pool(x * scale)
    np.testing.assert_allclose(sqrtm / scale, jaxpool.covariance_pool(x), rtol=1e-4, atol=1e-6)
    logm = jaxpool.covariance_pool(x * scale, normalize="logm")
    if scale > 1:  # log(s^2 C) = log C + 2 log s
      shift = 2 * np.log(scale) * np.eye(3)
      np.testing.assert_allclose(
        logm - shift, jaxpool.covariance_pool(x, normalize="logm"), atol=2e-3
      )
    else:  # every eigenvalue below eps
      np.testing.assert_allclose(
        logm, np.broadcast_to(np.log(1e-5) * np.eye(3), (2, 3, 3)), atol=1e-4
      )
    for normalize in ("sqrtm", "logm"):
      assert _finite_gradient(lambda v: jaxpool.covariance_pool(v, normalize=normalize), x * scale)
  # The covariance itself leaves float32 at 1e30 (about 1e60): inf, not NaN.
  raw = np.asarray(jaxpool.covariance_pool(x * 1e30, normalize=None))
  assert np.isinf(raw).all() and not np.isnan(raw).any()
