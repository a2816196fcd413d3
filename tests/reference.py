"""float64 numpy window enumeration and weighted means, shared by the formula tests."""

import itertools

import jax.numpy as jnp
import numpy as np

NAN, INF = np.nan, np.inf

# (spatial shape, window, strides, padding, dilation, ceil_mode)
CONFIGS = [
  ((7, 8), (2, 2), None, 0, 1, False),
  ((7, 8), (3, 3), (2, 2), 1, 1, False),
  ((7, 8), (3, 3), (2, 2), 1, 1, True),
  ((7, 8), (3, 2), (1, 2), [(1, 0), (0, 1)], 1, True),
  ((7, 8), (2, 2), (1, 1), 0, 2, False),
  ((9,), (3,), (2,), 1, 1, True),
  ((5, 6, 5), (2, 2, 2), None, 0, 1, True),
]


def windows(shape, window, strides, padding, dilation, ceil):
  """Yields (output index, list of input indices of the real cells), numpy only."""
  nd = len(shape)
  strides = window if strides is None else strides
  if isinstance(padding, int):
    padding = [(padding, padding)] * nd
  out = []
  for n, k, s, (lo, hi) in zip(shape, window, strides, padding):
    eff = (k - 1) * dilation + 1
    span = n + lo + hi - eff
    o = (-(-span // s) + 1) if ceil else (span // s + 1)
    if ceil and (o - 1) * s >= n + lo:
      o -= 1
    out.append(o)
  for idx in itertools.product(*[range(o) for o in out]):
    cells = []
    for taps in itertools.product(*[range(k) for k in window]):
      pos = tuple(
        i * s - lo + t * dilation for i, s, (lo, _), t in zip(idx, strides, padding, taps)
      )
      if all(0 <= p < n for p, n in zip(pos, shape)):
        cells.append(pos)
    yield idx, cells, tuple(out)


def weighted_mean(x, weight_fn, config):
  """float64 weighted mean of every window; weight_fn(values, b, c) -> weights."""
  shape, window, strides, padding, dilation, ceil = config
  cells_by_output = list(windows(shape, window, strides, padding, dilation, ceil))
  out_shape = cells_by_output[0][2]
  y = np.zeros((x.shape[0],) + out_shape + (x.shape[-1],))
  for idx, cells, _ in cells_by_output:
    for b in range(x.shape[0]):
      for c in range(x.shape[-1]):
        values = np.array([x[(b,) + cell + (c,)] for cell in cells])
        w = weight_fn(values, b, c, cells, idx)
        y[(b,) + idx + (c,)] = np.sum(w * values) / np.sum(w)
  return y


def jax_args(config):
  _, window, strides, padding, dilation, ceil = config
  return dict(
    window_shape=window, strides=strides, padding=padding, dilation=dilation, ceil_mode=ceil
  )


def normal_input(config, seed=0):
  return np.random.default_rng(seed).standard_normal((2,) + config[0] + (3,))


def column(values, dtype=np.float32):
  """A 1-D signal as ``(length, 1)``: one spatial axis, one feature."""
  return jnp.asarray(np.asarray(values, dtype).reshape(-1, 1))
