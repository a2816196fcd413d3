"""DynOPool's toy experiments (Jang et al., CVPR 2022, section 3) on digits.

A small CNN whose three poolings are all ``jaxpool.nnx.DynOPool`` (each
initialised to halve, ``r = 0.5``) is trained with optax on three variants of
scikit-learn's bundled 8x8 digits (no download), each 32x32:

* ``stretched``: the digit enlarged to 64x32 (twice as tall as wide) and
  randomly cropped to 32x32, so the information is spread along H: the
  anisotropy experiment (the paper stretches CIFAR-100 vertically).
* ``tiled``: the digit tiled 4x4 at its native 8x8 size: dense local
  detail (the paper's down-scaled images tiled into a 4x4 grid).
* ``enlarged``: the digit enlarged to 32x32: sparse detail, the same
  information spread over 16 times the area (the paper's down-scaled and
  re-enlarged images).

The network ends in global average pooling, so it accepts any learned size.
The loss adds the paper's complexity term (``--complexity`` times the
straight-through MACs of the convolutions after each pooling, relative to the
initial network). Between steps ``jaxpool.nnx.sync_dyno_shapes`` re-rounds
the sizes every ``--sync-every`` steps; the jitted step re-traces only when a
size changes, and the script counts the traces.

Reported per dataset: test accuracy, the learned ratio ``r = out / in`` per
layer and axis (its inverse is the cell, i.e. the receptive-field step, in
input pixels), the final sizes, the relative MACs and the number of traces;
``dynopool.png`` plots ``r`` per layer and axis over training.

Usage:
  python -m examples.dynopool_anisotropy             # full run (a few minutes)
  python -m examples.dynopool_anisotropy --quick     # a smoke run
"""

from __future__ import annotations

import argparse
import json
import pathlib
import time

import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from flax import nnx  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

import jaxpool  # noqa: E402
from jaxpool import nnx as jpnnx  # noqa: E402

DATASETS = ("stretched", "tiled", "enlarged")
WIDTHS = (16, 32, 64)
SIZE = 32


def _resize(images: np.ndarray, shape) -> np.ndarray:
  return np.asarray(jax.image.resize(jnp.asarray(images), (len(images), *shape), "bilinear"))


def make_dataset(name: str, images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  """``(N, 32, 32, 1)`` float32 images of one toy dataset from 8x8 digits."""
  if name == "stretched":
    tall = _resize(images, (2 * SIZE, SIZE))
    top = rng.integers(0, SIZE + 1, len(images))
    return np.stack([t[o : o + SIZE] for t, o in zip(tall, top)])[..., None]
  if name == "tiled":
    return np.tile(images, (1, SIZE // 8, SIZE // 8))[..., None]
  if name == "enlarged":
    return _resize(images, (SIZE, SIZE))[..., None]
  raise ValueError(f"unknown dataset {name!r}; expected one of {DATASETS}.")


class DynoCNN(nnx.Module):
  """conv3x3 -> DynOPool, three times, then global average pooling and a
  linear classifier. ``macs`` of each pooling: the (G)MACs of the next
  convolution at the initial size (the last pooling's: the head's)."""

  def __init__(self, *, complexity: float, rngs: nnx.Rngs):
    self.convs, self.pools = nnx.List(), nnx.List()
    features, side = 1, SIZE
    widths = WIDTHS + (WIDTHS[-1],)
    macs = []
    for i, width in enumerate(WIDTHS):
      self.convs.append(nnx.Conv(features, width, (3, 3), rngs=rngs))
      side //= 2
      following = 9 * width * widths[i + 1] if i + 1 < len(WIDTHS) else width
      macs.append(side * side * following / 1e6)
      features = width
    total = sum(macs)
    for m in macs:  # normalised: the initial network's MACs after pooling sum to 1
      self.pools.append(jpnnx.DynOPool(macs=m / total, complexity_weight=complexity))
    self.head = nnx.Linear(features, 10, rngs=rngs)

  def __call__(self, x):
    for conv, pool in zip(self.convs, self.pools):
      x = pool(nnx.relu(conv(x)))
    return self.head(jaxpool.global_avg_pool(x))


def run(name: str, data, args) -> dict:
  x_train, x_test, y_train, y_test = data
  model = DynoCNN(complexity=args.complexity, rngs=nnx.Rngs(args.seed))
  optimizer = nnx.Optimizer(model, optax.adam(args.lr), wrt=nnx.Param)
  traces = []

  def loss_fn(model, images, labels):
    logits = model(images)
    task = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
    return task + jpnnx.auxiliary_loss(model), task

  @nnx.jit
  def train_step(model, optimizer, images, labels):
    traces.append(1)  # runs once per trace: counts the compilations
    (_, task), grads = nnx.value_and_grad(loss_fn, has_aux=True)(model, images, labels)
    optimizer.update(model, grads)
    return task

  @nnx.jit
  def accuracy(model, images, labels):
    return jnp.mean(jnp.argmax(model(images), axis=-1) == labels)

  rng = np.random.default_rng(args.seed)
  steps_per_epoch = len(x_train) // args.batch_size
  history = {"step": [], "ratio": [], "size": []}
  step, start, changes = 0, time.perf_counter(), 0
  for _ in range(args.epochs):
    order = rng.permutation(len(x_train))
    for i in range(steps_per_epoch):
      batch = order[i * args.batch_size : (i + 1) * args.batch_size]
      with jax.numpy_dtype_promotion("standard"):  # optax's int32 step count
        train_step(model, optimizer, x_train[batch], y_train[batch])
      step += 1
      if step % args.sync_every == 0:
        changes += len(jpnnx.sync_dyno_shapes(model))
        history["step"].append(step)
        history["ratio"].append([p.ratio().tolist() for p in model.pools])
        history["size"].append(_sizes(model))
  final_accuracy = float(accuracy(model, x_test, y_test))
  sizes = _sizes(model)
  return {
    "test_accuracy": final_accuracy,
    "ratio": [p.ratio().tolist() for p in model.pools],
    "sizes": sizes,
    "relative_macs": float(
      sum(
        p.macs * np.prod(s) / np.prod(s0) for p, s, s0 in zip(model.pools, sizes, _initial_sizes())
      )
    ),
    "traces": len(traces),
    "size_changes": changes,
    "train_time_s": time.perf_counter() - start,
    "history": history,
  }


def _initial_sizes():
  return [(SIZE // 2 ** (i + 1),) * 2 for i in range(len(WIDTHS))]


def _sizes(model) -> list[list[int]]:
  """Each pooling's current output size, layer by layer (the input of one
  layer is the output of the previous one)."""
  sizes, side = [], (SIZE, SIZE)
  for pool in model.pools:
    side = pool.output_shape(side)
    sizes.append(list(side))
  return sizes


def plot(results: dict, path: pathlib.Path) -> None:
  fig, axes = plt.subplots(1, len(results), figsize=(5 * len(results), 3.8), sharey=True)
  axes = np.atleast_1d(axes)
  colours = plt.get_cmap("tab10")
  for ax, (name, result) in zip(axes, results.items()):
    steps = result["history"]["step"]
    ratios = np.asarray(result["history"]["ratio"])  # (time, layer, axis)
    for layer in range(ratios.shape[1]):
      for axis, style in ((0, "-"), (1, "--")):
        ax.plot(
          steps,
          ratios[:, layer, axis],
          style,
          color=colours(layer),
          label=f"pool {layer + 1} {'H' if axis == 0 else 'W'}",
        )
    ax.set(title=f"{name}: acc {result['test_accuracy']:.3f}", xlabel="step")
    ax.grid(alpha=0.3)
  axes[0].set_ylabel("learned r = out / in")
  axes[-1].legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def markdown(results: dict, args) -> str:
  lines = [
    f"{args.epochs} epochs, complexity weight {args.complexity}, sync every"
    f" {args.sync_every} steps, seed {args.seed}; backend {jax.default_backend()}.",
    "",
    "| dataset | test accuracy | r (H, W) per pooling | sizes after each pooling |"
    " relative MACs | size changes | traces |",
    "|---|---|---|---|---|---|---|",
  ]
  for name, r in results.items():
    ratios = "; ".join(f"{h:.2f}, {w:.2f}" for h, w in r["ratio"])
    sizes = " -> ".join(f"{h}x{w}" for h, w in r["sizes"])
    lines.append(
      f"| {name} | {r['test_accuracy']:.4f} | {ratios} | 32x32 -> {sizes} |"
      f" {r['relative_macs']:.2f} | {r['size_changes']} | {r['traces']} |"
    )
  return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument(
    "--dataset",
    action="append",
    choices=DATASETS,
    help="toy dataset (repeatable); default: all three",
  )
  parser.add_argument("--epochs", type=int, default=15)
  parser.add_argument("--batch-size", type=int, default=64)
  parser.add_argument("--lr", type=float, default=3e-3)
  parser.add_argument(
    "--complexity", type=float, default=0.1, help="weight of the complexity loss (relative MACs)"
  )
  parser.add_argument(
    "--sync-every", type=int, default=10, help="steps between sync_dyno_shapes calls"
  )
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("runs/dynopool"))
  parser.add_argument("--quick", action="store_true", help="a smoke run: 2 epochs")
  args = parser.parse_args(argv)
  if args.quick:
    args.epochs = 2
  if args.epochs < 1 or args.sync_every < 1:
    parser.error("--epochs and --sync-every must be >= 1")
  digits = load_digits()
  images = (digits.images / 16.0).astype(np.float32)
  rng = np.random.default_rng(args.seed)
  results = {}
  for name in args.dataset or DATASETS:
    x = make_dataset(name, images, rng)
    data = train_test_split(
      x,
      digits.target.astype(np.int32),
      test_size=0.2,
      random_state=args.seed,
      stratify=digits.target,
    )
    results[name] = run(name, data, args)
    r = results[name]
    print(
      f"{name}: accuracy {r['test_accuracy']:.4f}, r {np.round(r['ratio'], 2).tolist()},"
      f" sizes {r['sizes']}, traces {r['traces']}",
      flush=True,
    )
  args.out.mkdir(parents=True, exist_ok=True)
  config = {k: str(v) if isinstance(v, pathlib.Path) else v for k, v in vars(args).items()}
  (args.out / "results.json").write_text(
    json.dumps({"config": config, "results": results}, indent=2)
  )
  table = markdown(results, args)
  (args.out / "results.md").write_text(table)
  plot(results, args.out / "dynopool.png")
  print("\n" + table)
  print(f"wrote {args.out / 'results.json'}, results.md and dynopool.png")
  return results


if __name__ == "__main__":
  main()
