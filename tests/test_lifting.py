"""LiftPool: sub-bands against float64 numpy references of the wavelets and of
the paper's learned steps, exact inverse for any predict/update, constraints,
gradients, layers and their auxiliary losses."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from derivatives import check_grads
from flax import linen as nn
from flax import nnx

import jaxpool
from jaxpool import linen as jplinen
from jaxpool import nnx as jpnnx

SHAPES = {1: (2, 8, 3), 2: (2, 6, 8, 3), 3: (2, 4, 6, 8, 2)}
NAMES = {
  1: ("L", "H"),
  2: ("LL", "LH", "HL", "HH"),
  3: tuple("".join(p) for p in itertools.product("LH", repeat=3)),
}


def _normal(shape, seed=0, dtype=np.float64):
  return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


# ----------------------------------------------------------------------------
# float64 numpy references, written from the formulas (not from the code).


def _haar_pairs(x):
  """Haar along axis -2: s[k] = (x[2k] + x[2k+1]) / 2, d[k] = x[2k+1] - x[2k]."""
  even, odd = x[..., 0::2, :], x[..., 1::2, :]
  return (even + odd) / 2, odd - even


def _legall53(x):
  """LeGall 5/3 along axis -2, whole-sample symmetric extension (x[n] = x[n-2],
  x[-1] = x[1]), by sample index:
  d[k] = x[2k+1] - (x[2k] + x[2k+2]) / 2,  s[k] = x[2k] + (d[k-1] + d[k]) / 4."""
  n = x.shape[-2]
  half = n // 2

  def sample(i):
    i = 2 * (n - 1) - i if i >= n else (-i if i < 0 else i)
    return x[..., i, :]

  d = np.stack(
    [sample(2 * k + 1) - (sample(2 * k) + sample(2 * k + 2)) / 2 for k in range(half)], -2
  )
  d_at = lambda k: d[..., -k - 1 if k < 0 else k, :]  # d[-1] = d[0]
  s = np.stack([sample(2 * k) + (d_at(k - 1) + d_at(k)) / 4 for k in range(half)], -2)
  return s, d


def _learned_step(params, name, v):
  """The paper's P/U: depthwise conv (zero padding) -> ReLU -> channel-wise
  affine -> tanh, along axis -2, in float64 numpy."""
  kernel = np.asarray(params[f"{name}_depthwise_kernel"], np.float64)
  size, n = kernel.shape[0], v.shape[-2]
  padded = np.pad(v, [(0, 0)] * (v.ndim - 2) + [(size // 2, size // 2), (0, 0)])
  h = sum(kernel[j] * padded[..., j : j + n, :] for j in range(size))
  h = np.maximum(h + np.asarray(params[f"{name}_depthwise_bias"]), 0)
  mix = np.asarray(params[f"{name}_mix_kernel"], np.float64)
  h = h * mix if mix.ndim == 1 else h @ mix
  return np.tanh(h + np.asarray(params[f"{name}_mix_bias"]))


def _lift_reference(x, spatial_dims, pass_1d):
  """Bands and (c_u, c_p) of lifting ``x`` with ``pass_1d(v) -> (s, d, x_o)``
  along axis -2, the last spatial axis first."""
  bands, c_u, c_p = [x], 0.0, 0.0
  for axis in [x.ndim - 2 - i for i in range(spatial_dims)]:
    lifted = []
    for band in bands:
      s, d, odd = pass_1d(np.moveaxis(band, axis, -2))
      c_u += np.mean((s - odd) ** 2)
      c_p += np.mean(d**2)
      lifted += [np.moveaxis(s, -2, axis), np.moveaxis(d, -2, axis)]
    bands = lifted
  return bands, c_u, c_p


def _learned_pass(params):
  def pass_1d(v):
    even, odd = v[..., 0::2, :], v[..., 1::2, :]
    d = odd - _learned_step(params, "predict", even)
    return even + _learned_step(params, "update", d), d, odd

  return pass_1d


def _random_params(features, seed=0, mixing="channelwise", kernel_size=3):
  """Learned-step parameters with every part random (the mixing too, which
  starts at zero in a fresh layer)."""
  from jaxpool._src.lifting import init_lift_params  # tests may read _src for params

  params = init_lift_params(jax.random.key(seed), features, kernel_size=kernel_size, mixing=mixing)
  keys = jax.random.split(jax.random.key(seed + 1), len(params))
  return {
    name: np.asarray(value + 0.5 * jax.random.normal(k, value.shape), np.float64)
    for (name, value), k in zip(sorted(params.items()), keys)
  }


def _steps(params):
  from jaxpool._src.lifting import lift_steps

  return lift_steps({k: jnp.asarray(v) for k, v in params.items()})


# ----------------------------------------------------------------------------
# Sub-bands.


@pytest.mark.parametrize("spatial_dims", [1, 2, 3])
def test_band_names_shapes_and_dtype(spatial_dims):
  x = jnp.asarray(_normal(SHAPES[spatial_dims], dtype=np.float32))
  bands = jaxpool.lift_down_pool(x, spatial_dims=spatial_dims)
  assert bands._fields == NAMES[spatial_dims]
  half = (
    SHAPES[spatial_dims][: -1 - spatial_dims]
    + tuple(n // 2 for n in SHAPES[spatial_dims][-1 - spatial_dims : -1])
    + SHAPES[spatial_dims][-1:]
  )
  for band in bands:
    assert band.shape == half and band.dtype == jnp.float32


@pytest.mark.parametrize("wavelet,reference", [("haar", _haar_pairs), ("legall53", _legall53)])
@pytest.mark.parametrize("spatial_dims", [1, 2, 3])
def test_wavelets_match_numpy_formulas(spatial_dims, wavelet, reference, x64):
  x = _normal(SHAPES[spatial_dims])
  expected, _, _ = _lift_reference(x, spatial_dims, lambda v: (*reference(v), v[..., 1::2, :]))
  bands = jaxpool.lift_down_pool(x, spatial_dims=spatial_dims, wavelet=wavelet)
  for band, ref in zip(bands, expected):
    np.testing.assert_allclose(band, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("wavelet", ["haar", "legall53"])
def test_orientation_of_the_bands(wavelet):
  ramp = np.arange(8.0)[None, None, :, None] ** 2  # varies along W only
  along_w = jaxpool.lift_down_pool(np.tile(ramp, (1, 6, 1, 2)).astype(np.float32), wavelet=wavelet)
  np.testing.assert_array_equal(along_w.LH, 0)
  np.testing.assert_array_equal(along_w.HH, 0)
  assert np.abs(along_w.HL).max() > 0
  along_h = jaxpool.lift_down_pool(
    np.tile(np.swapaxes(ramp, 1, 2), (1, 1, 6, 2)).astype(np.float32), wavelet=wavelet
  )
  np.testing.assert_array_equal(along_h.HL, 0)
  np.testing.assert_array_equal(along_h.HH, 0)
  assert np.abs(along_h.LH).max() > 0


@pytest.mark.parametrize("wavelet", ["haar", "legall53"])
@pytest.mark.parametrize("spatial_dims", [1, 2, 3])
def test_constant_input_gives_the_constant_and_zero_details(spatial_dims, wavelet):
  bands, (c_u, c_p) = jaxpool.lift_down_pool_with_constraints(
    jnp.full(SHAPES[spatial_dims], 2.5), spatial_dims=spatial_dims, wavelet=wavelet
  )
  np.testing.assert_array_equal(bands[0], 2.5)
  for band in bands[1:]:
    np.testing.assert_array_equal(band, 0)
  assert float(c_p) == 0 and float(c_u) == 0


def test_3d_bands_are_named_w_then_h_then_d():
  depth = np.arange(4.0)[None, :, None, None, None] ** 2  # varies along D only
  bands = jaxpool.lift_down_pool(np.tile(depth, (1, 1, 4, 6, 1)), spatial_dims=3)
  for name, band in zip(bands._fields, bands):
    if name[:2] == "LL":  # W and H approximations: D's bands keep the signal
      assert np.abs(band).max() > 0, name
    else:
      np.testing.assert_array_equal(band, 0, err_msg=name)
  assert np.abs(bands.LLH).max() > 0


def test_length_two_axes_give_haar_for_both_wavelets(x64):
  x = _normal((3, 2, 2, 2))
  for wavelet in ("haar", "legall53"):
    bands = jaxpool.lift_down_pool(x, wavelet=wavelet)
    row_mean = (x[:, :, 0] + x[:, :, 1]) / 2
    np.testing.assert_allclose(bands.LL[:, 0, 0], row_mean.mean(axis=1), rtol=1e-12)
    np.testing.assert_allclose(
      jaxpool.lift_up_pool(bands, wavelet=wavelet), x, rtol=1e-12, atol=1e-12
    )


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16])
def test_half_precision_bands_and_float32_constraints(dtype):
  x = jnp.asarray(300 * _normal((2, 8, 8, 3), dtype=np.float32), dtype)
  bands, (c_u, c_p) = jaxpool.lift_down_pool_with_constraints(x)
  assert all(band.dtype == dtype for band in bands)
  assert c_u.dtype == c_p.dtype == jnp.float32 and np.isfinite([c_u, c_p]).all()
  _, (ref_u, ref_p) = jaxpool.lift_down_pool_with_constraints(x.astype(jnp.float32))
  np.testing.assert_allclose([c_u, c_p], [ref_u, ref_p], rtol=1e-2)
  y = jaxpool.lift_up_pool(bands)
  assert y.dtype == dtype
  np.testing.assert_allclose(y.astype(np.float32), x.astype(np.float32), rtol=2e-2, atol=300 * 2e-2)


@pytest.mark.parametrize("mixing", ["channelwise", "dense"])
@pytest.mark.parametrize("spatial_dims", [1, 2, 3])
def test_learned_steps_and_constraints_match_numpy(spatial_dims, mixing, x64):
  x = _normal(SHAPES[spatial_dims])
  params = _random_params(x.shape[-1], mixing=mixing)
  expected, c_u, c_p = _lift_reference(x, spatial_dims, _learned_pass(params))
  predict, update = _steps(params)
  bands, constraints = jaxpool.lift_down_pool_with_constraints(
    x, spatial_dims=spatial_dims, predict=predict, update=update
  )
  for band, ref in zip(bands, expected):
    np.testing.assert_allclose(band, ref, rtol=1e-12, atol=1e-12)
  np.testing.assert_allclose(constraints, [c_u, c_p], rtol=1e-12)


def test_constraints_are_means_independent_of_batch_and_tiling(x64):
  x = _normal((1, 4, 8, 2))
  _, one = jaxpool.lift_down_pool_with_constraints(x)
  _, three = jaxpool.lift_down_pool_with_constraints(np.concatenate([x] * 3))
  np.testing.assert_allclose(one, three, rtol=1e-12)
  _, unbatched = jaxpool.lift_down_pool_with_constraints(x[0])
  np.testing.assert_allclose(unbatched, one, rtol=1e-12)
  _, wider = jaxpool.lift_down_pool_with_constraints(np.concatenate([x, x], axis=-1))
  np.testing.assert_allclose(wider, one, rtol=1e-12)


# ----------------------------------------------------------------------------
# Inverse.


def _nonlinear(v):
  return jnp.sin(3.0 * v) + 0.5 * v * v + jnp.roll(v, 1, axis=-2)


STEPS = {
  "legall53": lambda f: dict(),
  "haar": lambda f: dict(wavelet="haar"),
  "learned": lambda f: dict(zip(("predict", "update"), _steps(_random_params(f)))),
  "nonlinear": lambda f: dict(predict=_nonlinear, update=lambda d: jnp.tanh(d) - 0.3 * d),
}


@pytest.mark.parametrize("steps", sorted(STEPS))
@pytest.mark.parametrize("spatial_dims", [1, 2, 3])
# float32: the nonlinear steps' terms reach about 10 (0.5 v**2), so 3e-5 is a few ulps.
@pytest.mark.parametrize("dtype,tolerance", [(np.float32, 3e-5), (np.float64, 1e-12)])
def test_lift_up_pool_inverts_lift_down_pool(spatial_dims, steps, dtype, tolerance, x64):
  x = _normal(SHAPES[spatial_dims], seed=3, dtype=dtype)
  options = STEPS[steps](x.shape[-1])
  bands = jaxpool.lift_down_pool(x, spatial_dims=spatial_dims, **options)
  y = jaxpool.lift_up_pool(bands, **options)
  assert y.dtype == dtype and y.shape == x.shape
  np.testing.assert_allclose(y, x, rtol=tolerance, atol=tolerance)
  y = jaxpool.lift_up_pool(list(bands), **options)  # any sequence
  np.testing.assert_allclose(y, x, rtol=tolerance, atol=tolerance)


def test_lift_up_pool_takes_a_decoder_map_in_place_of_the_approximation():
  x = jnp.asarray(_normal((1, 4, 4, 2), dtype=np.float32))
  bands = jaxpool.lift_down_pool(x, wavelet="haar")
  decoded = jaxpool.lift_up_pool(bands._replace(LL=bands.LL + 1.0), wavelet="haar")
  np.testing.assert_allclose(decoded, x + 1.0, atol=1e-6)  # Haar: LL + 1 adds 1 everywhere


def test_gradients_are_the_true_derivative(x64):
  x = _normal((2, 4, 6, 2))
  predict, update = _steps(_random_params(2))

  def down(v):
    bands, (c_u, c_p) = jaxpool.lift_down_pool_with_constraints(v, predict=predict, update=update)
    return sum(b * (i + 1) for i, b in enumerate(bands)), c_u, c_p

  def up(*bands):
    return jaxpool.lift_up_pool(bands, predict=predict, update=update)

  check_grads(down, (x,), order=1, modes=["fwd", "rev"], eps=1e-6)
  check_grads(
    jax.jit(up), tuple(_normal((2, 2, 3, 2), seed=i) for i in range(4)), order=1, eps=1e-6
  )
  # Reverse mode only: forward mode through the band maps is checked in
  # test_band_map_gradients_both_modes (here it took half a minute).
  check_grads(
    lambda v: jaxpool.lift_up_pool(jaxpool.lift_down_pool(v, spatial_dims=3), wavelet="legall53"),
    (_normal((1, 4, 4, 4, 1)),),
    order=2,
    modes=["rev"],
    eps=1e-5,
  )


def test_gradients_to_the_learned_parameters(x64):
  from jaxpool._src.lifting import lift_steps

  x = _normal((2, 4, 6, 2))
  params = {k: jnp.asarray(v) for k, v in _random_params(2).items()}

  def loss(p):
    predict, update = lift_steps(p)
    bands, (c_u, c_p) = jaxpool.lift_down_pool_with_constraints(x, predict=predict, update=update)
    return jnp.sum(sum(bands) ** 2) + 0.01 * c_u + 0.1 * c_p

  check_grads(loss, (params,), order=1, modes=["rev"], eps=1e-6)


def _as_plain_callables(wavelet):
  """The wavelet's own steps hidden behind plain callables, so that the
  functions lift step by step instead of taking the two-band maps."""
  from jaxpool._src.lifting import WAVELETS

  predict, update = WAVELETS[wavelet]
  return dict(predict=lambda v: predict(v), update=lambda v: update(v))


@pytest.mark.parametrize("wavelet", ["haar", "legall53"])
@pytest.mark.parametrize(
  "spatial_dims,shape",
  [
    (1, (3, 2, 1)),
    (1, (2, 10, 3)),
    (2, (2, 2, 2, 1)),
    (2, (1, 4, 6, 3)),
    (2, (1, 8, 2, 2)),
    (3, (1, 2, 4, 6, 2)),
    (3, (4, 6, 2, 1)),
  ],
)
def test_band_maps_equal_the_lifting_steps(spatial_dims, shape, wavelet, x64):
  """The fixed wavelets run as two-band maps (core.banded), read off the
  lifting steps: the bands, constraints and inverse must equal lifting step by
  step, borders included (lengths 2, 4, 6, 8, 10)."""
  x = _normal(shape, seed=sum(shape))
  plain = _as_plain_callables(wavelet)
  fast, fast_c = jaxpool.lift_down_pool_with_constraints(
    x, spatial_dims=spatial_dims, wavelet=wavelet
  )
  slow, slow_c = jaxpool.lift_down_pool_with_constraints(x, spatial_dims=spatial_dims, **plain)
  for a, b in zip(fast + tuple(fast_c), slow + tuple(slow_c)):
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
  bands = [_normal(fast[0].shape, seed=i) for i in range(len(fast))]
  np.testing.assert_allclose(
    jaxpool.lift_up_pool(bands, wavelet=wavelet),
    jaxpool.lift_up_pool(bands, **plain),
    rtol=1e-12,
    atol=1e-12,
  )
  np.testing.assert_allclose(
    jaxpool.lift_pool(x, spatial_dims=spatial_dims, wavelet=wavelet),
    sum(slow),
    rtol=1e-12,
    atol=1e-12,
  )


@pytest.mark.parametrize("wavelet", ["haar", "legall53"])
def test_band_map_gradients_both_modes(wavelet, x64):
  """The two-band maps' derivatives (each form the other's transpose), to
  second order in forward and reverse mode."""
  x = _normal((1, 4, 6, 1))
  bands = tuple(_normal((1, 2, 3, 1), seed=i) for i in range(4))
  weights = [1.0, -2.0, 0.5, 3.0]

  def down(v):
    return sum(w * b for w, b in zip(weights, jaxpool.lift_down_pool(v, wavelet=wavelet)))

  check_grads(down, (x,), order=2, modes=["fwd", "rev"], eps=1e-6)
  check_grads(
    lambda *b: jaxpool.lift_up_pool(b, wavelet=wavelet),
    bands,
    order=2,
    modes=["fwd", "rev"],
    eps=1e-6,
  )
  check_grads(
    lambda v: jaxpool.lift_pool(v, wavelet=wavelet), (x,), order=2, modes=["fwd", "rev"], eps=1e-6
  )


@pytest.mark.parametrize("spatial_dims", [1, 2, 3])
def test_lift_pool_is_the_sum_of_the_bands(spatial_dims, x64):
  x = _normal(SHAPES[spatial_dims])
  for wavelet in ("haar", "legall53"):
    np.testing.assert_allclose(
      jaxpool.lift_pool(x, spatial_dims=spatial_dims, wavelet=wavelet),
      sum(jaxpool.lift_down_pool(x, spatial_dims=spatial_dims, wavelet=wavelet)),
      rtol=1e-12,
      atol=1e-12,
    )
  predict, update = _steps(_random_params(SHAPES[spatial_dims][-1]))
  learned = dict(spatial_dims=spatial_dims, predict=predict, update=update)
  np.testing.assert_allclose(
    jaxpool.lift_pool(x, **learned),
    sum(jaxpool.lift_down_pool(x, **learned)),
    rtol=1e-12,
    atol=1e-12,
  )


def test_lift_pool_keeps_half_precision():
  x = jnp.asarray(_normal((2, 4, 4, 3), dtype=np.float32), jnp.bfloat16)
  y = jaxpool.lift_pool(x)
  assert y.dtype == jnp.bfloat16 and y.shape == (2, 2, 2, 3)
  np.testing.assert_allclose(
    np.asarray(y, np.float32),
    np.asarray(jaxpool.lift_pool(x.astype(jnp.float32))),
    rtol=2e-2,
    atol=2e-2,
  )


def test_lift_pool_with_learned_steps_sums_the_bands_in_float32_as_the_fixed_path():
  # Both paths round once, at the end: bf16 in, the float32 result rounded.
  x = jnp.asarray(_normal((2, 8, 8, 3), dtype=np.float32), jnp.bfloat16)
  predict, update = _steps(_random_params(3))
  learned = dict(predict=predict, update=update)
  y = jaxpool.lift_pool(x, **learned)
  assert y.dtype == jnp.bfloat16
  reference = jaxpool.lift_pool(x.astype(jnp.float32), **learned).astype(jnp.bfloat16)
  np.testing.assert_array_equal(np.asarray(y, np.float32), np.asarray(reference, np.float32))


def test_band_maps_reject_maps_beyond_the_neighbouring_blocks():
  from jaxpool._src.core.banded import analysis_terms, synthesis_terms

  def ahead(x, by):  # x[2k + 2 * by], zero past the end
    return jnp.pad(x[:, 2 * by :], ((0, 0), (0, 2 * by)))[:, 0::2]

  analysis_terms(lambda x: (ahead(x, 1), x[:, 1::2]), 12)  # within reach
  with pytest.raises(ValueError, match="beyond the neighbouring blocks"):
    analysis_terms(lambda x: (ahead(x, 2), x[:, 1::2]), 12)
  with pytest.raises(ValueError, match="beyond the neighbouring blocks"):
    synthesis_terms(lambda b: jnp.repeat(jnp.pad(b[0][:, 2:], ((0, 0), (0, 2))), 2, axis=1), 6)


def test_band_maps_probe_long_axes_in_linear_memory():
  """Long 1-D signals (16384 samples): the weights come from comb probes, not
  the identity (which would be 1 GiB), and lifting matches step by step."""
  x = _normal((1, 16384, 1), dtype=np.float32)
  plain = _as_plain_callables("legall53")
  for a, b in zip(
    jaxpool.lift_down_pool(x, spatial_dims=1), jaxpool.lift_down_pool(x, spatial_dims=1, **plain)
  ):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
  "call,error,match",
  [
    (
      lambda: jaxpool.lift_down_pool(jnp.ones((1, 5, 4, 1))),
      ValueError,
      r"spatial axis 0 \(array axis 1\) has odd length 5",
    ),
    (
      lambda: jaxpool.lift_down_pool(jnp.ones((1, 4, 3, 1))),
      ValueError,
      r"spatial axis 1 \(array axis 2\)",
    ),
    (
      lambda: jaxpool.lift_down_pool(jnp.ones((4, 4)), spatial_dims=2),
      ValueError,
      "2 spatial axes",
    ),
    (
      lambda: jaxpool.lift_down_pool(jnp.ones((1, 4, 4, 1)), spatial_dims=4),
      ValueError,
      "1, 2 or 3",
    ),
    (lambda: jaxpool.lift_down_pool(jnp.ones((1, 4, 4, 1)), wavelet="db4"), ValueError, "wavelet"),
    (
      lambda: jaxpool.lift_down_pool(jnp.ones((1, 4, 4, 1), jnp.int32)),
      TypeError,
      "floating-point",
    ),
    (
      lambda: jaxpool.lift_down_pool(jnp.ones((1, 4, 4, 1)), predict=3),
      TypeError,
      "predict must be a callable",
    ),
    (
      lambda: jaxpool.lift_down_pool(jnp.ones((1, 4, 4, 1)), predict=lambda v: v[..., :1, :]),
      ValueError,
      "predict must map an array of shape",
    ),
    (lambda: jaxpool.lift_up_pool([jnp.ones((1, 2, 2, 1))] * 3), ValueError, "2, 4 or 8 sub-bands"),
    (lambda: jaxpool.lift_up_pool(jnp.ones((4, 2, 2, 1))), TypeError, "sequence of sub-bands"),
    (
      lambda: jaxpool.lift_up_pool([jnp.ones((1, 2, 2, 1))] * 3 + [jnp.ones((1, 2, 3, 1))]),
      ValueError,
      "one shape and dtype",
    ),
    (
      lambda: jaxpool.lift_up_pool([jnp.ones((1, 2, 2, 1))] * 2, spatial_dims=2),
      ValueError,
      "spatial_dims=2 expects 4 sub-bands; got 2",
    ),
    (
      lambda: jaxpool.lift_down_pool(jnp.ones((1, 0, 4, 1))),
      ValueError,
      r"spatial axis 0 \(array axis 1\) is empty",
    ),
    (
      lambda: jaxpool.lift_pool(jnp.ones((1, 4, 5, 1))),
      ValueError,
      r"lift_pool: .*spatial axis 1 \(array axis 2\) has odd length 5",
    ),
    (lambda: jaxpool.lift_pool(jnp.ones((1, 4, 4, 1)), wavelet="db4"), ValueError, "wavelet"),
    (lambda: jaxpool.lift_pool(jnp.ones((1, 4, 4, 1), jnp.int32)), TypeError, "floating-point"),
  ],
)
def test_bad_arguments_are_clear_errors(call, error, match):
  with pytest.raises(error, match=match):
    call()


# ----------------------------------------------------------------------------
# Layers.


def test_nnx_outputs_and_feature_multiplier():
  x = jnp.asarray(_normal((2, 8, 8, 3), dtype=np.float32))
  make = lambda output: jpnnx.LiftDownPool(features=3, output=output, rngs=nnx.Rngs(0))
  bands = make("all")(x)
  np.testing.assert_allclose(make("sum")(x), sum(bands), rtol=1e-6)
  np.testing.assert_allclose(make("HL")(x), bands.HL)
  both = make(("LL", "HH"))
  np.testing.assert_allclose(both(x), jnp.concatenate([bands.LL, bands.HH], -1))
  assert both.feature_multiplier == 2 and make("sum").feature_multiplier == 1
  # Fresh layers start as the lazy wavelet: LL = x[::2, ::2].
  np.testing.assert_allclose(bands.LL, x[:, ::2, ::2], rtol=1e-6)


def test_nnx_fixed_wavelet_layer_equals_the_function():
  x = jnp.asarray(_normal((2, 8, 8, 3), dtype=np.float32))
  layer = jpnnx.LiftDownPool(features=3, learned=False, wavelet="haar")
  assert not nnx.state(layer, nnx.Param)
  np.testing.assert_allclose(layer(x), sum(jaxpool.lift_down_pool(x, wavelet="haar")), rtol=1e-6)


def test_nnx_inverse_and_up_layer_share_the_parameters():
  x = jnp.asarray(_normal((2, 8, 8, 3), dtype=np.float32))
  down = jpnnx.LiftDownPool(features=3, output="all", rngs=nnx.Rngs(0))
  params = _random_params(3)
  for name, value in params.items():
    down.lift_params[name][...] = jnp.asarray(value, jnp.float32)
  bands = down(x)
  up = jpnnx.LiftUpPool(down=down)
  np.testing.assert_allclose(up(bands), x, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(down.inverse(bands), x, rtol=1e-5, atol=1e-5)
  predict, update = _steps(params)
  np.testing.assert_allclose(
    bands.HH, jaxpool.lift_down_pool(x, predict=predict, update=update).HH, rtol=1e-5, atol=1e-6
  )


def test_nnx_auxiliary_loss_is_the_weighted_constraints_and_trains_under_jit():
  x = jnp.asarray(_normal((4, 8, 8, 2), dtype=np.float32))

  class EncoderDecoder(nnx.Module):
    def __init__(self, rngs):
      self.down = jpnnx.LiftDownPool(
        features=2, output="all", lambda_u=0.5, lambda_p=2.0, rngs=rngs
      )
      self.up = jpnnx.LiftUpPool(down=self.down)

    def __call__(self, v):
      bands = self.down(v)
      return self.up(bands._replace(LL=0.9 * bands.LL))

  model = EncoderDecoder(nnx.Rngs(0))
  model(x)
  predict, update = model.down.steps()
  _, (c_u, c_p) = jaxpool.lift_down_pool_with_constraints(x, predict=predict, update=update)
  np.testing.assert_allclose(jpnnx.auxiliary_loss(model), 0.5 * c_u + 2.0 * c_p, rtol=1e-6)
  assert float(jpnnx.auxiliary_loss(nnx.Linear(2, 2, rngs=nnx.Rngs(0)))) == 0.0

  optimizer = nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)

  @nnx.jit
  def step(model, optimizer):
    def loss_fn(model):
      return jnp.mean((model(x) - x) ** 2) + jpnnx.auxiliary_loss(model)

    loss, grads = nnx.value_and_grad(loss_fn)(model)
    optimizer.update(model, grads)
    return loss

  with jax.numpy_dtype_promotion("standard"):
    losses = [float(step(model, optimizer)) for _ in range(20)]
  assert np.isfinite(losses).all() and losses[-1] < losses[0]


def test_linen_layer_matches_nnx_and_sows_its_loss():
  x = jnp.asarray(_normal((2, 8, 8, 3), dtype=np.float32))
  params = {k: jnp.asarray(v, jnp.float32) for k, v in _random_params(3).items()}

  class Net(nn.Module):
    def setup(self):
      self.down = jplinen.LiftDownPool(output="all")
      self.up = jplinen.LiftUpPool(down=self.down)

    def __call__(self, v):
      bands = self.down(v)
      return bands, self.up(bands)

  initialised = Net().init(jax.random.key(0), x)
  assert set(initialised) == {"params", "losses"}
  variables = {**initialised, "params": {"down": {"lift_params": params}}}
  (bands, y), state = Net().apply(variables, x, mutable=["losses"])
  np.testing.assert_allclose(y, x, rtol=1e-5, atol=1e-5)
  nnx_layer = jpnnx.LiftDownPool(features=3, output="all", rngs=nnx.Rngs(0))
  for name, value in params.items():
    nnx_layer.lift_params[name][...] = value
  for a, b in zip(bands, nnx_layer(x)):
    np.testing.assert_allclose(a, b, rtol=1e-6)
  np.testing.assert_allclose(
    jplinen.auxiliary_loss(state), jpnnx.auxiliary_loss(nnx_layer), rtol=1e-6
  )
  # The stored value (from init, then from this apply) is replaced, not accumulated.
  again = Net().apply({**variables, **state}, x, mutable=["losses"])[1]
  np.testing.assert_allclose(jplinen.auxiliary_loss(again), jplinen.auxiliary_loss(state))


def test_layer_options_are_checked_at_construction():
  with pytest.raises(ValueError, match="output must be"):
    jpnnx.LiftDownPool(features=3, output="LLL", rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="kernel_size must be an odd int"):
    jpnnx.LiftDownPool(features=3, kernel_size=2, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="mixing"):
    jpnnx.LiftDownPool(features=3, mixing="full", rngs=nnx.Rngs(0))
  with pytest.raises(TypeError, match="LiftDownPool needs rngs"):
    jpnnx.LiftDownPool(features=3)
  with pytest.raises(ValueError, match="features"):
    jpnnx.LiftDownPool(features=0, rngs=nnx.Rngs(0))
  with pytest.raises(TypeError, match="LiftUpPool needs down"):
    jpnnx.LiftUpPool(down=jpnnx.MaxPool((2, 2)))
  with pytest.raises(ValueError, match="output must be"):
    jplinen.LiftDownPool(spatial_dims=1, output="LH")
  with pytest.raises(ValueError, match="lambda_p"):
    jplinen.LiftDownPool(lambda_p=-1.0)
  for module in (jpnnx, jplinen):
    with pytest.raises(ValueError, match="halves every spatial axis"):
      module.make_pool(
        "lift", (3, 3), 2, features=3, rngs=nnx.Rngs(0)
      ) if module is jpnnx else module.make_pool("lift", (3, 3))
  assert jpnnx.make_pool("lift", (2,), features=3, rngs=nnx.Rngs(0)).spatial_dims == 1


def test_layers_reject_mismatched_inputs():
  x = jnp.ones((2, 8, 8, 3))
  with pytest.raises(ValueError, match=r"LiftDownPool\(features=1\) got an input with 3 features"):
    jpnnx.LiftDownPool(features=1, rngs=nnx.Rngs(0))(x)
  down = jpnnx.LiftDownPool(features=3, output="all", rngs=nnx.Rngs(0))
  bands = down(x)
  with pytest.raises(ValueError, match="spatial_dims=2 expects 4 sub-bands; got 2"):
    down.inverse(bands[:2])
  with pytest.raises(ValueError, match="spatial_dims=2 expects 4 sub-bands"):
    jpnnx.LiftUpPool(down=down)(tuple(bands) * 2)
  # Linen reads only the 'losses' collection.
  assert float(jplinen.auxiliary_loss({"batch_stats": {"bn": {"var": jnp.ones(8)}}})) == 0.0
  with pytest.raises(TypeError, match="auxiliary_loss expects the variables"):
    jplinen.auxiliary_loss([1.0])


@pytest.mark.parametrize("value", [1e30, -1e30, 1e25])
@pytest.mark.parametrize("wavelet", ["legall53", "haar"])
def test_constraints_of_a_constant_map_are_zero_at_any_magnitude(value, wavelet):
  # Issue 24: approx - x_o cancelled (5.8e35 for 1e25, inf for 1e30).
  x = jnp.full((2, 8, 8, 3), value)
  fn = lambda v: jaxpool.lift_down_pool_with_constraints(v, wavelet=wavelet)[1]
  c_u, c_p = fn(x)
  assert float(c_u) == 0.0 and float(c_p) == 0.0
  grad = jax.grad(lambda v: sum(fn(v)))(x)
  assert np.isfinite(np.asarray(grad)).all()
  # Beyond float32's range the mean square is inf, not NaN.
  c_u, c_p = fn(jax.random.normal(jax.random.key(0), x.shape) * 1e30)
  assert np.isinf(float(c_u)) and np.isinf(float(c_p))
