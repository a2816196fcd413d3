"""Benchmark jaxpool against torch and JAX's own defaults, in one process.

For each case it times, with the same input and the same output cotangent:

* jaxpool: forward, and forward+backward (``jax.vjp``), both jitted;
* JAX's default: ``flax.linen.max_pool``/``avg_pool`` (explicit strides), whose
  gradient is XLA's ``select_and_scatter_add``;
* torch CPU (or CUDA when JAX runs on a GPU and torch sees one): channels-last
  tensors (``torch.channels_last``/``channels_last_3d``), ``set_num_threads`` =
  cores, forward and forward + ``backward``;

and reads XLA's ``compiled.memory_analysis()`` temp bytes of the jitted
forward+backward, as a multiple of the input's size. Times are medians of
repeats after warm-up, timed in interleaved rounds (each round calls every
function of a case), so a slow phase of a shared machine slows all of them
alike; the table reports ratios (jaxpool time / other time, lower is better).
On a GPU it also reports achieved bandwidth of the forward pass as a fraction
of ``--peak-gbs``.

Allocator: with glibc's default settings every allocation of 32 MiB or more
is a fresh ``mmap``, so each call page-faults its output in (10-15 ms for a
32 MiB gradient on the 2-core VM, more than the pooling itself), in torch and
in JAX alike. ``--malloc keep`` re-executes the script with glibc told to keep
freed memory (``MALLOC_ARENA_MAX=1``, high mmap and trim thresholds), which
removes that fixed cost from both sides and shows the operators' own speed;
its tables go to ``*-malloc-keep.md``. Every table states its setting and the
"fresh output" time: one jitted ``x * 2`` on the (32, 64, 64, 64) input.

Usage:
  python benchmarks/run.py                 # full table -> benchmarks/results.md
  python benchmarks/run.py --malloc keep   # -> benchmarks/results-malloc-keep.md
  python benchmarks/run.py --quick         # the (32, 64, 64, 64) cases only
  python benchmarks/run.py --suite weighted    # SoftPool / LIP
  python benchmarks/run.py --suite stochastic  # the random family
  python benchmarks/run.py --suite training    # a training step's temp memory
  python benchmarks/run.py --suite lifting     # LiftPool
  python benchmarks/run.py --suite dynamic     # DynOPool vs torch's grid_sample
  python benchmarks/run.py --suite second_order  # covariance, bilinear, NetVLAD
  python benchmarks/run.py --suite pyramid     # large windows, SPP block, SPPF
  python benchmarks/run.py --suite region      # RoIAlign / RoIPool
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import pathlib
import platform
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen

import jaxpool

try:
  import torch
  import torch.nn.functional as F
except ImportError:  # torch is optional: its columns are left empty
  torch = None


@dataclasses.dataclass(frozen=True)
class Case:
  op: str  # "max" or "avg"
  shape: tuple[int, ...]  # channels-last
  window: int
  stride: int
  dtype: str = "float32"
  padding: int = 0

  @property
  def nd(self) -> int:
    return len(self.shape) - 2

  @property
  def label(self) -> str:
    pad = f"/p{self.padding}" if self.padding else ""
    return (
        f"{self.op}_pool {self.nd}-D {self.shape} k{self.window}/s{self.stride}"
        f"{pad} {self.dtype}"
    )


def cases(quick: bool) -> list[Case]:
  typical = (32, 64, 64, 64)
  out = [Case(op, typical, k, 2) for op in ("max", "avg") for k in (2, 3)]
  out += [Case(op, typical, 3, 2, padding=1) for op in ("max", "avg")]
  if quick:
    return out
  for op in ("max", "avg"):
    out += [
        Case(op, (8, 32, 32, 16), 2, 2),
        Case(op, (16, 128, 128, 64), 3, 2),
        Case(op, (64, 4096, 64), 2, 2),
        Case(op, (64, 4096, 64), 3, 2),
        Case(op, (8, 32, 32, 32, 32), 2, 2),
        Case(op, (8, 32, 32, 32, 32), 3, 2),
        Case(op, typical, 3, 1, padding=1),
        Case(op, typical, 2, 2, "bfloat16"),
        Case(op, typical, 3, 2, "bfloat16"),
    ]
  return out


def interleaved_medians(fns: dict, repeats: int, rounds: int = 5) -> dict:
  """Median seconds of each zero-argument callable, timed in interleaved rounds.

  Every round calls each function once untimed (warm-up; it also lets the
  previous function's thread pool go idle) and then ``ceil(repeats /
  rounds)`` times timed. A slow phase of a shared machine then hits every
  function alike instead of whichever happened to be timed during it, so the
  ratios between them are stable even when the absolute times drift.
  """
  rounds = max(1, min(rounds, repeats))
  calls = -(-repeats // rounds)
  times = {name: [] for name in fns}
  for _ in range(rounds):
    for name, fn in fns.items():
      fn()
      for _ in range(calls):
        tick = time.perf_counter()
        fn()
        times[name].append(time.perf_counter() - tick)
  return {name: statistics.median(values) for name, values in times.items()}


def jax_functions(case: Case):
  window = (case.window,) * case.nd
  strides = (case.stride,) * case.nd
  pads = ((case.padding, case.padding),) * case.nd
  if case.op == "max":
    ours = lambda x: jaxpool.max_pool(x, window, strides, pads)
    default = lambda x: linen.max_pool(x, window, strides, pads)
  else:
    ours = lambda x: jaxpool.avg_pool(x, window, strides, pads)
    default = lambda x: linen.avg_pool(x, window, strides, pads)
  return ours, default


def jax_callables(fn, x, cot, *args):
  """``(forward, forward_backward, temp)`` for ``fn(x, *args)``.

  The first two are zero-argument callables running the jitted forward and
  forward+backward in ``x`` (which returns ``y`` too, as a training step needs
  it) to completion; ``temp`` is XLA's temp bytes of the forward+backward as
  a multiple of ``x``'s bytes. ``args`` (logits, keys, samples) are passed as
  jit arguments: closed over, they would be compile-time constants that XLA
  may fold (a LIP whose weights are precomputed at compile time).
  """
  forward = jax.jit(fn)

  def forward_backward(v, g, *rest):
    y, pullback = jax.vjp(lambda u: fn(u, *rest), v)
    return y, pullback(g)[0]

  both = jax.jit(forward_backward)
  memory = both.lower(x, cot, *args).compile().memory_analysis()
  temp = None if memory is None else memory.temp_size_in_bytes / x.nbytes
  return (
      lambda: forward(x, *args).block_until_ready(),
      lambda: jax.block_until_ready(both(x, cot, *args)),
      temp,
  )


def torch_tensors(x: np.ndarray, cot: np.ndarray, dtype, device, memory_format):
  """Channels-last numpy arrays as torch tensors in ``memory_format``."""
  perm = (0, x.ndim - 1) + tuple(range(1, x.ndim - 1))

  def tensor(a):
    t = torch.from_numpy(np.ascontiguousarray(a.astype(np.float32).transpose(perm)))
    return t.to(device=device, dtype=dtype).contiguous(memory_format=memory_format)

  return tensor(x), tensor(cot)


def torch_layouts(nd: int) -> dict:
  """torch's memory formats to time: channels-first, and channels-last."""
  layouts = {"NC...": torch.contiguous_format}
  if nd in (2, 3):
    layouts["channels-last"] = {2: torch.channels_last, 3: torch.channels_last_3d}[nd]
  return layouts


def fastest_torch(times: dict) -> float:
  """The fastest of the ``("torch", layout)`` entries of ``times`` (NaN if none)."""
  return min(
      (v for key, v in times.items() if key[0] == "torch"), default=float("nan")
  )


def torch_callables(case: Case, x: np.ndarray, cot: np.ndarray, device: str) -> dict:
  """``{layout: (forward, forward_backward)}`` zero-argument callables of
  torch's pooling, for each layout of :func:`torch_layouts`."""
  pool = getattr(F, f"{case.op}_pool{case.nd}d")
  sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
  out = {}
  for name, fmt in torch_layouts(case.nd).items():
    xt, gt = torch_tensors(x, cot, getattr(torch, case.dtype), device, fmt)

    def forward(xt=xt):
      with torch.no_grad():
        pool(xt, case.window, case.stride, case.padding)
      sync()

    def both(xt=xt, gt=gt):
      leaf = xt.detach().requires_grad_()
      pool(leaf, case.window, case.stride, case.padding).backward(gt)
      sync()

    out[name] = (forward, both)
  return out


def run(args) -> str:
  if torch is not None:
    torch.set_num_threads(os.cpu_count() or 1)
  on_gpu = jax.default_backend() == "gpu"
  torch_device = "cuda" if on_gpu and torch is not None and torch.cuda.is_available() else "cpu"
  rows = []
  for case in cases(args.quick):
    rng = np.random.default_rng(0)
    x_np = rng.standard_normal(case.shape).astype(np.float32)
    ours, default = jax_functions(case)
    x = jnp.asarray(x_np, dtype=case.dtype)
    cot_np = rng.standard_normal(ours(x).shape).astype(np.float32)
    cot = jnp.asarray(cot_np, dtype=case.dtype)
    fns = {}
    fns["ours_f"], fns["ours_b"], ours_mem = jax_callables(ours, x, cot)
    fns["def_f"], fns["def_b"], def_mem = jax_callables(default, x, cot)
    with_torch = torch is not None and not (torch_device == "cpu" and on_gpu)
    if with_torch:
      for name, (fwd, both) in torch_callables(case, x_np, cot_np, torch_device).items():
        fns[("torch_f", name)], fns[("torch_b", name)] = fwd, both
    t = interleaved_medians(fns, args.repeats)
    ours_f, ours_b, def_f, def_b = t["ours_f"], t["ours_b"], t["def_f"], t["def_b"]
    if with_torch:
      # The faster layout (by forward+backward) is the reference; torch's
      # default channels-first layout is reported beside it.
      layouts = torch_layouts(case.nd)
      layout = min(layouts, key=lambda name: t[("torch_b", name)])
      torch_f = min(t[("torch_f", name)] for name in layouts)
      torch_b = t[("torch_b", layout)]
      torch_nc_b = t[("torch_b", "NC...")]
    else:
      torch_f = torch_b = torch_nc_b = float("nan")
      layout = "-"
    row = dict(
        case=case.label, ours_f=ours_f, ours_b=ours_b, def_f=def_f, def_b=def_b,
        torch_f=torch_f, torch_b=torch_b, torch_nc_b=torch_nc_b, layout=layout,
        ours_mem=ours_mem,
        def_mem=def_mem,
    )
    if on_gpu:
      # The forward reads x once and writes y (x / stride^nd bytes).
      row["gbs"] = (x.nbytes + x.nbytes / case.stride**case.nd) / ours_f / 1e9
    rows.append(row)
    print(
        f"{case.label}: fwd+bwd {1e3 * ours_b:.2f} ms (torch {1e3 * torch_b:.2f},"
        f" flax {1e3 * def_b:.2f}); temp {ours_mem:.2f}x input", flush=True,
    )
  return table(rows, on_gpu, torch_device, args)


def table(rows, on_gpu, torch_device, args) -> str:
  device = jax.devices()[0].device_kind
  lines = [
      f"Device: {device} ({jax.default_backend()}), {os.cpu_count()} CPU threads;"
      f" jax {jax.__version__}, torch {torch.__version__ if torch else 'absent'}"
      f" ({torch_device}); {platform.python_version()}; median of {args.repeats}"
      " repeats, timed in interleaved rounds (every function once per round)"
      " after warm-up.",
      "",
      "Ratios are jaxpool time / other time (lower is better; < 1 means jaxpool"
      " is faster). `flax` is `flax.linen.max_pool`/`avg_pool`. torch is timed"
      " with channels-first and channels-last tensors and the faster is used"
      " (column `torch layout`, the faster forward+backward); `torch NC...` is"
      " torch's default channels-first layout alone. Temp memory is"
      " XLA's temp bytes of the jitted forward+backward (returning the output"
      " and the input gradient) as a multiple of the input's bytes.",
      "",
  ]
  header = (
      "| case | fwd ms | fwd / torch | fwd / flax | fwd+bwd ms | fwd+bwd / torch"
      " | fwd+bwd / torch NC... | fwd+bwd / flax | torch layout | temp (jaxpool)"
      " | temp (flax) |"
  )
  if on_gpu:
    header += f" fwd GB/s (% of {args.peak_gbs:.0f}) |"
  lines += [header, header_rule(header)]
  for r in rows:
    line = (
        f"| {r['case']} | {1e3 * r['ours_f']:.2f} | {r['ours_f'] / r['torch_f']:.2f}"
        f" | {r['ours_f'] / r['def_f']:.2f} | {1e3 * r['ours_b']:.2f}"
        f" | {r['ours_b'] / r['torch_b']:.2f} | {r['ours_b'] / r['torch_nc_b']:.2f}"
        f" | {r['ours_b'] / r['def_b']:.2f}"
        f" | {r['layout']} | {fmt_mem(r['ours_mem'])} | {fmt_mem(r['def_mem'])} |"
    )
    if on_gpu:
      line += f" {r['gbs']:.0f} ({100 * r['gbs'] / args.peak_gbs:.0f}%) |"
    lines.append(line)
  return "\n".join(lines) + "\n"


def device_line(args) -> str:
  """The device, thread count, jax version and timing rule of a table."""
  return (
      f"Device: {jax.devices()[0].device_kind} ({jax.default_backend()}),"
      f" {os.cpu_count()} CPU threads; jax {jax.__version__}; median of"
      f" {args.repeats} repeats in interleaved rounds after warm-up."
  )


def markdown_table(notes: list[str], columns: list[str], rows: list[str]) -> str:
  """Note paragraphs, then a markdown table of ``rows`` under ``columns``."""
  head = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
  return "\n\n".join(notes) + "\n\n" + "\n".join(head + rows) + "\n"


def header_rule(header: str) -> str:
  return "|" + "---|" * (header.count("|") - 1)


def fmt_mem(value) -> str:
  return "n/a" if value is None else f"{value:.2f}x"


def run_weighted(args) -> str:
  """SoftPool/LIP against jaxpool's avg/max pooling and the official torch formula.

  The torch formula is the official SoftPool repository's pure-PyTorch idea,
  per channel: ``avg_pool(x * exp(x)) / avg_pool(exp(x))``, forward and
  backward through autograd, in torch's faster layout.
  """
  if torch is not None:
    torch.set_num_threads(os.cpu_count() or 1)
  shape = (32, 64, 64, 64)
  rng = np.random.default_rng(0)
  x_np = rng.standard_normal(shape).astype(np.float32)
  logits = jnp.asarray(rng.standard_normal(shape).astype(np.float32))
  x = jnp.asarray(x_np)
  rows = []
  for k in (2, 3):
    window, strides = (k, k), (2, 2)
    ops = {
        "soft_pool": lambda v, _: jaxpool.soft_pool(v, window, strides),
        "lip_pool": lambda v, logits: jaxpool.lip_pool(v, logits, window, strides),
        "avg_pool": lambda v, _: jaxpool.avg_pool(v, window, strides),
        "max_pool": lambda v, _: jaxpool.max_pool(v, window, strides),
    }
    cot = jnp.asarray(rng.standard_normal(ops["avg_pool"](x, logits).shape).astype(np.float32))
    fns, memory = {}, {}
    for name, fn in ops.items():
      fns[(name, "f")], fns[(name, "b")], memory[name] = jax_callables(fn, x, cot, logits)
    if torch is not None:
      for layout, fmt in torch_layouts(2).items():
        xt, gt = torch_tensors(x_np, np.asarray(cot), torch.float32, "cpu", fmt)

        def both(xt=xt, gt=gt):
          leaf = xt.detach().requires_grad_()
          e = torch.exp(leaf)
          (F.avg_pool2d(leaf * e, k, 2) / F.avg_pool2d(e, k, 2)).backward(gt)

        fns[("torch", layout)] = both
    t = interleaved_medians(fns, args.repeats)
    timings = {name: (t[(name, "f")], t[(name, "b")], memory[name]) for name in ops}
    torch_b = fastest_torch(t)
    avg_b = timings["avg_pool"][1]
    for name, (f, b, mem) in timings.items():
      rows.append(
          f"| {name} {shape} k{k}/s2 | {1e3 * f:.2f} | {1e3 * b:.2f} |"
          f" {b / avg_b:.2f} | {b / torch_b:.2f} | {fmt_mem(mem)} |"
      )
      print(rows[-1], flush=True)
    rows.append(
        f"| torch formula {shape} k{k}/s2 | | {1e3 * torch_b:.2f} | {torch_b / avg_b:.2f} | 1.00 | |"
    )
  device = jax.devices()[0].device_kind
  header = [
      f"Device: {device} ({jax.default_backend()}), {os.cpu_count()} CPU threads;"
      f" jax {jax.__version__}, torch {torch.__version__ if torch else 'absent'};"
      f" median of {args.repeats} repeats in interleaved rounds after warm-up.",
      "",
      "fwd+bwd returns the output and the input gradient. Ratios: time / jaxpool"
      " avg_pool's fwd+bwd, and time / the official SoftPool torch formula"
      " (`avg_pool(x*exp(x)) / avg_pool(exp(x))`, faster torch layout). Temp is"
      " XLA's temp memory of the jitted fwd+bwd / the input's bytes.",
      "",
      "| case | fwd ms | fwd+bwd ms | fwd+bwd / avg_pool | fwd+bwd / torch formula | temp |",
      "|---|---|---|---|---|---|",
  ]
  return "\n".join(header + rows) + "\n"


def _learned_lift(x, steps):
  """The learned layer's training output: the sum of the bands plus the
  weighted constraints (broadcast), so their cost is timed too."""
  predict, update = steps
  bands, (c_u, c_p) = jaxpool.lift_down_pool_with_constraints(x, predict=predict, update=update)
  return sum(bands) + (0.01 * c_u + 0.1 * c_p)


def run_lifting(args) -> str:
  """LiftPool against avg/max pooling: the fixed wavelets (the sum of the
  sub-bands, the paper's pooling), the learned NNX layer (parameters as jit
  arguments) and the exact inverse."""
  from flax import nnx

  from jaxpool import nnx as jpnnx

  shape = (32, 64, 64, 64)
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.standard_normal(shape).astype(np.float32))
  graphdef, state = nnx.split(jpnnx.LiftDownPool(features=shape[-1], rngs=nnx.Rngs(0)))
  ops = {
      "avg_pool 2x2/2": lambda v, _: jaxpool.avg_pool(v, (2, 2)),
      "max_pool 2x2/2": lambda v, _: jaxpool.max_pool(v, (2, 2)),
      "lift_down_pool, LeGall 5/3, sum of bands": lambda v, _: sum(jaxpool.lift_down_pool(v)),
      "lift_down_pool, Haar, sum of bands": lambda v, _: sum(jaxpool.lift_down_pool(v, wavelet="haar")),
      "lift_pool (the sum of bands in one filter per axis), LeGall 5/3": lambda v, _: jaxpool.lift_pool(v),
      "learned P/U (LiftDownPool.steps), sum + 0.01 c_u + 0.1 c_p": lambda v, s: _learned_lift(
          v, nnx.merge(graphdef, s).steps()),
      "lift_up_pool, LeGall 5/3": lambda v, _: jaxpool.lift_up_pool(tuple(v)),
  }
  cot = jnp.asarray(rng.standard_normal((32, 32, 32, 64)).astype(np.float32))
  # lift_up_pool's input: four nonzero (32, 32, 32, 64) bands, stacked.
  bands = jnp.asarray(rng.standard_normal((4, 32, 32, 32, 64)).astype(np.float32))
  fns, memory = {}, {}
  for name, fn in ops.items():
    v, g = (bands, x) if name.startswith("lift_up_pool") else (x, cot)
    fns[(name, "f")], fns[(name, "b")], memory[name] = jax_callables(fn, v, g, state)
  t = interleaved_medians(fns, args.repeats)
  avg_b, max_b = t[("avg_pool 2x2/2", "b")], t[("max_pool 2x2/2", "b")]
  rows = []
  for name in ops:
    f, b = t[(name, "f")], t[(name, "b")]
    rows.append(
        f"| {name} | {1e3 * f:.2f} | {1e3 * b:.2f} | {b / avg_b:.2f} | {b / max_b:.2f} |"
        f" {fmt_mem(memory[name])} |"
    )
    print(rows[-1], flush=True)
  header = [
      device_line(args),
      "",
      f"Input {shape} float32. fwd+bwd returns the output and the input"
      " gradient (a non-constant cotangent); the learned layer's parameters"
      " are jit arguments. The lift_up_pool row reads four nonzero (32, 32,"
      " 32, 64) bands (stacked: as many bytes as the input) and writes"
      " (32, 64, 64, 64). Temp is XLA's temp memory of the jitted fwd+bwd /"
      " the input's bytes.",
      "",
      "| case | fwd ms | fwd+bwd ms | fwd+bwd / avg_pool | fwd+bwd / max_pool | temp |",
      "|---|---|---|---|---|---|",
  ]
  return "\n".join(header + rows) + "\n"


def _grid_sample_reads(xt, grids):
  """torch's DynOPool formula: four grid_sample reads combined by max."""
  reads = [F.grid_sample(xt, g, mode="bilinear", padding_mode="border", align_corners=False)
           for g in grids]
  return torch.stack(reads).amax(0)


def _quarter_cell_grids(batch: int, out: int) -> list:
  """The four (x, y) grids of the quarter-cell queries, square output."""
  centres = -1 + (2 * np.arange(out) + 1) / out
  grids = []
  for sh in (-1, 1):
    for sw in (-1, 1):
      gy, gx = np.meshgrid(centres + sh / (2 * out), centres + sw / (2 * out), indexing="ij")
      grid = np.broadcast_to(np.stack([gx, gy], -1), (batch, out, out, 2))
      grids.append(torch.tensor(np.ascontiguousarray(grid, np.float32)))
  return grids


def _jax_training_callable(fn, x, cot, param):
  """fwd+bwd with the gradient in ``x`` and in the learned ``param``."""
  both = jax.jit(lambda v, p, g: (lambda y, pb: (y, pb(g)))(*jax.vjp(fn, v, p)))
  memory = both.lower(x, param, cot).compile().memory_analysis()
  temp = None if memory is None else memory.temp_size_in_bytes / x.nbytes
  return lambda: jax.block_until_ready(both(x, param, cot)), temp


def run_dynamic(args) -> str:
  """DynOPool halving (32, 64, 64, 64): the quarter cell (static positions,
  strided reads), the learned scale's gradient, a traced (learned) offset,
  against jaxpool's max pooling and torch's four grid_sample reads + max."""
  if torch is not None:
    torch.set_num_threads(os.cpu_count() or 1)
  shape, out = (32, 64, 64, 64), (32, 32)
  rng = np.random.default_rng(0)
  x_np = rng.standard_normal(shape).astype(np.float32)
  cot_np = rng.standard_normal((32, 32, 32, 64)).astype(np.float32)
  x, cot = jnp.asarray(x_np), jnp.asarray(cot_np)
  alpha, delta = jnp.array([2.0, 2.0]), jnp.array([1 / 64, 1 / 64])
  fns, memory = {}, {}
  name = "max_pool 2x2/2"
  fns[(name, "f")], fns[(name, "b")], memory[name] = jax_callables(
      lambda v: jaxpool.max_pool(v, (2, 2)), x, cot)
  name = "dyno_pool, quarter cell (delta=None)"
  fns[(name, "f")], fns[(name, "b")], memory[name] = jax_callables(
      lambda v: jaxpool.dyno_pool(v, out), x, cot)
  name = "dyno_pool, quarter cell, scale=alpha: grad in x and alpha"
  fns[(name, "f")] = None
  fns[(name, "b")], memory[name] = _jax_training_callable(
      lambda v, a: jaxpool.dyno_pool(v, out, scale=a), x, cot, alpha)
  name = "dyno_pool, traced delta (learned offset): grad in x and delta"
  fns[(name, "f")] = None
  fns[(name, "b")], memory[name] = _jax_training_callable(
      lambda v, d: jaxpool.dyno_pool(v, out, d), x, cot, delta)
  if torch is not None:
    grids = _quarter_cell_grids(shape[0], out[0])
    for layout, fmt in torch_layouts(2).items():
      xt, gt = torch_tensors(x_np, cot_np, torch.float32, "cpu", fmt)

      def both(xt=xt, gt=gt):
        leaf = xt.detach().requires_grad_()
        _grid_sample_reads(leaf, grids).backward(gt)

      def with_grid(xt=xt, gt=gt):
        leaf = xt.detach().requires_grad_()
        leaves = [g.clone().requires_grad_() for g in grids]
        _grid_sample_reads(leaf, leaves).backward(gt)

      fns[("torch", layout)] = both
      fns[("torch grid", layout)] = with_grid
  t = interleaved_medians({k: v for k, v in fns.items() if v is not None}, args.repeats)
  max_b = t[("max_pool 2x2/2", "b")]
  torch_b = min((v for (k, _), v in t.items() if k == "torch"), default=None)
  grid_b = min((v for (k, _), v in t.items() if k == "torch grid"), default=None)
  rows = []
  for name in memory:
    f, b = t.get((name, "f")), t[(name, "b")]
    reference = grid_b if "grad in" in name else torch_b
    ratio = "" if reference is None else f"{b / reference:.2f}"
    rows.append(
        f"| {name} | {'' if f is None else f'{1e3 * f:.2f}'} | {1e3 * b:.2f} |"
        f" {b / max_b:.2f} | {ratio} | {fmt_mem(memory[name])} |"
    )
    print(rows[-1], flush=True)
  if torch_b is not None:
    rows.append(f"| torch: 4 grid_sample + max, grad in x | | {1e3 * torch_b:.2f} |"
                f" {torch_b / max_b:.2f} | 1.00 | |")
    rows.append(f"| torch: 4 grid_sample + max, grad in x and the grids | |"
                f" {1e3 * grid_b:.2f} | {grid_b / max_b:.2f} | 1.00 | |")
  return markdown_table([
      device_line(args) + f" torch {torch.__version__ if torch else 'absent'}.",
      f"Input {shape} float32, output (32, 32, 32, 64), a non-constant"
      " cotangent. The torch formula is four `grid_sample(bilinear, border,"
      " align_corners=False)` reads at the quarter-cell grids combined by"
      " `amax`, in torch's faster layout. Rows with a gradient in a learned"
      " parameter are compared with torch differentiating its grids too."
      " Temp is XLA's temp memory of the jitted fwd+bwd / the input's bytes.",
  ], ["case", "fwd ms", "fwd+bwd ms", "fwd+bwd / max_pool", "fwd+bwd / torch", "temp"], rows)


def _torch_covariance(x, iterations=5, logm=False):
  """iSQRT-COV (or the eigh matrix log) with torch ops, channels-last input
  ``(B, H, W, C)``: centred covariance, trace pre-normalisation, the coupled
  Newton-Schulz iteration, post-compensation."""
  rows = x.reshape(x.shape[0], -1, x.shape[-1])
  centred = rows - rows.mean(dim=1, keepdim=True)
  c = centred.transpose(1, 2) @ centred / rows.shape[1]
  if logm:
    lam, u = torch.linalg.eigh(c)
    return u @ torch.diag_embed(torch.log(torch.clamp(lam, min=1e-5))) @ u.transpose(1, 2)
  eye = torch.eye(c.shape[-1], dtype=c.dtype).expand_as(c)
  trace = c.diagonal(dim1=1, dim2=2).sum(-1).view(-1, 1, 1)
  y, z = c / trace, eye
  for _ in range(iterations - 1):
    t = 0.5 * (3 * eye - z @ y)
    y, z = y @ t, t @ z
  return y @ (0.5 * (3 * eye - z @ y)) * torch.sqrt(trace)


def _torch_netvlad(x, centers, weights, bias):
  """NetVLAD with torch ops (normalised input, soft assignment, residuals,
  intra and final L2)."""
  rows = F.normalize(x.reshape(x.shape[0], -1, x.shape[-1]), dim=-1)
  a = torch.softmax(rows @ weights + bias, dim=-1)
  v = a.transpose(1, 2) @ rows - a.sum(1).unsqueeze(-1) * centers
  v = F.normalize(v, dim=-1).reshape(x.shape[0], -1)
  return F.normalize(v, dim=-1)


def _torch_bilinear(x):
  rows = x.reshape(x.shape[0], -1, x.shape[-1])
  z = (rows.transpose(1, 2) @ rows / rows.shape[1]).reshape(x.shape[0], -1)
  return F.normalize(torch.sign(z) * torch.sqrt(torch.abs(z) + 1e-12), dim=-1)


def _torch_row(name: str, t: dict, memory, *extra: str) -> str:
  """``| name | fwd | fwd+bwd | torch fwd+bwd | / torch | *extra | temp |``
  from interleaved medians keyed ``(name, 'f' | 'b' | 'torch')``; printed."""
  b, tb = t[(name, "b")], t.get((name, "torch"))
  torch_cells = ("", "") if tb is None else (f"{1e3 * tb:.2f}", f"{b / tb:.2f}")
  cells = (name, f"{1e3 * t[(name, 'f')]:.2f}", f"{1e3 * b:.2f}", *torch_cells, *extra,
           fmt_mem(memory))
  row = "| " + " | ".join(cells) + " |"
  print(row, flush=True)
  return row


def run_second_order(args) -> str:
  """Covariance (iSQRT-COV sqrtm, logm), bilinear, compact bilinear and
  NetVLAD heads on (32, 14, 14, 256), against the same formulas in torch."""
  if torch is not None:
    torch.set_num_threads(os.cpu_count() or 1)
  shape, clusters = (32, 14, 14, 256), 16
  rng = np.random.default_rng(0)
  x_np = rng.standard_normal(shape).astype(np.float32)
  centers_np = rng.standard_normal((clusters, shape[-1])).astype(np.float32)
  centers_np /= np.linalg.norm(centers_np, axis=1, keepdims=True)
  weights_np, bias_np = 2 * centers_np.T.copy(), -np.ones(clusters, np.float32)
  x = jnp.asarray(x_np)
  netvlad_params = tuple(jnp.asarray(a) for a in (centers_np, weights_np, bias_np))
  ops = {
      "covariance_pool, sqrtm, 5 iterations": (
          lambda v, p: jaxpool.covariance_pool(v), lambda v: _torch_covariance(v)),
      "covariance_pool, logm (eigh)": (
          lambda v, p: jaxpool.covariance_pool(v, normalize="logm"),
          lambda v: _torch_covariance(v, logm=True)),
      "covariance_pool, no normalisation": (
          lambda v, p: jaxpool.covariance_pool(v, normalize=None), None),
      "bilinear_pool": (lambda v, p: jaxpool.bilinear_pool(v), lambda v: _torch_bilinear(v)),
      "compact_bilinear_pool, D = 8192": (
          lambda v, p: jaxpool.compact_bilinear_pool(v, output_dim=8192, key=jax.random.key(0)),
          None),
      f"netvlad, K = {clusters}": (
          lambda v, p: jaxpool.netvlad(v, p[0], assign_weights=p[1], assign_bias=p[2]),
          lambda v: _torch_netvlad(v, *(torch.tensor(a) for a in (centers_np, weights_np, bias_np)))),
  }
  fns, memory = {}, {}
  for name, (ours, theirs) in ops.items():
    cot = jnp.asarray(rng.standard_normal(jax.eval_shape(ours, x, netvlad_params).shape), jnp.float32)
    fns[(name, "f")], fns[(name, "b")], memory[name] = jax_callables(ours, x, cot, netvlad_params)
    if theirs is not None and torch is not None:
      xt, gt = torch.tensor(x_np), torch.tensor(np.asarray(cot))

      def both(xt=xt, gt=gt, theirs=theirs):
        leaf = xt.detach().requires_grad_()
        theirs(leaf).backward(gt)

      fns[(name, "torch")] = both
  return _torch_table(fns, ops, memory, args,
                      f"Input {shape} float32 (channels-last, as both libraries receive it), a"
                      " non-constant cotangent; the torch columns run the same formula with"
                      " torch ops and autograd (iSQRT-COV's iteration, `torch.linalg.eigh` for"
                      " the log, NetVLAD's soft assignment). Temp is XLA's temp memory of the"
                      " jitted fwd+bwd / the input's bytes.")


def _torch_table(fns: dict, names, memory: dict, args, note: str) -> str:
  """The interleaved medians of ``fns`` as ``| case | fwd | fwd+bwd | torch
  fwd+bwd | / torch | temp |`` rows, one per name, under the device line and
  ``note``."""
  t = interleaved_medians(fns, args.repeats)
  rows = [_torch_row(name, t, memory[name]) for name in names]
  return markdown_table([
      device_line(args) + f" torch {torch.__version__ if torch else 'absent'}.", note,
  ], ["case", "fwd ms", "fwd+bwd ms", "torch fwd+bwd ms", "/ torch", "temp"], rows)


def run_pyramid(args) -> str:
  """Stride-1 SAME max, average and median pooling as the window grows, and
  YOLO's SPP block and SPPF, against torch (channels-last) on (8, 40, 40,
  128)."""
  if torch is not None:
    torch.set_num_threads(os.cpu_count() or 1)
  shape = (8, 40, 40, 128)
  rng = np.random.default_rng(0)
  x_np = rng.standard_normal(shape).astype(np.float32)
  x = jnp.asarray(x_np)
  ops = {f"max_pool {k}x{k}/1 SAME": (
      lambda v, k=k: jaxpool.max_pool(v, (k, k), 1, k // 2),
      lambda t, k=k: F.max_pool2d(t, k, 1, k // 2)) for k in (3, 5, 9, 13)}
  for k in (3, 9, 13):
    ops[f"avg_pool {k}x{k}/1 SAME"] = (
        lambda v, k=k: jaxpool.avg_pool(v, (k, k), 1, k // 2),
        lambda t, k=k: F.avg_pool2d(t, k, 1, k // 2))
  for k in (3, 5, 9):
    # torch has no median pooling: its unfold + median is the torch-ops way
    # (zero padding; the time, not the border values, is compared).
    ops[f"median_pool {k}x{k}/1 SAME"] = (
        lambda v, k=k: jaxpool.median_pool(v, (k, k), 1, k // 2),
        lambda t, k=k: F.unfold(t, k, padding=k // 2).reshape(
            t.shape[0], t.shape[1], k * k, -1).median(dim=2).values.reshape(t.shape))
  ops["spp_block (5, 9, 13)"] = (
      lambda v: jaxpool.spp_block(v),
      lambda t: torch.cat([t] + [F.max_pool2d(t, k, 1, k // 2) for k in (5, 9, 13)], 1))
  ops["sppf (5, 3 repeats)"] = (lambda v: jaxpool.sppf(v), None)
  fns, memory = {}, {}
  for name, (ours, theirs) in ops.items():
    cot_np = rng.standard_normal(jax.eval_shape(ours, x).shape).astype(np.float32)
    fns[(name, "f")], fns[(name, "b")], memory[name] = jax_callables(ours, x, jnp.asarray(cot_np))
    if theirs is not None and torch is not None:
      xt, gt = torch_tensors(x_np, cot_np, torch.float32, "cpu", torch.channels_last)

      def both(xt=xt, gt=gt, theirs=theirs):
        leaf = xt.detach().requires_grad_()
        theirs(leaf).backward(gt)

      fns[(name, "torch")] = both
  t = interleaved_medians(fns, args.repeats)
  base = t[("max_pool 3x3/1 SAME", "b")]
  rows = [_torch_row(name, t, memory[name], f"{t[(name, 'b')] / base:.2f}") for name in ops]
  return markdown_table([
      device_line(args) + f" torch {torch.__version__ if torch else 'absent'}.",
      f"Input {shape} float32, a non-constant cotangent; torch in channels-last."
      " `/ 3x3` is the fwd+bwd time over jaxpool's own 3x3 stride-1 max pooling."
      " torch's median is `unfold` + `median`, NCHW. Temp is"
      " XLA's temp memory of the jitted fwd+bwd / the input's bytes.",
  ], ["case", "fwd ms", "fwd+bwd ms", "torch fwd+bwd ms", "/ torch", "/ 3x3", "temp"], rows)


def torch_roi_align(x, boxes, output_shape, scale, sampling, aligned):
  """RoIAlign from torch ops, torchvision's rules: each box's ``ph*g x pw*g``
  sample lattice read by ``grid_sample`` (``align_corners=True`` at
  positions clamped to ``[0, H-1]``, which is torchvision's border rule),
  samples outside ``[-1, H] x [-1, W]`` zeroed, then ``g x g`` averages.
  ``x`` is NCHW; returns ``(K, C, ph, pw)``. Checked against the NumPy
  reference in tests/test_region.py."""
  ph, pw = output_shape
  height, width = x.shape[-2:]
  offset = 0.5 if aligned else 0.0
  start = boxes[:, 1:3] * scale - offset
  size = (boxes[:, 3:5] - boxes[:, 1:3]) * scale
  if not aligned:
    size = size.clamp(min=1.0)

  def axis(i, bins, length):
    t = (torch.arange(bins * sampling, dtype=x.dtype) + 0.5) / sampling
    pos = start[:, i, None] + t[None] * (size[:, i, None] / bins)
    valid = (pos >= -1) & (pos <= length)
    norm = pos.clamp(0, length - 1) * (2.0 / max(length - 1, 1)) - 1
    return norm, valid

  gx, vx = axis(0, pw, width)
  gy, vy = axis(1, ph, height)
  grid = torch.stack(torch.broadcast_tensors(gx[:, None, :], gy[:, :, None]), dim=-1)
  out = x.new_zeros((len(boxes), x.shape[1], ph * sampling, pw * sampling))
  index = boxes[:, 0].long()
  for b in range(x.shape[0]):  # boxes of one image sampled by one grid_sample call
    rows = torch.nonzero(index == b).flatten()
    if len(rows):
      lattice = grid[rows].reshape(1, -1, pw * sampling, 2)
      read = F.grid_sample(x[b:b + 1], lattice, mode="bilinear", align_corners=True)
      out[rows] = read.reshape(x.shape[1], len(rows), ph * sampling, pw * sampling).transpose(0, 1)
  out = out * (vy[:, None, :, None] & vx[:, None, None, :])
  return out.reshape(len(boxes), -1, ph, sampling, pw, sampling).mean(dim=(3, 5))


def naive_roi_align(x, boxes, output_shape, scale, sampling):
  """The textbook JAX port: four gathers of whole feature vectors per sample
  (``x[b, y, x]``), bilinear weights, a mean per bin (aligned=False)."""
  ph, pw = output_shape
  height, width = x.shape[1:3]
  index = boxes[:, 0].astype(jnp.int32)
  start = boxes[:, 1:3] * scale
  size = jnp.maximum((boxes[:, 3:5] - boxes[:, 1:3]) * scale, 1.0)

  def axis(i, bins, length):
    t = (jnp.arange(bins * sampling, dtype=x.dtype) + 0.5) / sampling
    pos = start[:, i, None] + t[None] * (size[:, i, None] / bins)
    valid = (pos >= -1) & (pos <= length)
    pos = jnp.clip(pos, 0, length - 1)
    low = jnp.floor(pos).astype(jnp.int32)
    high = jnp.minimum(low + 1, length - 1)
    return low, high, pos - low.astype(pos.dtype), valid

  xl, xh, fx, vx = axis(0, pw, width)
  yl, yh, fy, vy = axis(1, ph, height)
  b = index[:, None, None]
  rows = lambda v: v[:, :, None]
  cols = lambda v: v[:, None, :]
  out = (x[b, rows(yl), cols(xl)] * ((1 - rows(fy)) * (1 - cols(fx)))[..., None]
         + x[b, rows(yl), cols(xh)] * ((1 - rows(fy)) * cols(fx))[..., None]
         + x[b, rows(yh), cols(xl)] * (rows(fy) * (1 - cols(fx)))[..., None]
         + x[b, rows(yh), cols(xh)] * (rows(fy) * cols(fx))[..., None])
  out = out * (rows(vy) & cols(vx))[..., None].astype(out.dtype)
  return out.reshape(len(boxes), ph, sampling, pw, sampling, -1).mean(axis=(2, 4))


def run_region(args) -> str:
  """RoIAlign and RoIPool: 512 boxes, 7x7 bins, sampling 2 on (2, 50, 68,
  256) maps (a stride-16 FPN-less detector on an 800 x 1088 image), against
  torch's ``grid_sample`` construction and the naive JAX gather."""
  if torch is not None:
    torch.set_num_threads(os.cpu_count() or 1)
  shape, count, scale = (2, 50, 68, 256), 512, 1 / 16
  rng = np.random.default_rng(0)
  x_np = rng.standard_normal(shape).astype(np.float32)
  centre = rng.uniform((0, 0), (1088, 800), (count, 2))
  half = rng.uniform(16, 300, (count, 2))
  boxes_np = np.concatenate([rng.integers(0, 2, (count, 1)), centre - half, centre + half],
                            axis=1).astype(np.float32)
  x, boxes = jnp.asarray(x_np), jnp.asarray(boxes_np)
  cot_np = rng.standard_normal((count, 7, 7, shape[-1])).astype(np.float32)
  ops = {
      "roi_align sampling 2": (
          lambda v, b: jaxpool.roi_align(v, b, 7, spatial_scale=scale, sampling_ratio=2),
          lambda t, b: torch_roi_align(t, b, (7, 7), scale, 2, False)),
      "naive JAX gather, sampling 2": (
          lambda v, b: naive_roi_align(v, b, (7, 7), scale, 2), None),
      "roi_align adaptive (jit bound)": (
          lambda v, b: jaxpool.roi_align(v, b, 7, spatial_scale=scale), None),
      "roi_pool": (lambda v, b: jaxpool.roi_pool(v, b, 7, spatial_scale=scale), None),
  }
  fns, memory = {}, {}
  reference = None
  for name, (ours, theirs) in ops.items():
    fns[(name, "f")], fns[(name, "b")], memory[name] = jax_callables(ours, x, jnp.asarray(cot_np), boxes)
    if theirs is not None and torch is not None:
      xt = torch.tensor(x_np).permute(0, 3, 1, 2)
      gt = torch.tensor(cot_np).permute(0, 3, 1, 2)
      bt = torch.tensor(boxes_np)

      def both(xt=xt, gt=gt, bt=bt, theirs=theirs):
        leaf = xt.detach().requires_grad_()
        theirs(leaf, bt).backward(gt)

      fns[(name, "torch")] = both
      reference = theirs(xt, bt).permute(0, 2, 3, 1).numpy()
  if reference is not None:
    for name in ("roi_align sampling 2", "naive JAX gather, sampling 2"):
      error = float(np.abs(np.asarray(jax.jit(ops[name][0])(x, boxes)) - reference).max())
      print(f"{name}: max |jax - torch| = {error:.2e}", flush=True)
  return _torch_table(fns, ops, memory, args,
                      f"Maps {shape} float32, {count} boxes (half-sizes 16-300 px on an 800 x 1088"
                      " image, some partly outside), 7x7 bins, spatial_scale 1/16, a non-constant"
                      " cotangent; torch: its ops (grid_sample, NCHW) with torchvision's rules."
                      " Temp is XLA's temp memory of the jitted fwd+bwd / the maps' bytes.")


def _naive_stochastic_pool(x, key):
  """The textbook JAX route: 2x2 patches, ``jax.random.categorical``, gather."""
  b, h, w, c = x.shape
  patches = x.reshape(b, h // 2, 2, w // 2, 2, c).transpose(0, 1, 3, 5, 2, 4)
  patches = patches.reshape(b, h // 2, w // 2, c, 4)
  choice = jax.random.categorical(key, jnp.log(patches + 1e-12), axis=-1)
  return jnp.take_along_axis(patches, choice[..., None], axis=-1)[..., 0]


def run_stochastic(args) -> str:
  """The random family (training mode, fixed key) against max pooling, torch's
  fractional max pooling (same samples) and a naive JAX stochastic pool."""
  if torch is not None:
    torch.set_num_threads(os.cpu_count() or 1)
  shape = (32, 64, 64, 64)
  rng = np.random.default_rng(0)
  x_np = np.abs(rng.standard_normal(shape)).astype(np.float32)
  x = jnp.asarray(x_np)
  key = jax.random.key(0)
  samples_np = rng.random((shape[0], shape[-1], 2), dtype=np.float32)  # torch layout
  samples = jnp.asarray(samples_np.transpose(0, 2, 1)[:, ::-1])
  frac_out = (45, 45)  # ratio ~ 1/sqrt(2), Graham's setting
  ops = {
      "max_pool 2x2/2": (lambda v, key, samples: jaxpool.max_pool(v, (2, 2)), None),
      "mixed_pool 2x2/2": (
          lambda v, key, samples: jaxpool.mixed_pool(v, (2, 2), key=key), None),
      "stochastic_pool 2x2/2": (
          lambda v, key, samples: jaxpool.stochastic_pool(v, (2, 2), key=key), "naive"),
      "stochastic_pool 2x2/2, inference": (
          lambda v, key, samples: jaxpool.stochastic_pool(v, (2, 2)), None),
      "s3_pool s2, grid 16": (
          lambda v, key, samples: jaxpool.s3_pool(v, (2, 2), grid_shape=(16, 16), key=key),
          None),
      "fractional 64->45, k2": (
          lambda v, key, samples: jaxpool.fractional_max_pool(
              v, (2, 2), output_shape=frac_out, samples=samples), "torch"),
      "fractional 64->45, k2, inference": (
          lambda v, key, samples: jaxpool.fractional_max_pool(
              v, (2, 2), output_shape=frac_out), None),
      "fractional 64->45, pseudorandom overlapping": (
          lambda v, key, samples: jaxpool.fractional_max_pool(
              v, output_shape=frac_out, regions="pseudorandom", overlapping=True,
              key=key), None),
  }
  fns, memory = {}, {}
  _, fns["naive"], _ = jax_callables(
      _naive_stochastic_pool, x, jnp.ones((32, 32, 32, 64)), key
  )
  for name, (fn, _) in ops.items():
    cot = jnp.ones(jax.eval_shape(fn, x, key, samples).shape, jnp.float32)
    fns[(name, "f")], fns[(name, "b")], memory[name] = jax_callables(
        fn, x, cot, key, samples
    )
  if torch is not None:
    gt_np = np.ones((shape[0],) + frac_out + (shape[-1],), np.float32)
    st = torch.from_numpy(samples_np)
    for layout, fmt in torch_layouts(2).items():
      xt, gt = torch_tensors(x_np, gt_np, torch.float32, "cpu", fmt)

      def both(xt=xt, gt=gt):
        leaf = xt.detach().requires_grad_()
        F.fractional_max_pool2d(leaf, 2, output_size=frac_out, _random_samples=st).backward(gt)

      fns[("torch", layout)] = both
  t = interleaved_medians(fns, args.repeats)
  naive_b = t["naive"]
  torch_frac = fastest_torch(t)
  rows, base = [], None
  for name, (_, other) in ops.items():
    f, b, mem = t[(name, "f")], t[(name, "b")], memory[name]
    base = base or b
    versus = {"naive": f"{b / naive_b:.2f} (naive JAX {1e3 * naive_b:.1f} ms)",
              "torch": f"{b / torch_frac:.2f} (torch {1e3 * torch_frac:.1f} ms)"}.get(other, "")
    rows.append(f"| {name} | {1e3 * f:.2f} | {1e3 * b:.2f} | {b / base:.2f} | {versus} | {fmt_mem(mem)} |")
    print(rows[-1], flush=True)
  device = jax.devices()[0].device_kind
  header = [
      f"Device: {device} ({jax.default_backend()}), {os.cpu_count()} CPU threads;"
      f" jax {jax.__version__}, torch {torch.__version__ if torch else 'absent'};"
      f" median of {args.repeats} repeats in interleaved rounds after warm-up. Input {shape} float32"
      " (non-negative), training mode with a fixed key unless marked inference.",
      "",
      "Ratios are fwd+bwd time / jaxpool max_pool 2x2/2's fwd+bwd, and / the"
      " reference named (torch `fractional_max_pool2d` with the same samples in"
      " its faster layout; a naive JAX stochastic pool: patches +"
      " `jax.random.categorical` + gather). Temp is XLA's temp memory of the"
      " jitted fwd+bwd / the input's bytes.",
      "",
      "| operator | fwd ms | fwd+bwd ms | / max_pool | / reference | temp |",
      "|---|---|---|---|---|---|",
  ]
  return "\n".join(header + rows) + "\n"


KEEP_MEMORY = {
    "MALLOC_ARENA_MAX": "1",
    "MALLOC_MMAP_THRESHOLD_": "2000000000",
    "MALLOC_TRIM_THRESHOLD_": "4000000000",
    "MALLOC_TOP_PAD_": "536870912",
}


def _conv(v, w):
  return jax.lax.conv_general_dilated(
      v, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
  )


def _naive_soft_pool(x):
  """SoftPool by plain autodiff of ``sum(e^x x) / sum(e^x)`` over windows."""
  e = jnp.exp(x - jax.lax.stop_gradient(x.max()))
  return jaxpool.avg_pool(e * x, (2, 2)) / jaxpool.avg_pool(e, (2, 2))


def run_training(args) -> str:
  """What a training step pays for its pooling, in XLA temp memory.

  The step is conv -> relu -> pool -> conv with gradients to both kernels,
  the loss a dot with a target (a jit argument, so no cotangent is a folded
  constant). Reported: temp bytes of that step minus the same step with a 2x2
  strided slice in place of the pool, as a multiple of the activation's bytes,
  and the step's time against the slice step's.
  """
  shape = (32, 64, 64, 64)
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.standard_normal(shape).astype(np.float32))
  w = jnp.asarray(0.05 * rng.standard_normal((3, 3, 64, 64)).astype(np.float32))
  target = jnp.asarray(rng.standard_normal((32, 32, 32, 64)).astype(np.float32))
  logits = jnp.asarray(rng.standard_normal(shape).astype(np.float32))
  pools = {
      "strided slice (baseline)": lambda h: h[:, ::2, ::2, :],
      "jaxpool.max_pool 2x2": lambda h: jaxpool.max_pool(h, (2, 2)),
      "jaxpool.avg_pool 2x2": lambda h: jaxpool.avg_pool(h, (2, 2)),
      "jaxpool.soft_pool 2x2": lambda h: jaxpool.soft_pool(h, (2, 2)),
      "jaxpool.lip_pool 2x2 (fixed logits)": lambda h: jaxpool.lip_pool(h, logits, (2, 2)),
      "jaxpool.lp_pool 2x2, p=3": lambda h: jaxpool.lp_pool(h, (2, 2), p=3.0),
      "flax.linen.max_pool 2x2": lambda h: linen.max_pool(h, (2, 2), (2, 2)),
      "naive SoftPool (autodiff)": _naive_soft_pool,
  }
  fns, temps = {}, {}
  for name, pool in pools.items():
    def loss(w1, w2, v, t, pool=pool):
      return jnp.vdot(_conv(pool(jax.nn.relu(_conv(v, w1))), w2), t)
    step = jax.jit(jax.grad(loss, argnums=(0, 1)))
    memory = step.lower(w, w, x, target).compile().memory_analysis()
    temps[name] = None if memory is None else memory.temp_size_in_bytes / x.nbytes
    fns[name] = lambda step=step: jax.block_until_ready(step(w, w, x, target))
  t = interleaved_medians(fns, args.repeats)
  base_name = "strided slice (baseline)"
  rows = []
  for name in pools:
    extra = None if temps[name] is None else temps[name] - temps[base_name]
    rows.append(
        f"| {name} | {1e3 * t[name]:.1f} | {t[name] / t[base_name]:.2f} |"
        f" {fmt_mem(temps[name])} | {'' if extra is None else f'{extra:+.2f}x'} |"
    )
    print(rows[-1], flush=True)
  header = [
      device_line(args),
      "",
      "Training step: conv3x3 -> relu -> pool -> conv3x3 on (32, 64, 64, 64)"
      " float32, gradients to both kernels, loss a dot with a target passed as"
      " a jit argument. Extra temp: the step's XLA temp bytes minus the"
      " strided-slice step's, over the activation's bytes.",
      "",
      "| pool | step ms | / slice step | temp | extra temp |",
      "|---|---|---|---|---|",
  ]
  return "\n".join(header + rows) + "\n"


def allocator_line(args) -> str:
  """The allocator setting and the cost of one fresh input-sized output."""
  x = jnp.ones((32, 64, 64, 64), jnp.float32)
  double = jax.jit(lambda v: v * 2)
  fresh = interleaved_medians(
      {"fresh": lambda: double(x).block_until_ready()}, args.repeats
  )["fresh"]
  setting = (
      "glibc malloc keeps freed memory (`--malloc keep`: "
      + ", ".join(f"{k}={v}" for k, v in KEEP_MEMORY.items()) + ")"
      if args.malloc == "keep" else "glibc malloc defaults"
  )
  return (
      f"Allocator: {setting}. Fresh output: a jitted `x * 2` on a (32, 64, 64,"
      f" 64) float32 input (32 MiB in, 32 MiB out) takes {1e3 * fresh:.2f} ms"
      " here; every fwd+bwd below writes a fresh input-sized gradient."
  )


SUITES = {"classic": ("results", run), "weighted": ("results-weighted", run_weighted),
          "stochastic": ("results-stochastic", run_stochastic),
          "training": ("results-training", run_training),
          "lifting": ("results-lifting", run_lifting),
          "dynamic": ("results-dynamic", run_dynamic),
          "second_order": ("results-second-order", run_second_order),
          "pyramid": ("results-pyramid", run_pyramid),
          "region": ("results-region", run_region)}


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--quick", action="store_true", help="only the (32, 64, 64, 64) cases")
  parser.add_argument("--suite", choices=tuple(SUITES), default="classic",
                      help="classic pooling vs torch/flax; SoftPool/LIP vs avg and the torch"
                      " formula; the random family vs max pooling, torch and naive JAX;"
                      " a training step's temp memory per pooling; LiftPool vs avg/max;"
                      " DynOPool vs torch's grid_sample; second-order heads vs torch formulas;"
                      " large stride-1 windows, SPP block and SPPF vs torch; RoIAlign/RoIPool"
                      " vs torch's grid_sample and a naive JAX gather")
  parser.add_argument("--repeats", type=int, default=15)
  parser.add_argument("--out", type=pathlib.Path, default=None,
                      help="markdown output (default: benchmarks/results[-gpu].md)")
  parser.add_argument("--peak-gbs", type=float, default=3350.0,
                      help="device peak memory bandwidth in GB/s (H100 SXM: 3350)")
  parser.add_argument("--malloc", choices=("default", "keep"), default="default",
                      help="'keep': re-run with glibc keeping freed memory, which removes"
                      " the page faults of fresh large outputs from both libraries")
  args = parser.parse_args(argv)
  if args.malloc == "keep" and any(os.environ.get(k) != v for k, v in KEEP_MEMORY.items()):
    # glibc reads these once, at start-up: run this script again with them.
    os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **KEEP_MEMORY})
  stem, suite = SUITES[args.suite]
  text = allocator_line(args) + "\n\n" + suite(args)
  if args.malloc == "keep":
    stem += "-malloc-keep"
  out = args.out or pathlib.Path(__file__).with_name(
      f"{stem}-gpu.md" if jax.default_backend() == "gpu" else f"{stem}.md"
  )
  out.write_text(f"# jaxpool benchmark\n\nCommand: `python benchmarks/run.py {' '.join(sys.argv[1:])}`\n\n" + text)
  print("\n" + text)
  print(f"wrote {out}")


if __name__ == "__main__":
  main()
