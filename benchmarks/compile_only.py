"""Compile-only benchmark targets: TPU v5e and an H200, compiled on this host.

XLA's TPU and GPU compilers run without the hardware (deviceless ahead-of-time
compilation). For every row, forward and forward+backward (with a
non-constant cotangent), this reports what the compiler decided: run-time
conditionals, temp memory, fusions, and on TPU the bytes accessed and the
cost model's time estimate, for jaxpool and for the baseline a user would
write (``lax.reduce_window`` and autodiff, as Flax does, or the formula
written directly). These are compile-time facts and estimates, not timings.

    python benchmarks/compile_only.py --target tpu-v5e   # or h200
    bash benchmarks/install_compilers.sh                 # the plugins, once

The plugins live outside the project (``$JAXPOOL_AOT``, default
``~/.cache/aot``); without them the target is skipped with a message.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import pathlib
import re
import subprocess
import sys
from collections.abc import Callable

HERE = pathlib.Path(__file__).resolve().parent
AOT = pathlib.Path(os.environ.get("JAXPOOL_AOT", pathlib.Path.home() / ".cache" / "aot"))
H200_CONFIG = HERE / "h200.txtpb"
TARGETS = {
    "tpu-v5e": ("TPU_LIBRARY_PATH", AOT / "tpu" / "libtpu" / "libtpu.so"),
    "h200": ("PYTHONPATH", AOT / "cuda"),
}
BIG = (16, 64, 64, 128)  # 128 features: TPU tiles the last two axes by (8, 128)
STRIDE_ONE = (8, 40, 40, 128)


@dataclasses.dataclass(frozen=True)
class Row:
  """One program and its baseline, both ``fn(x) -> y``."""

  name: str
  shape: tuple[int, ...]
  jaxpool: Callable
  baseline: Callable
  baseline_name: str


def rows() -> list[Row]:
  import jax
  import jax.numpy as jnp
  from jax import lax

  import jaxpool

  def window(v, k, s, init, op, padding="VALID"):
    return lax.reduce_window(v, init, op, (1, k, k, 1), (1, s, s, 1), padding)

  def rw_max(k, s, padding="VALID"):
    return lambda v: window(v, k, s, -jnp.inf, lax.max, padding)

  def rw_avg(k, s):
    return lambda v: window(v, k, s, 0.0, lax.add) / (k * k)

  def taps(v, k):
    """Every tap of the k x k stride-1 'SAME' windows, stacked last."""
    p = k // 2
    padded = jnp.pad(v, ((0, 0), (p, p), (p, p), (0, 0)), mode="edge")
    h, w = v.shape[1:3]
    return jnp.stack([padded[:, i:i + h, j:j + w] for i in range(k) for j in range(k)], -1)

  def lip_naive(v):
    logits = 0.5 * v
    num = window(jnp.exp(logits) * v, 2, 2, 0.0, lax.add)
    return num / window(jnp.exp(logits), 2, 2, 0.0, lax.add)

  def soft_naive(v):
    e = jnp.exp(v - lax.stop_gradient(jnp.max(v)))
    return window(e * v, 2, 2, 0.0, lax.add) / window(e, 2, 2, 0.0, lax.add)

  def adaptive_naive(v, out=7):
    n = v.shape[1]
    bins = [(i * n // out, -(-(i + 1) * n // out)) for i in range(out)]
    return jnp.stack([jnp.stack([jnp.max(v[:, a:b, c:d], axis=(1, 2)) for c, d in bins], 1)
                      for a, b in bins], 1)

  def spp_naive(v):
    return jnp.concatenate([v] + [rw_max(k, 1, "SAME")(v) for k in (5, 9, 13)], -1)

  def legall_naive(v):
    """LeGall 5/3 lifting written plainly (one axis after the other), summed."""
    def lift(u, axis):
      even = lax.slice_in_dim(u, 0, None, 2, axis)
      odd = lax.slice_in_dim(u, 1, None, 2, axis)
      nxt = jnp.concatenate([lax.slice_in_dim(even, 1, None, 1, axis),
                             lax.slice_in_dim(even, -1, None, 1, axis)], axis)
      d = odd - 0.5 * (even + nxt)
      prv = jnp.concatenate([lax.slice_in_dim(d, 0, 1, 1, axis),
                             lax.slice_in_dim(d, 0, -1, 1, axis)], axis)
      return even + 0.25 * (d + prv) + d
    return lift(lift(v, 1), 2)

  del jax
  return [
      Row("max_pool 2x2/2", BIG, lambda v: jaxpool.max_pool(v, (2, 2)), rw_max(2, 2),
          "reduce_window"),
      Row("max_pool 3x3/2", BIG, lambda v: jaxpool.max_pool(v, (3, 3), 2), rw_max(3, 2),
          "reduce_window"),
      Row("avg_pool 3x3/2", BIG, lambda v: jaxpool.avg_pool(v, (3, 3), 2), rw_avg(3, 2),
          "reduce_window"),
      Row("max_pool 5x5/1", STRIDE_ONE, lambda v: jaxpool.max_pool(v, (5, 5), 1),
          rw_max(5, 1), "reduce_window"),
      Row("max_pool 13x13/1", STRIDE_ONE, lambda v: jaxpool.max_pool(v, (13, 13), 1),
          rw_max(13, 1), "reduce_window"),
      Row("spp_block (5, 9, 13)", STRIDE_ONE, lambda v: jaxpool.spp_block(v), spp_naive,
          "reduce_window"),
      Row("median_pool 3x3/1", STRIDE_ONE, lambda v: jaxpool.median_pool(v, (3, 3), 1, 1),
          lambda v: jnp.median(taps(v, 3), axis=-1), "stacked taps, jnp.median"),
      Row("adaptive_max_pool 7x7", BIG, lambda v: jaxpool.adaptive_max_pool(v, (7, 7)),
          adaptive_naive, "slices, jnp.max"),
      Row("soft_pool 2x2/2", BIG, lambda v: jaxpool.soft_pool(v, (2, 2)), soft_naive,
          "formula, reduce_window sums"),
      Row("lip_pool 2x2/2", BIG, lambda v: jaxpool.lip_pool(v, 0.5 * v, (2, 2)), lip_naive,
          "formula, reduce_window sums"),
      Row("lift_pool LeGall 5/3", BIG, lambda v: jaxpool.lift_pool(v), legall_naive,
          "lifting steps, slices"),
  ]


def _devices(target: str):
  from jax.experimental import topologies

  if target == "tpu-v5e":
    topo = topologies.get_topology_desc(platform="tpu", topology_name="v5e:2x2")
  else:
    topo = topologies.get_topology_desc(
        platform="cuda", target_config=H200_CONFIG.read_text(), topology="1x1x1"
    )
  return topologies.make_mesh(topo, (len(topo.devices),), ("x",))


def _facts(compiled) -> dict:
  text = compiled.as_text()
  cost = compiled.cost_analysis()
  if isinstance(cost, (list, tuple)):
    cost = cost[0] if cost else None
  seconds = (cost or {}).get("optimal_seconds")
  return {
      "conditionals": text.count(" conditional("),
      "temp": compiled.memory_analysis().temp_size_in_bytes,
      "fusions": len(re.findall(r"\bfusion\(", text)) or text.count("kind=k"),
      "bytes": (cost or {}).get("bytes accessed"),
      "seconds": seconds if seconds is None or seconds > 0 else "failed",
  }


def measure(target: str) -> list[dict]:
  import jax
  import jax.numpy as jnp
  from jax.sharding import NamedSharding, PartitionSpec

  mesh = _devices(target)
  replicated = NamedSharding(mesh, PartitionSpec())
  out = []
  for row in rows():
    x = jax.ShapeDtypeStruct(row.shape, jnp.float32, sharding=replicated)
    result = {"row": row, "input": 4 * int(jnp.prod(jnp.array(row.shape)))}
    for who, fn in (("jaxpool", row.jaxpool), ("baseline", row.baseline)):
      y = jax.eval_shape(fn, jax.ShapeDtypeStruct(row.shape, jnp.float32))
      cot = jax.ShapeDtypeStruct(y.shape, y.dtype, sharding=replicated)
      backward = lambda v, c, fn=fn: jax.vjp(fn, v)[1](c)[0]
      result[who, "fwd"] = _facts(jax.jit(fn).trace(x).lower().compile())
      result[who, "fwd+bwd"] = _facts(jax.jit(backward).trace(x, cot).lower().compile())
    out.append(result)
  return out


def _mib(v) -> str:
  return f"{v / 2**20:.1f}"


def _ratio(a, b) -> str:
  if isinstance(a, str) or isinstance(b, str) or a is None or b is None:
    return "-"
  return f"{a / b:.2f}" if b else "-"


def _us(v) -> str:
  if v is None:
    return "-"
  return "failed" if isinstance(v, str) else f"{v * 1e6:.0f}"


def render(target: str, results: list[dict]) -> str:
  import jax

  tpu = target == "tpu-v5e"
  header = ["program", "pass", "cond", "temp MiB (base)", "fusions (base)"]
  if tpu:
    header += ["MiB accessed (base)", "/ base", "est. us (base)", "/ base"]
  lines = [
      f"# Compile-only estimates: {target}",
      "",
      "Compiled on a CPU-only host with XLA's real "
      + ("TPU compiler (`v5e:2x2` topology, one chip's program)" if tpu
         else "GPU compiler (H200 target config)")
      + f", jax {jax.__version__}. **Compile-time facts and estimates, not timings.**",
      "`cond`: run-time conditionals in the program; `temp`: XLA's temp buffer;",
      "`fusions`: fused kernels; " + ("`accessed` and `est.`: the TPU cost model's bytes "
      "accessed and time (`failed` where it gives none)." if tpu else
      "the GPU compiler gives no cost estimate."),
      "Forward+backward uses a non-constant cotangent. Regenerate with "
      f"`python benchmarks/compile_only.py --target {target}`.",
      "",
      "| " + " | ".join(header) + " |",
      "|" + "---|" * len(header),
  ]
  for result in results:
    row = result["row"]
    for kind in ("fwd", "fwd+bwd"):
      ours, base = result["jaxpool", kind], result["baseline", kind]
      cells = [f"{row.name} {row.shape} vs {row.baseline_name}", kind,
               str(ours["conditionals"]),
               f"{_mib(ours['temp'])} ({_mib(base['temp'])})",
               f"{ours['fusions']} ({base['fusions']})"]
      if tpu:
        cells += [
            f"{_mib(ours['bytes'] or 0)} ({_mib(base['bytes'] or 0)})",
            _ratio(ours["bytes"], base["bytes"]),
            f"{_us(ours['seconds'])} ({_us(base['seconds'])})",
            _ratio(ours["seconds"], base["seconds"]),
        ]
      lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--target", choices=tuple(TARGETS), required=True)
  parser.add_argument("--out", type=pathlib.Path, default=None,
                      help="markdown file (default benchmarks/results-<target>.md)")
  args = parser.parse_args(argv)
  variable, plugin = TARGETS[args.target]
  if not plugin.exists():
    print(f"skipped: {args.target}'s compiler is not installed ({plugin} is missing);"
          " run benchmarks/install_compilers.sh", file=sys.stderr)
    return 0
  value = str(plugin)
  if os.environ.get(variable) != value:  # the plugin is read when JAX starts
    env = dict(os.environ, JAX_PLATFORMS="cpu", **{variable: value})
    return subprocess.call([sys.executable, __file__, *sys.argv[1:]], env=env)
  text = render(args.target, measure(args.target))
  out = args.out or HERE / f"results-{args.target}.md"
  out.write_text(text)
  print(text)
  return 0


if __name__ == "__main__":
  sys.exit(main())
