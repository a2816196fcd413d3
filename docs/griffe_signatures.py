"""Griffe extension for the docs: the constructor signatures of the layers.

Most of jaxpool's layers get their constructor at import time, which static
analysis cannot see: an NNX function layer (``class MaxPool(FunctionLayer,
spec="MaxPool")``) gets a generated ``__signature__`` (its function's
arguments after the array inputs), and a Linen layer is a dataclass whose
fields are made from the same spec. This extension imports ``jaxpool.nnx``
and ``jaxpool.linen`` and gives every exported class without an ``__init__``
of its own in the source an ``__init__`` with the runtime parameters, so
``merge_init_into_class`` shows the signature. Annotations and defaults are
taken from the statically loaded function where the parameter comes from
one (defaults only where the layer keeps the function's), else from the
runtime signature. Linen's ``parent`` is left out.

Used from mkdocs.yml (``extensions: [docs/griffe_signatures.py]``).
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect

import griffe

_MODULES = ("jaxpool.nnx", "jaxpool.linen")
_HIDDEN = {"self", "parent"}


def _runtime_parameters(cls: type) -> list[inspect.Parameter]:
  signature = cls.__dict__.get("__signature__")
  if signature is None:
    if not dataclasses.is_dataclass(cls):
      return []
    signature = inspect.signature(cls.__init__)
  return [p for name, p in signature.parameters.items() if name not in _HIDDEN]


def _static_function(pkg: griffe.Module, function) -> griffe.Function | None:
  module = getattr(function, "__module__", "") or ""
  if not module.startswith(f"{pkg.name}."):
    return None
  try:
    found = pkg[f"{module.removeprefix(pkg.name + '.')}.{function.__name__}"]
  except (KeyError, AttributeError):
    return None
  return found if isinstance(found, griffe.Function) else None


def _annotation(parameter: inspect.Parameter) -> str | None:
  if parameter.annotation is parameter.empty:
    return None
  if isinstance(parameter.annotation, str):
    return parameter.annotation
  return inspect.formatannotation(parameter.annotation)


def _same_default(function, parameter: inspect.Parameter) -> bool:
  try:
    original = inspect.signature(function).parameters[parameter.name].default
  except (KeyError, TypeError, ValueError):
    return False
  if original is parameter.default:
    return True
  try:
    return type(original) is type(parameter.default) and bool(original == parameter.default)
  except Exception:
    return False


class LayerSignatures(griffe.Extension):
  """Adds the runtime constructor of jaxpool's layers as their ``__init__``."""

  def on_package(self, *, pkg: griffe.Module, **kwargs) -> None:
    if pkg.name != "jaxpool":
      return
    for module_name in _MODULES:
      runtime = importlib.import_module(module_name)
      static = pkg[module_name.removeprefix("jaxpool.")]
      for name in getattr(runtime, "__all__", ()):
        value = getattr(runtime, name)
        if not inspect.isclass(value):
          continue
        try:
          cls = static[name]
          if cls.is_alias:
            cls = cls.final_target
        except (KeyError, griffe.AliasResolutionError, griffe.CyclicAliasError):
          continue
        if not isinstance(cls, griffe.Class) or "__init__" in cls.members:
          continue
        parameters = _runtime_parameters(value)
        if not parameters:
          continue
        function = getattr(value, "function", None)
        source = _static_function(pkg, function) if function is not None else None
        params = [griffe.Parameter("self", kind=griffe.ParameterKind.positional_or_keyword)]
        for p in parameters:
          kind = griffe.ParameterKind[p.kind.name.lower()]
          default = None if p.default is p.empty else repr(p.default)
          annotation = _annotation(p)
          if source is not None and p.name in source.parameters:
            sp = source.parameters[p.name]
            annotation = sp.annotation
            # The source's text for the default, unless the layer changed it
            # (e.g. Linen's LIP: window (3, 3), stride 2, padding 1).
            if _same_default(function, p):
              default = sp.default
          params.append(griffe.Parameter(p.name, annotation=annotation, kind=kind, default=default))
        init = griffe.Function(
          "__init__",
          parameters=griffe.Parameters(*params),
          returns="None",
          lineno=cls.lineno,
          endlineno=cls.lineno,
        )
        cls.set_member("__init__", init)
