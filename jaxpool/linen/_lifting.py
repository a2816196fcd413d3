"""Linen layers of LiftPool: LiftDownPool with learned predict/update, and the
LiftUpPool that inverts it."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import linen as nn

import jaxpool
from jaxpool._src import lift_layer, lifting
from jaxpool._src.core.checks import check_bool, check_choice, check_positive_number
from jaxpool.linen._base import LOSSES, PoolModule

__all__ = ["LiftDownPool", "LiftUpPool"]


class LiftDownPool(PoolModule, spec="LiftDownPool"):
  """LiftDownPool with the paper's learned predictor and updater (see
  [`jaxpool.nnx.LiftDownPool`][jaxpool.nnx.LiftDownPool] for the full description).

  The parameters are one ``lift_params`` dict, made and applied by the same
  functions as the NNX layer's; ``features`` comes from the input. Every call
  stores ``lambda_u * c_u + lambda_p * c_p`` in the ``'losses'`` collection
  (``sow``, the latest call's value): apply with ``mutable=['losses']`` and
  add [`auxiliary_loss`][jaxpool.linen.auxiliary_loss] of the returned state to the training loss. `inverse` (or
  [`LiftUpPool`][jaxpool.linen.LiftUpPool]) inverts the layer with the same parameters; call it
  after the layer has run once (its parameters exist).

  Examples:
    >>> import jax, jax.numpy as jnp
    >>> from jaxpool import linen as jplinen
    >>> layer = jplinen.LiftDownPool()
    >>> x = jnp.ones((1, 8, 8, 3))
    >>> variables = layer.init(jax.random.key(0), x)
    >>> y, state = layer.apply(variables, x, mutable=["losses"])
    >>> y.shape, float(jplinen.auxiliary_loss(state)) >= 0
    ((1, 4, 4, 3), True)
  """

  _: dataclasses.KW_ONLY
  spatial_dims: int = 2
  kernel_size: int = 3
  output: Any = "sum"
  mixing: str = "channelwise"
  learned: bool = True
  wavelet: str = "legall53"
  lambda_u: float = lift_layer.LAMBDA_U
  lambda_p: float = lift_layer.LAMBDA_P

  def __post_init__(self):
    lifting.check_spatial_dims(self.spatial_dims)
    lift_layer.check_output(self.output, self.spatial_dims)
    lifting.check_lift_options(self.kernel_size, self.mixing)
    check_choice("wavelet", self.wavelet, tuple(lifting.WAVELETS))
    check_bool("learned", self.learned)
    check_positive_number("lambda_u", self.lambda_u, allow_zero=True)
    check_positive_number("lambda_p", self.lambda_p, allow_zero=True)
    super().__post_init__()

  @classmethod
  def from_window(cls, window_shape, strides=None, padding="VALID", **options):
    """``make_pool("lift", (2, 2))``: ``spatial_dims`` from the window, which
    must be 2 per axis with stride 2 and no padding."""
    return cls(
      spatial_dims=lift_layer.spatial_dims_of_window(window_shape, strides, padding), **options
    )

  @property
  def feature_multiplier(self) -> int:
    return lift_layer.output_multiplier(lift_layer.check_output(self.output, self.spatial_dims))

  def _lift_options(self, params) -> dict:
    predict, update = lifting.lift_steps(params) if params is not None else (None, None)
    return dict(predict=predict, update=update, wavelet=self.wavelet)

  @nn.compact
  def __call__(self, x: jax.typing.ArrayLike):
    x = jnp.asarray(x)
    params = None
    if self.learned:
      params = self.param(
        "lift_params",
        lifting.init_lift_params,
        x.shape[-1],
        kernel_size=self.kernel_size,
        mixing=self.mixing,
      )
    bands, constraints = jaxpool.lift_down_pool_with_constraints(
      x, spatial_dims=self.spatial_dims, **self._lift_options(params)
    )
    # The latest call's value replaces the stored one (as in the NNX layer),
    # so variables returned by init can be passed back to apply.
    self.sow(
      LOSSES,
      "lift_constraints",
      lift_layer.weighted_constraints(constraints, self.lambda_u, self.lambda_p),
      init_fn=lambda: jnp.zeros((), jnp.float32),
      reduce_fn=lambda _, new: new,
    )
    return lift_layer.select_output(bands, lift_layer.check_output(self.output, self.spatial_dims))

  def inverse(self, bands: Sequence[jax.typing.ArrayLike]) -> jax.Array:
    """[`jaxpool.lift_up_pool`][jaxpool.lift_up_pool] with this layer's ``P`` and ``U``."""
    params = self.get_variable("params", "lift_params") if self.learned else None
    if self.learned and params is None:
      raise ValueError(
        "LiftDownPool.inverse needs the layer's parameters: call the layer"
        " (or initialise the model) first."
      )
    return jaxpool.lift_up_pool(bands, spatial_dims=self.spatial_dims, **self._lift_options(params))


class LiftUpPool(PoolModule, spec="LiftUpPool"):
  """LiftUpPool: ``LiftUpPool(down=down)(bands) == down.inverse(bands)``, the
  exact inverse of a [`LiftDownPool`][jaxpool.linen.LiftDownPool] with its parameters. Define both
  in the parent's ``setup`` so they share ``down``.

  Examples:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> from flax import linen as nn
    >>> from jaxpool import linen as jplinen
    >>> class Codec(nn.Module):
    ...   def setup(self):
    ...     self.down = jplinen.LiftDownPool(output="all")  # all four bands
    ...     self.up = jplinen.LiftUpPool(down=self.down)
    ...   def __call__(self, x):
    ...     return self.up(self.down(x))
    >>> x = jax.random.normal(jax.random.key(1), (1, 8, 8, 3))
    >>> model = Codec()
    >>> variables = model.init(jax.random.key(0), x)
    >>> bool(jnp.allclose(model.apply(variables, x), x, atol=1e-5))
    True
  """

  _: dataclasses.KW_ONLY
  down: LiftDownPool

  def __post_init__(self):
    if not isinstance(self.down, LiftDownPool):
      raise TypeError(f"LiftUpPool needs down=<a LiftDownPool>; got {self.down!r}.")
    super().__post_init__()

  def __call__(self, bands: Sequence[jax.typing.ArrayLike]) -> jax.Array:
    return self.down.inverse(bands)
