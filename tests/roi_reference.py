"""Float64 NumPy reference implementations of torchvision's RoIPool and RoIAlign
and of their position-sensitive versions.

These are plain-loop transcriptions of the rules in torchvision's CPU kernels
(pytorch/vision):

* ``torchvision/csrc/ops/cpu/roi_pool_kernel.cpp`` (forward + backward)
* ``torchvision/csrc/ops/cpu/roi_align_kernel.cpp`` (forward + backward,
  ``bilinear_interpolate_gradient``)
* ``torchvision/csrc/ops/cpu/roi_align_common.h``
  (``pre_calc_for_bilinear_interpolate``)
* ``torchvision/csrc/ops/cpu/ps_roi_align_kernel.cpp`` (forward + backward)
* ``torchvision/csrc/ops/cpu/ps_roi_pool_kernel.cpp`` (forward + backward)

Layout differs from torchvision: feature maps are channels-last ``(N, H, W, C)``,
boxes are ``(K, 5)`` rows ``(batch_index, x1, y1, x2, y2)`` and outputs are
``(K, ph, pw, C)``.  RoIPool's bin geometry is evaluated in ``dtype`` (the
kernel's ``T``) so its rounding matches the C++ float kernel; the pooled values
themselves are float64.  RoIAlign is computed entirely in float64.
``max_sampling_ratio`` is a jaxpool extension (cap on the adaptive grid), not a
torchvision option.

Position-sensitive outputs are ``(K, ph, pw, C / (ph * pw))``: output feature
``c`` of bin ``(p, q)`` reads input feature ``(c * ph + p) * pw + q``.
"""

import math

import numpy as np

__all__ = [
  "ps_roi_align_grad_reference",
  "ps_roi_align_reference",
  "ps_roi_pool_grad_reference",
  "ps_roi_pool_reference",
  "roi_align_grad_reference",
  "roi_align_reference",
  "roi_pool_grad_reference",
  "roi_pool_reference",
]

_FLT_MAX = float(np.finfo(np.float32).max)  # torchvision seeds the max with -FLT_MAX


def _pair(s):
  return (int(s), int(s)) if np.isscalar(s) else (int(s[0]), int(s[1]))


def _c_round(v):
  """C ``round``: half away from zero (exact for any finite float)."""
  v = float(v)
  t = math.trunc(v)
  if abs(v - t) >= 0.5:
    t += 1 if v > 0 else -1
  return int(t)


def _pool_bins(box, H, W, ph_, pw_, spatial_scale, dtype):
  """Yield (ph, pw, hstart, hend, wstart, wend) for one box, geometry in `dtype`."""
  T = np.dtype(dtype).type
  scale = T(spatial_scale)
  x1, y1, x2, y2 = (T(c) for c in box[1:5])
  sw, sh = _c_round(x1 * scale), _c_round(y1 * scale)
  ew, eh = _c_round(x2 * scale), _c_round(y2 * scale)
  roi_w = max(ew - sw + 1, 1)
  roi_h = max(eh - sh + 1, 1)
  bin_h = T(roi_h) / T(ph_)
  bin_w = T(roi_w) / T(pw_)
  for p in range(ph_):
    hs = int(np.floor(T(p) * bin_h))
    he = int(np.ceil(T(p + 1) * bin_h))
    hs = min(max(hs + sh, 0), H)
    he = min(max(he + sh, 0), H)
    for q in range(pw_):
      ws = int(np.floor(T(q) * bin_w))
      we = int(np.ceil(T(q + 1) * bin_w))
      ws = min(max(ws + sw, 0), W)
      we = min(max(we + sw, 0), W)
      yield p, q, hs, he, ws, we


def roi_pool_reference(x, boxes, output_shape, spatial_scale=1.0, dtype=np.float32):
  """Returns (y, argmax): y (K, ph, pw, C) float64, argmax flat h*W+w or -1."""
  x = np.asarray(x, dtype=np.float64)
  boxes = np.asarray(boxes)
  _, H, W, C = x.shape
  ph_, pw_ = _pair(output_shape)
  K = boxes.shape[0]
  y = np.zeros((K, ph_, pw_, C), np.float64)
  arg = np.full((K, ph_, pw_, C), -1, np.int64)
  for k in range(K):
    b = int(np.dtype(dtype).type(boxes[k, 0]))
    for p, q, hs, he, ws, we in _pool_bins(boxes[k], H, W, ph_, pw_, spatial_scale, dtype):
      empty = he <= hs or we <= ws
      for c in range(C):
        best, idx = (0.0 if empty else -_FLT_MAX), -1
        for h in range(hs, he):
          for w in range(ws, we):
            if x[b, h, w, c] > best:  # strict: first maximum wins
              best, idx = x[b, h, w, c], h * W + w
        y[k, p, q, c], arg[k, p, q, c] = best, idx
  return y, arg


def roi_pool_grad_reference(
  x_shape, boxes, output_shape, cotangent, spatial_scale=1.0, dtype=np.float32, x=None, argmax=None
):
  """Gradient wrt x: each bin's cotangent is added at its argmax (none if -1).

  The argmax depends on x: pass ``argmax`` (from roi_pool_reference) or ``x``.
  With neither, x = zeros is used (argmax = first element of each bin)."""
  N, H, W, C = x_shape
  if argmax is None:
    xv = np.zeros(x_shape) if x is None else x
    _, argmax = roi_pool_reference(xv, boxes, output_shape, spatial_scale, dtype)
  g = np.asarray(cotangent, np.float64)
  dx = np.zeros((N, H * W, C), np.float64)
  boxes = np.asarray(boxes)
  for k in range(boxes.shape[0]):
    b = int(np.dtype(dtype).type(boxes[k, 0]))
    for p, q, c in np.ndindex(argmax.shape[1:]):
      a = argmax[k, p, q, c]
      if a != -1:
        dx[b, a, c] += g[k, p, q, c]
  return dx.reshape(N, H, W, C)


def _bilinear(H, W, y, x):
  """torchvision's bilinear rule -> [(yi, xi, weight)] or None (contributes 0)."""
  if y < -1.0 or y > H or x < -1.0 or x > W:
    return None
  y, x = max(y, 0.0), max(x, 0.0)  # `if (y <= 0) y = 0`
  y_lo, x_lo = int(y), int(x)
  if y_lo >= H - 1:
    y_hi = y_lo = H - 1
    y = float(y_lo)
  else:
    y_hi = y_lo + 1
  if x_lo >= W - 1:
    x_hi = x_lo = W - 1
    x = float(x_lo)
  else:
    x_hi = x_lo + 1
  ly, lx = y - y_lo, x - x_lo
  hy, hx = 1.0 - ly, 1.0 - lx
  return [
    (y_lo, x_lo, hy * hx),
    (y_lo, x_hi, hy * lx),
    (y_hi, x_lo, ly * hx),
    (y_hi, x_hi, ly * lx),
  ]


def _align_samples(box, H, W, ph_, pw_, spatial_scale, sampling_ratio, aligned, max_sampling_ratio):
  """Yield (ph, pw, corners, count) for every in-range sample of one box."""
  off = 0.5 if aligned else 0.0  # no rounding of the box corners
  sw, sh, ew, eh = (float(c) * spatial_scale - off for c in box[1:5])
  roi_w, roi_h = ew - sw, eh - sh
  if not aligned:  # "Force malformed ROIs to be 1x1"
    roi_w, roi_h = max(roi_w, 1.0), max(roi_h, 1.0)
  bin_h, bin_w = roi_h / ph_, roi_w / pw_
  if sampling_ratio > 0:
    gh = gw = int(sampling_ratio)
  else:  # adaptive; may be <= 0 for degenerate aligned boxes -> no samples
    gh, gw = math.ceil(roi_h / ph_), math.ceil(roi_w / pw_)
    if max_sampling_ratio is not None:  # jaxpool extension
      gh, gw = min(gh, max_sampling_ratio), min(gw, max_sampling_ratio)
  count = float(max(gh * gw, 1))
  for p in range(ph_):
    for q in range(pw_):
      for iy in range(gh):
        yy = sh + p * bin_h + (iy + 0.5) * bin_h / gh
        for ix in range(gw):
          xx = sw + q * bin_w + (ix + 0.5) * bin_w / gw
          corners = _bilinear(H, W, yy, xx)
          if corners is not None:
            yield p, q, corners, count


def roi_align_reference(
  x,
  boxes,
  output_shape,
  spatial_scale=1.0,
  sampling_ratio=-1,
  aligned=False,
  max_sampling_ratio=None,
):
  """RoIAlign forward -> (K, ph, pw, C) float64 (per-bin mean of bilinear samples)."""
  x = np.asarray(x, dtype=np.float64)
  boxes = np.asarray(boxes, dtype=np.float64)
  _, H, W, C = x.shape
  ph_, pw_ = _pair(output_shape)
  y = np.zeros((boxes.shape[0], ph_, pw_, C), np.float64)
  for k, box in enumerate(boxes):
    b = int(box[0])
    samples_per_bin = np.ones((ph_, pw_, 1))
    for p, q, corners, count in _align_samples(
      box, H, W, ph_, pw_, spatial_scale, sampling_ratio, aligned, max_sampling_ratio
    ):
      samples_per_bin[p, q] = count
      for yi, xi, wt in corners:
        y[k, p, q] += wt * x[b, yi, xi]
    y[k] /= samples_per_bin  # sum first, then average, as the kernel does
  return y


def roi_align_grad_reference(
  x_shape,
  boxes,
  output_shape,
  cotangent,
  spatial_scale=1.0,
  sampling_ratio=-1,
  aligned=False,
  max_sampling_ratio=None,
):
  """Scatter cotangent * w_i / count into the four corners of each valid sample."""
  N, H, W, C = x_shape
  boxes = np.asarray(boxes, dtype=np.float64)
  g = np.asarray(cotangent, np.float64)
  ph_, pw_ = _pair(output_shape)
  dx = np.zeros((N, H, W, C), np.float64)
  for k, box in enumerate(boxes):
    b = int(box[0])
    for p, q, corners, count in _align_samples(
      box, H, W, ph_, pw_, spatial_scale, sampling_ratio, aligned, max_sampling_ratio
    ):
      for yi, xi, wt in corners:
        dx[b, yi, xi] += g[k, p, q] * wt / count
  return dx


# ---------------------------------------------------------------------------
# Position-sensitive RoIAlign and RoIPool.


def _ps_channel(c, p, q, ph_, pw_):
  """torchvision's channel_mapping: c_in = (c_out * ph + p) * pw + q."""
  return (c * ph_ + p) * pw_ + q


def _ps_align_samples(box, H, W, ph_, pw_, spatial_scale, sampling_ratio, max_sampling_ratio):
  """Yield (ph, pw, corners, count) for every sample of one box (corners None
  for a sample that contributes 0); count = grid_h * grid_w unclamped."""
  # roi_start = x1 * scale - 0.5 (always), no minimum size.
  sw, sh, ew, eh = (float(c) * spatial_scale - 0.5 for c in box[1:5])
  roi_w, roi_h = ew - sw, eh - sh
  bin_h, bin_w = roi_h / ph_, roi_w / pw_
  if sampling_ratio > 0:
    gh = gw = int(sampling_ratio)
  else:  # `int roi_bin_grid_h = ceil(roi_height / pooled_height)`: may be <= 0
    gh, gw = math.ceil(roi_h / ph_), math.ceil(roi_w / pw_)
    if max_sampling_ratio is not None:  # jaxpool extension
      gh, gw = min(gh, max_sampling_ratio), min(gw, max_sampling_ratio)
  count = gh * gw  # `const T count = roi_bin_grid_h * roi_bin_grid_w;` (no max(., 1))
  for p in range(ph_):
    for q in range(pw_):
      hstart, wstart = p * bin_h + sh, q * bin_w + sw
      yield p, q, None, count  # the bin itself, even without samples
      for iy in range(gh):
        yy = hstart + (iy + 0.5) * bin_h / gh
        for ix in range(gw):
          xx = wstart + (ix + 0.5) * bin_w / gw
          yield p, q, _bilinear(H, W, yy, xx), count


def ps_roi_align_reference(
  x, boxes, output_shape, spatial_scale=1.0, sampling_ratio=-1, max_sampling_ratio=None
):
  """PSRoIAlign forward -> (K, ph, pw, C / (ph * pw)) float64.

  As the kernel: ``out_sum / count`` with ``count = grid_h * grid_w``, so a
  bin without samples (``count == 0``) is NaN (0 / 0)."""
  x = np.asarray(x, dtype=np.float64)
  boxes = np.asarray(boxes, dtype=np.float64)
  _, H, W, C = x.shape
  ph_, pw_ = _pair(output_shape)
  C_out = C // (ph_ * pw_)
  y = np.zeros((boxes.shape[0], ph_, pw_, C_out), np.float64)
  for k, box in enumerate(boxes):
    b = int(box[0])
    sums = np.zeros((ph_, pw_, C_out))
    counts = np.zeros((ph_, pw_))
    for p, q, corners, count in _ps_align_samples(
      box, H, W, ph_, pw_, spatial_scale, sampling_ratio, max_sampling_ratio
    ):
      counts[p, q] = count
      channels = [_ps_channel(c, p, q, ph_, pw_) for c in range(C_out)]
      for yi, xi, wt in corners or ():
        sums[p, q] += wt * x[b, yi, xi, channels]
    with np.errstate(invalid="ignore", divide="ignore"):
      y[k] = sums / counts[..., None]
  return y


def ps_roi_align_grad_reference(
  x_shape,
  boxes,
  output_shape,
  cotangent,
  spatial_scale=1.0,
  sampling_ratio=-1,
  max_sampling_ratio=None,
):
  """PSRoIAlign backward: ``g * w_i / count`` added at the four corners of
  each sample, in the bin's own input feature (the transpose of the
  forward's weights)."""
  N, H, W, C = x_shape
  boxes = np.asarray(boxes, dtype=np.float64)
  g = np.asarray(cotangent, np.float64)
  ph_, pw_ = _pair(output_shape)
  C_out = C // (ph_ * pw_)
  dx = np.zeros((N, H, W, C), np.float64)
  for k, box in enumerate(boxes):
    b = int(box[0])
    for p, q, corners, count in _ps_align_samples(
      box, H, W, ph_, pw_, spatial_scale, sampling_ratio, max_sampling_ratio
    ):
      channels = [_ps_channel(c, p, q, ph_, pw_) for c in range(C_out)]
      for yi, xi, wt in corners or ():
        dx[b, yi, xi, channels] += g[k, p, q] * wt / count
  return dx


def _ps_pool_bins(box, H, W, ph_, pw_, spatial_scale, dtype, limit_h, limit_w):
  """Yield (ph, pw, hstart, hend, wstart, wend) of PSRoIPool, geometry in
  `dtype`, bin edges clipped to [0, limit]."""
  T = np.dtype(dtype).type
  scale = T(spatial_scale)
  x1, y1, x2, y2 = (T(c) for c in box[1:5])
  sw, sh = _c_round(x1 * scale), _c_round(y1 * scale)
  ew, eh = _c_round(x2 * scale), _c_round(y2 * scale)
  roi_w = max(ew - sw, 1)  # `std::max(roi_end_w - roi_start_w, 1)`: no + 1
  roi_h = max(eh - sh, 1)
  bin_h = T(roi_h) / T(ph_)
  bin_w = T(roi_w) / T(pw_)
  for p in range(ph_):
    hs = int(np.floor(T(p) * bin_h))
    he = int(np.ceil(T(p + 1) * bin_h))
    hs = min(max(hs + sh, 0), limit_h)
    he = min(max(he + sh, 0), limit_h)
    for q in range(pw_):
      ws = int(np.floor(T(q) * bin_w))
      we = int(np.ceil(T(q + 1) * bin_w))
      ws = min(max(ws + sw, 0), limit_w)
      we = min(max(we + sw, 0), limit_w)
      yield p, q, hs, he, ws, we


def ps_roi_pool_reference(x, boxes, output_shape, spatial_scale=1.0, dtype=np.float32):
  """PSRoIPool forward -> (K, ph, pw, C / (ph * pw)) float64: the mean of the
  bin's own feature, 0 for an empty bin. The forward kernel clips bin edges
  to ``[0, H - 1]`` and ``[0, W - 1]``."""
  x = np.asarray(x, dtype=np.float64)
  boxes = np.asarray(boxes)
  _, H, W, C = x.shape
  ph_, pw_ = _pair(output_shape)
  C_out = C // (ph_ * pw_)
  y = np.zeros((boxes.shape[0], ph_, pw_, C_out), np.float64)
  for k in range(boxes.shape[0]):
    b = int(np.dtype(dtype).type(boxes[k, 0]))
    for p, q, hs, he, ws, we in _ps_pool_bins(
      boxes[k], H, W, ph_, pw_, spatial_scale, dtype, H - 1, W - 1
    ):
      if he <= hs or we <= ws:
        continue  # empty: 0
      channels = [_ps_channel(c, p, q, ph_, pw_) for c in range(C_out)]
      total = x[b, hs:he, ws:we][..., channels].sum(axis=(0, 1))
      y[k, p, q] = total / ((he - hs) * (we - ws))
  return y


def ps_roi_pool_grad_reference(
  x_shape, boxes, output_shape, cotangent, spatial_scale=1.0, dtype=np.float32, clip="forward"
):
  """PSRoIPool gradient wrt x: ``g / area`` added over each bin.

  ``clip="forward"``: bins as the forward kernel clips them (``H - 1``,
  ``W - 1``), the transpose of the forward. ``clip="torchvision"``: as
  torchvision's backward kernel clips them (``H``, ``W``), which is not."""
  N, H, W, C = x_shape
  limit_h, limit_w = (H - 1, W - 1) if clip == "forward" else (H, W)
  g = np.asarray(cotangent, np.float64)
  boxes = np.asarray(boxes)
  ph_, pw_ = _pair(output_shape)
  C_out = C // (ph_ * pw_)
  dx = np.zeros((N, H, W, C), np.float64)
  for k in range(boxes.shape[0]):
    b = int(np.dtype(dtype).type(boxes[k, 0]))
    for p, q, hs, he, ws, we in _ps_pool_bins(
      boxes[k], H, W, ph_, pw_, spatial_scale, dtype, limit_h, limit_w
    ):
      if he <= hs or we <= ws:
        continue
      channels = [_ps_channel(c, p, q, ph_, pw_) for c in range(C_out)]
      area = (he - hs) * (we - ws)
      for h in range(hs, he):
        for w in range(ws, we):
          dx[b, h, w, channels] += g[k, p, q] / area
  return dx
