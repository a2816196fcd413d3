"""Position-sensitive RoIAlign and RoIPool (R-FCN) against float64 NumPy
transcriptions of torchvision's ``ps_roi_align_kernel.cpp`` and
``ps_roi_pool_kernel.cpp`` (tests/roi_reference.py; torchvision does not
import next to torch 2.13 here), forward and backward: adaptive and fixed
sampling, boxes inside, across the border, outside, tiny, empty and inverted,
several images, the channel mapping made visible; torchvision's quirks
(NaN for a bin without samples, the forward's bins ending at ``H - 1``);
jit bounds, check_grads, vmap, the mesh, errors and layers."""

import fractions

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from derivatives import check_grads
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

import jaxpool
from jaxpool import linen as jplinen
from jaxpool import nnx as jpnnx
from jaxpool._src.core.backend import forced_platform

from roi_reference import (
  ps_roi_align_grad_reference,
  ps_roi_align_reference,
  ps_roi_pool_grad_reference,
  ps_roi_pool_reference,
)

MAP = (3, 9, 11)  # (batch, H, W); the features are out_features * ph * pw
SCALE = 0.5  # the map covers x in [0, 22), y in [0, 18)

# (batch_index, x1, y1, x2, y2) in image coordinates.
BOXES = np.array(
  [
    [0, 0.0, 0.0, 22.0, 18.0],  # the whole map
    [1, 3.2, 4.7, 15.9, 12.3],  # inside, fractional corners
    [2, -6.0, -3.0, 8.0, 6.0],  # across the top left border
    [1, 14.0, 10.0, 30.0, 25.0],  # across the bottom right border
    [0, 12.0, 8.0, 22.0, 18.0],  # ends on the bottom right border
    [2, 7.4, 7.6, 7.9, 8.1],  # tiny
    [0, 10.0, 6.0, 12.0, 8.0],  # one cell of the map
    [1, 9.0, 5.0, 6.0, 3.0],  # inverted: x2 < x1 and y2 < y1
    [0, 5.0, 5.0, 5.0, 5.0],  # a point
    [2, 2.5, 1.5, 3.5, 6.5],  # corners on halves (C's round goes away from zero)
    [0, -30.0, -30.0, -24.0, -20.0],  # wholly outside
  ],
  np.float32,
)


def _normal(shape, seed=0):
  return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _map(output_shape, out_features=2, seed=0):
  return _normal((*MAP, out_features * output_shape[0] * output_shape[1]), seed)


def _vjp(fn, x, cotangent):
  y, pullback = jax.vjp(fn, jnp.asarray(x))
  return np.asarray(y), np.asarray(pullback(jnp.asarray(cotangent))[0])


# ---------------------------------------------------------------------------
# PSRoIAlign.

ALIGN_OPTIONS = [
  dict(sampling_ratio=2),
  dict(sampling_ratio=1),
  dict(sampling_ratio=3),
  dict(sampling_ratio=-1),
  dict(sampling_ratio=0),
]


@pytest.mark.parametrize("options", ALIGN_OPTIONS, ids=lambda o: f"s{o['sampling_ratio']}")
@pytest.mark.parametrize("output_shape", [(2, 2), (3, 2)])
def test_ps_roi_align_matches_torchvisions_kernel(options, output_shape):
  x = _map(output_shape)
  cot = _normal((len(BOXES), *output_shape, 2), seed=1)
  fn = lambda v: jaxpool.ps_roi_align(v, BOXES, output_shape, spatial_scale=SCALE, **options)
  y, grad = _vjp(fn, x, cot)
  ref = ps_roi_align_reference(x, BOXES, output_shape, SCALE, **options)
  # torchvision divides by grid_h * grid_w unclamped: a bin without adaptive
  # samples (the point, the inverted box's empty axis) is 0 / 0 there, 0 here.
  nan = np.isnan(ref)
  assert nan.any() == (options["sampling_ratio"] <= 0)
  np.testing.assert_array_equal(y[nan], 0.0)
  np.testing.assert_allclose(y[~nan], ref[~nan], rtol=1e-5, atol=1e-5)
  ref_grad = ps_roi_align_grad_reference(x.shape, BOXES, output_shape, cot, SCALE, **options)
  np.testing.assert_allclose(grad, ref_grad, rtol=1e-5, atol=1e-5)


def test_ps_roi_align_under_jit_bounds_the_adaptive_count_as_roi_align():
  output_shape = (3, 2)
  x = _map(output_shape)
  cot = _normal((len(BOXES), *output_shape, 2), seed=1)
  fn = lambda v, b, **o: jaxpool.ps_roi_align(v, b, output_shape, spatial_scale=SCALE, **o)
  # Fixed sampling needs no bound.
  y, grad = _vjp(jax.jit(lambda v: fn(v, BOXES, sampling_ratio=2)), x, cot)
  np.testing.assert_allclose(y, ps_roi_align_reference(x, BOXES, output_shape, SCALE, 2), atol=1e-5)
  np.testing.assert_allclose(
    grad,
    ps_roi_align_grad_reference(x.shape, BOXES, output_shape, cot, SCALE, 2),
    rtol=1e-5,
    atol=1e-5,
  )
  # Adaptive: ceil(9 / 3) = 3 and ceil(11 / 2) = 6 slots by default, which
  # the whole-map box reaches; the boxes across the border need more, and
  # a cap applies eagerly and under jit alike.
  big = BOXES[[2, 3]]
  exact = ps_roi_align_reference(x, big, output_shape, SCALE)
  capped = ps_roi_align_reference(x, big, output_shape, SCALE, max_sampling_ratio=2)
  assert not np.allclose(capped, exact)
  np.testing.assert_allclose(fn(x, big), exact, rtol=1e-5, atol=1e-5)
  for run in (fn, jax.jit(fn, static_argnames="max_sampling_ratio")):
    np.testing.assert_allclose(run(x, big, max_sampling_ratio=2), capped, rtol=1e-5, atol=1e-5)
  inside = BOXES[[0, 1, 5, 6, 9]]
  np.testing.assert_allclose(
    jax.jit(fn)(x, inside),
    ps_roi_align_reference(x, inside, output_shape, SCALE),
    rtol=1e-5,
    atol=1e-5,
  )


def test_ps_roi_align_with_one_bin_is_aligned_roi_align():
  x = _map((1, 1), out_features=3)
  for options in (dict(sampling_ratio=2), {}):
    np.testing.assert_allclose(
      jaxpool.ps_roi_align(x, BOXES, 1, spatial_scale=SCALE, **options),
      jaxpool.roi_align(x, BOXES, 1, spatial_scale=SCALE, aligned=True, **options),
      rtol=1e-6,
      atol=1e-6,
    )


def test_ps_roi_align_box_gradient_is_the_true_derivative(x64):
  x = jnp.asarray(_map((2, 3), out_features=1)[:1], jnp.float64)
  corners = jnp.array([[3.3, 2.2, 14.6, 12.9], [8.1, 1.3, 19.4, 7.7]], jnp.float64)

  def fn(c, options):
    boxes = jnp.concatenate([jnp.zeros((2, 1), jnp.float64), c], axis=1)
    return jaxpool.ps_roi_align(x, boxes, (2, 3), spatial_scale=SCALE, box_gradient=True, **options)

  for options in (dict(sampling_ratio=2), {}):
    check_grads(lambda c: fn(c, options), (corners,), order=1, modes=["fwd", "rev"], eps=1e-5)
  # Without box_gradient (the default, torchvision's) the boxes get none.
  no_grad = jax.grad(
    lambda c: jnp.sum(
      jaxpool.ps_roi_align(x, jnp.concatenate([jnp.zeros((2, 1), jnp.float64), c], axis=1), (2, 3))
      ** 2
    )
  )(corners)
  np.testing.assert_array_equal(no_grad, 0.0)


# ---------------------------------------------------------------------------
# PSRoIPool.


@pytest.mark.parametrize(
  "output_shape,jit", [((2, 2), False), ((3, 4), False), ((7, 7), False), ((3, 4), True)]
)
def test_ps_roi_pool_matches_torchvisions_forward(output_shape, jit):
  x = _map(output_shape)
  cot = _normal((len(BOXES), *output_shape, 2), seed=1)
  fn = lambda v: jaxpool.ps_roi_pool(v, BOXES, output_shape, spatial_scale=SCALE)
  y, grad = _vjp(jax.jit(fn) if jit else fn, x, cot)
  np.testing.assert_allclose(
    y, ps_roi_pool_reference(x, BOXES, output_shape, SCALE), rtol=1e-6, atol=1e-6
  )
  # The gradient is the derivative of that forward (the transpose of its
  # bins), not torchvision's backward, which clips the bins at H and W.
  transpose = ps_roi_pool_grad_reference(x.shape, BOXES, output_shape, cot, SCALE)
  np.testing.assert_allclose(grad, transpose, rtol=1e-6, atol=1e-6)


def test_ps_roi_pool_gradient_differs_from_torchvisions_only_at_the_last_row_and_column():
  output_shape = (2, 3)
  x = _map(output_shape)
  cot = _normal((len(BOXES), *output_shape, 2), seed=1)
  for rows, reaches_the_end in (([1, 2, 5, 6, 9, 10], False), ([0, 3, 4], True)):
    boxes = BOXES[rows]
    grad = np.asarray(
      jax.grad(
        lambda v: jnp.vdot(
          jaxpool.ps_roi_pool(v, boxes, output_shape, spatial_scale=SCALE), cot[rows]
        )
      )(jnp.asarray(x))
    )
    theirs = ps_roi_pool_grad_reference(
      x.shape, boxes, output_shape, cot[rows], SCALE, clip="torchvision"
    )
    np.testing.assert_array_equal(grad[:, -1], 0.0)  # the forward never reads the last row
    np.testing.assert_array_equal(grad[:, :, -1], 0.0)  # nor the last column
    assert np.allclose(grad, theirs, rtol=1e-6, atol=1e-6) != reaches_the_end


def test_ps_roi_pool_never_reads_the_last_row_and_column_as_torchvision():
  x = _normal((1, 1, 6, 4))
  boxes = np.array([[0, 0, 0, 6, 1]], np.float32)
  np.testing.assert_array_equal(jaxpool.ps_roi_pool(x, boxes, 2), 0.0)  # one row: empty bins
  np.testing.assert_array_equal(ps_roi_pool_reference(x, boxes, 2), 0.0)
  x = _normal((1, 5, 5, 1))
  y = jaxpool.ps_roi_pool(x, np.array([[0, 0, 0, 5, 5]], np.float32), 1)
  np.testing.assert_allclose(y[0, 0, 0, 0], x[0, :4, :4, 0].mean(), rtol=1e-6)


def test_ps_roi_pool_under_jit_sums_bins_past_the_bound_by_blocks():
  # Under jit the taps cover a bin of a box inside the map; the bins of a
  # box larger than the map are tiled by disjoint dyadic blocks of a table
  # of block sums (on CPU only when needed, on GPU and TPU always).
  x = _normal((2, 40, 37, 12))
  boxes = np.array(
    [
      [0, -100.0, -100.0, 200.0, 200.0],
      [1, -50.0, 3.0, 120.0, 36.0],
      [0, 1, 1, 38, 30],
      [1, 3, 3, 5, 4],
    ],
    np.float32,
  )
  cot = _normal((4, 2, 3, 2), seed=3)
  ref = ps_roi_pool_reference(x, boxes, (2, 3))
  ref_grad = ps_roi_pool_grad_reference(x.shape, boxes, (2, 3), cot)
  fn = lambda v, b: jaxpool.ps_roi_pool(v, b, (2, 3))
  for platform in (None, "cuda"):
    if platform is None:
      y, grad = _vjp(lambda v: jax.jit(fn)(v, boxes), x, cot)
    else:
      with forced_platform(platform):
        y, grad = _vjp(lambda v: jax.jit(fn)(v, boxes), x, cot)
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-5, atol=1e-5)
  # Boxes within the bound take the cell-by-cell branch: the same values.
  np.testing.assert_allclose(jax.jit(fn)(x, boxes[2:]), ref[2:], rtol=1e-5, atol=1e-5)


def test_ps_roi_pool_gradient_is_the_true_derivative(x64):
  x = jnp.asarray(_map((2, 3), out_features=1), jnp.float64)
  fn = lambda v: jaxpool.ps_roi_pool(v, BOXES, (2, 3), spatial_scale=SCALE)
  check_grads(fn, (x,), order=1, modes=["fwd", "rev"], eps=1e-4)


def test_ps_roi_pool_keeps_nan_and_inf_in_their_bins():
  x = _normal((1, 8, 8, 4))
  x[0, 1, 1, 0] = np.nan  # bin (0, 0)'s feature
  x[0, 5, 5, 3] = np.inf  # bin (1, 1)'s feature
  x[0, 1, 1, 1] = -np.inf  # bin (0, 1)'s feature, but a cell of bin (0, 0)
  boxes = np.array([[0, 0, 0, 8, 8]], np.float32)
  for fn in (jaxpool.ps_roi_pool, jax.jit(jaxpool.ps_roi_pool, static_argnums=2)):
    y = np.asarray(fn(x, boxes, 2))[0, ..., 0]
    assert np.isnan(y[0, 0]) and y[1, 1] == np.inf
    assert np.isfinite(y[[0, 1], [1, 0]]).all()


# ---------------------------------------------------------------------------
# Both operators.

OPS = {
  "ps_roi_align": lambda x, b, s, **o: jaxpool.ps_roi_align(x, b, s, sampling_ratio=2, **o),
  "ps_roi_align_adaptive": jaxpool.ps_roi_align,
  "ps_roi_pool": jaxpool.ps_roi_pool,
}


@pytest.mark.parametrize("name", sorted(OPS))
def test_each_bin_reads_its_own_feature(name):
  # Input feature i holds i + 1 everywhere: each output names the input
  # feature it read, torchvision's (c * ph + p) * pw + q.
  ph, pw, out_features = 2, 3, 4
  x = np.broadcast_to(np.arange(1.0, ph * pw * out_features + 1, dtype=np.float32), (2, 9, 11, 24))
  boxes = np.array([[0, 1.0, 1.0, 9.0, 8.0], [1, 2.0, 0.0, 10.0, 7.0]], np.float32)
  y = np.asarray(OPS[name](x, boxes, (ph, pw)))
  c, p, q = np.arange(out_features), np.arange(ph)[:, None, None], np.arange(pw)[:, None]
  expected = (c * ph + p) * pw + q + 1.0  # (ph, pw, out_features)
  np.testing.assert_allclose(y, np.broadcast_to(expected, y.shape), rtol=1e-6)


@pytest.mark.parametrize("name", sorted(OPS))
def test_vmap_over_maps_and_boxes(name):
  xs = jnp.asarray(_normal((3, *MAP, 6)))
  boxes = jnp.stack([jnp.asarray(BOXES)] * 3).at[:, :, 1].add(jnp.arange(3.0)[:, None])
  fn = lambda v, b: OPS[name](v, b, (2, 3), spatial_scale=SCALE)
  mapped = jax.jit(jax.vmap(fn))(xs, boxes)
  np.testing.assert_allclose(
    mapped, jnp.stack([fn(xs[i], boxes[i]) for i in range(3)]), rtol=1e-6, atol=1e-6
  )


@pytest.mark.skipif(jax.device_count() < 8, reason="needs 8 devices (tests/conftest.py)")
@pytest.mark.parametrize("name", ["ps_roi_align", "ps_roi_pool"])
def test_batch_sharded_maps_with_replicated_boxes(name):
  mesh = jax.make_mesh((8,), ("data",))
  x = jnp.asarray(_normal((8, 9, 11, 12)))
  boxes = np.concatenate([BOXES, BOXES + np.array([5, 1, 0, 1, 0], np.float32)])
  fn = lambda v, b: jnp.sum(OPS[name](v, b, (3, 2), spatial_scale=SCALE) ** 2)
  expected_value, expected_grad = jax.value_and_grad(fn)(x, boxes)
  sharded = jax.device_put(x, NamedSharding(mesh, P("data")))
  replicated = jax.device_put(boxes, NamedSharding(mesh, P()))
  with jax.set_mesh(mesh):
    value, grad = jax.jit(jax.value_and_grad(fn))(sharded, replicated)
  assert grad.sharding.is_equivalent_to(sharded.sharding, 4)
  np.testing.assert_allclose(value, expected_value, rtol=1e-5)
  np.testing.assert_allclose(grad, expected_grad, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["ps_roi_align", "ps_roi_pool"])
def test_errors_name_the_problem(name):
  op = getattr(jaxpool, name)
  x = jnp.zeros((2, 5, 5, 8))
  with pytest.raises(ValueError, match=rf"{name}: x has 8 features, not a multiple of ph \* pw"):
    op(x, jnp.zeros((1, 5)), (2, 3))
  with pytest.raises(ValueError, match=r"shape \(K, 5\)"):
    op(x, jnp.zeros((3, 4)), 2)
  with pytest.raises(ValueError, match=r"batch indices must be integers in \[0, 2\)"):
    op(x, jnp.array([[2.0, 0, 0, 1, 1]]), 2)
  with pytest.raises(ValueError, match="output_shape entries must be >= 1"):
    op(x, jnp.zeros((1, 5)), (0, 2))
  with pytest.raises(ValueError, match=r"\(batch, H, W, features\)"):
    op(jnp.zeros((5, 5, 4)), jnp.zeros((1, 5)), 2)
  with pytest.raises(ValueError, match="spatial_scale"):
    op(x, jnp.zeros((1, 5)), 2, spatial_scale=0.0)
  with pytest.raises(TypeError, match="floating-point"):
    op(jnp.zeros((1, 5, 5, 4), jnp.int32), jnp.zeros((1, 5)), 2)
  # Under jit a batch index cannot be inspected: it is clamped, as documented.
  y = jax.jit(lambda b: op(x.at[1].set(1.0), b, 2))(jnp.array([[7.0, 1, 1, 4, 4]]))
  np.testing.assert_allclose(y, 1.0)


def test_ps_roi_align_argument_errors():
  x, boxes = jnp.zeros((1, 5, 5, 4)), jnp.zeros((1, 5))
  with pytest.raises(TypeError, match="sampling_ratio must be an int"):
    jaxpool.ps_roi_align(x, boxes, 2, sampling_ratio=2.0)
  with pytest.raises(ValueError, match="max_sampling_ratio"):
    jaxpool.ps_roi_align(x, boxes, 2, max_sampling_ratio=0)
  with pytest.raises(TypeError, match="box_gradient must be a bool"):
    jaxpool.ps_roi_align(x, boxes, 2, box_gradient=1)
  with pytest.raises(TypeError, match="unexpected keyword argument 'aligned'"):
    jaxpool.ps_roi_align(x, boxes, 2, aligned=False)  # always aligned


@pytest.mark.parametrize("name", ["ps_roi_align", "ps_roi_pool"])
def test_non_finite_boxes_raise_when_concrete_and_give_nan_in_their_own_outputs(name):
  x = jax.random.normal(jax.random.key(0), (2, 16, 16, 8))
  fn = lambda b: getattr(jaxpool, name)(x, b, (2, 2))
  for bad in (np.nan, np.inf):
    boxes = jnp.array([[0, 1.0, 1.0, 8.0, 8.0], [1, 2.0, 3.0, bad, 9.0], [1, 0.0, 0.0, 5.0, 5.0]])
    with pytest.raises(ValueError, match=f"{name}: boxes must hold finite numbers; row 1"):
      fn(boxes)
    traced = np.asarray(jax.jit(fn)(boxes))
    assert np.isnan(traced[1]).all()
    np.testing.assert_allclose(traced[[0, 2]], fn(boxes[jnp.array([0, 2])]), rtol=1e-6)


@pytest.mark.parametrize("name", ["ps_roi_align", "ps_roi_pool"])
def test_no_boxes_give_an_empty_output(name):
  fn = lambda b: getattr(jaxpool, name)(jnp.ones((2, 16, 16, 12)), b, (2, 3))
  assert fn(jnp.zeros((0, 5))).shape == (0, 2, 3, 2)
  assert jax.jit(fn)(jnp.zeros((0, 5))).shape == (0, 2, 3, 2)


def test_layers_equal_the_functions():
  x = jnp.asarray(_normal((*MAP, 12)))
  calls = [
    (
      "PSRoIPool",
      ((2, 3),),
      dict(spatial_scale=SCALE),
      jaxpool.ps_roi_pool(x, BOXES, (2, 3), spatial_scale=SCALE),
    ),
    (
      "PSRoIAlign",
      ((3, 2),),
      dict(spatial_scale=SCALE, sampling_ratio=2),
      jaxpool.ps_roi_align(x, BOXES, (3, 2), spatial_scale=SCALE, sampling_ratio=2),
    ),
  ]
  for name, args, kwargs, expected in calls:
    nnx_layer = getattr(jpnnx, name)(*args, **kwargs)
    np.testing.assert_array_equal(nnx_layer(x, BOXES), expected)
    linen_layer = getattr(jplinen, name)(*args, **kwargs)
    np.testing.assert_array_equal(linen_layer.apply({}, x, BOXES), expected)
    # Each of the 6 bins reads its own slice of the features: 12 in, 2 out.
    for layer in (nnx_layer, linen_layer):
      assert layer.feature_multiplier == fractions.Fraction(1, 6)
      assert x.shape[-1] * layer.feature_multiplier == expected.shape[-1]
