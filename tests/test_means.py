"""GeM and log-sum-exp pooling against float64 torch formulas (cirtorch's
``gem``, timm's ``LsePlus2d``), at the extremes of their strengths and
inputs, with gradients in the input and the strength, and argument checks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from derivatives import check_grads

import jaxpool

from oracle import F, torch

RNG = np.random.default_rng(0)
X = RNG.standard_normal((2, 6, 7, 4)).astype(np.float32)


def nchw64(x):
  return torch.tensor(np.asarray(x), dtype=torch.float64).permute(0, 3, 1, 2)


def torch_gem(x, p, eps=1e-6):
  t = nchw64(x)
  p = torch.as_tensor(np.asarray(p, np.float64)).reshape(1, -1, 1, 1)
  return F.avg_pool2d(t.clamp(min=eps).pow(p), t.shape[-2:]).pow(1 / p).reshape(t.shape[:2])


def torch_lse(x, r):
  t = nchw64(x)
  m = t.amax((2, 3), keepdim=True)
  return (m + torch.log(torch.mean(torch.exp(r * (t - m)), (2, 3), keepdim=True)) / r).reshape(
    t.shape[:2]
  )


@pytest.mark.parametrize("p", [1.0, 3.0, 7.5, np.array([1.0, 2.0, 3.0, 4.0], np.float32)])
def test_gem_pool_matches_cirtorch(p):
  np.testing.assert_allclose(jaxpool.gem_pool(X, p), torch_gem(X, p).numpy(), rtol=2e-6, atol=1e-7)


def test_gem_pool_gradients_match_torch_in_x_and_p():
  p = np.array([1.5, 2.0, 3.0, 6.0])
  ct = RNG.standard_normal((2, 4))
  gx, gp = jax.grad(lambda v, q: jnp.sum(jaxpool.gem_pool(v, q) * ct), argnums=(0, 1))(
    jnp.asarray(X, jnp.float32), jnp.asarray(p, jnp.float32)
  )
  t, tp = nchw64(X).requires_grad_(), torch.tensor(p, requires_grad=True)
  (torch_gem_t := F.avg_pool2d(t.clamp(min=1e-6).pow(tp[None, :, None, None]), (6, 7)))
  y = torch_gem_t.pow(1 / tp[None, :, None, None]).reshape(2, 4)
  (y * torch.tensor(ct)).sum().backward()
  np.testing.assert_allclose(gx, t.grad.permute(0, 2, 3, 1).numpy(), rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(gp, tp.grad.numpy(), rtol=1e-4, atol=1e-6)


def test_gem_pool_windows_average_the_real_cells():
  x = np.abs(X) + 0.1
  p = 2.5
  y = jaxpool.gem_pool(x, p, (3, 3), 2, 1)
  t = nchw64(x)
  expected = F.avg_pool2d(t.pow(p), 3, 2, 1, count_include_pad=False).pow(1 / p)
  np.testing.assert_allclose(y, expected.permute(0, 2, 3, 1).numpy(), rtol=2e-6)


@pytest.mark.parametrize("r", [1e-3, 0.1, 1.0, 10.0, 1e3])
def test_lse_pool_matches_timm_from_small_to_large_r(r):
  np.testing.assert_allclose(jaxpool.lse_pool(X, r), torch_lse(X, r).numpy(), rtol=1e-6, atol=1e-6)
  ct = RNG.standard_normal((2, 4))
  g = jax.grad(lambda v: jnp.sum(jaxpool.lse_pool(v, r) * ct))(X)
  t = nchw64(X).requires_grad_()
  m = t.amax((2, 3), keepdim=True).detach()  # d/dm of the formula is 0
  y = (m + torch.log(torch.mean(torch.exp(r * (t - m)), (2, 3), keepdim=True)) / r).reshape(2, 4)
  (y * torch.tensor(ct)).sum().backward()
  np.testing.assert_allclose(g, t.grad.permute(0, 2, 3, 1).numpy(), rtol=1e-4, atol=1e-6)


def test_lse_pool_limits_are_the_mean_and_the_max():
  np.testing.assert_allclose(jaxpool.lse_pool(X, 1e-6), X.mean((1, 2)), rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(jaxpool.lse_pool(X, 1e6), X.max((1, 2)), atol=1e-4)


@pytest.mark.parametrize("scale", [1e-30, 1.0, 1e30])
@pytest.mark.parametrize("strength", [1e-3, 1.0, 1e3])
def test_finite_at_the_extremes(scale, strength):
  x = jnp.asarray(X * scale)
  for f in (jaxpool.gem_pool, jaxpool.lse_pool):
    y, g = jax.value_and_grad(lambda v, s: jnp.sum(f(v, s)), argnums=(0, 1))(x, strength)
    assert np.isfinite(y) and np.all(np.isfinite(g[0])) and np.isfinite(g[1]), (f, scale, strength)
    windowed = jax.grad(lambda v: jnp.sum(f(v, strength, (3, 3), 2, 1)))(x)
    assert np.all(np.isfinite(windowed))


def test_gradients_are_the_true_derivative(x64):
  x = np.abs(RNG.standard_normal((1, 3, 4, 2))) + 0.2
  for f, s in ((jaxpool.gem_pool, np.array([2.0, 3.5])), (jaxpool.lse_pool, np.array([0.5, 4.0]))):
    check_grads(lambda v, q: f(v, q), (x, s), 2, modes=("fwd", "rev"))
    check_grads(lambda v, q: f(v, q, (2, 2), 1, 1), (x, s), 1, modes=("fwd", "rev"))


def test_layers_learn_their_strength():
  from flax import nnx

  from jaxpool import linen as jplinen
  from jaxpool import nnx as jpnnx

  x = jnp.asarray(np.abs(X))
  head = jpnnx.GeM(p=3.0, per_feature=True, features=4)
  np.testing.assert_array_equal(head(x), jaxpool.gem_pool(x, 3.0))
  grads = nnx.grad(lambda m: jnp.sum(m(x)))(head)
  assert grads.p[...].shape == (4,) and np.all(np.asarray(grads.p[...]) != 0)
  lse = jplinen.LSEPool(r=10.0)
  variables = lse.init(jax.random.key(0), x)
  np.testing.assert_allclose(lse.apply(variables, x), jaxpool.lse_pool(x, 10.0))
  assert jax.grad(lambda v: jnp.sum(lse.apply(v, x)))(variables)["params"]["r"].shape == ()


@pytest.mark.parametrize(
  "call, error, match",
  [
    (lambda x: jaxpool.gem_pool(x, 0.0), ValueError, "p must lie"),
    (lambda x: jaxpool.gem_pool(x, np.inf), ValueError, "p must lie"),
    (lambda x: jaxpool.gem_pool(x, np.ones(3)), ValueError, "one value per feature"),
    (lambda x: jaxpool.gem_pool(x, 3.0, eps=0.0), ValueError, "eps"),
    (lambda x: jaxpool.gem_pool(x, 3.0, strides=2), ValueError, "window_shape"),
    (lambda x: jaxpool.gem_pool(x, 3.0, (2, 2), spatial_ndim=2), ValueError, "spatial_ndim"),
    (lambda x: jaxpool.lse_pool(x, -1.0), ValueError, "r must lie"),
    (lambda x: jaxpool.lse_pool(x, True), TypeError, "positive number"),
    (lambda x: jaxpool.lse_pool(x.astype(jnp.int32), 1.0), TypeError, "floating"),
    (lambda x: jaxpool.lse_pool(x, 1.0, (9, 9)), ValueError, "larger than"),
  ],
)
def test_bad_arguments_are_clear_errors(call, error, match):
  with pytest.raises(error, match=match):
    call(jnp.asarray(X))
