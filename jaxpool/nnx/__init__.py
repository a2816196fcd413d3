"""Flax NNX layers for jaxpool's operators.

Each function layer is a thin `flax.nnx.Module` over the function of
the same name (``MaxPool`` over [`jaxpool.max_pool`][jaxpool.max_pool]): the constructor
takes the function's arguments after the array inputs (same names, defaults
and kinds) and the call applies the function. No layer re-implements math.

* Learned layers (``LIP``, ``DPP``, ``LearnedMixedPool``, ``GatedPool``) own
  `flax.nnx.Param` attributes and pass them through the shared
  parametrisations to the function; ``features`` is keyword-only.
  ``LIP_LOGIT_BOUND`` (12.0) is the bound of LIP's logit modules, whose
  logits are ``LIP_LOGIT_BOUND * sigmoid(.)`` as in the official code.
* Random layers ([`RandomLayer`][jaxpool.nnx.RandomLayer]: ``MixedPool``, ``StochasticPool``,
  ``S3Pool``, ``FractionalMaxPool``) take ``rngs`` in the constructor or at
  call time (an `flax.nnx.Rngs`, an ``RngStream`` or a raw key; the
  stream is ``'pool'``, falling back to ``'default'``), have a
  ``deterministic`` attribute and a ``set_view(deterministic=None)`` method,
  like `flax.nnx.Dropout`, so that both ``model.eval()`` and
  ``nnx.view(model, deterministic=True)`` switch them to inference.

[`make_pool`][jaxpool.nnx.make_pool] builds a layer from a registered name (``"max"``,
``"soft"``, ``"lip"``, ...), for models that choose their pooling by string;
[`register_pool`][jaxpool.nnx.register_pool] adds names.

Examples:
  >>> import jax.numpy as jnp
  >>> from jaxpool import nnx as jpnnx
  >>> pool = jpnnx.MaxPool((2, 2))
  >>> pool(jnp.ones((1, 4, 4, 3))).shape
  (1, 2, 2, 3)
"""

from jaxpool._src.weighted import LIP_LOGIT_BOUND as LIP_LOGIT_BOUND
from jaxpool.nnx._adaptive import AdaptiveAvgPool as AdaptiveAvgPool
from jaxpool.nnx._adaptive import AdaptiveMaxPool as AdaptiveMaxPool
from jaxpool.nnx._adaptive import GlobalAvgPool as GlobalAvgPool
from jaxpool.nnx._adaptive import GlobalMaxPool as GlobalMaxPool
from jaxpool.nnx._antialias import BlurPool as BlurPool
from jaxpool.nnx._antialias import MaxBlurPool as MaxBlurPool
from jaxpool.nnx._attention import AttentionPool2d as AttentionPool2d
from jaxpool.nnx._attention import MAPHead as MAPHead
from jaxpool.nnx._attention import SimPool as SimPool
from jaxpool.nnx._base import FunctionLayer as FunctionLayer
from jaxpool.nnx._base import LearnedLayer as LearnedLayer
from jaxpool.nnx._base import PoolLayer as PoolLayer
from jaxpool.nnx._base import RandomLayer as RandomLayer
from jaxpool.nnx._base import auxiliary_loss as auxiliary_loss
from jaxpool.nnx._bilinear import BilinearPool as BilinearPool
from jaxpool.nnx._bilinear import CompactBilinearPool as CompactBilinearPool
from jaxpool.nnx._bilinear import Sketch as Sketch
from jaxpool.nnx._classic import AvgMaxPool as AvgMaxPool
from jaxpool.nnx._classic import AvgPool as AvgPool
from jaxpool.nnx._classic import LpPool as LpPool
from jaxpool.nnx._classic import MaxPool as MaxPool
from jaxpool.nnx._classic import MedianPool as MedianPool
from jaxpool.nnx._classic import MinPool as MinPool
from jaxpool.nnx._covariance import CovariancePool as CovariancePool
from jaxpool.nnx._dynamic import DynOPool as DynOPool
from jaxpool.nnx._dynamic import sync_dyno_shapes as sync_dyno_shapes
from jaxpool.nnx._fractional import FractionalMaxPool as FractionalMaxPool
from jaxpool.nnx._indices import MaxPoolWithIndices as MaxPoolWithIndices
from jaxpool.nnx._indices import MaxUnpool as MaxUnpool
from jaxpool.nnx._lifting import LiftDownPool as LiftDownPool
from jaxpool.nnx._lifting import LiftUpPool as LiftUpPool
from jaxpool.nnx._means import GeM as GeM
from jaxpool.nnx._means import LSEPool as LSEPool
from jaxpool.nnx._mixed import GatedPool as GatedPool
from jaxpool.nnx._mixed import LearnedMixedPool as LearnedMixedPool
from jaxpool.nnx._mixed import MixedPool as MixedPool
from jaxpool.nnx._netvlad import NetVLAD as NetVLAD
from jaxpool.nnx._pyramid import SPPF as SPPF
from jaxpool.nnx._pyramid import SpatialPyramidPool as SpatialPyramidPool
from jaxpool.nnx._pyramid import SPPBlock as SPPBlock
from jaxpool.nnx._region import MultiScaleRoIAlign as MultiScaleRoIAlign
from jaxpool.nnx._region import PSRoIAlign as PSRoIAlign
from jaxpool.nnx._region import PSRoIPool as PSRoIPool
from jaxpool.nnx._region import RoIAlign as RoIAlign
from jaxpool.nnx._region import RoIPool as RoIPool
from jaxpool.nnx._registry import available_pools as available_pools
from jaxpool.nnx._registry import make_pool as make_pool
from jaxpool.nnx._registry import register_layers as _register_layers
from jaxpool.nnx._registry import register_pool as register_pool
from jaxpool.nnx._registry import unregister_pool as unregister_pool
from jaxpool.nnx._stochastic import S3Pool as S3Pool
from jaxpool.nnx._stochastic import StochasticPool as StochasticPool
from jaxpool.nnx._weighted import DPP as DPP
from jaxpool.nnx._weighted import LIP as LIP
from jaxpool.nnx._weighted import LipPool as LipPool
from jaxpool.nnx._weighted import SoftPool as SoftPool

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
  "DynOPool",
  "FractionalMaxPool",
  "FunctionLayer",
  "GatedPool",
  "GeM",
  "GlobalAvgPool",
  "GlobalMaxPool",
  "LIP",
  "LIP_LOGIT_BOUND",
  "LSEPool",
  "LearnedLayer",
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
  "PoolLayer",
  "RandomLayer",
  "RoIAlign",
  "RoIPool",
  "S3Pool",
  "SimPool",
  "SPPBlock",
  "SPPF",
  "Sketch",
  "SoftPool",
  "SpatialPyramidPool",
  "StochasticPool",
  "auxiliary_loss",
  "available_pools",
  "make_pool",
  "register_pool",
  "sync_dyno_shapes",
  "unregister_pool",
]

_register_layers(globals())  # the names of jaxpool._src.layers.LAYERS
