"""Linen layers of the weighted poolings: SoftPool, LIP, DPP."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Literal

import jax
from flax import linen as nn

import jaxpool
from jaxpool._src import dpp, weighted
from jaxpool._src.core.checks import check_choice
from jaxpool._src.core.geometry import PaddingLike
from jaxpool.linen._base import FunctionModule, WindowModule

__all__ = ["DPP", "LIP", "LipPool", "SoftPool"]


class SoftPool(FunctionModule, spec="SoftPool"):
  """SoftPool layer over [`jaxpool.soft_pool`][jaxpool.soft_pool].

  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxpool import linen as jplinen
    >>> x = jnp.array([0.0, 1.0, 2.0, 3.0]).reshape(1, 4, 1)
    >>> jplinen.SoftPool((2,)).apply({}, x)[0, :, 0]  # softmax-weighted windows
    Array([0.7310586, 2.7310586], dtype=float32)
  """


class LipPool(FunctionModule, spec="LipPool"):
  """LIP with logits given at call time: ``layer(x, logits)``.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxpool import linen as jplinen
    >>> x = jnp.arange(16.0).reshape(1, 4, 4, 1)
    >>> y = jplinen.LipPool((2, 2)).apply({}, x, jnp.zeros_like(x))
    >>> bool(jnp.allclose(y, jplinen.AvgPool((2, 2)).apply({}, x)))  # equal logits
    True
    >>> jplinen.LipPool((2, 2)).apply({}, x, 100.0 * x)[0, ..., 0]  # large: max
    Array([[ 5.,  7.],
           [13., 15.]], dtype=float32)
  """


class LIP(WindowModule, spec="LIP"):
  """LIP with the paper's learned logit module (see [`jaxpool.nnx.LIP`][jaxpool.nnx.LIP]).

  ``logits = 12 * sigmoid(instance_norm(f(x)))``, ``f`` a zero-initialised 3x3
  convolution (``'simplified'``) or the bottleneck 1x1-3x3-1x1 stack
  (``'bottleneck'``); starts as average pooling. The parameters are one
  ``logit_params`` dict, made and applied by the same functions as the NNX
  layer's; ``features`` comes from the input.

  Examples:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> from jaxpool import linen as jplinen
    >>> layer = jplinen.LIP()  # 3x3 windows, stride 2, padding 1
    >>> x = jax.random.normal(jax.random.key(1), (2, 8, 8, 4))
    >>> variables = layer.init(jax.random.key(0), x)
    >>> y = layer.apply(variables, x)
    >>> y.shape, list(variables["params"])
    ((2, 4, 4, 4), ['logit_params'])
    >>> avg = jplinen.AvgPool((3, 3), 2, 1, count_include_pad=False)
    >>> bool(jnp.allclose(y, avg.apply({}, x), atol=1e-5))  # starts as averaging
    True
  """

  window_shape: Sequence[int] = (3, 3)
  strides: int | Sequence[int] | None = 2
  padding: PaddingLike = 1
  _: dataclasses.KW_ONLY
  logit_module: Literal["simplified", "bottleneck"] = "simplified"
  bottleneck_width: int | None = None

  def __post_init__(self):
    check_choice("logit_module", self.logit_module, ("simplified", "bottleneck"))
    super().__post_init__()

  @nn.compact
  def __call__(self, x: jax.typing.ArrayLike) -> jax.Array:
    x = jax.numpy.asarray(x)
    params = self.param(
      "logit_params",
      weighted.init_lip_logit_params,
      x.shape[-1],
      len(self.window_shape),
      logit_module=self.logit_module,
      bottleneck_width=self.bottleneck_width,
    )
    return jaxpool.lip_pool(x, weighted.lip_logits(params, x), **self.window())


class DPP(WindowModule, spec="DPP"):
  """Detail-Preserving Pooling with learned per-feature ``alpha``, ``lam``.

  See [`jaxpool.nnx.DPP`][jaxpool.nnx.DPP]; the parameters are one ``dpp_params`` dict
  (``log_alpha``, ``log_lam`` and for ``variant='full'`` the reference
  ``filter``), made and applied by the same functions as the NNX layer's.

  Examples:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> from jaxpool import linen as jplinen
    >>> layer = jplinen.DPP(variant="full")
    >>> x = jnp.full((1, 4, 4, 2), 3.0)
    >>> variables = layer.init(jax.random.key(0), x)
    >>> sorted(variables["params"]["dpp_params"])
    ['filter', 'log_alpha', 'log_lam']
    >>> layer.apply(variables, x)[0, ..., 0]  # a constant map stays constant
    Array([[3., 3.],
           [3., 3.]], dtype=float32)
  """

  window_shape: Sequence[int] = (2, 2)
  _: dataclasses.KW_ONLY
  variant: Literal["lite", "full"] = "lite"
  reward: Literal["sym", "asym"] = "sym"
  normalize: Literal["none", "mean"] = "none"

  def __post_init__(self):
    check_choice("variant", self.variant, ("lite", "full"))
    check_choice("reward", self.reward, ("sym", "asym"))
    check_choice("normalize", self.normalize, ("none", "mean"))
    super().__post_init__()

  @nn.compact
  def __call__(self, x: jax.typing.ArrayLike) -> jax.Array:
    x = jax.numpy.asarray(x)
    params = self.param(
      "dpp_params",
      lambda _, *a, **k: dpp.init_dpp_params(*a, **k),
      x.shape[-1],
      self.window_shape,
      variant=self.variant,
    )
    alpha, lam, reference = dpp.dpp_arguments(params, x, **self.window())
    return jaxpool.dpp_pool(
      x,
      alpha,
      lam,
      reference=reference,
      reward=self.reward,
      normalize=self.normalize,
      **self.window(),
    )
