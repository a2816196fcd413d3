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


def table(results: dict, seeds: int) -> str:
  """Markdown table, best mean accuracy first."""
  accuracy = "test accuracy" + (f" (mean ± std, {seeds} seeds)" if seeds > 1 else "")
  lines = [
    f"| pooling | {accuracy} | step time (ms) | train time per seed (s) |",
    "|---|---|---|---|",
  ]
  for pool, r in sorted(results.items(), key=lambda kv: -kv[1]["test_accuracy_mean"]):
    value = f"{r['test_accuracy_mean']:.4f}"
    if seeds > 1:
      value += f" ± {r['test_accuracy_std']:.4f}"
    lines.append(f"| {pool} | {value} | {r['step_time_ms']:.2f} | {r['train_time_s_mean']:.1f} |")
  return "\n".join(lines)


MARKERS = ("o", "s", "^", "D", "v", "P", "X")  # 7 markers x 20 colours: 140 pairs


def style(i: int) -> dict:
  """A distinct (colour, marker) pair per pooling: tab20's colours cycle
  every 20, the 7 markers every 7, so pairs repeat only after 140."""
  return {"color": plt.get_cmap("tab20")(i % 20), "marker": MARKERS[i % len(MARKERS)]}


def plot(results: dict, title: str, path: pathlib.Path) -> None:
  """Mean accuracy per epoch (left) and final accuracy, sorted, with the
  std over seeds as error bars (right); one legend outside the axes."""
  names = sorted(results, key=lambda n: results[n]["test_accuracy_mean"])
  styles = {name: style(i) for i, name in enumerate(sorted(results))}
  height = max(4.5, 0.28 * len(names) + 1.5)
  fig, (curves, bars) = plt.subplots(
    1, 2, figsize=(14, height), gridspec_kw={"width_ratios": [1.3, 1]}
  )
  for name in reversed(names):  # legend: best first
    curve = results[name]["accuracy_per_epoch_mean"]
    curves.plot(
      np.arange(1, len(curve) + 1), curve, label=name, markersize=4, linewidth=1.2, **styles[name]
    )
  curves.set(xlabel="epoch", ylabel="test accuracy (mean over seeds)", title=title)
  curves.grid(alpha=0.3)
  means = np.array([results[n]["test_accuracy_mean"] for n in names])
  stds = np.array([results[n]["test_accuracy_std"] for n in names])
  rows = np.arange(len(names))
  bars.barh(
    rows,
    means,
    xerr=stds,
    color=[styles[n]["color"] for n in names],
    capsize=3,
    error_kw={"elinewidth": 1},
  )
  for row, name in enumerate(names):
    bars.plot(
      means[row], row, linestyle="none", markeredgecolor="black", markersize=5, **styles[name]
    )
  labels = [
    f"{n}  {m:.3f}" + (f" ± {d:.3f}" if len(results[n]["seeds"]) > 1 else "")
    for n, m, d in zip(names, means, stds)
  ]
  bars.set_yticks(rows, labels, fontsize=8)
  low = max(0.0, float((means - stds).min()) - 0.05)
  bars.set(
    xlim=(low, 1.0), xlabel="final test accuracy (± std over seeds)", title="Final accuracy, sorted"
  )
  bars.grid(axis="x", alpha=0.3)
  fig.legend(
    *curves.get_legend_handles_labels(),
    loc="center left",
    bbox_to_anchor=(1.0, 0.5),
    fontsize=8,
    title="pooling (best first)",
  )
  fig.tight_layout()
  fig.savefig(path, dpi=110, bbox_inches="tight")
  plt.close(fig)


def write_report(results: dict, data: Data, args, parallel: Parallel) -> None:
  args.out.mkdir(parents=True, exist_ok=True)
  config = {k: str(v) if isinstance(v, pathlib.Path) else v for k, v in vars(args).items()}
  config.update(devices=parallel.size, backend=jax.default_backend(), cpu_count=os.cpu_count())
  (args.out / "results.json").write_text(
    json.dumps({"config": config, "results": results}, indent=2)
  )
  text = table(results, args.seeds)
  (args.out / "results.md").write_text(
    f"{data.describe()}; {args.epochs} epochs; seeds {args.seed}..{args.seed + args.seeds - 1};"
    f" head {args.head}; {parallel.describe()}.\n\n{text}\n"
  )
  title = f"{data.describe()}, {args.seeds} seed(s)"
  plot(results, title, args.out / "accuracy.png")
  print("\n" + text)
  print(f"\nwrote {args.out / 'results.json'}, results.md and accuracy.png")
