"""The backend policy: every choice that depends on the compiling platform.

One `Policy` row per platform (`POLICIES`). Operators never ask
which backend the process runs on (``jax.default_backend()`` is wrong when a
CPU host compiles or exports for a TPU or GPU); they build every distinct
formulation and let the program's lowering keep the one of the platform it is
compiled for (`choose`, through ``jax.lax.platform_dependent``).

The invariants, whatever the platform:

* no conditional in a GPU or TPU program (a conditional's predicate is copied
  to the host on GPU), so `fence` is a conditional only on CPU;
* every formulation computes the same values and the same derivatives (the
  first extremum wins ties), so tests can run each one on CPU
  (`forced_platform`) and check it like the default one.

The rationale for each row is in ``docs/architecture.md``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from collections.abc import Callable, Iterator
from typing import Literal

import jax
import jax.numpy as jnp
from jax import lax
from jax.extend.core import Primitive
from jax.interpreters import ad, batching, mlir

from jaxpool._src.core.sharding import partition_spec

__all__ = [
  "POLICIES",
  "Policy",
  "choose",
  "fence",
  "forced_platform",
]

Platform = Literal["cpu", "cuda", "rocm", "tpu"]


@dataclasses.dataclass(frozen=True)
class Policy:
  """The formulation choices of one platform.

  Attributes:
    barrier: how `fence` keeps XLA from fusing across a boundary:
      ``"cond"`` (a conditional whose predicate is unknown at compile time;
      XLA:CPU drops optimisation barriers before fusion) or
      ``"optimization_barrier"`` (kept through fusion by XLA:GPU and TPU).
    window_reductions: how window sums and extrema are computed:
      ``"taps"`` (fused chains of strided slices, padding-free blocks and a
      phase-layout backward scatter) or ``"reduce_window"`` (XLA's
      ``reduce_window``, differentiated by JAX into ``pad`` +
      ``reduce_window`` and ``select_and_scatter``).
    separable_min_taps: windows of at least this many taps over two or more
      axes are reduced one axis at a time, fenced apart.
    conditionals: whether a program may pick a cheaper path at run time
      with a conditional; without, it always runs the general path.
    max_fused_pads: the most block shifts for which a backward scatter
      (`scatter_to_input`) pads its operands
      inside its fused pass; with more, each operand is padded once before
      it (one operand-sized buffer). ``None``: no limit.
    variadic_reduce_window: whether a window reduction of several operands
      (LIP's running softmax, and SoftPool's and LIP's backward over
      overlapping windows) is one variadic ``lax.reduce_window`` (reads each
      operand once, where XLA:TPU materialises every tap of a slice chain
      through two arrays) or the slice chains and phase scatter (which
      XLA:GPU fuses with less temp).
    matrix_images: how many images of a batch an iteration on their
      ``d x d`` (or ``M x M``) matrices (iSQRT-COV's square root, the
      matrix log's Gram form, and their derivatives) works on at a time, in a loop over the batch; ``None``:
      the whole batch at once. Fewer images bound the temp memory by the
      images' matrices.
    unrolled_loops: whether a loop of many light steps (RoIPool's scan of
      its sparse table) runs a row of steps per iteration, one fused pass
      (GPU: each iteration costs kernel launches), or one step (XLA:TPU
      materialises every unrolled step's gather).
    lane_dense_tables: whether a table of a few features per cell
      (RoIPool's sparse table, built for a slice of the features at a time)
      holds a row's cells side by side, one dense minor axis (XLA:TPU pads a
      minor axis of 16 features to 128 lanes, 8x the table), or a minor axis
      of the features (elsewhere that read is faster: 1.3x on CPU).
  """

  barrier: Literal["cond", "optimization_barrier"]
  window_reductions: Literal["taps", "reduce_window"]
  separable_min_taps: int
  conditionals: bool
  max_fused_pads: int | None = None
  variadic_reduce_window: bool = False
  matrix_images: int | None = None
  unrolled_loops: bool = False
  lane_dense_tables: bool = False


_ACCELERATOR = Policy(
  barrier="optimization_barrier",
  window_reductions="reduce_window",
  separable_min_taps=16,
  conditionals=False,
)

POLICIES: dict[str, Policy] = {
  "cpu": Policy(
    barrier="cond",
    window_reductions="taps",
    separable_min_taps=16,
    conditionals=True,
    max_fused_pads=5,
    matrix_images=1,
  ),
  "cuda": dataclasses.replace(_ACCELERATOR, unrolled_loops=True),
  "rocm": dataclasses.replace(_ACCELERATOR, unrolled_loops=True),
  "tpu": dataclasses.replace(_ACCELERATOR, variadic_reduce_window=True, lane_dense_tables=True),
}
"""One row per platform; ``"tpu"`` also stands for any other platform."""

_DEFAULT_PLATFORM = "tpu"


def _forced_platform_state():
  """The forced platform as a JAX configuration state that keys JAX's trace
  and compilation caches, so that a forced trace is never reused unforced;
  ``None`` where this JAX has no such states (then caches are cleared)."""
  try:
    from jax._src import config  # pylint: disable=g-import-not-at-top

    return config.optional_enum_state(
      "jaxpool_forced_platform",
      sorted(POLICIES),
      None,
      help="jaxpool: trace every operator with this platform's formulation.",
      include_in_jit_key=True,
      include_in_trace_context=True,
    )
  except Exception:  # pragma: no cover - older or newer JAX
    return None


_FORCED = _forced_platform_state()
_local = threading.local()


def _forced() -> str | None:
  if _FORCED is not None:
    return _FORCED.value
  return getattr(_local, "platform", None)


@contextlib.contextmanager
def forced_platform(platform: Platform) -> Iterator[None]:
  """Traces every operator with ``platform``'s formulation, whatever compiles it.

  For tests: it runs the TPU or GPU formulation on the CPU. The setting keys
  JAX's caches, so nothing traced under it is reused outside it.

  Examples:
    >>> import jax.numpy as jnp, jaxpool
    >>> from jaxpool._src.core.backend import forced_platform
    >>> with forced_platform("tpu"):
    ...   y = jaxpool.max_pool(jnp.ones((1, 4, 4, 1)), (2, 2))
  """
  if platform not in POLICIES:
    raise ValueError(f"platform must be one of {sorted(POLICIES)}, got {platform!r}")
  if _FORCED is not None:
    with _FORCED(platform):
      yield
    return
  previous = _forced()  # pragma: no cover - fallback without config states
  jax.clear_caches()
  _local.platform = platform
  try:
    yield
  finally:
    _local.platform = previous
    jax.clear_caches()


def choose(formulation: Callable, *args, reads: tuple[str, ...] | None = None):
  """``formulation(policy, *args)`` with the policy of the compiling platform.

  Each distinct policy (restricted to the fields named in ``reads``, all of
  them by default) is traced once; the lowering keeps the branch of the
  platform the program is compiled for (``lax.platform_dependent``), so the
  other branches cost tracing only. Under `forced_platform` only that
  platform's formulation is traced.
  """
  forced = _forced()
  if forced is not None:
    return formulation(POLICIES[forced], *args)
  names = reads or tuple(f.name for f in dataclasses.fields(Policy))

  def key(policy):
    return tuple(getattr(policy, name) for name in names)

  default = POLICIES[_DEFAULT_PLATFORM]
  special = {p: pol for p, pol in POLICIES.items() if key(pol) != key(default)}
  if not special:
    return formulation(default, *args)
  branches = {}
  by_key: dict[tuple, Callable] = {}
  for platform, policy in special.items():
    branches[platform] = by_key.setdefault(
      key(policy), lambda *a, policy=policy: formulation(policy, *a)
    )
  return lax.platform_dependent(*args, default=lambda *a: formulation(default, *a), **branches)


# ---------------------------------------------------------------------------
# The fusion barrier.
# ---------------------------------------------------------------------------

_fence_p = Primitive("jaxpool_fence")
_fence_p.def_impl(lambda x: x)
_fence_p.def_abstract_eval(lambda aval: aval)
# Linear and its own transpose: both derivative passes are fenced too.
ad.deflinear2(_fence_p, lambda cotangent, _: [_fence_p.bind(cotangent)])


def _fence_batched(args, dims):
  # The barrier is applied to the whole batched array: one predicate for all
  # of it, so the conditional stays a conditional under vmap.
  (x,), (dim,) = args, dims
  return _fence_p.bind(x), dim


batching.primitive_batchers[_fence_p] = _fence_batched


def _conditional_identity(x: jax.Array) -> jax.Array:
  """``x`` through a conditional whose predicate XLA cannot know."""
  # One element per shard: a full reduction would fuse the producer into a
  # reduction loop, and an explicitly sharded axis cannot be sliced to one.
  spec = partition_spec(x)
  corner = lax.slice(x, (0,) * x.ndim, tuple(n if s else 1 for n, s in zip(x.shape, spec)))
  probe = jnp.max(corner)
  # Distinct (if equivalent) branches: JAX lowers a cond of identical
  # branches to its body.
  return lax.cond(probe != probe, lambda v: v + jnp.zeros((), v.dtype), lambda v: v, x)


_BARRIERS = {
  "cond": mlir.lower_fun(_conditional_identity, multiple_results=False),
  "optimization_barrier": mlir.lower_fun(
    lambda x: lax.optimization_barrier(x), multiple_results=False
  ),
}

mlir.register_lowering(_fence_p, _BARRIERS[POLICIES[_DEFAULT_PLATFORM].barrier])
for _platform, _policy in POLICIES.items():
  mlir.register_lowering(_fence_p, _BARRIERS[_policy.barrier], platform=_platform)


def fence(x: jax.Array) -> jax.Array:
  """``x``, materialised: a boundary XLA does not fuse across.

  Without it XLA fuses a producer into every tap of its consumer, so two
  chained ``k``-tap passes cost ``k**2`` reads per element. The barrier is
  the compiling platform's (`Policy.barrier`); the derivatives of
  ``fence`` are fenced too, it keeps working under ``vmap`` (one barrier for
  the whole batch), and a zero-size ``x`` passes through.
  """
  if x.size == 0:
    return x
  forced = _forced()
  if forced is not None and POLICIES[forced].barrier == "optimization_barrier":
    return lax.optimization_barrier(x)
  return _fence_p.bind(x)
