"""Argument validation shared by every factory, so that every error reads the same way.

Each check raises ``ValueError`` with a message of the form::

    <function>: <argument> must be <what is allowed>, got <value>.

and returns the value converted to the Python type the factory works with. Checks run when a
schedule or transform is built, never inside ``jit``.

A traced value passes through unchecked: ``optax.inject_hyperparams`` rebuilds the transform with
its hyperparameters as tracers inside every update, and those values were checked when the user
first built it with concrete numbers (or are the user's own schedule's output).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence
from typing import Any, NoReturn, TypeVar

import jax

__all__ = [
    "is_traced",
    "fail",
    "check_int",
    "check_float",
    "check_fraction",
    "check_choice",
    "check_order",
    "check_one_of_two",
    "check_sequence",
    "require_params",
]


_Choice = TypeVar("_Choice", bound=str)  # a Literal choice stays that Literal

def fail(where: str, name: str, allowed: str, value: Any) -> NoReturn:
    """Raises the project's standard ``ValueError``.

    Args:
      where: the public function being called, e.g. ``"wsd"``.
      name: the argument's name as the user wrote it.
      allowed: what is allowed, as a phrase: ``"a positive integer"``, ``"in [0, 1]"``.
      value: the offending value (shown with ``repr``).
    """
    raise ValueError(f"{where}: {name} must be {allowed}, got {value!r}.")


def is_traced(value: Any) -> bool:
    """Whether ``value`` is a JAX tracer (an injected hyperparameter inside ``jit``)."""
    return isinstance(value, jax.core.Tracer)


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_int(where: str, name: str, value: Any, *, minimum: int = 0,
              maximum: int | None = None) -> int:
    """Checks that ``value`` is an integer in ``[minimum, maximum]``.

    Integral floats such as ``1000.0`` or ``1e4`` are accepted (users write step counts that way);
    ``1000.5`` is not.
    """
    if is_traced(value):
        return value
    integral_float = _is_real(value) and math.isfinite(value) and float(value).is_integer()
    if integral_float and not _is_int(value):
        value = int(value)
    if not _is_int(value):
        fail(where, name, _int_range(minimum, maximum), value)
    if value < minimum or (maximum is not None and value > maximum):
        fail(where, name, _int_range(minimum, maximum), value)
    return int(value)


def _int_range(minimum: int, maximum: int | None) -> str:
    if maximum is None:
        if minimum == 0:
            return "a non-negative integer"
        if minimum == 1:
            return "a positive integer"
        return f"an integer >= {minimum}"
    return f"an integer in [{minimum}, {maximum}]"


def check_float(where: str, name: str, value: Any, *, minimum: float | None = None,
                maximum: float | None = None, strict_min: bool = False,
                strict_max: bool = False) -> float:
    """Checks that ``value`` is a finite real number within the given bounds.

    Args:
      where: the public function being called.
      name: the argument's name.
      value: what the user passed.
      minimum, maximum: optional bounds.
      strict_min, strict_max: whether the bounds are excluded (``> minimum``).

    Returns:
      ``float(value)``.
    """
    if is_traced(value):
        return value
    allowed = _float_range(minimum, maximum, strict_min, strict_max)
    if not _is_real(value):
        try:  # NumPy / JAX scalars of size one are fine; arrays of other sizes are not.
            import numpy as np

            arr = np.asarray(value)
            if arr.shape != () or not np.issubdtype(arr.dtype, np.number):
                fail(where, name, allowed, value)
            value = arr.item()
        except (TypeError, ValueError) as err:
            if isinstance(err, ValueError) and str(err).startswith(f"{where}:"):
                raise
            fail(where, name, allowed, value)
    value = float(value)
    if not math.isfinite(value):
        fail(where, name, allowed, value)
    if minimum is not None and (value < minimum or (strict_min and value == minimum)):
        fail(where, name, allowed, value)
    if maximum is not None and (value > maximum or (strict_max and value == maximum)):
        fail(where, name, allowed, value)
    return value


def _float_range(minimum, maximum, strict_min, strict_max) -> str:
    if minimum is None and maximum is None:
        return "a finite number"
    if maximum is None:
        if minimum == 0:
            return "a positive finite number" if strict_min else "a non-negative finite number"
        return f"a finite number {'>' if strict_min else '>='} {minimum:g}"
    if minimum is None:
        return f"a finite number {'<' if strict_max else '<='} {maximum:g}"
    left = "(" if strict_min else "["
    right = ")" if strict_max else "]"
    return f"in {left}{minimum:g}, {maximum:g}{right}"


def check_fraction(where: str, name: str, value: Any, *, strict_min: bool = False,
                   strict_max: bool = False) -> float:
    """Checks that ``value`` is a number in [0, 1] (ends excluded on request)."""
    return check_float(where, name, value, minimum=0.0, maximum=1.0, strict_min=strict_min,
                       strict_max=strict_max)


def check_choice(where: str, name: str, value: Any, choices: Iterable[_Choice]) -> _Choice:
    """Checks that ``value`` is one of ``choices``; the message lists them all."""
    choices = tuple(choices)
    if not isinstance(value, str) or value not in choices:
        fail(where, name, "one of " + ", ".join(repr(c) for c in choices), value)
    return value


def check_order(where: str, low_name: str, low: float, high_name: str, high: float, *,
                strict: bool = False) -> None:
    """Checks ``low <= high`` (or ``<`` when ``strict``) for two already-validated arguments."""
    if is_traced(low) or is_traced(high):
        return
    if low > high or (strict and low == high):
        relation = "<" if strict else "<="
        raise ValueError(
            f"{where}: {low_name} must be {relation} {high_name} ({high!r}), got {low!r}.")


def check_one_of_two(where: str, name_a: str, a: Any, name_b: str, b: Any) -> None:
    """Checks that exactly one of two alternative arguments was given (the other is ``None``)."""
    if (a is None) == (b is None):
        raise ValueError(
            f"{where}: give exactly one of {name_a} and {name_b}, got {name_a}={a!r} and "
            f"{name_b}={b!r}.")


def check_sequence(where: str, name: str, value: Any, *, min_length: int = 1) -> Sequence:
    """Checks that ``value`` is a list/tuple/array with at least ``min_length`` entries."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__"):
        fail(where, name, f"a sequence with at least {min_length} entries", value)
    if len(value) < min_length:
        fail(where, name, f"a sequence with at least {min_length} entries", value)
    return value


def require_params(where: str, params: Any, why: str) -> None:
    """Raises the one error of a transform's ``update`` called without the parameters it needs."""
    if params is None:
        raise ValueError(f"{where}: params must be passed to update "
                         f"(tx.update(updates, state, params)): {why}, got None.")
