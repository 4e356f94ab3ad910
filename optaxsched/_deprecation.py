"""Old names that keep working, with a warning, for one minor version (private).

Two kinds of move are covered. An argument renamed to follow optax's words
(``power(max_value=...)`` -> ``peak_value``; WSD's ``decay_steps``, the decay phase, ->
``cooldown_steps``, because optax's ``decay_steps`` is the
whole horizon) is accepted under its old name until :data:`REMOVED_IN`, with a
``DeprecationWarning`` that names the new one (:func:`renamed_arguments`). A module made private
(``optaxsched.spikes`` -> ``optaxsched._spam``, whose public names are re-exported by
``optaxsched``) stays importable under its old path: :func:`register_moved_modules` puts a stand-in
module in ``sys.modules`` whose attributes warn and resolve to the public names
(``from optaxsched.spikes import spam`` is ``optaxsched.spam``). An old name with no public home
(a constant that is now only a default in a signature) is an :class:`Internal`: it resolves to
the private value, and its warning says what to do instead; no warning names a private module.
The stand-ins are registered in ``sys.modules`` directly, not imported, so the import system never
binds them as attributes of the package: the function ``optaxsched.nap`` stays the function.
"""

from __future__ import annotations

import functools
import importlib
import sys
import types
import warnings
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, ParamSpec, TypeVar

__all__ = ["REMOVED_IN", "Internal", "MovedModule", "register_moved_modules",
           "renamed_arguments"]

REMOVED_IN = "0.2.0"

_P = ParamSpec("_P")
_R = TypeVar("_R")


def renamed_arguments(**old_to_new: str) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]:
    """Decorator: each ``old=`` keyword is passed on as ``new=``, with a DeprecationWarning.

    The wrapped function keeps its signature (``inspect.signature`` follows ``__wrapped__``), so
    the CLI and the docs show only the new names. Giving both names is a TypeError, as Python
    reports a repeated keyword.
    """

    def decorate(func: Callable[_P, _R]) -> Callable[_P, _R]:
        name = func.__name__

        @functools.wraps(func)
        def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            for old, new in old_to_new.items():
                if old not in kwargs:
                    continue
                if new in kwargs:
                    raise TypeError(f"{name}: got both {new}= and its deprecated name {old}=; "
                                    f"pass only {new}=.")
                warnings.warn(f"{name}: the argument {old}= is deprecated and will be removed "
                              f"in optaxsched {REMOVED_IN}; use {new}= instead.",
                              DeprecationWarning, stacklevel=2)
                kwargs[new] = kwargs.pop(old)
            return func(*args, **kwargs)

        # For callers that check keywords against the signature (optaxsched.get_schedule):
        # the old names are still accepted, with the warning.
        wrapper.renamed_arguments = dict(old_to_new)  # type: ignore[attr-defined]
        return wrapper

    return decorate


class Internal(NamedTuple):
    """An old public name whose value is now internal (no public name to point users at).

    Attributes:
      target: where the value lives, ``"module.path:attr"`` (never shown to users).
      advice: what to do instead, the end of the warning: which argument of which public function
        takes the value, or that it goes away.
    """

    target: str
    advice: str


def _is_private(dotted: str) -> bool:
    return any(part.startswith("_") for part in dotted.split("."))


class MovedModule(types.ModuleType):
    """Stand-in for a module that moved: each public name warns, then resolves where it lives now.

    Args:
      name: the old dotted module path, e.g. ``"optaxsched.spikes"``.
      names: old attribute name -> its new home: ``"spam"`` (an attribute of ``optaxsched``),
        ``"module.path:attr"`` in a public module, or an :class:`Internal` for a value that has
        no public name.

    Raises:
      ValueError: a home (a string) in a private module: the warning would send users to a
        private name, so such a value must be an :class:`Internal` with its advice.
    """

    def __init__(self, name: str, names: Mapping[str, str | Internal]) -> None:
        for attr, home in names.items():
            if isinstance(home, str) and _is_private(home.replace(":", ".")):
                raise ValueError(f"MovedModule: {name}.{attr} would point users at the private "
                                 f"name {home!r}; give an Internal(target, advice) instead.")
        super().__init__(name, f"Deprecated: the public names of {name} are in optaxsched.")
        self.__all__ = list(names)
        self._moved_names = dict(names)

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__") or attr not in self._moved_names:
            raise AttributeError(f"module {self.__name__!r} has no attribute {attr!r} (it is "
                                 f"deprecated; its public names are in optaxsched)")
        home = self._moved_names[attr]
        deprecated = (f"{self.__name__}.{attr} is deprecated and will be removed in optaxsched "
                      f"{REMOVED_IN}")
        if isinstance(home, Internal):
            module, _, new = home.target.rpartition(":")
            warnings.warn(f"{deprecated}; {home.advice}", DeprecationWarning, stacklevel=2)
        else:
            module, _, new = home.rpartition(":")
            module = module or "optaxsched"
            warnings.warn(f"{deprecated}; use {module}.{new} instead.", DeprecationWarning,
                          stacklevel=2)
        return getattr(importlib.import_module(module), new)

    def __dir__(self) -> list[str]:
        return sorted(self._moved_names)


def register_moved_modules(
        moved: Mapping[str, Mapping[str, str | Internal]]) -> dict[str, MovedModule]:
    """Registers a :class:`MovedModule` in ``sys.modules`` for each old path; returns them."""
    stand_ins = {}
    for name, names in moved.items():
        stand_in = sys.modules.setdefault(name, MovedModule(name, names))
        if isinstance(stand_in, MovedModule):
            stand_ins[name] = stand_in
    return stand_ins
