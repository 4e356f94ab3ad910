"""Argument validation shared by every factory, so that every error reads the same way.

Each check raises ``ValueError`` with a message of the form::

    <function>: <argument> must be <what is allowed>, got <value>.

and returns the value converted to the Python type the factory works with. Checks run when a
schedule or transform is built, never inside ``jit``.

A value of the wrong *type* (a complex number, a string, ``None``, a bool where a number is
meant, an array where a scalar is meant, a 0-d array where a sequence is meant) raises
:class:`ArgumentTypeError`, which is both a ``TypeError`` and a ``ValueError``: the message has
the same form, and callers that catch ``ValueError`` (the console script) still catch it.

Numbers are checked in the dtype the computation uses: schedules and transforms compute in
float32, so a hyperparameter that is finite in float64 but not in float32 (``1e39``) is refused
here, and so is a positive one that float32 rounds to zero or to a subnormal (``1e-39``), which
the formulas would then divide by.

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
import numpy as np

__all__ = [
    "ArgumentTypeError",
    "FLOAT32_MAX",
    "FLOAT32_TINY",
    "is_traced",
    "fail",
    "fail_type",
    "check_int",
    "check_float",
    "check_fraction",
    "check_choice",
    "check_order",
    "check_one_of_two",
    "check_sequence",
    "require_params",
    "require_float_leaves",
    "real_float64",
]


_Choice = TypeVar("_Choice", bound=str)  # a Literal choice stays that Literal

FLOAT32_MAX = float(np.finfo(np.float32).max)
"""The largest finite float32 (about 3.4e38): every hyperparameter a schedule uses fits in it."""
FLOAT32_TINY = float(np.finfo(np.float32).tiny)
"""The smallest normal float32 (about 1.2e-38): the least a strictly positive argument may be."""


MAX_STEP = 2**53
"""The largest integer argument (step counts, lengths, token counts): exact as a float64, so the
float arithmetic schedules do on their step arguments neither overflows nor rounds them."""


class ArgumentTypeError(TypeError, ValueError):
    """An argument of the wrong type: a ``TypeError`` that ``except ValueError`` also catches."""


def fail(where: str, name: str, allowed: str, value: Any) -> NoReturn:
    """Raises the project's standard ``ValueError``.

    Args:
      where: the public function being called, e.g. ``"wsd"``.
      name: the argument's name as the user wrote it.
      allowed: what is allowed, as a phrase: ``"a positive integer"``, ``"in [0, 1]"``.
      value: the offending value (shown with ``repr``).
    """
    raise ValueError(f"{where}: {name} must be {allowed}, got {value!r}.")


def fail_type(where: str, name: str, allowed: str, value: Any) -> None:
    """Raises :class:`ArgumentTypeError` in the standard wording, with the value's type."""
    raise ArgumentTypeError(f"{where}: {name} must be {allowed}, got {_short_repr(value)} "
                            f"({type(value).__name__}).")


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _scalar(value: Any) -> Any:
    """A 0-d NumPy/JAX array or NumPy scalar as the Python number it holds; anything else as is."""
    if isinstance(value, (np.ndarray, np.generic, jax.Array)) and np.ndim(value) == 0:
        return np.asarray(value).item()
    return value


def _wrong_type(value: Any) -> str | None:
    """Why ``value`` cannot be a real number at all (``None`` when it is one)."""
    if isinstance(value, bool) or isinstance(value, np.bool_):
        return "a bool"
    if isinstance(value, numbers.Complex) and not isinstance(value, numbers.Real):
        return "complex"
    if isinstance(value, numbers.Real):
        return None
    if isinstance(value, (np.ndarray, jax.Array)):
        return f"an array of shape {tuple(np.shape(value))}"
    return "not a number"


def is_traced(value: Any) -> bool:
    """Whether ``value`` is a JAX tracer (an injected hyperparameter inside ``jit``)."""
    return isinstance(value, jax.core.Tracer)


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_int(where: str, name: str, value: Any, *, minimum: int = 0,
              maximum: int | None = None) -> int:
    """Checks that ``value`` is an integer in ``[minimum, maximum]``.

    Integral floats such as ``1000.0`` or ``1e4`` are accepted (users write step counts that way);
    ``1000.5`` is not. A 0-d integer array is accepted too: ``optax.inject_hyperparams`` stores
    integer hyperparameters as arrays and hands them back to the factory.

    Raises:
      ArgumentTypeError: ``value`` is not a real number (complex, bool, string, ``None``, an
        array with more than one entry).
      ValueError: a real number that is not integral or outside the range.
    """
    if is_traced(value):
        return value
    allowed = _int_range(minimum, maximum)
    value = _scalar(value)
    why = _wrong_type(value)
    if why is not None:
        fail_type(where, name, allowed, value)
    if not _is_int(value):
        if not (math.isfinite(value) and float(value).is_integer()):
            fail(where, name, allowed, value)
        value = int(value)
    if value < minimum or (maximum is not None and value > maximum):
        fail(where, name, allowed, value)
    if value > MAX_STEP:
        fail(where, name, f"{allowed} of at most 2**53 = {MAX_STEP} (exact as a float)", value)
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
                strict_max: bool = False, dtype: Any = np.float32,
                normal: bool = False) -> float:
    """Checks that ``value`` is a real number, finite in ``dtype``, within the given bounds.

    Args:
      where: the public function being called.
      name: the argument's name.
      value: what the user passed (a Python number, a NumPy/JAX scalar or 0-d array).
      minimum, maximum: optional bounds.
      strict_min, strict_max: whether the bounds are excluded (``> minimum``).
      dtype: the floating dtype the value is computed in (float32 for everything that runs
        under ``jit``; host-side float64 code passes ``np.float64``). Its magnitude must be at
        most the dtype's largest finite value, and a value that must be ``> 0`` must be at least
        the dtype's smallest normal value (a subnormal or a zero would be divided by).
      normal: whether a nonzero value must be at least the dtype's smallest normal value in
        magnitude, whatever the bounds: for a factor, which the dtype would flush to 0 (XLA's CPU
        backend flushes subnormals), losing it entirely. An additive value (an end value, an
        initial value) that rounds to 0 is off by less than that smallest normal value, and is
        left alone.

    Returns:
      ``float(value)``.

    Raises:
      ArgumentTypeError: ``value`` is not a real number (complex, bool, string, ``None``, an
        array with more than one entry).
      ValueError: not finite in ``dtype``, or out of bounds.
    """
    if is_traced(value):
        return value
    allowed = _float_range(minimum, maximum, strict_min, strict_max)
    value = _scalar(value)
    if _wrong_type(value) is not None:
        fail_type(where, name, allowed, value)
    try:
        number = float(value)
    except OverflowError:  # an int beyond the float64 range
        fail(where, name, allowed, value)
    if not math.isfinite(number):
        fail(where, name, allowed, value)
    if minimum is not None and (number < minimum or (strict_min and number == minimum)):
        fail(where, name, allowed, value)
    if maximum is not None and (number > maximum or (strict_max and number == maximum)):
        fail(where, name, allowed, value)
    info = np.finfo(dtype)
    largest, tiny = float(info.max), float(info.tiny)
    if abs(number) > largest:
        fail(where, name, f"{allowed} representable in {info.dtype} (magnitude at most "
             f"{largest:.7g})", value)
    if strict_min and minimum is not None and minimum >= 0 and number < tiny:
        fail(where, name, f"{allowed} representable in {info.dtype} (at least its smallest "
             f"normal number, {tiny:.7g})", value)
    if normal and number != 0 and abs(number) < tiny:
        fail(where, name, f"{allowed} representable in {info.dtype}: 0 or of magnitude at least "
             f"its smallest normal number, {tiny:.7g} (smaller ones are flushed to 0)", value)
    return number


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
    """Checks that ``value`` is a list/tuple/1-D array with at least ``min_length`` entries.

    A string, a number, a 0-d array or a mapping is a wrong type (:class:`ArgumentTypeError`);
    a sequence that is too short is a ``ValueError``.
    """
    allowed = f"a sequence with at least {min_length} entries"
    if (isinstance(value, (str, bytes, dict)) or not hasattr(value, "__len__")
            or (hasattr(value, "ndim") and np.ndim(value) == 0)):
        fail_type(where, name, allowed, value)
    if len(value) < min_length:
        fail(where, name, allowed, value)
    return value


def require_params(where: str, params: Any, why: str) -> None:
    """Raises the one error of a transform's ``update`` called without the parameters it needs."""
    if params is None:
        raise ValueError(f"{where}: params must be passed to update "
                         f"(tx.update(updates, state, params)): {why}, got None.")


def require_float_leaves(where: str, tree: Any, name: str = "params",
                         selected: Sequence[bool] | None = None, *,
                         allow_integers: bool = False) -> None:
    """A named error at ``init`` when a leaf of ``tree`` (of the ``selected`` ones, if given:
    one bool per leaf) is not a real floating-point array.

    The spike transforms clip, compare and square real numbers, and averaging keeps a float
    average: an integer or complex leaf failed deep inside the traced ``update`` with an error
    from ``jnp.finfo`` or ``lax.clip`` that named neither the transform nor the leaf.

    With ``allow_integers`` only complex leaves are refused (integer and boolean ones pass): for
    a transform that reads real numbers and for which an integer is one, such as a norm.
    """
    for i, (path, leaf) in enumerate(jax.tree_util.tree_flatten_with_path(tree)[0]):
        if selected is not None and not selected[i]:
            continue
        dtype = getattr(leaf, "dtype", None)
        if dtype is None:
            dtype = np.result_type(leaf)  # a Python number as a leaf
        if allow_integers:
            if not jax.numpy.issubdtype(dtype, jax.numpy.complexfloating):
                continue
            allowed, leave_out = "real arrays (floating-point or integer)", "complex leaves"
        elif jax.numpy.issubdtype(dtype, jax.numpy.floating):
            continue
        else:
            allowed = "real floating-point arrays (float16, bfloat16, float32, float64)"
            leave_out = "integer and complex leaves"
        where_in = jax.tree_util.keystr(path) or "the root"
        raise ArgumentTypeError(
            f"{where}: {name} must hold {allowed}, got dtype {np.dtype(dtype).name} at "
            f"{where_in}; leave {leave_out} out (a mask where the function takes one, "
            f"optax.masked, or optax.partition with optax.set_to_zero).")


def real_float64(where: str, name: str, value: Any, allowed: str, shown: Any) -> np.ndarray:
    """``value`` as a float64 NumPy array (a copy), or a named error: ``fail`` with ``allowed``
    and ``shown`` (the value as the message shows it) for what NumPy cannot read as numbers
    (strings, ragged lists, ints beyond float64); an :class:`ArgumentTypeError` for complex and
    boolean arrays, which the cast would take silently (the imaginary part dropped, booleans as
    0 and 1) though neither is a real number a user meant."""
    try:
        raw = np.asarray(value)
        array = None if raw.dtype.kind in "bc" else raw.astype(np.float64)
    except (TypeError, ValueError, OverflowError):
        fail(where, name, allowed, shown)
    if array is None:
        raise ArgumentTypeError(f"{where}: {name} must be {allowed} (not complex or boolean), "
                                f"got an array of dtype {raw.dtype}.")
    return array
