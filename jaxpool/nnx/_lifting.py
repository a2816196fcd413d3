"""NNX layers of LiftPool: LiftDownPool with learned predict/update, and the
LiftUpPool that inverts it."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

import jaxpool
from jaxpool._src import lift_layer, lifting
from jaxpool._src.core import checks
from jaxpool._src.core.checks import check_bool, check_choice, check_positive_number
from jaxpool.nnx._base import PoolLayer, parameters, require_rngs, values

__all__ = ["LiftDownPool", "LiftUpPool"]


class LiftConstraint(nnx.Intermediate):
  """``(c_u, c_p)`` a [`LiftDownPool`][jaxpool.nnx.LiftDownPool] recorded in its latest call."""


class LiftDownPool(PoolLayer, spec="LiftDownPool"):
  r"""LiftDownPool with the paper's learned predictor and updater.

  ``bands = lift_down_pool(x, predict=P, update=U)`` along every spatial
  axis, with one ``P`` and one ``U`` shared by all passes of the layer (not
  between layers), each
  $\tanh(\operatorname{mix}(\operatorname{relu}(\operatorname{depthwise}_K(v))))$:
  a per-feature convolution of size ``kernel_size`` along the lifting axis,
  ReLU, a channel-wise (``mixing='channelwise'``, the paper's parameter
  count, no ``features**2`` term) or dense (``'dense'``, Temporal Lift
  Pooling's 1x1 convolution) mixing, tanh. The mixing starts at zero, so
  ``P = U = 0``: the layer starts as the lazy wavelet (``LL = x[::2, ::2]``).
  ``learned=False`` uses the fixed ``wavelet`` instead, with no parameters.

  Every call records the paper's constraints ``(c_u, c_p)``
  ([`jaxpool.lift_down_pool_with_constraints`][jaxpool.lift_down_pool_with_constraints]);
  [`auxiliary_loss`][jaxpool.nnx.auxiliary_loss] adds ``lambda_u * c_u + lambda_p * c_p`` over a
  model to the training loss. Recording is a state update, as for
  `flax.nnx.BatchNorm`: use the layer under ``nnx.jit`` /
  ``nnx.grad`` (or eagerly), not inside a raw ``jax.jit``/``jax.grad`` of a
  closure over it. `inverse` (or [`LiftUpPool`][jaxpool.nnx.LiftUpPool]) is the exact
  inverse with the same ``P`` and ``U``.

  Args:
    features: number of input features.
    spatial_dims: number of spatial axes (1, 2 or 3).
    kernel_size: odd size of the depthwise convolution (3, as attested by
      code).
    output: ``'sum'`` (the paper's pooling: the sum of the bands), a band
      name (``'LL'``), a tuple of band names (concatenated on features), or
      ``'all'`` (the named tuple of bands, for encoder-decoders).
    mixing: ``'channelwise'`` or ``'dense'``.
    learned: ``False`` for the fixed wavelet (no parameters; ``features``
      is still checked, so the two layers are interchangeable).
    wavelet: the fixed steps when ``learned=False``: ``'legall53'`` or
      ``'haar'``.
    lambda_u: weight of the update constraint ``c_u`` in
      [`auxiliary_loss`][jaxpool.nnx.LiftDownPool.auxiliary_loss]; default 0.01,
      the paper's.
    lambda_p: weight of the prediction constraint ``c_p`` in
      [`auxiliary_loss`][jaxpool.nnx.LiftDownPool.auxiliary_loss]; default 0.1,
      the paper's.
    rngs: initialisation randomness (required when ``learned``).

  Examples:
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> from jaxpool import nnx as jpnnx
    >>> down = jpnnx.LiftDownPool(features=3, output="all", rngs=nnx.Rngs(0))
    >>> x = jnp.ones((2, 8, 8, 3))
    >>> bands = down(x)
    >>> bands.LL.shape
    (2, 4, 4, 3)
    >>> bool(jnp.allclose(down.inverse(bands), x))
    True
  """

  def __init__(
    self,
    *,
    features: int,
    spatial_dims: int = 2,
    kernel_size: int = 3,
    output="sum",
    mixing: str = "channelwise",
    learned: bool = True,
    wavelet: str = "legall53",
    lambda_u: float = lift_layer.LAMBDA_U,
    lambda_p: float = lift_layer.LAMBDA_P,
    rngs: nnx.Rngs | None = None,
  ):
    self.spatial_dims = lifting.check_spatial_dims(spatial_dims)
    self.output = lift_layer.check_output(output, self.spatial_dims)
    check_choice("wavelet", wavelet, tuple(lifting.WAVELETS))
    self.wavelet = wavelet
    self.learned = check_bool("learned", learned)
    self.lambdas = (
      check_positive_number("lambda_u", lambda_u, allow_zero=True),
      check_positive_number("lambda_p", lambda_p, allow_zero=True),
    )
    self.features = checks.check_features("LiftDownPool", features)
    if self.learned:
      rngs = require_rngs("LiftDownPool", rngs)
      self.lift_params = parameters(
        lifting.init_lift_params(
          rngs.params(), self.features, kernel_size=kernel_size, mixing=mixing
        )
      )
    else:
      lifting.check_lift_options(kernel_size, mixing)
      self.lift_params = None
    self.constraints = LiftConstraint(jnp.zeros((2,), jnp.float32))

  @classmethod
  def from_window(
    cls, window_shape, strides=None, padding="VALID", *, features=None, rngs=None, **options
  ) -> LiftDownPool:
    """``make_pool("lift", (2, 2), ...)``: ``spatial_dims`` from the window,
    which must be 2 per axis with stride 2 and no padding."""
    spatial_dims = lift_layer.spatial_dims_of_window(window_shape, strides, padding)
    return cls(features=features, spatial_dims=spatial_dims, rngs=rngs, **options)

  def steps(self):
    """``(predict, update)``: the learned callables, or ``(None, None)``."""
    if self.lift_params is None:
      return None, None
    return lifting.lift_steps(values(self.lift_params))

  def _lift_options(self) -> dict:
    predict, update = self.steps()
    return dict(predict=predict, update=update, wavelet=self.wavelet)

  def __call__(self, x: jax.typing.ArrayLike):
    x = jnp.asarray(x)
    if x.ndim and x.shape[-1] != self.features:
      raise ValueError(
        f"LiftDownPool(features={self.features}) got an input with"
        f" {x.shape[-1]} features (shape {x.shape})."
      )
    bands, constraints = jaxpool.lift_down_pool_with_constraints(
      x, spatial_dims=self.spatial_dims, **self._lift_options()
    )
    self.constraints[...] = jnp.stack(constraints).astype(jnp.float32)
    return lift_layer.select_output(bands, self.output)

  def inverse(self, bands: Sequence[jax.typing.ArrayLike]) -> jax.Array:
    """[`jaxpool.lift_up_pool`][jaxpool.lift_up_pool] with this layer's ``P`` and ``U``."""
    return jaxpool.lift_up_pool(bands, spatial_dims=self.spatial_dims, **self._lift_options())

  def auxiliary_loss(self) -> jax.Array:
    """``lambda_u * c_u + lambda_p * c_p`` of the latest call."""
    c_u, c_p = self.constraints[...]
    return lift_layer.weighted_constraints(lifting.LiftConstraints(c_u, c_p), *self.lambdas)


class LiftUpPool(PoolLayer, spec="LiftUpPool"):
  """LiftUpPool: the exact inverse of a [`LiftDownPool`][jaxpool.nnx.LiftDownPool], sharing its
  ``P`` and ``U`` (the same parameters, trained together).

  ``LiftUpPool(down=down)(bands) == down.inverse(bands)``. In a decoder, pass
  the decoder's feature map in place of the first band and the detail bands
  the matching ``down`` layer returned (``output='all'``).

  Args:
    down: the [`LiftDownPool`][jaxpool.nnx.LiftDownPool] to invert.

  Examples:
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> from jaxpool import nnx as jpnnx
    >>> down = jpnnx.LiftDownPool(features=2, output="all", rngs=nnx.Rngs(0))
    >>> up = jpnnx.LiftUpPool(down=down)
    >>> up(down(jnp.ones((1, 4, 4, 2)))).shape
    (1, 4, 4, 2)
  """

  def __init__(self, *, down: LiftDownPool):
    if not isinstance(down, LiftDownPool):
      raise TypeError(f"LiftUpPool needs down=<a LiftDownPool>; got {down!r}.")
    self.down = down

  def __call__(self, bands: Sequence[jax.typing.ArrayLike]) -> jax.Array:
    return self.down.inverse(bands)
