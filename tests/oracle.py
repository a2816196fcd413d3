"""Helpers to compare channels-last jaxpool results with torch (NC...)."""

import numpy as np
import pytest

torch = pytest.importorskip(
    "torch", reason="torch==2.13.0 is the test oracle; pip install torch==2.13.0"
)
F = torch.nn.functional


def to_torch(x, requires_grad=False):
  """(N, *spatial, C) numpy -> (N, C, *spatial) torch tensor."""
  x = np.asarray(x)
  perm = (0, x.ndim - 1) + tuple(range(1, x.ndim - 1))
  t = torch.tensor(np.ascontiguousarray(x.transpose(perm)))
  return t.requires_grad_(requires_grad)


def from_torch(t):
  """(N, C, *spatial) torch tensor -> (N, *spatial, C) numpy."""
  a = t.detach().numpy()
  perm = (0,) + tuple(range(2, a.ndim)) + (1,)
  return a.transpose(perm)


def torch_op(name, nd):
  return getattr(F, f"{name}{nd}d")


def value_and_grad(fn, x, cotangent):
  """torch value and vector-Jacobian product of ``fn`` at channels-last ``x``."""
  xt = to_torch(x, requires_grad=True)
  out = fn(xt)
  out.backward(to_torch(cotangent))
  return from_torch(out), from_torch(xt.grad)
