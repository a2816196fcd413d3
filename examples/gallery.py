"""The pooling gallery: one bundled image pooled by every window operator.

scikit-image's bundled astronaut (RGB, resized to 128x128) goes through each
of jaxpool's poolings that maps an image to an image, with a 4x4 window and
stride 4 where the operator has a window (fixed, untrained parameters where
it has learned ones; a fixed key where it is random), and is shown at the
output's resolution, side by side. The global heads (covariance, bilinear,
compact bilinear, NetVLAD, SPP) return vectors and are not shown.

Usage:
  python -m examples.gallery                 # writes docs/gallery.png
  python -m examples.gallery --out /tmp/g
"""

from __future__ import annotations

import argparse
import pathlib

import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import skimage.data  # noqa: E402

import jaxpool  # noqa: E402

SIZE, K = 128, 4
WINDOW = (K, K)


def load_image() -> jax.Array:
  """The astronaut, RGB in [0, 1], ``(SIZE, SIZE, 3)``."""
  image = skimage.data.astronaut().astype(np.float32) / 255.0
  return jax.image.resize(jnp.asarray(image), (SIZE, SIZE, 3), "linear")


def operators(key: jax.Array) -> dict:
  """name -> function of the ``(1, SIZE, SIZE, 3)`` image, returning an image."""
  keys = iter(jax.random.split(key, 8))
  ones = jnp.ones((3,))

  def indices_round_trip(x):
    values, indices = jaxpool.max_pool_with_indices(x, WINDOW)
    return jaxpool.max_unpool(values, indices, (SIZE, SIZE))

  def lift_round_trip(x):
    bands = jaxpool.lift_down_pool(x)
    return jaxpool.lift_up_pool((bands.LL,) + tuple(jnp.zeros_like(b) for b in bands[1:]))

  def roi_crop(x):  # the face, a box in pixel corners
    boxes = jnp.array([[0, 40.0, 8.0, 72.0, 40.0]]) * jnp.array(
      [1, SIZE / 128, SIZE / 128, SIZE / 128, SIZE / 128]
    )
    return jaxpool.roi_align(x, boxes, (32, 32), sampling_ratio=2, aligned=True)

  def lift(x):
    for _ in range(2):  # two 2x2 lifts: a 4x stride like the others
      x = sum(jaxpool.lift_down_pool(x))
    return x

  return {
    "input": lambda x: x,
    "max_pool": lambda x: jaxpool.max_pool(x, WINDOW),
    "min_pool": lambda x: jaxpool.min_pool(x, WINDOW),
    "avg_pool": lambda x: jaxpool.avg_pool(x, WINDOW),
    "lp_pool p=4, / 16^(1/4)": lambda x: jaxpool.lp_pool(x, WINDOW, p=4.0) / 16**0.25,
    "gem_pool p=3": lambda x: jaxpool.gem_pool(x, 3.0, WINDOW),
    "lse_pool r=10": lambda x: jaxpool.lse_pool(x, 10.0, WINDOW),
    "median_pool": lambda x: jaxpool.median_pool(x, WINDOW),
    "avg_max_pool": lambda x: jaxpool.avg_max_pool(x, WINDOW),
    # Anti-aliased: the binomial filter one tap wider than the window (the
    # registry's rule), timm's padding.
    "blur_pool 5x5/4": lambda x: jaxpool.blur_pool(x, (K + 1, K + 1), K, K // 2),
    "max_blur_pool 4x4/1, blur 5x5/4": lambda x: jaxpool.max_blur_pool(
      x, WINDOW, K, blur_shape=K + 1
    ),
    "soft_pool": lambda x: jaxpool.soft_pool(10.0 * x, WINDOW) / 10.0,
    "lip_pool logits=10x": lambda x: jaxpool.lip_pool(x, 10.0 * x, WINDOW),
    "dpp_pool": lambda x: jaxpool.dpp_pool(x, ones, ones, WINDOW),
    "gated_pool": lambda x: jaxpool.gated_pool(x, jnp.full(WINDOW + (3,), 0.5), WINDOW),
    "mixed_pool (training)": lambda x: jaxpool.mixed_pool(x, WINDOW, key=next(keys)),
    "stochastic_pool (training)": lambda x: jaxpool.stochastic_pool(x, WINDOW, key=next(keys)),
    "stochastic_pool (inference)": lambda x: jaxpool.stochastic_pool(x, WINDOW),
    "s3_pool (training)": lambda x: jaxpool.s3_pool(x, WINDOW, grid_shape=(8, 8), key=next(keys)),
    "fractional_max_pool 0.3": lambda x: jaxpool.fractional_max_pool(
      x, (2, 2), output_ratio=0.3, key=next(keys)
    ),
    "lift_down_pool x2, sum of bands": lift,
    "lift_down_pool x2, LL band": lambda x: jaxpool.lift_down_pool(jaxpool.lift_down_pool(x).LL).LL,
    "dyno_pool 40x24": lambda x: jaxpool.dyno_pool(x, (40, 24)),
    "adaptive_max_pool 24x40": lambda x: jaxpool.adaptive_max_pool(x, (24, 40)),
    "adaptive_avg_pool 24x40": lambda x: jaxpool.adaptive_avg_pool(x, (24, 40)),
    "max_pool 13x13/1 (spp_block)": lambda x: jaxpool.spp_block(x, (13,))[..., 3:],
    "max_unpool(max_pool_with_indices)": indices_round_trip,
    "lift_up_pool(LL, zero details)": lift_round_trip,
    "roi_align, the face": roi_crop,
    "roi_pool, the face": lambda x: jaxpool.roi_pool(
      x, jnp.array([[0, 40.0, 8.0, 72.0, 40.0]]), (32, 32)
    ),
  }


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument(
    "--out",
    type=pathlib.Path,
    default=pathlib.Path(__file__).resolve().parents[1] / "docs",
    help="folder for gallery.png (default docs)",
  )
  parser.add_argument("--seed", type=int, default=0, help="key of the random poolings")
  args = parser.parse_args(argv)
  x = load_image()[None]
  panels = {name: np.asarray(fn(x))[0] for name, fn in operators(jax.random.key(args.seed)).items()}
  columns = 6
  rows = -(-len(panels) // columns)
  fig, axes = plt.subplots(
    rows, columns, figsize=(2.3 * columns, 2.55 * rows + 0.4), layout="constrained"
  )
  for ax in axes.ravel():
    ax.axis("off")
  for ax, (name, image) in zip(axes.ravel(), panels.items()):
    ax.imshow(np.clip(image, 0.0, 1.0), interpolation="nearest")
    ax.set_title(f"{name}\n{image.shape[0]}x{image.shape[1]}", fontsize=7.5)
  fig.suptitle(
    f"scikit-image's astronaut at {SIZE}x{SIZE}, window {K}x{K} stride {K} unless named",
    fontsize=11,
  )
  args.out.mkdir(parents=True, exist_ok=True)
  fig.savefig(args.out / "gallery.png", dpi=110)
  plt.close(fig)
  print(f"wrote {args.out / 'gallery.png'} ({len(panels)} panels)")
  return {name: image.shape for name, image in panels.items()}


if __name__ == "__main__":
  main()
