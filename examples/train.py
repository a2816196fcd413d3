"""Train a small CNN on scikit-learn's bundled digits, once per pooling layer.

The 8x8 digits (1797 images, bundled with scikit-learn, no download) are
upsampled to 32x32 so that three pooling stages (32 -> 16 -> 8 -> 4) make
sense. The network is Flax NNX; its pooling layers come from
``jaxpool.nnx.make_pool(name, ...)``, so every registered pooling is compared
with the same architecture, data split, seed and optimizer (optax Adam).
Poolings with training losses of their own (LiftPool's constraints) add them
through ``jaxpool.nnx.auxiliary_loss``; DynOPool's learned sizes are
re-rounded once per epoch with ``jaxpool.nnx.sync_dyno_shapes`` (the head
then average-pools to the usual 4x4 grid).

Usage:
  python examples/train.py                      # every pooling, default epochs
  python examples/train.py --pool max --pool lp --epochs 5 --out runs/digits

Writes ``results.json`` (per pooling: test accuracy, accuracy per epoch, train
time, median step time) and ``accuracy.png`` under ``--out``, and prints a
table.
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
from tqdm import tqdm  # noqa: E402

import jaxpool  # noqa: E402
from jaxpool import nnx as jpnnx  # noqa: E402


def load_data(size: int, seed: int):
  """Digits scaled to [0, 1], resized to ``size`` x ``size``, 80/20 split."""
  digits = load_digits()
  images = digits.images.astype(np.float32) / 16.0
  images = jax.image.resize(
      jnp.asarray(images)[..., None], (len(images), size, size, 1), "bilinear"
  )
  x_train, x_test, y_train, y_test = train_test_split(
      np.asarray(images), digits.target, test_size=0.2, random_state=seed,
      stratify=digits.target,
  )
  return x_train, x_test, y_train.astype(np.int32), y_test.astype(np.int32)


HEADS = ("flatten", "average", "covariance", "bilinear", "compact", "netvlad")


def make_head(head: str, features: int, rngs: nnx.Rngs):
  """The global pooling before the classifier and its output size, for
  ``features`` input features on a 4x4 map."""
  if head == "average":
    return jpnnx.GlobalAvgPool(), features
  if head == "covariance":  # iSQRT-COV with its 1x1 reduction, upper triangle
    dim = 32
    return jpnnx.CovariancePool(features=features, reduce_dim=dim, output="triu", rngs=rngs), dim * (dim + 1) // 2
  if head == "bilinear":
    return jpnnx.BilinearPool(), features ** 2
  if head == "compact":
    return jpnnx.CompactBilinearPool(features=features, output_dim=1024, rngs=rngs), 1024
  if head == "netvlad":  # k-means start from the trunk's features (train_one)
    return jpnnx.NetVLAD(features=features, clusters=16, rngs=rngs), 16 * features
  raise ValueError(f"unknown head {head!r}; expected one of {HEADS}.")


class CNN(nnx.Module):
  """Three conv + pool stages, then a global pooling head (or the flattened
  map) and a linear classifier."""

  def __init__(self, pool: str, *, size: int, head: str = "flatten", rngs: nnx.Rngs):
    widths = (16, 32, 64)
    self.convs, self.pools = nnx.List(), nnx.List()
    features = 1
    for width in widths:
      self.convs.append(nnx.Conv(features, width, (3, 3), rngs=rngs))
      layer = jpnnx.make_pool(pool, (2, 2), features=width, rngs=rngs)
      self.pools.append(layer)
      features = width * layer.feature_multiplier
    self.side = size // 2 ** len(widths)
    if head == "flatten":
      self.global_pool, size_out = None, self.side ** 2 * features
    else:
      self.global_pool, size_out = make_head(head, features, rngs)
    self.head = nnx.Linear(size_out, 10, rngs=rngs)

  def trunk(self, x):
    """The feature map before the head, ``(batch, 4, 4, features)``."""
    for conv, pool in zip(self.convs, self.pools):
      x = pool(nnx.relu(conv(x)))
    if x.shape[1:3] != (self.side, self.side):  # a learned size (DynOPool)
      x = jaxpool.adaptive_avg_pool(x, (self.side, self.side))
    return x

  def __call__(self, x):
    x = self.trunk(x)
    if self.global_pool is None:
      return self.head(x.reshape(x.shape[0], -1))
    return self.head(self.global_pool(x))


def inference_view(model: nnx.Module) -> nnx.Module:
  """The model with random poolings (mixed, stochastic, s3, fractional) in
  inference mode; ``nnx.view`` refuses a flag no submodule has."""
  if any(isinstance(m, jpnnx.RandomLayer) for _, m in nnx.iter_modules(model)):
    return nnx.view(model, deterministic=True)
  return model


def loss_fn(model, images, labels):
  """Cross-entropy plus the poolings' auxiliary losses (LiftPool's
  ``0.01 c_u + 0.1 c_p``; 0 for the others)."""
  logits = model(images)
  task = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
  return task + jpnnx.auxiliary_loss(model)


@nnx.jit
def train_step(model, optimizer, images, labels):
  loss, grads = nnx.value_and_grad(loss_fn)(model, images, labels)
  optimizer.update(model, grads)
  return loss


@nnx.jit
def accuracy(model, images, labels):
  return jnp.mean(jnp.argmax(model(images), axis=-1) == labels)


def train_one(pool: str, data, args) -> dict:
  x_train, x_test, y_train, y_test = data
  model = CNN(pool, size=args.size, head=args.head, rngs=nnx.Rngs(args.seed))
  if args.head == "netvlad":  # the official start: k-means on sample descriptors
    sample = inference_view(model).trunk(x_train[:256])
    model.global_pool.initialize(sample, key=jax.random.key(args.seed))
  optimizer = nnx.Optimizer(model, optax.adam(args.lr), wrt=nnx.Param)
  rng = np.random.default_rng(args.seed)
  steps_per_epoch = len(x_train) // args.batch_size
  step_times, curve = [], []
  start = time.perf_counter()
  bar = tqdm(
      total=args.epochs * steps_per_epoch, desc=f"{pool:>10}", mininterval=0.5
  )
  for _ in range(args.epochs):
    order = rng.permutation(len(x_train))
    for i in range(steps_per_epoch):
      batch = order[i * args.batch_size:(i + 1) * args.batch_size]
      tick = time.perf_counter()
      loss = train_step(model, optimizer, x_train[batch], y_train[batch])
      loss.block_until_ready()
      step_times.append(time.perf_counter() - tick)
      bar.update()
      bar.set_postfix(loss=f"{float(loss):.3f}")
    # DynOPool's learned sizes: re-rounded once per epoch (a re-trace only
    # when one changes); a no-op for every other pooling.
    jpnnx.sync_dyno_shapes(model)
    curve.append(float(accuracy(inference_view(model), x_test, y_test)))
  bar.close()
  train_time = time.perf_counter() - start
  return {
      "test_accuracy": curve[-1],
      "accuracy_per_epoch": curve,
      "train_time_s": train_time,
      # The first step compiles; the median of the rest is the step cost.
      "step_time_ms": 1e3 * float(np.median(step_times[1:] or step_times)),
  }


def plot(results: dict, path: pathlib.Path) -> None:
  fig, (curves, bars) = plt.subplots(1, 2, figsize=(11, 4))
  for pool, result in results.items():
    epochs = np.arange(1, len(result["accuracy_per_epoch"]) + 1)
    curves.plot(epochs, result["accuracy_per_epoch"], marker="o", label=pool)
  curves.set(xlabel="epoch", ylabel="test accuracy", title="Digits 32x32, test accuracy")
  curves.legend()
  curves.grid(alpha=0.3)
  names = list(results)
  finals = [results[n]["test_accuracy"] for n in names]
  bars.bar(names, finals)
  for i, value in enumerate(finals):
    bars.text(i, value, f"{value:.3f}", ha="center", va="bottom", fontsize=8)
  low = max(0.0, min(finals) - 0.05)
  bars.set(ylabel="final test accuracy", ylim=(low, 1.0), title="Final accuracy per pooling")
  bars.tick_params(axis="x", rotation=30)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument(
      "--pool", action="append", choices=jpnnx.available_pools(),
      help="pooling to train with (repeatable); default: every available one",
  )
  parser.add_argument("--epochs", type=int, default=10)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("runs/train"))
  parser.add_argument("--batch-size", type=int, default=64)
  parser.add_argument("--lr", type=float, default=3e-3)
  parser.add_argument("--size", type=int, default=32, help="image side after upsampling")
  parser.add_argument("--head", choices=HEADS, default="flatten",
                      help="what the classifier reads: the flattened 4x4 map (default), or a"
                      " global pooling: average, covariance (iSQRT-COV), bilinear, compact"
                      " bilinear, NetVLAD")
  args = parser.parse_args(argv)
  if args.epochs < 1:
    parser.error("--epochs must be >= 1")
  pools = args.pool or list(jpnnx.available_pools())
  data = load_data(args.size, args.seed)
  print(
      f"digits: {len(data[0])} train / {len(data[1])} test images at"
      f" {args.size}x{args.size}; {args.epochs} epochs; head {args.head}; backend"
      f" {jax.default_backend()}"
  )
  results = {}
  for pool in pools:
    results[pool] = train_one(pool, data, args)
  args.out.mkdir(parents=True, exist_ok=True)
  config = {k: str(v) if isinstance(v, pathlib.Path) else v for k, v in vars(args).items()}
  (args.out / "results.json").write_text(
      json.dumps({"config": config, "results": results}, indent=2)
  )
  plot(results, args.out / "accuracy.png")
  print("\n| pooling | test accuracy | train time (s) | step time (ms) |")
  print("|---|---|---|---|")
  for pool, r in results.items():
    print(
        f"| {pool} | {r['test_accuracy']:.4f} | {r['train_time_s']:.1f} |"
        f" {r['step_time_ms']:.2f} |"
    )
  print(f"\nwrote {args.out / 'results.json'} and {args.out / 'accuracy.png'}")
  return results


if __name__ == "__main__":
  main()
