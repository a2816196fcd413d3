"""jaxpool: differentiable pooling operators for JAX.

Pure functions over channels-last arrays ``(*batch, *spatial, features)``
with torch semantics (``strides=None`` means ``strides = window_shape``).
Flax layers live in [`jaxpool.nnx`][jaxpool.nnx] and [`jaxpool.linen`][jaxpool.linen];
importing `jaxpool` does not import Flax.
"""

from jaxpool._src.adaptive import adaptive_avg_pool as adaptive_avg_pool
from jaxpool._src.adaptive import adaptive_max_pool as adaptive_max_pool
from jaxpool._src.adaptive import global_avg_pool as global_avg_pool
from jaxpool._src.adaptive import global_max_pool as global_max_pool
from jaxpool._src.antialias import blur_pool as blur_pool
from jaxpool._src.antialias import max_blur_pool as max_blur_pool
from jaxpool._src.attention import attention_pool2d as attention_pool2d
from jaxpool._src.attention import map_head as map_head
from jaxpool._src.attention import sim_pool as sim_pool
from jaxpool._src.bilinear import bilinear_pool as bilinear_pool
from jaxpool._src.bilinear import compact_bilinear_pool as compact_bilinear_pool
from jaxpool._src.classic import avg_max_pool as avg_max_pool
from jaxpool._src.classic import avg_pool as avg_pool
from jaxpool._src.classic import lp_pool as lp_pool
from jaxpool._src.classic import max_pool as max_pool
from jaxpool._src.classic import median_pool as median_pool
from jaxpool._src.classic import min_pool as min_pool
from jaxpool._src.covariance import covariance_pool as covariance_pool
from jaxpool._src.dpp import dpp_pool as dpp_pool
from jaxpool._src.dynamic import dyno_pool as dyno_pool
from jaxpool._src.fractional import fractional_max_pool as fractional_max_pool
from jaxpool._src.indices import max_pool_with_indices as max_pool_with_indices
from jaxpool._src.indices import max_unpool as max_unpool
from jaxpool._src.lifting import lift_down_pool as lift_down_pool
from jaxpool._src.lifting import (
  lift_down_pool_with_constraints as lift_down_pool_with_constraints,
)
from jaxpool._src.lifting import lift_pool as lift_pool
from jaxpool._src.lifting import lift_up_pool as lift_up_pool
from jaxpool._src.means import gem_pool as gem_pool
from jaxpool._src.means import lse_pool as lse_pool
from jaxpool._src.mixed import gated_pool as gated_pool
from jaxpool._src.mixed import mixed_pool as mixed_pool
from jaxpool._src.netvlad import netvlad as netvlad
from jaxpool._src.pyramid import spatial_pyramid_pool as spatial_pyramid_pool
from jaxpool._src.pyramid import spp_block as spp_block
from jaxpool._src.pyramid import sppf as sppf
from jaxpool._src.region import multi_scale_roi_align as multi_scale_roi_align
from jaxpool._src.region import ps_roi_align as ps_roi_align
from jaxpool._src.region import roi_align as roi_align
from jaxpool._src.roi_pool import ps_roi_pool as ps_roi_pool
from jaxpool._src.roi_pool import roi_pool as roi_pool
from jaxpool._src.stochastic import s3_pool as s3_pool
from jaxpool._src.stochastic import stochastic_pool as stochastic_pool
from jaxpool._src.weighted import lip_pool as lip_pool
from jaxpool._src.weighted import soft_pool as soft_pool

__version__ = "0.1.0"

__all__ = [
  "adaptive_avg_pool",
  "adaptive_max_pool",
  "attention_pool2d",
  "avg_max_pool",
  "avg_pool",
  "bilinear_pool",
  "blur_pool",
  "compact_bilinear_pool",
  "covariance_pool",
  "dpp_pool",
  "dyno_pool",
  "fractional_max_pool",
  "gated_pool",
  "gem_pool",
  "global_avg_pool",
  "global_max_pool",
  "lift_down_pool",
  "lift_down_pool_with_constraints",
  "lift_pool",
  "lift_up_pool",
  "lip_pool",
  "lp_pool",
  "lse_pool",
  "map_head",
  "max_blur_pool",
  "max_pool",
  "max_pool_with_indices",
  "max_unpool",
  "median_pool",
  "min_pool",
  "mixed_pool",
  "multi_scale_roi_align",
  "netvlad",
  "ps_roi_align",
  "ps_roi_pool",
  "roi_align",
  "roi_pool",
  "s3_pool",
  "sim_pool",
  "soft_pool",
  "spatial_pyramid_pool",
  "spp_block",
  "sppf",
  "stochastic_pool",
]
