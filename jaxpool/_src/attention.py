"""Attention pooling heads: big_vision's MAP head, CLIP's AttentionPool2d
and SimPool, each one query attending over an image's positions (or a set of
tokens).

The learned arrays are one nested dict per head, under the names of the
reference code (big_vision's Linen tree, CLIP's attributes, timm's), so
their checkpoints load without renaming. Shared here: the attention of one
query per head, its key projection folded into the query (no token is
projected), computed on power-of-two rescaled queries so that logits that
leave the float range still give the softmax's limit, and a
LayerNorm on rescaled rows (no overflow of the variance). The layers'
initialisation is in ``attention_layer.py``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxpool._src.core import dtypes
from jaxpool._src.core.checks import check_positive_number, is_int
from jaxpool._src.core.descriptors import positions, times_power_of_two
from jaxpool._src.core.eager import compiled_when_eager
from jaxpool._src.core.geometry import global_axes
from jaxpool._src.core.options import register_option_check

__all__ = [
  "attention_pool2d",
  "check_eps",
  "check_feature_shape",
  "check_gamma",
  "check_num_heads",
  "head_dim",
  "prefix",
  "MHA",
  "map_head",
  "resample_weights",
  "sim_pool",
]

# SimPool's shift before the power (timm and the official code).
_SIMPOOL_SHIFT = 1e-6
# big_vision's LayerNorm: Flax's default epsilon.
_MAP_EPS = 1e-6
# Logits (relative to the largest) are cut here: exp(-1e4) is 0 in every
# float type, and below the cut the derivative is 0 too (a tangent times an
# overflowing 2^e would meet exp's 0 as inf * 0).
_LOWEST_LOGIT = -1e4


# ---------------------------------------------------------------------------
# Argument checks.
# ---------------------------------------------------------------------------


def prefix(owner: str | None) -> str:
  """``"owner: "`` for an error message, or nothing."""
  return f"{owner}: " if owner else ""


def check_num_heads(num_heads, owner: str | None = None) -> int:
  """``num_heads`` as an int >= 1."""
  if not is_int(num_heads) or num_heads < 1:
    raise ValueError(f"{prefix(owner)}num_heads must be an int >= 1; got {num_heads!r}.")
  return int(num_heads)


def head_dim(owner: str, width: int, num_heads: int) -> int:
  """The features per head; a ``ValueError`` unless ``num_heads`` divides
  ``width``."""
  if width % num_heads:
    raise ValueError(
      f"{owner}: the {width} features must be divisible by num_heads={num_heads}"
      f" (each head takes width // num_heads of them)."
    )
  return width // num_heads


def check_feature_shape(feature_shape, owner: str | None = None) -> tuple[int, ...]:
  """``feature_shape`` as a non-empty tuple of ints >= 1 (an int is a
  ``TypeError``: the number of spatial axes is not known from it)."""
  if is_int(feature_shape) or not isinstance(feature_shape, Sequence) or not feature_shape:
    raise TypeError(
      f"{prefix(owner)}feature_shape must be a tuple of ints, one per spatial axis"
      f" (e.g. (7, 7)); got {feature_shape!r}."
    )
  if not all(is_int(n) and n >= 1 for n in feature_shape):
    raise ValueError(f"{prefix(owner)}feature_shape must hold ints >= 1; got {feature_shape!r}.")
  return tuple(int(n) for n in feature_shape)


def check_gamma(gamma, owner: str | None = None) -> float | None:
  """SimPool's ``gamma``: ``None`` or a finite number > 0."""
  if gamma is None:
    return None
  try:
    return check_positive_number("gamma", gamma)
  except (TypeError, ValueError) as error:
    raise type(error)(f"{prefix(owner)}{error} (or None: no power)") from None


def check_eps(eps, owner: str | None = None) -> float:
  """A LayerNorm's epsilon: a finite number > 0."""
  try:
    return check_positive_number("eps", eps)
  except (TypeError, ValueError) as error:
    raise type(error)(f"{prefix(owner)}{error} (the LayerNorm's epsilon)") from None


# ---------------------------------------------------------------------------
# The learned arrays, read from the nested dict with clear errors.
# ---------------------------------------------------------------------------


def _where(path: tuple[str, ...]) -> str:
  return "params" + "".join(f"[{name!r}]" for name in path)


def _array(op, params, path, shape, names, dtype, *, optional=False):
  """``params[path[0]][path[1]]...`` as a ``dtype`` array of ``shape``
  (``None``: any size), or ``None`` when ``optional`` and absent. ``names``
  says what each axis is, for the error."""
  node = params
  for i, name in enumerate(path):
    if not isinstance(node, Mapping):
      raise TypeError(
        f"{op}: {_where(path[:i])} must be a dict (the reference's parameter tree);"
        f" got {type(node).__name__}."
      )
    if name not in node:
      if optional:
        return None
      raise ValueError(
        f"{op}: {_where(path[:i])} has no {name!r} (it has {sorted(map(str, node))});"
        f" see the docstring for the expected tree."
      )
    node = node[name]
  value = jnp.asarray(node)
  if not dtypes.is_float(value.dtype):
    raise TypeError(f"{op}: {_where(path)} must be floating point; got dtype {value.dtype}.")
  if value.ndim != len(shape) or any(s is not None and s != n for s, n in zip(shape, value.shape)):
    sizes = ", ".join("*" if s is None else str(s) for s in shape)
    raise ValueError(
      f"{op}: {_where(path)} must have shape ({names}) = ({sizes}); got {value.shape}."
    )
  return value.astype(dtype)


# ---------------------------------------------------------------------------
# Shared pieces: attention of one query per head, LayerNorm.
# ---------------------------------------------------------------------------


def _exponent(v: jax.Array, axes: tuple[int, ...]) -> jax.Array:
  """int32 ``e`` with ``2^e`` at or above the largest ``|v|`` over ``axes``
  (0 where that is 0 or not finite), a constant for the derivative."""
  top = jax.lax.stop_gradient(jnp.max(jnp.abs(v), axis=axes, keepdims=True))
  _, exponent = jnp.frexp(jnp.where(jnp.isfinite(top) & (top > 0), top, 0.5))
  return exponent.astype(jnp.int32)


def _fold_query(query: jax.Array, kernel: jax.Array) -> tuple[jax.Array, jax.Array]:
  r"""One query per head moved through the key projection: ``query``
  ``(..., H, d)`` and ``kernel`` ``(D, H, d)`` give ``q'`` ``(..., H, D)``
  with $q_h \cdot (t W^k_h + b^k_h) = 2^e\, q'_h \cdot t + q_h \cdot b^k_h$
  for every token $t$, and ``e`` ``(..., H, 1)``. The query is divided by a
  power of two at or above its largest magnitude first (``e``), so ``q'``
  cannot overflow where the logits would not. The key bias adds the same
  $q_h \cdot b^k_h$ to every token's logit, which the softmax cancels: it
  is dropped (its derivative is 0)."""
  exponent = _exponent(query, (-1,))
  unit = times_power_of_two(query, -exponent)
  return jnp.einsum("...hk,dhk->...hd", unit, kernel), exponent


def _attention_weights(
  query: jax.Array, exponent: jax.Array, tokens: jax.Array, depth: int
) -> jax.Array:
  r"""Softmax weights ``(..., H, M)`` of one folded query per head over
  ``M`` tokens: ``query`` ``(..., H, D)`` and ``exponent`` ``(..., H, 1)``
  from `_fold_query`, ``tokens`` ``(..., M, D)``, logits $2^e q'_h \cdot t_m
  / \sqrt{d}$ with ``depth`` $= d$.

  No token is projected: scores cost $M D$ per head instead of the key
  projection's $M D^2$. The query and the tokens are divided by powers of
  two at or above their largest magnitudes, the products taken, the largest
  subtracted, and only then multiplied back: a logit gap beyond the float
  range gives weight 0, not ``inf - inf``. The largest token's weight is
  set to 1 (its gap is 0 by definition; XLA may recompute the products with
  other rounding, which the scale would blow up) and the others are cut to
  ``[exp(-1e4), 1]``. The scaling is exact and constant, and the shift is
  the largest product itself (read at its position, so its derivative goes
  there), so values and derivatives are the softmax's."""
  q_exponent = _exponent(query, (-1,))  # (..., H, 1)
  t_exponent = _exponent(tokens, (-2, -1))  # (..., 1, 1)
  # Both scales on the (small) query: the tokens are read as they are.
  q = times_power_of_two(query, -(q_exponent + t_exponent))
  similarity = jnp.einsum("...hd,...md->...hm", q, tokens)  # |.| <= D
  best = jnp.argmax(jax.lax.stop_gradient(similarity), axis=-1, keepdims=True)
  gap = similarity - jnp.take_along_axis(similarity, best, axis=-1)
  gap = gap * (1.0 / math.sqrt(depth))
  logits = times_power_of_two(gap, q_exponent + t_exponent + exponent)
  logits = jnp.where(logits > 0, 0.0, jnp.maximum(logits, _LOWEST_LOGIT))
  hot = jnp.arange(similarity.shape[-1]) == best
  weights = jnp.where(hot, 1.0, jnp.exp(logits))
  return weights / jnp.sum(weights, axis=-1, keepdims=True)


def _pool_projected(
  weights: jax.Array, tokens: jax.Array, kernel: jax.Array, bias: jax.Array
) -> jax.Array:
  r"""$\sum_m a_{hm} (t_m W^v_h + b^v_h) = (\sum_m a_{hm} t_m) W^v_h + b^v_h$
  (the weights sum to 1): ``weights`` ``(..., H, M)``, ``tokens`` ``(..., M,
  D)``, ``kernel`` ``(D, H, d)``, ``bias`` ``(H, d)`` -> ``(..., H, d)``. The
  tokens are averaged before the projection, once per head."""
  pooled = jnp.einsum("...hm,...md->...hd", weights, tokens)
  return jnp.einsum("...hd,dhk->...hk", pooled, kernel) + bias


def _layer_norm(v: jax.Array, scale: jax.Array, bias: jax.Array, eps: float) -> jax.Array:
  """LayerNorm over the last axis: $(v - \\mu) / \\sqrt{\\sigma^2 + \\epsilon}
  \\cdot s + b$ with the biased variance of the centred rows (two passes).
  Rows larger than 1 are divided by a power of two first (their $\\epsilon$
  with it), so the variance cannot overflow; exact and constant for the
  derivative."""
  centred = v - jnp.mean(v, axis=-1, keepdims=True)
  exponent = jnp.maximum(_exponent(centred, (-1,)), 0)
  unit = times_power_of_two(centred, -exponent)
  variance = jnp.mean(unit * unit, axis=-1, keepdims=True)
  floor = times_power_of_two(jnp.full(variance.shape, eps, v.dtype), -2 * exponent)
  return unit * jax.lax.rsqrt(variance + floor) * scale + bias


# ---------------------------------------------------------------------------
# MAP head (big_vision).
# ---------------------------------------------------------------------------

MHA = "MultiHeadDotProductAttention_0"


@compiled_when_eager()
def map_head(
  x: jax.typing.ArrayLike,
  params: Mapping,
  *,
  spatial_ndim: int | None = None,
) -> jax.Array:
  r"""Multi-head attention pooling (MAP): big_vision's ``MAPHead``, the
  pooling of SigLIP, SigLIP 2 and ViT-G.

  A learned probe $p$ attends over the $M$ tokens $x_m$ (an image's
  positions, flattened) with Flax's ``MultiHeadDotProductAttention``; per
  head $h$:

  $$
  a_{hm} = \operatorname{softmax}_m\Big(\frac{(p W^q_h + b^q_h) \cdot (x_m W^k_h + b^k_h)}{\sqrt{d_h}}\Big),
  \qquad
  y = \sum_h \Big(\sum_m a_{hm} (x_m W^v_h + b^v_h)\Big) W^o_h + b^o,
  $$

  then a residual MLP on the LayerNorm of the result (big_vision's
  ``MlpBlock``: Dense, tanh-approximated GELU as ``flax.linen.gelu``, Dense):

  $$
  \text{out} = y + \operatorname{GELU}(\operatorname{LN}(y) W_1 + b_1) W_2 + b_2 .
  $$

  ``params`` is big_vision's Linen tree of ``MAPHead`` (e.g.
  ``params["img"]["MAPHead_0"]`` of a SigLIP checkpoint), loaded unchanged:

  * ``probe`` ``(1, 1, D)``;
  * ``MultiHeadDotProductAttention_0``: ``query``, ``key``, ``value`` with
    ``kernel`` ``(D, heads, head_dim)`` and ``bias`` ``(heads, head_dim)``,
    ``out`` with ``kernel`` ``(heads, head_dim, D)`` and ``bias`` ``(D,)``
    (Flax's ``DenseGeneral`` shapes; the number of heads is read from them);
  * ``LayerNorm_0``: ``scale``, ``bias`` ``(D,)`` (epsilon ``1e-6``, Flax's
    default);
  * ``MlpBlock_0``: ``Dense_0`` (``kernel`` ``(D, mlp_dim)``, ``bias``
    ``(mlp_dim,)``) and ``Dense_1`` (``kernel`` ``(mlp_dim, D)``, ``bias``
    ``(D,)``).

  big_vision's dropout rates are 0 (none is applied). The variance of the
  LayerNorm is taken of the centred values (Flax's default subtracts the
  squared mean from the mean square: the same up to rounding).

  Args:
    x: ``(batch, *spatial, D)`` feature maps or ``(batch, tokens, D)``
      token sets, floating point (half precision computed in float32).
    params: the nested dict above (arrays of any floating dtype, used in
      ``x``'s compute dtype).
    spatial_ndim: the number of spatial (token) axes before the features;
      ``None``: axes 1 to -2.

  Returns:
    ``(batch, D)``, ``x``'s dtype.

  Examples:
    >>> import jax, jax.numpy as jnp, jaxpool
    >>> from jaxpool import linen as jplinen  # its tree is big_vision's
    >>> x = jnp.ones((3, 5, 5, 8))  # or tokens, (3, 25, 8)
    >>> params = jplinen.MAPHead(num_heads=2).init(jax.random.key(0), x)["params"]
    >>> params["MultiHeadDotProductAttention_0"]["query"]["kernel"].shape
    (8, 2, 4)
    >>> jaxpool.map_head(x, params).shape
    (3, 8)
  """
  op = "map_head"
  x = jnp.asarray(x)
  rows = positions(x, spatial_ndim, op)
  dtype, dim = rows.dtype, rows.shape[-1]

  def read(path, shape, names, optional=False):
    return _array(op, params, path, shape, names, dtype, optional=optional)

  query_kernel = read((MHA, "query", "kernel"), (dim, None, None), "D, heads, head_dim")
  heads, depth = query_kernel.shape[1:]
  qkv = {"query": query_kernel}
  for name in ("key", "value"):
    qkv[name] = read((MHA, name, "kernel"), (dim, heads, depth), "D, heads, head_dim")
  bias = {
    name: read((MHA, name, "bias"), (heads, depth), "heads, head_dim")
    for name in ("query", "key", "value")
  }
  out_kernel = read((MHA, "out", "kernel"), (heads, depth, dim), "heads, head_dim, D")
  out_bias = read((MHA, "out", "bias"), (dim,), "D")
  probe = read(("probe",), (1, 1, dim), "1, 1, D")
  norm_scale = read(("LayerNorm_0", "scale"), (dim,), "D")
  norm_bias = read(("LayerNorm_0", "bias"), (dim,), "D")
  hidden_kernel = read(("MlpBlock_0", "Dense_0", "kernel"), (dim, None), "D, mlp_dim")
  hidden = hidden_kernel.shape[1]
  hidden_bias = read(("MlpBlock_0", "Dense_0", "bias"), (hidden,), "mlp_dim")
  mlp_kernel = read(("MlpBlock_0", "Dense_1", "kernel"), (hidden, dim), "mlp_dim, D")
  mlp_bias = read(("MlpBlock_0", "Dense_1", "bias"), (dim,), "D")

  query = jnp.einsum("d,dhk->hk", probe[0, 0], qkv["query"]) + bias["query"]
  folded, exponent = _fold_query(query, qkv["key"])
  # One query per image, as in the other heads: a probe shared by the batch
  # makes the scores' derivative one flat (B M, H) x (H, D) dot, which XLA's
  # GPU compiler (jaxlib 0.10) rejects ("Couldn't find output tile sizes").
  batch = rows.shape[:-2]
  folded = jnp.broadcast_to(folded, batch + folded.shape)
  exponent = jnp.broadcast_to(exponent, batch + exponent.shape)
  weights = _attention_weights(folded, exponent, rows, depth)
  pooled = _pool_projected(weights, rows, qkv["value"], bias["value"])  # (..., heads, head_dim)
  y = jnp.einsum("...hk,hkd->...d", pooled, out_kernel) + out_bias
  z = _layer_norm(y, norm_scale, norm_bias, _MAP_EPS)
  z = jax.nn.gelu(z @ hidden_kernel + hidden_bias, approximate=True)
  return (y + z @ mlp_kernel + mlp_bias).astype(x.dtype)


# ---------------------------------------------------------------------------
# CLIP's AttentionPool2d, with timm's resampling of the positional embedding.
# ---------------------------------------------------------------------------


def _keys_cubic(t: np.ndarray, a: float = -0.5) -> np.ndarray:
  """Keys' cubic convolution kernel with ``a = -0.5`` (torch's antialiased
  bicubic, as PIL)."""
  t = np.abs(t)
  near = ((a + 2) * t - (a + 3)) * t * t + 1
  far = ((a * t - 5 * a) * t + 8 * a) * t - 4 * a
  return np.where(t < 1, near, np.where(t < 2, far, 0.0))


def resample_weights(size_in: int, size_out: int) -> np.ndarray:
  """``(size_out, size_in)`` float64 weights of torch's
  ``F.interpolate(mode="bicubic", antialias=True, align_corners=False)``
  along one axis (torch's ``_compute_weights_aa``): output ``i`` centred at
  ``(i + 0.5) s`` input cells, ``s = size_in / size_out``; the cubic
  stretched by ``max(s, 1)``, cut at the border and renormalised.

  Examples:
    >>> resample_weights(2, 4).round(4)
    array([[ 1.0882, -0.0882],
           [ 0.7929,  0.2071],
           [ 0.2071,  0.7929],
           [-0.0882,  1.0882]])
  """
  scale = size_in / size_out
  stretch = max(scale, 1.0)
  support = 2.0 * stretch
  bound = int(math.ceil(support)) * 2 + 1
  weights = np.zeros((size_out, size_in))
  for i in range(size_out):
    center = scale * (i + 0.5)
    low = max(int(center - support + 0.5), 0)
    size = min(max(min(int(center + support + 0.5), size_in) - low, 0), bound)
    w = _keys_cubic((np.arange(size) + low - center + 0.5) / stretch)
    total = w.sum()
    weights[i, low : low + size] = w / total if total != 0 else w
  return weights


def _positional_table(table, feature_shape, grid, op) -> jax.Array:
  """The positional embedding ``(1 + prod(grid), D)`` for a map of
  ``grid``: ``table`` as is when it was learned for ``grid``, else its grid
  part resampled from ``feature_shape`` as timm does (antialiased bicubic
  per axis), the mean token's row kept apart."""
  positions_count = int(np.prod(grid))
  if feature_shape is None:
    if table.shape[0] != positions_count + 1:
      raise ValueError(
        f"{op}: params['positional_embedding'] has {table.shape[0]} rows; a map of"
        f" {grid} needs {positions_count + 1} (its positions and the mean token)."
        f" Pass feature_shape=<the grid it was learned on> to resample it."
      )
    return table
  feature_shape = check_feature_shape(feature_shape)
  if len(feature_shape) != len(grid):
    raise ValueError(
      f"{op}: feature_shape={feature_shape} has {len(feature_shape)} axes; the input"
      f" has {len(grid)} spatial axes {grid}."
    )
  learned = int(np.prod(feature_shape))
  if table.shape[0] != learned + 1:
    raise ValueError(
      f"{op}: params['positional_embedding'] has {table.shape[0]} rows;"
      f" feature_shape={feature_shape} needs {learned + 1} (its positions and the mean token)."
    )
  if feature_shape == tuple(grid):
    return table
  cells = table[1:].reshape(feature_shape + (table.shape[-1],))
  for axis, (old, new) in enumerate(zip(feature_shape, grid)):
    if old != new:
      weights = jnp.asarray(resample_weights(old, new), table.dtype)
      cells = jnp.moveaxis(jnp.tensordot(weights, cells, axes=(1, axis)), 0, axis)
  return jnp.concatenate([table[:1], cells.reshape(positions_count, -1)])


@compiled_when_eager()
def attention_pool2d(
  x: jax.typing.ArrayLike,
  params: Mapping,
  *,
  num_heads: int,
  feature_shape: Sequence[int] | None = None,
  spatial_ndim: int | None = None,
) -> jax.Array:
  r"""CLIP's ``AttentionPool2d``: the mean token attends over itself and the
  map's positions, with a learned positional embedding.

  The tokens are $t_0 = \frac{1}{M} \sum_m x_m$ and $t_m = x_m$, each plus its
  row of the positional embedding $P$ (``(1 + M, D)``); per head $h$ the
  mean token's query attends over all $1 + M$ tokens:

  $$
  a_{hm} = \operatorname{softmax}_m\Big(\frac{(t_0 W^q_h + b^q_h) \cdot (t_m W^k_h + b^k_h)}{\sqrt{d_h}}\Big),
  \qquad
  y = \operatorname{concat}_h\Big(\sum_m a_{hm} (t_m W^v_h + b^v_h)\Big) W^c + b^c .
  $$

  This is CLIP's ``F.multi_head_attention_forward`` call (its output at the
  mean token) and timm's ``AttentionPool2d`` (``qkv_separate=True``,
  ``pool_type="token"``). ``params`` holds CLIP's attributes as Flax
  ``Dense`` parameters (a torch ``Linear``'s ``weight`` transposed):

  * ``positional_embedding`` ``(1 + prod(feature_shape), D)``, the mean
    token's row first, the grid's in row-major order;
  * ``q_proj``, ``k_proj``, ``v_proj``: ``kernel`` ``(D, E)``, ``bias``
    ``(E,)`` (CLIP: ``E = D``), ``E`` divisible by ``num_heads``;
  * ``c_proj``: ``kernel`` ``(E, output_dim)``, ``bias`` ``(output_dim,)``.

  A map of another size than ``feature_shape`` resamples the grid part of
  the embedding as timm's ``resample_abs_pos_embed`` (antialiased bicubic,
  torch's ``F.interpolate(mode="bicubic", antialias=True)``, one axis at a
  time), the mean token's row kept apart. timm reads the learned grid's
  size as the square root of the row count; here it is ``feature_shape``,
  so non-square grids resample too. Any number of spatial axes (or a token
  axis) works; CLIP's maps are 2-D.

  Args:
    x: ``(batch, *spatial, D)`` feature maps or ``(batch, tokens, D)``
      token sets, floating point (half precision computed in float32).
    params: the nested dict above.
    num_heads: the number of heads (CLIP's ResNets: ``width * 32 // 64``).
    feature_shape: the grid the positional embedding was learned for;
      ``None``: the input's (no resampling).
    spatial_ndim: the number of spatial axes before the features; ``None``:
      axes 1 to -2.

  Returns:
    ``(batch, output_dim)``, ``x``'s dtype.

  Examples:
    >>> import jax, jax.numpy as jnp, jaxpool
    >>> from jaxpool import linen as jplinen  # its tree is CLIP's
    >>> x = jnp.ones((3, 7, 7, 8))
    >>> head = jplinen.AttentionPool2d(num_heads=2, feature_shape=(7, 7), output_dim=4)
    >>> params = head.init(jax.random.key(0), x)["params"]
    >>> params["positional_embedding"].shape, params["c_proj"]["kernel"].shape
    ((50, 8), (8, 4))
    >>> jaxpool.attention_pool2d(x, params, num_heads=2).shape
    (3, 4)
    >>> y = jnp.ones((3, 9, 12, 8))  # another size: the embedding is resampled
    >>> jaxpool.attention_pool2d(y, params, num_heads=2, feature_shape=(7, 7)).shape
    (3, 4)
  """
  op = "attention_pool2d"
  num_heads = check_num_heads(num_heads)
  x = jnp.asarray(x)
  rows = positions(x, spatial_ndim, op)
  grid = tuple(x.shape[a] for a in global_axes(x, spatial_ndim, op))
  dtype, dim = rows.dtype, rows.shape[-1]

  def read(path, shape, names):
    return _array(op, params, path, shape, names, dtype)

  query_kernel = read(("q_proj", "kernel"), (dim, None), "D, E")
  width = query_kernel.shape[1]
  depth = head_dim(op, width, num_heads)
  kernels = {"q_proj": query_kernel}
  for name in ("k_proj", "v_proj"):
    kernels[name] = read((name, "kernel"), (dim, width), "D, E")
  biases = {name: read((name, "bias"), (width,), "E") for name in kernels}
  out_kernel = read(("c_proj", "kernel"), (width, None), "E, output_dim")
  out_bias = read(("c_proj", "bias"), (out_kernel.shape[1],), "output_dim")
  table = read(("positional_embedding",), (None, dim), "1 + positions, D")
  table = _positional_table(table, feature_shape, grid, op)

  tokens = jnp.concatenate([jnp.mean(rows, axis=-2, keepdims=True), rows], axis=-2) + table
  batch = tokens.shape[:-2]
  heads = (num_heads, depth)
  query = tokens[..., 0, :] @ kernels["q_proj"] + biases["q_proj"]
  folded, exponent = _fold_query(
    query.reshape(batch + heads), kernels["k_proj"].reshape((dim,) + heads)
  )
  weights = _attention_weights(folded, exponent, tokens, depth)
  pooled = _pool_projected(
    weights, tokens, kernels["v_proj"].reshape((dim,) + heads), biases["v_proj"].reshape(heads)
  )
  return (pooled.reshape(batch + (width,)) @ out_kernel + out_bias).astype(x.dtype)


# ---------------------------------------------------------------------------
# SimPool (Psomas et al., ICCV 2023), as timm's SimPool2d / SimPool1d.
# ---------------------------------------------------------------------------


@compiled_when_eager()
def sim_pool(
  x: jax.typing.ArrayLike,
  params: Mapping,
  *,
  num_heads: int = 1,
  gamma: float | None = None,
  eps: float = 1e-5,
  spatial_ndim: int | None = None,
) -> jax.Array:
  r"""SimPool: the global average attends over the LayerNorm of the tokens.

  With $\bar x = \frac{1}{M} \sum_m x_m$ (of the raw tokens) and $z_m =
  \operatorname{LN}(x_m)$, per head $h$ (the features split in
  ``num_heads`` contiguous groups of $d_h$):

  $$
  a_{hm} = \operatorname{softmax}_m\Big(\frac{(\bar x W^q + b^q)_h \cdot (z_m W^k + b^k)_h}{\sqrt{d_h}}\Big),
  \qquad
  y_h = \sum_m a_{hm} z_{m,h},
  $$

  the values being the normalised tokens themselves (no projection, no
  output projection). With ``gamma``, a power mean of shifted values:

  $$
  y_h = \Big(\sum_m a_{hm} (z_{m,h} - \min_{m'} z_{m',h} + 10^{-6})^\gamma\Big)^{1/\gamma},
  $$

  the minimum taken per image, head and feature over the tokens.

  This is timm's ``SimPool2d`` / ``SimPool1d`` (``qk_norm=False``):
  ``params`` holds its modules as Flax parameters, ``norm`` (``scale``,
  ``bias`` ``(D,)``: timm's ``norm.weight``, ``norm.bias``), ``q`` and ``k``
  (``kernel`` ``(D, D)``: the ``Linear`` ``weight`` transposed, and ``bias``
  ``(D,)`` only with ``qkv_bias=True``). The official code (``sp.py``,
  billpsomas/simpool) differs: its LayerNorm has ``eps=1e-6`` (pass
  ``eps=1e-6``), it shifts by the minimum over the whole batch (each image's
  output then depends on the others; here each image is pooled on its own),
  and it can add a learned ``beta`` after the power (``use_beta``; add it to
  the output).

  Args:
    x: ``(batch, *spatial, D)`` feature maps or ``(batch, tokens, D)``
      token sets, floating point (half precision computed in float32).
    params: the nested dict above.
    num_heads: the number of heads; must divide ``D``.
    gamma: ``None`` (default, timm's: the attention-weighted mean) or the
      power, a finite number > 0 (the paper's convnets: 2; transformers:
      1.25).
    eps: the LayerNorm's epsilon (timm: ``1e-5``, torch's default).
    spatial_ndim: the number of spatial axes before the features; ``None``:
      axes 1 to -2.

  Returns:
    ``(batch, D)``, ``x``'s dtype.

  Examples:
    >>> import jax, jax.numpy as jnp, jaxpool
    >>> from jaxpool import linen as jplinen  # its tree is timm's
    >>> x = jax.random.normal(jax.random.key(1), (3, 5, 5, 8))
    >>> params = jplinen.SimPool(num_heads=2).init(jax.random.key(0), x)["params"]
    >>> sorted(params), params["q"]["kernel"].shape
    (['k', 'norm', 'q'], (8, 8))
    >>> jaxpool.sim_pool(x, params, num_heads=2, gamma=2.0).shape
    (3, 8)
  """
  op = "sim_pool"
  num_heads = check_num_heads(num_heads)
  gamma = check_gamma(gamma)
  eps = check_eps(eps)
  x = jnp.asarray(x)
  rows = positions(x, spatial_ndim, op)
  dtype, dim = rows.dtype, rows.shape[-1]
  depth = head_dim(op, dim, num_heads)

  def read(path, shape, names, optional=False):
    return _array(op, params, path, shape, names, dtype, optional=optional)

  norm_scale = read(("norm", "scale"), (dim,), "D")
  norm_bias = read(("norm", "bias"), (dim,), "D")
  query_kernel = read(("q", "kernel"), (dim, dim), "D, D")
  key_kernel = read(("k", "kernel"), (dim, dim), "D, D")
  query_bias = read(("q", "bias"), (dim,), "D", optional=True)
  key_bias = read(("k", "bias"), (dim,), "D", optional=True)

  del key_bias  # the same shift of every token's logit: the softmax cancels it
  normed = _layer_norm(rows, norm_scale, norm_bias, eps)
  query = jnp.mean(rows, axis=-2) @ query_kernel
  if query_bias is not None:
    query = query + query_bias
  batch = rows.shape[:-2]
  heads = (num_heads, depth)
  folded, exponent = _fold_query(query.reshape(batch + heads), key_kernel.reshape((dim,) + heads))
  weights = _attention_weights(folded, exponent, normed, depth)
  values = normed.reshape(normed.shape[:-1] + heads)
  if gamma is None:
    pooled = jnp.einsum("...hm,...mhe->...he", weights, values)
  else:
    # The minimum read at its (first) position: its derivative goes there,
    # with no equality test against a recomputed operand (jnp.min's rule).
    lowest = jnp.argmin(jax.lax.stop_gradient(values), axis=-3, keepdims=True)
    minimum = jnp.take_along_axis(values, lowest, axis=-3)
    shifted = values - minimum + _SIMPOOL_SHIFT
    pooled = jnp.einsum("...hm,...mhe->...he", weights, shifted**gamma) ** (1.0 / gamma)
  return pooled.reshape(batch + (dim,)).astype(x.dtype)


def _attention_pool2d_options(num_heads=None, feature_shape=None, **_):
  if num_heads is not None:
    check_num_heads(num_heads)
  if feature_shape is not None:
    check_feature_shape(feature_shape)


def _sim_pool_options(num_heads=1, gamma=None, eps=1e-5, **_):
  check_num_heads(num_heads)
  check_gamma(gamma)
  check_eps(eps)


register_option_check(attention_pool2d, _attention_pool2d_options)
register_option_check(sim_pool, _sim_pool_options)
