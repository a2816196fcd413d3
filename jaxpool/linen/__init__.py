"""Flax Linen layers for jaxpool's operators.

Each layer is a thin `flax.linen.Module` dataclass over the function of
the same name (``MaxPool`` over [`jaxpool.max_pool`][jaxpool.max_pool]): the window triple
``window_shape, strides, padding`` (or ``output_shape``) is positional, every
other field keyword-only, with the function's names and defaults. Learned
layers (``LIP``, ``DPP``, ``LearnedMixedPool``, ``GatedPool``) create their
parameters with the same functions as the NNX layers and infer ``features``
from the input. Random layers (``MixedPool``, ``StochasticPool``, ``S3Pool``,
``FractionalMaxPool``) draw from the ``'pool'`` rng stream
(``rng_collection``) and take a ``deterministic`` field or call argument,
like `flax.linen.Dropout`:
``layer.apply(variables, x, deterministic=False, rngs={'pool': key})``.

[`make_pool`][jaxpool.linen.make_pool] builds a layer from a registered name, as
[`jaxpool.nnx.make_pool`][jaxpool.nnx.make_pool]; [`register_pool`][jaxpool.linen.register_pool] adds names.

Examples:
  >>> import jax.numpy as jnp
  >>> from jaxpool import linen as jplinen
  >>> layer = jplinen.AvgPool((2, 2))
  >>> layer.apply({}, jnp.ones((1, 4, 4, 3))).shape
  (1, 2, 2, 3)
"""

from jaxpool.linen._adaptive import AdaptiveAvgPool as AdaptiveAvgPool
from jaxpool.linen._adaptive import AdaptiveMaxPool as AdaptiveMaxPool
from jaxpool.linen._adaptive import GlobalAvgPool as GlobalAvgPool
from jaxpool.linen._adaptive import GlobalMaxPool as GlobalMaxPool
from jaxpool.linen._antialias import BlurPool as BlurPool
from jaxpool.linen._antialias import MaxBlurPool as MaxBlurPool
from jaxpool.linen._attention import AttentionPool2d as AttentionPool2d
from jaxpool.linen._attention import MAPHead as MAPHead
from jaxpool.linen._attention import SimPool as SimPool
from jaxpool.linen._base import FunctionModule as FunctionModule
from jaxpool.linen._base import PoolModule as PoolModule
from jaxpool.linen._base import RandomFunctionModule as RandomFunctionModule
from jaxpool.linen._base import RandomModule as RandomModule
from jaxpool.linen._base import WindowModule as WindowModule
from jaxpool.linen._base import auxiliary_loss as auxiliary_loss
from jaxpool.linen._bilinear import BilinearPool as BilinearPool
from jaxpool.linen._bilinear import CompactBilinearPool as CompactBilinearPool
from jaxpool.linen._classic import AvgMaxPool as AvgMaxPool
from jaxpool.linen._classic import AvgPool as AvgPool
from jaxpool.linen._classic import LpPool as LpPool
from jaxpool.linen._classic import MaxPool as MaxPool
from jaxpool.linen._classic import MedianPool as MedianPool
from jaxpool.linen._classic import MinPool as MinPool
from jaxpool.linen._covariance import CovariancePool as CovariancePool
from jaxpool.linen._fractional import FractionalMaxPool as FractionalMaxPool
from jaxpool.linen._indices import MaxPoolWithIndices as MaxPoolWithIndices
from jaxpool.linen._indices import MaxUnpool as MaxUnpool
from jaxpool.linen._lifting import LiftDownPool as LiftDownPool
from jaxpool.linen._lifting import LiftUpPool as LiftUpPool
from jaxpool.linen._means import GeM as GeM
from jaxpool.linen._means import LSEPool as LSEPool
from jaxpool.linen._mixed import GatedPool as GatedPool
from jaxpool.linen._mixed import LearnedMixedPool as LearnedMixedPool
from jaxpool.linen._mixed import MixedPool as MixedPool
from jaxpool.linen._netvlad import NetVLAD as NetVLAD
from jaxpool.linen._pyramid import SPPF as SPPF
from jaxpool.linen._pyramid import SpatialPyramidPool as SpatialPyramidPool
from jaxpool.linen._pyramid import SPPBlock as SPPBlock
from jaxpool.linen._region import MultiScaleRoIAlign as MultiScaleRoIAlign
from jaxpool.linen._region import PSRoIAlign as PSRoIAlign
from jaxpool.linen._region import PSRoIPool as PSRoIPool
from jaxpool.linen._region import RoIAlign as RoIAlign
from jaxpool.linen._region import RoIPool as RoIPool
from jaxpool.linen._registry import available_pools as available_pools
from jaxpool.linen._registry import make_pool as make_pool
from jaxpool.linen._registry import register_layers as _register_layers
from jaxpool.linen._registry import register_pool as register_pool
from jaxpool.linen._registry import unregister_pool as unregister_pool
from jaxpool.linen._stochastic import S3Pool as S3Pool
from jaxpool.linen._stochastic import StochasticPool as StochasticPool
from jaxpool.linen._weighted import DPP as DPP
from jaxpool.linen._weighted import LIP as LIP
from jaxpool.linen._weighted import LipPool as LipPool
from jaxpool.linen._weighted import SoftPool as SoftPool

__all__ = [
  "AdaptiveAvgPool",
  "AdaptiveMaxPool",
  "AttentionPool2d",
  "AvgMaxPool",
  "AvgPool",
  "BilinearPool",
  "BlurPool",
  "CompactBilinearPool",
  "CovariancePool",
  "DPP",
  "FractionalMaxPool",
  "FunctionModule",
  "GatedPool",
  "GeM",
  "GlobalAvgPool",
  "GlobalMaxPool",
  "LIP",
  "LSEPool",
  "LearnedMixedPool",
  "LiftDownPool",
  "LiftUpPool",
  "LipPool",
  "LpPool",
  "MAPHead",
  "MaxBlurPool",
  "MaxPool",
  "MaxPoolWithIndices",
  "MaxUnpool",
  "MedianPool",
  "MinPool",
  "MixedPool",
  "MultiScaleRoIAlign",
  "NetVLAD",
  "PSRoIAlign",
  "PSRoIPool",
  "PoolModule",
  "RandomFunctionModule",
  "RandomModule",
  "RoIAlign",
  "RoIPool",
  "S3Pool",
  "SimPool",
  "SPPBlock",
  "SPPF",
  "SoftPool",
  "SpatialPyramidPool",
  "StochasticPool",
  "WindowModule",
  "auxiliary_loss",
  "available_pools",
  "make_pool",
  "register_pool",
  "unregister_pool",
]

_register_layers(globals())  # the names of jaxpool._src.layers.LAYERS
