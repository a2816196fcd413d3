"""The operator table every generic test iterates.

One :class:`Case` per operator configuration: how to call it on a
``(batch, H, W, C)`` array (with a key for the random ones), which outputs an
input cell can reach (for the locality test), and the layer that reproduces
the call in both Flax APIs. ``tests/test_properties.py`` (jit, vmap, dtypes,
gradients), ``test_locality.py``, ``test_sharding.py`` and
``test_modules.py`` all read it, so a new operator is one row here.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp

import jaxpool

SHAPE = (4, 7, 9, 3)  # (batch, H, W, features)


@dataclasses.dataclass(frozen=True)
class Case:
  """One operator configuration.

  Attributes:
    id: test id.
    call: ``call(x, key)``, the operator applied to a ``SHAPE`` array;
      ``key`` is ``None`` (inference) for deterministic operators.
    reach: ``reach(e, key)`` for a one-hot ``e`` (a single 1, zeros
      elsewhere): a boolean mask of the outputs whose windows (bins, regions)
      contain the hot cell. ``None`` means ``call(e, key) > 0``, right for
      every operator whose output is a positively weighted mean or a maximum
      of its window (the regions drawn from ``key`` included).
    random: the operator takes a ``key`` (training) besides ``None``.
    reverse_only: the derivative is a ``custom_vjp`` (no forward mode).
    layer: ``(class name, args, kwargs)`` of the layer equal to ``call``
      (inference mode for random layers), the same in ``jaxpool.nnx`` and
      ``jaxpool.linen``; ``None`` when the call needs extra arrays.
    sharding: include in the 8-device sharding test.
    squares: second-order statistics of the input, whose values (1e30 -> 1e60)
      leave float32's range; the locality test still checks that nothing
      leaks out of the batch element, not that 1e30 stays finite.
  """

  id: str
  call: Callable
  reach: Callable | None = None
  random: bool = False
  reverse_only: bool = False
  layer: tuple | None = None
  sharding: bool = True
  squares: bool = False


def _max_reach(*args, **kwargs):
  return lambda e, key: jaxpool.max_pool(e, *args, **kwargs) > 0


def _unpool_reach(e, key):
  """An unpooled cell changes when it shares a 2x2 window with the hot cell."""
  pooled = jaxpool.max_pool(e, (2, 2))
  up = jnp.repeat(jnp.repeat(pooled, 2, axis=1), 2, axis=2)
  return jnp.pad(up, ((0, 0), (0, 1), (0, 1), (0, 0))) > 0


def _ahead(v):
  return jnp.concatenate([v[..., 1:, :], v[..., -1:, :]], axis=-2)


def _behind(v):
  return jnp.concatenate([v[..., :1, :], v[..., :-1, :]], axis=-2)


def _positive_bands(e):
  """LeGall 5/3's bands with every coefficient made positive: the footprint
  of each band sample."""
  return jaxpool.lift_down_pool(
    e[:, :6, :8], predict=lambda v: -(v + _ahead(v)), update=lambda d: d + _behind(d)
  )


def _lift_reach(e, key):
  """The lifting's footprint."""
  return sum(_positive_bands(e)) > 0


def _lift_round_trip_reach(e, key):
  """LeGall 5/3 down then up, every coefficient of both made positive
  (lift_up_pool: x_e = s - U(d), x_o = d + P(x_e))."""
  return (
    jaxpool.lift_up_pool(
      _positive_bands(e), predict=lambda v: v + _ahead(v), update=lambda d: -(d + _behind(d))
    )
    > 0
  )


def _batch_reach(e, key, out):
  """A global descriptor: a cell reaches every output of its batch element."""
  hot = jnp.any(e != 0, axis=tuple(range(1, e.ndim)))
  return jnp.broadcast_to(hot.reshape((-1,) + (1,) * (len(out) - 1)), out)


def _global(call, squares=False, **kwargs):
  """A Case of a global descriptor ``call(x)``."""
  return dict(
    call=lambda x, k: call(x),
    reach=lambda e, k: _batch_reach(e, k, call(e).shape),
    squares=squares,
    **kwargs,
  )


def _netvlad(x):
  dim = x.shape[-1]
  centers = jnp.linspace(-1.0, 1.0, 4 * dim, dtype=x.dtype).reshape(4, dim)
  return jaxpool.netvlad(
    x, centers, assign_weights=2 * centers.T, assign_bias=jnp.linspace(-0.5, 0.5, 4, dtype=x.dtype)
  )


def _weights(seed, *shapes):
  """float32 normal arrays of ``shapes`` (0.5 standard deviation), whatever
  ``x``'s dtype: the half-precision rows compare against the same weights."""
  keys = jax.random.split(jax.random.key(seed), len(shapes))
  return [0.5 * jax.random.normal(k, shape, jnp.float32) for k, shape in zip(keys, shapes)]


def _heads(dim):
  """Heads dividing the features: 3 of the table's 3, 2 of the sharding test's 4."""
  return math.gcd(dim, 6)


def _map_head(x):
  dim, heads, hidden = x.shape[-1], _heads(x.shape[-1]), 5
  qkv, bias = (dim, heads, dim // heads), (heads, dim // heads)
  w = _weights(11, (1, 1, dim), qkv, qkv, qkv, bias, bias, bias, bias + (dim,), (dim,))
  m = _weights(12, (dim,), (dim,), (dim, hidden), (hidden,), (hidden, dim), (dim,))
  dense = lambda kernel, b: {"kernel": kernel, "bias": b}
  params = {
    "probe": w[0],
    "MultiHeadDotProductAttention_0": {
      "query": dense(w[1], w[4]),
      "key": dense(w[2], w[5]),
      "value": dense(w[3], w[6]),
      "out": dense(w[7], w[8]),
    },
    "LayerNorm_0": {"scale": 1 + m[0], "bias": m[1]},
    "MlpBlock_0": {"Dense_0": dense(m[2], m[3]), "Dense_1": dense(m[4], m[5])},
  }
  return jaxpool.map_head(x, params)


def _attention_pool2d(x, feature_shape=None):
  dim = x.shape[-1]
  grid = feature_shape or x.shape[1:-1]
  w = _weights(13, (math.prod(grid) + 1, dim), *[(dim, dim), (dim,)] * 3, (dim, 5), (5,))
  params = {"positional_embedding": w[0], "c_proj": {"kernel": w[7], "bias": w[8]}}
  for i, name in enumerate(("q_proj", "k_proj", "v_proj")):
    params[name] = {"kernel": w[1 + 2 * i], "bias": w[2 + 2 * i]}
  return jaxpool.attention_pool2d(x, params, num_heads=_heads(dim), feature_shape=feature_shape)


def _sim_pool(x, **options):
  dim = x.shape[-1]
  w = _weights(14, (dim,), (dim,), (dim, dim), (dim, dim), (dim,))
  params = {
    "norm": {"scale": 1 + w[0], "bias": w[1]},
    "q": {"kernel": w[2], "bias": w[4]},
    "k": {"kernel": w[3]},
  }
  return jaxpool.sim_pool(x, params, num_heads=_heads(dim), **options)


def _gate(x):
  return jnp.linspace(-0.5, 0.5, 9, dtype=x.dtype).reshape(3, 3)


# Box corners (x1, y1, x2, y2) on the table's 7 x 9 maps: inside, partly
# outside, tiny. Every image gets the same boxes, so the output is
# (batch, boxes, ph, pw, features) and vmap/batch tests apply.
_CORNERS = ((0.5, 0.5, 7.2, 5.1), (-2.0, 1.0, 3.0, 8.0), (4.1, 2.2, 4.6, 2.9))


def _regions(op, *args, **kwargs):
  def call(x, key):
    batch = x.shape[0]
    index = jnp.repeat(jnp.arange(batch, dtype=jnp.float32), len(_CORNERS))[:, None]
    corners = jnp.tile(jnp.asarray(_CORNERS, jnp.float32), (batch, 1))
    y = op(x, jnp.concatenate([index, corners], axis=1), *args, **kwargs)
    return y.reshape(batch, len(_CORNERS), *y.shape[1:])

  return dict(call=call, sharding=False)  # boxes replicated: tests/test_region.py


def _two_levels(x, boxes, *args, **kwargs):
  """``multi_scale_roi_align`` over ``x`` and its every-other-cell level:
  the small box reads level 0, the two large ones level 1."""
  return jaxpool.multi_scale_roi_align(
    [x, x[:, ::2, ::2]],
    boxes,
    *args,
    image_shape=x.shape[1:3],
    canonical_scale=2.0,
    canonical_level=0,
    **kwargs,
  )


CASES = [
  Case(
    "blur_pool", lambda x, k: jaxpool.blur_pool(x, (3, 3), 2), layer=("BlurPool", ((3, 3), 2), {})
  ),
  Case(
    "blur_pool_antialiased_cnns",
    lambda x, k: jaxpool.blur_pool(x, (4, 4), 2, ((1, 2), (1, 2))),
    layer=("BlurPool", ((4, 4), 2, ((1, 2), (1, 2))), {}),
  ),
  Case(
    "blur_pool_wrap",
    lambda x, k: jaxpool.blur_pool(x, (3, 3), 2, pad_mode="wrap"),
    layer=("BlurPool", ((3, 3), 2), {"pad_mode": "wrap"}),
  ),
  Case(
    "max_blur_pool",
    lambda x, k: jaxpool.max_blur_pool(x, (2, 2), 2, pad_mode="zeros"),
    layer=("MaxBlurPool", ((2, 2), 2), {"pad_mode": "zeros"}),
  ),
  Case(
    "max_pool",
    lambda x, k: jaxpool.max_pool(x, (3, 3), 2, 1, ceil_mode=True),
    layer=("MaxPool", ((3, 3), 2, 1), {"ceil_mode": True}),
  ),
  Case("max_pool_dilated", lambda x, k: jaxpool.max_pool(x, (2, 2), 1, dilation=2)),
  Case(
    "min_pool",
    lambda x, k: jaxpool.min_pool(x, (2, 3), (1, 2), "SAME"),
    _max_reach((2, 3), (1, 2), "SAME"),
    layer=("MinPool", ((2, 3), (1, 2), "SAME"), {}),
  ),
  Case(
    "avg_pool",
    lambda x, k: jaxpool.avg_pool(x, (3, 3), 2, 1, count_include_pad=False),
    layer=("AvgPool", ((3, 3), 2, 1), {"count_include_pad": False}),
  ),
  Case(
    "lp_pool",
    lambda x, k: jaxpool.lp_pool(x, (2, 2), p=3.0),
    layer=("LpPool", ((2, 2),), {"p": 3.0}),
  ),
  Case("lp_pool_overlapping", lambda x, k: jaxpool.lp_pool(x, (3, 3), 2, 1, p=2.0), sharding=False),
  Case(
    "median_pool",
    lambda x, k: jaxpool.median_pool(x, (3, 3), 1, 1),
    _max_reach((3, 3), 1, 1),
    reverse_only=True,
    layer=("MedianPool", ((3, 3), 1, 1), {}),
  ),
  Case(
    "median_pool_mean",
    lambda x, k: jaxpool.median_pool(x, (2, 2), 1, even="mean"),
    _max_reach((2, 2), 1),
    reverse_only=True,
    sharding=False,
  ),
  Case(
    "avg_max_pool",
    lambda x, k: jaxpool.avg_max_pool(x, (2, 2), combine="concat"),
    layer=("AvgMaxPool", ((2, 2),), {"combine": "concat"}),
  ),
  Case("avg_max_pool_add", lambda x, k: jaxpool.avg_max_pool(x, (3, 3), 2, 1), sharding=False),
  Case(
    "adaptive_avg_pool",
    lambda x, k: jaxpool.adaptive_avg_pool(x, (3, 4)),
    layer=("AdaptiveAvgPool", ((3, 4),), {}),
  ),
  Case(
    "adaptive_max_pool",
    lambda x, k: jaxpool.adaptive_max_pool(x, (3, 4)),
    layer=("AdaptiveMaxPool", ((3, 4),), {}),
  ),
  Case("global_avg_pool", lambda x, k: jaxpool.global_avg_pool(x), layer=("GlobalAvgPool", (), {})),
  Case(
    "global_max_pool",
    lambda x, k: jaxpool.global_max_pool(x, keepdims=True),
    layer=("GlobalMaxPool", (), {"keepdims": True}),
  ),
  Case("max_pool_with_indices", lambda x, k: jaxpool.max_pool_with_indices(x, (2, 2))[0]),
  Case(
    "max_unpool",
    lambda x, k: jaxpool.max_unpool(*jaxpool.max_pool_with_indices(x, (2, 2)), (7, 9)),
    _unpool_reach,
  ),
  Case(
    "soft_pool",
    lambda x, k: jaxpool.soft_pool(x, (3, 3), 2, 1, ceil_mode=True),
    reverse_only=True,
    layer=("SoftPool", ((3, 3), 2, 1), {"ceil_mode": True}),
  ),
  Case(
    "lip_pool",
    lambda x, k: jaxpool.lip_pool(x, 0.5 * x, (2, 2), 1),  # exact in bf16
    reverse_only=True,
  ),
  Case("dpp_pool", lambda x, k: jaxpool.dpp_pool(x, 1.0, 2.0, (2, 2))),
  Case(
    "dpp_pool_padded",
    lambda x, k: jaxpool.dpp_pool(x, 1.0, 2.0, (3, 3), 2, 1, reward="asym"),
    sharding=False,
  ),
  Case(
    "mixed_pool",
    lambda x, k: jaxpool.mixed_pool(x, (3, 3), 2, 1, alpha=0.25, key=k),
    random=True,
    layer=("MixedPool", ((3, 3), 2, 1), {"alpha": 0.25}),
  ),
  Case("gated_pool", lambda x, k: jaxpool.gated_pool(x, _gate(x), (3, 3), 2)),
  Case(
    "stochastic_pool",
    lambda x, k: jaxpool.stochastic_pool(x, (2, 2), padding=1, key=k),
    random=True,
    layer=("StochasticPool", ((2, 2),), {"padding": 1}),
  ),
  Case(
    "s3_pool",
    lambda x, k: jaxpool.s3_pool(x[:, :6, :8], (2, 2), grid_shape=(2, 4), key=k),
    random=True,
    sharding=False,
  ),
  Case(
    "fractional_max_pool",
    lambda x, k: jaxpool.fractional_max_pool(x, (2, 2), output_shape=(4, 5), key=k),
    random=True,
    layer=("FractionalMaxPool", ((2, 2),), {"output_shape": (4, 5)}),
  ),
  Case("lift_down_pool", lambda x, k: sum(jaxpool.lift_down_pool(x[:, :6, :8])), _lift_reach),
  Case("lift_pool", lambda x, k: jaxpool.lift_pool(x[:, :6, :8]), _lift_reach),
  Case(
    "lift_down_pool_haar",
    lambda x, k: jaxpool.lift_down_pool(x[:, :6, :8], wavelet="haar").HL,
    _max_reach((2, 2)),
    sharding=False,
  ),
  Case(
    "lift_up_pool",
    lambda x, k: jaxpool.lift_up_pool(
      jaxpool.lift_down_pool(x[:, :6, :8], spatial_dims=1, wavelet="haar"), wavelet="haar"
    ),
    lambda e, k: jnp.repeat(jaxpool.max_pool(e[:, :6, :8], (1, 2)), 2, axis=2) > 0,
  ),
  Case(
    "lift_up_pool_legall53",
    lambda x, k: jaxpool.lift_up_pool(jaxpool.lift_down_pool(x[:, :6, :8])),
    _lift_round_trip_reach,
  ),
  Case("dyno_pool", lambda x, k: jaxpool.dyno_pool(x[:, :6, :8], (3, 4))),
  Case(
    "dyno_pool_mean",
    lambda x, k: jaxpool.dyno_pool(
      x,
      (4, 5),
      jnp.array([0.3, -0.1], x.dtype),
      aggregate="mean",
      scale=jnp.array([1.8, 1.9], x.dtype),
    ),
  ),
  # Normalised second-order heads stay finite at 1e30 (rows rescaled by a
  # power of two); the unnormalised statistics below leave float32.
  Case("gem_pool", **_global(lambda x: jaxpool.gem_pool(x, 3.0), layer=("GeM", (), {}))),
  Case(
    "gem_pool_per_feature_window",
    lambda x, k: jaxpool.gem_pool(
      x, jnp.linspace(1.0, 4.0, x.shape[-1], dtype=x.dtype), (3, 3), 2, 1
    ),
    reach=_max_reach((3, 3), 2, 1),  # every window holds at least eps
  ),
  Case("lse_pool", **_global(lambda x: jaxpool.lse_pool(x, 10.0), layer=("LSEPool", (), {}))),
  Case(
    "lse_pool_window",
    lambda x, k: jaxpool.lse_pool(x, 5.0, (2, 2), 1),
    layer=("LSEPool", ((2, 2), 1), {"r": 5.0}),
  ),
  Case(
    "covariance_pool",
    **_global(
      lambda x: jaxpool.covariance_pool(x), layer=("CovariancePool", (), {}), reverse_only=True
    ),
  ),
  Case(
    "covariance_pool_logm",
    **_global(
      lambda x: jaxpool.covariance_pool(x, normalize="logm", output="triu"), reverse_only=True
    ),
  ),
  Case("bilinear_pool", **_global(lambda x: jaxpool.bilinear_pool(x, x[..., :2] * 2))),
  Case(
    "compact_bilinear_pool",
    **_global(
      lambda x: jaxpool.compact_bilinear_pool(
        x, output_dim=16, key=jax.random.key(0), normalize=False
      ),
      squares=True,
    ),
  ),
  Case("netvlad", **_global(_netvlad)),
  # Attention heads: the weights' scaling keeps 1e30 finite (logits beyond
  # the float range give the softmax's limit; LayerNorm rows are rescaled).
  Case("map_head", **_global(_map_head)),
  Case("attention_pool2d", **_global(_attention_pool2d)),
  Case(
    "attention_pool2d_resampled",
    **_global(lambda x: _attention_pool2d(x, feature_shape=(5, 6)), sharding=False),
  ),
  Case("sim_pool", **_global(_sim_pool)),
  Case("sim_pool_gamma", **_global(lambda x: _sim_pool(x, gamma=2.0))),
  Case(
    "spatial_pyramid_pool",
    **_global(
      lambda x: jaxpool.spatial_pyramid_pool(x, (1, 2)), layer=("SpatialPyramidPool", ((1, 2),), {})
    ),
  ),
  Case(
    "spp_block",
    lambda x, k: jaxpool.spp_block(x, (3,)),
    lambda e, k: jnp.concatenate([e > 0, jaxpool.max_pool(e, (3, 3), 1, 1) > 0], axis=-1),
    layer=("SPPBlock", ((3,),), {}),
  ),
  Case(
    "sppf",
    lambda x, k: jaxpool.sppf(x, 3, 2),
    lambda e, k: jnp.concatenate(
      [
        e > 0,
        jaxpool.max_pool(e, (3, 3), 1, 1) > 0,
        jaxpool.max_pool(jaxpool.max_pool(e, (3, 3), 1, 1), (3, 3), 1, 1) > 0,
      ],
      axis=-1,
    ),
    layer=("SPPF", (3, 2), {}),
  ),
  Case("roi_pool", **_regions(jaxpool.roi_pool, (2, 3))),
  Case("roi_align", **_regions(jaxpool.roi_align, (2, 3), sampling_ratio=2)),
  Case("roi_align_adaptive_aligned", **_regions(jaxpool.roi_align, 2, aligned=True)),
  Case("multi_scale_roi_align", **_regions(_two_levels, (2, 3), sampling_ratio=2)),
  # Position-sensitive: the 3 features are one per bin of (1, 3) or (3, 1).
  Case("ps_roi_align", **_regions(jaxpool.ps_roi_align, (1, 3), sampling_ratio=2)),
  Case("ps_roi_align_adaptive", **_regions(jaxpool.ps_roi_align, (3, 1))),
  Case("ps_roi_pool", **_regions(jaxpool.ps_roi_pool, (3, 1))),
  Case(
    "fractional_max_pool_paper",
    lambda x, k: jaxpool.fractional_max_pool(x, output_shape=(5, 6), regions="random", key=k),
    random=True,
    sharding=False,
  ),
]

BY_ID = {case.id: case for case in CASES}
# Public functions without a row of their own, and why (tests/test_api.py
# checks that every other one has a row of its name).
EXEMPT = {
  "lift_down_pool_with_constraints": (
    "its bands are lift_down_pool's row; its constraints are batch means, a"
    " training loss rather than a windowed output (tests/test_lifting.py)"
  ),
}


def reach(case: Case, e, key=None):
  """The outputs whose windows contain the hot cell of one-hot ``e``."""
  if case.reach is not None:
    return case.reach(e, key)
  return case.call(e, key) > 0
