"""Anti-aliased downsampling against average pooling, torch's depthwise
convolution after ``F.pad`` (timm's and kornia's BlurPool), and the JAX a
user would write (``jnp.pad`` + a depthwise ``conv_general_dilated``)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from flax import linen
from harness import Row, Suite, torch
from jax import lax

import jaxpool

SHAPE = (32, 64, 64, 64)
_BINOMIAL = np.array([1.0, 2.0, 1.0], np.float32) / 4
_FILTER = np.outer(_BINOMIAL, _BINOMIAL)
_MODES = {"reflect": "reflect", "zeros": "constant"}


def _jax_blur(v, mode):
  v = jnp.pad(v, ((0, 0), (1, 1), (1, 1), (0, 0)), mode=_MODES[mode])
  kernel = jnp.broadcast_to(jnp.asarray(_FILTER)[:, :, None, None], (3, 3, 1, v.shape[-1]))
  return lax.conv_general_dilated(
    v,
    kernel,
    (2, 2),
    "VALID",
    dimension_numbers=("NHWC", "HWIO", "NHWC"),
    feature_group_count=v.shape[-1],
  )


def rows() -> list[Row]:
  out = [
    Row(
      "avg_pool 3x3/2",
      lambda v: jaxpool.avg_pool(v, (3, 3), 2),
      SHAPE,
      baseline=lambda v: linen.avg_pool(v, (3, 3), (2, 2)),
      baseline_name="flax",
    )
  ]
  for mode in ("reflect", "zeros"):
    torch_blur = None
    if torch is not None:

      def torch_blur(t, mode=mode):
        kernel = torch.tensor(_FILTER, device=t.device)[None, None].expand(t.shape[1], 1, 3, 3)
        padded = torch.nn.functional.pad(
          t, (1, 1, 1, 1), mode={"reflect": "reflect", "zeros": "constant"}[mode]
        )
        return torch.nn.functional.conv2d(padded, kernel, stride=2, groups=t.shape[1])

    out.append(
      Row(
        f"blur_pool 3x3/2 {mode}",
        lambda v, mode=mode: jaxpool.blur_pool(v, (3, 3), 2, pad_mode=mode),
        SHAPE,
        baseline=lambda v, mode=mode: _jax_blur(v, mode),
        baseline_name="jnp.pad + depthwise conv",
        torch=torch_blur,
      )
    )
  torch_max_blur = None
  if torch is not None:

    def torch_max_blur(t):
      kernel = torch.tensor(_FILTER, device=t.device)[None, None].expand(t.shape[1], 1, 3, 3)
      peaks = torch.nn.functional.max_pool2d(t, 2, 1)
      return torch.nn.functional.conv2d(peaks, kernel, stride=2, padding=1, groups=t.shape[1])

  out.append(
    Row(
      "max_blur_pool 2x2, blur 3x3/2 zeros",
      lambda v: jaxpool.max_blur_pool(v, (2, 2), 2, pad_mode="zeros"),
      SHAPE,
      baseline=lambda v: _jax_blur(linen.max_pool(v, (2, 2), (1, 1)), "zeros"),
      baseline_name="flax max_pool + jnp.pad + depthwise conv",
      torch=torch_max_blur,
    )
  )
  return out


SUITE = Suite(
  "antialias",
  rows,
  f"Input {SHAPE} float32. torch runs timm's and kornia's BlurPool: a depthwise"
  " `conv2d` with the 3x3 binomial filter after `F.pad` (and `max_pool2d` at"
  " stride 1 first for MaxBlurPool); the JAX baseline is `jnp.pad` and a"
  " depthwise `conv_general_dilated`, differentiated by JAX.",
  reference="avg_pool 3x3/2",
)
