"""The benchmark tables: timed rows (jaxpool, the reference row, torch and the
JAX baseline) and compile-only rows, as markdown, with the device line that
says where the numbers come from.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Sequence

import jax
from harness import Row, Suite, torch, torch_device


def _ms(v) -> str:
  return "" if v is None else f"{1e3 * v:.2f}"


def _ratio(a, b) -> str:
  if a is None or b is None or isinstance(a, str) or isinstance(b, str) or not b:
    return ""
  return f"{a / b:.2f}"


def _mem(v) -> str:
  return "" if v is None else f"{v:.2f}x"


def _mib(v) -> str:
  return "" if v is None else f"{v / 2**20:.1f}"


def _us(v) -> str:
  if v is None:
    return ""
  return "failed" if isinstance(v, str) else f"{v * 1e6:.0f}"


def markdown_table(
  notes: Sequence[str], columns: Sequence[str], rows: Sequence[Sequence[str]]
) -> str:
  """Note paragraphs, then a markdown table; columns empty in every row are
  left out."""
  keep = [i for i in range(len(columns)) if i == 0 or any(r[i] for r in rows)]
  head = ["| " + " | ".join(columns[i] for i in keep) + " |", "|" + "---|" * len(keep)]
  body = ["| " + " | ".join(r[i] for i in keep) + " |" for r in rows]
  return "\n\n".join(notes) + "\n\n" + "\n".join(head + body) + "\n"


def device_line(repeats: int) -> str:
  """The device, threads, versions and timing rule of a timed table."""
  device = torch_device()
  torch_part = (
    "torch absent"
    if torch is None
    else (
      f"torch {torch.__version__} on {device}"
      if device
      else f"torch {torch.__version__} left out (no CUDA torch beside JAX's GPU)"
    )
  )
  return (
    f"Device: {jax.devices()[0].device_kind} ({jax.default_backend()}),"
    f" {os.cpu_count()} CPU threads; jax {jax.__version__}, {torch_part};"
    f" Python {platform.python_version()}; median of {repeats} repeats in"
    " interleaved rounds after warm-up."
  )


TIMED_RULE = (
  "fwd+bwd returns the output and the input gradient for a non-constant"
  " cotangent (and the parameter's gradient where a row says so). `/ torch`"
  " and `/ baseline` divide jaxpool's fwd+bwd time by the other's (lower is"
  " better; < 1: jaxpool is faster); torch runs the same math on the same"
  " device, in its faster memory layout. Temp is XLA's temp memory of the"
  " jitted fwd+bwd / the input's bytes."
)


def render_times(suite: Suite, rows: Sequence[Row], results: dict, repeats: int) -> str:
  """One timed table: jaxpool, the reference row, torch and the baseline."""
  ref = results.get(suite.reference, {}).get("b") if suite.reference else None
  lines = []
  for row in rows:
    r = results[row.name]
    if r.get("failed"):
      lines.append([row.name, "compile failed"] + [""] * 9)
      continue
    named = row.baseline_name if r["base_b"] is not None else ""
    lines.append(
      [
        row.name,
        _ms(r["f"]),
        _ms(r["b"]),
        _ratio(r["b"], ref),
        _ms(r["torch_b"]),
        _ratio(r["b"], r["torch_b"]),
        named,
        _ms(r["base_b"]),
        _ratio(r["b"], r["base_b"]),
        _mem(r["temp"]),
        _mem(r["base_temp"]),
      ]
    )
  columns = [
    "case",
    "fwd ms",
    "fwd+bwd ms",
    f"/ {suite.reference}",
    "torch fwd+bwd ms",
    "/ torch",
    "baseline",
    "baseline fwd+bwd ms",
    "/ baseline",
    "temp",
    "baseline temp",
  ]
  return markdown_table([device_line(repeats), suite.note, TIMED_RULE], columns, lines)


def render_compiled(target: str, suite: Suite, rows: Sequence[Row], results: dict) -> str:
  """One compile-only table."""
  tpu = target == "tpu-v5e"
  lines = []
  for row in rows:
    facts = results[row.name]
    for kind in ("fwd", "fwd+bwd"):
      ours, base = facts["jaxpool", kind], facts.get(("baseline", kind), {})
      against = row.baseline_name if row.baseline is not None else "-"
      cells = [
        f"{row.name} vs {against}",
        kind,
        str(ours["cond"]),
        _mib(ours["temp"]),
        _mib(base.get("temp")),
        str(ours["fusions"]),
        str(base.get("fusions", "")),
      ]
      if tpu:
        cells += [
          _mib(ours["bytes"]),
          _mib(base.get("bytes")),
          _ratio(ours["bytes"], base.get("bytes")),
          _us(ours["seconds"]),
          _us(base.get("seconds")),
          _ratio(ours["seconds"], base.get("seconds")),
        ]
      lines.append(cells)
  columns = ["program", "pass", "cond", "temp MiB", "base temp MiB", "fusions", "base fusions"]
  if tpu:
    columns += ["MiB accessed", "base MiB accessed", "/ base", "est. us", "base est. us", "/ base"]
  return markdown_table(
    [
      f"### {suite.name}",
      suite.note,
    ],
    columns,
    lines,
  )


def compiled_header(target: str) -> str:
  tpu = target == "tpu-v5e"
  return (
    "\n".join(
      [
        f"# Compile-only estimates: {target}",
        "",
        "Compiled on a CPU-only host with XLA's real "
        + (
          "TPU compiler (`v5e:2x2` topology, one chip's program)"
          if tpu
          else "GPU compiler (H200 target config, `benchmarks/h200.txtpb`)"
        )
        + f", jax {jax.__version__}. **Compile-time facts and estimates, not timings.**",
        "`cond`: run-time conditionals in jaxpool's program; `temp`: XLA's temp buffer;"
        " `fusions`: fused kernels; "
        + (
          "`accessed` and `est.`: the TPU cost model's bytes accessed and time"
          " (`failed` where it gives none)."
          if tpu
          else "the GPU compiler gives no cost estimate."
        )
        + " `base` is the row's JAX baseline (named after `vs`). Forward+backward"
        " uses a non-constant cotangent. The rows are the CPU tables' rows.",
        "",
      ]
    )
    + "\n"
  )
