"""Weighted-window pooling: SoftPool, LIP and DPP.

Each output is a weighted mean of its window, ``y = sum_i w_i x_i / sum_i w_i``,
with weights from the input itself (SoftPool), from learned logits (LIP) or
from a learned reward of the deviation from a local reference (DPP). Padded
cells get zero weight.

The exponential weights of SoftPool and LIP subtract the window maximum of the
logits (a constant for the derivative), so they stay finite for any finite
input. Their derivatives are hand-written VJPs that recompute the weights from
the input in the backward pass instead of storing them: no per-tap tensor is
ever materialised.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

from jaxpool._src import dtypes
from jaxpool._src.classic import window_sum
from jaxpool._src.windows import (
    PaddingLike,
    WindowGeometry,
    pad_input,
    window_geometry,
    window_slice,
    window_unslice,
)

__all__ = ["soft_pool", "lip_pool", "dpp_pool"]


def _tap_masks(geom: WindowGeometry):
  """Per tap, a static boolean array (out_shape + (1,)) of real cells, or None.

  None for every tap when the windows never touch padding.
  """
  if all(lo == hi == 0 for lo, hi in geom.full_padding):
    return [None] * geom.window_size
  per_axis = [
      geom.tap_valid(axis, include_pad=False) for axis in range(geom.num_spatial)
  ]
  masks = []
  for _, tap in geom.offsets():
    mask = np.ones((), dtype=bool)
    for axis, t in enumerate(tap):
      mask = np.logical_and.outer(mask, per_axis[axis][:, t])
    masks.append(mask[..., None])
  return masks


def _taps(x: jax.Array, geom: WindowGeometry) -> list[jax.Array]:
  padded = x if all(lo == hi == 0 for lo, hi in geom.full_padding) else (
      pad_input(x, geom, 0)
  )
  return [window_slice(padded, geom, tap) for _, tap in geom.offsets()]


def _softmax_weights(logit_taps, masks):
  """Unnormalised weights ``exp(l_i - max l)`` per tap and their sum."""
  shift = None
  for logit, mask in zip(logit_taps, masks):
    value = logit if mask is None else jnp.where(mask, logit, -jnp.inf)
    shift = value if shift is None else jnp.maximum(shift, value)
  weights, total = [], None
  for logit, mask in zip(logit_taps, masks):
    weight = jnp.exp(logit - shift)
    if mask is not None:
      weight = jnp.where(mask, weight, 0.0)
    weights.append(weight)
    total = weight if total is None else total + weight
  return weights, total


def _weighted_mean(x_taps, weights, total):
  num = None
  for value, weight in zip(x_taps, weights):
    term = value * weight
    num = term if num is None else num + term
  return num / total


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _lip(x: jax.Array, logits: jax.Array, geom: WindowGeometry) -> jax.Array:
  masks = _tap_masks(geom)
  weights, total = _softmax_weights(_taps(logits, geom), masks)
  return _weighted_mean(_taps(x, geom), weights, total)


def _lip_fwd(x, logits, geom):
  return _lip(x, logits, geom), (x, logits)


def _lip_bwd(geom, residuals, g):
  # dy/dx_i = w_i and dy/dl_i = w_i (x_i - y), with w_i = e_i / sum e.
  # The weights are recomputed from the inputs (cheap) rather than stored.
  x, logits = residuals
  masks = _tap_masks(geom)
  x_taps = _taps(x, geom)
  weights, total = _softmax_weights(_taps(logits, geom), masks)
  y = _weighted_mean(x_taps, weights, total)
  scale = g / total
  dx = dl = None
  for (_, tap), value, weight in zip(geom.offsets(), x_taps, weights):
    gw = scale * weight
    dx_tap = window_unslice(gw, geom, tap)
    dl_tap = window_unslice(gw * (value - y), geom, tap)
    dx = dx_tap if dx is None else dx + dx_tap
    dl = dl_tap if dl is None else dl + dl_tap
  return dx, dl


_lip.defvjp(_lip_fwd, _lip_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def _soft(x: jax.Array, geom: WindowGeometry) -> jax.Array:
  return _lip(x, x, geom)


def _soft_fwd(x, geom):
  return _soft(x, geom), x


def _soft_bwd(geom, x, g):
  # dy/dx_i = w_i (1 + x_i - y): the sum of LIP's two partials.
  masks = _tap_masks(geom)
  x_taps = _taps(x, geom)
  weights, total = _softmax_weights(x_taps, masks)
  y = _weighted_mean(x_taps, weights, total)
  scale = g / total
  dx = None
  for (_, tap), value, weight in zip(geom.offsets(), x_taps, weights):
    dx_tap = window_unslice(scale * weight * (1.0 + value - y), geom, tap)
    dx = dx_tap if dx is None else dx + dx_tap
  return (dx,)


_soft.defvjp(_soft_fwd, _soft_bwd)


def soft_pool(
    x: jax.typing.ArrayLike,
    window_shape: Sequence[int],
    strides: int | Sequence[int] | None = None,
    padding: PaddingLike = "VALID",
    *,
    dilation: int | Sequence[int] | None = None,
    ceil_mode: bool = False,
) -> jax.Array:
  """SoftPool (Stergiou et al., ICCV 2021): a softmax-weighted window mean.

  Per channel and window ``R``: ``y = sum_{i in R} w_i x_i`` with
  ``w_i = exp(x_i) / sum_{j in R} exp(x_j)``; padded cells have zero weight.
  Computed as ``exp(x_i - max_R x)`` so it is finite for any finite input
  (float32 up to and beyond ``|x| = 1e4``). The derivative is the true one,
  ``dy/dx_i = w_i (1 + x_i - y)``, from a hand-written VJP that recomputes the
  weights instead of storing per-tap tensors (reverse mode only).

  Differences from the official code (alexandrosstergiou/SoftPool), which
  jaxpool deliberately does not reproduce:

  * its CPU path sums ``exp(x)`` over the **channels** (one weight map shared by
    all channels) and clamps the output to ``>= 0``; the paper, and jaxpool,
    weight each channel by its own softmax and keep negative outputs;
  * neither official path subtracts the window maximum (float32 overflows for
    inputs above about 88), and its CUDA backward treats the weights as
    constants (``w_i`` instead of ``w_i (1 + x_i - y)``).

  Args:
    x: floating-point input of shape ``(*batch, *spatial, features)``
      (float16/bfloat16 computed in float32 and cast back).
    window_shape, strides, padding, dilation, ceil_mode: as in
      :func:`jaxpool.max_pool` (``strides=None`` means ``window_shape``).

  Returns:
    Array of shape ``(*batch, *out_spatial, features)`` and ``x``'s dtype.

  Example:
    >>> import jax.numpy as jnp, jaxpool
    >>> x = jnp.array([0.0, 1.0, 2.0, 3.0]).reshape(4, 1)
    >>> jaxpool.soft_pool(x, (2,))[:, 0]
    Array([0.7310586, 2.7310586], dtype=float32)
  """
  x = dtypes.float_input(x, "soft_pool")
  geom = window_geometry(
      x.shape, window_shape, strides, padding, dilation=dilation,
      ceil_mode=ceil_mode,
  )
  ct = dtypes.compute_dtype(x.dtype)
  return _soft(x.astype(ct), geom).astype(x.dtype)


def lip_pool(
    x: jax.typing.ArrayLike,
    logits: jax.typing.ArrayLike,
    window_shape: Sequence[int],
    strides: int | Sequence[int] | None = None,
    padding: PaddingLike = "VALID",
    *,
    dilation: int | Sequence[int] | None = None,
    ceil_mode: bool = False,
) -> jax.Array:
  """Local Importance-based Pooling (Gao, Wang, Wu, ICCV 2019).

  Per channel and window ``R``: ``y = sum_{i in R} exp(l_i) x_i / sum_{i in R}
  exp(l_i)`` with importance logits ``l`` of ``x``'s shape (usually produced by
  a small learned network, see :class:`jaxpool.nnx.LIP`); padded cells have
  zero weight. Stable for any finite logits (the window maximum of ``l`` is
  subtracted; the official CUDA kernel has this commented out and relies on
  its ``12 * sigmoid`` logit bound). Gradients to both ``x`` (``w_i``) and
  ``logits`` (``w_i (x_i - y)``) come from a hand-written VJP that stores no
  per-tap tensors. ``lip_pool(x, x, ...) == soft_pool(x, ...)``; constant
  logits give average pooling over the real cells.

  Args:
    x: floating-point input of shape ``(*batch, *spatial, features)``.
    logits: importance logits, same shape as ``x``.
    window_shape, strides, padding, dilation, ceil_mode: as in
      :func:`jaxpool.max_pool`. The official LIP uses 3x3 windows, stride 2,
      padding 1.

  Returns:
    Array of shape ``(*batch, *out_spatial, features)`` and ``x``'s dtype.

  Example:
    >>> import jax.numpy as jnp, jaxpool
    >>> x = jnp.array([1.0, 3.0]).reshape(2, 1)
    >>> jaxpool.lip_pool(x, jnp.zeros_like(x), (2,))
    Array([[2.]], dtype=float32)
  """
  x = dtypes.float_input(x, "lip_pool")
  logits = dtypes.float_input(logits, "lip_pool (logits)")
  if logits.shape != x.shape:
    raise ValueError(
        f"logits must have the shape of x; got logits.shape={logits.shape} and"
        f" x.shape={x.shape}."
    )
  geom = window_geometry(
      x.shape, window_shape, strides, padding, dilation=dilation,
      ceil_mode=ceil_mode,
  )
  ct = dtypes.compute_dtype(jnp.result_type(x.dtype, logits.dtype))
  return _lip(x.astype(ct), logits.astype(ct), geom).astype(x.dtype)
