"""Covariance (second-order) pooling: MPN-COV / iSQRT-COV and log-Euclidean.

The global descriptor of a feature map is the covariance of its positions'
feature vectors, optionally normalised by a matrix function: the square root
(Li et al., iSQRT-COV, CVPR 2018: a coupled Newton-Schulz iteration, matmuls
only) or the logarithm (log-Euclidean, through ``eigh`` with a derivative
that stays finite for repeated eigenvalues).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxpool._src.core import backend
from jaxpool._src.core.checks import check_choice, check_features, check_positive_number, is_int
from jaxpool._src.core.descriptors import (
  positions,
  power_of_two_scale,
  times_power_of_two,
)
from jaxpool._src.core.eager import compiled_when_eager
from jaxpool._src.core.sharding import partition_spec, sharding_like

__all__ = [
  "covariance_pool",
  "init_reduction_params",
  "NORMALIZATIONS",
  "OUTPUTS",
  "reduce_features",
  "triu_vector",
]

NORMALIZATIONS = ("sqrtm", "logm", None)
OUTPUTS = ("matrix", "triu")


def _centred(rows: jax.Array) -> jax.Array:
  """The rows ``(*batch, M, d)`` minus their mean. They are shifted by the
  first one before the mean is taken (the covariance does not change), so a
  constant map gives exactly 0 whatever the mean's rounding."""
  rows = rows - rows[..., :1, :]
  return rows - jnp.mean(rows, axis=-2, keepdims=True)


def _gram(centred: jax.Array) -> jax.Array:
  """``(1/M) X^T X`` of ``(*batch, M, d)`` rows."""
  return jnp.einsum("...mi,...mj->...ij", centred, centred) / centred.shape[-2]


def _covariance(rows: jax.Array) -> jax.Array:
  """``C = (1/M) sum_l (x_l - mu)(x_l - mu)^T`` from the centred rows
  ``(*batch, M, d)`` (never the ``M x M`` centring matrix)."""
  return _gram(_centred(rows))


def _newton_schulz(a: jax.Array, iterations: int, last: str = "y") -> jax.Array:
  r"""iSQRT-COV's coupled iteration on ``(..., d, d)``: $Y_0 = A$, $Z_0 = I$,
  $T_k = (3I - Z_k Y_k) / 2$, $Y_{k+1} = Y_k T_k$, $Z_{k+1} = T_k Z_k$;
  $Y_n$ (``last="y"``) or $Z_n$ (``"z"``) after ``iterations`` steps, the
  last of which computes only that one.

  $3n - 3$ matmuls: $Z_0 = I$ makes the first step $T_0 = (3I - A) / 2$,
  $Y_1 = A T_0$, $Z_1 = T_0$ (one product)."""
  eye = jnp.eye(a.shape[-1], dtype=a.dtype)
  t = 0.5 * (3 * eye - a)
  if iterations == 1:
    return a @ t if last == "y" else t
  y, z = a @ t, t
  for _ in range(iterations - 2):
    t = 0.5 * (3 * eye - z @ y)
    y, z = y @ t, t @ z
  t = 0.5 * (3 * eye - z @ y)
  return y @ t if last == "y" else t @ z


def _newton_schulz_derivative(
  a: jax.Array, g: jax.Array, iterations: int, last: str = "y"
) -> tuple[jax.Array, jax.Array]:
  r"""$U_n$ (`_newton_schulz`'s $Y_n$ or $Z_n$) and its derivative
  $L(G) = \frac{d}{ds} U_n(A + sG)$ for a symmetric $A$ and $G$ (forward
  mode; nothing is stored).

  Every matrix of the iteration is a polynomial in $A$, so they commute,
  $P_k = Z_k Y_k$ obeys $P_{k+1} = P_k T_k^2$ with $T_k = (3I - P_k) / 2$,
  and $U_{k+1} = U_k T_k$ ($Y_1 = A T_0$, $Z_1 = T_0$). The derivative is
  written for this form: three products for the values and five for the
  derivatives per step ($d(P^2) = \dot P P + (\dot P P)^\top$, every
  derivative being symmetric). The derivative of a real polynomial at a
  symmetric $A$ is self-adjoint, $\langle G, L(E) \rangle = \langle L(G), E
  \rangle$, so this forward-mode derivative is also the vector-Jacobian
  product of $U_n$ with the cotangent $G$."""
  eye = jnp.eye(a.shape[-1], dtype=a.dtype)
  t, dt = 0.5 * (3 * eye - a), -0.5 * g
  ga = g @ a
  y, dy = a @ t, 1.5 * g - 0.5 * (ga + jnp.swapaxes(ga, -1, -2))
  u, du = (y, dy) if last == "y" else (t, dt)
  p = dp = None
  for step in range(1, iterations):
    if step == 1:  # P_1 = A T_0^2 = Y_1 T_0
      p, dp = y @ t, dy @ t + y @ dt
    else:  # P T^2 = Q T with Q = P T = (3P - P^2) / 2
      square, half = p @ p, dp @ p
      q = 0.5 * (3 * p - square)
      dq = 0.5 * (3 * dp - (half + jnp.swapaxes(half, -1, -2)))
      p, dp = q @ t, dq @ t + q @ dt
    t, dt = 0.5 * (3 * eye - p), -0.5 * dp
    u, du = u @ t, du @ t + u @ dt
  return u, du


def _floored_trace(c: jax.Array) -> tuple[jax.Array, jax.Array]:
  """``(max(tr C, floor), tr C > floor)``, shaped ``(..., 1, 1)``: the floor
  is the square root of the dtype's smallest normal number, so neither the
  trace nor its square (in the derivative of ``C / tr C``) underflows."""
  trace = jnp.sum(jnp.diagonal(c, axis1=-2, axis2=-1), axis=-1)[..., None, None]
  floor = np.sqrt(jnp.finfo(c.dtype).tiny).astype(c.dtype)
  above = trace > floor
  return jnp.where(above, trace, floor), above


def _transpose(v: jax.Array) -> jax.Array:
  return jnp.swapaxes(v, -1, -2)


def _sqrtm_images(x: jax.Array, exponent: jax.Array, iterations: int) -> jax.Array:
  r"""$2^e \sqrt{t}\; Y_n(C / t)$ for $C = X^\top X / M$ and $t$ its trace
  (0 for a zero covariance: the trace is floored), from ``(..., M, d)``
  centred rows $X$.

  With fewer positions than features ($M < d$) the iteration runs on the
  smaller Gram matrix $K = X X^\top / M$: $Y_n = A Z_n(A)$ with $A = C / t$,
  and $A\, h(A) = X^\top h(K / t)\, X / (M t)$ for every polynomial $h$, so
  $\sqrt{t}\, Y_n(A) = X^\top Z_n(K / t)\, X / (M \sqrt{t})$: the same
  polynomial of $C$, at $(M / d)^3$ of the cost."""
  m, d = x.shape[-2:]
  if m < d:
    k = (x @ _transpose(x)) / m
    trace, _ = _floored_trace(k)
    h = _newton_schulz(k / trace, iterations, last="z")
    root = (_transpose(x) @ (h @ x)) / (m * jnp.sqrt(trace))
  else:
    c = _gram(x)
    trace, _ = _floored_trace(c)
    root = _newton_schulz(c / trace, iterations) * jnp.sqrt(trace)
  return times_power_of_two(root, exponent)


def _sqrtm_images_vjp(x: jax.Array, exponent: jax.Array, g: jax.Array, iterations: int):
  r"""The derivative of `_sqrtm_images` for the cotangent $G$.

  With $t = \operatorname{tr} C$, $A = C / t$ and $S = \sqrt{t}\, Y_n(A)$:
  $\bar C = L(G) / \sqrt{t} + \bar t I$, with
  $\bar t = (\langle G, Y_n \rangle / 2 - \langle L(G), A \rangle) / \sqrt{t}$,
  and $\bar X = X (\bar C + \bar C^\top) / M$. In the Gram form,
  $S = s X^\top H X$ with $H = Z_n(B)$, $B = K / t$ and
  $s = 1 / (M \sqrt{t})$: $\bar H = s X G X^\top$, $\bar B = L(\bar H)$,
  $\bar t = -(\langle \bar B, B \rangle + \langle \bar H, H \rangle / 2) / t$
  and $\bar X = 2 s H X G + 2 (\bar B + t \bar t I) X / (M t)$. $G$ enters
  through its symmetric part (the derivative with respect to a symmetric
  $C$). Below the trace floor the derivative is taken as 0 (it is unbounded
  there), so a constant map's gradient stays finite."""
  m, d = x.shape[-2:]
  g = times_power_of_two(0.5 * (g + _transpose(g)), exponent)

  def inner(u, v):
    return jnp.sum(u * v, axis=(-2, -1), keepdims=True)

  if m < d:
    k = (x @ _transpose(x)) / m
    trace, above = _floored_trace(k)
    b, scale = k / trace, 1 / (m * jnp.sqrt(trace))
    w = x @ g
    dh = w @ _transpose(x)
    dh = 0.5 * scale * (dh + _transpose(dh))
    h, db = _newton_schulz_derivative(b, dh, iterations, last="z")
    t_dtrace = -(inner(db, b) + 0.5 * inner(dh, h))
    eye = jnp.eye(m, dtype=x.dtype)
    dx = 2 * scale * (h @ w) + ((2 / (m * trace)) * (db + t_dtrace * eye)) @ x
  else:
    c = _gram(x)
    trace, above = _floored_trace(c)
    a = c / trace
    y, dy = _newton_schulz_derivative(a, g, iterations)
    dtrace = 0.5 * inner(g, y) - inner(dy, a)
    eye = jnp.eye(d, dtype=x.dtype)
    dc = (dy + dtrace * eye) / jnp.sqrt(trace)
    dx = x @ ((dc + _transpose(dc)) / m)
  return jnp.where(above, dx, 0)


def _image_sets(b: int, images: int | None, shards: int) -> int:
  """The steps of a loop over ``b`` images, each a strided set of about
  ``images`` images, a multiple of the ``shards`` the batch axis is split
  into (``b`` is divisible by the steps). 1: the whole batch at once."""
  if images is None:
    return 1
  size = shards * max(1, -(-images // shards))
  while size < b and b % size:
    size += shards
  return max(1, b // size)


def _batch_shards(x: jax.Array) -> int:
  """Into how many shards ``x``'s leading axis is split explicitly."""
  axes = partition_spec(x)[0]
  if axes is None:
    return 1
  mesh = jax.typeof(x).sharding.mesh
  return math.prod(mesh.shape[a] for a in (axes if isinstance(axes, tuple) else (axes,)))


def _over_images(fn, shapes, *arrays: jax.Array, images: int | None):
  """``fn(*arrays)`` over the leading axis, a strided set of about ``images``
  images at a time: images ``s, s + steps, ...`` at step ``s``, so only one
  set's intermediates exist at a time and a leading axis sharded in
  contiguous blocks keeps each set spread over its shards. ``shapes`` is
  the output's shape, or a tuple of the outputs' shapes when ``fn`` returns
  a tuple (every output in ``arrays[0]``'s dtype).

  Each step's slices are taken at the end of the step before and carried:
  a slice taken in the step itself is fused into every consumer, and
  XLA:CPU does not vectorise a fused loop that broadcasts one (the matrix
  log's divided differences ran 7x slower)."""
  b = arrays[0].shape[0]
  steps = _image_sets(b, images, _batch_shards(arrays[0]))
  if steps == 1:
    return fn(*arrays)
  several = isinstance(shapes[0], tuple)
  shapes = shapes if several else (shapes,)

  def split(v):
    return v.reshape((b // steps, steps) + v.shape[1:])

  def step_inputs(s):
    return tuple(jax.lax.dynamic_index_in_dim(v, s, 1, keepdims=False) for v in split_arrays)

  def body(s, state):
    outs, inputs = state
    values = fn(*inputs)
    values = values if several else (values,)
    outs = tuple(jax.lax.dynamic_update_index_in_dim(o, v, s, 1) for o, v in zip(outs, values))
    return outs, step_inputs(jnp.minimum(s + 1, steps - 1))

  split_arrays = [split(v) for v in arrays]
  outs = tuple(
    split(jnp.zeros(shape, arrays[0].dtype, out_sharding=sharding_like(arrays[0], shape, (0,))))
    for shape in shapes
  )
  outs, _ = jax.lax.fori_loop(0, steps, body, (outs, step_inputs(0)))
  outs = tuple(out.reshape(shape) for out, shape in zip(outs, shapes))
  return outs if several else outs[0]


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _sqrtm(x: jax.Array, exponent: jax.Array, iterations: int) -> jax.Array:
  """`_sqrtm_images` of centred rows ``(B, M, d)`` (``exponent`` ``(B, 1,
  1)``, no derivative), with a derivative that stores only the rows and
  recomputes the covariance and the iteration (`_newton_schulz_derivative`).
  Both run over the batch a few images at a time (`Policy.matrix_images`)."""
  fn = functools.partial(_sqrtm_images, iterations=iterations)
  shape = x.shape[:1] + 2 * x.shape[-1:]

  def formulation(policy, x, exponent):
    return _over_images(fn, shape, x, exponent, images=policy.matrix_images)

  return backend.choose(formulation, x, exponent, reads=("matrix_images",))


def _sqrtm_fwd(x, exponent, iterations):
  return _sqrtm(x, exponent, iterations), (x, exponent)


def _sqrtm_bwd(iterations, residuals, g):
  fn = functools.partial(_sqrtm_images_vjp, iterations=iterations)

  def formulation(policy, x, exponent, g):
    return _over_images(fn, x.shape, x, exponent, g, images=policy.matrix_images)

  return backend.choose(formulation, *residuals, g, reads=("matrix_images",)), None


_sqrtm.defvjp(_sqrtm_fwd, _sqrtm_bwd)


def _newton_schulz_sqrt(centred: jax.Array, exponent: jax.Array, iterations: int) -> jax.Array:
  """iSQRT-COV's square root of the covariances of ``(*batch, M, d)`` centred
  rows, times ``2^exponent`` (`_sqrtm`)."""
  batch, (m, d) = centred.shape[:-2], centred.shape[-2:]
  exponent = jnp.broadcast_to(exponent, batch + (1, 1)).reshape(-1, 1, 1)
  return _sqrtm(centred.reshape(-1, m, d), exponent, iterations).reshape(batch + (d, d))


def _floored_log(lam: jax.Array, floor: jax.Array, log_floor: jax.Array) -> jax.Array:
  """``log(max(lam, floor))``, with ``log(floor)`` given: the floor may be
  too small for the dtype (a scaled ``eps``) while its log is not."""
  return jnp.where(lam > floor, jnp.log(jnp.where(lam > floor, lam, 1)), log_floor)


def _log_divided_differences(lam, floor, log_floor) -> jax.Array:
  """``K_ij = (f(l_i) - f(l_j)) / (l_i - l_j)`` for ``f`` the
  `_floored_log`, with ``f'(l_i)`` on the diagonal and for equal
  eigenvalues, computed without cancellation: for ``l_i, l_j`` above the
  floor, ``K = log1p(t) / t / l_j`` with ``t = (l_i - l_j) / l_j`` (a series
  near ``t = 0``); 0 where both are at the floor."""
  a, b = lam[..., :, None], lam[..., None, :]
  floor = floor[..., None]
  above_a, above_b = a > floor, b > floor
  floor_a, floor_b = jnp.maximum(a, floor), jnp.maximum(b, floor)
  safe_b = jnp.where(above_b, floor_b, 1)
  t = (floor_a - floor_b) / safe_b
  small = jnp.abs(t) < 1e-3
  safe_t = jnp.where(small, 1.0, t)
  series = 1 - t / 2 + t * t / 3 - t * t * t / 4
  ratio = jnp.where(small, series, jnp.log1p(jnp.where(small, 0.0, safe_t)) / safe_t)
  both = ratio / safe_b
  # One eigenvalue at the floor: the other is strictly larger, no 0/0.
  log_floor = log_floor[..., None]
  gap = jnp.where(above_a == above_b, 1.0, a - b)
  one = (_floored_log(a, floor, log_floor) - _floored_log(b, floor, log_floor)) / gap
  return jnp.where(above_a & above_b, both, jnp.where(above_a | above_b, one, 0.0))


def _floored_log_over(lam: jax.Array, floor: jax.Array, log_floor: jax.Array) -> jax.Array:
  """``h(lam) = (f(lam) - f(0)) / lam`` for ``f`` the `_floored_log`: 0 at
  and below the floor."""
  above = lam > floor
  safe = jnp.where(above, lam, 1)
  return jnp.where(above, (jnp.log(safe) - log_floor) / safe, 0)


def _gram_log_divided_differences(lam, floor, log_floor) -> jax.Array:
  r"""The divided differences of `_floored_log_over`, $h[a, b] = f[a, b, 0]
  = (f[a, b] - h(\min)) / \max$ (the second divided difference of $f$,
  divided by the larger of $a, b$ so the error is not amplified); 0 where
  both are at the floor."""
  a, b = lam[..., :, None], lam[..., None, :]
  low, high = jnp.minimum(a, b), jnp.maximum(a, b)
  above = high > floor[..., None]
  first = _log_divided_differences(lam, floor, log_floor)
  low_h = _floored_log_over(low, floor[..., None], log_floor[..., None])
  return jnp.where(above, (first - low_h) / jnp.where(above, high, 1), 0)


@jax.custom_vjp
def _logm_psd(c: jax.Array, floor: jax.Array, log_floor: jax.Array) -> jax.Array:
  """``U diag(log(max(lambda, floor))) U^T``; ``floor`` and ``log_floor`` are
  per matrix, ``(*batch, 1)``."""
  return _logm_fwd(c, floor, log_floor)[0]


def _logm_fwd(c, floor, log_floor):
  lam, u = jnp.linalg.eigh(c)
  logs = _floored_log(lam, floor, log_floor)
  out = (u * logs[..., None, :]) @ _transpose(u)
  return out, (lam, u, floor, log_floor)


def _logm_bwd(residuals, g):
  """Daleckii-Krein: ``dC = U (K o (U^T sym(G) U)) U^T``."""
  lam, u, floor, log_floor = residuals
  ut = _transpose(u)
  sym = 0.5 * (g + _transpose(g))
  inner = _log_divided_differences(lam, floor, log_floor) * (ut @ sym @ u)
  return u @ inner @ ut, None, None


_logm_psd.defvjp(_logm_fwd, _logm_bwd)


def _logm_gram_images(x: jax.Array, floor: jax.Array, log_floor: jax.Array, shift: jax.Array):
  r"""$\log \max(C, \mathrm{floor})$ for $C = X^\top X / M$ from centred
  rows $X$ ``(B, M, d)``, through the $M \times M$ Gram matrix
  $K = X X^\top / M = V \operatorname{diag}(\lambda) V^\top$, plus
  ``shift`` times $I$; returns it with $\lambda$, $V$ and $W = V^\top X$.

  $C$ has $K$'s eigenvalues and is 0 on the rest, so with
  $h(\lambda) = (f(\lambda) - f(0)) / \lambda$ ($f$ the floored log),
  $f(C) = f(0) I + W^\top \operatorname{diag}(h(\lambda)) W / M$, exact for
  every eigenvalue."""
  m, d = x.shape[-2:]
  lam, v = jnp.linalg.eigh((x @ _transpose(x)) / m)
  w = _transpose(v) @ x
  h = _floored_log_over(lam, floor, log_floor)
  out = (_transpose(w) * (h / m)[..., None, :]) @ w
  diagonal = (log_floor + shift)[..., None]
  return out + diagonal * jnp.eye(d, dtype=x.dtype), lam, v, w


def _logm_gram_images_vjp(lam, v, w, floor, log_floor, g):
  r"""The derivative of `_logm_gram_images` for the cotangent $G$, from
  $\lambda$, $V$ and $W$ alone ($X = V W$): with $P = W \bar S$ ($\bar S$
  the symmetric part of $G$) and $Q = P W^\top / M$,
  $\bar X = \frac{2}{M} V (\operatorname{diag}(h) P + (h[\lambda_i,
  \lambda_j] \circ Q) W)$ (`_gram_log_divided_differences`)."""
  m = w.shape[-2]
  p = w @ (0.5 * (g + _transpose(g)))
  q = (p @ _transpose(w)) / m
  r = _gram_log_divided_differences(lam, floor, log_floor) * q
  h = _floored_log_over(lam, floor, log_floor)
  return (2 / m) * (v @ (h[..., :, None] * p + r @ w))


def _gram_shapes(x: jax.Array) -> tuple[tuple[int, ...], ...]:
  b, m, d = x.shape
  return (b, d, d), (b, m), (b, m, m), (b, m, d)


def _logm_gram_parts(x, floor, log_floor, shift):
  def formulation(policy, *args):
    return _over_images(_logm_gram_images, _gram_shapes(x), *args, images=policy.matrix_images)

  return backend.choose(formulation, x, floor, log_floor, shift, reads=("matrix_images",))


@jax.custom_vjp
def _logm_gram(x: jax.Array, floor: jax.Array, log_floor: jax.Array, shift: jax.Array):
  """`_logm_gram_images` of ``(B, M, d)`` rows (``floor``, ``log_floor``,
  ``shift`` ``(B, 1)``, no derivative), a few images at a time
  (`Policy.matrix_images`), with the derivative `_logm_gram_images_vjp`."""
  return _logm_gram_parts(x, floor, log_floor, shift)[0]


def _logm_gram_fwd(x, floor, log_floor, shift):
  out, *residuals = _logm_gram_parts(x, floor, log_floor, shift)
  return out, (*residuals, floor, log_floor)


def _logm_gram_bwd(residuals, g):
  def formulation(policy, *args):
    shape = args[2].shape  # W's: X's
    return _over_images(_logm_gram_images_vjp, shape, *args, images=policy.matrix_images)

  return backend.choose(formulation, *residuals, g, reads=("matrix_images",)), None, None, None


_logm_gram.defvjp(_logm_gram_fwd, _logm_gram_bwd)


def _logm_rows(x: jax.Array, floor: jax.Array, log_floor: jax.Array, shift: jax.Array):
  """The floored matrix log of the covariance of centred rows ``(*batch, M,
  d)``, plus ``shift`` times ``I`` (``floor``, ``log_floor`` and ``shift``
  ``(*batch, 1)``): through the smaller of the ``d x d`` covariance and the
  ``M x M`` Gram matrix (``eigh`` costs the cube of the side)."""
  batch, (m, d) = x.shape[:-2], x.shape[-2:]
  if m >= d:
    return _logm_psd(_gram(x), floor, log_floor) + shift[..., None] * jnp.eye(d, dtype=x.dtype)
  flat = (v.reshape(-1, 1) for v in (floor, log_floor, shift))
  return _logm_gram(x.reshape(-1, m, d), *flat).reshape(batch + (d, d))


@jax.custom_jvp
def _value_with_tangent_of(primal: jax.Array, value: jax.Array) -> jax.Array:
  """``value``, differentiated as ``primal`` (no derivative reaches
  ``value``'s own inputs, so autodiff keeps nothing for them)."""
  del primal
  return value


@_value_with_tangent_of.defjvp
def _value_with_tangent_of_jvp(primals, tangents):
  return primals[1], tangents[0]


def triu_vector(m: jax.Array) -> jax.Array:
  """The upper triangle of ``(..., d, d)`` in ``np.triu_indices(d)`` order,
  ``(..., d (d + 1) / 2)``, off-diagonal entries unscaled (as iSQRT-COV's
  ``Triuvec``)."""
  rows, cols = np.triu_indices(m.shape[-1])
  return m[..., rows, cols]


@compiled_when_eager()
def covariance_pool(
  x: jax.typing.ArrayLike,
  *,
  normalize: str | None = "sqrtm",
  output: str = "matrix",
  iterations: int = 5,
  eps: float = 1e-5,
  spatial_ndim: int | None = None,
) -> jax.Array:
  r"""Covariance pooling, with iSQRT-COV's matrix square root or the matrix log.

  The covariance of the $M$ positions' feature vectors $x_l$ (centred,
  biased, as MPN-COV/iSQRT-COV):

  $$
  C = \frac{1}{M} \sum_l (x_l - \mu)(x_l - \mu)^\top, \qquad
  \mu = \frac{1}{M} \sum_l x_l,
  $$

  then ``normalize``:

  * ``"sqrtm"``: iSQRT-COV (Li et al., CVPR 2018): $A = C / \operatorname{tr}(C)$,

      $$
      Y_0 = A, \quad Z_0 = I, \quad T_k = (3I - Z_k Y_k) / 2, \quad
      Y_{k+1} = Y_k T_k, \quad Z_{k+1} = T_k Z_k
      $$

      for ``iterations`` steps (the last computes only $Y$), then
      $\sqrt{\operatorname{tr}(C)}\, Y$, which approximates $C^{1/2}$
      (exactly as ``iterations`` grows, for every positive semi-definite
      $C$). Matmuls only; with fewer positions than features ($M < d$)
      the same polynomial of $C$ is computed from the $M \times M$ Gram
      matrix of the centred positions, $(M / d)^3$ of the cost. The
      gradient is the exact derivative of these ``iterations`` steps (what
      autodiff through them gives), a custom VJP that keeps only the
      centred rows and recomputes the iteration in the backward pass, so
      its memory does not grow with the steps; it is reverse-mode only.

  * ``"logm"``: $U \operatorname{diag}(\log \max(\lambda, \mathrm{eps})) U^\top$
    from $C = U \operatorname{diag}(\lambda) U^\top$ (``eigh``); its custom
    derivative is the Daleckii-Krein formula with guarded divided
    differences, finite for repeated eigenvalues (plain ``eigh`` autodiff
    divides by $\lambda_i - \lambda_j$ and gives NaN).
    Rank-deficient covariances (more features than positions) are the
    normal case: their zero eigenvalues sit at the floor ``eps``. With
    fewer positions than features ($M < d$) the ``eigh`` is that of the
    $M \times M$ Gram matrix of the centred positions $X$,
    $K = X X^\top / M = V \operatorname{diag}(\lambda) V^\top$, which has
    $C$'s nonzero eigenvalues: with $W = V^\top X$,
    $\log \max(C, \mathrm{eps}) = \log(\mathrm{eps})\, I
    + W^\top \operatorname{diag}(h(\lambda))\, W / M$, where
    $h(\lambda) = \log(\max(\lambda, \mathrm{eps}) / \mathrm{eps}) / \lambda$:
    the same matrix, with $(M / d)^3$ of the ``eigh``'s cost.

  * ``None``: $C$ itself.

  Every mode is finite, with finite gradients, for rank-deficient
  covariances and for a constant map ($C = 0$ exactly at any magnitude;
  ``"sqrtm"`` gives 0). ``"sqrtm"`` and ``"logm"`` work on the rows divided
  by a power of two into ``[-1, 1]`` and undo the scale exactly, so they are
  finite for any finite input; ``None`` returns $C$ itself, which leaves
  float32 (``inf``, never NaN) for features above about ``1e19``.

  Args:
    x: ``(batch, *spatial, features)``, floating point; half precision is
      computed in float32.
    normalize: ``"sqrtm"``, ``"logm"`` or ``None``.
    output: ``"matrix"`` (``(batch, d, d)``) or ``"triu"`` (the upper
      triangle in ``np.triu_indices`` order, $d (d + 1) / 2$ values).
    iterations: Newton-Schulz steps of ``"sqrtm"`` (iSQRT-COV uses 5).
    eps: the eigenvalue floor of ``"logm"``.
    spatial_ndim: the number of spatial axes before the features, for
      layouts other than one batch axis.

  Returns:
    ``(batch, d, d)`` or ``(batch, d (d + 1) / 2)``, ``x``'s dtype.

  Examples:
    >>> import jax.numpy as jnp, jaxpool
    >>> x = jnp.stack([jnp.array([[1.0, 0.0], [-1.0, 0.0]])])[:, :, None, :]  # (1, 2, 1, 2)
    >>> jaxpool.covariance_pool(x, normalize=None)
    Array([[[1., 0.],
            [0., 0.]]], dtype=float32)
    >>> jaxpool.covariance_pool(x, output="triu").round(3)
    Array([[1., 0., 0.]], dtype=float32)
  """
  if normalize is not None:
    check_choice("normalize", normalize, [n for n in NORMALIZATIONS if n])
  check_choice("output", output, OUTPUTS)
  if not is_int(iterations) or iterations < 1:
    raise ValueError(f"iterations must be an int >= 1; got {iterations!r}.")
  eps = check_positive_number("eps", eps)
  x = jnp.asarray(x)
  rows = positions(x, spatial_ndim, "covariance_pool", min_positions=2)
  # C = 4^e C' from the rows scaled into [-1, 1]: no overflow in the mean or
  # the products; each mode undoes the scale where its output needs it.
  scaled, exponent = power_of_two_scale(rows)
  if normalize == "sqrtm":
    c = _newton_schulz_sqrt(_centred(scaled), exponent, iterations)
  elif normalize == "logm":
    # log(max(4^e l', eps)) = log(max(l', eps 4^-e)) + 2 e log 2.
    dtype = scaled.dtype
    shift = (2 * exponent[..., 0]).astype(dtype) * np.log(2.0).astype(dtype)
    floor = jnp.ldexp(jnp.asarray(eps, dtype), -2 * exponent[..., 0])
    c = _logm_rows(_centred(scaled), floor, np.log(eps).astype(dtype) - shift, shift)
  else:
    # Where C leaves the range, products of +-inf can sum to NaN (how depends
    # on the backend's dot): those entries are 4^e C', exactly +-inf. The
    # derivative is the plain formula's alone (4^e overflows in a cotangent).
    plain = _covariance(rows)
    rescaled = times_power_of_two(_covariance(scaled), 2 * exponent)
    c = _value_with_tangent_of(plain, jnp.where(jnp.isfinite(plain), plain, rescaled))
  if output == "triu":
    c = triu_vector(c)
  return c.astype(x.dtype)


# ---------------------------------------------------------------------------
# The layer's parametrisation: iSQRT-COV's 1x1 reduction.
# ---------------------------------------------------------------------------


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
