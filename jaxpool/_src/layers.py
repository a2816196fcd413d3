"""Every layer of both Flax APIs, declared once, without Flax.

A `LayerSpec` per layer class says which jaxpool functions it applies,
which arrays its call takes, under which names [`make_pool`][jaxpool.nnx.make_pool] builds it,
and how many output features it makes per input feature. ``jaxpool.nnx`` and
``jaxpool.linen`` declare a class of the same name with ``spec="Name"``:

* a ``function`` or ``random`` spec makes the whole layer: its options are
  the function's arguments after the call-time arrays (names, defaults,
  kinds), checked at construction by the function's own option checks;
* a ``learned`` spec (parameters, or state that needs Flax) is a
  hand-written class on the same base, which takes its name, registry
  entries and feature multiplier from here.

Each API registers its classes under ``pools`` from this table, so the two
registries agree by construction, and ``tests/test_api.py`` derives its
tables from it.
"""

from __future__ import annotations

import dataclasses
import fractions
from collections.abc import Callable, Mapping
from typing import Any, Literal

from jaxpool._src import (
  adaptive,
  antialias,
  attention,
  bilinear,
  classic,
  covariance,
  dpp,
  dynamic,
  fractional,
  indices,
  lift_layer,
  lifting,
  means,
  mixed,
  netvlad,
  pyramid,
  region,
  roi_pool,
  stochastic,
  weighted,
)
from jaxpool._src.core.checks import check_unpadded
from jaxpool._src.core.geometry import normalize_output_size

__all__ = ["LAYERS", "LayerSpec", "spec_of", "window_arguments"]


def _one(options: Mapping[str, Any]) -> int:
  del options
  return 1


def _per_bin_features(options: Mapping[str, Any]) -> fractions.Fraction:
  """Position-sensitive RoI pooling: each of the ``ph * pw`` bins reads its
  own slice of the features, so ``C`` in gives ``C / (ph * pw)`` out."""
  ph, pw = normalize_output_size("output_shape", options["output_shape"], 2)
  return fractions.Fraction(1, ph * pw)


def _unpadded_window(owner, window_shape, strides, padding, options):
  """S3Pool's layer from a window: down-sampling by ``strides``, no padding."""
  check_unpadded(owner, padding)
  return (window_shape, strides), options


def _fractional_window(owner, window_shape, strides, padding, options):
  """FractionalMaxPool's layer from a window: average stride ``strides``,
  torch's windows of ``window_shape + overlap`` (``overlap=1`` by default,
  which makes the starts pseudo-random at an integer ratio)."""
  check_unpadded(owner, padding)
  options = dict(options)
  arguments = fractional.layer_arguments(
    window_shape,
    strides,
    overlap=options.pop("overlap", 1),
    regions=options.pop("regions", "torch"),
  )
  return (arguments.pop("window_shape", None),), {**arguments, **options}


def _blur_window(owner, window_shape, strides, padding, options):
  """BlurPool's layer from a pooling window: down-sampling by ``strides``
  (default the window) with a binomial filter one tap wider than the window
  and ``k // 2`` cells of padding on both sides of an axis with window
  ``k``. For ``(2, 2)`` that is timm's default (the 3-tap
  ``[1, 2, 1] / 4``, padding 1); with the stride equal to the window, the
  output has the pooling's size whenever the input's size is a multiple of
  the stride."""
  check_unpadded(owner, padding)
  strides = window_shape if strides is None else strides
  filter_shape = tuple(k + 1 for k in window_shape)
  return (filter_shape, strides, tuple((k // 2, k // 2) for k in window_shape)), dict(options)


def _max_blur_window(owner, window_shape, strides, padding, options):
  """MaxBlurPool's layer from a pooling window: the max over the window at
  stride 1 (with the padding), then the blur at ``strides`` (default the
  window)."""
  del owner
  strides = window_shape if strides is None else strides
  return (window_shape, strides, padding), dict(options)


@dataclasses.dataclass(frozen=True)
class LayerSpec:
  """One layer class of ``jaxpool.nnx`` and ``jaxpool.linen``.

  Attributes:
    functions: the public functions the layer applies; a ``function`` or
      ``random`` layer is made from the first.
    kind: ``'function'`` (options bound at construction), ``'random'`` (the
      same, with a key per training call), or ``'learned'`` (hand-written:
      parameters or Flax state).
    inputs: the arrays the call takes, in order (never options).
    pools: registry names -> the default options ``make_pool`` adds.
    feature_multiplier: ``options -> output features per input feature``,
      from the layer's options by name (a ``fractions.Fraction`` where the
      layer divides the features: position-sensitive RoI pooling).
    apis: the APIs that have the layer (DynOPool's size is state a Linen
      module cannot change between steps).
    window_arguments: ``(owner, window_shape, strides, padding, options) ->
      (args, options)``, how ``make_pool`` builds the layer for a window;
      ``None``: the window triple is the constructor's first arguments.
  """

  functions: tuple[Callable[..., Any], ...]
  kind: Literal["function", "random", "learned"] = "function"
  inputs: tuple[str, ...] = ("x",)
  pools: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
  feature_multiplier: Callable[[Mapping[str, Any]], int | fractions.Fraction] = _one
  apis: tuple[str, ...] = ("nnx", "linen")
  window_arguments: Callable[..., tuple[tuple, dict]] | None = None

  @property
  def function(self) -> Callable[..., Any]:
    return self.functions[0]

  @property
  def call_arrays(self) -> tuple[str, ...]:
    """The function's arguments the layer never takes at construction."""
    return self.inputs + (("key",) if self.kind == "random" else ())


def _fn(*functions, **fields) -> LayerSpec:
  return LayerSpec(functions, **fields)


LAYERS: dict[str, LayerSpec] = {
  # Classic.
  "MaxPool": _fn(classic.max_pool, pools={"max": {}}),
  "MinPool": _fn(classic.min_pool, pools={"min": {}}),
  "AvgPool": _fn(classic.avg_pool, pools={"avg": {}}),
  "LpPool": _fn(classic.lp_pool, pools={"lp": {"p": 2.0}}),
  "MedianPool": _fn(classic.median_pool, pools={"median": {}}),
  "AvgMaxPool": _fn(
    classic.avg_max_pool,
    pools={"avgmax": {"combine": "add"}, "catavgmax": {"combine": "concat"}},
    feature_multiplier=lambda o: 2 if o.get("combine") == "concat" else 1,
  ),
  # Adaptive and global.
  "AdaptiveAvgPool": _fn(adaptive.adaptive_avg_pool),
  "AdaptiveMaxPool": _fn(adaptive.adaptive_max_pool),
  "GlobalAvgPool": _fn(adaptive.global_avg_pool),
  "GlobalMaxPool": _fn(adaptive.global_max_pool),
  # Indices and unpooling.
  "MaxPoolWithIndices": _fn(indices.max_pool_with_indices),
  "MaxUnpool": _fn(indices.max_unpool, inputs=("x", "indices")),
  # Anti-aliased.
  "BlurPool": _fn(antialias.blur_pool, pools={"blur": {}}, window_arguments=_blur_window),
  "MaxBlurPool": _fn(
    antialias.max_blur_pool, pools={"maxblur": {}}, window_arguments=_max_blur_window
  ),
  # Random.
  "StochasticPool": _fn(stochastic.stochastic_pool, kind="random", pools={"stochastic": {}}),
  "S3Pool": _fn(
    stochastic.s3_pool, kind="random", pools={"s3": {}}, window_arguments=_unpadded_window
  ),
  "FractionalMaxPool": _fn(
    fractional.fractional_max_pool,
    kind="random",
    pools={"fractional": {}},
    window_arguments=_fractional_window,
  ),
  "MixedPool": _fn(mixed.mixed_pool, kind="random", pools={"mixed": {}}),
  # Learned mixtures and weights.
  "LearnedMixedPool": _fn(mixed.mixed_pool, kind="learned", pools={"learnedmixed": {}}),
  "GatedPool": _fn(mixed.gated_pool, kind="learned", pools={"gated": {}}),
  "SoftPool": _fn(weighted.soft_pool, pools={"soft": {}}),
  "LipPool": _fn(weighted.lip_pool, inputs=("x", "logits")),
  "LIP": _fn(weighted.lip_pool, kind="learned", pools={"lip": {}}),
  "DPP": _fn(dpp.dpp_pool, kind="learned", pools={"dpp": {}}),
  # Lifting.
  "LiftDownPool": _fn(
    lifting.lift_pool,
    lifting.lift_down_pool,
    lifting.lift_down_pool_with_constraints,
    kind="learned",
    pools={"lift": {}},
    feature_multiplier=lambda o: lift_layer.output_multiplier(
      lift_layer.check_output(o.get("output", "sum"), o.get("spatial_dims", 2))
    ),
  ),
  "LiftUpPool": _fn(lifting.lift_up_pool, kind="learned", inputs=("bands",)),
  # Dynamic.
  "DynOPool": _fn(dynamic.dyno_pool, kind="learned", pools={"dyno": {}}, apis=("nnx",)),
  # Generalised means (heads by default, or sliding windows).
  "GeM": _fn(means.gem_pool, kind="learned"),
  "LSEPool": _fn(means.lse_pool, kind="learned"),
  # Second order and NetVLAD.
  "CovariancePool": _fn(covariance.covariance_pool, kind="learned"),
  "BilinearPool": _fn(bilinear.bilinear_pool, kind="learned"),
  "CompactBilinearPool": _fn(bilinear.compact_bilinear_pool, kind="learned"),
  "NetVLAD": _fn(netvlad.netvlad, kind="learned", feature_multiplier=lambda o: o["clusters"]),
  # Attention heads (one query attends over the positions).
  "MAPHead": _fn(attention.map_head, kind="learned"),
  "AttentionPool2d": _fn(attention.attention_pool2d, kind="learned"),
  "SimPool": _fn(attention.sim_pool, kind="learned"),
  # Pyramids.
  "SpatialPyramidPool": _fn(pyramid.spatial_pyramid_pool),
  # Alone, the input and its poolings concatenated; between ultralytics'
  # convolutions, out_features.
  "SPPBlock": _fn(
    pyramid.spp_block,
    kind="learned",
    feature_multiplier=lambda o: (
      1 + len(o.get("kernel_sizes", (5, 9, 13))) if o.get("features") is None else 1
    ),
  ),
  "SPPF": _fn(
    pyramid.sppf,
    kind="learned",
    feature_multiplier=lambda o: 1 + o.get("repeats", 3) if o.get("features") is None else 1,
  ),
  # Regions.
  "RoIPool": _fn(roi_pool.roi_pool, inputs=("x", "boxes")),
  "RoIAlign": _fn(region.roi_align, inputs=("x", "boxes")),
  "MultiScaleRoIAlign": _fn(region.multi_scale_roi_align, inputs=("x", "boxes")),
  "PSRoIAlign": _fn(
    region.ps_roi_align, inputs=("x", "boxes"), feature_multiplier=_per_bin_features
  ),
  "PSRoIPool": _fn(
    roi_pool.ps_roi_pool, inputs=("x", "boxes"), feature_multiplier=_per_bin_features
  ),
}


def spec_of(cls: type, name: str) -> LayerSpec:
  """The spec a layer class names in its class statement (``spec="Name"``):
  the entry of its own class name."""
  if name != cls.__name__:
    raise TypeError(f"class {cls.__name__} names the spec of {name!r}; a layer takes its own.")
  if name not in LAYERS:
    raise KeyError(f"{name!r} has no entry in jaxpool._src.layers.LAYERS.")
  return LAYERS[name]


def window_arguments(cls: type, window_shape, strides, padding, options) -> tuple[tuple, dict]:
  """``(args, options)`` to build layer class ``cls`` for a window
  (``make_pool``): its spec's rule, or the window triple itself."""
  spec = getattr(cls, "spec", None)
  if spec is not None and spec.window_arguments is not None:
    return spec.window_arguments(cls.__name__, window_shape, strides, padding, options)
  return (window_shape, strides, padding), dict(options)
