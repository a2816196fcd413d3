"""Public API conventions (dm-pix style) and packaging facts.

The argument rule, for every public function and layer constructor:

* arrays positional: ``x`` (``bands`` for ``lift_up_pool``'s sub-bands),
  then the required learned arrays (``logits``, ``gate``, ``alpha``,
  ``lam``) or ``indices``;
* then the window triple ``window_shape, strides=None, padding="VALID"`` (or a
  prefix of it) where the operator has windows, or ``output_shape`` where the
  output size is given instead (``dyno_pool``: ``output_shape, delta``, the
  cells and the offsets of their queries);
* everything else keyword-only; random draws take ``key`` (never ``rng``);
  ``features`` is keyword-only in every layer.
"""

import inspect
import pathlib
import re
import subprocess
import sys

import pytest

import jaxpool
from jaxpool import linen as jplinen
from jaxpool import nnx as jpnnx

ROOT = pathlib.Path(__file__).resolve().parents[1]
PUBLIC = [getattr(jaxpool, name) for name in jaxpool.__all__]
ARRAYS = ("x", "y", "boxes", "bands", "logits", "gate", "alpha", "lam", "indices", "centers")
INPUTS = ("x", "bands")
SPECS = [(), ("window_shape",), ("window_shape", "strides"),
         ("levels",), ("kernel_sizes",), ("kernel_size", "repeats"),  # pyramids
         ("window_shape", "strides", "padding"), ("output_shape",),
         ("output_shape", "delta")]  # dyno_pool's cell size, then its offsets

# Function -> its layer classes (the same names in jaxpool.nnx and
# jaxpool.linen). An explicit table: names are chosen, not derived.
LAYERS = {
    "adaptive_avg_pool": ("AdaptiveAvgPool",),
    "adaptive_max_pool": ("AdaptiveMaxPool",),
    "avg_max_pool": ("AvgMaxPool",),
    "avg_pool": ("AvgPool",),
    "bilinear_pool": ("BilinearPool",),
    "compact_bilinear_pool": ("CompactBilinearPool",),
    "covariance_pool": ("CovariancePool",),
    "dpp_pool": ("DPP",),
    "dyno_pool": ("DynOPool",),
    "fractional_max_pool": ("FractionalMaxPool",),
    "gated_pool": ("GatedPool",),
    "global_avg_pool": ("GlobalAvgPool",),
    "global_max_pool": ("GlobalMaxPool",),
    "lift_down_pool": ("LiftDownPool",),
    "lift_down_pool_with_constraints": ("LiftDownPool",),
    "lift_pool": ("LiftDownPool",),
    "lift_up_pool": ("LiftUpPool",),
    "lip_pool": ("LipPool", "LIP"),
    "lp_pool": ("LpPool",),
    "max_pool": ("MaxPool",),
    "max_pool_with_indices": ("MaxPoolWithIndices",),
    "max_unpool": ("MaxUnpool",),
    "median_pool": ("MedianPool",),
    "min_pool": ("MinPool",),
    "mixed_pool": ("MixedPool", "LearnedMixedPool"),
    "multi_scale_roi_align": ("MultiScaleRoIAlign",),
    "netvlad": ("NetVLAD",),
    "roi_align": ("RoIAlign",),
    "roi_pool": ("RoIPool",),
    "s3_pool": ("S3Pool",),
    "soft_pool": ("SoftPool",),
    "spatial_pyramid_pool": ("SpatialPyramidPool",),
    "spp_block": ("SPPBlock",),
    "sppf": ("SPPF",),
    "stochastic_pool": ("StochasticPool",),
}
# Layers only NNX has, with the reason. DynOPool's output size is state that
# changes between steps; a Linen module's shapes come from its attributes,
# so the model would have to be rebuilt by the user at every size change.
NNX_ONLY = {"DynOPool"}
NNX_ONLY_NAMES = {"dyno"}
NNX_BASES = {"FunctionLayer", "LearnedLayer", "PoolLayer", "RandomLayer",
             "Sketch"}  # Sketch: CompactBilinearPool's variable type
LINEN_BASES = {"PoolModule", "RandomModule", "WindowModule"}


def _layer_classes(module, bases):
  return [
      getattr(module, name) for name in module.__all__
      if isinstance(getattr(module, name), type) and name not in bases
  ]


def _check_argument_rule(owner, signature, arrays_allowed):
  params = [p for p in signature.parameters.values() if p.name not in ("self", "parent", "name")]
  positional = [p.name for p in params if p.kind is not inspect.Parameter.KEYWORD_ONLY]
  for p in params:
    assert p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or p.name in ("options", "kwargs"), (
        f"{owner}: *{p.name} hides the signature"
    )
    assert p.name != "rng", f"{owner}: random draws take `key`, not `rng`"
  positional = [n for n in positional if n not in ("options", "kwargs")]
  arrays = []
  while positional and positional[0] in (ARRAYS if arrays_allowed else ()):
    arrays.append(positional.pop(0))
  if arrays_allowed:
    assert arrays and arrays[0] in INPUTS, f"{owner}: the input comes first, as x"
  assert tuple(positional) in SPECS, (
      f"{owner}: after the arrays only the window triple (or output_shape) is"
      f" positional; got {positional}"
  )
  for p in params:
    if p.name == "key":
      assert p.kind is p.KEYWORD_ONLY and p.default is None, f"{owner}: key is keyword-only, None for inference"
    if p.name == "features":
      assert p.kind is p.KEYWORD_ONLY, f"{owner}: features is keyword-only"


def test_import_jaxpool_does_not_import_flax():
  code = "import sys, jaxpool; sys.exit('flax' in sys.modules)"
  assert subprocess.run([sys.executable, "-c", code]).returncode == 0


@pytest.mark.parametrize("fn", PUBLIC, ids=jaxpool.__all__)
def test_every_public_function_is_documented_with_an_example(fn):
  doc = inspect.getdoc(fn)
  assert doc and "Args:" in doc and "Returns:" in doc and "Examples:" in doc and ">>>" in doc


@pytest.mark.parametrize("fn", PUBLIC, ids=jaxpool.__all__)
def test_functions_follow_the_argument_rule(fn):
  _check_argument_rule(fn.__name__, inspect.signature(fn), arrays_allowed=True)


@pytest.mark.parametrize(
    "layer",
    _layer_classes(jpnnx, NNX_BASES) + _layer_classes(jplinen, LINEN_BASES),
    ids=lambda c: f"{c.__module__.split('.')[1]}.{c.__name__}",
)
def test_layer_constructors_follow_the_argument_rule(layer):
  # NNX's metaclass hides __init__ behind (*args, **kwargs); function layers
  # publish their constructor as __signature__.
  signature = getattr(layer, "__signature__", None) or inspect.signature(layer.__init__)
  _check_argument_rule(layer.__name__, signature, arrays_allowed=False)


def test_every_function_has_its_layers_in_both_apis():
  assert sorted(LAYERS) == sorted(jaxpool.__all__)
  for module, bases in ((jpnnx, NNX_BASES), (jplinen, LINEN_BASES)):
    named = {n for names in LAYERS.values() for n in names}
    if module is jplinen:
      named -= NNX_ONLY
    public = {c.__name__ for c in _layer_classes(module, bases)}
    assert named == public, f"{module.__name__}: {named ^ public}"


def test_every_layer_is_documented():
  for module in (jpnnx, jplinen):
    for name in module.__all__:
      assert inspect.getdoc(getattr(module, name)), f"{module.__name__}.{name}"


def test_both_apis_register_the_same_names():
  nnx_names = set(jpnnx.available_pools())
  assert NNX_ONLY_NAMES <= nnx_names
  assert sorted(nnx_names - NNX_ONLY_NAMES) == list(jplinen.available_pools())


@pytest.mark.parametrize("module", [jpnnx, jplinen], ids=["nnx", "linen"])
def test_register_pool_accepts_only_layer_classes(module):
  for bad in (42, "MaxPool", jaxpool.max_pool, module.MaxPool((2, 2))):
    with pytest.raises(TypeError, match="layer class"):
      module.register_pool("bad", bad)
  with pytest.raises(ValueError, match="non-empty string"):
    module.register_pool("", module.MaxPool)
  assert "bad" not in module.available_pools()


def test_ci_runs_the_readme_test_command():
  readme = (ROOT / "README.md").read_text()
  ci = (ROOT / ".ci" / "run").read_text()
  commands = re.findall(r"^(pip install -e \"\.\[test\]\".*pytest.*)$", readme, re.M)
  assert commands, "README gives no test command"
  assert commands[0] in ci
