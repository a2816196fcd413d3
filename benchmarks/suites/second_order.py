"""Covariance (iSQRT-COV sqrtm, logm), bilinear, compact bilinear and NetVLAD
heads on (32, 14, 14, 256), against the same formulas in torch."""

from __future__ import annotations

import jax
import numpy as np
from harness import Row, Suite, torch

import jaxpool

SHAPE, CLUSTERS = (32, 14, 14, 256), 16


def _netvlad_params(rng):
  centers = rng.standard_normal((CLUSTERS, SHAPE[-1])).astype(np.float32)
  centers /= np.linalg.norm(centers, axis=1, keepdims=True)
  return centers, 2 * centers.T.copy(), -np.ones(CLUSTERS, np.float32)


def _torch_covariance(x, iterations=5, logm=False):
  """iSQRT-COV (or the eigh matrix log) with torch ops, channels-last input
  ``(B, H, W, C)``: centred covariance, trace pre-normalisation, the coupled
  Newton-Schulz iteration, post-compensation."""
  rows = x.reshape(x.shape[0], -1, x.shape[-1])
  centred = rows - rows.mean(dim=1, keepdim=True)
  c = centred.transpose(1, 2) @ centred / rows.shape[1]
  if logm:
    lam, u = torch.linalg.eigh(c)
    return u @ torch.diag_embed(torch.log(torch.clamp(lam, min=1e-5))) @ u.transpose(1, 2)
  eye = torch.eye(c.shape[-1], dtype=c.dtype, device=c.device).expand_as(c)
  trace = c.diagonal(dim1=1, dim2=2).sum(-1).view(-1, 1, 1)
  y, z = c / trace, eye
  for _ in range(iterations - 1):
    t = 0.5 * (3 * eye - z @ y)
    y, z = y @ t, t @ z
  return y @ (0.5 * (3 * eye - z @ y)) * torch.sqrt(trace)


def _torch_netvlad(x, centers, weights, bias):
  """NetVLAD with torch ops (normalised input, soft assignment, residuals,
  intra and final L2)."""
  normalize = torch.nn.functional.normalize
  rows = normalize(x.reshape(x.shape[0], -1, x.shape[-1]), dim=-1)
  a = torch.softmax(rows @ weights + bias, dim=-1)
  v = a.transpose(1, 2) @ rows - a.sum(1).unsqueeze(-1) * centers
  v = normalize(v, dim=-1).reshape(x.shape[0], -1)
  return normalize(v, dim=-1)


def _torch_bilinear(x):
  rows = x.reshape(x.shape[0], -1, x.shape[-1])
  z = (rows.transpose(1, 2) @ rows / rows.shape[1]).reshape(x.shape[0], -1)
  return torch.nn.functional.normalize(torch.sign(z) * torch.sqrt(torch.abs(z) + 1e-12), dim=-1)


def rows() -> list[Row]:
  def row(name, fn, theirs=None, **kw):
    return Row(
      name, fn, SHAPE, torch=theirs if torch is not None else None, torch_layout="nhwc", **kw
    )

  return [
    row(
      "covariance_pool, sqrtm, 5 iterations",
      lambda v: jaxpool.covariance_pool(v),
      lambda t: _torch_covariance(t),
    ),
    row(
      "covariance_pool, logm (eigh)",
      lambda v: jaxpool.covariance_pool(v, normalize="logm"),
      lambda t: _torch_covariance(t, logm=True),
    ),
    row("covariance_pool, no normalisation", lambda v: jaxpool.covariance_pool(v, normalize=None)),
    row("bilinear_pool", lambda v: jaxpool.bilinear_pool(v), _torch_bilinear),
    row(
      "compact_bilinear_pool, D = 8192",
      lambda v: jaxpool.compact_bilinear_pool(v, output_dim=8192, key=jax.random.key(0)),
    ),
    row(
      f"netvlad, K = {CLUSTERS}",
      lambda v, c, w, b: jaxpool.netvlad(v, c, assign_weights=w, assign_bias=b),
      _torch_netvlad,
      args=_netvlad_params,
    ),
  ]


SUITE = Suite(
  "second_order",
  rows,
  f"Input {SHAPE} float32 (channels-last, as both libraries receive it);"
  " torch runs the same formula with its ops and autograd (iSQRT-COV's"
  " iteration, `torch.linalg.eigh` for the log, NetVLAD's soft assignment).",
)
