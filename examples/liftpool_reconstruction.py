"""LiftPool's two claims on bundled data: refined up-pooling, robustness.

1. Reconstruction. A small convolutional encoder-decoder (two down and two up
   poolings, the same conv widths everywhere) is trained with optax to
   reproduce 32x32 grayscale patches of scikit-image's bundled images; the
   held-out patches come from scikit-learn's two bundled sample images. Only
   the down/up pair varies:

   * max pooling + ``max_unpool`` with the stored indices;
   * average pooling + nearest upsampling;
   * average pooling + bilinear upsampling;
   * ``lift_down_pool`` + ``lift_up_pool`` with the fixed LeGall 5/3 wavelet;
   * ``LiftDownPool`` + ``LiftUpPool`` with learned predict/update (and the
     paper's constraint losses).

   The encoder continues with the approximation band ``LL``; the matching up
   pooling takes the decoder's map in place of ``LL`` and the detail bands the
   down pooling stored (the analogue of unpooling with indices). Reported:
   PSNR and SSIM on the held-out patches, and a PNG panel.

2. Robustness. The digits CNN of ``examples/train/`` with ``lift``, ``max``
   and ``avg`` pooling, evaluated on clean test digits, with Gaussian noise and
   shifted by 1 and 2 pixels.

Usage:
  python -m examples.liftpool_reconstruction                 # full run
  python -m examples.liftpool_reconstruction --quick         # a smoke run

Writes ``results.json``, ``results.md`` and ``reconstruction.png`` under
``--out`` (default ``runs/liftpool``) and prints the tables.
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
import skimage.data  # noqa: E402
from flax import nnx  # noqa: E402
from skimage.color import rgb2gray  # noqa: E402
from skimage.metrics import structural_similarity  # noqa: E402
from sklearn.datasets import load_sample_images  # noqa: E402

import jaxpool  # noqa: E402
from examples import train as digits  # noqa: E402
from jaxpool import nnx as jpnnx  # noqa: E402

# Images shipped inside scikit-image (no download).
TRAIN_IMAGES = (
  "camera",
  "astronaut",
  "coffee",
  "chelsea",
  "rocket",
  "coins",
  "moon",
  "brick",
  "grass",
  "gravel",
  "hubble_deep_field",
  "horse",
)
PATCH = 32
WIDTHS = (16, 32)
PAIRS = ("max + unpool", "avg + nearest", "avg + bilinear", "lift LeGall 5/3", "lift learned")


def _gray(image) -> np.ndarray:
  image = np.asarray(image)
  if image.ndim == 3:
    image = rgb2gray(image[..., :3])
  image = image.astype(np.float32)
  return image / 255.0 if image.max() > 1.0 else image


def patches(images, count: int, seed: int) -> np.ndarray:
  """``count`` random ``PATCH`` x ``PATCH`` patches, ``(count, P, P, 1)``."""
  rng = np.random.default_rng(seed)
  out = np.empty((count, PATCH, PATCH, 1), np.float32)
  for i in range(count):
    image = images[rng.integers(len(images))]
    r = rng.integers(image.shape[0] - PATCH + 1)
    c = rng.integers(image.shape[1] - PATCH + 1)
    out[i, ..., 0] = image[r : r + PATCH, c : c + PATCH]
  return out


class AutoEncoder(nnx.Module):
  """conv -> down -> conv -> down -> conv -> up -> conv -> up -> conv, the same
  widths for every down/up pair."""

  def __init__(self, pair: str, *, rngs: nnx.Rngs):
    self.pair = pair
    c1, c2 = WIDTHS
    conv = lambda i, o: nnx.Conv(i, o, (3, 3), rngs=rngs)
    self.enc1, self.enc2, self.mid = conv(1, c1), conv(c1, c2), conv(c2, c2)
    self.dec2, self.dec1 = conv(c2, c1), conv(c1, 1)
    if pair == "lift learned":
      self.downs = nnx.List(
        [jpnnx.LiftDownPool(features=c, output="all", rngs=rngs) for c in WIDTHS]
      )
      self.ups = nnx.List([jpnnx.LiftUpPool(down=d) for d in self.downs])

  def down(self, level: int, x):
    """``(pooled, what the matching up pooling needs)``."""
    if self.pair == "max + unpool":
      values, indices = jaxpool.max_pool_with_indices(x, (2, 2))
      return values, (indices, x.shape[1:3])
    if self.pair.startswith("avg"):
      return jaxpool.avg_pool(x, (2, 2)), x.shape
    bands = self.downs[level](x) if self.pair == "lift learned" else jaxpool.lift_down_pool(x)
    return bands.LL, bands

  def up(self, level: int, x, stored):
    if self.pair == "max + unpool":
      indices, shape = stored
      return jaxpool.max_unpool(x, indices, shape)
    if self.pair == "avg + nearest":
      return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)
    if self.pair == "avg + bilinear":
      return jax.image.resize(x, stored[:3] + x.shape[-1:], "bilinear")
    bands = stored._replace(LL=x)
    return self.ups[level](bands) if self.pair == "lift learned" else jaxpool.lift_up_pool(bands)

  def __call__(self, x):
    h, s1 = self.down(0, nnx.relu(self.enc1(x)))
    h, s2 = self.down(1, nnx.relu(self.enc2(h)))
    h = nnx.relu(self.mid(h))
    h = nnx.relu(self.dec2(self.up(1, h, s2)))
    return self.dec1(self.up(0, h, s1))


def _reconstruction_loss(model, x):
  return jnp.mean((model(x) - x) ** 2) + jpnnx.auxiliary_loss(model)


@nnx.jit
def _step(model, optimizer, x):
  loss, grads = nnx.value_and_grad(_reconstruction_loss)(model, x)
  optimizer.update(model, grads)
  return loss


def psnr(y, x) -> np.ndarray:
  mse = np.mean((np.clip(y, 0, 1) - x) ** 2, axis=(1, 2, 3))
  return 10 * np.log10(1.0 / np.maximum(mse, 1e-12))


def ssim(y, x) -> np.ndarray:
  return np.array(
    [
      structural_similarity(np.clip(a[..., 0], 0, 1), b[..., 0], data_range=1.0)
      for a, b in zip(y, x)
    ]
  )


def reconstruction(args) -> dict:
  train_images = [_gray(getattr(skimage.data, name)()) for name in TRAIN_IMAGES]
  test_images = [_gray(image) for image in load_sample_images().images]
  x_train = patches(train_images, args.patches, args.seed)
  x_test = patches(test_images, args.test_patches, args.seed + 1)
  results, outputs = {}, {}
  for pair in PAIRS:
    model = AutoEncoder(pair, rngs=nnx.Rngs(args.seed))
    optimizer = nnx.Optimizer(model, digits.adam(args.lr), wrt=nnx.Param)
    rng = np.random.default_rng(args.seed)
    start = time.perf_counter()
    for _ in range(args.recon_epochs):
      order = rng.permutation(len(x_train))
      for i in range(len(x_train) // args.batch_size):
        loss = _step(
          model, optimizer, x_train[order[i * args.batch_size : (i + 1) * args.batch_size]]
        )
    seconds = time.perf_counter() - start
    y = np.asarray(nnx.jit(lambda m, v: m(v))(model, x_test))
    outputs[pair] = y
    results[pair] = dict(
      psnr=float(psnr(y, x_test).mean()),
      ssim=float(ssim(y, x_test).mean()),
      train_loss=float(loss),
      train_seconds=seconds,
    )
    print(
      f"{pair:>16}: PSNR {results[pair]['psnr']:.2f} dB, SSIM {results[pair]['ssim']:.3f}",
      flush=True,
    )
  _panel(x_test, outputs, results, args.out / "reconstruction.png")
  return results


def _panel(x, outputs, results, path, count=6):
  """The held-out patches with the most structure (largest standard
  deviation; flat sky and black frames show nothing) and every pair's
  reconstruction of them, one row per pair, labelled with its mean PSNR."""
  chosen = np.argsort(-x.reshape(len(x), -1).std(axis=1))[:count]
  rows = ["input"] + list(outputs)
  fig, axes = plt.subplots(
    len(rows), count, figsize=(1.9 * count + 1.4, 1.9 * len(rows)), layout="constrained"
  )
  for r, name in enumerate(rows):
    images = x if name == "input" else outputs[name]
    for c, index in enumerate(chosen):
      axes[r, c].imshow(np.clip(images[index, ..., 0], 0, 1), cmap="gray", vmin=0, vmax=1)
      axes[r, c].set_xticks([])
      axes[r, c].set_yticks([])
      if r == 0:
        axes[r, c].set_title(f"held-out patch {index}", fontsize=10)
    label = name if name == "input" else f"{name}\n{results[name]['psnr']:.1f} dB"
    axes[r, 0].set_ylabel(label, fontsize=11)
  fig.suptitle("Reconstructions of held-out 32x32 patches (mean PSNR over all of them)")
  fig.savefig(path, dpi=100)
  plt.close(fig)


def _shift(images, pixels: int) -> np.ndarray:
  """Shift right and down by ``pixels``, zero fill."""
  out = np.zeros_like(images)
  out[:, pixels:, pixels:] = images[:, : images.shape[1] - pixels, : images.shape[2] - pixels]
  return out


@nnx.jit
def _accuracy(model, images, labels):
  return jnp.mean(jnp.argmax(model(images), axis=-1) == labels)


def robustness(args) -> dict:
  data = digits.load_digits_data(args.size)
  x_train, x_test, y_train, y_test = data.x_train, data.x_test, data.y_train, data.y_test
  noise = np.random.default_rng(args.seed).standard_normal(x_test.shape).astype(np.float32)
  corruptions = {
    "clean": x_test,
    "noise 0.1": x_test + 0.1 * noise,
    "noise 0.2": x_test + 0.2 * noise,
    "shift 1": _shift(x_test, 1),
    "shift 2": _shift(x_test, 2),
  }
  results = {}
  for pool in ("max", "avg", "lift"):
    model = digits.CNN(pool, spatial=data.spatial, rngs=nnx.Rngs(args.seed))
    optimizer = nnx.Optimizer(model, digits.adam(args.lr), wrt=nnx.Param)
    rng = np.random.default_rng(args.seed)
    for _ in range(args.digit_epochs):
      order = rng.permutation(len(x_train))
      for i in range(len(x_train) // args.batch_size):
        batch = order[i * args.batch_size : (i + 1) * args.batch_size]
        digits.train_step(model, optimizer, x_train[batch], y_train[batch])
    results[pool] = {
      name: float(_accuracy(model, images, y_test)) for name, images in corruptions.items()
    }
    print(f"{pool:>5}: " + ", ".join(f"{k} {v:.3f}" for k, v in results[pool].items()), flush=True)
  return results


def markdown(recon: dict, robust: dict, args) -> str:
  lines = [
    f"Reconstruction: {args.patches} training patches ({PATCH}x{PATCH}, grayscale) from"
    f" scikit-image's bundled images, {args.test_patches} held-out patches from"
    f" scikit-learn's sample images; {args.recon_epochs} epochs of Adam"
    f" (lr {args.lr}), seed {args.seed}.",
    "",
    "| down / up | held-out PSNR (dB) | held-out SSIM | final train loss | train time (s) |",
    "|---|---|---|---|---|",
  ]
  for pair, r in recon.items():
    lines.append(
      f"| {pair} | {r['psnr']:.2f} | {r['ssim']:.3f} | {r['train_loss']:.4f} | {r['train_seconds']:.1f} |"
    )
  names = list(next(iter(robust.values())))
  lines += [
    "",
    f"Robustness: digits CNN of examples/train/, {args.digit_epochs} epochs; test accuracy.",
    "",
    "| pooling | " + " | ".join(names) + " |",
    "|---|" + "---|" * len(names),
  ]
  for pool, r in robust.items():
    lines.append(f"| {pool} | " + " | ".join(f"{r[n]:.3f}" for n in names) + " |")
  return "\n".join(lines) + "\n"


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("runs/liftpool"))
  parser.add_argument("--patches", type=int, default=2048)
  parser.add_argument("--test-patches", type=int, default=512)
  parser.add_argument("--recon-epochs", type=int, default=8)
  parser.add_argument("--digit-epochs", type=int, default=10)
  parser.add_argument("--batch-size", type=int, default=64)
  parser.add_argument("--lr", type=float, default=3e-3)
  parser.add_argument("--size", type=int, default=32)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--quick", action="store_true", help="a smoke run: few patches and epochs")
  args = parser.parse_args(argv)
  if args.quick:
    args.patches, args.test_patches, args.recon_epochs, args.digit_epochs = 256, 32, 1, 1
  args.out.mkdir(parents=True, exist_ok=True)
  recon = reconstruction(args)
  robust = robustness(args)
  text = markdown(recon, robust, args)
  (args.out / "results.md").write_text(text)
  (args.out / "results.json").write_text(
    json.dumps(
      dict(
        reconstruction=recon, robustness=robust, args={k: str(v) for k, v in vars(args).items()}
      ),
      indent=2,
    )
  )
  print("\n" + text)
  print(f"wrote {args.out}/results.md, results.json and reconstruction.png")


if __name__ == "__main__":
  main()
