"""Benchmark jaxpool against JAX's defaults and torch, on every target.

Each suite (``benchmarks/suites/<name>.py``) declares its rows once; the
harness (``benchmarks/harness.py``) runs them on a target:

* ``--target cpu`` (default; ``gpu`` when JAX runs on one): medians of timed
  repeats in interleaved rounds of jaxpool's, the baseline's and torch's
  forward+backward (torch on the same device as JAX), and XLA's temp memory;
  tables go to ``benchmarks/results[-<suite>][-gpu].md``;
* ``--target tpu-v5e`` or ``h200``: the same programs compiled by XLA's TPU or
  GPU compiler on this host, without the hardware (compile-time facts and
  estimates: conditionals, temp memory, fusions, TPU bytes and time); every
  suite's table goes to ``benchmarks/results-<target>.md``. The compilers are
  installed once by ``benchmarks/install_compilers.sh``; without them the
  target is skipped with a message.

Allocator: with glibc's default settings every allocation of 32 MiB or more
is a fresh ``mmap``, so each call page-faults its output in, in torch and in
JAX alike. ``--malloc keep`` re-executes the script with glibc told to keep
freed memory, which removes that fixed cost from both sides; its tables go to
``*-malloc-keep.md``. Every CPU table states its setting and the "fresh
output" time: one jitted ``x * 2`` on a (32, 64, 64, 64) input.

Usage:
  python benchmarks/run.py --suite classic           # -> benchmarks/results.md
  python benchmarks/run.py --suite pyramid --repeats 9
  python benchmarks/run.py --suite weighted --malloc keep
  python benchmarks/run.py --target h200             # every suite, compile-only
  python benchmarks/run.py --target tpu-v5e --suite pyramid
"""

from __future__ import annotations

import argparse
import os
import pathlib
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import harness  # noqa: E402
import tables  # noqa: E402
from suites import NAMES, load  # noqa: E402


def allocator_line(args) -> str:
  """The allocator setting and the cost of one fresh input-sized output."""
  import jax
  import jax.numpy as jnp

  x = jnp.ones((32, 64, 64, 64), jnp.float32)
  double = jax.jit(lambda v: v * 2)
  fresh = harness.interleaved_medians(
    {"fresh": lambda: double(x).block_until_ready()}, args.repeats
  )["fresh"]
  setting = (
    "glibc malloc keeps freed memory (`--malloc keep`: "
    + ", ".join(f"{k}={v}" for k, v in harness.KEEP_MEMORY.items())
    + ")"
    if args.malloc == "keep"
    else "glibc malloc defaults"
  )
  return (
    f"Allocator: {setting}. Fresh output: a jitted `x * 2` on a (32, 64, 64,"
    f" 64) float32 input (32 MiB in, 32 MiB out) takes {1e3 * fresh:.2f} ms"
    " here; every fwd+bwd below writes a fresh input-sized gradient."
  )


def timed(args) -> int:
  import jax

  suite = load(args.suite)
  if suite.table is not None:
    body = suite.table(args.repeats)
  else:
    rows = suite.rows()
    if args.quick:
      rows = [r for r in rows if r.shape == (32, 64, 64, 64)]
    results = harness.time_rows(rows, args.repeats)
    body = tables.render_times(suite, rows, results, args.repeats)
  text = allocator_line(args) + "\n\n" + body
  stem = suite.stem + ("-malloc-keep" if args.malloc == "keep" else "")
  stem += "-gpu" if jax.default_backend() == "gpu" else ""
  out = args.out or HERE / f"{stem}.md"
  command = " ".join(sys.argv[1:])
  out.write_text(
    f"# jaxpool benchmark: {suite.name}\n\nCommand: `python benchmarks/run.py {command}`\n\n" + text
  )
  print(text)
  print(f"wrote {out}")
  return 0


def compiled(args) -> int:
  variable, plugin = harness.COMPILE_TARGETS[args.target]
  if not plugin.exists():
    print(
      f"skipped: {args.target}'s compiler is not installed ({plugin} is missing);"
      " run benchmarks/install_compilers.sh",
      file=sys.stderr,
    )
    return 0
  if os.environ.get(variable) != str(plugin):  # the plugin is read when JAX starts
    env = dict(os.environ, JAX_PLATFORMS="cpu", **{variable: str(plugin)})
    return subprocess.call([sys.executable, __file__, *sys.argv[1:]], env=env)
  names = NAMES if args.suite is None else (args.suite,)
  out = args.out or HERE / f"results-{args.target}.md"
  sections = {}
  if out.exists() and args.suite is not None:  # keep the other suites' sections
    for part in out.read_text().split("\n### ")[1:]:
      sections[part.split("\n", 1)[0].strip()] = "### " + part.rstrip() + "\n"
  for name in names:
    suite = load(name)
    rows = suite.rows()
    if rows:
      sections[name] = tables.render_compiled(
        args.target, suite, rows, harness.compile_rows(rows, args.target)
      )
  text = (
    tables.compiled_header(args.target)
    + "\n"
    + "\n".join(sections[n] for n in NAMES if n in sections)
  )
  out.write_text(text)
  print(text)
  print(f"wrote {out}")
  return 0


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument(
    "--suite",
    choices=NAMES,
    default=None,
    help="the suite (default: classic when timing, every suite when compiling for a target)",
  )
  parser.add_argument(
    "--target",
    choices=("cpu", "gpu", *harness.COMPILE_TARGETS),
    default="cpu",
    help="cpu/gpu: timed on the device JAX runs on; tpu-v5e/h200: compile-only on this host",
  )
  parser.add_argument("--quick", action="store_true", help="only the (32, 64, 64, 64) rows")
  parser.add_argument("--repeats", type=int, default=15)
  parser.add_argument("--out", type=pathlib.Path, default=None, help="markdown output")
  parser.add_argument(
    "--malloc",
    choices=("default", "keep"),
    default="default",
    help="'keep': re-run with glibc keeping freed memory, which removes"
    " the page faults of fresh large outputs from both libraries",
  )
  args = parser.parse_args(argv)
  if args.target in harness.COMPILE_TARGETS:
    return compiled(args)
  args.suite = args.suite or "classic"
  if args.malloc == "keep" and any(os.environ.get(k) != v for k, v in harness.KEEP_MEMORY.items()):
    # glibc reads these once, at start-up: run this script again with them.
    os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **harness.KEEP_MEMORY})
  return timed(args)


if __name__ == "__main__":
  sys.exit(main())
