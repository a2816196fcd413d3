"""NNX layer of DynOPool: a pooling whose output size is learned, with the
host-side step that keeps its static size in sync."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import jaxpool
from jaxpool._src import dynamic
from jaxpool._src.core import checks
from jaxpool._src.core.checks import (
  check_choice,
  check_positive_number,
  check_spatial_dims,
  check_unpadded,
)
from jaxpool._src.dynamic import AGGREGATES, rounded_sizes
from jaxpool.nnx._base import PoolLayer

__all__ = ["DynOPool", "sync_dyno_shapes"]


class DynOInput(nnx.Variable):
  """The spatial size of the input a [`DynOPool`][jaxpool.nnx.DynOPool] saw last (int32)."""


class DynOAreaRatio(nnx.Intermediate):
  """The straight-through output area over the initial one, recorded by the
  latest call of a [`DynOPool`][jaxpool.nnx.DynOPool]."""


class DynOPool(PoolLayer, spec="DynOPool"):
  r"""DynOPool: pooling with a learned output size (Jang et al., CVPR 2022).

  ``y = jaxpool.dyno_pool(x, out, delta, scale=alpha)`` with a learned
  $\alpha = 1 / r$ per spatial axis (the paper's reparameterisation of the
  scale factor $r$). The output size
  $\mathrm{out} = \operatorname{round}(L / \alpha)$ is static state of the
  layer: the sampling positions use the straight-through size, so ``alpha``
  learns, and [`sync_dyno_shapes`][jaxpool.nnx.sync_dyno_shapes] (a host step between
  training steps) re-rounds the size when ``alpha`` has moved far enough.
  ``nnx.jit`` then re-traces only for a new size and keeps every compiled
  size cached.

  Query offset (``offset``): the paper's parameterisation could not be
  confirmed. ``'cell'`` (default) reads each cell at a quarter of its size
  from the centre, $\delta = 1 / (2\, \mathrm{out})$, moving with ``alpha``: at
  $r = 0.5$ the layer is exactly 2x2/2 max pooling. ``'learned'`` learns
  the offset independently, in input pixels, from the same start
  ($\alpha / 4$), per axis or with ``per_feature=True`` per axis and
  feature.

  Complexity (papers.md §1.6): each call records
  $\mathrm{area} = \prod \hat{\mathrm{out}} / \prod \mathrm{out}_0$
  (straight-through sizes over the initial ones), and
  [`auxiliary_loss`][jaxpool.nnx.DynOPool.auxiliary_loss] returns ``complexity_weight * macs * area``, where
  ``macs`` is the multiply-accumulate count (in G, say) of the layers that
  run at this layer's output resolution in the initial network.
  [`jaxpool.nnx.auxiliary_loss`][jaxpool.nnx.auxiliary_loss] sums the term over a model; with the
  default ``complexity_weight=0`` it is 0.

  Args:
    spatial_dims: number of spatial axes (1, 2 or 3).
    init_ratio: the initial $r$ (output / input size), a number or one per
      axis; 0.5 halves.
    max_ratio: the largest $r$ (``alpha >= 1 / max_ratio``); 1 by default,
      so the layer never upsamples.
    offset: ``'cell'`` or ``'learned'``.
    per_feature: with ``offset='learned'``, one offset per feature.
    features: number of input features (needed for ``per_feature``; checked
      against the input when given).
    aggregate: ``'max'`` (the paper) or ``'mean'``.
    macs: the MACs whose cost scales with this layer's output area.
    complexity_weight: $\lambda$ of the complexity loss (the paper's value
      was not found).

  Attributes:
    synced_alpha: the ``alpha`` the static size is rounded from: the
      initial one, or after a [`sync`][jaxpool.nnx.DynOPool.sync] that changed the size, the input
      to output size ratio per axis (a function of the sizes only, so
      returning to a size reuses its compiled steps).

  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxpool import nnx as jpnnx
    >>> pool = jpnnx.DynOPool()
    >>> x = jnp.arange(16.0).reshape(1, 4, 4, 1)
    >>> pool(x)[0, ..., 0]  # r = 0.5 starts as 2x2 max pooling
    Array([[ 5.,  7.],
           [13., 15.]], dtype=float32)
    >>> pool.alpha[...] = jnp.array([4.0, 2.0])  # as if trained
    >>> jpnnx.sync_dyno_shapes(pool)
    {(): ((2, 2), (1, 2))}
    >>> pool(x).shape
    (1, 1, 2, 1)
  """

  def __init__(
    self,
    *,
    spatial_dims: int = 2,
    init_ratio=0.5,
    max_ratio=1.0,
    offset: str = "cell",
    per_feature: bool = False,
    features: int | None = None,
    aggregate: str = "max",
    macs: float = 0.0,
    complexity_weight: float = 0.0,
    rngs: nnx.Rngs | None = None,
  ):
    del rngs  # the initialisation is deterministic
    self.spatial_dims = check_spatial_dims(spatial_dims)
    self.features = checks.check_features("DynOPool", features, required=False)
    check_choice("aggregate", aggregate, AGGREGATES)
    self.aggregate = aggregate
    self.max_ratio = dynamic.check_dyno_ratios("max_ratio", max_ratio, self.spatial_dims)
    self.macs = check_positive_number("macs", macs, allow_zero=True)
    self.complexity_weight = check_positive_number(
      "complexity_weight", complexity_weight, allow_zero=True
    )
    params = dynamic.init_dyno_params(
      self.spatial_dims,
      init_ratio=init_ratio,
      offset=offset,
      features=features,
      per_feature=per_feature,
      max_ratio=self.max_ratio,
    )
    self.alpha = nnx.Param(params["alpha"])
    self.offset = nnx.Param(params["offset"]) if "offset" in params else None
    initial = np.asarray(dynamic.dyno_scale({"alpha": self.alpha[...]}, self.max_ratio))
    self.initial_alpha = tuple(float(a) for a in initial)
    self.synced_alpha = self.initial_alpha
    self.input_size = DynOInput(jnp.zeros((self.spatial_dims,), jnp.int32))
    self.area_ratio = DynOAreaRatio(jnp.ones((), jnp.float32))

  @classmethod
  def from_window(
    cls, window_shape, strides=None, padding="VALID", *, features=None, rngs=None, **options
  ) -> DynOPool:
    """``make_pool("dyno", (2, 2), ...)``: ``init_ratio = 1 / stride`` per
    axis (0.5 halves), no padding."""
    check_unpadded("DynOPool", padding)
    strides = window_shape if strides is None else strides
    strides = (strides,) * len(window_shape) if isinstance(strides, int) else tuple(strides)
    ratios = tuple(1 / s for s in strides)
    return cls(
      spatial_dims=len(window_shape), init_ratio=ratios, features=features, rngs=rngs, **options
    )

  def output_shape(self, input_size: Sequence[int]) -> tuple[int, ...]:
    """The static output size for an input of spatial size ``input_size``:
    ``round(L / synced_alpha)`` per axis."""
    return rounded_sizes(input_size, self.synced_alpha)

  def _params(self) -> dict[str, jax.Array]:
    if self.offset is None:
      return {"alpha": self.alpha[...]}
    return {"alpha": self.alpha[...], "offset": self.offset[...]}

  def __call__(self, x: jax.typing.ArrayLike) -> jax.Array:
    x = jnp.asarray(x)
    if x.ndim < self.spatial_dims + 1:
      raise ValueError(
        f"DynOPool(spatial_dims={self.spatial_dims}) needs an input of shape"
        f" (*batch, *spatial, features); got shape {x.shape}."
      )
    if self.features is not None and x.shape[-1] != self.features:
      raise ValueError(
        f"DynOPool(features={self.features}) got an input with"
        f" {x.shape[-1]} features (shape {x.shape})."
      )
    in_sizes = x.shape[x.ndim - 1 - self.spatial_dims : -1]
    out = self.output_shape(in_sizes)
    params = self._params()
    scale = dynamic.dyno_scale(params, self.max_ratio)
    self.input_size[...] = jnp.asarray(in_sizes, jnp.int32)
    self.area_ratio[...] = dynamic.dyno_area_ratio(
      in_sizes, scale, out, rounded_sizes(in_sizes, self.initial_alpha)
    ).astype(jnp.float32)
    return jaxpool.dyno_pool(
      x, out, dynamic.dyno_delta(params, in_sizes), aggregate=self.aggregate, scale=scale
    )

  def auxiliary_loss(self) -> jax.Array | None:
    """``complexity_weight * macs * area`` of the latest call, or ``None``
    when the weight or ``macs`` is 0."""
    if self.complexity_weight == 0 or self.macs == 0:
      return None
    return self.complexity_weight * self.macs * self.area_ratio[...]

  def ratio(self) -> np.ndarray:
    r"""The learned $r = 1 / \alpha$ per axis (NumPy, on the host)."""
    return 1 / np.asarray(dynamic.dyno_scale(self._params(), self.max_ratio))

  def sync(self) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """Re-rounds the static size from the current ``alpha``, for the input
    size seen last; ``(old, new)`` output sizes when it changed, else
    ``None`` (and nothing changes, so compiled steps stay valid)."""
    input_size = tuple(int(v) for v in np.asarray(self.input_size[...]))
    if not all(input_size):
      return None  # never called
    alpha = np.asarray(dynamic.dyno_scale(self._params(), self.max_ratio), np.float64)
    if not np.all(np.isfinite(alpha)):
      raise ValueError(
        f"DynOPool: the learned alpha is not finite ({alpha.tolist()});"
        " training diverged, so no output size can be rounded from it."
      )
    old, new = self.output_shape(input_size), rounded_sizes(input_size, alpha)
    if new == old:
      return None
    self.synced_alpha = self._canonical_alpha(input_size, new)
    return old, new

  def _canonical_alpha(self, input_size, output_size) -> tuple[float, ...]:
    """The ``alpha`` stored for rounded sizes: a function of the sizes alone
    (the initial ``alpha`` where they are the initial sizes, else
    ``L_in / L_out`` per axis), so a size seen before has the graph it had
    and ``nnx.jit`` reuses its trace."""
    if output_size == rounded_sizes(input_size, self.initial_alpha):
      return self.initial_alpha
    return tuple(float(n) / float(m) for n, m in zip(input_size, output_size))


def sync_dyno_shapes(model: nnx.Module) -> dict[tuple, tuple[tuple[int, ...], tuple[int, ...]]]:
  """The host step between training steps: re-rounds every
  [`DynOPool`][jaxpool.nnx.DynOPool]'s static output size from its learned ``alpha``.

  Returns ``{path: (old_size, new_size)}`` for the layers whose size changed
  (empty when none did). Call it outside ``nnx.jit`` (e.g. once per epoch or
  every few steps); a jitted step re-traces on its next call only when this
  changed something, and sizes seen before are reused from the cache.

  Examples:
    >>> from flax import nnx
    >>> from jaxpool import nnx as jpnnx
    >>> model = nnx.Sequential(jpnnx.DynOPool(), jpnnx.DynOPool())
    >>> jpnnx.sync_dyno_shapes(model)  # nothing learned yet
    {}
  """
  changed = {}
  for path, node in nnx.iter_graph(model):
    if isinstance(node, DynOPool):
      change = node.sync()
      if change is not None:
        changed[tuple(path)] = change
  return changed
