"""Parametrisations and small sub-networks of the learned poolings.

Pure functions, one implementation each, that both layer APIs
(:mod:`jaxpool.nnx`, :mod:`jaxpool.linen`) call: an ``init_*`` function makes
the parameters (a flat ``dict`` of arrays the layer stores as its own
parameters) and an apply function turns them into the arguments of the
pooling function. Layers own the parameters and the RNG plumbing; the math
lives here.

* LIP (Gao et al. 2019): the logit module ``logits = 12 * sigmoid(IN(f(x)))``.
* DPP (Saeedan et al. 2018): ``alpha = exp(min(a, 10))``, ``lam = exp(l)`` and
  the Full-DPP reference filter (a learned per-feature window mean).
* Lee et al. (2016): the mixing proportion ``sigmoid(w)`` and the gating mask.
* LiftPool (Zhao & Snoek 2021): the predictor and updater
  ``tanh(mix(relu(depthwise(v))))``.
* DynOPool (Jang et al. 2022): ``alpha = 1 / r``, the optional learned query
  offset, and the area ratio of the complexity loss.
* iSQRT-COV's 1x1 reduction; NetVLAD's k-means start (v2 and the official v1).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from jax import lax

from jaxpool._src.core import dtypes
from jaxpool._src.core.checks import check_bool, check_choice, check_positive_number, is_int
from jaxpool._src.core.geometry import (
    PaddingLike,
    normalize_spatial_shape,
    window_geometry,
)
from jaxpool._src.core.taps import window_taps
from jaxpool._src.dynamic import straight_through_sizes
from jaxpool._src.lifting import along_axis

__all__ = [
    "LIP_LOGIT_BOUND",
    "check_clusters",
    "check_dyno_ratios",
    "check_kmeans_iterations",
    "check_features",
    "check_lift_options",
    "dpp_arguments",
    "dyno_area_ratio",
    "dyno_delta",
    "dyno_scale",
    "gate_init",
    "init_dpp_params",
    "init_dyno_params",
    "init_netvlad_params",
    "init_netvlad_random",
    "init_reduction_params",
    "init_lift_params",
    "init_lip_logit_params",
    "lift_step",
    "lift_steps",
    "kmeans",
    "lip_logits",
    "mix_proportion",
    "per_feature_shape",
    "reduce_features",
]

LIP_LOGIT_BOUND = 12.0
_NORM_EPSILON = 1e-6


def check_features(owner: str, features, *, required: bool = True) -> int | None:
  """``features`` as an int >= 1 (or ``None`` when not ``required``)."""
  if features is None and not required:
    return None
  if not is_int(features) or features < 1:
    raise ValueError(
        f"{owner} needs features=<int >= 1> (the number of input features);"
        f" got features={features!r}."
    )
  return int(features)


# ---------------------------------------------------------------------------
# LIP's logit module.
# ---------------------------------------------------------------------------


def _conv_numbers(num_spatial: int):
  spatial = "DHW"[-num_spatial:] if num_spatial <= 3 else None
  if spatial is None:
    raise ValueError(f"LIP's logit module supports 1 to 3 spatial axes; got {num_spatial}.")
  return ("N" + spatial + "C", spatial + "IO", "N" + spatial + "C")


def _conv(x: jax.Array, kernel: jax.Array, bias: jax.Array) -> jax.Array:
  """A stride-1 'SAME' convolution of ``(N, *spatial, C)`` input."""
  n = kernel.ndim - 2
  y = lax.conv_general_dilated(
      x, kernel.astype(x.dtype), (1,) * n, "SAME",
      dimension_numbers=_conv_numbers(n),
  )
  return y + bias.astype(x.dtype)


def _instance_norm(x: jax.Array, scale: jax.Array, bias: jax.Array) -> jax.Array:
  """Normalises every (example, feature) plane over its spatial axes."""
  axes = tuple(range(1, x.ndim - 1))
  mean = jnp.mean(x, axis=axes, keepdims=True)
  var = jnp.mean(jnp.square(x - mean), axis=axes, keepdims=True)
  y = (x - mean) * lax.rsqrt(var + _NORM_EPSILON)
  return y * scale.astype(x.dtype) + bias.astype(x.dtype)


def init_lip_logit_params(
    key: jax.Array,
    features: int,
    num_spatial: int,
    *,
    logit_module: str = "simplified",
    bottleneck_width: int | None = None,
) -> dict[str, jax.Array]:
  """Parameters of LIP's logit module, ``conv{i}_kernel``/``conv{i}_bias`` and
  ``norm{i}_scale``/``norm{i}_bias`` per stage.

  ``'simplified'`` (the paper's stem module): one 3x3 convolution;
  ``'bottleneck'``: 1x1 -> 3x3 -> 1x1 convolutions, ``bottleneck_width``
  features inside (default ``features // 2``). The last convolution is
  zero-initialised, so the logits start constant and LIP starts as average
  pooling over the real cells of each window; the others use LeCun normal
  initialisation.
  """
  features = check_features("LIP", features)
  check_choice("logit_module", logit_module, ("simplified", "bottleneck"))
  if logit_module == "simplified":
    stages = [(features, features, 3)]
  else:
    if bottleneck_width is not None and (not is_int(bottleneck_width) or bottleneck_width < 1):
      raise ValueError(
          f"bottleneck_width must be an int >= 1 or None; got {bottleneck_width!r}."
      )
    width = bottleneck_width or max(features // 2, 1)
    stages = [(features, width, 1), (width, width, 3), (width, features, 1)]
  params = {}
  keys = jax.random.split(key, len(stages))
  lecun = jax.nn.initializers.lecun_normal()
  for i, ((fan_in, fan_out, size), k) in enumerate(zip(stages, keys)):
    shape = (size,) * num_spatial + (fan_in, fan_out)
    last = i == len(stages) - 1
    params[f"conv{i}_kernel"] = jnp.zeros(shape) if last else lecun(k, shape)
    params[f"conv{i}_bias"] = jnp.zeros((fan_out,))
    params[f"norm{i}_scale"] = jnp.ones((fan_out,))
    params[f"norm{i}_bias"] = jnp.zeros((fan_out,))
  return params


def lip_logits(params: dict[str, jax.Array], x: jax.typing.ArrayLike) -> jax.Array:
  """``12 * sigmoid(IN(f(x)))``: LIP's logits, bounded to ``[0, 12]`` as in
  the official code; ``f`` is conv -> IN (-> ReLU -> conv -> IN)...

  Args:
    params: from :func:`init_lip_logit_params`.
    x: ``(*batch, *spatial, features)`` input.

  Returns:
    Logits of ``x``'s shape, in float32 (or wider).
  """
  x = dtypes.float_input(x, "LIP")
  stages = sum(1 for name in params if name.endswith("_kernel"))
  num_spatial = params["conv0_kernel"].ndim - 2
  _check_learned_input("LIP", x, num_spatial, params["conv0_kernel"].shape[-2])
  batch = x.shape[: x.ndim - num_spatial - 1]
  h = x.reshape((math.prod(batch),) + x.shape[len(batch):])
  h = h.astype(dtypes.compute_dtype(x.dtype))
  for i in range(stages):
    h = _conv(h, params[f"conv{i}_kernel"], params[f"conv{i}_bias"])
    h = _instance_norm(h, params[f"norm{i}_scale"], params[f"norm{i}_bias"])
    if i < stages - 1:
      h = jax.nn.relu(h)
  return (LIP_LOGIT_BOUND * jax.nn.sigmoid(h)).reshape(batch + h.shape[1:])


def _check_learned_input(owner: str, x, num_spatial: int, features: int) -> None:
  """A ``ValueError`` naming ``features`` unless ``x`` is ``(*batch,
  *spatial, features)`` with the layer's spatial axes and features."""
  if x.ndim < num_spatial + 1:
    raise ValueError(
        f"{owner} pools {num_spatial} spatial axes, so it needs an input of shape"
        f" (*batch, *spatial, features) with {num_spatial + 1} or more axes; got"
        f" shape {x.shape}."
    )
  if x.shape[-1] != features:
    raise ValueError(
        f"{owner}(features={features}) got an input with {x.shape[-1]} features"
        f" (shape {x.shape}); its parameters are per feature."
    )


# ---------------------------------------------------------------------------
# DPP's alpha, lambda and reference filter.
# ---------------------------------------------------------------------------

_DPP_MAX_LOG_ALPHA = 10.0


def init_dpp_params(
    features: int, window_shape: Sequence[int], *, variant: str = "lite"
) -> dict[str, jax.Array]:
  """``log_alpha`` and ``log_lam`` (one per feature, 0: ``alpha = lam = 1`` as
  the official CUDA layer), and for ``variant='full'`` the reference
  ``filter`` of shape ``(*window_shape, features)`` initialised to the box
  filter (so Full-DPP starts as Lite-DPP)."""
  features = check_features("DPP", features)
  check_choice("variant", variant, ("lite", "full"))
  params = {"log_alpha": jnp.zeros((features,)), "log_lam": jnp.zeros((features,))}
  if variant == "full":
    window_shape = normalize_spatial_shape("window_shape", window_shape)
    size = math.prod(window_shape)
    params["filter"] = jnp.full(tuple(window_shape) + (features,), 1.0 / size)
  return params


def dpp_arguments(
    params: dict[str, jax.Array],
    x: jax.Array,
    window_shape: Sequence[int],
    strides: int | Sequence[int] | None = None,
    padding: PaddingLike = "VALID",
    *,
    dilation: int | Sequence[int] | None = None,
    ceil_mode: bool = False,
) -> tuple[jax.Array, jax.Array, jax.Array | None]:
  """``(alpha, lam, reference)`` for :func:`jaxpool.dpp_pool`.

  ``alpha = exp(min(log_alpha, 10))`` and ``lam = exp(log_lam)`` (positive by
  construction); ``reference`` is ``None`` (Lite-DPP: the window mean) or the
  learned per-feature weighted sum of every window, ``sum_t filter[t] x_t``
  over the same windows as the pooling (padded cells count as zero).
  """
  _check_learned_input("DPP", x, len(window_shape), params["log_alpha"].shape[0])
  alpha = jnp.exp(jnp.minimum(params["log_alpha"], _DPP_MAX_LOG_ALPHA))
  lam = jnp.exp(params["log_lam"])
  if "filter" not in params:
    return alpha, lam, None
  geom = window_geometry(
      x.shape, window_shape, strides, padding, dilation=dilation,
      ceil_mode=ceil_mode,
  )
  compute_dtype = dtypes.compute_dtype(x.dtype)
  weights = params["filter"].astype(compute_dtype).reshape((geom.window_size, -1))
  reference = sum(
      w * tap for w, tap in zip(weights, window_taps(x.astype(compute_dtype), geom))
  )
  return alpha, lam, reference


# ---------------------------------------------------------------------------
# Lee et al.'s mixing proportion and gating mask.
# ---------------------------------------------------------------------------


def mix_proportion(logit: jax.Array) -> jax.Array:
  """``sigmoid(w)``: a mixing proportion in ``[0, 1]`` from an unconstrained
  parameter (initialised to 0: half max, half average)."""
  return jax.nn.sigmoid(logit)


def gate_init(
    key: jax.Array, window_shape: Sequence[int], features: int | None = None
) -> jax.Array:
  """Gated pooling's mask: ``window_shape`` (shared by every feature, the
  paper's 9 parameters for 3x3) or ``(*window_shape, features)``, Gaussian
  with std 0.1 as in the official AlexNet example."""
  shape = normalize_spatial_shape("window_shape", window_shape)
  if features is not None:
    shape += (check_features("GatedPool", features),)
  return 0.1 * jax.random.normal(key, shape)


def per_feature_shape(owner: str, per_feature, features) -> tuple[int, ...]:
  """``(features,)`` when ``per_feature`` (features then required), else ``()``."""
  if check_bool("per_feature", per_feature):
    return (check_features(f"{owner}(per_feature=True)", features),)
  return ()



# ---------------------------------------------------------------------------
# LiftPool's predictor and updater.
# ---------------------------------------------------------------------------

LIFT_STEPS = ("predict", "update")


def check_lift_options(kernel_size, mixing) -> None:
  """``kernel_size`` an odd int >= 1; ``mixing`` 'channelwise' or 'dense'."""
  if not is_int(kernel_size) or kernel_size < 1 or kernel_size % 2 == 0:
    raise ValueError(f"kernel_size must be an odd int >= 1; got {kernel_size!r}.")
  check_choice("mixing", mixing, ("channelwise", "dense"))


def init_lift_params(
    key: jax.Array,
    features: int,
    *,
    kernel_size: int = 3,
    mixing: str = "channelwise",
) -> dict[str, jax.Array]:
  """Parameters of LiftPool's ``P`` and ``U``: ``{step}_{part}`` for ``step``
  in ``('predict', 'update')``.

  Each step is ``tanh(mix(relu(depthwise(v))))`` (see :func:`lift_step`):
  ``depthwise_kernel`` ``(kernel_size, features)`` (LeCun normal, fan-in
  ``kernel_size``) and ``depthwise_bias`` (zeros); ``mix_kernel``, zeros, of
  shape ``(features,)`` for ``mixing='channelwise'`` (the paper's count, no
  ``C**2`` term) or ``(features, features)`` for ``'dense'`` (Temporal Lift
  Pooling's 1x1 convolution); ``mix_bias`` (zeros). The zero mixing makes
  ``P = U = 0`` at initialisation: the layer starts as the lazy wavelet
  (``s = x_e``, ``d = x_o``).
  """
  features = check_features("LiftDownPool", features)
  check_lift_options(kernel_size, mixing)
  params = {}
  for step, k in zip(LIFT_STEPS, jax.random.split(key)):
    params[f"{step}_depthwise_kernel"] = jax.random.normal(k, (kernel_size, features)) / math.sqrt(kernel_size)
    params[f"{step}_depthwise_bias"] = jnp.zeros((features,))
    mix_shape = (features,) if mixing == "channelwise" else (features, features)
    params[f"{step}_mix_kernel"] = jnp.zeros(mix_shape)
    params[f"{step}_mix_bias"] = jnp.zeros((features,))
  return params


def lift_step(params: dict[str, jax.Array], step: str, v: jax.Array, axis: int = -2) -> jax.Array:
  """One learned lifting step on ``v`` of shape ``(..., n, ..., features)``
  along ``axis`` (by default -2): a depthwise convolution of size ``K`` (zero
  padding ``K // 2``), ReLU, a channel-wise (or dense) mixing, tanh."""
  kernel = params[f"{step}_depthwise_kernel"].astype(v.dtype)
  size, n = kernel.shape[0], v.shape[axis]
  pad = [(0, 0)] * v.ndim
  pad[axis] = (size // 2, size // 2)
  padded = jnp.pad(v, pad)
  h = sum(kernel[j] * lax.slice_in_dim(padded, j, j + n, axis=axis) for j in range(size))
  h = jax.nn.relu(h + params[f"{step}_depthwise_bias"].astype(v.dtype))
  mix = params[f"{step}_mix_kernel"].astype(v.dtype)
  h = h * mix if mix.ndim == 1 else h @ mix
  return jnp.tanh(h + params[f"{step}_mix_bias"].astype(v.dtype))


def lift_steps(params: dict[str, jax.Array]):
  """``(predict, update)`` callables for :func:`jaxpool.lift_down_pool`."""
  return tuple(
      along_axis(lambda v, axis=-2, step=step: lift_step(params, step, v, axis))
      for step in LIFT_STEPS
  )


# ---------------------------------------------------------------------------
# DynOPool's learned size and offset.
# ---------------------------------------------------------------------------

DYNO_OFFSETS = ("cell", "learned")


def check_dyno_ratios(name: str, value, spatial_dims: int) -> tuple[float, ...]:
  """``value`` (a positive number, or one per axis) as ``spatial_dims`` floats."""
  values = tuple(value) if isinstance(value, Sequence) else (value,) * spatial_dims
  if len(values) != spatial_dims:
    raise ValueError(
        f"{name} must be a number or {spatial_dims} numbers (one per spatial"
        f" axis); got {value!r}."
    )
  return tuple(check_positive_number(name, v) for v in values)


def init_dyno_params(
    spatial_dims: int,
    *,
    init_ratio=0.5,
    offset: str = "cell",
    features: int | None = None,
    per_feature: bool = False,
    max_ratio: Sequence[float] | None = None,
) -> dict[str, jax.Array]:
  """DynOPool's parameters: ``alpha = 1 / r`` per spatial axis (the paper's
  reparameterisation), and with ``offset='learned'`` the query offset
  ``offset`` in input pixels, per axis (``(spatial_dims,)``) or per axis and
  feature (``(spatial_dims, features)``), initialised to a quarter of the
  initial cell, ``alpha / 4``. So both start as the quarter-cell reading (2x2
  max pooling for ``init_ratio=0.5``). With ``max_ratio`` (checked floats),
  every initial ratio must be at most its bound."""
  check_choice("offset", offset, DYNO_OFFSETS)
  ratios = check_dyno_ratios("init_ratio", init_ratio, spatial_dims)
  if max_ratio is not None and any(r > m for r, m in zip(ratios, max_ratio)):
    raise ValueError(
        f"init_ratio {ratios} exceeds max_ratio {tuple(max_ratio)} on some"
        " axis: the layer would start clamped at max_ratio. Lower init_ratio"
        " or raise max_ratio."
    )
  alpha = 1 / jnp.asarray(ratios, jnp.float32)
  params = {"alpha": alpha}
  if offset == "learned":
    extra = per_feature_shape("DynOPool", per_feature, features)
    quarter = (alpha / 4).reshape((spatial_dims,) + (1,) * len(extra))
    params["offset"] = jnp.broadcast_to(quarter, (spatial_dims, *extra))
  elif check_bool("per_feature", per_feature):
    raise ValueError("per_feature=True needs offset='learned' (the cell offset has no parameters).")
  return params


def dyno_scale(params: dict[str, jax.Array], max_ratio: Sequence[float]) -> jax.Array:
  """``alpha``, kept at ``alpha >= 1 / max_ratio`` (so the output is at most
  ``max_ratio`` times the input; the gradient stops at the bound)."""
  return jnp.maximum(params["alpha"], 1 / jnp.asarray(max_ratio, params["alpha"].dtype))


def dyno_delta(params: dict[str, jax.Array], in_sizes: Sequence[int]) -> jax.Array | None:
  """The learned offset in :func:`jaxpool.dyno_pool`'s normalised units
  (``2 * offset / L``), or ``None`` for the quarter cell."""
  if "offset" not in params:
    return None
  offset = params["offset"]
  lengths = jnp.asarray(in_sizes, offset.dtype).reshape((-1,) + (1,) * (offset.ndim - 1))
  return 2 * offset / lengths


def dyno_area_ratio(
    in_sizes: Sequence[int], scale: jax.Array, output_shape: Sequence[int],
    initial_shape: Sequence[int],
) -> jax.Array:
  """``prod(straight-through sizes) / prod(initial sizes)``: the factor by
  which the layers after this one cost more than at initialisation, the
  weight of their MACs in the complexity loss (differentiable in ``alpha``)."""
  sizes = straight_through_sizes(in_sizes, scale, output_shape)
  return jnp.prod(sizes) / math.prod(initial_shape)


# ---------------------------------------------------------------------------
# Second-order heads: iSQRT-COV's reduction, NetVLAD's k-means start.
# ---------------------------------------------------------------------------

NETVLAD_VARIANTS = ("v2", "v1")


def init_reduction_params(key: jax.Array, features: int, dim: int) -> dict[str, jax.Array]:
  """iSQRT-COV's 1x1 convolution from ``features`` to ``dim`` features:
  ``kernel`` ``(features, dim)`` (LeCun normal) and ``bias`` (zeros)."""
  features = check_features("CovariancePool", features)
  dim = check_features("CovariancePool(reduce_dim=...)", dim)
  kernel = jax.random.normal(key, (features, dim)) / math.sqrt(features)
  return {"kernel": kernel, "bias": jnp.zeros((dim,))}


def reduce_features(params: dict[str, jax.Array], x: jax.Array) -> jax.Array:
  """``relu(x @ kernel + bias)`` over the feature axis (the 1x1 convolution
  and ReLU; iSQRT-COV also batch-normalises in between)."""
  kernel = params["kernel"].astype(x.dtype)
  return jax.nn.relu(x @ kernel + params["bias"].astype(x.dtype))


def kmeans(key: jax.Array, points: jax.Array, clusters: int, *, iterations: int = 20) -> jax.Array:
  """``clusters`` centres of ``points`` ``(N, D)``: k-means++ seeding, then
  ``iterations`` Lloyd steps (an empty cluster keeps its centre).

  Examples:
    >>> import jax, jax.numpy as jnp
    >>> points = jnp.array([[0.0], [0.1], [10.0], [10.1]])
    >>> jnp.sort(kmeans(jax.random.key(0), points, 2), axis=0)
    Array([[ 0.05],
           [10.05]], dtype=float32)
  """
  points = jnp.asarray(points, jnp.float32)
  if points.ndim != 2 or points.shape[0] < clusters:
    raise ValueError(
        f"kmeans needs descriptors of shape (N, D) with N >= clusters ="
        f" {clusters}; got {points.shape}."
    )

  def sq_distances(centres):
    return jnp.sum((points[:, None, :] - centres[None]) ** 2, axis=-1)

  keys = jax.random.split(key, clusters)
  centres = points[jax.random.randint(keys[0], (), 0, points.shape[0])][None]
  for k in keys[1:]:  # k-means++: the next centre with probability ~ d^2
    nearest = jnp.min(sq_distances(centres), axis=1)
    logits = jnp.log(jnp.maximum(nearest, 1e-30))
    centres = jnp.concatenate([centres, points[jax.random.categorical(k, logits)][None]])
  for _ in range(iterations):
    assign = jax.nn.one_hot(jnp.argmin(sq_distances(centres), axis=1), clusters)
    counts = jnp.sum(assign, axis=0)[:, None]
    sums = assign.T @ points
    centres = jnp.where(counts > 0, sums / jnp.maximum(counts, 1), centres)
  return centres


def check_clusters(clusters) -> int:
  """NetVLAD's ``clusters`` as an int >= 2 (a soft assignment needs two)."""
  clusters = check_features("NetVLAD(clusters=...)", clusters)
  if clusters < 2:
    raise ValueError(f"NetVLAD needs clusters >= 2 for its soft assignment; got {clusters}.")
  return clusters


def check_kmeans_iterations(iterations) -> int:
  """NetVLAD's ``kmeans_iterations`` as an int >= 0 (0: the sampled start)."""
  if not is_int(iterations) or iterations < 0:
    raise ValueError(f"kmeans_iterations must be an int >= 0; got {iterations!r}.")
  return int(iterations)


def init_netvlad_params(
    key: jax.Array,
    descriptors: jax.typing.ArrayLike,
    clusters: int,
    *,
    variant: str = "v2",
    normalize_input: bool = True,
    iterations: int = 20,
) -> dict[str, jax.Array]:
  """NetVLAD's start from k-means on sample descriptors ``(N, D)``, as the
  official code (Relja/netvlad):

  * ``"v2"`` (the paper): ``w_k = 2 alpha c_k``, ``b_k = -alpha ||c_k||^2``
    with ``alpha = -log(0.01) / mean(d_2^2 - d_1^2)`` (``d_1``, ``d_2``: the
    distances of a descriptor to its nearest and second nearest centre), so
    the soft assignment is about 100 times sharper for the nearest centre.
  * ``"v1"`` (``layerVLAD``, used in all the official experiments):
    ``w_k = alpha c_k / ||c_k||``, ``b_k = 0``, with ``alpha = -log(0.01) /
    mean(top_1 - top_2)`` of the descriptors' dot products with the
    normalised centres.

  The descriptors are L2-normalised first when ``normalize_input`` (as the
  layer normalises its inputs). Returns ``centers`` ``(K, D)``,
  ``assign_weights`` ``(D, K)`` and ``assign_bias`` ``(K,)``.
  """
  check_choice("variant", variant, NETVLAD_VARIANTS)
  clusters = check_clusters(clusters)
  points = jnp.asarray(descriptors, jnp.float32)
  points = points.reshape(-1, points.shape[-1])
  if check_bool("normalize_input", normalize_input):
    points = points / jnp.maximum(jnp.linalg.norm(points, axis=-1, keepdims=True), 1e-12)
  centres = kmeans(key, points, clusters, iterations=iterations)
  if variant == "v2":
    d2 = jnp.sort(jnp.sum((points[:, None] - centres[None]) ** 2, axis=-1), axis=1)
    alpha = -math.log(0.01) / jnp.maximum(jnp.mean(d2[:, 1] - d2[:, 0]), 1e-12)
    weights, bias = 2 * alpha * centres.T, -alpha * jnp.sum(centres ** 2, axis=1)
  else:
    unit = centres / jnp.maximum(jnp.linalg.norm(centres, axis=1, keepdims=True), 1e-12)
    dots = -jnp.sort(-(points @ unit.T), axis=1)
    alpha = -math.log(0.01) / jnp.maximum(jnp.mean(dots[:, 0] - dots[:, 1]), 1e-12)
    weights, bias = alpha * unit.T, jnp.zeros((clusters,))
  return {"centers": centres, "assign_weights": weights, "assign_bias": bias}


def init_netvlad_random(key: jax.Array, features: int, clusters: int) -> dict[str, jax.Array]:
  """NetVLAD's start without descriptors: unit-norm random centres and the
  v2 assignment with ``alpha = 1`` (``w_k = 2 c_k``, ``b_k = -1``). A start
  from k-means (:func:`init_netvlad_params`) is what the paper uses."""
  features = check_features("NetVLAD", features)
  clusters = check_clusters(clusters)
  centres = jax.random.normal(key, (clusters, features))
  centres = centres / jnp.linalg.norm(centres, axis=1, keepdims=True)
  return {"centers": centres, "assign_weights": 2 * centres.T,
          "assign_bias": -jnp.ones((clusters,))}
