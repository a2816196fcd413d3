"""The trainer's report: per-pooling summaries, the table and the plot."""

from __future__ import annotations

import json
import os
import pathlib

import jax
import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from examples.train.data import Data  # noqa: E402
from examples.train.parallel import Parallel  # noqa: E402


def summarise(per_seed: dict) -> dict:
  """Mean and std (over seeds, ``ddof=0``) of the runs of one pooling."""
  accuracies = np.array([r["test_accuracy"] for r in per_seed.values()])
  train = np.array([r["train_accuracy"] for r in per_seed.values()])
  curves = np.array([r["accuracy_per_epoch"] for r in per_seed.values()])
  return {
    "test_accuracy_mean": float(accuracies.mean()),
    "test_accuracy_std": float(accuracies.std()),
    "train_accuracy_mean": float(train.mean()),
    "train_accuracy_std": float(train.std()),
    "accuracy_per_epoch_mean": curves.mean(axis=0).tolist(),
    "step_time_ms": float(np.median([r["step_time_ms"] for r in per_seed.values()])),
    "train_time_s_mean": float(np.mean([r["train_time_s"] for r in per_seed.values()])),
    "seeds": per_seed,
  }


def ranked(results: dict) -> list[str]:
  """Pooling names, best mean test accuracy first; ties by name. The table
  and the plot both use this order."""
  return sorted(results, key=lambda name: (-results[name]["test_accuracy_mean"], name))


def plural(count: int, noun: str) -> str:
  return f"{count} {noun}" + ("" if count == 1 else "s")


def table(results: dict, seeds: int) -> str:
  """Markdown table, best mean accuracy first."""
  accuracy = "test accuracy" + (f" (mean ± std, {seeds} seeds)" if seeds > 1 else "")
  lines = [
    f"| pooling | {accuracy} | step time (ms) | train time per seed (s) |",
    "|---|---|---|---|",
  ]
  for pool in ranked(results):
    r = results[pool]
    value = f"{r['test_accuracy_mean']:.4f}"
    if seeds > 1:
      value += f" ± {r['test_accuracy_std']:.4f}"
    lines.append(f"| {pool} | {value} | {r['step_time_ms']:.2f} | {r['train_time_s_mean']:.1f} |")
  return "\n".join(lines)


HIGHLIGHT, CONTEXT = "tab:blue", "0.82"


def plot(results: dict, title: str, path: pathlib.Path) -> None:
  """Small multiples of the test accuracy per epoch (left: one panel per
  pooling, best first, the others in grey behind it; left out after a single
  epoch) and the final accuracy as a dot plot (right: positions, not bar
  lengths, so the axis need not start at 0; with several seeds, whiskers of
  ± one std)."""
  names = ranked(results)
  seeds = max(len(results[n]["seeds"]) for n in names)
  accuracy = "test accuracy" + (f" (mean of {seeds} seeds)" if seeds > 1 else "")
  curves = {n: np.asarray(results[n]["accuracy_per_epoch_mean"]) for n in names}
  epochs = np.arange(1, max(len(c) for c in curves.values()) + 1)
  columns = min(6, len(names))
  rows = -(-len(names) // columns)
  height = max(4.0, 1.7 * rows + 1.2, 0.25 * len(names) + 1.5)
  if len(epochs) == 1:
    fig = plt.figure(figsize=(7.0, height), layout="constrained")
    fig.suptitle(title, fontsize=10)
    final_accuracy_dots(fig, results, names, "Final accuracy", seeds)
  else:
    fig = plt.figure(figsize=(2.1 * columns + 5.0, height), layout="constrained")
    left, right = fig.subfigures(1, 2, width_ratios=[2.1 * columns, 5.0])
    panels = left.subplots(rows, columns, sharex=True, sharey=True, squeeze=False)
    for panel, name in zip(panels.flat, names):
      for other in names:
        if other != name:
          panel.plot(epochs[: len(curves[other])], curves[other], color=CONTEXT, linewidth=0.8)
      panel.plot(
        epochs[: len(curves[name])], curves[name], color=HIGHLIGHT, linewidth=2, marker="o", ms=3
      )
      panel.set_title(f"{name}  {results[name]['test_accuracy_mean']:.3f}", fontsize=9)
      panel.grid(alpha=0.3)
    for panel in panels.flat[len(names) :]:
      panel.set_visible(False)
    panels[0, 0].set_xlim(0.5, epochs[-1] + 0.5)
    panels[0, 0].set_xticks(epochs[:: -(-len(epochs) // 5)])
    left.supxlabel("epoch")
    left.supylabel(accuracy)
    left.suptitle(f"{title}: {accuracy} per epoch, best first")
    final_accuracy_dots(right, results, names, "Final accuracy", seeds)
  fig.savefig(path, dpi=100)
  plt.close(fig)


def final_accuracy_dots(fig, results: dict, names: list[str], title: str, seeds: int) -> None:
  """One dot per pooling, best at the top; whiskers of ± one std over seeds."""
  dots = fig.subplots()
  means = np.array([results[n]["test_accuracy_mean"] for n in names])
  stds = np.array([results[n]["test_accuracy_std"] for n in names])
  positions = np.arange(len(names))
  dots.errorbar(
    means,
    positions,
    xerr=stds if seeds > 1 else None,
    fmt="o",
    color=HIGHLIGHT,
    ecolor="0.3",
    capsize=3,
  )
  dots.set_yticks(positions, names)
  dots.invert_yaxis()
  dots.grid(alpha=0.3)
  spread = ", mean ± std" if seeds > 1 else ""
  dots.set(xlabel=f"final test accuracy{spread}\n(the axis does not start at 0)", title=title)


def write_report(results: dict, data: Data, args, parallel: Parallel) -> None:
  args.out.mkdir(parents=True, exist_ok=True)
  config = {k: str(v) if isinstance(v, pathlib.Path) else v for k, v in vars(args).items()}
  config.update(devices=parallel.size, backend=jax.default_backend(), cpu_count=os.cpu_count())
  (args.out / "results.json").write_text(
    json.dumps({"config": config, "results": results}, indent=2)
  )
  text = table(results, args.seeds)
  last = args.seed + args.seeds - 1
  seeds = f"seed {args.seed}" if args.seeds == 1 else f"seeds {args.seed}..{last}"
  (args.out / "results.md").write_text(
    f"{data.describe()}; {plural(args.epochs, 'epoch')}; {seeds};"
    f" head {args.head}; {parallel.describe()}.\n\n{text}\n"
  )
  title = f"{data.describe()}, {plural(args.epochs, 'epoch')}"
  plot(results, title, args.out / "accuracy.png")
  print("\n" + text)
  print(f"\nwrote {args.out / 'results.json'}, results.md and accuracy.png")
