"""Helpers to compare channels-last jaxpool results with torch (NC...)."""

import jax
import jax.numpy as jnp
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


# Spatial shapes of the parity tests, by number of spatial axes.
SPATIAL = {1: (11,), 2: (7, 8), 3: (5, 6, 5)}

# (window, stride, padding, dilation, ceil_mode); padding <= window // 2 (torch).
WINDOWS = [
  (2, None, 0, 1, False),
  (3, 2, 1, 1, False),
  (3, 2, 1, 1, True),
  (2, 2, 1, 1, True),
  (3, 2, 0, 1, True),
  (3, 1, 0, 2, False),
  (2, 3, 1, 2, True),
  (3, 2, 1, 2, False),
]
WINDOW_CASES = [(nd, *w) for nd in SPATIAL for w in WINDOWS]


def torch_input(nd, kind, seed=0, channels=3, batch=2):
  """float32 ``(batch, *SPATIAL[nd], channels)``: "ties" (integers 0..2) or "normal"."""
  rng = np.random.default_rng(seed)
  shape = (batch,) + SPATIAL[nd] + (channels,)
  if kind == "ties":  # many equal values: exercises the first-maximum rule
    return rng.integers(0, 3, shape).astype(np.float32)
  return rng.standard_normal(shape).astype(np.float32)


def jax_window_args(nd, k, s, p, d, ceil):
  """jaxpool keyword arguments for one ``WINDOW_CASES`` row."""
  return dict(
    window_shape=(k,) * nd,
    strides=None if s is None else (s,) * nd,
    padding=p,
    dilation=d,
    ceil_mode=ceil,
  )


def torch_window_args(k, s, p, d, ceil):
  """torch keyword arguments for one ``WINDOW_CASES`` row."""
  return dict(kernel_size=k, stride=s, padding=p, dilation=d, ceil_mode=ceil)


def jax_value_and_grad(fn, x, cotangent):
  """jaxpool value and vector-Jacobian product of ``fn`` at ``x``, as numpy
  (one compiled program)."""

  @jax.jit
  def value_and_vjp(x, cotangent):
    y, vjp = jax.vjp(fn, x)
    return y, vjp(cotangent)[0]

  y, g = value_and_vjp(jnp.asarray(x), jnp.asarray(cotangent))
  return np.asarray(y), np.asarray(g)
