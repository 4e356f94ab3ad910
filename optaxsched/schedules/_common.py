"""Validation and assembly shared by the schedule family (private).

Every schedule here is built the same way: validated Python floats are closed over, the count is
converted once with :func:`optaxsched._shapes.as_float_count`, each phase is computed on the whole
array, and ``jnp.where`` picks the phase. Both sides of every ``where`` are finite with finite
derivatives, so ``grad`` with respect to a float count never produces NaN.
"""

from __future__ import annotations

import math

import jax.numpy as jnp

from optaxsched import _checks, _shapes


def check_peak(where: str, value, name: str = "peak_value") -> float:
    """A peak learning rate: a finite number > 0."""
    return _checks.check_float(where, name, value, minimum=0.0, strict_min=True)


def check_below(where: str, name: str, value, top: float, top_name: str) -> float:
    """A value in [0, top] (an end value, an initial value, a plateau)."""
    value = _checks.check_float(where, name, value, minimum=0.0)
    if value > top:
        _checks.fail(where, name, f"in [0, {top_name}] = [0, {top:g}]", value)
    return value


def decay_length(where: str, length: int, cooldown_steps, decay_fraction,
                 default_fraction: float) -> int:
    """The number of decay steps from ``cooldown_steps`` or ``decay_fraction`` (at most one given).

    A fraction in (0, 1] is rounded to the nearest whole step (halves up), and to at least one
    step: ``max(1, round(f * length))``. Either way the decay lasts 1 to ``length`` steps.
    """
    if cooldown_steps is not None and decay_fraction is not None:
        _checks.check_one_of_two(where, "decay_fraction", decay_fraction, "cooldown_steps",
                                 cooldown_steps)
    if cooldown_steps is not None:
        return _checks.check_int(where, "cooldown_steps", cooldown_steps, minimum=1, maximum=length)
    if decay_fraction is None:
        fraction = default_fraction
    else:
        fraction = _checks.check_fraction(where, "decay_fraction", decay_fraction,
                                          strict_min=True)
    return max(1, math.floor(fraction * length + 0.5))


def with_warmup(count: jnp.ndarray, body: jnp.ndarray, warmup_steps: float, init_value: float,
                peak_value: float) -> jnp.ndarray:
    """Linear ramp from ``init_value`` (count 0) to ``peak_value`` (count ``warmup_steps``).

    ``body`` is used from ``count == warmup_steps`` on; with no warmup it is returned unchanged.
    """
    if warmup_steps <= 0:
        return body
    # Step arguments are Python ints that may exceed int32 (schedules in token units): floats.
    warmup_steps = float(warmup_steps)
    ramp = _shapes.warmup("linear", _shapes.progress(count, 0.0, warmup_steps), init_value,
                          peak_value)
    return jnp.where(count < warmup_steps, ramp, body)


def terminal(count: jnp.ndarray, body: jnp.ndarray, horizon: float, value: float) -> jnp.ndarray:
    """``value`` exactly from ``count == horizon`` on (no rounding left over from the formula)."""
    return jnp.where(count >= float(horizon), jnp.float32(value), body)


def as_output(value) -> jnp.ndarray:
    """The schedule's result: float32, same shape as the count."""
    return jnp.asarray(value, dtype=jnp.float32)
