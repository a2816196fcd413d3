"""NetVLAD against a float64 numpy loop over clusters, its k-means start
(both variants' assignment sharpness), errors and the layers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from derivatives import check_grads
from flax import nnx

import jaxpool
from jaxpool import linen as jplinen
from jaxpool import nnx as jpnnx
from jaxpool._src import netvlad


def _normal(shape, seed=0):
  return np.random.default_rng(seed).standard_normal(shape)


def _numpy_netvlad(x, centers, weights, bias, normalize_input=True):
  """Per cluster, as the paper writes it (float64)."""
  out = []
  for image in x.reshape(x.shape[0], -1, x.shape[-1]):
    if normalize_input:
      image = image / np.linalg.norm(image, axis=1, keepdims=True)
    logits = image @ weights + bias
    a = np.exp(logits - logits.max(axis=1, keepdims=True))
    a /= a.sum(axis=1, keepdims=True)
    v = np.stack(
      [(a[:, k : k + 1] * (image - centers[k])).sum(axis=0) for k in range(len(centers))]
    )
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    v = v.reshape(-1)
    out.append(v / np.linalg.norm(v))
  return np.stack(out)


@pytest.mark.parametrize("normalize_input", [True, False])
def test_matches_the_numpy_formula(normalize_input, x64):
  x = _normal((2, 4, 5, 6))
  centers, weights, bias = _normal((3, 6), 1), _normal((6, 3), 2), _normal((3,), 3)
  got = jaxpool.netvlad(
    x, centers, assign_weights=weights, assign_bias=bias, normalize_input=normalize_input
  )
  np.testing.assert_allclose(
    got, _numpy_netvlad(x, centers, weights, bias, normalize_input), rtol=1e-12, atol=1e-14
  )
  check_grads(
    lambda v, c, w, b: jaxpool.netvlad(v, c, assign_weights=w, assign_bias=b),
    (x, centers, weights, bias),
    order=1,
    modes=("rev",),
  )
  no_bias = jaxpool.netvlad(x, centers, assign_weights=weights)
  np.testing.assert_allclose(no_bias, _numpy_netvlad(x, centers, weights, np.zeros(3)), rtol=1e-12)


@pytest.mark.parametrize("variant", ["v2", "v1"])
def test_kmeans_start_finds_the_clusters_and_assigns_100_to_1(variant):
  rng = np.random.default_rng(0)
  true = np.eye(4, 8) * 3
  points = np.concatenate([c + 0.1 * rng.standard_normal((50, 8)) for c in true])
  params = netvlad.init_netvlad_params(jax.random.key(0), points, 4, variant=variant)
  unit = true / 3  # the descriptors are normalised first
  found = np.asarray(params["centers"])
  assert np.all(np.min(np.linalg.norm(found[:, None] - unit[None], axis=-1), axis=0) < 0.05)
  normalised = points / np.linalg.norm(points, axis=1, keepdims=True)
  logits = np.sort(
    normalised @ np.asarray(params["assign_weights"]) + np.asarray(params["assign_bias"]), 1
  )
  np.testing.assert_allclose(np.mean(logits[:, -1] - logits[:, -2]), np.log(100), rtol=1e-4)
  if variant == "v1":
    np.testing.assert_array_equal(params["assign_bias"], 0)


def test_layers_start_from_kmeans_and_agree_across_apis():
  x = jax.random.normal(jax.random.key(0), (2, 4, 4, 6))
  sample = np.asarray(jax.random.normal(jax.random.key(1), (300, 6)))
  for variant in ("v2", "v1"):
    head = jpnnx.NetVLAD(
      features=6, clusters=5, descriptors=sample, variant=variant, rngs=nnx.Rngs(0)
    )
    assert (head.assign_bias is None) == (variant == "v1")
    params = netvlad.init_netvlad_params(nnx.Rngs(0).params(), sample, 5, variant=variant)
    # The layer's key is the second draw of its stream; compare by values.
    bias = None if head.assign_bias is None else head.assign_bias[...]
    np.testing.assert_allclose(
      head(x),
      jaxpool.netvlad(
        x, head.centers[...], assign_weights=head.assign_weights[...], assign_bias=bias
      ),
      rtol=1e-6,
    )
    assert params["centers"].shape == head.centers[...].shape == (5, 6)
    assert head.feature_multiplier == 5
    linen = jplinen.NetVLAD(clusters=5, variant=variant)
    variables = {
      "params": {
        "vlad": {
          "centers": head.centers[...],
          "assign_weights": head.assign_weights[...],
          **({} if bias is None else {"assign_bias": bias}),
        }
      }
    }
    np.testing.assert_allclose(linen.apply(variables, x), head(x), rtol=1e-6)
    assert set(linen.init(jax.random.key(0), x)["params"]["vlad"]) == set(
      variables["params"]["vlad"]
    )
  grads = nnx.grad(lambda m: m(x).sum())(head)
  assert np.isfinite(grads["centers"][...]).all()
  with pytest.raises(ValueError, match="got descriptors with 5 features"):
    head.initialize(np.ones((10, 5)), key=jax.random.key(0))


@pytest.mark.parametrize(
  "kwargs,match",
  [
    ({"centers": jnp.ones((3, 5))}, "centers must have shape"),
    ({"assign_weights": jnp.ones((3, 4))}, "assign_weights must have shape"),
    ({"assign_bias": jnp.ones((4,))}, "assign_bias must have shape"),
    ({"centers": jnp.ones((0, 4)), "assign_weights": jnp.ones((4, 0))}, "at least one cluster"),
  ],
)
def test_clear_errors(kwargs, match):
  args = {"centers": jnp.ones((3, 4)), "assign_weights": jnp.ones((4, 3)), **kwargs}
  with pytest.raises(ValueError, match=match):
    jaxpool.netvlad(jnp.ones((2, 3, 3, 4)), args.pop("centers"), **args)
  with pytest.raises(ValueError, match="N >= clusters"):
    netvlad.init_netvlad_params(jax.random.key(0), np.ones((2, 4)), 3)
  with pytest.raises(ValueError, match="clusters >= 2"):
    jpnnx.NetVLAD(features=4, clusters=1, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="clusters >= 2"):
    jplinen.NetVLAD(clusters=1)
  # Issue 24: checked at construction, not at the first k-means.
  with pytest.raises(ValueError, match="kmeans_iterations must be an int >= 0"):
    jpnnx.NetVLAD(features=4, clusters=3, kmeans_iterations=-1, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="kmeans_iterations must be an int >= 0"):
    jplinen.NetVLAD(clusters=3, kmeans_iterations=-1)


@pytest.mark.parametrize("value", [1e30, -1e30])
def test_gradient_is_finite_for_huge_unnormalised_input(value):
  # Issue 24: an empty cluster's intra-normalisation has derivative 1 / eps;
  # times residuals of 1e30 that overflowed, and 0 * inf in the softmax's
  # derivative gave NaN.
  fn = lambda x: jaxpool.netvlad(
    x, jnp.eye(4, 3), assign_weights=jnp.ones((3, 4)) * jnp.arange(4.0), normalize_input=False
  )[:, 0].sum()
  x = jnp.full((2, 8, 8, 3), value)
  assert np.isfinite(float(fn(x)))
  assert np.isfinite(np.asarray(jax.grad(fn)(x))).all()
