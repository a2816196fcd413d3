"""Mixed and gated max-average pooling (Yu et al. 2014; Lee et al. 2016).

``y = m * max_pool(x) + (1 - m) * avg_pool(x)`` with the mixing proportion
``m`` a random draw ([`mixed_pool`][jaxpool.mixed_pool] with a ``key``), a fixed or learned
weight ([`mixed_pool`][jaxpool.mixed_pool] without one) or a learned gate of the region
([`gated_pool`][jaxpool.gated_pool]).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

from jaxpool._src.classic import avg_pool, max_pool
from jaxpool._src.core import dtypes
from jaxpool._src.core.checks import (
  check_bool,
  check_choice,
  check_features,
  check_number_array,
  check_one_key,
)
from jaxpool._src.core.eager import compiled_when_eager
from jaxpool._src.core.geometry import PaddingLike, normalize_spatial_shape, window_geometry
from jaxpool._src.core.options import register_option_check
from jaxpool._src.core.sharding import uniform
from jaxpool._src.core.taps import window_taps

__all__ = [
  "gate_init",
  "gated_pool",
  "mix_proportion",
  "mixed_pool",
]


_Granularity = Literal["region", "map", "layer"]


def _mix(y_max, y_avg, proportion):
  """``proportion * y_max + (1 - proportion) * y_avg`` in float32 or wider.

  The limit for infinite pools: a term whose coefficient is exactly 0 adds 0
  even when its pool is infinite (``p = 0`` gives the average, ``p = 1`` the
  maximum, never ``0 * inf = NaN``), and equal infinite pools give that
  infinity whatever the proportion (even an undefined one, e.g. a NaN gate
  from ``inf - inf``). The selects only change non-finite cases, so the
  derivative for finite pools is the true one, also at ``p = 0`` or ``1``.
  """
  dtype = y_max.dtype
  wide = dtypes.compute_dtype(dtype)
  y_max, y_avg = y_max.astype(wide), y_avg.astype(wide)
  proportion = proportion.astype(wide)
  max_term = proportion * y_max
  max_term = jnp.where((proportion == 0) & jnp.isinf(y_max), 0.0, max_term)
  avg_term = (1 - proportion) * y_avg
  avg_term = jnp.where((proportion == 1) & jnp.isinf(y_avg), 0.0, avg_term)
  y = max_term + avg_term
  return jnp.where(jnp.isinf(y_max) & (y_max == y_avg), y_max, y).astype(dtype)


def _max_and_avg(x, window_shape, strides, padding, dilation, ceil_mode, count_include_pad, op):
  x = dtypes.float_input(x, op)
  window = dict(
    window_shape=window_shape,
    strides=strides,
    padding=padding,
    dilation=dilation,
    ceil_mode=ceil_mode,
  )
  y_max = max_pool(x, **window)
  y_avg = avg_pool(x, count_include_pad=count_include_pad, **window)
  return x, y_max, y_avg


def _proportion(alpha, out_shape, name: str) -> jax.Array:
  # Concrete values are range-checked; a traced alpha (e.g. a learned
  # sigmoid under jit) cannot be inspected and is used as given.
  check_number_array(name, alpha, low=0.0, high=1.0)
  alpha = jnp.asarray(alpha)
  if not dtypes.is_float(alpha.dtype):
    alpha = alpha.astype(jnp.float32)
  try:
    np.broadcast_shapes(alpha.shape, tuple(out_shape))
  except ValueError:
    raise ValueError(
      f"{name} of shape {alpha.shape} does not broadcast to the pooled"
      f" output's shape {tuple(out_shape)}; use a scalar, one value per"
      " feature (shape (features,)) or an output-shaped array."
    ) from None
  return alpha


@compiled_when_eager(inspects=("alpha",))
def mixed_pool(
  x: jax.typing.ArrayLike,
  window_shape: Sequence[int],
  strides: int | Sequence[int] | None = None,
  padding: PaddingLike = "VALID",
  *,
  alpha: jax.typing.ArrayLike = 0.5,
  key: jax.Array | None = None,
  granularity: _Granularity = "region",
  count_include_pad: bool = True,
  dilation: int | Sequence[int] | None = None,
  ceil_mode: bool = False,
) -> jax.Array:
  r"""Mixed max-average pooling, random (Yu et al. 2014) or weighted (Lee et al. 2016).

  ``y = m * max_pool(x) + (1 - m) * avg_pool(x)`` with the mixing proportion

  * ``key`` given (training, Yu et al.): $m = \lambda$, a Bernoulli draw with
    $P(\lambda = 1) = \alpha$, so every output is **exactly** the window's
    max or its average. ``granularity`` says what shares one draw:
    ``'region'`` (default: every output element, i.e. per pooling region and
    feature), ``'map'`` (every feature map of every example) or ``'layer'``
    (the whole call). The draw is not differentiable in ``alpha``.
  * ``key=None`` (inference): $m = \alpha$. This is Lee et al.'s mixed
    pooling (``alpha`` learned, in ``[0, 1]``) and the expectation of the
    training output over the draws, the rule dropout uses. Infinite pools
    give the limit: $m = 0$ gives the average and $m = 1$ the maximum
    even where the other pool is infinite, and ``inf`` in a window gives
    ``inf`` (never ``inf - inf = NaN``).

  Yu et al.'s test-time rule is not confirmed from the paper's text: a
  recollection is "use the pooling type drawn more often in training", which
  for a fixed ``alpha`` is ``alpha=1.0`` (max) when ``alpha > 0.5`` and
  ``alpha=0.0`` (average) when ``alpha < 0.5``; pass that ``alpha`` at
  inference to use it.

  Args:
    x: ``(*batch, *spatial, features)`` floating-point array.
    window_shape: window size per spatial axis, e.g. ``(2, 2)``.
    strides: step per spatial axis (int or tuple); ``None`` (default) means
      ``window_shape``, as in torch.
    padding: ``'VALID'`` (default), ``'SAME'``, an int, ints or ``(low, high)``
      pairs, as in [`max_pool`][jaxpool.max_pool].
    dilation: spacing between window taps (int or tuple); ``None`` (default)
      means 1.
    ceil_mode: round the output size up, as torch's ``ceil_mode`` (default
      ``False``).
    alpha: probability of max pooling (with ``key``) or its weight (without):
      a scalar, one value per feature ``(features,)`` or an array that
      broadcasts to the output (e.g. from [`gated_pool`][jaxpool.gated_pool]'s gate). Every
      element must lie in ``[0, 1]`` (no NaN): a ``ValueError`` when
      ``alpha`` is concrete (a Python number, NumPy or JAX array); a traced
      ``alpha`` (e.g. a learned sigmoid under ``jit``) cannot be checked and
      is used as given.
    key: one PRNG key for the draws, or ``None`` for inference (a batch of
      keys, a float array or a wrongly shaped raw key is an error).
    granularity: ``'region'``, ``'map'`` or ``'layer'`` (see above).
    count_include_pad: a bool, passed to [`jaxpool.avg_pool`][jaxpool.avg_pool].

  Returns:
    ``(*batch, *out_spatial, features)`` array, ``x``'s dtype.

  Examples:
    >>> import jax, jax.numpy as jnp, jaxpool
    >>> x = jnp.arange(16.0).reshape(1, 4, 4, 1)
    >>> jaxpool.mixed_pool(x, (2, 2), alpha=0.25)[0, :, :, 0]
    Array([[ 3.125,  5.125],
           [11.125, 13.125]], dtype=float32)
    >>> y = jaxpool.mixed_pool(x, (2, 2), key=jax.random.key(0))
    >>> bool(jnp.all((y == jaxpool.max_pool(x, (2, 2)))
    ...               | (y == jaxpool.avg_pool(x, (2, 2)))))
    True
  """
  if key is not None:
    check_one_key(key)
  count_include_pad = _mixed_options(granularity, count_include_pad)
  x, y_max, y_avg = _max_and_avg(
    x,
    window_shape,
    strides,
    padding,
    dilation,
    ceil_mode,
    count_include_pad,
    "mixed_pool",
  )
  alpha = _proportion(alpha, y_max.shape, "alpha")
  if key is None:
    return _mix(y_max, y_avg, alpha)
  num_spatial = len(window_shape)
  batch = y_max.ndim - num_spatial - 1
  if granularity == "region":
    shape, keep = y_max.shape, range(y_max.ndim)
  elif granularity == "map":
    shape = y_max.shape[:batch] + (1,) * num_spatial + y_max.shape[-1:]
    keep = (*range(batch), y_max.ndim - 1)
  else:
    shape, keep = (1,) * y_max.ndim, ()
  draws = uniform(key, shape, y_max, keep, dtypes.compute_dtype(alpha.dtype))
  use_max = draws < jax.lax.stop_gradient(alpha)
  return jnp.where(use_max, y_max, y_avg)


@compiled_when_eager()
def gated_pool(
  x: jax.typing.ArrayLike,
  gate: jax.typing.ArrayLike,
  window_shape: Sequence[int],
  strides: int | Sequence[int] | None = None,
  padding: PaddingLike = "VALID",
  *,
  count_include_pad: bool = True,
  dilation: int | Sequence[int] | None = None,
  ceil_mode: bool = False,
) -> jax.Array:
  r"""Gated max-average pooling (Lee, Gallagher & Tu, AISTATS 2016).

  ``y = s * max_pool(x) + (1 - s) * avg_pool(x)`` with
  $s = \operatorname{sigmoid}(g \cdot x_R)$ the "responsive" mixing proportion
  of each region $R$: the inner product of the learned gating mask $g$ with
  the region's values (padded cells count as zero, which is the official
  code's in-bounds-only product). Differentiable in ``x`` and ``gate``;
  deterministic. Infinite inputs give the limit: a zero gate entry ignores its
  cell even when it is infinite, an infinite score saturates $s$ to 0 or 1,
  and equal infinite pools (e.g. ``+inf`` in the region) give that infinity
  whatever $s$.

  Args:
    x: ``(*batch, *spatial, features)`` floating-point array.
    gate: the mask, ``window_shape`` (shared by every feature, as in the
      paper: 9 parameters for a 3x3 window) or ``(*window_shape, features)``.
    window_shape: window size per spatial axis, e.g. ``(2, 2)``.
    strides: step per spatial axis (int or tuple); ``None`` (default) means
      ``window_shape``, as in torch.
    padding: ``'VALID'`` (default), ``'SAME'``, an int, ints or ``(low, high)``
      pairs, as in [`max_pool`][jaxpool.max_pool].
    dilation: spacing between window taps (int or tuple); ``None`` (default)
      means 1.
    ceil_mode: round the output size up, as torch's ``ceil_mode`` (default
      ``False``).
    count_include_pad: whether explicit padding counts in the average's divisor
      (default ``True``), as in [`avg_pool`][jaxpool.avg_pool].

  Returns:
    ``(*batch, *out_spatial, features)`` array, ``x``'s dtype.

  Examples:
    >>> import jax.numpy as jnp, jaxpool
    >>> x = jnp.arange(16.0).reshape(1, 4, 4, 1)
    >>> y = jaxpool.gated_pool(x, jnp.zeros((2, 2)), (2, 2))  # s = 1/2
    >>> bool(jnp.allclose(y, jaxpool.mixed_pool(x, (2, 2), alpha=0.5)))
    True
  """
  count_include_pad = _gated_options(count_include_pad)
  x, y_max, y_avg = _max_and_avg(
    x,
    window_shape,
    strides,
    padding,
    dilation,
    ceil_mode,
    count_include_pad,
    "gated_pool",
  )
  window_shape = tuple(window_shape)
  gate = dtypes.array_input(gate, "gated_pool (gate)")
  if gate.shape not in (window_shape, window_shape + x.shape[-1:]):
    raise ValueError(
      f"gate must have shape {window_shape} (shared by all features) or"
      f" {window_shape + x.shape[-1:]} (per feature); got {gate.shape}."
    )
  geom = window_geometry(
    x.shape,
    window_shape,
    strides,
    padding,
    dilation=dilation,
    ceil_mode=ceil_mode,
  )
  wide = dtypes.compute_dtype(x.dtype)
  gate = gate.astype(wide).reshape((geom.window_size, -1))
  # A zero gate entry ignores its cell, even an infinite one (no 0 * inf).
  score = sum(
    jnp.where((g == 0) & jnp.isinf(tap), 0.0, g * tap)
    for g, tap in zip(gate, window_taps(x.astype(wide), geom))
  )
  return _mix(y_max, y_avg, jax.nn.sigmoid(score))


# Option checks shared by the functions and their layers' constructors.


def _gated_options(count_include_pad, **_) -> bool:
  return check_bool("count_include_pad", count_include_pad)


def _mixed_options(granularity, count_include_pad, **_) -> bool:
  check_choice("granularity", granularity, ("region", "map", "layer"))
  return _gated_options(count_include_pad)


register_option_check(mixed_pool, _mixed_options)
register_option_check(gated_pool, _gated_options)

# ---------------------------------------------------------------------------
# The layers' parametrisation: the mixing proportion and the gating mask.
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
