"""The shared window machinery (jaxpool._src.core): geometry, validation, taps, scatter."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from jax import lax

import jaxpool
from jaxpool._src.core import geometry, scatter, taps

from oracle import F, from_torch, to_torch, torch_op


def test_strides_default_to_window_and_batch_dims_are_free():
  g = geometry.window_geometry((4, 6, 3), (2, 3))
  assert g.strides == (2, 3) and g.out_shape == (2, 2)
  for shape in [(8, 8, 2), (3, 8, 8, 2), (2, 3, 8, 8, 2)]:
    y = jaxpool.max_pool(jnp.ones(shape), (2, 2))
    assert y.shape == shape[:-3] + (4, 4, 2)


def test_same_padding_matches_lax():
  for size, k, s, d in [(7, 3, 2, 1), (8, 2, 2, 1), (5, 4, 1, 1), (9, 3, 2, 2)]:
    g = geometry.window_geometry((size, 1), (k,), (s,), "SAME", dilation=d)
    eff = (k - 1) * d + 1
    assert g.padding == tuple(lax.padtype_to_pads((size,), (eff,), (s,), "SAME"))
    assert g.out_shape == (-(-size // s),)


def test_padding_forms_normalise_identically():
  shape = (6, 7, 1)
  forms = [1, (1, 1), [(1, 1), (1, 1)], ((1, 1), [1, 1])]
  geoms = {geometry.window_geometry(shape, (3, 3), padding=f) for f in forms}
  assert len(geoms) == 1
  asym = geometry.window_geometry(shape, (3, 3), padding=[(0, 1), (1, 0)])
  assert asym.padding == ((0, 1), (1, 0))


def test_geometry_is_hashable_and_static():
  g = geometry.window_geometry((5, 5, 1), (2, 2), padding=1, ceil_mode=True)
  assert hash(g) == hash(geometry.window_geometry((5, 5, 1), [2, 2], 2, 1, ceil_mode=True))


BAD_INPUTS = [
  (dict(window_shape=2), TypeError, "window_shape must be a tuple of ints"),
  (dict(window_shape=(2.0, 2)), TypeError, "window_shape must contain only ints"),
  (dict(window_shape=(0, 2)), ValueError, "window_shape entries must be >= 1"),
  (dict(window_shape=()), ValueError, "window_shape must have at least one"),
  (dict(window_shape=(2, 2, 2, 2)), ValueError, "x must have shape"),
  (dict(window_shape=(2, 2), strides=(0, 1)), ValueError, "strides entries must be >= 1"),
  (dict(window_shape=(2, 2), strides=(1, 1, 1)), ValueError, "strides must have one entry"),
  (dict(window_shape=(2, 2), strides="2"), TypeError, "strides must be"),
  (dict(window_shape=(2, 2), dilation=0), ValueError, "dilation entries must be >= 1"),
  (dict(window_shape=(2, 2), padding="FULL"), ValueError, "got the string 'FULL'"),
  (dict(window_shape=(2, 2), padding=2), ValueError, "at most half the dilated window"),
  (dict(window_shape=(3, 3), padding=[(0, 2), (0, 0)]), ValueError, "at most half"),
  (dict(window_shape=(2, 2), padding=-1), ValueError, "non-negative"),
  (dict(window_shape=(2, 2), padding=[1]), ValueError, "padding must have one entry"),
  (dict(window_shape=(2, 2), padding=[(1, 1, 1), 0]), TypeError, "padding entries"),
  (dict(window_shape=(2, 2), padding=1.5), TypeError, "padding must be"),
  (dict(window_shape=(9, 2)), ValueError, "larger than the padded input"),
  (dict(window_shape=(2, 2), ceil_mode="yes"), TypeError, "ceil_mode must be a bool"),
]


@pytest.mark.parametrize("kwargs,error,message", BAD_INPUTS)
@pytest.mark.parametrize(
  "op", [jaxpool.max_pool, jaxpool.avg_pool, jaxpool.median_pool, jaxpool.max_pool_with_indices]
)
def test_bad_window_arguments_raise_clear_errors(op, kwargs, error, message):
  x = jnp.ones((1, 5, 5, 2))
  with pytest.raises(error, match=re.escape(message)):
    op(x, **kwargs)


@pytest.mark.parametrize(
  "call,error,message",
  [
    (lambda x: jaxpool.lp_pool(x, (2, 2), p=0), ValueError, "p must be a positive"),
    (lambda x: jaxpool.lp_pool(x, (2, 2), p=-1.0), ValueError, "got p=-1.0"),
    (lambda x: jaxpool.lp_pool(x, (2, 2), p=float("inf")), ValueError, "p must be"),
    (lambda x: jaxpool.adaptive_avg_pool(x, 3), TypeError, "output_shape must be a tuple"),
    (
      lambda x: jaxpool.adaptive_max_pool(x, (0, 2)),
      ValueError,
      "output_shape entries must be >= 1",
    ),
    (lambda x: jaxpool.adaptive_avg_pool(x, (2, 2, 2, 2)), ValueError, "x must have shape"),
    (lambda x: jaxpool.avg_pool(x.astype(jnp.int32), (2, 2)), TypeError, "floating-point input"),
    (lambda x: jaxpool.avg_pool(x, (2, 2), divisor=0), ValueError, "divisor must be a positive"),
    (lambda x: jaxpool.median_pool(x, (2, 2), even="upper"), ValueError, "even must be"),
    (lambda x: jaxpool.avg_max_pool(x, (2, 2), combine="mean"), ValueError, "combine must be"),
    (lambda x: jaxpool.global_avg_pool(x[0, 0]), ValueError, "spatial_ndim=N"),
    (lambda x: jaxpool.global_max_pool(x, spatial_ndim=0), ValueError, "spatial_ndim must be >= 1"),
    (lambda x: jaxpool.max_unpool(x, x, (5, 5)), TypeError, "indices must be an integer"),
    (
      lambda x: jaxpool.max_unpool(x, jnp.zeros((1, 2), jnp.int32), (5, 5)),
      ValueError,
      "indices must have the shape",
    ),
    (lambda x: jaxpool.max_pool(x.astype(bool), (2, 2)), TypeError, "floating-point or integer"),
  ],
)
def test_bad_operator_arguments_raise_clear_errors(call, error, message):
  with pytest.raises(error, match=re.escape(message)):
    call(jnp.ones((1, 5, 5, 2)))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
  nd=st.integers(1, 3),
  data=st.data(),
)
def test_random_geometry_matches_torch(nd, data):
  """Random sizes/windows/strides/padding/dilation/ceil mode: shapes and values."""
  size = data.draw(st.lists(st.integers(1, 9), min_size=nd, max_size=nd))
  k = data.draw(st.integers(1, 4))
  d = data.draw(st.integers(1, 2))
  s = data.draw(st.integers(1, 3))
  p = data.draw(st.integers(0, k // 2))
  ceil = data.draw(st.booleans())
  eff = (k - 1) * d + 1
  if any(n + 2 * p < eff for n in size):
    with pytest.raises(ValueError, match="larger than the padded input"):
      geometry.window_geometry((1, *size, 1), (k,) * nd, s, p, dilation=d, ceil_mode=ceil)
    return
  x = np.random.default_rng(0).integers(0, 4, (1, *size, 2)).astype(np.float32)
  targs = dict(kernel_size=k, stride=s, padding=p, dilation=d, ceil_mode=ceil)
  try:
    ref = from_torch(torch_op("max_pool", nd)(to_torch(x), **targs))
  except RuntimeError:  # torch rejects it (e.g. 3-D input smaller than the kernel)
    assume(False)
  jargs = dict(strides=s, padding=p, dilation=d, ceil_mode=ceil)
  y = jaxpool.max_pool(x, (k,) * nd, **jargs)
  assert y.shape == ref.shape
  np.testing.assert_array_equal(y, ref)
  if d == 1:
    cip = data.draw(st.booleans())
    targs.pop("dilation")
    if nd == 1:
      ref = F.avg_pool2d(
        to_torch(x)[:, :, None], (1, k), (1, s), (0, p), ceil_mode=ceil, count_include_pad=cip
      )[:, :, 0]
    else:
      try:
        ref = torch_op("avg_pool", nd)(to_torch(x), count_include_pad=cip, **targs)
      except RuntimeError:  # avg_pool3d rejects inputs smaller than the kernel
        return
    y = jaxpool.avg_pool(x, (k,) * nd, count_include_pad=cip, **jargs)
    np.testing.assert_allclose(y, from_torch(ref), rtol=1e-6)


@pytest.mark.parametrize(
  "args",
  [
    dict(window_shape=(3, 3), strides=2, padding=1, ceil_mode=True),
    dict(window_shape=(2, 3), strides=(1, 2), padding=[(1, 0), (0, 1)], dilation=(2, 1)),
    dict(window_shape=(2, 2)),
  ],
)
def test_tap_masks_count_the_real_cells_and_taps_cover_them(args):
  g = geometry.window_geometry((2, 7, 8, 3), **args)
  masks = g.tap_masks()
  assert len(masks) == g.window_size
  if g.is_unpadded:
    assert all(m is None for m in masks)
    counted = np.full(g.out_shape, g.window_size)
  else:
    counted = sum(np.broadcast_to(m, g.out_shape + (1,))[..., 0].astype(int) for m in masks)
  np.testing.assert_array_equal(counted, g.window_counts(include_pad=False))
  read = taps.window_taps(jnp.ones((2, 7, 8, 3)), g, fill=0.0)
  total = sum(np.asarray(t) for t in read)[0, ..., 0]
  np.testing.assert_array_equal(total, g.window_counts(include_pad=False))


def test_clipped_runs_group_interior_windows_and_clip_border_ones():
  geom = geometry.window_geometry((1, 64, 9, 1), (3, 3), 2, 1, ceil_mode=True)
  # Rows (out 33): the first window loses its padded row, 31 are interior,
  # the last ceil-mode window keeps one real row.
  assert geom.clipped_runs(0) == [(1, 0, 2), (31, 1, 3), (1, 63, 1)]
  # Columns, 9 wide: out 5; the last ceil-mode window hangs one cell over.
  assert geom.clipped_runs(1) == [(1, 0, 2), (3, 1, 3), (1, 7, 2)]
  dilated = geometry.window_geometry((1, 10, 1), (3,), 1, 2, dilation=2)
  assert dilated.clipped_runs(0) == [(1, 0, 2), (1, 1, 2), (6, 0, 3), (1, 6, 2), (1, 7, 2)]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(nd=st.integers(1, 3), data=st.data())
def test_scatter_to_input_is_the_transpose_of_reading_the_taps(nd, data):
  """The phase-layout scatter is the transpose of reading taps, any geometry."""
  size = data.draw(st.lists(st.integers(1, 8), min_size=nd, max_size=nd))
  k = data.draw(st.lists(st.integers(1, 4), min_size=nd, max_size=nd))
  d = data.draw(st.lists(st.integers(1, 2), min_size=nd, max_size=nd))
  s = data.draw(st.lists(st.integers(1, 4), min_size=nd, max_size=nd))
  p = [data.draw(st.integers(0, ((kk - 1) * dd + 1) // 2)) for kk, dd in zip(k, d)]
  ceil = data.draw(st.booleans())
  try:
    geom = geometry.window_geometry((2, *size, 3), k, s, p, dilation=d, ceil_mode=ceil)
  except ValueError:
    assume(False)
  g = jnp.asarray(np.random.default_rng(1).normal(size=(2, *geom.out_shape, 3)), jnp.float32)
  scale = 1 + jnp.asarray(np.random.default_rng(2).random((2, *geom.out_shape, 3)), jnp.float32)
  # A tap-dependent contribution of two operands: tap t sends (t + 1) * g * c,
  # with g padded once or inside the pass (drawn), c the other way.
  g_once = data.draw(st.booleans())
  got = scatter.scatter_to_input(
    lambda taps, v, c: jnp.where(taps >= 0, v * c * (taps + 1).astype(v.dtype), 0),
    geom,
    (g, scale),
    (0, 1),
    pad_once=(g_once, not g_once),
  )
  x = jnp.zeros((2, *size, 3), jnp.float32)
  want = 0
  for flat, tap in geom.offsets():
    read = lambda v, tap=tap: taps.window_slice(taps.pad_input(v, geom, 0.0), geom, tap)
    (unslice,) = jax.linear_transpose(read, x)(g * scale * (flat + 1))
    want = want + unslice
  assert got.shape == (2, *size, 3)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * float(jnp.abs(want).max()))


def test_phase_shifts_list_earliest_window_first():
  geom = geometry.window_geometry((1, 9, 1), (3,), 2)
  # Taps 0, 1, 2 sit at (shift, phase) (0, 0), (0, 1), (1, 0): block q gets
  # tap 2 of window q - 1 first, then taps 0 and 1 of window q.
  shifts = scatter.phase_shifts(geom)
  assert [sh for sh, _ in shifts] == [(1,), (0,)]
  np.testing.assert_array_equal(shifts[0][1], [2, -1])
  np.testing.assert_array_equal(shifts[1][1], [0, 1])


def test_dilated_window_entirely_on_padding_is_minus_inf_like_torch():
  x = np.arange(3.0, dtype=np.float32).reshape(1, 1, 3)  # one cell, 3 features
  y = jaxpool.max_pool(x, (2,), 1, 1, dilation=2)  # taps at -1 and +1: padding
  ref = from_torch(F.max_pool1d(to_torch(x), 2, 1, 1, dilation=2))
  np.testing.assert_array_equal(y, ref)
  assert np.all(np.isneginf(y))
  grad = jax.grad(lambda v: jaxpool.max_pool(v, (2,), 1, 1, dilation=2).sum())(x)
  np.testing.assert_array_equal(grad, 0.0)
  np.testing.assert_array_equal(jaxpool.avg_pool(x, (2,), 1, 1, dilation=2), 0.0)
