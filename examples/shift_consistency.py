"""Zhang's shift-consistency claim: MaxBlurPool against max pooling on digits.

Zhang ("Making Convolutional Networks Shift-Invariant Again", ICML 2019)
reports that anti-aliasing the downsampling (MaxBlurPool: max pooling at
stride 1, then a binomial blur at stride 2) makes a CNN's predictions more
consistent under shifts of its input, without hurting accuracy (on ImageNet
it improves both).

Here the digits CNN of ``examples/train/`` (three 3x3 conv + 2x2 pooling
stages, widths 16, 32, 64) is trained twice per seed, identically but for
its pooling: ``max`` (``jaxpool.max_pool``, 2x2 stride 2) and ``maxblur``
(``jaxpool.max_blur_pool(x, (2, 2), 2)``, the registry's ``maxblur``: the
2x2 max at stride 1, then the 3-tap binomial blur ``[1, 2, 1] / 4``, Zhang's
"Tri-3", at stride 2 with reflect padding, antialiased-cnns' default
``pad_type``). The classifier reads the map
through a global average pooling (``--head average``, as Zhang's ResNets,
DenseNets and MobileNets; a flattening head is a position-sensitive
classifier no pooling can make shift-invariant; ``--head flatten`` runs it).

Data: scikit-learn's bundled 8x8 digits (no download), the trainer's fixed
stratified 80/20 split (1437 train, 360 test), each digit placed in the
middle of a zero 16x16 canvas. The 4-pixel margin is the largest shift
measured, so a circular shift by up to 4 pixels moves the digit at most to
the canvas edge and never wraps it: on these canvases a circular shift is a
plain translation. 16 is also a multiple of 8, the network's total stride.

Two trainings, each for both poolings and every seed:

* ``centred``: the centred digits only (no augmentation), so whatever shift
  consistency a network has comes from its architecture. The verdict of
  ``examples.reproduce`` is judged on this one.
* ``augmented``: each training image circularly shifted at random by up to
  4 pixels per axis (Zhang's ImageNet networks train with random crops):
  does the difference survive when the data teaches the invariance too?

Consistency: Zhang's "classification consistency" compares the predictions
for two random shifts of an image; here each shift is compared with the
unshifted image, exhaustively per distance. For each test digit and each circular shift ``(dy, dx)`` at
Chebyshev distance ``d = max(|dy|, |dx|)`` from 1 to 4 (every one of the
``8 d`` shifts at that distance, 80 in all; deterministic, no sampling), the
fraction of (digit, shift) pairs whose predicted class equals the unshifted
digit's prediction. "Overall" pools the 80 shifts (28,800 pairs). Reported
per seed and as mean ± std over ``--seeds``, with test accuracy on the
unshifted canvases and on the shifted ones.

Writes ``results.json``, ``results.md`` and ``consistency.png`` (consistency
against shift distance, ± std, both poolings, one panel per training) under
``--out``.

Usage:
  python -m examples.shift_consistency             # full run: 3 seeds, 20 epochs
  python -m examples.shift_consistency --quick     # a smoke run, about 25 s

The full run (both trainings, 12 networks) took 1 min 40 s on the otherwise
idle 2-core CPU machine (2 min 17 s while it was shared with other work).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import time

import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402

from examples import train as digits  # noqa: E402
from examples.train.run import epoch_order  # noqa: E402

POOLS = ("max", "maxblur")
LABELS = {
  "max": "max_pool 2x2/2",
  "maxblur": "max_blur_pool (2x2 max /1, 3-tap blur /2, reflect)",
}
# The trainings compared: the claim is judged on "centred" (no augmentation);
# "augmented" checks whether the difference survives shift augmentation.
TRAININGS = {
  "centred": "on centred digits only",
  "augmented": "on random shifts of up to 4 px",
}
CANVAS = 16
DISTANCES = (1, 2, 3, 4)


def canvases(images: np.ndarray, canvas: int = CANVAS) -> np.ndarray:
  """``(N, 8, 8, 1)`` digits in the middle of zero ``(N, canvas, canvas, 1)``
  canvases."""
  margin = (canvas - images.shape[1]) // 2
  out = np.zeros((len(images), canvas, canvas, 1), np.float32)
  out[:, margin : margin + images.shape[1], margin : margin + images.shape[2]] = images
  return out


def shifts_at(distance: int) -> list[tuple[int, int]]:
  """Every ``(dy, dx)`` with ``max(|dy|, |dx|) == distance`` (``8 distance``)."""
  r = range(-distance, distance + 1)
  return [(dy, dx) for dy in r for dx in r if max(abs(dy), abs(dx)) == distance]


@nnx.jit
def predict(model, images):
  return jnp.argmax(model(images), axis=-1)


def random_shifts(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  """Each image circularly shifted by its own ``(dy, dx)``, uniform in
  ``[-4, 4]`` per axis."""
  n, h, w = images.shape[:3]
  dy, dx = rng.integers(-DISTANCES[-1], DISTANCES[-1] + 1, (2, n, 1, 1))
  rows = (np.arange(h)[None, :, None] - dy) % h
  cols = (np.arange(w)[None, None, :] - dx) % w
  return images[np.arange(n)[:, None, None], rows, cols]


def train(pool: str, seed: int, data, args, *, augment: bool) -> nnx.Module:
  """The CNN with ``pool``, trained from seed ``seed`` (the trainer's
  initialisation, Adam and batch order), on randomly shifted batches if
  ``augment``."""
  model = digits.CNN(pool, spatial=data["x_train"].shape[1:-1], head=args.head, rngs=nnx.Rngs(seed))
  optimizer = nnx.Optimizer(model, digits.adam(args.lr), wrt=nnx.Param)
  x, y = data["x_train"], data["y_train"]
  steps = len(x) // args.batch_size
  shift_rng = np.random.default_rng([seed, 1])
  for epoch in range(args.epochs):
    order = epoch_order(seed, epoch, len(x))
    for i in range(steps):
      batch = order[i * args.batch_size : (i + 1) * args.batch_size]
      images = random_shifts(x[batch], shift_rng) if augment else x[batch]
      digits.train_step(model, optimizer, images, y[batch])
  return model


def evaluate(model, x: np.ndarray, y: np.ndarray) -> dict:
  """Accuracy, and consistency and accuracy per shift distance and overall."""
  base = np.asarray(predict(model, x))
  same = {d: [] for d in DISTANCES}
  right = {d: [] for d in DISTANCES}
  for d in DISTANCES:
    for dy, dx in shifts_at(d):
      guess = np.asarray(predict(model, np.roll(x, (dy, dx), axis=(1, 2))))
      same[d].append(guess == base)
      right[d].append(guess == y)
  pooled = lambda table: float(np.mean(np.concatenate([np.ravel(v) for v in table.values()])))  # noqa: E731
  return {
    "accuracy": float(np.mean(base == y)),
    "consistency": {str(d): float(np.mean(same[d])) for d in DISTANCES} | {"overall": pooled(same)},
    "shifted_accuracy": {str(d): float(np.mean(right[d])) for d in DISTANCES}
    | {"overall": pooled(right)},
  }


def _stats(values: list[float]) -> dict:
  return {"mean": float(np.mean(values)), "std": float(np.std(values)), "per_seed": values}


def summarise(runs: list[dict]) -> dict:
  """Mean, std and per-seed values of every measurement over the seeds."""
  keys = list(runs[0]["consistency"])
  return {
    "accuracy": _stats([r["accuracy"] for r in runs]),
    "consistency": {k: _stats([r["consistency"][k] for r in runs]) for k in keys},
    "shifted_accuracy": {k: _stats([r["shifted_accuracy"][k] for r in runs]) for k in keys},
  }


def markdown(results: dict, args, y_test: np.ndarray) -> str:
  def cell(s):
    return f"{100 * s['mean']:.2f} ± {100 * s['std']:.2f}"

  columns = [str(d) for d in DISTANCES] + ["overall"]
  header = "| training | pooling | " + " | ".join(
    f"d = {c}" if c != "overall" else c for c in columns
  )
  rule = "|---|---|" + "---|" * len(columns)
  lines = [
    "# Shift consistency: MaxBlurPool vs max pooling (Zhang 2019)",
    "",
    "Command: `python -m examples.shift_consistency`",
    "",
    f"Digits CNN of examples/train/ (head {args.head}) on 8x8 digits centred on zero"
    f" {CANVAS}x{CANVAS} canvases; {args.epochs} epochs of Adam (lr {args.lr}, batch"
    f" {args.batch_size}); {args.seeds} seed(s), {len(y_test)} test digits, mean ± std in %."
    " Consistency: how often"
    " the predicted class of a test digit circularly shifted by (dy, dx),"
    " max(|dy|, |dx|) = d, equals its unshifted prediction (every shift at each distance;"
    " overall: all 80 shifts). Training: on the centred digits only, or on batches shifted"
    " at random by up to 4 pixels per axis.",
    "",
    header + " | test accuracy |",
    rule + "---|",
  ]
  for training, by_pool in results.items():
    for pool, r in by_pool.items():
      lines.append(
        f"| {training} | {pool} | "
        + " | ".join(cell(r["consistency"][c]) for c in columns)
        + f" | {cell(r['accuracy'])} |"
      )
  lines += ["", "Accuracy on the shifted test digits:", "", header + " |", rule]
  for training, by_pool in results.items():
    for pool, r in by_pool.items():
      lines.append(
        f"| {training} | {pool} | "
        + " | ".join(cell(r["shifted_accuracy"][c]) for c in columns)
        + " |"
      )
  return "\n".join(lines) + "\n"


def figure(results: dict, path: pathlib.Path, seeds: int) -> None:
  # Separate y scales: the augmented networks differ by about a point.
  fig, axes = plt.subplots(1, len(results), figsize=(9, 3.9), layout="constrained")
  for axis, (training, by_pool) in zip(axes, results.items()):
    for pool, r in by_pool.items():
      mean = [100 * r["consistency"][str(d)]["mean"] for d in DISTANCES]
      std = [100 * r["consistency"][str(d)]["std"] for d in DISTANCES]
      axis.errorbar(DISTANCES, mean, yerr=std, marker="o", capsize=3, label=LABELS[pool])
    axis.set_title(f"trained {TRAININGS[training]}", fontsize=10)
    axis.set_xlabel("circular shift distance max(|dy|, |dx|) (pixels)")
    axis.set_xticks(DISTANCES)
    axis.grid(alpha=0.3)
  axes[0].set_ylabel("prediction unchanged by the shift (%)")
  fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=2, fontsize=8)
  fig.suptitle(
    f"Shift consistency on digits ({CANVAS}x{CANVAS} canvases), mean ± std over {seeds} seed(s)",
    fontsize=10,
  )
  fig.savefig(path, dpi=110)
  plt.close(fig)


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--epochs", type=int, default=20)
  parser.add_argument("--seeds", type=int, default=3)
  parser.add_argument("--batch-size", type=int, default=64)
  parser.add_argument("--lr", type=float, default=3e-3)
  parser.add_argument("--head", choices=("average", "flatten"), default="average")
  parser.add_argument(
    "--test-digits",
    type=int,
    default=None,
    help="evaluate on the first N test digits (default all)",
  )
  parser.add_argument(
    "--quick", action="store_true", help="a smoke run: 1 epoch, 2 seeds, 60 test digits"
  )
  parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("runs/shift"))
  args = parser.parse_args(argv)
  if args.quick:
    args.epochs, args.seeds, args.test_digits = 1, 2, 60
  args.out.mkdir(parents=True, exist_ok=True)

  source = digits.load_data("digits", 8)  # the trainer's split, at 8x8
  data = {
    "x_train": canvases(source.x_train),
    "y_train": source.y_train,
    "x_test": canvases(source.x_test[: args.test_digits]),
    "y_test": source.y_test[: args.test_digits],
  }
  results = {}
  for training in TRAININGS:
    results[training] = {}
    for pool in POOLS:
      started = time.perf_counter()
      runs = []
      for seed in range(args.seeds):
        model = train(pool, seed, data, args, augment=training == "augmented")
        runs.append(evaluate(model, data["x_test"], data["y_test"]))
      r = results[training][pool] = summarise(runs)
      r["seconds"] = time.perf_counter() - started
      print(
        f"{training:>9} {pool:>8}: consistency {r['consistency']['overall']['mean']:.4f}"
        f" ± {r['consistency']['overall']['std']:.4f}, accuracy {r['accuracy']['mean']:.4f}"
        f" ± {r['accuracy']['std']:.4f} ({r['seconds']:.0f} s)",
        flush=True,
      )

  table = markdown(results, args, data["y_test"])
  print("\n" + table)
  (args.out / "results.md").write_text(table)
  (args.out / "results.json").write_text(
    json.dumps({"settings": vars(args) | {"out": str(args.out)}, "results": results}, indent=2)
  )
  figure(results, args.out / "consistency.png", args.seeds)
  print(f"wrote {args.out / 'results.md'}, .json and consistency.png")
  return results


if __name__ == "__main__":
  main()
