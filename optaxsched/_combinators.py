"""Schedule combinators: build schedules out of schedules.

Every combinator takes optax schedules (``count -> value``) and returns one: a pure function of the
optax count (0 on the first update; int32, int64, Python int or float; scalar or array, evaluated
elementwise) that returns float32 of the count's shape, works under ``jit``, ``vmap`` and ``grad``
and stays finite past every horizon. They compose with each other, with every ``optaxsched``
schedule and with optax's own schedules.

Conventions shared by all of them:

- The count is converted to float32 first (:func:`optaxsched._shapes.as_float_count`) and inner
  schedules receive float32 counts. Integer counts are exact up to 2**24 (16.7M steps).
- Where a combinator shifts time (``with_warmup``, ``join``, ``rewarm``), an inner schedule
  receives ``max(count - start, 0)``: it never sees a negative count, not even in the branch that
  ``jnp.where`` throws away, so an inner schedule that is undefined for negative counts cannot leak
  NaN into values or gradients.
- Inner schedules are checked when the combinator is built: each must be a callable that JAX can
  trace on a float32 scalar count and that returns a numeric scalar (``jax.eval_shape``, nothing is
  computed). Stateful schedules (``optax.schedules.StatefulSchedule``) are refused; wrap plain
  schedules and use :func:`optaxsched.token_schedule` (in :mod:`optaxsched._tokens`) for the
  stateful case.

:func:`check_schedule` and :func:`evaluate` are shared with :mod:`optaxsched._tokens`, whose
``in_tokens`` is a combinator in token units.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from optaxsched import _checks, _numerics, _shapes
from optaxsched._types import WarmupShape

__all__ = ["with_warmup", "join", "multiply", "sample_every", "rewarm"]

_SCHEDULE_RULE = ("a schedule: a callable count -> scalar that JAX can trace on a float32 count "
                  "(not a stateful schedule)")


# ------------------------------------------------------------------------------------------------
# Private helpers.
# ------------------------------------------------------------------------------------------------

def check_schedule(where: str, name: str, value: Any) -> Callable:
    """Checks that ``value`` is a plain (stateless) schedule; traces it once, computes nothing."""
    if (not callable(value) or isinstance(value, (str, bytes, type))
            or isinstance(value, optax.schedules.StatefulSchedule)):
        _checks.fail(where, name, _SCHEDULE_RULE, value)
    try:
        out = jax.eval_shape(value, jax.ShapeDtypeStruct((), jnp.float32))
    except Exception:  # any failure to trace means it cannot serve as a schedule.
        _checks.fail(where, name, _SCHEDULE_RULE, value)
    shape = getattr(out, "shape", None)
    dtype = getattr(out, "dtype", None)
    if (shape is None or tuple(shape) != () or dtype is None
            or not (jnp.issubdtype(dtype, jnp.floating) or jnp.issubdtype(dtype, jnp.integer))):
        _checks.fail(where, name, _SCHEDULE_RULE, value)
    return value


def evaluate(schedule: Callable, count: jnp.ndarray) -> jnp.ndarray:
    """``schedule(count)`` as float32 with the count's shape (constant schedules return scalars)."""
    return jnp.broadcast_to(jnp.asarray(schedule(count), dtype=jnp.float32), jnp.shape(count))


def _shifted(count: jnp.ndarray, start: float) -> jnp.ndarray:
    """``max(count - start, 0)``: the inner schedule's own count, never negative."""
    return jnp.maximum(count - start, 0.0)


def _check_steps(where: str, name: str, value: Any, *, minimum: int) -> tuple[int, ...]:
    """A sequence of strictly increasing integers >= ``minimum`` (a single integer is accepted)."""
    if isinstance(value, (np.ndarray, jax.Array)):
        value = np.asarray(value).tolist()
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        value = (value,)
    allowed = f"a strictly increasing sequence of integers >= {minimum}"
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) == 0:
        _checks.fail(where, name, allowed, value)
    steps = []
    for item in value:
        if isinstance(item, np.generic):
            item = item.item()
        try:
            steps.append(_checks.check_int(where, name, item, minimum=minimum))
        except ValueError:
            _checks.fail(where, name, allowed, value)
    if any(b <= a for a, b in zip(steps, steps[1:], strict=False)):
        _checks.fail(where, name, allowed, value)
    return tuple(steps)


# ------------------------------------------------------------------------------------------------
# with_warmup
# ------------------------------------------------------------------------------------------------

def with_warmup(schedule: Callable, warmup_steps: int, shape: WarmupShape = "linear",
                init_value: float = 0.0) -> optax.Schedule:
    """Prepends a warmup to a schedule, which then starts from its own count 0.

    The warmup ramps from ``init_value`` at count 0 to the wrapped schedule's first value
    ``s(0)`` at count ``W = warmup_steps``; from there the wrapped schedule runs on its own clock,
    shifted by ``W`` (as in ``optax.join_schedules``):

    .. math::

        \\eta(c) = \\begin{cases}
          \\eta_0 + (s(0) - \\eta_0)\\, r(c / W) & c < W \\\\
          s(c - W) & c \\ge W
        \\end{cases}

    with ``r(x) = x`` (``'linear'``) or ``r(x) = (1 - \\cos \\pi x)/2`` (``'cosine'``). The result
    is continuous at ``c = W`` and, for ``init_value <= s(0)``, non-decreasing during the warmup.
    Because of the shift every horizon of the wrapped schedule moves ``W`` steps later: a cosine
    decay over ``D`` steps ends at count ``W + D``. ``optaxsched``'s own schedules take a
    ``warmup_steps`` argument that does not shift them; this combinator is for schedules without
    one (``optax.cosine_decay_schedule``, :func:`tabulated`, ...). ``warmup_steps=0`` returns the
    schedule unchanged (as float32).

    Args:
      schedule: the schedule to warm up to (stateless; see the module notes).
      warmup_steps: length of the warmup; a non-negative integer.
      shape: ``'linear'`` or ``'cosine'`` ramp.
      init_value: value at count 0; any finite number (usually 0 or a small fraction of the peak).

    Returns:
      An optax schedule ``count -> float32``.

    Example:
      >>> import optax, optaxsched as oxs
      >>> decay = optax.cosine_decay_schedule(1e-3, decay_steps=900)
      >>> schedule = oxs.with_warmup(decay, warmup_steps=100)
      >>> [round(float(schedule(c)), 6) for c in (0, 50, 100, 550, 1000, 2000)]
      [0.0, 0.0005, 0.001, 0.0005, 0.0, 0.0]

    References:
      Goyal et al., "Accurate, Large Minibatch SGD: Training ImageNet in 1 Hour" (arXiv
      1706.02677), for gradual linear warmup.
    """
    where = "with_warmup"
    schedule = check_schedule(where, "schedule", schedule)
    warm = _checks.check_int(where, "warmup_steps", warmup_steps, minimum=0)
    shape = _checks.check_choice(where, "shape", shape, _shapes.WARMUP_SHAPES)
    init = _checks.check_float(where, "init_value", init_value)
    length = float(warm)

    def warmed(count):
        count = _shapes.as_float_count(count)
        body = evaluate(schedule, _shifted(count, length))
        if warm == 0:
            return body
        # The schedule's clock is shifted by W; the ramp is the one every optaxsched schedule
        # overlays on its own first W counts.
        target = jnp.asarray(schedule(jnp.float32(0.0)), dtype=jnp.float32)
        return _shapes.overlay_warmup(count, body, warm, init, target, shape)

    return warmed


# ------------------------------------------------------------------------------------------------
# join
# ------------------------------------------------------------------------------------------------

def join(schedules: Sequence[Callable], boundaries: Sequence[int]) -> optax.Schedule:
    """Runs schedules one after another, each on its own clock (``optax.join_schedules``, checked).

    With boundaries ``b_1 < ... < b_{k}`` and ``b_0 = 0``:

    .. math::

        \\eta(c) = s_i(c - b_i)\\quad\\text{for } b_i \\le c < b_{i+1}
        \\qquad (b_{k+1} = \\infty)

    i.e. schedule ``i`` starts from its own count 0 at ``b_i``. Built on
    ``optax.join_schedules``, whose values it gives at every count >= 0; the differences: the
    arguments are checked when the schedule is built (``optax.join_schedules`` accepts anything),
    the count may be any integer or float dtype and the result is float32 of the count's shape,
    and a later schedule never sees a negative count before its boundary (optax passes it
    ``c - b_i < 0``, masked, which still turns ``grad`` NaN for a schedule with ``sqrt``).

    The join is continuous at ``b_i`` exactly when
    ``s_{i-1}(b_i - b_{i-1}) = s_i(0)``; nothing is blended. A boundary of 0 makes the first
    schedule unused (allowed, so that generated boundary lists need no special case).

    Args:
      schedules: a non-empty sequence of schedules.
      boundaries: ``len(schedules) - 1`` strictly increasing non-negative integers (counts).

    Returns:
      An optax schedule ``count -> float32``.

    Example:
      >>> import optax, optaxsched as oxs
      >>> warm = optax.linear_schedule(0.0, 1.0, transition_steps=10)
      >>> decay = optax.linear_schedule(1.0, 0.0, transition_steps=90)
      >>> schedule = oxs.join([warm, decay], boundaries=[10])
      >>> [round(float(schedule(c)), 6) for c in (0, 5, 10, 55, 100, 200)]
      [0.0, 0.5, 1.0, 0.5, 0.0, 0.0]
    """
    where = "join"
    if isinstance(schedules, (str, bytes)) or not hasattr(schedules, "__len__"):
        _checks.fail(where, "schedules", "a non-empty sequence of schedules", schedules)
    schedules = tuple(schedules)
    if not schedules:
        _checks.fail(where, "schedules", "a non-empty sequence of schedules", schedules)
    for i, schedule in enumerate(schedules):
        check_schedule(where, f"schedules[{i}]", schedule)
    if (isinstance(boundaries, (str, bytes)) or not hasattr(boundaries, "__len__")
            or np.ndim(boundaries) == 0):
        _checks.fail_type(where, "boundaries",
                     f"a sequence of {len(schedules) - 1} strictly increasing non-negative "
                     "integers", boundaries)
    if len(boundaries) != len(schedules) - 1:
        _checks.fail(where, "boundaries",
                     f"a sequence of len(schedules) - 1 = {len(schedules) - 1} strictly "
                     "increasing non-negative integers", boundaries)
    bounds = _check_steps(where, "boundaries", boundaries, minimum=0) if len(boundaries) else ()

    # The join itself is optax's; what this adds is checked arguments, one float count for every
    # integer or float dtype, and a clock that never runs backwards: optax hands the later
    # schedules ``count - b_i`` < 0 before their boundary (masked by ``where``, but a schedule
    # that takes sqrt or log of it would put NaN into ``grad``), here they see ``max(·, 0)``.
    clocked = [lambda c, s=schedule: evaluate(s, _shifted(c, 0.0)) for schedule in schedules]
    # float boundaries: one beyond int32 (a schedule in token units) must not overflow.
    inner = optax.join_schedules(clocked, [float(b) for b in bounds])

    def joined(count):
        return jnp.asarray(inner(_shapes.as_float_count(count)), dtype=jnp.float32)

    return joined


# ------------------------------------------------------------------------------------------------
# multiply
# ------------------------------------------------------------------------------------------------

def multiply(*factors: Callable | float) -> optax.Schedule:
    """The pointwise product of schedules and constants.

    .. math::

        \\eta(c) = \\Big(\\prod_j a_j\\Big) \\prod_i s_i(c)

    for the constants ``a_j`` and schedules ``s_i`` among ``factors``. Typical uses: a unit-peak
    shape times a peak learning rate (``multiply(oxs.tabulated(shape), 3e-4)``), or a decay
    modulated by a second schedule. Finite factors give a finite product: one beyond float32's
    range saturates at ``±3.4e38`` (keeping its sign) instead of overflowing to ``inf``, which
    would turn an optimizer's state NaN, and no partial product overflows or underflows on the
    way (``1e20 · 1e20 · 1e-10`` is ``1e30``).

    Each constant must be representable in float32, 0 or of magnitude in [1.2e-38, 3.4e38]: a
    smaller one would be flushed to 0 (``1e-50`` is an error, not a zero schedule). The
    constants are multiplied together once, as a float64 mantissa and an exact power of two, so
    their product may leave float32's range where the schedules bring it back
    (``multiply(s, 1e-30, 1e-30)`` with ``s = 1e30`` is ``1e-30``; ``multiply(s, 1e20, 1e20)``
    with ``s = 1e-10`` is ``1e30``). Without a schedule among the factors the product is the
    schedule's constant value, and must itself be 0 or within that range.

    Args:
      *factors: at least one factor; each a schedule or a number representable in float32 (see
        above).

    Returns:
      An optax schedule ``count -> float32``.

    Example:
      >>> import optax, optaxsched as oxs
      >>> decay = optax.linear_schedule(1.0, 0.0, transition_steps=100)
      >>> schedule = oxs.multiply(decay, 3e-4)
      >>> [round(float(schedule(c)), 8) for c in (0, 50, 100)]
      [0.0003, 0.00015, 0.0]
    """
    where = "multiply"
    if not factors:
        _checks.fail(where, "factors", "at least one schedule or number", factors)
    # The constants' product as mantissa * 2**exponent, |mantissa| in [0.5, 1) (or 0): a float64
    # running product could underflow or overflow on the way, and a float32 one would lose a
    # product beyond float32's range that the schedules bring back into it.
    mantissa, exponent = 1.0, 0
    schedules: list[Callable] = []
    for i, factor in enumerate(factors):
        if callable(factor) and not isinstance(factor, type):
            schedules.append(check_schedule(where, f"factors[{i}]", factor))
        else:
            value = _checks.check_float(where, f"factors[{i}]", factor, normal=True)
            m, e = math.frexp(value)
            mantissa, carry = math.frexp(mantissa * m)
            exponent += e + carry
    if not schedules and not _fits_float32(mantissa, exponent):
        _checks.fail(where, "factors",
                     "numbers whose product is within the float32 range when no schedule is "
                     f"among them (0, or of magnitude in [{_checks.FLOAT32_TINY:.7g}, "
                     f"{_checks.FLOAT32_MAX:.7g}])", factors)
    factors_in_order = tuple(schedules)
    # float32 rounding of the mantissa (to 1.0 at most: still exact with the power of two).
    constant = float(np.float32(mantissa))

    def product(count):
        count = _shapes.as_float_count(count)
        values = [jnp.full(jnp.shape(count), constant, dtype=jnp.float32)]
        values += [evaluate(schedule, count) for schedule in factors_in_order]
        return _numerics.saturating_product(values, exponent=exponent)

    return product


def _fits_float32(mantissa: float, exponent: int) -> bool:
    """Whether ``mantissa * 2**exponent`` is 0 or within float32's normal range."""
    if mantissa == 0.0:
        return True
    if not -200 < exponent < 200:  # far outside float32's range (and math.ldexp's)
        return False
    return _checks.FLOAT32_TINY <= abs(math.ldexp(mantissa, exponent)) <= _checks.FLOAT32_MAX


# ------------------------------------------------------------------------------------------------
# sample_every
# ------------------------------------------------------------------------------------------------

def sample_every(schedule: Callable, interval: int) -> optax.Schedule:
    """Holds a schedule's value for ``interval`` steps: a staircase sampled every ``interval``.

    .. math::

        \\eta(c) = s\\big(\\lfloor c / k \\rfloor\\, k\\big),\\qquad k = \\text{interval}

    REX (Chen et al.) describes a schedule as a *profile* plus a *sampling rate*: how often the
    learning rate is updated from the profile. ``sample_every(profile, k)`` is that sampling rate
    for any profile (``sample_every(oxs.rex(...), 1)`` is REX updated every step). The value
    changes only at multiples of ``k``; ``interval=1`` returns the schedule at integer counts.
    The floor is exact for every count below 2**24 (a float32 rounding of ``c / k`` is
    corrected). The gradient with respect to the count is 0 (a staircase).

    Args:
      schedule: the profile to sample.
      interval: steps between updates of the value; a positive integer.

    Returns:
      An optax schedule ``count -> float32``.

    Example:
      >>> import optax, optaxsched as oxs
      >>> decay = optax.linear_schedule(1.0, 0.0, transition_steps=100)
      >>> schedule = oxs.sample_every(decay, 25)
      >>> [round(float(schedule(c)), 6) for c in (0, 24, 25, 49, 50, 99, 100)]
      [1.0, 1.0, 0.75, 0.75, 0.5, 0.25, 0.0]

    References:
      Chen, Wolfe, Kyrillidis, "REX: Revisiting Budgeted Training with an Improved Schedule"
      (arXiv 2107.04197).
    """
    where = "sample_every"
    schedule = check_schedule(where, "schedule", schedule)
    k = float(_checks.check_int(where, "interval", interval, minimum=1))

    def sampled(count):
        count = _shapes.as_float_count(count)
        steps = jnp.floor(count / k)
        steps = jnp.where(steps * k > count, steps - 1.0, steps)  # c / k rounded up to an integer.
        steps = jnp.where((steps + 1.0) * k <= count, steps + 1.0, steps)
        return evaluate(schedule, jax.lax.stop_gradient(steps * k))

    return sampled


# ------------------------------------------------------------------------------------------------
# rewarm
# ------------------------------------------------------------------------------------------------

def rewarm(schedule: Callable, restart_steps: int | Sequence[int], warmup_steps: int,
           init_value: float | None = None, shape: WarmupShape = "linear") -> optax.Schedule:
    """Re-warms and re-decays a schedule at given steps, for continual pre-training.

    Until the first restart the schedule runs unchanged. At each restart ``r_j`` it starts again
    from its own count 0 (it sees ``c - r_j``), and its first ``W = warmup_steps`` steps are
    replaced by a ramp from ``a_j`` up to the schedule's value at the end of that warmup,
    ``s(W)``:

    .. math::

        \\eta(c) = \\begin{cases}
          s(c) & c < r_1 \\\\
          a_j + (s(W) - a_j)\\, r\\big((c - r_j)/W\\big) & r_j \\le c < \\min(r_j + W, r_{j+1})\\\\
          s(c - r_j) & r_j + W \\le c < r_{j+1}
        \\end{cases}

    ``r`` is the warmup ramp (``'linear'``, as in Ibrahim et al., or ``'cosine'``). The ramp starts
    from ``a_j = init_value`` when given; by default (``init_value=None``) it starts from the
    value the run would have had at ``r_j`` without the restart, i.e. the previous phase continued
    to count ``r_j`` (``s(r_1)`` for the first restart). With the default the schedule is
    continuous at every restart (as a function of a real count), and it is always continuous at
    the end of each re-warmup, ``r_j + W``. A restart that comes before the previous re-warmup has
    finished starts from the ramp's value at that point.

    The re-warmup overwrites the beginning of the restarted schedule, so a schedule with its own
    warmup of ``W`` steps (``oxs.wsd(peak, total, warmup_steps=W)``) is re-warmed from the current
    learning rate rather than from its ``init_value``, and a decay without warmup
    (``optax.cosine_decay_schedule``) is re-warmed to ``s(W)``, its value after ``W`` steps.
    ``warmup_steps=0`` gives hard restarts (``s(c - r_j)``, as in SGDR).

    Args:
      schedule: the schedule to restart.
      restart_steps: one positive integer or a strictly increasing sequence of positive integers:
        the counts at which the schedule restarts (e.g. where a new dataset begins).
      warmup_steps: length of each re-warmup; a non-negative integer.
      init_value: where each re-warmup starts; ``None`` (default) for the current value, else a
        finite number (e.g. the minimum learning rate, or 0).
      shape: ``'linear'`` (default) or ``'cosine'`` re-warmup ramp.

    Returns:
      An optax schedule ``count -> float32``.

    Example:
      >>> import optax, optaxsched as oxs
      >>> cosine = optax.cosine_decay_schedule(1.0, decay_steps=100, alpha=0.1)
      >>> schedule = oxs.rewarm(cosine, restart_steps=[200], warmup_steps=10)
      >>> [round(float(schedule(c)), 3) for c in (0, 100, 199, 200, 205, 210, 250, 300, 400)]
      [1.0, 0.1, 0.1, 0.1, 0.539, 0.978, 0.55, 0.1, 0.1]

    References:
      Ibrahim, Thérien, Gupta, Richter, Anthony, Lesort, Belilovsky, Rish, "Simple and Scalable
      Strategies to Continually Pre-train Large Language Models" (arXiv 2403.08763).
      Gupta et al., "Continual Pre-Training of Large Language Models: How to (re)warm your
      model?" (arXiv 2308.04014).
    """
    where = "rewarm"
    schedule = check_schedule(where, "schedule", schedule)
    restarts = _check_steps(where, "restart_steps", restart_steps, minimum=1)
    warm = _checks.check_int(where, "warmup_steps", warmup_steps, minimum=0)
    init = None if init_value is None else _checks.check_float(where, "init_value", init_value)
    shape = _checks.check_choice(where, "shape", shape, _shapes.WARMUP_SHAPES)
    length = float(warm)
    # Schedule counts needed for the ramps' start values: r_1, every gap r_{j+1} - r_j that
    # outlasts the re-warmup, and W (the ramps' end). All static; evaluated in one call.
    gaps = [b - a for a, b in zip(restarts, restarts[1:], strict=False)]
    anchors = np.asarray([restarts[0], *gaps, warm], dtype=np.float32)
    restarts_f = np.asarray(restarts, dtype=np.float32)

    def ramp(x, start, target):
        return _shapes.warmup(shape, x, start, target)

    def rewarmed(count):
        count = _shapes.as_float_count(count)
        at_anchors = evaluate(schedule, jnp.asarray(anchors))
        target = at_anchors[-1]
        # Start value of each re-warmup (static recursion over the restarts).
        starts = []
        for j in range(len(restarts)):
            if init is not None or warm == 0:
                starts.append(jnp.float32(0.0 if init is None else init))
            elif j == 0:
                starts.append(at_anchors[0])
            elif gaps[j - 1] < warm:  # the previous ramp had not finished.
                starts.append(ramp(gaps[j - 1] / length, starts[-1], target))
            else:
                starts.append(at_anchors[j])
        starts = jnp.stack(starts)
        phase = jnp.sum(count[..., None] >= restarts_f, axis=-1)  # 0 before the first restart.
        j = jnp.maximum(phase - 1, 0)
        origin = jnp.where(phase > 0, jnp.asarray(restarts_f)[j], 0.0)
        local = jnp.maximum(count - origin, 0.0)
        body = evaluate(schedule, local)
        if warm == 0:
            return body
        warming = ramp(_shapes.progress(local, 0.0, length), starts[j], target)
        return jnp.asarray(jnp.where((phase > 0) & (local < length), warming, body),
                           dtype=jnp.float32)

    return rewarmed
