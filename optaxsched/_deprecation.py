"""Renamed keyword arguments that keep working, with a warning, for one minor version (private).

An argument renamed to follow optax's words (``power(max_value=...)`` -> ``peak_value``; WSD's
``decay_steps``, the decay phase, -> ``cooldown_steps``, because optax's ``decay_steps`` is the
whole horizon) is accepted under its old name until :data:`REMOVED_IN`, with a
``DeprecationWarning`` that names the new one.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import ParamSpec, TypeVar

__all__ = ["REMOVED_IN", "renamed_arguments"]

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

        return wrapper

    return decorate
