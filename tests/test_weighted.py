"""SoftPool, LIP and DPP against float64 numpy formulas written from the papers;
infinite limits, extreme scales and argument checks."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from derivatives import check_grads

import jaxpool
from jaxpool._src.core.backend import forced_platform

from reference import CONFIGS, INF, NAN, column, jax_args, normal_input, weighted_mean

KEY = jax.random.key(0)


@pytest.fixture(params=["default", "tpu"])
def formulation(request):
  """Runs the test with the default formulation and with TPU's (SoftPool and
  LIP as variadic ``reduce_window`` softmaxes), forced on the CPU."""
  if request.param == "default":
    yield
    return
  with forced_platform(request.param):
    yield


def test_soft_pool_gradient_with_one_hot_weights(formulation):
  a = column([0.0, 3e7])
  grad = jax.grad(lambda v: jaxpool.soft_pool(v, (2,)).sum())(a)
  np.testing.assert_array_equal(grad[:, 0], [0.0, 1.0])
  lip = jax.grad(lambda v: jaxpool.lip_pool(v, v, (2,)).sum())(a)
  np.testing.assert_array_equal(grad, lip)


@pytest.mark.parametrize("scale", [1e3, 3e7, 1e20])
def test_soft_pool_gradient_sums_to_one_per_window(scale, formulation):
  # y(x + c) = y(x) + c, so the gradient of each window's output sums to 1.
  x = jax.random.normal(KEY, (2, 8, 8, 3)) * scale
  grad = jax.grad(lambda v: jaxpool.soft_pool(v, (2, 2)).sum())(x)
  sums = np.asarray(grad).reshape(2, 4, 2, 4, 2, 3).sum(axis=(2, 4))
  np.testing.assert_allclose(sums, 1.0, atol=1e-3)


def test_soft_pool_infinite_limits(formulation):
  y = jaxpool.soft_pool(column([1, INF, 2, 3, -INF, 4, -INF, -INF, INF, -INF]), (2,))
  w = np.exp([2.0, 3.0])
  expected_23 = (w * [2.0, 3.0]).sum() / w.sum()
  np.testing.assert_allclose(y[:, 0], [INF, expected_23, 4.0, -INF, INF], rtol=1e-6)
  assert np.isnan(jaxpool.soft_pool(column([NAN, INF]), (2,))[0, 0])


def test_lip_pool_infinite_limits(formulation):
  x = column([1, 5, 2, 6, 3, 7, 4, 8, -INF, 9, INF, 1])
  logits = column([INF, 0, -INF, 0, -INF, -INF, INF, INF, -INF, 0, 0, 0])
  y = jaxpool.lip_pool(x, logits, (2,))
  np.testing.assert_allclose(y[:, 0], [1.0, 6.0, 5.0, 6.0, 9.0, INF], rtol=1e-6)


def test_soft_lip_gradients_finite_for_finite_input(formulation):
  x = jax.random.normal(KEY, (2, 9, 9, 3)) * 50
  for fn in (
    lambda v: jaxpool.soft_pool(v, (3, 3), 2, 1),
    lambda v: jaxpool.lip_pool(v, v * 3, (3, 3), 2, 1),
  ):
    assert np.isfinite(np.asarray(jax.grad(lambda v: fn(v).sum())(x))).all()


@pytest.mark.parametrize("reward", ["sym", "asym"])
def test_dpp_pool_positive_inf_gives_inf(reward):
  x = column([1, INF, 2, 3, INF, -INF])
  y = jaxpool.dpp_pool(x, 1.0, 2.0, (2,), reward=reward)
  assert (
    y[0, 0] == INF
    and y[1, 0] == jaxpool.dpp_pool(column([2, 3]), 1.0, 2.0, (2,), reward=reward)[0, 0]
  )
  assert np.isnan(y[2, 0])


@pytest.mark.parametrize("lam", [0.5, 1.0, 2.0, 3.0])
@pytest.mark.parametrize("reward", ["sym", "asym"])
def test_dpp_pool_negative_inf_is_the_limit(reward, lam, x64):
  # The limit, approached numerically in float64.
  cells = [1.0, -INF, 2.0, 4.0]
  y = jaxpool.dpp_pool(column(cells, np.float64), 1.0, lam, (4,), reward=reward)[0, 0]
  approach = [
    jaxpool.dpp_pool(column([1.0, -t, 2.0, 4.0], np.float64), 1.0, lam, (4,), reward=reward)[0, 0]
    for t in (1e12, 1e14)
  ]
  if reward == "asym" and lam >= 1:
    expected = 7.0 / 3 - (0 if lam > 1 else (1 + np.sqrt(1e-3)) * 4 / 3)
    np.testing.assert_allclose(y, expected, rtol=1e-12)
    np.testing.assert_allclose(approach, expected, rtol=1e-4)
  else:
    assert y == -INF and approach[1] < approach[0] < -1e3
  # Full-DPP with a finite reference: the -inf cell keeps a positive weight.
  full = jaxpool.dpp_pool(
    column(cells, np.float64), 1.0, lam, (4,), reward=reward, reference=jnp.zeros((1, 1))
  )
  assert full[0, 0] == -INF


def test_dpp_pool_infinite_reference_gives_the_mean():
  x = column([1.0, 2.0, 3.0, 5.0])
  ref = jnp.array([[INF], [-INF]])
  y = jaxpool.dpp_pool(x, 1.0, 2.0, (2,), reference=ref)
  np.testing.assert_array_equal(y[:, 0], [1.5, 4.0])


def test_dpp_pool_large_input_is_finite_and_correct():
  x = np.array([1.0, 2.0, 4.0, 7.0, -5.0, 0.0])
  # At 1e30 the rewards (d^2 + eps^2) dwarf alpha and eps: w ~ d^2.
  windows3 = x.reshape(2, 3)
  d = windows3 - windows3.mean(axis=1, keepdims=True)
  expected = (d**2 * windows3).sum(axis=1) / (d**2).sum(axis=1) * 1e30
  xs = column(x * 1e30)
  y, vjp = jax.vjp(lambda v: jaxpool.dpp_pool(v, 1.0, 2.0, (3,)), xs)
  np.testing.assert_allclose(y[:, 0], expected, rtol=1e-4)  # float32 cancellation
  assert np.isfinite(np.asarray(vjp(jnp.ones_like(y))[0])).all()


def test_dpp_pool_tiny_epsilon_on_constant_windows():
  x = jnp.ones((1, 4, 4, 2))
  for epsilon in (1e-30, 2e-38):
    y, vjp = jax.vjp(lambda v: jaxpool.dpp_pool(v, 1.0, 2.0, (2, 2), epsilon=epsilon), x)
    np.testing.assert_array_equal(y, 1.0)
    (grad,) = vjp(jnp.ones_like(y))
    np.testing.assert_allclose(grad, 0.25)  # the mean's derivative
    grad = jax.grad(
      lambda v: jaxpool.dpp_pool(v, 1.0, 2.0, (2, 2), epsilon=epsilon, normalize="mean").sum()
    )(x)
    np.testing.assert_allclose(grad, 0.25)


def test_dpp_pool_gradient_with_tiny_epsilon_is_true_derivative(x64):
  x = np.random.default_rng(6).standard_normal((2, 4, 4, 3))
  check_grads(lambda v: jaxpool.dpp_pool(v, 1.0, 2.0, (2, 2), epsilon=1e-200), (x,), order=1)
  check_grads(
    lambda v: jaxpool.dpp_pool(v * 1e200, 1.0, 0.5, (2, 2), reward="asym") * 1e-200, (x,), order=1
  )


@pytest.mark.parametrize(
  "kwargs, name",
  [
    (dict(alpha=-1.0), "alpha"),
    (dict(alpha=NAN), "alpha"),
    (dict(alpha=0.0), "alpha"),
    (dict(alpha=INF), "alpha"),
    (dict(alpha=jnp.array([1.0, -1.0])), "alpha"),
    (dict(lam=-1.0), "lam"),
    (dict(lam=np.float32(NAN)), "lam"),
    (dict(lam=jnp.array(INF)), "lam"),
    (dict(epsilon=0.0), "epsilon"),
    (dict(epsilon=INF), "epsilon"),
    (dict(epsilon=1e-300), "epsilon"),
  ],
)
def test_dpp_pool_checks_concrete_parameters(kwargs, name):
  x = jnp.ones((1, 4, 4, 2))
  args = dict(alpha=1.0, lam=2.0) | kwargs
  alpha, lam = args.pop("alpha"), args.pop("lam")
  with pytest.raises(ValueError, match=name):
    jaxpool.dpp_pool(x, alpha, lam, (2, 2), **args)


def test_dpp_pool_traced_parameters_are_used_as_given():
  x = jnp.ones((1, 4, 4, 2))
  y = jax.jit(lambda a, l: jaxpool.dpp_pool(x, a, l, (2, 2)))(1.0, 2.0)
  np.testing.assert_array_equal(y, 1.0)


@pytest.mark.parametrize("config", CONFIGS)
def test_soft_pool_matches_formula(config, x64, formulation):
  x = normal_input(config)
  ref = weighted_mean(x, lambda v, *_: np.exp(v - v.max()), config)
  np.testing.assert_allclose(jaxpool.soft_pool(x, **jax_args(config)), ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("config", CONFIGS)
def test_lip_pool_matches_formula(config, x64, formulation):
  x, logits = normal_input(config), 3 * normal_input(config, seed=1)
  ref = weighted_mean(
    x, lambda v, b, c, cells, _: np.exp(np.array([logits[(b,) + q + (c,)] for q in cells])), config
  )
  np.testing.assert_allclose(
    jaxpool.lip_pool(x, logits, **jax_args(config)), ref, rtol=1e-12, atol=1e-12
  )


@pytest.mark.parametrize("reward", ["sym", "asym"])
@pytest.mark.parametrize("normalize", ["none", "mean"])
@pytest.mark.parametrize("config", CONFIGS[:4])
def test_dpp_pool_matches_paper_formula(config, reward, normalize, x64):
  x = normal_input(config)
  alpha = np.array([0.5, 1.0, 2.0])
  lam = np.array([0.5, 2.0, 3.0])
  eps2 = 1e-3

  def weights(v, b, c, cells, idx):
    d = v - v.mean()  # Lite-DPP: reference = mean of the window's real cells
    if reward == "asym":
      d = np.maximum(d, 0)
    s = d**2 + eps2
    if normalize == "mean":
      s = s / s.mean()
    return alpha[c] + s ** (lam[c] / 2)

  ref = weighted_mean(x, weights, config)
  y = jaxpool.dpp_pool(x, alpha, lam, reward=reward, normalize=normalize, **jax_args(config))
  np.testing.assert_allclose(y, ref, rtol=1e-10, atol=1e-12)


def test_dpp_pool_with_reference_and_special_cases(x64):
  x = np.random.default_rng(2).standard_normal((2, 6, 6, 3))
  ref_map = np.random.default_rng(3).standard_normal((2, 3, 3, 3))
  config = ((6, 6), (2, 2), None, 0, 1, False)
  expected = weighted_mean(
    x,
    lambda v, b, c, cells, idx: 1.0 + ((v - ref_map[(b,) + idx + (c,)]) ** 2 + 1e-3) ** 1.5,
    config,
  )
  y = jaxpool.dpp_pool(x, 1.0, 3.0, (2, 2), reference=ref_map)
  np.testing.assert_allclose(y, expected, rtol=1e-10)
  avg = jaxpool.avg_pool(x, (3, 3), 2, 1, count_include_pad=False)
  np.testing.assert_allclose(jaxpool.dpp_pool(x, 1.0, 0.0, (3, 3), 2, 1), avg, rtol=1e-12)
  np.testing.assert_allclose(jaxpool.dpp_pool(x, 1e12, 2.0, (3, 3), 2, 1), avg, rtol=1e-9)


def test_lip_special_cases_and_softpool_identity(formulation):
  x = jax.random.normal(jax.random.key(0), (2, 9, 9, 4))
  kw = dict(window_shape=(3, 3), strides=2, padding=1)
  np.testing.assert_allclose(
    jaxpool.lip_pool(x, x, **kw), jaxpool.soft_pool(x, **kw), rtol=1e-6, atol=1e-6
  )
  np.testing.assert_allclose(
    jaxpool.lip_pool(x, jnp.zeros_like(x), **kw),
    jaxpool.avg_pool(x, count_include_pad=False, **kw),
    rtol=1e-6,
    atol=1e-6,
  )
  np.testing.assert_allclose(
    jaxpool.lip_pool(x, 5000 * x, **kw), jaxpool.max_pool(x, **kw), rtol=1e-4, atol=1e-4
  )


@pytest.mark.parametrize("config", CONFIGS)
def test_custom_vjps_are_the_true_derivative(config, x64, formulation):
  x, logits = normal_input(config), normal_input(config, seed=1)
  kw = jax_args(config)
  check_grads(lambda v: jaxpool.soft_pool(v, **kw), (x,), order=1, modes=["rev"])
  check_grads(lambda v, l: jaxpool.lip_pool(v, l, **kw), (x, logits), order=1, modes=["rev"])


@pytest.mark.parametrize("reward", ["sym", "asym"])
def test_dpp_gradients_to_every_argument(reward, x64):
  x = np.random.default_rng(4).standard_normal((2, 6, 6, 3))
  reference = np.random.default_rng(5).standard_normal((2, 3, 3, 3))
  fn = lambda v, a, l, r: jaxpool.dpp_pool(v, a, l, (2, 2), reference=r, reward=reward)
  check_grads(
    fn,
    (x, np.array([0.5, 1.0, 2.0]), np.array([1.0, 2.0, 0.7]), reference),
    order=1,
    modes=["rev", "fwd"],
  )
  check_grads(
    lambda v: jaxpool.dpp_pool(v, 1.0, 2.0, (3, 3), 2, 1, normalize="mean"), (x,), order=1
  )


def test_stable_for_extreme_values_in_float32(formulation):
  x = jnp.array([1e4, -1e4, 5e3, 1e4 - 1.0, -1e4, -1e4 + 2.0], jnp.float32).reshape(1, 6, 1)
  y = jaxpool.soft_pool(x, (2,))
  pairs = np.asarray(x, np.float64).reshape(3, 2)
  w = np.exp(pairs - pairs.max(axis=1, keepdims=True))
  expected = (w * pairs).sum(axis=1) / w.sum(axis=1)  # e.g. -9998 - 2 e^-2 / (1 + e^-2)
  np.testing.assert_allclose(y[0, :, 0], expected, rtol=1e-6)
  grad = jax.grad(lambda v: jaxpool.soft_pool(v, (2,)).sum())(x)
  assert np.isfinite(np.asarray(grad)).all()
  big_logits = jnp.full_like(x, 1e4)
  assert np.isfinite(np.asarray(jaxpool.lip_pool(x, big_logits, (2,)))).all()
  d = jaxpool.dpp_pool(x, 1.0, 40.0, (2,))
  assert np.isfinite(np.asarray(d)).all()


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_half_precision(dtype):
  x = jax.random.normal(jax.random.key(1), (2, 8, 8, 3))
  for fn in (
    lambda v: jaxpool.soft_pool(v, (2, 2)),
    lambda v: jaxpool.lip_pool(v, v * 0.5, (3, 3), 2, 1),
    lambda v: jaxpool.dpp_pool(v, 1.0, 2.0, (2, 2)),
  ):
    y = fn(x.astype(dtype))
    assert y.dtype == dtype
    np.testing.assert_allclose(
      np.asarray(y, np.float32), fn(x.astype(dtype).astype(jnp.float32)), rtol=2e-2, atol=2e-2
    )


@pytest.mark.parametrize(
  "call,error,message",
  [
    (
      lambda x: jaxpool.lip_pool(x, x[..., :1], (2, 2)),
      ValueError,
      "logits must have the shape of x",
    ),
    (lambda x: jaxpool.dpp_pool(x, 1.0, 1.0, (2, 2), reward="max"), ValueError, "reward must be"),
    (
      lambda x: jaxpool.dpp_pool(x, 1.0, 1.0, (2, 2), normalize="sum"),
      ValueError,
      "normalize must be",
    ),
    (
      lambda x: jaxpool.dpp_pool(x, jnp.ones(5), 1.0, (2, 2)),
      ValueError,
      "alpha must be a scalar or have shape (2,)",
    ),
    (
      lambda x: jaxpool.dpp_pool(x, 1.0, 1.0, (2, 2), reference=x),
      ValueError,
      "reference must have the output's shape",
    ),
    (lambda x: jaxpool.soft_pool(x.astype(jnp.int32), (2, 2)), TypeError, "floating-point input"),
    (lambda x: jaxpool.soft_pool(x, 2), TypeError, "window_shape must be a tuple"),
  ],
)
def test_bad_inputs(call, error, message):
  with pytest.raises(error, match=re.escape(message)):
    call(jnp.ones((1, 4, 4, 2)))


def test_lip_pool_names_missing_logits():
  # Issue 24: the error came from inside jnp.array.
  with pytest.raises(TypeError, match=r"lip_pool \(logits\) expects an array; got None"):
    jaxpool.lip_pool(jnp.ones((2, 4, 4, 3)), None, (2, 2))
