"""Building blocks shared by schedules and combinators: counts, progress, decay and warmup shapes.

A *decay shape* is a function ``phi(x)`` of progress ``x`` in [0, 1] with ``phi(0) = 1``,
``phi(1) = 0`` and ``phi`` non-increasing. A decay from ``peak`` to ``end`` is then
``end + (peak - end) * phi(x)``, which ends exactly at ``end`` and never undershoots it, whatever
the shape: the floor is part of the formula rather than a clamp applied afterwards.

Everything here is written for ``jit``, ``vmap`` and ``grad``: no Python branching on traced
values, and square roots are guarded so that the gradient with respect to the count stays finite
(a ``jnp.where`` multiplies the unused branch's derivative by zero, and ``0 * inf`` would be NaN).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import get_args

import jax.numpy as jnp
import numpy as np

from optaxsched import _checks
from optaxsched._types import DecayShape, WarmupShape

__all__ = [
    "DECAY_SHAPES",
    "WARMUP_SHAPES",
    "as_float_count",
    "progress",
    "decay_factor",
    "decay",
    "warmup",
    "overlay_warmup",
    "validate_decay_shape",
]

# Guards sqrt's derivative at 0 (infinite) so that masked branches do not turn gradients into NaN.
_TINY = 1e-12


def as_float_count(count) -> jnp.ndarray:
    """The optax count (int32, int64, Python int or float; scalar or array) as float32.

    Converting before any arithmetic means counts near the int32 maximum cannot overflow.
    """
    return jnp.asarray(count, dtype=jnp.float32)


def progress(count: jnp.ndarray, start: float, length: float) -> jnp.ndarray:
    """Fraction of the way through ``[start, start + length]``, clipped to [0, 1]."""
    # float(): step arguments may be Python ints beyond int32 (schedules in token units).
    return jnp.clip((count - float(start)) / float(length), 0.0, 1.0)


def _sqrt(x):
    return jnp.sqrt(jnp.maximum(x, _TINY))


def _one_minus_sqrt(x, ratio):
    del ratio
    return jnp.where(x > 0.0, 1.0 - _sqrt(x), 1.0)


def _linear(x, ratio):
    del ratio
    return 1.0 - x


def _cosine(x, ratio):
    del ratio
    return 0.5 * (1.0 + jnp.cos(jnp.pi * x))


def _square(x, ratio):
    del ratio
    return 1.0 - x * x


def _exponential(x, ratio):
    # value = peak * (end / peak) ** x, i.e. MiniCPM's half-life decay 0.5 ** (s / h) with the
    # half-life h = D * ln 2 / ln(peak / end) that lands exactly on `end` after D steps.
    # As a factor of (peak - end): (ratio ** x - ratio) / (1 - ratio). `ratio` is a Python float
    # in (0, 1), so its logarithm is taken in float64 once; exp(x * log r) is smooth in x.
    return (jnp.exp(x * math.log(ratio)) - ratio) / (1.0 - ratio)


def _harmonic(x, ratio):
    # value = 1 / (x / end + (1 - x) / peak) (WSD-S's inverse-proportional interpolation).
    # As a factor of (peak - end): (1 - x) / (1 + x * (1 / ratio - 1)).
    return (1.0 - x) / (1.0 + x * (1.0 / ratio - 1.0))


_DECAY_FUNCTIONS: dict[str, Callable] = {
    "1-sqrt": _one_minus_sqrt,
    "linear": _linear,
    "cosine": _cosine,
    "square": _square,
    "exponential": _exponential,
    "harmonic": _harmonic,
}
DECAY_SHAPES: tuple[DecayShape, ...] = get_args(DecayShape)
assert set(DECAY_SHAPES) == set(_DECAY_FUNCTIONS)
# Shapes whose formula divides by end_value (or takes its logarithm).
_NEEDS_POSITIVE_END = ("exponential", "harmonic")

WARMUP_SHAPES: tuple[WarmupShape, ...] = get_args(WarmupShape)


def validate_decay_shape(where: str, shape, peak_value: float, end_value: float,
                         name: str = "decay_shape", *, end_name: str = "end_value"):
    """Checks a decay shape name (or callable) against the peak and end values it will join.

    A callable ``phi`` is evaluated once, here, on 257 points of [0, 1]: it must be traceable by
    JAX (``jnp`` operations, no Python ``if`` on ``x``), finite, start at 1, end at 0 (within
    1e-6) and never increase (by more than 1e-6 between neighbouring points), so that a decay
    built from it ends exactly at ``end_value`` and never rises.

    Args:
      where: the public function, for the error message.
      shape: one of :data:`DECAY_SHAPES` or a callable ``phi(x)`` with ``phi(0)=1, phi(1)=0``.
      peak_value, end_value: the values the decay joins.
      name: the argument's name, for the error message.
      end_name: the name under which the caller takes ``end_value`` (e.g. ``"constant_value"``
        where the decay ends at a plateau), for the error message.

    Returns:
      The shape, unchanged.
    """
    if callable(shape) and not isinstance(shape, str):
        _check_callable_shape(where, name, shape)
        return shape
    _checks.check_choice(where, name, shape, DECAY_SHAPES)
    if shape in _NEEDS_POSITIVE_END and peak_value != end_value:
        if not end_value > 0.0:
            raise ValueError(
                f"{where}: {end_name} must be a positive number when {name}={shape!r} (its "
                f"formula divides by {end_name}; try {end_name}={peak_value * 0.01:g}), got "
                f"{end_value!r}.")
        if shape == "harmonic" and peak_value / end_value - 1.0 > _checks.FLOAT32_MAX:
            # The factor (1 - x) / (1 + x (peak / end - 1)) needs peak / end in float32: beyond
            # it x * inf is NaN where the decay starts.
            raise ValueError(
                f"{where}: {end_name} must be at least {peak_value:g} / {_checks.FLOAT32_MAX:g}"
                f" = {peak_value / _checks.FLOAT32_MAX:g} when {name}='harmonic' (the ratio "
                f"peak / {end_name} must fit in float32), got {end_value!r}.")
    return shape


_CALLABLE_SHAPE_RULE = ("one of " + ", ".join(repr(s) for s in DECAY_SHAPES)
                        + ", or a JAX-traceable callable phi(x) with phi(0) = 1, phi(1) = 0, "
                          "non-increasing on [0, 1]")


def _check_callable_shape(where: str, name: str, shape) -> None:
    x = jnp.linspace(0.0, 1.0, 257, dtype=jnp.float32)
    try:
        values = np.asarray(shape(x), dtype=np.float64)
    except Exception:  # any failure means the callable cannot serve as a shape.
        _checks.fail(where, name, _CALLABLE_SHAPE_RULE, shape)
    if values.shape != (257,) or not np.all(np.isfinite(values)):
        _checks.fail(where, name, _CALLABLE_SHAPE_RULE, shape)
    tol = 1e-6
    if (abs(values[0] - 1.0) > tol or abs(values[-1]) > tol
            or np.any(np.diff(values) > tol)):
        _checks.fail(where, name, _CALLABLE_SHAPE_RULE, shape)


def decay_factor(shape, x: jnp.ndarray, peak_value: float, end_value: float) -> jnp.ndarray:
    """``phi(x)`` for a validated shape; ``x`` must already lie in [0, 1]."""
    if callable(shape) and not isinstance(shape, str):
        return jnp.asarray(shape(x), dtype=jnp.float32)
    ratio = end_value / peak_value if peak_value != 0 else 1.0
    if shape in _NEEDS_POSITIVE_END and not 0.0 < ratio < 1.0:
        return 1.0 - x  # peak == end: every shape is constant, the factor is irrelevant.
    return _DECAY_FUNCTIONS[shape](x, ratio)


def decay(shape, x: jnp.ndarray, peak_value: float, end_value: float) -> jnp.ndarray:
    """``end + (peak - end) * phi(x)``: a decay from ``peak`` (x=0) ending exactly at ``end``."""
    return end_value + (peak_value - end_value) * decay_factor(shape, x, peak_value, end_value)


def warmup(shape: str, x: jnp.ndarray, init_value: float, peak_value: float) -> jnp.ndarray:
    """Warmup ramp from ``init_value`` (x=0) to ``peak_value`` (x=1), linear or cosine.

    Finite ends give a finite ramp. Ends of opposite signs can be further apart than float32's
    range (``with_warmup`` from ``init_value=-3e38`` to a schedule at ``3e38``): the gap
    ``peak - init`` then overflows, and ``init + gap · r`` would be ``inf`` (NaN at ``r = 0``).
    There the ramp is the weighted sum ``init · (1 - r) + peak · r``, whose terms cannot
    overflow; every other ramp keeps the usual form, and its bits.
    """
    if shape == "linear":
        rise = x
    else:
        rise = 0.5 * (1.0 - jnp.cos(math.pi * x))
    gap = jnp.asarray(peak_value - init_value, dtype=jnp.float32)
    fits = jnp.isfinite(gap)
    # The unused branch gets a finite gap too, so that its gradient is not 0 * inf = NaN.
    usual = init_value + jnp.where(fits, gap, 0.0) * rise
    return jnp.where(fits, usual, init_value * (1.0 - rise) + peak_value * rise)


def overlay_warmup(count: jnp.ndarray, body, warmup_steps: float, init_value, target,
                   shape: str = "linear") -> jnp.ndarray:
    """``body`` with its first ``warmup_steps`` counts replaced by a ramp from ``init_value``.

    The ramp rises from ``init_value`` (count 0) to ``target`` (count ``warmup_steps``), linear or
    cosine; from ``count == warmup_steps`` on ``body`` is used as it is, *not* shifted in time (a
    schedule with its own ``warmup_steps`` argument keeps its horizons). With no warmup ``body`` is
    returned unchanged. The public combinator :func:`optaxsched.with_warmup` shifts the wrapped
    schedule by the warmup and then overlays this ramp.
    """
    if warmup_steps <= 0:
        return body
    # Step arguments are Python ints that may exceed int32 (schedules in token units): floats.
    length = float(warmup_steps)
    ramp = warmup(shape, progress(count, 0.0, length), init_value, target)
    return jnp.asarray(jnp.where(count < length, ramp, body), dtype=jnp.float32)
