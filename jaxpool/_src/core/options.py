"""Checks of a function's options without its array inputs, for layers that
bind the options at construction (so a bad option fails there, not at the
first call).

`check_options` runs the window checks for every function with a
``window_shape`` and the checks a family registered for its function
(`register_option_check`), each raising the function's own error.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from jaxpool._src.core.geometry import check_window_options

__all__ = ["check_layer_options", "check_options", "register_option_check"]

_CHECKS: dict[Callable[..., Any], Callable[..., Any]] = {}
_OWN_WINDOW_CHECKS: set[Callable[..., Any]] = set()


def register_option_check(
  function: Callable[..., Any], check: Callable[..., Any], *, checks_window: bool = False
) -> None:
  """``check(**options)`` raises ``function``'s error for a bad option;
  ``options`` are the function's non-array arguments, defaults applied
  (``check`` may take ``**_`` for the ones it does not read). With
  ``checks_window`` the check also validates ``window_shape``, ``strides``
  and ``padding`` itself (a filter's window, whose padding follows other
  rules than a pooling window's)."""
  _CHECKS[function] = check
  if checks_window:
    _OWN_WINDOW_CHECKS.add(function)


def check_options(function: Callable[..., Any], options: dict[str, Any]) -> None:
  """Raises what ``function`` would raise for ``options`` (its non-array
  arguments by name, defaults included) before it looks at an input."""
  if options.get("window_shape") is not None and function not in _OWN_WINDOW_CHECKS:
    check_window_options(
      options["window_shape"],
      options.get("strides"),
      options.get("padding", "VALID"),
      dilation=options.get("dilation"),
      ceil_mode=options.get("ceil_mode", False),
    )
  check = _CHECKS.get(function)
  if check is not None:
    check(**options)


def check_layer_options(owner: str, function: Callable[..., Any] | None, options: dict) -> None:
  """`check_options` for a layer named ``owner`` that binds ``options``
  (some of ``function``'s arguments by name; the others take their
  defaults, and names the function lacks are the layer's own): the error
  names the layer."""
  if function is not None:
    params = inspect.signature(function).parameters
    options = {
      **{k: p.default for k, p in params.items() if p.default is not p.empty},
      **{k: v for k, v in options.items() if k in params},
    }
  try:
    check_options(function, options)
  except (TypeError, ValueError) as error:
    raise type(error)(f"{owner}: {error}") from None


def bound_options(function: Callable[..., Any], arrays: tuple[str, ...], *args, **kwargs):
  """``function``'s arguments after its ``arrays``, bound by name with the
  defaults applied (a ``TypeError`` for an unknown or missing one)."""
  bound = inspect.signature(function).bind(*(None,) * len(arrays), *args, **kwargs)
  bound.apply_defaults()
  return {k: v for k, v in bound.arguments.items() if k not in arrays}
