"""RoIAlign and RoIPool: 512 boxes, 7x7 bins, sampling 2 on (2, 50, 68, 256)
maps (a stride-16 FPN-less detector on an 800 x 1088 image), against torch's
``grid_sample`` construction (torchvision's rules) and the naive JAX gather;
position-sensitive RoIAlign and RoIPool on R-FCN's (2, 50, 68, 7 * 7 * 21)
maps."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from harness import Row, Suite, torch

import jaxpool

SHAPE, COUNT, SCALE = (2, 50, 68, 256), 512, 1 / 16
PS_SHAPE = (2, 50, 68, 7 * 7 * 21)  # position-sensitive maps: 21 features per bin


def _boxes(rng):
  centre = rng.uniform((0, 0), (1088, 800), (COUNT, 2))
  half = rng.uniform(16, 300, (COUNT, 2))
  return (
    np.concatenate([rng.integers(0, 2, (COUNT, 1)), centre - half, centre + half], axis=1).astype(
      np.float32
    ),
  )


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
    t = (torch.arange(bins * sampling, dtype=x.dtype, device=x.device) + 0.5) / sampling
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
      read = torch.nn.functional.grid_sample(
        x[b : b + 1], lattice, mode="bilinear", align_corners=True
      )
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
  out = (
    x[b, rows(yl), cols(xl)] * ((1 - rows(fy)) * (1 - cols(fx)))[..., None]
    + x[b, rows(yl), cols(xh)] * ((1 - rows(fy)) * cols(fx))[..., None]
    + x[b, rows(yh), cols(xl)] * (rows(fy) * (1 - cols(fx)))[..., None]
    + x[b, rows(yh), cols(xh)] * (rows(fy) * cols(fx))[..., None]
  )
  out = out * (rows(vy) & cols(vx))[..., None].astype(out.dtype)
  return out.reshape(len(boxes), ph, sampling, pw, sampling, -1).mean(axis=(2, 4))


def rows() -> list[Row]:
  theirs = None if torch is None else (lambda t, b: torch_roi_align(t, b, (7, 7), SCALE, 2, False))
  return [
    Row(
      "roi_align sampling 2",
      lambda v, b: jaxpool.roi_align(v, b, 7, spatial_scale=SCALE, sampling_ratio=2),
      SHAPE,
      args=_boxes,
      baseline=lambda v, b: naive_roi_align(v, b, (7, 7), SCALE, 2),
      baseline_name="naive gather",
      torch=theirs,
    ),
    Row(
      "roi_align adaptive (jit bound)",
      lambda v, b: jaxpool.roi_align(v, b, 7, spatial_scale=SCALE),
      SHAPE,
      args=_boxes,
    ),
    Row(
      "roi_pool", lambda v, b: jaxpool.roi_pool(v, b, 7, spatial_scale=SCALE), SHAPE, args=_boxes
    ),
    # R-FCN's heads: 7x7 bins of 21 features each (20 classes and background).
    Row(
      "ps_roi_align sampling 2",
      lambda v, b: jaxpool.ps_roi_align(v, b, 7, spatial_scale=SCALE, sampling_ratio=2),
      PS_SHAPE,
      args=_boxes,
    ),
    Row(
      "ps_roi_pool",
      lambda v, b: jaxpool.ps_roi_pool(v, b, 7, spatial_scale=SCALE),
      PS_SHAPE,
      args=_boxes,
    ),
  ]


SUITE = Suite(
  "region",
  rows,
  f"Maps {SHAPE} float32, {COUNT} boxes (half-sizes 16-300 px on an 800 x 1088"
  " image, some partly outside; a jit argument), 7x7 bins, spatial_scale 1/16."
  " torch: its ops (grid_sample, NCHW) with torchvision's rules; the baseline"
  " is the textbook JAX port (four gathers of whole feature vectors per"
  " sample). Temp is over the maps' bytes. The position-sensitive rows read"
  f" {PS_SHAPE} maps (R-FCN's 7x7 bins of 21 features); torch has no such"
  " operator without torchvision, and they have no baseline.",
)
