"""The benchmark harness: rows, timing, memory, devices, compile-only facts.

A suite (``benchmarks/suites/*.py``) declares its `Row` s once. Each row
then runs on every target:

* ``cpu`` / ``gpu`` (`time_rows`): the jitted forward and
  forward+backward (``jax.vjp`` with a non-constant cotangent) of jaxpool, of
  the JAX baseline a user would otherwise write (Flax's ``reduce_window``
  pooling or the formula with autodiff), and of torch, on the device JAX runs
  on (torch on CUDA when JAX is on a GPU; torch is left out when it cannot
  use that device). Times are medians of repeats in interleaved rounds after
  warm-up (`interleaved_medians`); temp memory is XLA's
  ``memory_analysis()`` of the jitted forward+backward;
* ``tpu-v5e`` / ``h200`` (`compile_rows`): the same programs compiled by
  XLA's TPU or GPU compiler on this host, without the hardware: run-time
  conditionals, temp memory, fusions and, on TPU, the cost model's bytes
  accessed and time estimate. Compile-time facts, not timings.

``tables.py`` writes either as markdown tables.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import re
import statistics
import sys
import time
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

try:
  import torch
except ImportError:  # torch is optional: its columns are left empty
  torch = None

HERE = pathlib.Path(__file__).resolve().parent
AOT = pathlib.Path(os.environ.get("JAXPOOL_AOT", pathlib.Path.home() / ".cache" / "aot"))
COMPILE_TARGETS = {
  "tpu-v5e": ("TPU_LIBRARY_PATH", AOT / "tpu" / "libtpu" / "libtpu.so"),
  "h200": ("PYTHONPATH", AOT / "cuda"),
}
KEEP_MEMORY = {
  "MALLOC_ARENA_MAX": "1",
  "MALLOC_MMAP_THRESHOLD_": "2000000000",
  "MALLOC_TRIM_THRESHOLD_": "4000000000",
  "MALLOC_TOP_PAD_": "536870912",
}
"""glibc settings that keep freed memory (``--malloc keep``)."""


@dataclasses.dataclass(frozen=True)
class Row:
  """One benchmarked program, declared once for every target.

  Attributes:
    name: the row's label.
    fn: jaxpool's program, ``fn(x, *args) -> y``.
    shape: ``x``'s shape (channels-last).
    dtype: ``x``'s dtype.
    args: ``args(rng) -> tuple`` of extra jit arguments (logits, keys,
      boxes, learned parameters); jit arguments, not closed-over constants
      XLA could fold.
    grad_args: differentiate in ``args`` too (a learned parameter).
    positive: draw ``x`` as ``|normal|`` instead of normal.
    baseline: the same math as a user would write it in JAX, same signature.
    baseline_name: what the baseline is.
    torch: torch's program ``torch(xt, *targs)``; ``xt`` is ``x`` in torch's
      layout on the torch device, ``targs`` are ``args`` as tensors there
      (``None`` for JAX keys).
    torch_layout: ``"nc"`` (channels-first ``xt``, timed in the contiguous and
      the channels-last memory format; the faster counts) or ``"nhwc"`` (``x``
      as it is, for formulas written on channels-last rows).
  """

  name: str
  fn: Callable
  shape: tuple[int, ...]
  dtype: str = "float32"
  args: Callable[[np.random.Generator], tuple] | None = None
  grad_args: bool = False
  positive: bool = False
  baseline: Callable | None = None
  baseline_name: str = ""
  torch: Callable | None = None
  torch_layout: str = "nc"


@dataclasses.dataclass(frozen=True)
class Suite:
  """Rows and what their table says.

  Attributes:
    name: the ``--suite`` name.
    rows: ``rows() -> list[Row]`` (built lazily: rows import torch ops).
    note: the table's note paragraph (inputs, references).
    reference: the row every fwd+bwd time is divided by (``/ reference``).
    table: for a suite that is not rows of one operator (a whole training
      step): ``table(repeats) -> markdown``, run instead of the rows.
  """

  name: str
  rows: Callable[[], list[Row]]
  note: str
  reference: str | None = None
  table: Callable[[int], str] | None = None

  @property
  def stem(self) -> str:
    return "results" if self.name == "classic" else "results-" + self.name.replace("_", "-")


# ---------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------


def inputs(row: Row, seed: int = 0):
  """``(x, args, cotangent)`` of a row as NumPy arrays (keys stay JAX keys)."""
  rng = np.random.default_rng(seed)
  x = rng.standard_normal(row.shape).astype(np.float32)
  if row.positive:
    x = np.abs(x)
  args = tuple(row.args(rng)) if row.args else ()
  jx = jnp.asarray(x, row.dtype)
  y = jax.eval_shape(row.fn, jx, *args)
  cot = rng.standard_normal(y.shape).astype(np.float32)
  return x, args, cot


# ---------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------


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


def jax_callables(fn, x, cot, args=(), grad_args=False):
  """``(forward, forward_backward, temp)`` for ``fn(x, *args)``.

  The first two are zero-argument callables running the jitted forward and
  forward+backward (returning ``y`` too, as a training step needs it) to
  completion; ``temp`` is XLA's temp bytes of the forward+backward as a
  multiple of ``x``'s bytes (``None`` where the backend reports none).
  """
  forward = jax.jit(fn)

  def forward_backward(v, g, *rest):
    if grad_args:
      y, pullback = jax.vjp(fn, v, *rest)
    else:
      y, pullback = jax.vjp(lambda u: fn(u, *rest), v)
    return y, pullback(g)

  both = jax.jit(forward_backward)
  memory = both.lower(x, cot, *args).compile().memory_analysis()
  temp = None if memory is None else memory.temp_size_in_bytes / x.nbytes
  return (
    lambda: jax.block_until_ready(forward(x, *args)),
    lambda: jax.block_until_ready(both(x, cot, *args)),
    temp,
  )


def torch_device() -> str | None:
  """torch's device beside JAX's: ``"cuda"`` when JAX runs on a GPU (``None``
  if torch cannot use it: a CPU torch time beside a GPU JAX time compares
  nothing), else ``"cpu"``."""
  if torch is None:
    return None
  if jax.default_backend() == "gpu":
    return "cuda" if torch.cuda.is_available() else None
  return "cpu"


def _torch_layouts(row: Row) -> dict:
  nd = len(row.shape) - 2
  if row.torch_layout == "nhwc":
    return {"as is": None}
  layouts = {"NC...": torch.contiguous_format}
  if nd in (2, 3):
    layouts["channels-last"] = {2: torch.channels_last, 3: torch.channels_last_3d}[nd]
  return layouts


def _to_torch(a: np.ndarray, device, dtype, channels_first: bool, memory_format):
  if channels_first and a.ndim >= 3:
    a = a.transpose((0, a.ndim - 1) + tuple(range(1, a.ndim - 1)))
  t = torch.from_numpy(np.ascontiguousarray(a)).to(device=device, dtype=dtype)
  return t.contiguous(memory_format=memory_format) if memory_format is not None else t


def torch_callables(row: Row, x, args, cot, device) -> dict:
  """``{layout: forward_backward}``: torch's program on ``device``, the input
  in each of its layouts, ``backward`` with the row's cotangent."""
  sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
  dtype = getattr(torch, row.dtype)
  targs = tuple(
    torch.from_numpy(np.asarray(a)).to(device) if isinstance(a, np.ndarray) else None for a in args
  )
  out = {}
  for name, fmt in _torch_layouts(row).items():
    first = row.torch_layout == "nc"
    xt = _to_torch(x, device, dtype, first, fmt)
    gt = _to_torch(cot, device, dtype, first, fmt if cot.ndim == x.ndim else None)

    def both(xt=xt, gt=gt):
      leaf = xt.detach().requires_grad_()
      row.torch(leaf, *targs).backward(gt)
      sync()

    out[name] = both
  return out


def time_rows(rows: Sequence[Row], repeats: int) -> dict:
  """Times every row (jaxpool, baseline, torch) in one set of interleaved
  rounds. Returns ``{row name: {"f", "b", "temp", "base_b", "base_temp",
  "torch_b"}}`` in seconds (absent entries are ``None``); a row whose
  program the compiler rejects is ``{"failed": True}`` (reported on stderr),
  so the others are still timed."""
  if torch is not None:
    torch.set_num_threads(os.cpu_count() or 1)
  device = torch_device()
  fns, temps, failed = {}, {}, set()
  for row in rows:
    x, args, cot = inputs(row)
    jx, jcot = jnp.asarray(x, row.dtype), jnp.asarray(cot, row.dtype)
    jargs = jax.tree.map(lambda a: jnp.asarray(a) if isinstance(a, np.ndarray) else a, args)
    try:
      fns[row.name, "f"], fns[row.name, "b"], temps[row.name] = jax_callables(
        row.fn, jx, jcot, jargs, row.grad_args
      )
    except Exception as error:  # noqa: BLE001 (a compiler's rejection: the row says so)
      print(f"{row.name}: compile failed: {_first_line(error)}", file=sys.stderr, flush=True)
      failed.add(row.name)
      continue
    if row.baseline is not None:
      try:
        _, fns[row.name, "base"], temps[row.name, "base"] = jax_callables(
          row.baseline, jx, jcot, jargs, row.grad_args
        )
      except Exception as error:  # noqa: BLE001 (as above: that column stays empty)
        print(f"{row.name} baseline: compile failed: {_first_line(error)}", file=sys.stderr)
    if row.torch is not None and device is not None:
      for layout, fn in torch_callables(row, x, args, cot, device).items():
        fns[row.name, "torch", layout] = fn
  t = interleaved_medians(fns, repeats)
  results = {}
  for row in rows:
    if row.name in failed:
      results[row.name] = {"failed": True}
      continue
    torch_times = [v for key, v in t.items() if key[0] == row.name and key[1] == "torch"]
    results[row.name] = {
      "f": t[row.name, "f"],
      "b": t[row.name, "b"],
      "temp": temps[row.name],
      "base_b": t.get((row.name, "base")),
      "base_temp": temps.get((row.name, "base")),
      "torch_b": min(torch_times) if torch_times else None,
    }
  return results


# ---------------------------------------------------------------------------
# Compile-only targets
# ---------------------------------------------------------------------------


def _target_mesh(target: str):
  from jax.experimental import topologies

  if target == "tpu-v5e":
    topo = topologies.get_topology_desc(platform="tpu", topology_name="v5e:2x2")
  else:
    topo = topologies.get_topology_desc(
      platform="cuda", target_config=(HERE / "h200.txtpb").read_text(), topology="1x1x1"
    )
  return topologies.make_mesh(topo, (len(topo.devices),), ("x",))


def _facts(compiled) -> dict:
  text = compiled.as_text()
  cost = compiled.cost_analysis()
  if isinstance(cost, (list, tuple)):
    cost = cost[0] if cost else None
  seconds = (cost or {}).get("optimal_seconds")
  return {
    "cond": text.count(" conditional("),
    "temp": compiled.memory_analysis().temp_size_in_bytes,
    "fusions": len(re.findall(r"\bfusion\(", text)) or text.count("kind=k"),
    "bytes": (cost or {}).get("bytes accessed"),
    "seconds": seconds if seconds is None or seconds > 0 else "failed",
  }


def _first_line(error: Exception) -> str:
  text = str(error).strip()
  return text.splitlines()[0] if text else type(error).__name__


def _compiled_facts(target: str, name: str, traced) -> dict:
  """`_facts` of ``traced()`` lowered and compiled; a compiler error (XLA's
  GPU compiler rejects some programs) is reported on stderr and recorded
  as "compile failed" in the row, so the other rows still compile."""
  try:
    return _facts(traced().lower().compile())
  except Exception as error:  # noqa: BLE001 (any compiler error)
    print(f"{target}: {name}: compile failed: {_first_line(error)}", file=sys.stderr, flush=True)
    return {"cond": "compile failed", "temp": None, "fusions": "", "bytes": None, "seconds": None}


def compile_rows(rows: Sequence[Row], target: str) -> dict:
  """Every row's forward and forward+backward, jaxpool's and the baseline's,
  compiled for ``target`` on this host. Returns ``{row name: {(who, pass):
  facts}}`` with ``who`` in ``("jaxpool", "baseline")``."""
  from jax.sharding import NamedSharding, PartitionSpec

  replicated = NamedSharding(_target_mesh(target), PartitionSpec())

  def spec(tree):
    def leaf(a):
      a = jnp.asarray(a) if isinstance(a, np.ndarray) else a
      return jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=replicated)

    return jax.tree.map(leaf, tree)

  results = {}
  for row in rows:
    x, args, cot = inputs(row)
    sx, scot = spec(jnp.asarray(x, row.dtype)), spec(jnp.asarray(cot, row.dtype))
    sargs = tuple(spec(a) for a in args)
    facts = {}
    for who, fn in (("jaxpool", row.fn), ("baseline", row.baseline)):
      if fn is None:
        continue

      def backward(v, c, *rest, fn=fn):
        if row.grad_args:
          return jax.vjp(fn, v, *rest)[1](c)
        return jax.vjp(lambda u: fn(u, *rest), v)[1](c)

      facts[who, "fwd"] = _compiled_facts(target, row.name, lambda: jax.jit(fn).trace(sx, *sargs))
      facts[who, "fwd+bwd"] = _compiled_facts(
        target, row.name, lambda: jax.jit(backward).trace(sx, scot, *sargs)
      )
    results[row.name] = facts
    print(f"{target}: {row.name}", flush=True)
  return results
