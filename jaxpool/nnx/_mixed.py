"""NNX layers of mixed and gated pooling (Yu et al.; Lee et al.)."""

from __future__ import annotations

import inspect

import jax
from flax import nnx

import jaxpool
from jaxpool._src import mixed
from jaxpool._src.core import checks
from jaxpool.nnx._base import (
  LearnedLayer,
  RandomLayer,
  require_rngs,
  window_options,
)

__all__ = ["GatedPool", "LearnedMixedPool", "MixedPool"]


class MixedPool(RandomLayer, spec="MixedPool"):
  """Yu et al.'s random max/average pooling: ``MixedPool((2, 2), rngs=rngs)``.

  Training draws max or average per region (``granularity``); inference mixes
  them with weight ``alpha``. See [`jaxpool.mixed_pool`][jaxpool.mixed_pool].

  Examples:
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> import jaxpool
    >>> from jaxpool import nnx as jpnnx
    >>> x = jnp.arange(16.0).reshape(1, 4, 4, 1)
    >>> layer = jpnnx.MixedPool((2, 2), alpha=1.0, rngs=nnx.Rngs(0))
    >>> bool(jnp.array_equal(layer(x), jaxpool.max_pool(x, (2, 2))))  # always max
    True
    >>> layer = jpnnx.MixedPool((2, 2), alpha=0.25, deterministic=True)
    >>> layer(x)[0, ..., 0]  # inference: 0.25 * max + 0.75 * average
    Array([[ 3.125,  5.125],
           [11.125, 13.125]], dtype=float32)
  """


def _check_options(owner: str, function, options: dict) -> dict:
  """``options`` checked against ``function``'s keyword-only arguments."""
  allowed = {
    name for name, p in inspect.signature(function).parameters.items() if p.kind is p.KEYWORD_ONLY
  } - {"alpha", "key"}
  unknown = sorted(set(options) - allowed)
  if unknown:
    raise TypeError(
      f"{owner}: unexpected keyword argument(s) {', '.join(unknown)}; the"
      f" options are those of jaxpool.{function.__name__}:"
      f" {', '.join(sorted(allowed))}."
    )
  return options


class LearnedMixedPool(LearnedLayer, spec="LearnedMixedPool"):
  """Lee et al.'s mixed max-average pooling with a learned proportion.

  ``y = a * max_pool(x) + (1 - a) * avg_pool(x)``, ``a = sigmoid(w)`` with
  ``w`` a parameter initialised to 0 (``a = 1/2``): one per layer (the
  paper's headline setting) or, with ``per_feature=True``, one per feature.
  The sigmoid keeps ``a`` in ``[0, 1]`` as the paper requires (how the paper
  enforces it is not confirmed; most ports leave it unconstrained).

  Args:
    window_shape: window size per spatial axis, e.g. ``(2, 2)``.
    strides: step per spatial axis (int or tuple); ``None`` (default) means
      ``window_shape``, as in torch.
    padding: ``'VALID'`` (default), ``'SAME'``, an int, ints or ``(low, high)``
      pairs, as in [`jaxpool.mixed_pool`][jaxpool.mixed_pool].
    features: number of input features (needed with ``per_feature``).
    per_feature: one proportion per feature.
    rngs: unused (deterministic initialisation).
    **options: keyword options of [`jaxpool.mixed_pool`][jaxpool.mixed_pool]
      (``count_include_pad``, ``dilation``, ``ceil_mode``, ...).

  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxpool import nnx as jpnnx
    >>> jpnnx.LearnedMixedPool((2, 2))(jnp.ones((1, 4, 4, 3))).shape
    (1, 2, 2, 3)
  """

  def __init__(
    self,
    window_shape,
    strides=None,
    padding="VALID",
    *,
    features: int | None = None,
    per_feature: bool = False,
    rngs: nnx.Rngs | None = None,
    **options,
  ):
    del rngs  # deterministic initialisation
    shape = checks.per_feature_shape("LearnedMixedPool", per_feature, features)
    _check_options("LearnedMixedPool", jaxpool.mixed_pool, options)
    self.mix_logit = nnx.Param(jax.numpy.zeros(shape))
    self.window = window_options(type(self), window_shape, strides, padding, **options)

  def __call__(self, x: jax.typing.ArrayLike) -> jax.Array:
    alpha = mixed.mix_proportion(self.mix_logit[...])
    return jaxpool.mixed_pool(x, **self.window, alpha=alpha)


class GatedPool(LearnedLayer, spec="GatedPool"):
  r"""Lee et al.'s gated max-average pooling with a learned gating mask.

  ``y = s * max_pool(x) + (1 - s) * avg_pool(x)``,
  $s = \operatorname{sigmoid}(g \cdot x_R)$ per region $R$
  ([`jaxpool.gated_pool`][jaxpool.gated_pool]). $g$ is one ``window_shape`` mask
  shared by every feature (the paper: 9 parameters for 3x3), or one per
  feature when ``per_feature=True``; initialised Gaussian with std 0.1 as in
  the official AlexNet example.

  Args:
    window_shape: window size per spatial axis, e.g. ``(2, 2)``.
    strides: step per spatial axis (int or tuple); ``None`` (default) means
      ``window_shape``, as in torch.
    padding: ``'VALID'`` (default), ``'SAME'``, an int, ints or ``(low, high)``
      pairs, as in [`jaxpool.gated_pool`][jaxpool.gated_pool].
    features: number of input features (needed with ``per_feature``).
    per_feature: one mask per feature.
    rngs: initialisation randomness.
    **options: keyword options of [`jaxpool.gated_pool`][jaxpool.gated_pool].

  Examples:
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> from jaxpool import nnx as jpnnx
    >>> layer = jpnnx.GatedPool((3, 3), 2, 1, rngs=nnx.Rngs(0))
    >>> layer(jnp.ones((1, 8, 8, 3))).shape
    (1, 4, 4, 3)
  """

  def __init__(
    self,
    window_shape,
    strides=None,
    padding="VALID",
    *,
    features: int | None = None,
    per_feature: bool = False,
    rngs: nnx.Rngs,
    **options,
  ):
    shape = checks.per_feature_shape("GatedPool", per_feature, features)
    _check_options("GatedPool", jaxpool.gated_pool, options)
    rngs = require_rngs("GatedPool", rngs)
    self.gate = nnx.Param(mixed.gate_init(rngs.params(), window_shape, shape[0] if shape else None))
    self.window = window_options(type(self), window_shape, strides, padding, **options)

  def __call__(self, x: jax.typing.ArrayLike) -> jax.Array:
    return jaxpool.gated_pool(x, self.gate[...], **self.window)
