"""The backend policy (jaxpool/_src/core/backend.py) over the operator table.

* Every row lowered for TPU and for CUDA (on this CPU host, no plugin) holds
  no conditional and no host callback, forward and backward.
* Every other platform's formulation, forced on CPU, gives the default
  formulation's values and gradients, the true derivative (check_grads), the
  same result under jit and vmap, and keeps an extreme value in its windows
  (rows whose program is the CPU one but for its barrier are checked once,
  in tests/test_properties.py).
* The fusion barrier passes zero-size arrays, survives vmap on CPU, and is an
  optimisation barrier in TPU and GPU programs.
"""

import zlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from derivatives import check_grads
from jaxlib.mlir import ir

import jaxpool
from jaxpool._src.core.backend import POLICIES, choose, fence, forced_platform

from cases import CASES, SHAPE, reach

ACCELERATORS = ("tpu", "cuda")

# One platform per distinct non-CPU policy: the formulations to force on CPU.
OTHER_POLICIES = sorted(
  {
    policy: platform
    for platform, policy in sorted(POLICIES.items(), reverse=True)
    if policy != POLICIES["cpu"]
  }.values()
)


def _loss(case, key):
  """A scalar of the row's output with a non-constant cotangent."""
  return lambda x: jnp.sum(jnp.sin(case.call(x, key)).astype(jnp.float32))


def _control_flow(lowered) -> list[str]:
  """The run-time branches and host callbacks of a lowered program.

  ``platform_dependent`` leaves static branches, which XLA folds away: a
  ``stablehlo.case`` of one branch, or one indexed by a constant.
  """
  found = []

  def static(op):
    owner = getattr(op.operands[0], "owner", None)
    return len(op.regions) == 1 or getattr(owner, "name", None) == "stablehlo.constant"

  def visit(op):
    op = getattr(op, "operation", op)
    name = op.name
    if name in ("stablehlo.if", "stablehlo.case") and not static(op):
      found.append(name)
    elif name == "stablehlo.custom_call":
      target = str(op.attributes["call_target_name"])
      if "callback" in target.lower():
        found.append(target)
    return ir.WalkResult.ADVANCE

  lowered.compiler_ir("stablehlo").operation.walk(visit)
  return found


@pytest.mark.parametrize("platform", ACCELERATORS)
@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_accelerator_programs_have_no_conditional(case, platform):
  x = jax.ShapeDtypeStruct(SHAPE, jnp.float32)
  keys = [None, jax.random.key(0)] if case.random else [None]
  for key in keys:
    for program in (lambda v: case.call(v, key), jax.grad(_loss(case, key))):
      lowered = jax.jit(program).trace(x).lower(lowering_platforms=(platform,))
      assert not _control_flow(lowered), (case.id, key is not None)


def _locality_holds(fn, x, case, key):
  base = np.asarray(fn(x))
  rng = np.random.default_rng(zlib.crc32(case.id.encode()))
  reached = jax.jit(lambda e: reach(case, e, key))
  for value in (np.nan, np.inf):
    cell = tuple(int(rng.integers(n)) for n in SHAPE)
    expected = np.asarray(reached(jnp.zeros(SHAPE).at[cell].set(1.0)))
    y = np.asarray(fn(x.at[cell].set(value)))
    same = (y == base) | (np.isnan(y) & np.isnan(base))
    assert not (~same & ~expected).any(), f"{value} at {cell} leaked"


@pytest.mark.parametrize("platform", OTHER_POLICIES)
@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_forced_formulation_matches_the_default(case, platform):
  x = jax.random.normal(jax.random.key(0), SHAPE)
  if not _formulation_differs(case, platform, x):
    return  # the CPU program but for its barrier: tests/test_properties.py
  key = jax.random.key(1) if case.random else None
  grad = jax.grad(_loss(case, key))
  default, default_grad = jax.jit(lambda v: (case.call(v, key), grad(v)))(x)
  with forced_platform(platform):
    fn = jax.jit(lambda v: case.call(v, key))
    np.testing.assert_allclose(fn(x), default, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(jax.jit(grad)(x), default_grad, rtol=1e-5, atol=1e-5)
    _locality_holds(fn, x, case, key)
    # vmap in inference mode (a key draws per call, so each row of a batch
    # would draw differently).
    inference = jax.jit(lambda v: case.call(v, None))
    mapped = jax.jit(jax.vmap(lambda row: case.call(row[None], None)[0]))(x)
    np.testing.assert_allclose(mapped, inference(x), rtol=1e-6, atol=1e-6)
    # Distinct values, away from ties, for finite differences.
    x64 = np.asarray(jax.random.permutation(jax.random.key(1), np.prod(SHAPE)), np.float64)
    with jax.enable_x64(True):
      modes = ["rev"] if case.reverse_only else ["fwd", "rev"]
      check_grads(
        jax.jit(lambda v: case.call(v, None)),
        (jnp.asarray(x64.reshape(SHAPE) / 7.0 + 0.5),),
        order=1,
        modes=modes,
        eps=1e-4,
      )


def _formulation_differs(case, platform, x) -> bool:
  """Whether ``platform``'s program of the row (forward and derivatives)
  differs from the CPU one by more than its fusion barrier (an identical
  program's derivatives are checked in tests/test_properties.py) and from
  the platforms checked before it."""

  def jaxpr(p):
    with forced_platform(p):
      fn = jax.grad(_loss(case, None))
      if not case.reverse_only:
        fn = lambda v: jax.jvp(lambda u: case.call(u, None), (v,), (v,))
      text = str(jax.make_jaxpr(fn)(x)) + str(jax.make_jaxpr(jax.grad(_loss(case, None)))(x))
    return text.replace("optimization_barrier", "jaxpool_fence")

  earlier = ["cpu"] + OTHER_POLICIES[: OTHER_POLICIES.index(platform)]
  program = jaxpr(platform)
  return all(program != jaxpr(p) for p in earlier)


@pytest.mark.usefixtures("optimized")  # reads the optimised HLO
def test_cpu_program_keeps_the_taps_and_accelerators_get_reduce_window():
  x = jax.ShapeDtypeStruct((2, 8, 8, 3), jnp.float32)
  fn = jax.jit(lambda v: jaxpool.max_pool(v, (3, 3), 2))
  assert "reduce_window" not in fn.trace(x).lower(lowering_platforms=("cpu",)).as_text()
  for platform in ACCELERATORS:
    assert "reduce_window" in fn.trace(x).lower(lowering_platforms=(platform,)).as_text()
  compiled = fn.trace(x).lower().compile().as_text()
  assert " conditional(" not in compiled and "reduce-window" not in compiled


@pytest.mark.parametrize("window, shifts", [((1, 5), 5), ((3, 3), 9)])
def test_backward_scatter_pads_once_past_the_cpu_limit(window, shifts):
  """XLA:CPU stops vectorising a pass with many fused pads: past
  ``max_fused_pads`` block shifts the CPU formulation pads the cotangent once;
  the accelerators' pads it inside the pass. Both give the same gradient."""
  from jaxpool._src.core.geometry import window_geometry
  from jaxpool._src.core.reductions import window_sum
  from jaxpool._src.core.scatter import phase_shifts, scatter_to_input

  x = jax.random.normal(jax.random.key(0), (2, 9, 9, 3))
  pad = tuple((k // 2, k // 2) for k in window)
  geom = window_geometry(x.shape, window, 1, pad)
  assert len(phase_shifts(geom)) == shifts
  g = jax.random.normal(jax.random.key(1), x.shape)

  def scatter(v):
    return scatter_to_input(
      lambda taps, c: jnp.where(taps >= 0, c, jnp.zeros((), c.dtype)),
      geom,
      (v,),
      (0,),
      pad_once=(False,),
    )

  def pads(platform):
    with forced_platform(platform):
      jaxpr = jax.make_jaxpr(scatter)(g)
    return sum(eqn.primitive.name == "pad" for eqn in jaxpr.jaxpr.eqns)

  limit = POLICIES["cpu"].max_fused_pads
  assert pads("cpu") == (1 if shifts > limit else shifts)
  assert pads("tpu") == shifts
  with forced_platform("tpu"):
    in_pass = jax.jit(scatter)(g)
  np.testing.assert_array_equal(jax.jit(scatter)(g), in_pass)
  # The transpose of the window sum: the gradient of <window_sum(v), g>.
  transpose = jax.grad(lambda v: jnp.vdot(window_sum(v, geom), g))(x)
  np.testing.assert_allclose(in_pass, transpose, rtol=1e-5, atol=1e-5)


def test_choose_traces_each_distinct_policy_once():
  seen = []

  def formulation(policy, v):
    seen.append(policy.window_reductions)
    return v + 1

  jax.jit(lambda v: choose(formulation, v, reads=("window_reductions",))).trace(1.0)
  assert sorted(seen) == ["reduce_window", "taps"]
  seen.clear()
  jax.jit(lambda v: choose(formulation, v, reads=("separable_min_taps",))).trace(1.0)
  assert len(seen) == 1  # every platform agrees: no branch at all


def test_forced_platform_rejects_unknown_platforms():
  with pytest.raises(ValueError, match="platform must be one of"):
    with forced_platform("gpu"):
      pass


@pytest.mark.parametrize("shape", [(0, 5, 5, 3), (2, 5, 5, 0)])
def test_fence_passes_zero_size_arrays(shape):
  x = jnp.zeros(shape)
  assert fence(x).shape == shape
  assert jax.jit(jax.grad(lambda v: jnp.sum(fence(v) ** 2)))(x).shape == shape
  assert jaxpool.median_pool(x, (3, 3), 1, 1).shape == shape
  assert jaxpool.adaptive_max_pool(x, (2, 2)).shape == shape[:1] + (2, 2) + shape[3:]


@pytest.mark.usefixtures("optimized")  # reads the optimised HLO
def test_fence_stays_a_barrier_under_vmap_and_grad():
  fn = jax.vmap(jax.grad(lambda v: jnp.sum(jnp.sin(fence(2 * v)))))
  x = jnp.arange(12.0).reshape(3, 4)
  compiled = jax.jit(fn).lower(x).compile().as_text()
  assert compiled.count(" conditional(") == 2  # forward and transpose
  np.testing.assert_allclose(fn(x), 2 * jnp.cos(2 * x), rtol=1e-6)
  for platform in ACCELERATORS:
    text = jax.jit(fn).trace(x).lower(lowering_platforms=(platform,)).as_text()
    assert text.count("stablehlo.optimization_barrier") == 2
    assert "stablehlo.case" not in text


def test_fence_derivatives(x64):
  x = jnp.linspace(-1.0, 1.0, 12).reshape(3, 4)
  check_grads(lambda v: jnp.sin(fence(v * 2)), (x,), order=2, modes=["fwd", "rev"])
  with forced_platform("tpu"):
    check_grads(lambda v: jnp.sin(fence(v * 2)), (x,), order=2, modes=["fwd", "rev"])
