"""Anti-aliased downsampling against torch: timm's ``BlurPool2d``,
antialiased-cnns' ``BlurPool`` and kornia's ``blur_pool2d`` /
``max_blur_pool2d`` are a depthwise binomial ``conv{1,2,3}d`` after
``F.pad`` (and a stride-1 ``max_pool`` for MaxBlurPool), written here in
torch from their documented rules; values and gradients in 1-D to 3-D, every
padding mode, both formulations, and the argument checks."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from derivatives import check_grads

import jaxpool
from jaxpool._src.core.backend import forced_platform

from oracle import F, jax_value_and_grad, torch, value_and_grad

TORCH_MODES = {"reflect": "reflect", "zeros": "constant", "edge": "replicate", "wrap": "circular"}


def binomial(f):
  return np.array([math.comb(f - 1, k) for k in range(f)], np.float64) / 2 ** (f - 1)


def torch_blur(t, filters, strides, pads, mode):
  """A depthwise binomial filter after ``F.pad`` on an ``(N, C, *spatial)``
  tensor. ``pads``: ``(low, high)`` per spatial axis."""
  channels, nd = t.shape[1], t.ndim - 2
  kernel = torch.ones((), dtype=t.dtype)
  for f in filters:
    kernel = kernel[..., None] * torch.tensor(binomial(f), dtype=t.dtype)
  kernel = kernel.expand(channels, 1, *filters)
  flat = [v for lo_hi in reversed(pads) for v in lo_hi]  # F.pad: last axis first
  t = F.pad(t, flat, mode=TORCH_MODES[mode])
  return getattr(F, f"conv{nd}d")(t, kernel, stride=strides, groups=channels)


def timm_padding(filters, strides):
  return [(((s - 1) + (f - 1)) // 2,) * 2 for f, s in zip(filters, strides)]


def check_against_torch(jax_fn, torch_fn, x, rtol=2e-5, atol=2e-6):
  shape = jax.eval_shape(jax_fn, jnp.asarray(x)).shape
  cotangent = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
  y, g = jax_value_and_grad(jax_fn, x, cotangent)
  ty, tg = value_and_grad(torch_fn, x, cotangent)
  np.testing.assert_allclose(y, ty, rtol=rtol, atol=atol)
  np.testing.assert_allclose(g, tg, rtol=rtol, atol=atol)


@pytest.fixture(params=["default", "tpu"])
def formulation(request):
  """The CPU's slices and phase scatter, and the accelerators' depthwise
  convolution, forced on the CPU."""
  if request.param == "default":
    yield
    return
  with forced_platform(request.param):
    yield


X2 = np.random.default_rng(0).standard_normal((2, 9, 10, 3)).astype(np.float32)


@pytest.mark.parametrize("mode", list(TORCH_MODES))
@pytest.mark.parametrize(
  "filters, strides, padding",
  [
    ((3, 3), 2, None),  # timm BlurPool2d(filt_size=3)
    ((4, 4), 2, ((1, 2), (1, 2))),  # antialiased-cnns BlurPool(filt_size=4)
    ((5, 5), 2, None),
    ((2, 3), (2, 1), None),
    ((1, 5), 3, ((0, 0), (2, 3))),
    ((3, 3), 1, 1),
  ],
)
def test_blur_pool_matches_torch_in_every_mode(mode, filters, strides, padding, formulation):
  s = (strides,) * 2 if isinstance(strides, int) else strides
  if padding is None:
    pads = timm_padding(filters, s)
  elif isinstance(padding, int):
    pads = [(padding, padding)] * 2
  else:
    pads = list(padding)
  check_against_torch(
    lambda v: jaxpool.blur_pool(v, filters, strides, padding, pad_mode=mode),
    lambda t: torch_blur(t, filters, s, pads, mode),
    X2,
  )


@pytest.mark.parametrize("nd, spatial", [(1, (13,)), (3, (5, 6, 7))])
@pytest.mark.parametrize("mode", ["reflect", "wrap"])
def test_blur_pool_in_1d_and_3d(nd, spatial, mode):
  x = np.random.default_rng(2).standard_normal((2, *spatial, 4)).astype(np.float32)
  filters, strides = (3,) * nd, (2,) * nd
  check_against_torch(
    lambda v: jaxpool.blur_pool(v, filters, 2, pad_mode=mode),
    lambda t: torch_blur(t, filters, strides, timm_padding(filters, strides), mode),
    x,
  )


@pytest.mark.parametrize("mode", ["reflect", "edge", "wrap"])
def test_blur_pool_gradient_folds_at_short_axes_and_uneven_ends(mode):
  # The backward folds the extension's gradient onto the thin slabs it copies
  # from: here the two ends of the 3-cell axis meet in one slab, the stride-3
  # axis reaches its high extension only in part, and 14 cells at stride 2
  # never reach it at all.
  x = np.random.default_rng(6).standard_normal((2, 3, 11, 14, 2)).astype(np.float32)
  filters, strides, pads = (3, 4, 3), (2, 3, 2), [(2, 1), (1, 2), (1, 1)]
  fn = lambda v: jaxpool.blur_pool(v, filters, strides, pads, pad_mode=mode)
  check_against_torch(fn, lambda t: torch_blur(t, filters, strides, pads, mode), x)
  # Forward mode, and a batch of cotangents under vmap, give the same map.
  # (Jitted: eager, the pullback dispatches op by op.)
  y, pullback = jax.vjp(fn, jnp.asarray(x))
  back = jax.jit(lambda c: pullback(c)[0])
  cotangents = np.random.default_rng(7).standard_normal((3, *y.shape)).astype(np.float32)
  batched = jax.jit(jax.vmap(back))(cotangents)
  for c, g in zip(cotangents, batched):
    np.testing.assert_allclose(g, back(c), rtol=1e-5, atol=1e-6)
  tangent = np.random.default_rng(8).standard_normal(x.shape).astype(np.float32)
  dy = jax.jit(lambda v, t: jax.jvp(fn, (v,), (t,))[1])(jnp.asarray(x), jnp.asarray(tangent))
  np.testing.assert_allclose(dy, fn(tangent), rtol=1e-5, atol=1e-6)  # blur_pool is linear


def test_the_issue_calls_match_timm_antialiased_cnns_and_kornia():
  # blur_pool(x, (3, 3), 2) == timm BlurPool2d(filt_size=3, stride=2);
  # (4, 4) with ((1, 2), (1, 2)) == antialiased-cnns BlurPool(filt_size=4);
  # pad_mode="zeros" == kornia blur_pool2d(x, 3) and timm 'blurpc'.
  x = np.random.default_rng(3).standard_normal((2, 12, 12, 2)).astype(np.float32)
  cases = [
    (jaxpool.blur_pool(x, (3, 3), 2), ((3, 3), [(1, 1)] * 2, "reflect")),
    (jaxpool.blur_pool(x, (4, 4), 2, ((1, 2), (1, 2))), ((4, 4), [(1, 2)] * 2, "reflect")),
    (jaxpool.blur_pool(x, (3, 3), 2, pad_mode="zeros"), ((3, 3), [(1, 1)] * 2, "zeros")),
  ]
  for y, (filters, pads, mode) in cases:
    expected = torch_blur(torch.tensor(x).permute(0, 3, 1, 2), filters, (2, 2), pads, mode)
    np.testing.assert_allclose(y, expected.permute(0, 2, 3, 1).numpy(), rtol=1e-5, atol=1e-6)
  # antialiased-cnns' BlurPool(filt_size=4) halves a 12x12 map: 12 -> 6.
  assert cases[1][0].shape == (2, 6, 6, 2)


def test_max_blur_pool_matches_kornia_and_timm_stem(formulation):
  # kornia max_blur_pool2d(x, 3): max_pool2d(2, stride 1), then a zero-padded
  # 3x3 binomial at stride 2; timm's anti-aliased stem: max_pool2d(3, 1, 1),
  # then BlurPool2d(filt_size=3, stride=2) (reflect).
  x = np.random.default_rng(4).standard_normal((2, 10, 11, 3)).astype(np.float32)
  check_against_torch(
    lambda v: jaxpool.max_blur_pool(v, (2, 2), 2, blur_shape=(3, 3), pad_mode="zeros"),
    lambda t: torch_blur(F.max_pool2d(t, 2, 1), (3, 3), (2, 2), [(1, 1)] * 2, "zeros"),
    x,
  )
  check_against_torch(
    lambda v: jaxpool.max_blur_pool(v, (3, 3), 2, 1, blur_shape=(3, 3)),
    lambda t: torch_blur(F.max_pool2d(t, 3, 1, 1), (3, 3), (2, 2), [(1, 1)] * 2, "reflect"),
    x,
  )


@pytest.mark.parametrize("mode", list(TORCH_MODES))
def test_blur_pool_gradients_are_the_true_derivative(mode, x64):
  x = np.random.default_rng(5).standard_normal((1, 6, 7, 2))
  check_grads(
    lambda v: jaxpool.blur_pool(v, (3, 3), 2, pad_mode=mode), (x,), 2, modes=("fwd", "rev")
  )
  check_grads(lambda v: jaxpool.max_blur_pool(v, (2, 2), 2, pad_mode=mode), (x,), 1)


def test_blur_pool_keeps_half_precision_and_preserves_constants():
  x = jnp.full((1, 8, 8, 2), 3.0, jnp.bfloat16)
  for mode in TORCH_MODES:
    y = jaxpool.blur_pool(x, (3, 3), 2, pad_mode=mode)
    assert y.dtype == jnp.bfloat16
    if mode != "zeros":  # a normalised filter keeps constants, borders included
      np.testing.assert_array_equal(np.asarray(y, np.float32), 3.0)


def test_non_finite_values_stay_in_their_windows():
  # An inf reaches exactly the outputs whose (extended) windows read it or a
  # copy of it; inf - inf never appears in the others.
  x = np.zeros((1, 8, 8, 1), np.float32)
  x[0, 4, 5, 0] = np.inf
  for mode in TORCH_MODES:
    y = np.asarray(jaxpool.blur_pool(x, (3, 3), 2, pad_mode=mode))
    reach = np.asarray(jaxpool.blur_pool((x > 0).astype(np.float32), (3, 3), 2, pad_mode=mode))
    assert np.all(np.isinf(y[reach > 0])) and np.all(y[reach == 0] == 0), mode
    g = jax.grad(lambda v, m=mode: jnp.sum(jaxpool.blur_pool(v, (3, 3), 2, pad_mode=m)[0, 0, 0]))(
      jnp.asarray(x)
    )
    assert np.all(np.isfinite(g)), mode


def test_blur_layers_and_registry_names():
  from jaxpool import linen as jplinen
  from jaxpool import nnx as jpnnx

  x = jnp.asarray(X2[:, :8, :8])
  np.testing.assert_array_equal(jpnnx.BlurPool((3, 3), 2)(x), jaxpool.blur_pool(x, (3, 3), 2))
  np.testing.assert_array_equal(
    jplinen.MaxBlurPool((2, 2), 2).apply({}, x), jaxpool.max_blur_pool(x, (2, 2), 2)
  )
  # From a 2x2/2 pooling window: the same output size as max pooling.
  for name in ("blur", "maxblur"):
    assert jpnnx.make_pool(name, (2, 2))(x).shape == (2, 4, 4, 3)
    assert jplinen.make_pool(name, (2, 2)).apply({}, x).shape == (2, 4, 4, 3)
  np.testing.assert_array_equal(jpnnx.make_pool("blur", (2, 2))(x), jaxpool.blur_pool(x, (3, 3), 2))
  # Any window with its own stride: max pooling's size on multiples of it.
  for window in ((3, 3), (4, 4), (3, 4)):
    for size in (12, 24):
      y = jnp.zeros((1, size, size, 1))
      expected = jaxpool.max_pool(y, window).shape
      assert jpnnx.make_pool("blur", window)(y).shape == expected, (window, size)
      assert jpnnx.make_pool("maxblur", window)(y).shape == expected, (window, size)


@pytest.mark.parametrize(
  "call, error, match",
  [
    (lambda x: jaxpool.blur_pool(x, (3, 3), 2, pad_mode="mirror"), ValueError, "pad_mode"),
    (lambda x: jaxpool.blur_pool(x, (3, 3), 2, 9, pad_mode="reflect"), ValueError, "smaller than"),
    (lambda x: jaxpool.blur_pool(x, (3, 3), 2, 11, pad_mode="wrap"), ValueError, "at most"),
    (lambda x: jaxpool.blur_pool(x, (12, 3), 2, "VALID"), ValueError, "larger than"),
    (lambda x: jaxpool.blur_pool(x, 3, 2), TypeError, "window_shape"),
    (lambda x: jaxpool.blur_pool(x, (3, 3), 0), ValueError, "strides"),
    (lambda x: jaxpool.blur_pool(x, (3, 3), 2, -1), ValueError, "non-negative"),
    (lambda x: jaxpool.blur_pool(x.astype(jnp.int32), (3, 3)), TypeError, "floating"),
    (lambda x: jaxpool.blur_pool(x[0, 0], (3, 3)), ValueError, "rank"),
    (lambda x: jaxpool.max_blur_pool(x, (2, 2), blur_shape=(3, 3, 3)), ValueError, "blur_shape"),
    (lambda x: jaxpool.max_blur_pool(x, (2, 2), 2, 2), ValueError, "half"),
  ],
)
def test_bad_arguments_are_clear_errors(call, error, match):
  with pytest.raises(error, match=match):
    call(jnp.asarray(X2))


def test_layer_construction_checks_the_options():
  from jaxpool import nnx as jpnnx

  with pytest.raises(ValueError, match="BlurPool: pad_mode"):
    jpnnx.BlurPool((3, 3), 2, pad_mode="mirror")
  with pytest.raises(ValueError, match="MaxBlurPool"):
    jpnnx.MaxBlurPool((2, 2), 2, blur_shape=(3, 3, 3))
