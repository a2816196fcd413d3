"""Spatial pyramid pooling: SPPNet's fixed-length pyramid (He et al., ECCV
2014) and YOLO's SPP block and its sequential SPPF form."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

from jaxpool._src.adaptive import adaptive_avg_pool, adaptive_max_pool
from jaxpool._src.classic import max_pool
from jaxpool._src.core import dtypes
from jaxpool._src.core.backend import fence
from jaxpool._src.core.checks import check_choice, check_spatial_dims, is_int
from jaxpool._src.core.eager import compiled_when_eager
from jaxpool._src.core.geometry import global_axes
from jaxpool._src.core.options import register_option_check
from jaxpool._src.core.sharding import reshape_spatial

__all__ = ["SPP_ORDERS", "spatial_pyramid_pool", "spp_block", "sppf"]

SPP_ORDERS = ("ultralytics", "darknet")


def _positive_ints(name: str, values, *, odd: bool = False) -> tuple[int, ...]:
  values = (values,) if is_int(values) else values
  if (
    not isinstance(values, Sequence)
    or not values
    or not all(is_int(v) and v >= 1 and (not odd or v % 2) for v in values)
  ):
    kind = "odd positive ints" if odd else "positive ints"
    raise ValueError(f"{name} must be a non-empty sequence of {kind}; got {values!r}.")
  return tuple(int(v) for v in values)


@compiled_when_eager()
def spatial_pyramid_pool(
  x: jax.typing.ArrayLike,
  levels: Sequence[int] = (1, 2, 4),
  *,
  mode: str = "max",
  spatial_ndim: int | None = None,
) -> jax.Array:
  r"""SPPNet's spatial pyramid pooling: a fixed-length vector for any input size.

  For each level $n$, an adaptive pooling to $n$ bins per spatial axis
  (torch's bins, as [`jaxpool.adaptive_max_pool`][jaxpool.adaptive_max_pool]), flattened row-major
  in ``(n, ..., n, features)`` order; the levels concatenated in order:

  $$
  y = \operatorname{concat}_n \operatorname{flatten}(\operatorname{pool}(x, (n, \dots, n)))
  $$

  so $y$ has ``features * sum(n**num_spatial for n in levels)`` values
  (``features * 21`` for the default 2-D pyramid), whatever the input's
  spatial size.

  Args:
    x: ``(batch, *spatial, features)``; ``spatial_ndim=N`` selects the ``N``
      axes before the features for other layouts.
    levels: bins per axis of each level, positive ints.
    mode: ``"max"`` or ``"avg"``.
    spatial_ndim: the number of spatial axes before the features.

  Returns:
    ``(batch, features * sum(n ** num_spatial))`` (``(*batch, ...)``), ``x``'s
      dtype.

  Examples:
    >>> import jax.numpy as jnp, jaxpool
    >>> jaxpool.spatial_pyramid_pool(jnp.ones((2, 13, 9, 8))).shape
    (2, 168)
    >>> jaxpool.spatial_pyramid_pool(jnp.ones((2, 30, 40, 8))).shape
    (2, 168)
  """
  levels = _spp_options(levels, mode)
  x = dtypes.numeric_input(x, "spatial_pyramid_pool")
  axes = global_axes(x, spatial_ndim, "spatial_pyramid_pool")
  pool = adaptive_max_pool if mode == "max" else adaptive_avg_pool
  batch = x.shape[: axes[0]]
  parts = []
  for n in levels:
    pooled = pool(x, (n,) * len(axes))
    flat = batch + (n ** len(axes) * x.shape[-1],)
    parts.append(reshape_spatial(pooled, flat, len(batch)))  # keeps batch sharding
  return jnp.concatenate(parts, axis=-1)


def _same_max(x: jax.Array, k: int, num_spatial: int) -> jax.Array:
  """Stride-1 max pooling with a ``k`` window and ``k // 2`` cells of padding
  (which never wins) on every side: the output has the input's size."""
  return max_pool(x, (k,) * num_spatial, 1, k // 2)


def check_conv_features(owner: str, features, out_features) -> None:
  """The convolutions of an SPP layer (ultralytics' ``SPP``/``SPPF``):
  ``features`` (an int >= 2, halved by the first) or none, and
  ``out_features`` (an int >= 1) only with them."""
  if features is None:
    if out_features is not None:
      raise ValueError(f"{owner}: out_features needs features (the convolutions).")
    return
  if not (is_int(features) and features >= 2):
    raise ValueError(f"{owner}: features must be an int >= 2; got {features!r}.")
  if out_features is not None and not (is_int(out_features) and out_features >= 1):
    raise ValueError(f"{owner}: out_features must be an int >= 1; got {out_features!r}.")


@compiled_when_eager()
def spp_block(
  x: jax.typing.ArrayLike,
  kernel_sizes: Sequence[int] = (5, 9, 13),
  *,
  order: str = "ultralytics",
  spatial_dims: int = 2,
) -> jax.Array:
  r"""YOLO's SPP block: the input and its stride-1 max poolings, concatenated.

  ``concatenate([x, max_5(x), max_9(x), max_13(x)], axis=-1)`` (ultralytics'
  order, ``order="ultralytics"``), each ``max_k`` a $k \times k$ window with
  stride 1 and ``k // 2`` cells of padding that never wins, so every output
  has the input's spatial size. Darknet's cfg routes the reverse order,
  ``[max_13, max_9, max_5, x]`` (``order="darknet"``). The convolutions
  around the block in YOLO are the model's, not part of this function.

  Args:
    x: ``(*batch, *spatial, features)``.
    kernel_sizes: odd window sizes.
    order: ``"ultralytics"`` or ``"darknet"``.
    spatial_dims: the number of spatial axes (2 for images).

  Returns:
    ``(*batch, *spatial, features * (1 + len(kernel_sizes)))``, ``x``'s
      dtype.

  Examples:
    >>> import jax.numpy as jnp, jaxpool
    >>> jaxpool.spp_block(jnp.ones((2, 10, 10, 8)), (3,)).shape
    (2, 10, 10, 16)
  """
  kernel_sizes, spatial_dims = _spp_block_options(kernel_sizes, order, spatial_dims)
  x = dtypes.numeric_input(x, "spp_block")
  parts = [x] + [_same_max(x, k, spatial_dims) for k in kernel_sizes]
  if order == "darknet":
    parts = parts[::-1]
  return jnp.concatenate(parts, axis=-1)


@compiled_when_eager()
def sppf(
  x: jax.typing.ArrayLike,
  kernel_size: int = 5,
  repeats: int = 3,
  *,
  order: str = "ultralytics",
  spatial_dims: int = 2,
) -> jax.Array:
  r"""SPPF: ``repeats`` stride-1 max poolings applied in sequence, concatenated.

  $y_1 = \max_k(x)$, $y_{i+1} = \max_k(y_i)$, ``concatenate([x, y_1, ...,
  y_r])`` (ultralytics; ``order="darknet"`` reverses it). Max pooling with
  padding that never wins composes: $\max_k$ applied $i$ times is
  $\max_{i (k - 1) + 1}$, so ``sppf(x, 5, 3)`` equals ``spp_block(x, (5, 9,
  13))`` exactly in value, for a quarter of the taps. (Under ties the two
  may send the gradient to different, equal, elements.)

  Args:
    x: ``(*batch, *spatial, features)``.
    kernel_size: an odd window size.
    repeats: the number of poolings (>= 1).
    order: ``"ultralytics"`` or ``"darknet"``.
    spatial_dims: the number of spatial axes.

  Returns:
    ``(*batch, *spatial, features * (1 + repeats))``, ``x``'s dtype.

  Examples:
    >>> import jax, jax.numpy as jnp, jaxpool
    >>> x = jax.random.normal(jax.random.key(0), (1, 12, 12, 4))
    >>> bool(jnp.array_equal(jaxpool.sppf(x, 3, 2), jaxpool.spp_block(x, (3, 5))))
    True
  """
  kernel_size, repeats, spatial_dims = _sppf_options(kernel_size, repeats, order, spatial_dims)
  x = dtypes.numeric_input(x, "sppf")
  parts = [x]
  for _ in range(repeats):
    # Each pooling reads the previous one's output through a fence: fused,
    # XLA:CPU would recompute it at every tap (6x slower fwd+bwd).
    previous = parts[-1] if len(parts) == 1 else fence(parts[-1])
    parts.append(_same_max(previous, kernel_size, spatial_dims))
  if order == "darknet":
    parts = parts[::-1]
  return jnp.concatenate(parts, axis=-1)


def _spp_options(levels, mode, **_):
  check_choice("mode", mode, ("max", "avg"))
  return _positive_ints("levels", levels)


def _spp_block_options(kernel_sizes, order, spatial_dims, **_):
  check_choice("order", order, SPP_ORDERS)
  return _positive_ints("kernel_sizes", kernel_sizes, odd=True), check_spatial_dims(spatial_dims)


def _sppf_options(kernel_size, repeats, order, spatial_dims, **_):
  check_choice("order", order, SPP_ORDERS)
  (kernel_size,) = _positive_ints("kernel_size", kernel_size, odd=True)
  (repeats,) = _positive_ints("repeats", repeats)
  return kernel_size, repeats, check_spatial_dims(spatial_dims)


register_option_check(spatial_pyramid_pool, _spp_options)
register_option_check(spp_block, _spp_block_options)
register_option_check(sppf, _sppf_options)
