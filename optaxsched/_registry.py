"""Schedules and optimizers by name, for configuration files and command lines.

``get_schedule("wsd", peak_value=3e-4, total_steps=10_000)`` is ``optaxsched.wsd(...)``;
``get_optimizer("spam", learning_rate=schedule)`` is ``optaxsched.spam(...)``. The names are the
factories' own names, so a config key and the Python call read the same; a name that is not
registered is a ``ValueError`` that lists the choices. Only optaxsched's own factories are
registered: optax's are reached as ``getattr(optax, name)``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, Literal, get_args

import optax

from optaxsched import _checks
from optaxsched._hypergradient import hypergradient
from optaxsched._schedules.infinite import infinite
from optaxsched._schedules.inverse_sqrt import inverse_sqrt
from optaxsched._schedules.linear_decay import linear_decay
from optaxsched._schedules.power import power
from optaxsched._schedules.rex import rex
from optaxsched._schedules.tabulated import tabulated
from optaxsched._schedules.uba import uba
from optaxsched._schedules.wsd import wsd, wsd_s
from optaxsched._spam import spam
from optaxsched._stable_spam import stable_spam

__all__ = [
    "ScheduleName",
    "OptimizerName",
    "get_schedule",
    "get_optimizer",
    "schedule_names",
    "optimizer_names",
]

ScheduleName = Literal["linear_decay", "wsd", "wsd_s", "rex", "power", "infinite", "uba",
                       "inverse_sqrt", "tabulated"]
"""Names :func:`get_schedule` accepts: the schedule family (combinators take schedules, so they
are composed in code rather than named)."""

OptimizerName = Literal["spam", "stable_spam", "hypergradient"]
"""Names :func:`get_optimizer` accepts: optaxsched's complete optimizers (their updates include
the learning rate)."""

_SCHEDULES: dict[str, Callable[..., optax.Schedule]] = {
    "linear_decay": linear_decay,
    "wsd": wsd,
    "wsd_s": wsd_s,
    "rex": rex,
    "power": power,
    "infinite": infinite,
    "uba": uba,
    "inverse_sqrt": inverse_sqrt,
    "tabulated": tabulated,
}

_OPTIMIZERS: dict[str, Callable[..., optax.GradientTransformation]] = {
    "spam": spam,
    "stable_spam": stable_spam,
    "hypergradient": hypergradient,
}

assert tuple(_SCHEDULES) == get_args(ScheduleName)
assert tuple(_OPTIMIZERS) == get_args(OptimizerName)


def schedule_names() -> tuple[str, ...]:
    """The names :func:`get_schedule` accepts, in the order of the documentation.

    Example:
      >>> import optaxsched as oxs
      >>> oxs.schedule_names()[:3]
      ('linear_decay', 'wsd', 'wsd_s')
    """
    return tuple(_SCHEDULES)


def optimizer_names() -> tuple[str, ...]:
    """The names :func:`get_optimizer` accepts.

    Example:
      >>> import optaxsched as oxs
      >>> oxs.optimizer_names()
      ('spam', 'stable_spam', 'hypergradient')
    """
    return tuple(_OPTIMIZERS)


def get_schedule(name: ScheduleName, *args: Any, **kwargs: Any) -> Callable[..., Any]:
    """The schedule factory called ``name``, called with ``args`` and ``kwargs``.

    Args:
      name: one of :func:`schedule_names` (``'wsd'``, ``'linear_decay'``, ...).
      *args: positional arguments of that factory.
      **kwargs: keyword arguments of that factory (validated by it, as in a direct call).

    Returns:
      What the factory returns: a learning-rate function of the optax count.

    Raises:
      ValueError: ``name`` is not registered (the message lists the names), or the factory
        refused its arguments.

    Example:
      >>> import optaxsched as oxs
      >>> config = {"name": "wsd", "peak_value": 1.0, "total_steps": 100,
      ...           "decay_fraction": 0.5, "decay_shape": "linear"}
      >>> schedule = oxs.get_schedule(**config)
      >>> float(schedule(75))
      0.5
      >>> oxs.get_schedule("wsdd", 1.0, 100)  # doctest: +ELLIPSIS
      Traceback (most recent call last):
      ...
      ValueError: get_schedule: name must be one of 'linear_decay', 'wsd', ..., got 'wsdd'.
    """
    _checks.check_choice("get_schedule", "name", name, _SCHEDULES)
    return _call("get_schedule", name, _SCHEDULES[name], args, kwargs)


def get_optimizer(name: OptimizerName, *args: Any, **kwargs: Any) -> Any:
    """The optimizer factory called ``name``, called with ``args`` and ``kwargs``.

    Args:
      name: one of :func:`optimizer_names` (``'spam'``, ``'stable_spam'``, ``'hypergradient'``).
      *args: positional arguments of that factory (usually the learning rate or schedule).
      **kwargs: keyword arguments of that factory.

    Returns:
      What the factory returns: an optax gradient transformation.

    Raises:
      ValueError: ``name`` is not registered (the message lists the names), or the factory
        refused its arguments.

    Example:
      >>> import optaxsched as oxs
      >>> schedule = oxs.get_schedule("linear_decay", 1e-3, total_steps=1000)
      >>> tx = oxs.get_optimizer("spam", learning_rate=schedule, reset_interval=500)
      >>> type(tx).__name__
      'GradientTransformationExtraArgs'
    """
    _checks.check_choice("get_optimizer", "name", name, _OPTIMIZERS)
    return _call("get_optimizer", name, _OPTIMIZERS[name], args, kwargs)


def _call(where: str, name: str, factory: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
    """``factory(*args, **kwargs)``, with arguments it does not take (a misspelt configuration
    key) named with the ones it does: Python's own TypeError named only the first bad key."""
    signature = inspect.signature(factory)
    accepted = ", ".join(signature.parameters)
    # A deprecated name (``_deprecation.renamed_arguments``) is checked as its new name; the
    # factory itself is called with it, and warns.
    renamed = getattr(factory, "renamed_arguments", {})
    as_new = {renamed.get(key, key): value for key, value in kwargs.items()}
    unknown = sorted(set(as_new) - set(signature.parameters))
    try:
        if unknown:
            raise TypeError(f"unknown keywords {unknown}")
        if len(as_new) < len(kwargs):
            raise TypeError("an argument given under both its name and its deprecated name")
        signature.bind(*args, **as_new)
    except TypeError as err:
        raise _checks.ArgumentTypeError(
            f"{where}: the arguments of {name!r} must be among ({accepted}), the required ones "
            f"given, got {len(args)} positional and the keywords {sorted(kwargs)} "
            f"({err}).") from None
    return factory(*args, **kwargs)
