"""DynOPool: torch's grid_sample as the oracle, the two pooling identities, a
float64 numpy reference of the straight-through surrogate, gradients, argument
checks, and the NNX layer's static size, sync step and complexity loss."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from derivatives import check_grads
from flax import nnx

import jaxpool
from jaxpool import nnx as jpnnx

from oracle import F, from_torch, to_torch, torch


def _normal(shape, seed=0, dtype=np.float64):
  return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


# ----------------------------------------------------------------------------
# References, written from the formulas.


def _torch_dyno(x, out, delta, aggregate="max"):
  """``2**n`` grid_sample reads (bilinear, border, align_corners=False)
  combined by max, channels-last numpy in and out. 1-D runs as 2-D with a
  height of 1; 3-D uses the 5-D grid_sample (trilinear)."""
  n = len(out)
  x = np.asarray(x)
  lifted = x[:, None] if n == 1 else x  # 1-D: (N, 1, L, C)
  out2 = (1,) + tuple(out) if n == 1 else tuple(out)
  delta = np.asarray(delta, np.float64)
  delta2 = np.concatenate([[0.0], delta]) if n == 1 else delta
  xt = to_torch(lifted, requires_grad=True)
  centres = [-1 + (2 * np.arange(m) + 1) / m for m in out2]
  reads = []
  for signs in itertools.product((-1, 1), repeat=n):
    signs2 = (0,) + signs if n == 1 else signs
    axes = [c + s * d for c, s, d in zip(centres, signs2, delta2)]
    mesh = np.meshgrid(*axes, indexing="ij")
    grid = np.stack(mesh[::-1], axis=-1)  # grid_sample wants (x=W, y=H, z=D)
    grid = torch.tensor(np.broadcast_to(grid, (x.shape[0], *grid.shape)).copy(), dtype=xt.dtype)
    reads.append(
      F.grid_sample(xt, grid, mode="bilinear", padding_mode="border", align_corners=False)
    )
  stacked = torch.stack(reads)
  y = stacked.amax(0) if aggregate == "max" else stacked.mean(0)
  return xt, y, (lambda a: a[:, 0]) if n == 1 else (lambda a: a)


def _numpy_dyno(x, sizes, out, delta, aggregate="max"):
  """float64 numpy DynOPool with real-valued ``sizes`` in the cell centres
  (the straight-through surrogate when ``sizes = L / alpha``)."""
  x = np.asarray(x, np.float64)
  n = len(out)
  spatial = x.shape[-1 - n : -1]
  reads = []
  for signs in itertools.product((-1, 1), repeat=n):
    value = x
    for i in reversed(range(n)):
      length, axis = spatial[i], x.ndim - 1 - n + i
      centres = -1 + (2 * np.arange(out[i]) + 1) / sizes[i]
      u = np.clip((centres + signs[i] * delta[i] + 1) * length / 2 - 0.5, 0, length - 1)
      i0 = np.floor(u).astype(int)
      i1 = np.minimum(i0 + 1, length - 1)
      w = (u - i0).reshape((-1,) + (1,) * (x.ndim - axis - 1))
      value = (1 - w) * np.take(value, i0, axis) + w * np.take(value, i1, axis)
    reads.append(value)
  return np.max(reads, 0) if aggregate == "max" else np.mean(reads, 0)


# ----------------------------------------------------------------------------
# The function.

ORACLE_CASES = [
  ((9,), (4,), (0.1,)),
  ((11,), (3,), (0.4,)),
  ((7, 8), (4, 4), (0.125, 0.125)),  # the quarter cell of a 2x2 grid, odd H
  ((7, 8), (3, 5), (0.13, -0.31)),
  ((8, 6), (5, 2), (2.0, 0.7)),  # beyond the cell and the border
  ((8, 6), (8, 6), (0.0, 0.3)),  # no resizing
  ((8, 6), (11, 9), (0.05, 0.02)),  # upsampling
  ((5, 6, 5), (2, 3, 2), (0.2, 0.1, 0.25)),
]


# Every configuration with static offsets, and every other one traced (the
# gather path), to keep the suite short.
ORACLE_RUNS = [(*case, False) for case in ORACLE_CASES] + [
  (*case, True) for case in ORACLE_CASES[1::2]
]


@pytest.mark.parametrize("spatial,out,delta,traced", ORACLE_RUNS)
def test_matches_grid_sample_reads_combined_by_max(spatial, out, delta, traced):
  x = _normal((2, *spatial, 3), seed=len(spatial), dtype=np.float32)
  cot = _normal((2, *out, 3), seed=7, dtype=np.float32)
  xt, yt, squeeze = _torch_dyno(x, out, delta)
  yt.backward(to_torch(cot[:, None] if len(out) == 1 else cot))
  if traced:
    fn = jax.jit(lambda v, d: jaxpool.dyno_pool(v, out, d))
  else:
    fn = lambda v, d: jaxpool.dyno_pool(v, out, np.asarray(d, np.float32))  # noqa: E731
  delta = jnp.asarray(delta, jnp.float32)
  y, pullback = jax.vjp(lambda v: fn(v, delta), jnp.asarray(x))
  np.testing.assert_allclose(y, squeeze(from_torch(yt)), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(
    pullback(jnp.asarray(cot))[0], squeeze(from_torch(xt.grad)), rtol=1e-5, atol=1e-5
  )


def test_mean_and_per_feature_delta_match_the_numpy_reference(x64):
  x = _normal((2, 7, 8, 3))
  delta = np.array([[0.1, 0.3, -0.2], [0.05, 0.5, 0.0]])
  for aggregate in ("max", "mean"):
    y = jaxpool.dyno_pool(x, (3, 5), jnp.asarray(delta), aggregate=aggregate)
    for c in range(3):
      ref = _numpy_dyno(x[..., c : c + 1], (3, 5), (3, 5), delta[:, c], aggregate)
      np.testing.assert_allclose(y[..., c : c + 1], ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("spatial_dims", [1, 2, 3])
def test_half_size_identities_average_and_max_pooling(spatial_dims):
  shape = {1: (2, 8, 3), 2: (2, 6, 8, 3), 3: (2, 4, 6, 4, 2)}[spatial_dims]
  x = jnp.asarray(_normal(shape, dtype=np.float32))
  out = tuple(n // 2 for n in shape[1:-1])
  window = (2,) * spatial_dims
  cot = jnp.asarray(_normal(jaxpool.max_pool(x, window).shape, seed=3, dtype=np.float32))
  for delta, pool in (
    (jnp.zeros(spatial_dims), jaxpool.avg_pool),
    (1 / (2 * jnp.asarray(out, jnp.float32)), jaxpool.max_pool),
    (None, jaxpool.max_pool),
  ):
    for fn in (
      lambda v: jaxpool.dyno_pool(v, out, delta),
      jax.jit(lambda v, d=delta: jaxpool.dyno_pool(v, out, d)),
    ):
      y, pullback = jax.vjp(fn, x)
      z, pool_pullback = jax.vjp(lambda v: pool(v, window), x)
      np.testing.assert_allclose(y, z, rtol=1e-6, atol=1e-6)
      np.testing.assert_allclose(pullback(cot)[0], pool_pullback(cot)[0], rtol=1e-6, atol=1e-6)


def test_quarter_cell_ties_give_the_gradient_to_the_first_maximum():
  x = jnp.asarray(np.random.default_rng(0).integers(0, 2, (2, 6, 8, 3)), jnp.float32)
  cot = jnp.asarray(_normal((2, 3, 4, 3), dtype=np.float32))
  expected = jax.vjp(lambda v: jaxpool.max_pool(v, (2, 2)), x)[1](cot)[0]
  grad = jax.vjp(lambda v: jaxpool.dyno_pool(v, (3, 4)), x)[1](cot)[0]
  np.testing.assert_array_equal(grad, expected)


@pytest.mark.parametrize("per_feature", [False, True])
def test_check_grads_in_x_and_delta(per_feature, x64):
  x = _normal((1, 5, 6, 2))
  delta = np.array([[0.13, 0.2], [-0.21, 0.07]]) if per_feature else np.array([0.13, -0.21])
  f = jax.jit(lambda v, d: jaxpool.dyno_pool(v, (3, 4), d))
  check_grads(f, (x, delta), order=1, modes=("fwd", "rev"))
  check_grads(lambda v: jaxpool.dyno_pool(v, (3, 4), delta, aggregate="mean"), (x,), order=1)
  check_grads(lambda v: jaxpool.dyno_pool(v, (2, 3)), (x,), order=1)  # static positions


def test_straight_through_alpha_gradient_is_the_surrogates_derivative(x64):
  x = _normal((2, 8, 6, 3))
  cot = _normal((2, 4, 3, 3), seed=1)
  alpha = np.array([2.0, 2.0])  # 8 / 2 and 6 / 2 are integers: value = surrogate
  delta = np.array([0.1, 0.07])

  def st(a):
    return jnp.vdot(jaxpool.dyno_pool(x, (4, 3), delta, scale=a), cot)

  def surrogate(a):
    return np.vdot(_numpy_dyno(x, (8 / a[0], 6 / a[1]), (4, 3), delta), cot)

  grad = np.asarray(jax.grad(st)(jnp.asarray(alpha)))
  h = 1e-6
  fd = np.array(
    [(surrogate(alpha + h * e) - surrogate(alpha - h * e)) / (2 * h) for e in np.eye(2)]
  )
  assert np.all(np.abs(grad) > 1e-3)
  np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-8)

  # The quarter cell sits on pixel centres, where the read is not
  # differentiable: the positions grow with alpha, and the one-sided
  # difference toward larger alpha (the next pixel) is the gradient.
  def quarter(a):
    return jnp.vdot(jaxpool.dyno_pool(x, (4, 3), scale=a), cot)

  def quarter_surrogate(a):
    sizes = (8 / a[0], 6 / a[1])
    return np.vdot(_numpy_dyno(x, sizes, (4, 3), [1 / (2 * s) for s in sizes]), cot)

  grad = np.asarray(jax.grad(quarter)(jnp.asarray(alpha)))
  forward = np.array(
    [(quarter_surrogate(alpha + 1e-7 * e) - quarter_surrogate(alpha)) / 1e-7 for e in np.eye(2)]
  )
  assert np.all(np.abs(grad) > 1e-3)
  np.testing.assert_array_equal(np.sign(grad), np.sign(forward))
  np.testing.assert_allclose(grad, forward, rtol=1e-4)


def test_value_uses_the_static_size_and_jit_matches_eager():
  x = jnp.asarray(_normal((2, 9, 7, 3), dtype=np.float32))
  alpha = jnp.array([2.3, 1.7])
  eager = jaxpool.dyno_pool(x, (4, 4), scale=alpha)
  np.testing.assert_allclose(eager, jaxpool.dyno_pool(x, (4, 4)), atol=1e-6)
  np.testing.assert_allclose(
    jax.jit(lambda v, a: jaxpool.dyno_pool(v, (4, 4), scale=a))(x, alpha), eager, atol=1e-6
  )


def test_no_nan_for_offsets_far_beyond_the_cell_and_the_border():
  x = jnp.asarray(_normal((2, 6, 8, 3), dtype=np.float32))
  for delta in (jnp.array([5.0, -40.0]), jnp.array([1e6, 0.0])):
    y, grads = jax.value_and_grad(lambda v, d: jaxpool.dyno_pool(v, (3, 4), d).sum(), (0, 1))(
      x, delta
    )
    assert np.isfinite(y) and all(np.isfinite(g).all() for g in grads)
  # Far beyond the border every query reads the border pixels.
  np.testing.assert_allclose(
    jaxpool.dyno_pool(x, (3, 4), jnp.array([1e6, 1e6])),
    jnp.broadcast_to(
      jnp.maximum(
        jnp.maximum(x[:, :1, :1], x[:, :1, -1:]), jnp.maximum(x[:, -1:, :1], x[:, -1:, -1:])
      ),
      (2, 3, 4, 3),
    ),
  )


def test_infinite_neighbours_read_with_zero_weight_do_not_leak():
  x = np.zeros((1, 4, 4, 1), np.float32)
  x[0, 1, 1] = np.inf  # read by the first cell only; its neighbours' queries sit on knots
  y, grad = jax.value_and_grad(lambda v: jaxpool.dyno_pool(v, (2, 2))[0, :, 1].sum())(
    jnp.asarray(x)
  )
  assert np.isfinite(grad).all()
  np.testing.assert_array_equal(
    np.isinf(jaxpool.dyno_pool(jnp.asarray(x), (2, 2))[0, ..., 0]), [[True, False], [False, False]]
  )


def test_half_precision_in_and_out():
  x = jnp.asarray(_normal((2, 6, 8, 3), dtype=np.float32))
  for dtype in (jnp.bfloat16, jnp.float16):
    y = jaxpool.dyno_pool(x.astype(dtype), (3, 5), jnp.array([0.1, 0.2], dtype))
    assert y.dtype == dtype
    np.testing.assert_allclose(
      y.astype(np.float32),
      jaxpool.dyno_pool(x, (3, 5), jnp.array([0.1, 0.2])),
      rtol=2e-2,
      atol=2e-2,
    )


@pytest.mark.parametrize(
  "kwargs,error,match",
  [
    ({"output_shape": (0, 3)}, ValueError, "output_shape must be"),
    ({"output_shape": (2, 2, 2, 2)}, ValueError, "output_shape must be"),
    ({"output_shape": (2.0, 3)}, ValueError, "output_shape must be"),
    ({"delta": jnp.zeros(3)}, ValueError, "delta must have shape"),
    ({"delta": jnp.zeros((2, 4))}, ValueError, "delta must have shape"),
    ({"delta": jnp.array([0.1, jnp.nan])}, ValueError, "delta must lie"),
    ({"delta": jnp.array([0, 1])}, TypeError, "delta must be a floating"),
    ({"scale": jnp.array([2.0])}, ValueError, "scale must have shape"),
    ({"scale": jnp.array([2.0, 0.0])}, ValueError, "scale must lie"),
    ({"scale": jnp.array([2.0, jnp.inf])}, ValueError, "scale must lie"),
    ({"aggregate": "median"}, ValueError, "aggregate must be"),
    # Issue 24: an int used to mean the 1-D (4,), pooling only W of an image.
    ({"output_shape": 4}, ValueError, r"an int does not say how many: write \(4, 4\)"),
  ],
)
def test_clear_errors(kwargs, error, match):
  x = jnp.ones((2, 6, 8, 3))
  args = {"output_shape": (3, 4), "delta": jnp.zeros(2), **kwargs}
  with pytest.raises(error, match=match):
    jaxpool.dyno_pool(x, args.pop("output_shape"), args.pop("delta"), **args)
  with pytest.raises(ValueError, match="3 or more axes"):
    jaxpool.dyno_pool(jnp.ones((6, 8)), (3, 4))
  with pytest.raises(TypeError, match="floating-point input"):
    jaxpool.dyno_pool(jnp.ones((2, 6, 8, 3), jnp.int32), (3, 4))


# ----------------------------------------------------------------------------
# The NNX layer.

X = jax.random.normal(jax.random.key(0), (4, 16, 12, 3))


@pytest.mark.parametrize(
  "options", [{}, {"offset": "learned"}, {"offset": "learned", "per_feature": True, "features": 3}]
)
def test_layer_starts_as_max_pooling_and_alpha_learns(options):
  pool = jpnnx.DynOPool(**options)
  np.testing.assert_allclose(pool(X), jaxpool.max_pool(X, (2, 2)), atol=1e-6)
  grads = nnx.grad(lambda m: (m(X) ** 2).mean())(pool)
  assert np.all(np.abs(grads["alpha"][...]) > 0)
  if "offset" in options:
    assert np.all(np.abs(grads["offset"][...]) > 0)
    assert grads["offset"][...].shape == ((2, 3) if options.get("per_feature") else (2,))


def test_registry_builds_a_halving_layer_from_the_window():
  pool = jpnnx.make_pool("dyno", (2, 2), features=3, rngs=nnx.Rngs(0))
  assert isinstance(pool, jpnnx.DynOPool) and pool(X).shape == (4, 8, 6, 3)
  np.testing.assert_allclose(pool.ratio(), [0.5, 0.5])
  assert jpnnx.make_pool("dyno", (4, 2), features=3)(X).shape == (4, 4, 6, 3)
  with pytest.raises(ValueError, match="does not pad"):
    jpnnx.make_pool("dyno", (2, 2), padding="SAME")


def test_sync_rounds_the_size_and_jit_retraces_only_when_it_changes():
  model = nnx.Sequential(jpnnx.DynOPool(), jpnnx.DynOPool(spatial_dims=2, init_ratio=(0.5, 1.0)))
  traces = []

  @nnx.jit
  def forward(model, x):
    traces.append(1)
    return model(x)

  assert forward(model, X).shape == (4, 4, 6, 3)
  assert forward(model, X).shape == (4, 4, 6, 3) and len(traces) == 1
  assert jpnnx.sync_dyno_shapes(model) == {}
  model.layers[0].alpha[...] = jnp.array([2.05, 2.1])  # rounds to the same sizes
  assert jpnnx.sync_dyno_shapes(model) == {}
  forward(model, X)
  assert len(traces) == 1
  model.layers[1].alpha[...] = jnp.array([2.0, 1.6])  # 8 -> 4, 6 -> 4 (3.75)
  assert jpnnx.sync_dyno_shapes(model) == {("layers", 1): ((4, 6), (4, 4))}
  assert forward(model, X).shape == (4, 4, 4, 3) and len(traces) == 2
  model.layers[1].alpha[...] = jnp.array([2.0, 1.0])  # back to a size seen before
  assert jpnnx.sync_dyno_shapes(model) == {("layers", 1): ((4, 4), (4, 6))}
  forward(model, X)
  model.layers[1].alpha[...] = jnp.array([2.0, 0.5])  # r = 2 is above max_ratio = 1
  assert jpnnx.sync_dyno_shapes(model) == {}
  assert forward(model, X).shape == (4, 4, 6, 3)


def test_sizes_seen_before_reuse_their_trace_whatever_alpha_led_back():
  # Grow, shrink, then back to each earlier size with a different alpha
  # than the first time: one trace per distinct size, never more.
  pool = jpnnx.DynOPool(init_ratio=0.3)  # 8 -> round(2.4) = 2
  traces = []

  @nnx.jit
  def forward(model, x):
    traces.append(1)
    return model(x)

  x = jnp.ones((1, 8, 8, 1))
  shapes = [forward(pool, x).shape[1:3]]  # the initial size, (2, 2)
  for alpha in ([3.4, 2.9], [2.2, 1.8], [4.1, 6.5], [2.3, 1.9], [3.9, 3.5], [2.1, 1.7]):
    pool.alpha[...] = jnp.array(alpha)
    jpnnx.sync_dyno_shapes(pool)
    shapes.append(forward(pool, x).shape[1:3])
  assert shapes == [(2, 2), (2, 3), (4, 4), (2, 1), (3, 4), (2, 2), (4, 5)]
  alphas = {}
  for alpha, shape in (
    ([3.6, 3.0], (2, 3)),
    ([2.0, 2.0], (4, 4)),
    ([8.1, 8.1], (1, 1)),
    ([3.6, 3.6], (2, 2)),
    ([1.9, 1.9], (4, 4)),
  ):
    pool.alpha[...] = jnp.array(alpha)
    jpnnx.sync_dyno_shapes(pool)
    assert forward(pool, x).shape[1:3] == shape
    alphas.setdefault(shape, pool.synced_alpha)
    assert pool.synced_alpha == alphas[shape]
  assert len(traces) == len(set(shapes) | {(1, 1)})


def test_complexity_loss_follows_the_straight_through_area():
  pool = jpnnx.DynOPool(macs=3.0, complexity_weight=0.5)
  assert jpnnx.auxiliary_loss(jpnnx.DynOPool()(X) is not None and jpnnx.DynOPool()) == 0
  pool(X)
  np.testing.assert_allclose(jpnnx.auxiliary_loss(pool), 1.5)  # area ratio 1 at init

  def loss(model):
    model(X)
    return jpnnx.auxiliary_loss(model)

  grads = nnx.grad(loss)(pool)
  # area = (16 / a_h) (12 / a_w) / (8 * 6) at a = 2: d area / d a_h = -8 * 6 / (2 * 48)
  np.testing.assert_allclose(grads["alpha"][...], 1.5 * np.array([-0.5, -0.5]), rtol=1e-6)
  pool.alpha[...] = jnp.array([4.0, 2.0])
  jpnnx.sync_dyno_shapes(pool)
  pool(X)
  np.testing.assert_allclose(jpnnx.auxiliary_loss(pool), 0.75)


def test_training_grows_or_shrinks_alpha_and_the_size_follows():
  model = jpnnx.DynOPool(macs=1.0, complexity_weight=1.0)
  optimizer = nnx.Optimizer(model, optax.adam(0.2), wrt=nnx.Param)

  @nnx.jit
  def step(model, optimizer):
    def loss(model):
      model(X)
      return jpnnx.auxiliary_loss(model)  # only the complexity term: shrink

    value, grads = nnx.value_and_grad(loss)(model)
    optimizer.update(model, grads)
    return value

  with jax.numpy_dtype_promotion("standard"):
    for _ in range(5):
      step(model, optimizer)
  assert np.all(model.ratio() < 0.5)
  assert jpnnx.sync_dyno_shapes(model)
  assert all(n < m for n, m in zip(model(X).shape[1:3], (8, 6)))


@pytest.mark.parametrize(
  "kwargs,match",
  [
    ({"spatial_dims": 4}, "spatial_dims must be"),
    ({"init_ratio": 0.0}, "init_ratio must be"),
    ({"init_ratio": (0.5, 0.5, 0.5)}, "init_ratio must be"),
    ({"max_ratio": -1.0}, "max_ratio must be"),
    ({"offset": "free"}, "offset must be"),
    ({"per_feature": True}, "per_feature=True needs"),
    ({"offset": "learned", "per_feature": True}, "features"),
    ({"aggregate": "min"}, "aggregate must be"),
    ({"macs": -1.0}, "macs must be"),
    ({"init_ratio": 2.0}, r"init_ratio \(2.0, 2.0\) exceeds max_ratio \(1.0, 1.0\)"),
  ],
)
def test_layer_errors(kwargs, match):
  with pytest.raises((ValueError, TypeError), match=match):
    jpnnx.DynOPool(**kwargs)
  with pytest.raises(ValueError, match="features"):
    jpnnx.DynOPool(features=4)(X)


def test_sync_refuses_a_diverged_alpha():
  pool = jpnnx.DynOPool()
  pool(X)
  pool.alpha[...] = jnp.array([jnp.nan, 2.0])
  with pytest.raises(ValueError, match="not finite"):
    jpnnx.sync_dyno_shapes(pool)
