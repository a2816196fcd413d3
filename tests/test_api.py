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
  ``features`` is keyword-only in every layer with a window or an output
  shape, and the one positional argument of an NNX head that has neither
  (``MAPHead(features, *, num_heads)``, as Flax's ``nnx.Linear``).
"""

import inspect
import pathlib
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxpool
from jaxpool import linen as jplinen
from jaxpool import nnx as jpnnx
from jaxpool._src.layers import LAYERS as LAYER_SPECS

ROOT = pathlib.Path(__file__).resolve().parents[1]
PUBLIC = [getattr(jaxpool, name) for name in jaxpool.__all__]
ARRAYS = (
  "x",
  "y",
  "boxes",
  "bands",
  "logits",
  "gate",
  "alpha",
  "lam",
  "indices",
  "centers",
  "p",
  "r",
  "params",  # the attention heads' parameter trees
)
INPUTS = ("x", "bands")
SPECS = [
  (),
  ("window_shape",),
  ("window_shape", "strides"),
  ("levels",),
  ("kernel_sizes",),
  ("kernel_size", "repeats"),  # pyramids
  ("window_shape", "strides", "padding"),
  ("output_shape",),
  ("output_shape", "delta"),
]  # dyno_pool's cell size, then its offsets

# Function -> its layer classes (the same names in jaxpool.nnx and
# jaxpool.linen), from the layer specs: names are chosen there, not derived.
LAYERS = {
  fn.__name__: tuple(name for name, spec in LAYER_SPECS.items() if fn in spec.functions)
  for fn in PUBLIC
}
# Layers only NNX has (DynOPool: its output size is state that changes
# between steps; a Linen module's shapes come from its attributes).
NNX_ONLY = {name for name, spec in LAYER_SPECS.items() if "linen" not in spec.apis}
NNX_ONLY_NAMES = {pool for name in NNX_ONLY for pool in LAYER_SPECS[name].pools}
NNX_BASES = {
  "FunctionLayer",
  "LearnedLayer",
  "PoolLayer",
  "RandomLayer",
  "Sketch",
}  # Sketch: CompactBilinearPool's variable type
LINEN_BASES = {
  "FunctionModule",
  "PoolModule",
  "RandomFunctionModule",
  "RandomModule",
  "WindowModule",
}


def _layer_classes(module, bases):
  return [
    getattr(module, name)
    for name in module.__all__
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
  head = positional == ["features"]  # an NNX head without a window
  assert head or tuple(positional) in SPECS, (
    f"{owner}: after the arrays only the window triple (or output_shape) is"
    f" positional; got {positional}"
  )
  for p in params:
    if p.name == "key":
      assert p.kind is p.KEYWORD_ONLY and p.default is None, (
        f"{owner}: key is keyword-only, None for inference"
      )
    if p.name == "features" and not head:
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
  assert all(LAYERS.values()), {f for f, layers in LAYERS.items() if not layers}
  assert {fn for spec in LAYER_SPECS.values() for fn in spec.functions} <= set(PUBLIC)
  for module, bases in ((jpnnx, NNX_BASES), (jplinen, LINEN_BASES)):
    named = {n for names in LAYERS.values() for n in names}
    if module is jplinen:
      named -= NNX_ONLY
    public = {c.__name__ for c in _layer_classes(module, bases)}
    assert named == public, f"{module.__name__}: {named ^ public}"


def test_every_public_function_has_an_operator_table_row():
  from cases import BY_ID, EXEMPT

  missing = [name for name in jaxpool.__all__ if name not in BY_ID and name not in EXEMPT]
  assert not missing, f"add a tests/cases.py row (or an EXEMPT reason) for {missing}"
  assert set(EXEMPT) <= set(jaxpool.__all__) - set(BY_ID)


def test_every_layer_is_documented():
  for module in (jpnnx, jplinen):
    for name in module.__all__:
      assert inspect.getdoc(getattr(module, name)), f"{module.__name__}.{name}"


def test_both_apis_register_the_names_of_the_specs():
  for module, api in ((jpnnx, "nnx"), (jplinen, "linen")):
    specs = {n: s for n, s in LAYER_SPECS.items() if api in s.apis}
    assert set(module.available_pools()) == {p for s in specs.values() for p in s.pools}
    for name, spec in specs.items():
      for pool, defaults in spec.pools.items():
        assert module.make_pool.__globals__["_REGISTRY"].lookup(pool) == (
          getattr(module, name),
          defaults,
        )
  assert NNX_ONLY_NAMES <= set(jpnnx.available_pools())
  assert sorted(set(jpnnx.available_pools()) - NNX_ONLY_NAMES) == list(jplinen.available_pools())


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


# ---------------------------------------------------------------------------
# NNX / Linen parity: the same options, defaults and construction checks.
# ---------------------------------------------------------------------------

# Options one API has by its framework's convention, with the reason.
API_CONVENTIONS = {
  # nnx.Dropout trains by default; nn.Dropout takes it as a field or call argument.
  "deterministic": "default differs",
  # NNX makes parameters at construction; Linen infers features at init.
  "features": "nnx",
  "features_y": "nnx",
  "rngs": "nnx",
  # Linen's BatchNorm convention; NNX's batch norm follows model.eval().
  "use_running_average": "linen",
}
# A value each option rejects (the same error type in both APIs).
BAD = {
  "window_shape": (0, 2),
  "strides": 0,
  "padding": "NOPE",
  "dilation": 0,
  "ceil_mode": "yes",
  "count_include_pad": "yes",
  "divisor": 0,
  "p": -1.0,
  "even": "nope",
  "combine": "nope",
  "output_shape": (0, 2),
  "keepdims": "yes",
  "spatial_ndim": 0,
  "spatial_dims": 0,
  "grid_shape": (0, 2),
  "shared": "yes",
  "inference": "nope",
  "regions": "nope",
  "overlapping": "yes",
  "output_ratio": 2.0,
  "samples": "nope",
  "alpha": 2.0,
  "granularity": "nope",
  "per_feature": "yes",
  "bottleneck_width": 0,
  "logit_module": "nope",
  "normalize": "nope",
  "reward": "nope",
  "variant": "nope",
  "kernel_size": 0,
  "mixing": "nope",
  "output": "nope",
  "wavelet": "nope",
  "learned": "yes",
  "lambda_u": -1.0,
  "lambda_p": -1.0,
  "eps": -1.0,
  "iterations": 0,
  "reduce_dim": 0,
  "output_dim": 0,
  "clusters": 0,
  "kmeans_iterations": -1,
  "normalize_input": "yes",
  "levels": (0,),
  "mode": "nope",
  "kernel_sizes": (0,),
  "order": "nope",
  "repeats": 0,
  "out_features": 0,
  "spatial_scale": -1.0,
  "sampling_ratio": 1.5,
  "aligned": "no",
  "max_sampling_ratio": 0,
  "box_gradient": "no",
  "image_shape": (0, 32),
  "canonical_scale": -1.0,
  "canonical_level": "four",
  "num_heads": 0,
  "mlp_dim": 0,
  "feature_shape": (0, 2),
  "gamma": -1.0,
  "qkv_bias": "yes",
}
REQUIRED = {
  "window_shape": (2, 2),
  "p": 2.0,
  "output_shape": (2, 2),
  "features": 4,
  "output_dim": 8,
  "clusters": 2,
  "image_shape": (32, 32),
  "num_heads": 2,
  "feature_shape": (2, 2),
}
PAIRED = [
  name for name, spec in LAYER_SPECS.items() if "linen" in spec.apis and name != "LiftUpPool"
]


def _nnx_options(cls):
  from jaxpool.nnx._base import constructor_parameters

  return {
    k: p
    for k, p in constructor_parameters(cls).items()
    if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
  }


def _linen_fields(cls):
  import dataclasses

  return {
    f.name: (inspect.Parameter.empty if f.default is dataclasses.MISSING else f.default)
    for f in dataclasses.fields(cls)
    if f.name not in ("parent", "name")
  }


@pytest.mark.parametrize("name", PAIRED + ["LiftUpPool"])
def test_every_nnx_option_is_a_linen_field_with_the_same_default(name):
  nnx_cls, linen_cls = getattr(jpnnx, name), getattr(jplinen, name)
  nnx_options = {k: p.default for k, p in _nnx_options(nnx_cls).items()}
  fields = _linen_fields(linen_cls)
  nnx_options = {
    k: v for k, v in nnx_options.items() if k in fields or API_CONVENTIONS.get(k) != "nnx"
  }
  fields = {
    k: v for k, v in fields.items() if k in nnx_options or API_CONVENTIONS.get(k) != "linen"
  }
  # An NNX layer that passes **options on to its function takes those fields.
  variadic = any(
    p.kind is p.VAR_KEYWORD for p in inspect.signature(nnx_cls.__init__).parameters.values()
  )
  extra = set(fields) - set(nnx_options)
  if variadic:
    extra -= set(inspect.signature(LAYER_SPECS[name].function).parameters)
  assert set(nnx_options) <= set(fields) and not extra, set(nnx_options) ^ set(fields)
  for option, default in nnx_options.items():
    if API_CONVENTIONS.get(option) != "default differs":
      assert fields[option] == default, (option, default, fields[option])


def _construct(cls, api, option, value):
  from flax import nnx

  params = (
    _nnx_options(cls)
    if api == "nnx"
    else {
      k: inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY, default=d)
      for k, d in _linen_fields(cls).items()
    }
  )
  kwargs = {k: REQUIRED[k] for k, p in params.items() if p.default is p.empty and k in REQUIRED}
  if "rngs" in params:
    kwargs["rngs"] = nnx.Rngs(0)
  kwargs[option] = value
  return cls(**kwargs)


@pytest.mark.parametrize("name", PAIRED)
def test_both_apis_check_each_option_at_construction_alike(name):
  nnx_cls, linen_cls = getattr(jpnnx, name), getattr(jplinen, name)
  shared = set(_nnx_options(nnx_cls)) & set(_linen_fields(linen_cls))
  checked = 0
  for option in sorted(shared & set(BAD)):
    errors = []
    for cls, api in ((nnx_cls, "nnx"), (linen_cls, "linen")):
      try:
        _construct(cls, api, option, BAD[option])
      except (TypeError, ValueError) as error:
        errors.append(type(error))
      else:
        errors.append(None)
    assert errors[0] is errors[1], (option, BAD[option], errors)
    checked += 1
  assert checked or not shared - set(API_CONVENTIONS), shared


def _compiles(call):
  """How many XLA programs ``call()`` compiles."""
  events = []

  def listen(event, duration, **_):
    if event == "/jax/core/compile/backend_compile_duration":
      events.append(duration)

  jax.monitoring.register_event_duration_secs_listener(listen)
  try:
    jax.block_until_ready(call())
  finally:
    jax.monitoring.unregister_event_duration_listener(listen)
  return len(events)


@pytest.mark.parametrize("name", jaxpool.__all__)
def test_every_operator_compiles_eager_calls_as_one_program(name):
  # The RoI operators read concrete boxes on the host first, then run one
  # compiled kernel of their own.
  function = getattr(jaxpool, name)
  if name in ("roi_align", "roi_pool", "multi_scale_roi_align", "ps_roi_align", "ps_roi_pool"):
    assert not hasattr(function, "__wrapped__")
  else:
    assert function.__wrapped__.__name__ == name


def test_an_eager_call_is_one_cached_program_and_a_traced_call_inlines():
  x = jnp.arange(2 * 7 * 9 * 3, dtype=jnp.float32).reshape(2, 7, 9, 3)  # a shape of its own
  pool = lambda: jaxpool.max_pool(x, [2, 3], padding=[(1, 0), (0, 1)])  # noqa: E731
  assert _compiles(pool) == 1
  assert _compiles(pool) == 0  # lists are options like tuples: the same key
  np.testing.assert_array_equal(
    pool(), jax.jit(lambda v: jaxpool.max_pool(v, (2, 3), padding=((1, 0), (0, 1))))(x)
  )
  jaxpr = jax.make_jaxpr(lambda v: jaxpool.max_pool(v, (2, 3)))(x)
  assert "max_pool" not in str(jaxpr)  # no nested program named after it
  # True and 1 are equal in Python but not as options: no shared program.
  jaxpool.max_pool(x, (2, 2), ceil_mode=True)
  with pytest.raises(TypeError, match="ceil_mode"):
    jaxpool.max_pool(x, (2, 2), ceil_mode=1)


def test_value_checks_still_see_concrete_arrays():
  # mixed_pool inspects alpha: a concrete array is range-checked as before.
  x = jnp.ones((1, 4, 4, 2))
  with pytest.raises(ValueError, match="alpha must lie in"):
    jaxpool.mixed_pool(x, (2, 2), alpha=jnp.asarray(1.5))
