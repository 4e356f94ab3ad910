"""Validation and assembly shared by the schedule family (private).

Every schedule is built the same way: validated Python floats are closed over, the count is
converted once with :func:`optaxsched._shapes.as_float_count`, each phase is computed on the whole
array, and ``jnp.where`` picks the phase. Both sides of every ``where`` are finite with finite
derivatives, so ``grad`` with respect to a float count never produces NaN.

The budgeted schedules (linear decay, REX, UBA) differ only in their decay profile ``phi(z)``:
:func:`check_budgeted` validates their common arguments and :func:`assemble_decay` builds
"warmup, then ``end + (peak - end) * phi(z)``, then ``end``" around the profile.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax.numpy as jnp
import optax

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


def terminal(count: jnp.ndarray, body: jnp.ndarray, horizon: float, value: float) -> jnp.ndarray:
    """``value`` exactly from ``count == horizon`` on (no rounding left over from the formula)."""
    return jnp.where(count >= float(horizon), jnp.float32(value), body)


def as_output(value) -> jnp.ndarray:
    """The schedule's result: float32, same shape as the count."""
    return jnp.asarray(value, dtype=jnp.float32)


def check_budgeted(where: str, peak_value, total_steps, warmup_steps, end_value, init_value
                   ) -> tuple[float, int, int, float, float]:
    """The arguments every budgeted schedule takes: ``(peak, total, warmup, end, init)``."""
    peak = check_peak(where, peak_value)
    total = _checks.check_int(where, "total_steps", total_steps, minimum=1)
    warm = _checks.check_int(where, "warmup_steps", warmup_steps, minimum=0, maximum=total - 1)
    end = check_below(where, "end_value", end_value, peak, "peak_value")
    init = check_below(where, "init_value", init_value, peak, "peak_value")
    return peak, total, warm, end, init


def assemble_decay(phi: Callable, peak: float, total: int, warm: int, end: float, init: float
                   ) -> optax.Schedule:
    """warmup -> ``end + (peak - end) * phi(z)`` -> ``end`` from ``total`` on.

    ``z = (count - warm) / (total - warm)``, clipped to [0, 1]; ``phi(0) = 1``, ``phi(1) = 0``.
    """
    length = float(total - warm)

    def schedule(count):
        count = _shapes.as_float_count(count)
        z = _shapes.progress(count, float(warm), length)
        body = end + (peak - end) * phi(z)
        value = _shapes.overlay_warmup(count, body, warm, init, peak)
        return as_output(terminal(count, value, total, end))

    return schedule
