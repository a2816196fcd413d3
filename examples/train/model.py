"""The trainer's network, loss and jitted steps."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

import jaxpool
from jaxpool import nnx as jpnnx

HEADS = (
  "flatten",
  "average",
  "gem",
  "lse",
  "map",
  "covariance",
  "bilinear",
  "compact",
  "netvlad",
)


def make_head(head: str, features: int, rngs: nnx.Rngs):
  """The global pooling before the classifier and its output size."""
  if head == "average":
    return jpnnx.GlobalAvgPool(), features
  if head == "gem":  # cirtorch's GeMmp: one learned power per feature
    return jpnnx.GeM(p=3.0, per_feature=True, features=features), features
  if head == "lse":  # timm's LsePlus2d, learned sharpness
    return jpnnx.LSEPool(r=10.0), features
  if head == "map":  # big_vision's MAP: a learned probe attends over the positions
    # 4 heads divide the trunk's 64 features times any pooling's multiplier.
    return jpnnx.MAPHead(features, num_heads=4, rngs=rngs), features
  if head == "covariance":  # iSQRT-COV with its 1x1 reduction, upper triangle
    dim = 32
    return jpnnx.CovariancePool(
      features=features, reduce_dim=dim, output="triu", rngs=rngs
    ), dim * (dim + 1) // 2
  if head == "bilinear":
    return jpnnx.BilinearPool(), features**2
  if head == "compact":
    return jpnnx.CompactBilinearPool(features=features, output_dim=1024, rngs=rngs), 1024
  if head == "netvlad":  # k-means start from the trunk's features (new_run)
    return jpnnx.NetVLAD(features=features, clusters=16, rngs=rngs), 16 * features
  raise ValueError(f"unknown head {head!r}; expected one of {HEADS}.")


class CNN(nnx.Module):
  """Three conv + pool stages (1-D or 2-D, as the input), then a global
  pooling head (or the flattened map) and a linear classifier."""

  def __init__(self, pool: str, *, spatial: tuple[int, ...], head: str = "flatten", rngs: nnx.Rngs):
    widths = (16, 32, 64)
    nd = len(spatial)
    self.convs, self.pools = nnx.List(), nnx.List()
    features = 1
    for width in widths:
      self.convs.append(nnx.Conv(features, width, (3,) * nd, rngs=rngs))
      layer = jpnnx.make_pool(pool, (2,) * nd, features=width, rngs=rngs)
      self.pools.append(layer)
      features = width * layer.feature_multiplier
    self.out_spatial = tuple(n // 2 ** len(widths) for n in spatial)
    if head == "flatten":
      self.global_pool, size_out = None, int(np.prod(self.out_spatial)) * features
    else:
      self.global_pool, size_out = make_head(head, features, rngs)
    self.head = nnx.Linear(size_out, 10, rngs=rngs)

  def trunk(self, x):
    """The feature map before the head, ``(batch, *spatial, features)``."""
    for conv, pool in zip(self.convs, self.pools):
      x = pool(nnx.relu(conv(x)))
    return x

  def __call__(self, x):
    x = self.trunk(x)
    if self.global_pool is not None:  # any map size
      return self.head(self.global_pool(x))
    # The flattening classifier reads the nominal grid; a pooling that learns
    # its output size may leave another one, averaged onto it.
    if x.shape[1:-1] != self.out_spatial:
      x = jaxpool.adaptive_avg_pool(x, self.out_spatial)
    return self.head(x.reshape(x.shape[0], -1))


def inference_view(model: nnx.Module) -> nnx.Module:
  """The model with random poolings (mixed, stochastic, s3, fractional) in
  inference mode; ``nnx.view`` refuses a flag no submodule has."""
  if any(isinstance(m, jpnnx.RandomLayer) for _, m in nnx.iter_modules(model)):
    return nnx.view(model, deterministic=True)
  return model


def loss_fn(model, images, labels):
  """Cross-entropy plus the poolings' auxiliary losses (LiftPool's
  ``0.01 c_u + 0.1 c_p``; 0 for the others)."""
  logits = model(images)
  task = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
  return task + jpnnx.auxiliary_loss(model)


@nnx.jit
def train_step(model, optimizer, images, labels):
  loss, grads = nnx.value_and_grad(loss_fn)(model, images, labels)
  optimizer.update(model, grads)
  return loss


@nnx.jit
def correct_count(model, images, labels, mask):
  hits = (jnp.argmax(model(images), axis=-1) == labels) & mask
  return jnp.sum(hits.astype(jnp.int32))
