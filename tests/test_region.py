"""Region pooling against float64 NumPy transcriptions of torchvision's
kernels (tests/roi_reference.py; torchvision does not import next to torch
2.13 here) and against a torch-ops RoIAlign built on ``grid_sample``: values
and gradients, ``aligned`` both ways, fixed and adaptive sampling, boxes
partly outside the map, tiny and empty boxes, ties; the pyramid level rule;
jit, vmap, the 8-device mesh; errors and layers."""

import importlib
import pathlib
import sys

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
from jaxpool._src.region import pyramid_levels

from roi_reference import (
  roi_align_grad_reference,
  roi_align_reference,
  roi_pool_grad_reference,
  roi_pool_reference,
)

SHAPE = (2, 9, 11, 3)  # (batch, H, W, features)

# (batch_index, x1, y1, x2, y2) in image coordinates; with spatial_scale 0.5
# the map covers x in [0, 22), y in [0, 18).
BOXES = np.array(
  [
    [0, 0.0, 0.0, 21.0, 17.0],  # the whole map
    [1, 3.2, 4.7, 15.9, 12.3],  # inside, fractional corners
    [0, -6.0, -3.0, 8.0, 6.0],  # partly outside (top left)
    [1, 14.0, 10.0, 30.0, 25.0],  # partly outside (bottom right)
    [0, 7.4, 7.6, 7.9, 8.1],  # tiny
    [1, 9.0, 5.0, 6.0, 3.0],  # empty: x2 < x1 and y2 < y1
    [0, 5.0, 5.0, 5.0, 5.0],  # a point
    [1, 2.5, 1.5, 3.5, 6.5],  # corners on halves (C's round goes away from zero)
    [0, -30.0, -30.0, -24.0, -20.0],  # wholly outside
  ],
  np.float32,
)
SCALE = 0.5


def _normal(shape, seed=0):
  return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _ties(shape, seed=0):
  return np.random.default_rng(seed).integers(0, 3, shape).astype(np.float32)


def _vjp(fn, x, cotangent):
  y, pullback = jax.vjp(fn, jnp.asarray(x))
  return np.asarray(y), np.asarray(pullback(jnp.asarray(cotangent))[0])


# ---------------------------------------------------------------------------
# RoIPool.


@pytest.mark.parametrize(
  "kind,output_shape,jit",
  [
    ("normal", (2, 2), False),
    ("ties", (3, 4), False),
    ("normal", (7, 7), False),
    ("ties", (2, 2), True),
    ("normal", (3, 4), True),
    ("ties", (7, 7), True),
  ],
)
def test_roi_pool_matches_torchvisions_rules(kind, output_shape, jit):
  x = (_normal if kind == "normal" else _ties)(SHAPE)
  cot = _normal((len(BOXES), *output_shape, SHAPE[-1]), seed=1)
  fn = lambda v: jaxpool.roi_pool(v, BOXES, output_shape, spatial_scale=SCALE)
  y, grad = _vjp(jax.jit(fn) if jit else fn, x, cot)
  ref, _ = roi_pool_reference(x, BOXES, output_shape, SCALE)
  np.testing.assert_array_equal(y, ref.astype(np.float32))
  ref_grad = roi_pool_grad_reference(x.shape, BOXES, output_shape, cot, SCALE, x=x)
  np.testing.assert_allclose(grad, ref_grad, rtol=1e-6, atol=1e-6)


def test_roi_pool_keeps_integer_maps_and_big_bins_under_jit():
  # Under jit the table is sized for boxes inside the map; a bin as large as
  # the map is covered by more blocks, not truncated.
  x = np.random.default_rng(2).integers(-50, 50, (1, 40, 37, 2)).astype(np.int32)
  boxes = np.array(
    [[0, -100.0, -100.0, 200.0, 200.0], [0, 1, 1, 38, 30], [0, 3, 3, 5, 4]], np.float32
  )
  y = jax.jit(lambda v: jaxpool.roi_pool(v, boxes, (2, 3)))(x)
  assert y.dtype == jnp.int32
  np.testing.assert_array_equal(y, roi_pool_reference(x, boxes, (2, 3))[0])
  np.testing.assert_array_equal(jaxpool.roi_pool(x, boxes, (2, 3)), y)
  # The same bins over ties (the table's blocks overlap): the lowest index wins.
  ties = (x % 3).astype(np.float32)
  cot = _normal((3, 2, 3, 2), seed=4)
  value, grad = _vjp(jax.jit(lambda v: jaxpool.roi_pool(v, boxes, (2, 3))), ties, cot)
  np.testing.assert_array_equal(value, roi_pool_reference(ties, boxes, (2, 3))[0])
  np.testing.assert_array_equal(
    grad, roi_pool_grad_reference(ties.shape, boxes, (2, 3), cot, x=ties)
  )


def test_roi_pool_traced_boxes_match_torchvisions_rules():
  # Boxes passed to jit: the bins' sizes are known only at run time. On CPU
  # the scan takes as many steps as the largest bin has cells (smaller bins
  # re-read their last cell), under the static bound; ties go to the lowest
  # row-major index.
  rng = np.random.default_rng(5)
  x = _ties((2, 12, 14, 8), seed=5)
  centre, half = rng.uniform(0, 28, (60, 2)), rng.uniform(0, 9, (60, 2))
  boxes = np.concatenate([rng.integers(0, 2, (60, 1)), centre - half, centre + half], 1)
  boxes = boxes.astype(np.float32)
  cot = _normal((60, 5, 4, 8), seed=6)
  fn = jax.jit(lambda v, b: jaxpool.roi_pool(v, b, (5, 4), spatial_scale=0.5))
  y, grad = _vjp(lambda v: fn(v, boxes), x, cot)
  np.testing.assert_array_equal(y, roi_pool_reference(x, boxes, (5, 4), 0.5)[0])
  ref_grad = roi_pool_grad_reference(x.shape, boxes, (5, 4), cot, 0.5, x=x)
  np.testing.assert_allclose(grad, ref_grad, rtol=1e-6, atol=1e-6)


def test_roi_pool_propagates_nan_in_its_bin_only():
  x = _normal((1, 8, 8, 1))
  x[0, 1, 1, 0] = np.nan
  boxes = np.array([[0, 0, 0, 7, 7]], np.float32)
  y = np.asarray(jaxpool.roi_pool(x, boxes, 2))[0, ..., 0]
  assert np.isnan(y[0, 0]) and np.isfinite(y[[0, 1, 1], [1, 0, 1]]).all()


# ---------------------------------------------------------------------------
# RoIAlign.

ALIGN_OPTIONS = [
  dict(sampling_ratio=2, aligned=False),
  dict(sampling_ratio=2, aligned=True),
  dict(sampling_ratio=1, aligned=False),
  dict(sampling_ratio=3, aligned=True),
  dict(sampling_ratio=-1, aligned=False),
  dict(sampling_ratio=0, aligned=True),
]


@pytest.mark.parametrize(
  "options",
  ALIGN_OPTIONS,
  ids=lambda o: f"s{o['sampling_ratio']}-{'aligned' if o['aligned'] else 'legacy'}",
)
@pytest.mark.parametrize("output_shape", [(2, 2), (3, 5)])
def test_roi_align_matches_torchvisions_rules(options, output_shape):
  x = _normal(SHAPE)
  cot = _normal((len(BOXES), *output_shape, SHAPE[-1]), seed=1)
  y, grad = _vjp(
    lambda v: jaxpool.roi_align(v, BOXES, output_shape, spatial_scale=SCALE, **options), x, cot
  )
  ref = roi_align_reference(x, BOXES, output_shape, SCALE, **options)
  np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)
  ref_grad = roi_align_grad_reference(x.shape, BOXES, output_shape, cot, SCALE, **options)
  np.testing.assert_allclose(grad, ref_grad, rtol=1e-5, atol=1e-5)


def test_adaptive_sampling_under_jit_uses_a_static_bound_and_masks():
  x = _normal(SHAPE)
  inside = BOXES[[0, 1, 4, 5, 6, 7]]  # boxes within the map need at most the default bound
  fn = lambda v, b, **o: jaxpool.roi_align(v, b, (2, 3), spatial_scale=SCALE, **o)
  ref = roi_align_reference(x, inside, (2, 3), SCALE)
  np.testing.assert_allclose(jax.jit(fn)(x, inside), ref, rtol=1e-5, atol=1e-5)
  # A box larger than the map needs more samples than the default bound
  # (ceil(9 / 3) = ceil(11 / 4) = 3 per axis): eager is exact, jit caps the
  # count; an explicit cap gives the same in both.
  big = np.array([[0, -40.0, -40.0, 60.0, 60.0]], np.float32)
  fn = lambda v, b, **o: jaxpool.roi_align(v, b, (3, 4), spatial_scale=SCALE, **o)
  exact = roi_align_reference(x, big, (3, 4), SCALE)
  np.testing.assert_allclose(fn(x, big), exact, rtol=1e-5, atol=1e-6)
  capped = roi_align_reference(x, big, (3, 4), SCALE, max_sampling_ratio=3)
  assert not np.allclose(capped, exact)
  np.testing.assert_allclose(jax.jit(fn)(x, big), capped, rtol=1e-5, atol=1e-6)
  for run in (fn, jax.jit(fn, static_argnames="max_sampling_ratio")):
    np.testing.assert_allclose(
      run(x, big, max_sampling_ratio=2),
      roi_align_reference(x, big, (3, 4), SCALE, max_sampling_ratio=2),
      rtol=1e-5,
      atol=1e-6,
    )


def test_roi_align_equals_torch_grid_sample_construction():
  torch = pytest.importorskip("torch")
  x = _normal((2, 12, 15, 4))
  boxes = np.array(
    [[0, 1.0, 2.0, 20.0, 18.0], [1, -3.0, 5.0, 9.0, 30.0], [1, 4.0, 4.0, 4.5, 5.0]], np.float32
  )
  for aligned in (False, True):
    ref = _torch_roi_align(torch, x, boxes, (4, 3), SCALE, 2, aligned)
    y = jaxpool.roi_align(x, boxes, (4, 3), spatial_scale=SCALE, sampling_ratio=2, aligned=aligned)
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)


def _torch_roi_align(torch, x, boxes, output_shape, scale, sampling, aligned):
  """RoIAlign from torch ops: ``grid_sample`` at clamped positions, samples
  outside ``[-1, H] x [-1, W]`` zeroed, averaged per bin (the benchmark's
  torch baseline, checked here)."""
  out = _benchmarks().torch_roi_align(
    torch.tensor(x).permute(0, 3, 1, 2), torch.tensor(boxes), output_shape, scale, sampling, aligned
  )
  return out.permute(0, 2, 3, 1).numpy()


def _benchmarks():
  """benchmarks/suites/region.py, whose torch and JAX baselines this file
  checks (it imports the benchmark harness beside it)."""
  root = pathlib.Path(__file__).resolve().parents[1] / "benchmarks"
  if str(root) not in sys.path:
    sys.path.insert(0, str(root))
  return importlib.import_module("suites.region")


def test_naive_jax_baseline_equals_roi_align():
  x = _normal((2, 12, 15, 4))
  boxes = np.array([[0, 1.0, 2.0, 20.0, 18.0], [1, -3.0, 5.0, 9.0, 30.0]], np.float32)
  ref = roi_align_reference(x, boxes, (4, 3), SCALE, sampling_ratio=2)
  np.testing.assert_allclose(
    _benchmarks().naive_roi_align(jnp.asarray(x), jnp.asarray(boxes), (4, 3), SCALE, 2),
    ref,
    rtol=1e-5,
    atol=1e-5,
  )


def test_box_gradient_is_the_true_derivative(x64):
  x = jnp.asarray(_normal((1, 9, 11, 2)), jnp.float64)
  corners = jnp.array([[3.3, 2.2, 14.6, 12.9], [8.1, 1.3, 19.4, 7.7]], jnp.float64)

  def fn(c, options):
    boxes = jnp.concatenate([jnp.zeros((2, 1), jnp.float64), c], axis=1)
    return jaxpool.roi_align(x, boxes, (2, 3), spatial_scale=SCALE, box_gradient=True, **options)

  for options in (dict(sampling_ratio=2), dict(sampling_ratio=2, aligned=True), {}):
    check_grads(
      jax.jit(lambda c: fn(c, options)), (corners,), order=1, modes=["fwd", "rev"], eps=1e-5
    )
  # Without box_gradient (the default, torchvision's) the boxes get none.
  no_grad = jax.grad(
    lambda c: jnp.sum(
      jaxpool.roi_align(x, jnp.concatenate([jnp.zeros((2, 1), jnp.float64), c], axis=1), 2)
    )
  )(corners)
  np.testing.assert_array_equal(no_grad, 0.0)


def test_an_inf_outside_every_sample_does_not_leak():
  # Samples outside the map and unused adaptive slots read clamped cells
  # with weight 0: they must not turn 0 * inf into NaN. No valid sample of
  # these boxes reaches the two corners.
  x = _normal((1, 8, 8, 1))
  x[0, 0, 0, 0] = np.inf
  x[0, 7, 7, 0] = -np.inf
  boxes = np.array(
    [
      [0, 1.5, 1.5, 4.0, 4.0],  # inside
      [0, -10.0, -10.0, -2.0, -2.0],  # outside: every sample clamps to (0, 0)
      [0, 2.0, 2.0, 5.0, 5.0],
    ],  # unused adaptive slots run past (7, 7)
    np.float32,
  )
  for options in (
    dict(sampling_ratio=2),
    dict(sampling_ratio=-1, max_sampling_ratio=8),
    dict(aligned=True),
  ):
    y = np.asarray(jaxpool.roi_align(x, boxes, 2, **options))
    assert np.isfinite(y).all(), options
    np.testing.assert_array_equal(y[1], 0.0)


# ---------------------------------------------------------------------------
# Multi-scale RoIAlign.


def _pyramid(levels=3, seed=0):
  return [jnp.asarray(_normal((2, 32 >> l, 40 >> l, 3), seed=seed + l)) for l in range(levels)]


def test_pyramid_levels_follow_torchvisions_level_mapper():
  boxes = np.array(
    [
      [0, 0, 0, 10, 10],
      [0, 0, 0, 112, 112],
      [0, 0, 0, 224, 224],
      [0, 0, 0, 223, 224],
      [0, 0, 0, 448, 448],
      [0, 0, 0, 2000, 2000],
      [0, 5, 5, 5, 5],
    ],
    np.float32,
  )
  side = np.sqrt((boxes[:, 3] - boxes[:, 1]) * (boxes[:, 4] - boxes[:, 2]))
  with np.errstate(divide="ignore"):
    expected = np.clip(np.floor(4 + np.log2(side / 224) + 1e-6), 2, 5) - 2
  np.testing.assert_array_equal(pyramid_levels(boxes, 4, 2), expected)
  np.testing.assert_array_equal(expected, [0, 1, 2, 1, 3, 3, 0])


@pytest.mark.parametrize("options", [dict(sampling_ratio=2), dict(aligned=True, sampling_ratio=-1)])
def test_multi_scale_roi_align_reads_each_box_from_its_level(options):
  pyramid = _pyramid()  # strides 4, 8, 16 of a 128 x 160 image
  boxes = np.array(
    [[0, 3, 4, 40, 30], [1, 10, 20, 120, 150], [0, 20, 30, 60, 70], [1, 60, 60, 70, 90]], np.float32
  )
  levels = pyramid_levels(boxes, 3, 2, canonical_scale=64)
  assert len(set(np.asarray(levels).tolist())) == 3  # every level used
  cot = _normal((4, 3, 3, 3), seed=9)
  fn = lambda p: jaxpool.multi_scale_roi_align(
    p, boxes, 3, image_shape=(128, 160), canonical_scale=64, **options
  )
  y, pullback = jax.vjp(jax.jit(fn), pyramid)
  grads = pullback(jnp.asarray(cot))[0]
  expected_grads = [np.zeros(p.shape) for p in pyramid]
  for k, level in enumerate(np.asarray(levels)):
    scale = 1 / 4 / 2**level
    ref = roi_align_reference(
      np.asarray(pyramid[level]), boxes[k : k + 1], (3, 3), scale, **options
    )
    np.testing.assert_allclose(y[k : k + 1], ref, rtol=1e-5, atol=1e-5)
    expected_grads[level] += roi_align_grad_reference(
      pyramid[level].shape, boxes[k : k + 1], (3, 3), cot[k : k + 1], scale, **options
    )
  for grad, expected in zip(grads, expected_grads):
    np.testing.assert_allclose(grad, expected, rtol=1e-5, atol=1e-5)


def test_multi_scale_roi_align_errors():
  pyramid = _pyramid(2)
  boxes = np.array([[0, 0, 0, 5, 5]], np.float32)
  with pytest.raises(TypeError, match="sequence of feature maps"):
    jaxpool.multi_scale_roi_align(pyramid[0], boxes, 2, image_shape=(128, 160))
  with pytest.raises(ValueError, match="different scales"):
    jaxpool.multi_scale_roi_align(pyramid, boxes, 2, image_shape=(128, 40))
  with pytest.raises(ValueError, match="halve"):
    jaxpool.multi_scale_roi_align([pyramid[0], pyramid[0]], boxes, 2, image_shape=(128, 160))
  with pytest.raises(ValueError, match="same batch, features"):
    jaxpool.multi_scale_roi_align(
      [pyramid[0], pyramid[1][..., :2]], boxes, 2, image_shape=(128, 160)
    )


# ---------------------------------------------------------------------------
# Transformations, errors, layers.


def test_vmap_over_maps_and_boxes():
  xs = jnp.asarray(_normal((3, *SHAPE)))
  boxes = jnp.stack([jnp.asarray(BOXES)] * 3).at[:, :, 1].add(jnp.arange(3.0)[:, None])
  for fn in (
    lambda v, b: jaxpool.roi_align(v, b, 2, spatial_scale=SCALE, sampling_ratio=2),
    lambda v, b: jaxpool.roi_pool(v, b, 2, spatial_scale=SCALE),
  ):
    mapped = jax.jit(jax.vmap(fn))(xs, boxes)
    np.testing.assert_allclose(
      mapped, jnp.stack([fn(xs[i], boxes[i]) for i in range(3)]), rtol=1e-6, atol=1e-6
    )


@pytest.mark.skipif(jax.device_count() < 8, reason="needs 8 devices (tests/conftest.py)")
@pytest.mark.parametrize("op", ["roi_pool", "roi_align"])
def test_batch_sharded_maps_with_replicated_boxes(op):
  mesh = jax.make_mesh((8,), ("data",))
  x = jnp.asarray(_normal((8, 9, 11, 4)))
  boxes = np.concatenate([BOXES, BOXES + np.array([6, 1, 0, 1, 0], np.float32)])
  fn = lambda v, b: jnp.sum(getattr(jaxpool, op)(v, b, (3, 2), spatial_scale=SCALE) ** 2)
  expected_value, expected_grad = jax.value_and_grad(fn)(x, boxes)
  sharded = jax.device_put(x, NamedSharding(mesh, P("data")))
  replicated = jax.device_put(boxes, NamedSharding(mesh, P()))
  with jax.set_mesh(mesh):
    value, grad = jax.jit(jax.value_and_grad(fn))(sharded, replicated)
  assert grad.sharding.is_equivalent_to(sharded.sharding, 4)
  np.testing.assert_allclose(value, expected_value, rtol=1e-5)
  np.testing.assert_allclose(grad, expected_grad, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("op", [jaxpool.roi_pool, jaxpool.roi_align])
def test_errors_name_the_problem(op):
  x = jnp.zeros((2, 5, 5, 1))
  with pytest.raises(ValueError, match=r"shape \(K, 5\)"):
    op(x, jnp.zeros((3, 4)), 2)
  with pytest.raises(ValueError, match=r"batch indices must be integers in \[0, 2\)"):
    op(x, jnp.array([[2.0, 0, 0, 1, 1]]), 2)
  with pytest.raises(ValueError, match=r"batch indices"):
    op(x, jnp.array([[0.5, 0, 0, 1, 1]]), 2)
  with pytest.raises(ValueError, match="output_shape entries must be >= 1"):
    op(x, jnp.zeros((1, 5)), (0, 2))
  with pytest.raises(ValueError, match=r"\(batch, H, W, features\)"):
    op(jnp.zeros((5, 5, 1)), jnp.zeros((1, 5)), 2)
  with pytest.raises(ValueError, match="spatial_scale"):
    op(x, jnp.zeros((1, 5)), 2, spatial_scale=0.0)
  # Under jit a batch index cannot be inspected: it is clamped, as documented.
  y = jax.jit(lambda b: op(x.at[1].set(1.0), b, 2))(jnp.array([[7.0, 0, 0, 3, 3]]))
  np.testing.assert_array_equal(y, 1.0)


def test_roi_align_argument_errors():
  x, boxes = jnp.zeros((1, 5, 5, 1)), jnp.zeros((1, 5))
  with pytest.raises(TypeError, match="floating-point"):
    jaxpool.roi_align(jnp.zeros((1, 5, 5, 1), jnp.int32), boxes, 2)
  with pytest.raises(TypeError, match="sampling_ratio must be an int"):
    jaxpool.roi_align(x, boxes, 2, sampling_ratio=2.0)
  with pytest.raises(ValueError, match="max_sampling_ratio"):
    jaxpool.roi_align(x, boxes, 2, max_sampling_ratio=0)
  with pytest.raises(TypeError, match="aligned must be a bool"):
    jaxpool.roi_align(x, boxes, 2, aligned="yes")


def test_layers_equal_the_functions():
  x = jnp.asarray(_normal(SHAPE))
  pyramid = _pyramid()
  calls = [
    (
      "RoIPool",
      (3,),
      dict(spatial_scale=SCALE),
      x,
      jaxpool.roi_pool(x, BOXES, 3, spatial_scale=SCALE),
    ),
    (
      "RoIAlign",
      ((2, 3),),
      dict(spatial_scale=SCALE, sampling_ratio=2, aligned=True),
      x,
      jaxpool.roi_align(x, BOXES, (2, 3), spatial_scale=SCALE, sampling_ratio=2, aligned=True),
    ),
    (
      "MultiScaleRoIAlign",
      (2,),
      dict(image_shape=(128, 160), sampling_ratio=2),
      pyramid,
      jaxpool.multi_scale_roi_align(pyramid, BOXES, 2, image_shape=(128, 160), sampling_ratio=2),
    ),
  ]
  for name, args, kwargs, inputs, expected in calls:
    nnx_layer = getattr(jpnnx, name)(*args, **kwargs)
    np.testing.assert_array_equal(nnx_layer(inputs, BOXES), expected)
    linen_layer = getattr(jplinen, name)(*args, **kwargs)
    np.testing.assert_array_equal(linen_layer.apply({}, inputs, BOXES), expected)


def test_bin_division_is_ieee_under_jit():
  # XLA rewrites a division by a broadcast value into a multiplication by
  # its reciprocal (one ulp off, thousands of sizes below 4096 at 7 bins),
  # which moves a floor/ceil of an exact quotient by a whole cell.
  from jaxpool._src.core.boxes import divide as _divide  # noqa: PLC0415

  sizes = np.arange(1, 4097, dtype=np.float32)
  for bins in (3, 7, 14):
    np.testing.assert_array_equal(
      jax.jit(lambda s, b=bins: _divide(s, b))(sizes), sizes / np.float32(bins)
    )


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_bin_division_is_ieee_from_a_quotient_two_ulp_off(dtype, x64):
  # XLA:GPU divides float32 to within 2 ulp (5 / 3 gave 1.6666667461 on an
  # H200): the rounding starts from any quotient that close.
  from jaxpool._src.core.boxes import correctly_rounded  # noqa: PLC0415

  rng = np.random.default_rng(0)
  a = np.concatenate(
    [np.arange(-50, 4097), rng.standard_normal(2000) * 1e3, rng.random(2000) * 1e7]
  ).astype(dtype)
  for n in (1, 3, 7, 14, 255, 4000):
    exact = a / np.asarray(n, dtype)
    for ulps in (-2, -1, 1, 2):
      off = exact
      for _ in range(abs(ulps)):
        off = np.nextafter(off, np.asarray(np.inf if ulps > 0 else -np.inf, dtype))
      got = jax.jit(lambda v, q, n=n: correctly_rounded(v, n, q))(a, off)
      np.testing.assert_array_equal(got, exact, err_msg=f"n={n}, {ulps} ulp")
  special = np.array([np.inf, -np.inf, np.nan, 0.0], dtype)
  np.testing.assert_array_equal(correctly_rounded(special, 7, special / 7), special / 7)


def test_bin_division_stays_ieee_under_vmap_of_the_boxes():
  # Under vmap an unbatched divisor was broadcast along the batch after the
  # barrier, and the division became a multiplication again: 7 cells in 3
  # bins ended at ceil(3 * 7 * fl(1 / 3)) = 8.
  x = _normal((1, 9, 11, 1))
  boxes = np.array([[[0, 0, 0, 6, 6]], [[0, 1, 1, 7, 7]]], np.float32)
  mapped = jax.jit(jax.vmap(lambda b: jaxpool.roi_pool(x, b, 3)))(boxes)
  for k in range(2):
    np.testing.assert_array_equal(mapped[k], roi_pool_reference(x, boxes[k], 3)[0])


def _region_ops(x):
  return {
    "roi_pool": lambda b: jaxpool.roi_pool(x, b, 2),
    "roi_align": lambda b: jaxpool.roi_align(x, b, 2),
    "multi_scale_roi_align": lambda b: jaxpool.multi_scale_roi_align(
      [x, x[:, ::2, ::2]], b, 2, image_shape=(16, 16)
    ),
  }


@pytest.mark.parametrize("name", ["roi_pool", "roi_align", "multi_scale_roi_align"])
def test_non_finite_boxes_raise_when_concrete_and_give_nan_in_their_own_outputs(name):
  # Issue 24: a NaN coordinate used to give all-zero outputs, an inf one
  # partial values (roi_pool) or an OverflowError (roi_align).
  x = jax.random.normal(jax.random.key(0), (2, 16, 16, 3))
  fn = _region_ops(x)[name]
  for bad in (np.nan, np.inf):
    boxes = jnp.array([[0, 1.0, 1.0, 8.0, 8.0], [1, 2.0, 3.0, bad, 9.0], [1, 0.0, 0.0, 5.0, 5.0]])
    with pytest.raises(ValueError, match=f"{name}: boxes must hold finite numbers; row 1"):
      fn(boxes)
    traced = np.asarray(jax.jit(fn)(boxes))
    assert np.isnan(traced[1]).all()
    assert np.isfinite(traced[[0, 2]]).all()
    np.testing.assert_array_equal(traced[[0, 2]], fn(boxes[jnp.array([0, 2])]))


@pytest.mark.parametrize("name", ["roi_pool", "roi_align", "multi_scale_roi_align"])
def test_no_boxes_give_an_empty_output(name):
  # Issue 24: roi_align and multi_scale_roi_align raised ZeroDivisionError.
  fn = _region_ops(jnp.ones((2, 16, 16, 3)))[name]
  assert fn(jnp.zeros((0, 5))).shape == (0, 2, 2, 3)
  assert jax.jit(fn)(jnp.zeros((0, 5))).shape == (0, 2, 2, 3)
