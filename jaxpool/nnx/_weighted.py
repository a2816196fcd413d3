"""NNX layers of the weighted poolings: SoftPool, LIP, DPP."""

from __future__ import annotations

import jax
from flax import nnx

import jaxpool
from jaxpool._src import dpp, weighted
from jaxpool._src.core.checks import check_choice
from jaxpool._src.core.geometry import normalize_spatial_shape
from jaxpool.nnx._base import (
  FunctionLayer,
  LearnedLayer,
  parameters,
  require_rngs,
  values,
  window_options,
)

__all__ = ["DPP", "LIP", "LipPool", "SoftPool"]


class SoftPool(FunctionLayer, spec="SoftPool"):
  """SoftPool layer: ``SoftPool((2, 2))(x) == jaxpool.soft_pool(x, (2, 2))``.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxpool import nnx as jpnnx
    >>> x = jnp.array([0.0, 1.0, 2.0, 3.0]).reshape(1, 4, 1)
    >>> jpnnx.SoftPool((2,))(x)[0, :, 0]  # softmax-weighted: near the maximum
    Array([0.7310586, 2.7310586], dtype=float32)
  """


class LipPool(FunctionLayer, spec="LipPool"):
  """LIP with logits given at call time: ``LipPool((3, 3), 2, 1)(x, logits)``.

  See [`LIP`][jaxpool.nnx.LIP] for the layer that learns its logits.

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxpool
    >>> from jaxpool import nnx as jpnnx
    >>> x = jnp.arange(16.0).reshape(1, 4, 4, 1)
    >>> y = jpnnx.LipPool((2, 2))(x, jnp.zeros_like(x))  # equal logits
    >>> bool(jnp.allclose(y, jaxpool.avg_pool(x, (2, 2))))  # average pooling
    True
  """


class LIP(LearnedLayer, spec="LIP"):
  """Local Importance-based Pooling with the paper's learned logit module.

  ``y = lip_pool(x, logits(x), window_shape, strides, padding)`` where
  ``logits(x) = 12 * sigmoid(instance_norm(f(x)))`` is bounded to ``[0, 12]``
  as in the official code (sebgao/LIP). ``logit_module``:

  * ``'simplified'`` (the paper's stem module): ``f`` is a 3x3 convolution;
  * ``'bottleneck'``: ``f`` is 1x1 conv -> IN -> ReLU -> 3x3 conv -> IN ->
    ReLU -> 1x1 conv back to ``features`` (``bottleneck_width`` channels
    inside, default ``features // 2``).

  The last convolution is zero-initialised, so the logits start constant and
  the layer starts as average pooling over the real cells of each window.
  The parameters live in ``logit_params``; the math is
  ``jaxpool._src.weighted.lip_logits``, shared with [`jaxpool.linen.LIP`][jaxpool.linen.LIP].

  Args:
    window_shape: window size per spatial axis; default ``(3, 3)``, the official
      LIP's.
    strides: step per spatial axis (int or tuple); default 2, the official LIP's
      (``None`` means ``window_shape``).
    padding: default 1, the official LIP's; ``'VALID'``, ``'SAME'``, an int,
      ints or ``(low, high)`` pairs, as in [`jaxpool.lip_pool`][jaxpool.lip_pool].
    features: number of input (and output) features.
    logit_module: ``'simplified'`` or ``'bottleneck'``.
    bottleneck_width: inner width of the bottleneck module.
    dilation: spacing between window taps (int or tuple); ``None`` (default)
      means 1, as in [`jaxpool.lip_pool`][jaxpool.lip_pool].
    ceil_mode: round the output size up (default ``False``), as in
      [`jaxpool.lip_pool`][jaxpool.lip_pool].
    rngs: initialisation randomness.

  Examples:
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> from jaxpool import nnx as jpnnx
    >>> layer = jpnnx.LIP((3, 3), 2, 1, features=4, rngs=nnx.Rngs(0))
    >>> layer(jnp.ones((2, 8, 8, 4))).shape
    (2, 4, 4, 4)
  """

  def __init__(
    self,
    window_shape=(3, 3),
    strides=2,
    padding=1,
    *,
    features: int,
    logit_module: str = "simplified",
    bottleneck_width: int | None = None,
    dilation=None,
    ceil_mode: bool = False,
    rngs: nnx.Rngs,
  ):
    self.window = window_options(
      type(self), window_shape, strides, padding, dilation=dilation, ceil_mode=ceil_mode
    )
    window_shape = normalize_spatial_shape("window_shape", window_shape)
    rngs = require_rngs("LIP", rngs)
    self.logit_params = parameters(
      weighted.init_lip_logit_params(
        rngs.params(),
        features,
        len(window_shape),
        logit_module=logit_module,
        bottleneck_width=bottleneck_width,
      )
    )

  def logits(self, x: jax.typing.ArrayLike) -> jax.Array:
    """The importance logits of ``x``, ``12 * sigmoid(IN(f(x)))``."""
    return weighted.lip_logits(values(self.logit_params), x)

  def __call__(self, x: jax.typing.ArrayLike) -> jax.Array:
    return jaxpool.lip_pool(x, self.logits(x), **self.window)


class DPP(LearnedLayer, spec="DPP"):
  """Detail-Preserving Pooling with learned per-feature ``alpha`` and ``lam``.

  ``y = dpp_pool(x, exp(min(a, 10)), exp(l), ..., reference=r)`` with
  parameters ``a``, ``l`` (one per feature, initialised to 0, i.e.
  ``alpha = lam = 1`` as the official CUDA layer). ``variant='lite'`` uses the
  window mean as reference; ``'full'`` learns a per-feature weighted window
  sum over the pooling's windows (initialised to the box filter, so it starts
  as Lite-DPP). The math is ``jaxpool._src.dpp.dpp_arguments``, shared with
  [`jaxpool.linen.DPP`][jaxpool.linen.DPP].

  Args:
    window_shape: window size per spatial axis; default ``(2, 2)``, the paper's.
    strides: step per spatial axis (int or tuple); ``None`` (default) means
      ``window_shape`` (stride 2 for the paper's window).
    padding: ``'VALID'`` (default), ``'SAME'``, an int, ints or ``(low, high)``
      pairs, as in [`jaxpool.dpp_pool`][jaxpool.dpp_pool].
    features: number of input (and output) features.
    variant: ``'lite'`` or ``'full'``.
    reward: ``'sym'`` or ``'asym'``.
    normalize: ``'none'`` (paper) or ``'mean'`` (official code).
    dilation: spacing between window taps (int or tuple); ``None`` (default)
      means 1, as in [`jaxpool.dpp_pool`][jaxpool.dpp_pool].
    ceil_mode: round the output size up (default ``False``), as in
      [`jaxpool.dpp_pool`][jaxpool.dpp_pool].
    rngs: unused (the initialisation is deterministic); accepted so that
      [`make_pool`][jaxpool.nnx.make_pool] can pass it.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxpool import nnx as jpnnx
    >>> layer = jpnnx.DPP((2, 2), features=3, variant="full")
    >>> layer(jnp.ones((1, 8, 8, 3))).shape
    (1, 4, 4, 3)
  """

  def __init__(
    self,
    window_shape=(2, 2),
    strides=None,
    padding="VALID",
    *,
    features: int,
    variant: str = "lite",
    reward: str = "sym",
    normalize: str = "none",
    dilation=None,
    ceil_mode: bool = False,
    rngs: nnx.Rngs | None = None,
  ):
    del rngs  # deterministic initialisation
    check_choice("reward", reward, ("sym", "asym"))
    check_choice("normalize", normalize, ("none", "mean"))
    self.window = window_options(
      type(self), window_shape, strides, padding, dilation=dilation, ceil_mode=ceil_mode
    )
    self.dpp_params = parameters(dpp.init_dpp_params(features, window_shape, variant=variant))
    self.pool_options = dict(reward=reward, normalize=normalize)

  def __call__(self, x: jax.typing.ArrayLike) -> jax.Array:
    x = jax.numpy.asarray(x)
    alpha, lam, reference = dpp.dpp_arguments(values(self.dpp_params), x, **self.window)
    return jaxpool.dpp_pool(x, alpha, lam, reference=reference, **self.window, **self.pool_options)
