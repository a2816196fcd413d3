"""Eager calls as one compiled program, as ``jax.numpy``'s functions run.

A pooling operator is a chain of many primitives. Called eagerly (no traced
argument), JAX would dispatch, and compile once per shape, every primitive on
its own; `compiled_when_eager` instead runs the whole function as one
``jax.jit`` program, cached by its options. Under ``jit``, ``grad``, ``vmap``
or any other trace the function itself runs, so it inlines into the caller's
program exactly as written.

The array arguments (``jax.Array`` or NumPy arrays, alone or in a tuple or
list) are the program's inputs (a NumPy array that ``jit`` would narrow to
32 bits is not: the function runs as written); every other argument (numbers, strings,
tuples, callables, dtypes, ``None``) is part of the cache key. A function
whose behaviour depends on the *values* of some array arguments (checks
that inspect them, or output shapes they fix) names them in ``inspects``:
when one of those is a concrete array, the function runs eagerly as
written, so its checks and static shapes see the values.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

import jax
import numpy as np

__all__ = ["compiled_when_eager"]

F = TypeVar("F", bound=Callable[..., Any])


def _is_array(value) -> bool:
  return isinstance(value, (jax.Array, np.ndarray))


def _narrowed(value) -> bool:
  """A NumPy array that ``jit`` would narrow (64-bit without ``jax_enable_x64``):
  the function itself may read it first (e.g. out-of-range int64 indices)."""
  return isinstance(value, np.ndarray) and jax.dtypes.canonicalize_dtype(value.dtype) != value.dtype


def _kind(value) -> str:
  """``"array"`` when every leaf is an array (the program's input),
  ``"option"`` when none is, ``"mixed"`` otherwise (also for an array
  ``jit`` would narrow)."""
  leaves = jax.tree.leaves(value)
  arrays = sum(map(_is_array, leaves))
  if arrays == 0:
    return "option"
  if arrays < len(leaves) or any(map(_narrowed, leaves)):
    return "mixed"
  return "array"


def _cache_key(value):
  """An option as a hashable key: lists as tuples, recursively
  (``padding=[(1, 0), (0, 1)]`` is an option like its tuple), each leaf
  with its type, so ``True``, ``1`` and ``1.0`` (equal in Python) do not
  share a program: a check may accept one and reject another."""
  if isinstance(value, (list, tuple)):
    return tuple(_cache_key(v) for v in value)
  return (type(value), value)


def _option(key):
  """The option a `_cache_key` was made from (lists come back as
  tuples)."""
  if isinstance(key, tuple) and not (len(key) == 2 and isinstance(key[0], type)):
    return tuple(_option(k) for k in key)
  return key[1]


def compiled_when_eager(*, inspects: tuple[str, ...] = ()) -> Callable[[F], F]:
  """Decorates a public operator: an eager call runs as one cached
  ``jax.jit`` program; a traced call, or a call whose ``inspects``
  arguments are concrete arrays, runs the function as written."""

  def decorate(function: F) -> F:
    signature = inspect.signature(function)

    @functools.partial(jax.jit, static_argnums=0)
    def program(options, arrays):
      return function(**{name: _option(key) for name, key in options}, **arrays)

    @functools.wraps(function)
    def operator(*args, **kwargs):
      if any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves((args, kwargs))):
        return function(*args, **kwargs)
      try:
        bound = signature.bind(*args, **kwargs)
      except TypeError:
        return function(*args, **kwargs)  # the function's own error
      arguments = bound.arguments
      if any(_kind(arguments.get(name)) != "option" for name in inspects):
        return function(*args, **kwargs)
      arrays, options = {}, []
      for name, value in arguments.items():
        kind = _kind(value)
        if kind == "mixed":
          return function(*args, **kwargs)
        if kind == "array":
          arrays[name] = value
        else:
          options.append((name, _cache_key(value)))
      options = tuple(options)
      try:
        hash(options)
      except TypeError:
        return function(*args, **kwargs)
      return program(options, arrays)

    return operator  # type: ignore[return-value]

  return decorate
