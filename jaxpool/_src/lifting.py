"""LiftPool (Zhao & Snoek, ICLR 2021): pooling by the lifting scheme.

One 1-D lifting step along an axis splits a signal into even and odd samples
and turns them into an approximation ``s`` and a detail ``d``:

    x_e[k] = x[2k],   x_o[k] = x[2k + 1]
    d = x_o - P(x_e)          (predict)
    s = x_e + U(d)            (update)

and is undone exactly, for any ``P`` and ``U``, by ``x_e = s - U(d)``,
``x_o = d + P(x_e)``. [`lift_down_pool`][jaxpool.lift_down_pool] lifts along every spatial axis
(the last first) and returns the sub-bands; [`lift_up_pool`][jaxpool.lift_up_pool] inverts it.
"""

from __future__ import annotations

import collections
import functools
import itertools
import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxpool._src.core import banded
from jaxpool._src.core.backend import fence
from jaxpool._src.core.checks import check_choice, check_features, check_spatial_dims, is_int
from jaxpool._src.core.dtypes import compute_dtype, float_input
from jaxpool._src.core.eager import compiled_when_eager

__all__ = [
  "band_names",
  "check_lift_options",
  "init_lift_params",
  "lift_down_pool",
  "lift_down_pool_with_constraints",
  "lift_pool",
  "lift_step",
  "LIFT_STEPS",
  "lift_steps",
  "lift_up_pool",
  "LiftBands1D",
  "LiftBands2D",
  "LiftBands3D",
  "LiftConstraints",
  "WAVELETS",
]

Step = Callable[[jax.Array], jax.Array]


def band_names(spatial_dims: int) -> tuple[str, ...]:
  """Sub-band names for ``spatial_dims`` lifted axes, in output order.

  One letter per 1-D lifting pass, in the order of the passes (the last
  spatial axis first): ``L`` for its approximation ``s``, ``H`` for its
  detail ``d``. In 2-D the first letter is horizontal (W), the second
  vertical (H), so ``LH`` is the vertical detail of the horizontal
  approximation.

  Examples:
    >>> band_names(2)
    ('LL', 'LH', 'HL', 'HH')
  """
  check_spatial_dims(spatial_dims)
  return tuple("".join(p) for p in itertools.product("LH", repeat=spatial_dims))


LiftBands1D = collections.namedtuple("LiftBands1D", band_names(1))
LiftBands1D.__doc__ = "Sub-bands of a 1-D lifting: approximation ``L``, detail ``H``."
LiftBands2D = collections.namedtuple("LiftBands2D", band_names(2))
LiftBands2D.__doc__ = (
  "Sub-bands of a 2-D lifting, named (horizontal, vertical): ``LL`` the"
  " approximation, ``LH`` the vertical detail of the horizontal"
  " approximation, ``HL`` the vertical approximation of the horizontal"
  " detail, ``HH`` the detail of the detail."
)
LiftBands3D = collections.namedtuple("LiftBands3D", band_names(3))
LiftBands3D.__doc__ = (
  "Sub-bands of a 3-D lifting, named (W, H, D) pass by pass: ``LLL`` ... ``HHH``."
)
_BANDS = {1: LiftBands1D, 2: LiftBands2D, 3: LiftBands3D}


class LiftConstraints(NamedTuple):
  """The lifting constraints of the paper, summed over all 1-D steps.

  ``c_u = sum_steps mean((s - x_o)^2)`` (the update keeps ``s`` close to
  the signal) and ``c_p = sum_steps mean(d^2)`` (the predictor keeps the
  detail small), each mean over the step's whole band (batch, positions,
  features).
  """

  c_u: jax.Array
  c_p: jax.Array


# ---------------------------------------------------------------------------
# Fixed wavelets in lifting form. The public contract of a step is a callable
# on (..., n, features) acting along axis -2; jaxpool's own steps are marked
# "along_axis" and take the axis as a keyword, so no transpose is needed.
# ---------------------------------------------------------------------------


def along_axis(fn: Callable) -> Callable:
  """Marks ``fn(a, axis=-2)`` as a step that can act along any axis."""
  fn.along_axis = True
  return fn


def pointwise(fn: Callable) -> Callable:
  """Marks a step whose output at ``k`` reads its input at ``k`` only."""
  fn.pointwise = True
  return fn


def _shifted(a: jax.Array, axis: int, step: int) -> jax.Array:
  """``a[k + step]`` along ``axis`` (``step`` = +-1), the end sample repeated
  (symmetric extension): a zero-padded slice with the end sample selected
  back in, which XLA fuses (a concatenate would be materialised)."""
  n = a.shape[axis]
  config = [(0, 0, 0)] * a.ndim
  config[axis] = (0, 1, 0) if step > 0 else (1, 0, 0)
  kept = (
    lax.slice_in_dim(a, 1, n, axis=axis) if step > 0 else lax.slice_in_dim(a, 0, n - 1, axis=axis)
  )
  shifted = lax.pad(kept, jnp.zeros((), a.dtype), config)
  end = np.zeros([n if d == axis % a.ndim else 1 for d in range(a.ndim)], bool)
  end.reshape(-1)[n - 1 if step > 0 else 0] = True  # a constant: no sharding to match
  return jnp.where(end, a, shifted)


@pointwise
@along_axis
def _haar_predict(even: jax.Array, axis: int = -2) -> jax.Array:
  return even


@pointwise
@along_axis
def _haar_update(detail: jax.Array, axis: int = -2) -> jax.Array:
  return 0.5 * detail


@along_axis
def _legall53_predict(even: jax.Array, axis: int = -2) -> jax.Array:
  return 0.5 * (even + _shifted(even, axis, 1))


@along_axis
def _legall53_update(detail: jax.Array, axis: int = -2) -> jax.Array:
  return 0.25 * (_shifted(detail, axis, -1) + detail)


# name -> (predict, update)
WAVELETS: dict[str, tuple[Step, Step]] = {
  "haar": (_haar_predict, _haar_update),
  "legall53": (_legall53_predict, _legall53_update),
}


# The fixed wavelets as band maps (core.banded): each lifting step along an
# axis of length n is a linear map to (s, d), computed as a few weighted,
# shifted phase planes of the input, and its inverse likewise from the bands.
# The maps are read off the lifting itself, by probing the steps above, so
# the symmetric extension is exactly theirs.


def _step_on_signals(wavelet: str, x: jax.Array):
  """``(s, d)`` of one lifting step of ``wavelet`` on signals ``(probes, n)``."""
  predict, update = WAVELETS[wavelet]
  approx, detail, _, _ = _lift_step(x[..., None], 1, predict, update)
  return approx[..., 0], detail[..., 0]


@functools.lru_cache(maxsize=64)
def _analysis_bank(wavelet: str, n: int) -> banded.BandTerms:
  """``(s, d)`` of one lifting step of ``wavelet`` on length ``n``."""
  return banded.analysis_terms(functools.partial(_step_on_signals, wavelet), n)


@functools.lru_cache(maxsize=64)
def _sum_bank(wavelet: str, n: int) -> banded.BandTerms:
  """``s + d`` of one lifting step of ``wavelet`` on length ``n``."""
  return banded.analysis_terms(lambda x: (sum(_step_on_signals(wavelet, x)),), n)


@functools.lru_cache(maxsize=64)
def _synthesis_bank(wavelet: str, m: int) -> banded.BandTerms:
  """``M`` with ``x = M^T (s, d)``, the inverse of one lifting step of
  ``wavelet`` on length ``2 m``."""
  predict, update = WAVELETS[wavelet]

  def invert(bands):
    approx, detail = (b[..., None] for b in bands)
    return _unlift_step(approx, detail, 1, predict, update)[..., 0]

  return banded.synthesis_terms(invert, m)


# ---------------------------------------------------------------------------
# Argument checks.
# ---------------------------------------------------------------------------


def _steps(predict, update, wavelet: str, op: str) -> tuple[Step, Step]:
  check_choice("wavelet", wavelet, tuple(WAVELETS))
  default_predict, default_update = WAVELETS[wavelet]
  for name, fn in (("predict", predict), ("update", update)):
    if fn is not None and not callable(fn):
      raise TypeError(f"{op}: {name} must be a callable or None; got {fn!r}.")
  return predict or default_predict, update or default_update


def _applied(fn: Step, name: str, a: jax.Array, axis: int) -> jax.Array:
  """``fn`` along ``axis`` of ``a``: directly for jaxpool's steps, else with
  the axis moved to -2 (the public contract) and back."""
  if getattr(fn, "along_axis", False):
    return fn(a, axis=axis).astype(a.dtype)
  moved = jnp.moveaxis(a, axis, -2)
  out = jnp.asarray(fn(moved))
  if out.shape != moved.shape:
    raise ValueError(
      f"{name} must map an array of shape {moved.shape} (lifting axis at -2)"
      f" to the same shape; got {out.shape}."
    )
  return jnp.moveaxis(out, -2, axis).astype(a.dtype)


def _lifted_axes(shape: tuple[int, ...], spatial_dims: int, op: str) -> list[int]:
  """Array axes of the passes, the last spatial axis first; all even."""
  if len(shape) < spatial_dims + 1:
    raise ValueError(
      f"{op} with spatial_dims={spatial_dims} expects (*batch, *spatial,"
      f" features) with {spatial_dims} spatial axes; got shape {shape}."
    )
  axes = [len(shape) - 2 - i for i in range(spatial_dims)]
  for i, axis in enumerate(axes):
    if shape[axis] == 0:
      raise ValueError(
        f"{op}: spatial axis {spatial_dims - 1 - i} (array axis {axis}) is empty in shape {shape}."
      )
    if shape[axis] % 2:
      raise ValueError(
        f"{op}: lifting halves each spatial axis, so their lengths must be"
        f" even; spatial axis {spatial_dims - 1 - i} (array axis {axis}) has"
        f" odd length {shape[axis]} in shape {shape}. Pad or crop it first."
      )
  return axes


# ---------------------------------------------------------------------------
# Down: analysis.
# ---------------------------------------------------------------------------


def _mean_square(v: jax.Array) -> jax.Array:
  return jnp.mean(jnp.square(v))


def _between_passes(bands, predict, update):
  """The bands, fenced (`fence`) unless
  both steps are pointwise: fused, every output of a pass would recompute the
  neighbours it reads from the previous pass; pointwise steps (Haar) fuse
  best whole, where a fence would only add a pass (measurements:
  benchmarks/results-lifting.md)."""
  if all(getattr(fn, "pointwise", False) for fn in (predict, update)):
    return bands
  return [fence(b) for b in bands]


def _lift_step(x, axis, predict, update, wavelet=None):
  """One 1-D lifting step along ``axis``: ``(s, d)`` and its constraint
  terms. With a ``wavelet`` name (its fixed steps), as a two-band map."""
  n = x.shape[axis]
  even = lax.slice_in_dim(x, 0, n, 2, axis=axis)
  odd = lax.slice_in_dim(x, 1, n, 2, axis=axis)
  if wavelet is not None:
    approx, detail = banded.to_bands(x, axis, _analysis_bank(wavelet, n))
    updated = _applied(update, "update", detail, axis)
  else:
    detail = odd - _applied(predict, "predict", even, axis)
    updated = _applied(update, "update", detail, axis)
    approx = even + updated
  # s - x_o as (x_e - x_o) + U(d), not approx - x_o: no cancellation, so a
  # constant signal gives exactly 0 at any magnitude.
  return approx, detail, _mean_square((even - odd) + updated), _mean_square(detail)


@compiled_when_eager()
def lift_down_pool_with_constraints(
  x: jax.typing.ArrayLike,
  *,
  spatial_dims: int = 2,
  predict: Step | None = None,
  update: Step | None = None,
  wavelet: str = "legall53",
):
  r"""[`lift_down_pool`][jaxpool.lift_down_pool] and the paper's lifting constraints.

  Over every 1-D lifting step (3 in 2-D: one horizontal, two vertical):

  $$
  c_u = \sum_\text{steps} \operatorname{mean}((s - x_o)^2), \qquad
  c_p = \sum_\text{steps} \operatorname{mean}(d^2)
  $$

  ($c_u$: the update keeps $s$ close to the signal; $c_p$: the predictor keeps
  the detail small), each mean over the step's whole band (batch, positions and
  features), so the terms do not grow with the batch, the resolution or the
  width. The paper trains with ``0.01 * c_u + 0.1 * c_p`` added to the task loss
  (the weights come with mean squares in the code that attests them); the Flax
  layers record the constraints for that. Temporal Lift Pooling uses
  unnormalised L2 norms instead, with weights 0.001: with such norms and the
  paper's weights, the constraints outweigh the task loss and a small CNN
  collapses to chance (docs/lifting.md).

  $s - x_o$ is computed as $(x_e - x_o) + U(d)$, so a constant map gives
  exactly 0 at any magnitude. A mean square beyond the dtype's range (e.g.
  random activations of 1e20 in float32) is ``inf``.

  Args:
    x: ``(*batch, *spatial, features)`` floating-point array, every spatial axis
      of even length, as in [`lift_down_pool`][jaxpool.lift_down_pool].
    spatial_dims: number of spatial axes (1, 2 or 3, default 2), those just
      before the features.
    predict: the predict step $P$, a callable ``(..., n, features) -> (..., n,
      features)`` along axis -2, as in [`lift_down_pool`][jaxpool.lift_down_pool];
      ``None`` (default) takes the step of ``wavelet``.
    update: the update step $U$, a callable like ``predict``; ``None``
      (default) takes the step of ``wavelet``.
    wavelet: the fixed steps used for ``None``: ``'legall53'`` (default) or
      ``'haar'``, as in [`lift_down_pool`][jaxpool.lift_down_pool].

  Returns:
    ``(bands, LiftConstraints(c_u, c_p))``: the bands of
      [`lift_down_pool`][jaxpool.lift_down_pool] and two scalars, float32 for half-precision
      input (a float16 mean square overflows for activations of a few hundred).

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxpool
    >>> bands, (c_u, c_p) = jaxpool.lift_down_pool_with_constraints(jnp.ones((1, 4, 4, 2)))
    >>> float(c_p)  # a constant has no detail
    0.0
  """
  x = float_input(x, "lift_down_pool")
  bands, constraints = _lift_in_compute_dtype(x, spatial_dims, predict, update, wavelet)
  bands = (b.astype(x.dtype) for b in bands)
  return _BANDS[check_spatial_dims(spatial_dims)](*bands), constraints


def _lift_in_compute_dtype(x, spatial_dims, predict, update, wavelet, op="lift_down_pool"):
  """The bands (a list, in `compute_dtype`) and the constraints."""
  spatial_dims = check_spatial_dims(spatial_dims)
  axes = _lifted_axes(x.shape, spatial_dims, op)
  fixed = wavelet if predict is None and update is None else None
  predict, update = _steps(predict, update, wavelet, op)
  bands = [x.astype(compute_dtype(x.dtype))]
  c_u = c_p = jnp.zeros((), bands[0].dtype)
  for i, axis in enumerate(axes):
    if i:
      bands = _between_passes(bands, predict, update)
    lifted = []
    for band in bands:
      approx, detail, u, p = _lift_step(band, axis, predict, update, fixed)
      lifted += [approx, detail]
      c_u, c_p = c_u + u, c_p + p
    bands = lifted
  return bands, LiftConstraints(c_u, c_p)


@compiled_when_eager()
def lift_down_pool(
  x: jax.typing.ArrayLike,
  *,
  spatial_dims: int = 2,
  predict: Step | None = None,
  update: Step | None = None,
  wavelet: str = "legall53",
):
  r"""LiftDownPool: the sub-bands of a lifting along every spatial axis.

  Along each spatial axis in turn, the last first, every band from the
  previous passes is split into even and odd samples and lifted:

  $$
  d = x_o - P(x_e), \qquad s = x_e + U(d)
  $$

  giving ``2**spatial_dims`` bands of half the size along every spatial axis.
  In 2-D they are ``LL, LH, HL, HH``, named (horizontal, vertical): the
  horizontal pass gives $s, d$; the vertical pass on $s$ gives ``LL``,
  ``LH`` and on $d$ gives ``HL``, ``HH``. The paper's pooling for
  classification is the sum of the bands (``sum(lift_down_pool(x))``).

  Args:
    x: ``(*batch, *spatial, features)`` floating-point array; every spatial
      axis must have even length. The spatial axes are the ``spatial_dims``
      axes before the features, so a batch of signals ``(B, L, C)`` needs
      ``spatial_dims=1`` (with the default 2 it is one ``(H, W, C)`` image).
    spatial_dims: number of spatial axes (1, 2 or 3), those just before the
      features.
    predict: the predict step $P$: a callable ``(..., n, features) -> (..., n,
      features)`` acting along axis -2 (the lifting axis is moved there), shared
      by all passes. ``None`` (default) takes the step of ``wavelet``.
    update: the update step $U$: a callable of the same form, shared by all
      passes. ``None`` (default) takes the step of ``wavelet``.
    wavelet: the fixed steps used for ``None``: ``'legall53'`` (LeGall 5/3,
      JPEG 2000's reversible wavelet: $P(e)[k] = (e[k] + e[k + 1]) / 2$,
      $U(d)[k] = (d[k - 1] + d[k]) / 4$, symmetric extension at both ends)
      or ``'haar'`` ($P(e) = e$, $U(d) = d / 2$, so $s$ is the pair
      mean and $d$ the pair difference).

  Returns:
    A named tuple of bands (`LiftBands1D`, `LiftBands2D` or
      `LiftBands3D`), each ``(*batch, *spatial / 2, features)`` in the
      dtype of ``x``. With the default wavelets a constant input gives the
      constant in the first band and zeros elsewhere.

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxpool
    >>> x = jnp.arange(16.0).reshape(1, 4, 4, 1)
    >>> bands = jaxpool.lift_down_pool(x, wavelet="haar")
    >>> bands.LL[0, :, :, 0]
    Array([[ 2.5,  4.5],
           [10.5, 12.5]], dtype=float32)
    >>> bool(jnp.allclose(jaxpool.lift_up_pool(bands, wavelet="haar"), x))
    True

  References:
    Zhao & Snoek, "LiftPool: Bidirectional ConvNet Pooling", ICLR 2021.
  """
  return lift_down_pool_with_constraints(
    x, spatial_dims=spatial_dims, predict=predict, update=update, wavelet=wavelet
  )[0]


@compiled_when_eager()
def lift_pool(
  x: jax.typing.ArrayLike,
  *,
  spatial_dims: int = 2,
  predict: Step | None = None,
  update: Step | None = None,
  wavelet: str = "legall53",
) -> jax.Array:
  """LiftPool for classification: the sum of [`lift_down_pool`][jaxpool.lift_down_pool]'s bands.

  ``lift_pool(x) == sum(lift_down_pool(x))``, the paper's pooling for
  classification (``LL + LH + HL + HH`` in 2-D). With the fixed wavelets
  (``predict`` and ``update`` ``None``) every band is a product of 1-D
  filters, one per axis ($s$ or $d$), so their sum is the product of the
  per-axis sums $s + d$: one filter per axis, half the work and memory of
  the bands. With learned steps the bands are lifted and summed.

  Args:
    x: ``(*batch, *spatial, features)`` floating-point array, every spatial axis
      of even length, as in [`lift_down_pool`][jaxpool.lift_down_pool].
    spatial_dims: number of spatial axes (1, 2 or 3, default 2), those just
      before the features.
    predict: the predict step $P$, a callable ``(..., n, features) -> (..., n,
      features)`` along axis -2, as in [`lift_down_pool`][jaxpool.lift_down_pool];
      ``None`` (default) takes the step of ``wavelet``.
    update: the update step $U$, a callable like ``predict``; ``None``
      (default) takes the step of ``wavelet``.
    wavelet: the fixed steps used for ``None``: ``'legall53'`` (default) or
      ``'haar'``, as in [`lift_down_pool`][jaxpool.lift_down_pool].

  Returns:
    ``(*batch, *spatial / 2, features)`` in the dtype of ``x``.

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxpool
    >>> x = jnp.arange(16.0).reshape(1, 4, 4, 1)
    >>> jaxpool.lift_pool(x, wavelet="haar")[0, :, :, 0]
    Array([[ 7.5,  9.5],
           [15.5, 17.5]], dtype=float32)
  """
  op = "lift_pool"
  x = float_input(x, op)
  if predict is not None or update is not None:  # summed in the compute dtype, as below
    bands, _ = _lift_in_compute_dtype(x, spatial_dims, predict, update, wavelet, op)
    return functools.reduce(jnp.add, bands).astype(x.dtype)
  spatial_dims = check_spatial_dims(spatial_dims)
  axes = _lifted_axes(x.shape, spatial_dims, op)
  predict, update = _steps(None, None, wavelet, op)
  y = x.astype(compute_dtype(x.dtype))
  for i, axis in enumerate(axes):
    if i:
      (y,) = _between_passes([y], predict, update)
    (y,) = banded.to_bands(y, axis, _sum_bank(wavelet, y.shape[axis]))
  return y.astype(x.dtype)


# ---------------------------------------------------------------------------
# Up: synthesis.
# ---------------------------------------------------------------------------


def _unlift_step(approx, detail, axis, predict, update, wavelet=None):
  """The inverse of `_lift_step`; with a ``wavelet`` name, as a
  two-band map."""
  if wavelet is not None:
    return banded.from_bands((approx, detail), axis, _synthesis_bank(wavelet, approx.shape[axis]))
  even = approx - _applied(update, "update", detail, axis)
  odd = detail + _applied(predict, "predict", even, axis)
  shape = list(even.shape)
  shape[axis] *= 2
  return jnp.stack([even, odd], axis=axis + 1).reshape(shape)


@compiled_when_eager()
def lift_up_pool(
  bands: Sequence[jax.typing.ArrayLike],
  *,
  spatial_dims: int | None = None,
  predict: Step | None = None,
  update: Step | None = None,
  wavelet: str = "legall53",
) -> jax.Array:
  """LiftUpPool: the exact inverse of [`lift_down_pool`][jaxpool.lift_down_pool].

  The passes are undone in reverse order; each one computes
  $x_e = s - U(d)$, $x_o = d + P(x_e)$ and interleaves
  $x[2k] = x_e[k]$, $x[2k + 1] = x_o[k]$. So, for any ``predict`` and
  ``update``, ``lift_up_pool(lift_down_pool(x, predict=P, update=U),
  predict=P, update=U)`` equals ``x`` to rounding. In a decoder, pass its
  feature map in place of the first band and the detail bands stored by the
  matching down pooling.

  Args:
    bands: the ``2**spatial_dims`` bands in `band_names` order (a
      named tuple from [`lift_down_pool`][jaxpool.lift_down_pool] or any sequence), all of one
      shape ``(*batch, *spatial, features)``.
    spatial_dims: the number of lifted axes, checked against the number of
      bands when given (``None``: ``log2(len(bands))``).
    predict: the predict step $P$ the down pooling used; ``None`` (default)
      takes the step of ``wavelet``.
    update: the update step $U$ the down pooling used; ``None`` (default)
      takes the step of ``wavelet``.
    wavelet: the fixed steps the down pooling used for ``None``: ``'legall53'``
      (default) or ``'haar'``.

  Returns:
    ``(*batch, *2 spatial, features)``, in the bands' dtype.

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxpool
    >>> x = jnp.linspace(0.0, 1.0, 32).reshape(1, 4, 8, 1)
    >>> y = jaxpool.lift_up_pool(jaxpool.lift_down_pool(x))
    >>> bool(jnp.allclose(y, x, atol=1e-6))
    True
  """
  op = "lift_up_pool"
  if not isinstance(bands, Sequence):
    raise TypeError(
      f"{op} expects a sequence of sub-bands (e.g. the named tuple of"
      f" lift_down_pool); got {type(bands).__name__}."
    )
  counted = {2: 1, 4: 2, 8: 3}.get(len(bands))
  if counted is None:
    raise ValueError(f"{op} expects 2, 4 or 8 sub-bands; got {len(bands)}.")
  if spatial_dims is not None and check_spatial_dims(spatial_dims) != counted:
    raise ValueError(
      f"{op} with spatial_dims={spatial_dims} expects {2**spatial_dims}"
      f" sub-bands; got {len(bands)}."
    )
  spatial_dims = counted
  arrays = [float_input(b, op) for b in bands]
  shapes = {a.shape for a in arrays}
  dtypes = {a.dtype for a in arrays}
  if len(shapes) > 1 or len(dtypes) > 1:
    raise ValueError(
      f"{op}: all sub-bands must have one shape and dtype; got shapes"
      f" {[a.shape for a in arrays]} and dtypes {[str(a.dtype) for a in arrays]}."
    )
  (shape,), (dtype,) = shapes, dtypes
  if len(shape) < spatial_dims + 1:
    raise ValueError(
      f"{op}: {len(bands)} sub-bands lift {spatial_dims} spatial axes, so each"
      f" must have at least {spatial_dims + 1} axes; got shape {shape}."
    )
  fixed = wavelet if predict is None and update is None else None
  predict, update = _steps(predict, update, wavelet, op)
  axes = [len(shape) - 2 - i for i in range(spatial_dims)]
  arrays = [a.astype(compute_dtype(dtype)) for a in arrays]
  for i, axis in enumerate(reversed(axes)):
    if i:
      arrays = _between_passes(arrays, predict, update)
    arrays = [
      _unlift_step(arrays[i], arrays[i + 1], axis, predict, update, fixed)
      for i in range(0, len(arrays), 2)
    ]
  return arrays[0].astype(dtype)


# ---------------------------------------------------------------------------
# The layer's parametrisation: the learned predictor and updater.
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

  Each step is ``tanh(mix(relu(depthwise(v))))`` (see `lift_step`):
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
    params[f"{step}_depthwise_kernel"] = jax.random.normal(k, (kernel_size, features)) / math.sqrt(
      kernel_size
    )
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
  """``(predict, update)`` callables for [`jaxpool.lift_down_pool`][jaxpool.lift_down_pool]."""
  return tuple(
    along_axis(lambda v, axis=-2, step=step: lift_step(params, step, v, axis))
    for step in LIFT_STEPS
  )
