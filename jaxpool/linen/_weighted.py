"""Linen layers of the weighted poolings: SoftPool, LIP, DPP."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Literal

import jax
from flax import linen as nn

import jaxpool
from jaxpool._src import params as P
from jaxpool._src.core.checks import check_choice
from jaxpool._src.core.geometry import PaddingLike
from jaxpool.linen._base import WindowModule
from jaxpool.linen._registry import register_pool

__all__ = ["DPP", "LIP", "LipPool", "SoftPool"]


class SoftPool(WindowModule):
  """SoftPool layer over :func:`jaxpool.soft_pool`."""

  def __call__(self, x: jax.typing.ArrayLike) -> jax.Array:
    return jaxpool.soft_pool(x, **self.window())


class LipPool(WindowModule):
  """LIP with logits given at call time: ``layer(x, logits)``."""

  def __call__(
      self, x: jax.typing.ArrayLike, logits: jax.typing.ArrayLike
  ) -> jax.Array:
    return jaxpool.lip_pool(x, logits, **self.window())


class LIP(WindowModule):
  """LIP with the paper's learned logit module (see :class:`jaxpool.nnx.LIP`).

  ``logits = 12 * sigmoid(instance_norm(f(x)))``, ``f`` a zero-initialised 3x3
  convolution (``'simplified'``) or the bottleneck 1x1-3x3-1x1 stack
  (``'bottleneck'``); starts as average pooling. The parameters are one
  ``logit_params`` dict, made and applied by the same functions as the NNX
  layer's; ``features`` comes from the input.
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
        "logit_params", P.init_lip_logit_params, x.shape[-1],
        len(self.window_shape), logit_module=self.logit_module,
        bottleneck_width=self.bottleneck_width,
    )
    return jaxpool.lip_pool(x, P.lip_logits(params, x), **self.window())


class DPP(WindowModule):
  """Detail-Preserving Pooling with learned per-feature ``alpha``, ``lam``.

  See :class:`jaxpool.nnx.DPP`; the parameters are one ``dpp_params`` dict
  (``log_alpha``, ``log_lam`` and for ``variant='full'`` the reference
  ``filter``), made and applied by the same functions as the NNX layer's.
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
        "dpp_params", lambda _, *a, **k: P.init_dpp_params(*a, **k),
        x.shape[-1], self.window_shape, variant=self.variant,
    )
    alpha, lam, reference = P.dpp_arguments(params, x, **self.window())
    return jaxpool.dpp_pool(
        x, alpha, lam, reference=reference, reward=self.reward,
        normalize=self.normalize, **self.window(),
    )


register_pool("soft", SoftPool)
register_pool("lip", LIP)
register_pool("dpp", DPP)
