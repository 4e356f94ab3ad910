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
  schedules and use :func:`token_schedule` for the stateful case.

``token_schedule`` is the one stateful piece: an ``optax.schedules.StatefulSchedule`` that counts
the tokens actually seen (read from an extra argument of ``update``) for runs whose batch size
changes, for use with ``optax.inject_hyperparams``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from optaxsched import _checks, _numerics, _shapes
from optaxsched._types import WarmupShape

__all__ = [
    "tabulated",
    "with_warmup",
    "join",
    "multiply",
    "sample_every",
    "in_tokens",
    "token_schedule",
    "TokenSchedule",
    "TokenScheduleState",
    "rewarm",
]

_SCHEDULE_RULE = ("a schedule: a callable count -> scalar that JAX can trace on a float32 count "
                  "(not a stateful schedule)")
_FLOAT32_MAX = float(np.finfo(np.float32).max)


# ------------------------------------------------------------------------------------------------
# Private helpers.
# ------------------------------------------------------------------------------------------------

def _check_schedule(where: str, name: str, value: Any) -> Callable:
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


def _evaluate(schedule: Callable, count: jnp.ndarray) -> jnp.ndarray:
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
# tabulated
# ------------------------------------------------------------------------------------------------

def tabulated(values: Any, total_steps: int | None = None) -> optax.Schedule:
    """A piecewise-linear schedule through a table of values, optionally resampled to a new length.

    With ``n = len(values)`` and ``T = total_steps`` (``T = n`` when not given), the table is laid
    out over the counts ``0 .. T - 1``: entry ``i`` sits at count ``i (T - 1) / (n - 1)``, so the
    first value is the value at count 0, the last value the value at count ``T - 1``, and the
    schedule interpolates linearly in between:

    .. math::

        p(c) = \\mathrm{clip}\\big(c\\,(n - 1)/(T - 1),\\ 0,\\ n - 1\\big),\\qquad
        \\eta(c) = v_{\\lfloor p \\rfloor} + (p - \\lfloor p \\rfloor)\\,
                   (v_{\\lfloor p \\rfloor + 1} - v_{\\lfloor p \\rfloor})

    Without ``total_steps`` (or with ``total_steps == n``) this is ``values[count]`` at integer
    counts. From count ``T - 1`` on the schedule holds the last value (and before count 0 the
    first). A table of one entry is a constant schedule.

    Values may be any finite numbers representable in float32: negative values are allowed because
    a schedule can drive any hyperparameter through ``optax.inject_hyperparams``, not only a
    learning rate. The table is stored in float32.

    Args:
      values: 1-D array-like of at least one finite number; ``values[i]`` is the value at count
        ``i`` before resampling.
      total_steps: optional length of the run to stretch or compress the table over; a positive
        integer, at least 2 when the table has two or more entries (its first and last values
        need distinct counts). ``None`` keeps ``len(values)``.

    Returns:
      An optax schedule ``count -> float32``.

    Example:
      >>> import optaxsched as oxs
      >>> schedule = oxs.tabulated([1.0, 0.5, 0.0], total_steps=5)
      >>> [float(schedule(c)) for c in range(6)]
      [1.0, 0.75, 0.5, 0.25, 0.0, 0.0]

    References:
      Used by :func:`optaxsched.refined_schedule` for the schedules of Defazio et al., "When, Why
      and How Much? Adaptive Learning Rate Scheduling by Refinement" (arXiv 2310.07831).
    """
    where = "tabulated"
    allowed = "a 1-D sequence of at least 1 finite number (within the float32 range)"
    if isinstance(values, (str, bytes)):
        _checks.fail(where, "values", allowed, values)
    try:
        table = np.asarray(values, dtype=np.float64)
    except Exception:  # not array-like, not numeric, or a tracer.
        _checks.fail(where, "values", allowed, values)
    if (table.ndim != 1 or table.size < 1 or not np.all(np.isfinite(table))
            or np.any(np.abs(table) > _FLOAT32_MAX)):
        _checks.fail(where, "values", allowed, values)
    n = int(table.size)
    if total_steps is None:
        total = n
    else:
        total = _checks.check_int(where, "total_steps", total_steps, minimum=2 if n >= 2 else 1)
    table32 = jnp.asarray(table, dtype=jnp.float32)

    if n == 1:
        only = float(table32[0])

        def constant(count):
            count = _shapes.as_float_count(count)
            return jnp.full(jnp.shape(count), only, dtype=jnp.float32)

        return constant

    # The position count * (n - 1) / (T - 1) is split into a whole index and a remainder with
    # float32 arithmetic that is exact for integer counts while count * (n - 1) < 2**24 (XLA
    # turns a division by a constant into a multiplication, so the quotient is only used as a
    # first guess and corrected): entries are hit exactly, the last one from count T - 1 on.
    steps_per_entry = float(total - 1)  # counts between neighbouring entries, times (n - 1)
    end = float((n - 1) * (total - 1))
    starts = table32[:-1]
    slopes = table32[1:] - table32[:-1]
    last = table32[-1]

    def schedule(count):
        count = _shapes.as_float_count(count)
        scaled = jnp.clip(count * float(n - 1), 0.0, end)
        index = jnp.clip(jnp.floor(scaled / steps_per_entry), 0.0, float(n - 2))
        # (Rounding up past a whole number needs count * (n - 1) near 2**24 or a float count;
        # rounding down happens at ordinary sizes: 107 / 107 gives 0.99999994.)
        index = jnp.where(index * steps_per_entry > scaled, index - 1.0, index)
        index = jnp.where((index + 1.0) * steps_per_entry <= scaled,
                          jnp.minimum(index + 1.0, float(n - 2)), index)
        frac = (scaled - index * steps_per_entry) / steps_per_entry
        i = index.astype(jnp.int32)
        value = starts[i] + frac * slopes[i]
        return jnp.where(scaled >= end, last, value)  # the last value exactly, not v + 1 * dv

    return schedule


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
    schedule = _check_schedule(where, "schedule", schedule)
    warm = _checks.check_int(where, "warmup_steps", warmup_steps, minimum=0)
    shape = _checks.check_choice(where, "shape", shape, _shapes.WARMUP_SHAPES)
    init = _checks.check_float(where, "init_value", init_value)
    length = float(warm)

    def warmed(count):
        count = _shapes.as_float_count(count)
        body = _evaluate(schedule, _shifted(count, length))
        if warm == 0:
            return body
        target = jnp.asarray(schedule(jnp.float32(0.0)), dtype=jnp.float32)
        ramp = _shapes.warmup(shape, _shapes.progress(count, 0.0, length), init, target)
        return jnp.asarray(jnp.where(count < length, ramp, body), dtype=jnp.float32)

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
        _check_schedule(where, f"schedules[{i}]", schedule)
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
    clocked = [lambda c, s=schedule: _evaluate(s, _shifted(c, 0.0)) for schedule in schedules]
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
    modulated by a second schedule. The constants are multiplied together once, in float64.

    Args:
      *factors: at least one factor; each a schedule or a finite number.

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
    constant = 1.0
    schedules: list[Callable] = []
    for i, factor in enumerate(factors):
        if callable(factor) and not isinstance(factor, type):
            schedules.append(_check_schedule(where, f"factors[{i}]", factor))
        else:
            constant *= _checks.check_float(
                where, f"factors[{i}]", factor)  # message: "a finite number"
    if not math.isfinite(constant) or abs(constant) > _FLOAT32_MAX:
        _checks.fail(where, "factors", "numbers whose product is within the float32 range",
                     factors)
    factors_in_order = tuple(schedules)

    def product(count):
        count = _shapes.as_float_count(count)
        value = jnp.full(jnp.shape(count), constant, dtype=jnp.float32)
        for schedule in factors_in_order:
            value = value * _evaluate(schedule, count)
        return value

    return product


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
    schedule = _check_schedule(where, "schedule", schedule)
    k = float(_checks.check_int(where, "interval", interval, minimum=1))

    def sampled(count):
        count = _shapes.as_float_count(count)
        steps = jnp.floor(count / k)
        steps = jnp.where(steps * k > count, steps - 1.0, steps)  # c / k rounded up to an integer.
        steps = jnp.where((steps + 1.0) * k <= count, steps + 1.0, steps)
        return _evaluate(schedule, jax.lax.stop_gradient(steps * k))

    return sampled


# ------------------------------------------------------------------------------------------------
# in_tokens (stateless) and token_schedule (stateful)
# ------------------------------------------------------------------------------------------------

def in_tokens(schedule: Callable, tokens_per_step: float) -> optax.Schedule:
    """Drives a schedule written in tokens with the optax step count, at a fixed batch size.

    .. math::

        \\eta(c) = s(c \\cdot \\text{tokens\\_per\\_step})

    so ``s`` is evaluated at the number of tokens seen *before* this update (0 on the first
    update, as the optax count is). Writing the schedule in tokens lets the batch size change
    between runs without rewriting the schedule (allenai/OLMo#411); for a batch size that changes
    *within* a run use :func:`token_schedule`, which counts the tokens actually seen.

    Precision: the token count is computed in float32 (relative precision 2**-24, about
    6e-8, and no overflow: float32 reaches 3e38). At 1e12 tokens the count is exact to within
    65,536 tokens, far less than one step of any realistic batch, so a schedule of the token count
    is as accurate as a schedule of the step count. The inner schedule must accept float counts
    beyond 2**31: give its step arguments as Python floats where it would otherwise turn them into
    int32 (``optax.linear_schedule(1.0, 0.0, transition_steps=2e12)``, not ``2 * 10**12``, which
    overflows inside ``jnp.clip``).

    Args:
      schedule: a schedule whose count is a number of tokens.
      tokens_per_step: tokens in each step (global batch size times sequence length); a positive
        finite number.

    Returns:
      An optax schedule of the step count ``count -> float32``.

    Example:
      >>> import optax, optaxsched as oxs
      >>> per_token = optax.linear_schedule(1.0, 0.0, transition_steps=1e9)
      >>> schedule = oxs.in_tokens(per_token, tokens_per_step=2**20)
      >>> round(float(schedule(476)), 4)  # 476 * 2**20 tokens, about half of 1e9
      0.5009

    References:
      allenai/OLMo#411 (schedules in token units). Shen et al., "Power Scheduler: A Batch Size
      and Token Number Agnostic Learning Rate Scheduler" (arXiv 2408.13359).
    """
    where = "in_tokens"
    schedule = _check_schedule(where, "schedule", schedule)
    per_step = _checks.check_float(where, "tokens_per_step", tokens_per_step, minimum=0.0,
                                   strict_min=True)

    def stepped(count):
        count = _shapes.as_float_count(count)
        return _evaluate(schedule, count * per_step)

    return stepped


# Exact token counting in two int32 words: total = high * 2**30 + low, 0 <= low < 2**30.
_LOW_BITS = 30
_LOW_MASK = (1 << _LOW_BITS) - 1
_INT32_MAX = _numerics.INT32_MAX
_MAX_TOKENS = ((1 << 31) - 1) << _LOW_BITS  # about 2.3e18 tokens.
_LARGEST_FLOAT32_BELOW_2_31 = 2147483520.0


class TokenScheduleState(NamedTuple):
    """State of :func:`token_schedule`: the tokens seen before the current update.

    Attributes:
      tokens: float32 scalar, the token count the schedule is evaluated at (``high * 2**30 +
        low`` rounded once to float32, never accumulated in float32); log it with
        ``optax.tree.get(state, "tokens")``.
      high: int32 scalar, the count's multiples of 2**30.
      low: int32 scalar in [0, 2**30), the rest. ``high`` and ``low`` count exactly, beyond the
        int32 range (up to about 2.3e18 tokens).
    """

    tokens: jax.Array
    high: jax.Array
    low: jax.Array


class TokenSchedule:
    """A stateful schedule of the tokens seen (``optax.schedules.StatefulSchedule``).

    Build it with :func:`token_schedule`; see there for the semantics.
    """

    def __init__(self, schedule: Callable, extra_arg: str, initial_tokens: int):
        self.schedule = schedule
        self.extra_arg = extra_arg
        self.initial_tokens = initial_tokens

    def __repr__(self) -> str:
        return (f"TokenSchedule(schedule={self.schedule!r}, extra_arg={self.extra_arg!r}, "
                f"initial_tokens={self.initial_tokens!r})")

    def init(self) -> TokenScheduleState:
        """The state before the first update: ``initial_tokens`` seen."""
        high, low = divmod(self.initial_tokens, 1 << _LOW_BITS)
        return _token_state(jnp.asarray(high, jnp.int32), jnp.asarray(low, jnp.int32))

    def update(self, state: TokenScheduleState, **extra_args) -> TokenScheduleState:
        """Adds this step's tokens, read from the extra argument ``extra_arg``.

        Negative or non-finite token counts add nothing; float counts are rounded to the nearest
        integer; one step may add at most 2**31 - 1 tokens (larger values are clipped).
        """
        tokens = extra_args.get(self.extra_arg)
        if tokens is None:
            _checks.fail("token_schedule", self.extra_arg,
                         f"passed to update() as the extra argument {self.extra_arg}=<number of "
                         "tokens in this step> (e.g. tx.update(grads, state, params, "
                         f"{self.extra_arg}=n))", tokens)
        step = _as_token_increment(tokens, self.extra_arg)
        low = state.low + (step & _LOW_MASK)           # < 2**31: no overflow.
        high = state.high + (step >> _LOW_BITS) + (low >> _LOW_BITS)
        return _token_state(high, low & _LOW_MASK)

    def __call__(self, state: TokenScheduleState, **extra_args) -> jax.Array:
        """The schedule at the tokens seen before this update (extra arguments are ignored)."""
        del extra_args
        return jnp.asarray(self.schedule(state.tokens), dtype=jnp.float32)


def _token_state(high: jnp.ndarray, low: jnp.ndarray) -> TokenScheduleState:
    tokens = (high.astype(jnp.float32) * float(1 << _LOW_BITS) + low.astype(jnp.float32))
    return TokenScheduleState(tokens=tokens, high=high, low=low)


def _as_token_increment(tokens: Any, name: str) -> jnp.ndarray:
    """This step's token count as a non-negative int32 scalar (traceable)."""
    if isinstance(tokens, (int, np.integer)) and not isinstance(tokens, bool):
        tokens = min(max(int(tokens), 0), _INT32_MAX)  # Python ints beyond int32: clip first.
    tokens = jnp.asarray(tokens)
    if tokens.shape != ():
        _checks.fail("token_schedule", name, "a scalar (the number of tokens in this step)",
                     f"an array of shape {tokens.shape}")
    if jnp.issubdtype(tokens.dtype, jnp.floating):
        tokens = tokens.astype(jnp.float32)
        tokens = jnp.where(jnp.isfinite(tokens), jnp.round(tokens), 0.0)
        return jnp.clip(tokens, 0.0, _LARGEST_FLOAT32_BELOW_2_31).astype(jnp.int32)
    if jnp.issubdtype(tokens.dtype, jnp.integer):
        if jnp.iinfo(tokens.dtype).max > _INT32_MAX:  # uint32, int64, uint64 (with x64).
            tokens = jnp.minimum(tokens, jnp.asarray(_INT32_MAX, tokens.dtype))
        return jnp.maximum(tokens.astype(jnp.int32), 0)
    _checks.fail("token_schedule", name, "a number (the number of tokens in this step)", tokens)


def token_schedule(schedule: Callable, extra_arg: str = "tokens",
                   initial_tokens: int = 0) -> TokenSchedule:
    """A stateful schedule of the tokens actually seen, for runs whose batch size changes.

    An ``optax.schedules.StatefulSchedule`` for ``optax.inject_hyperparams``: its state counts the
    tokens seen so far, each ``update`` adds the tokens of the current step, read from the extra
    argument ``tokens=`` (name configurable) that the training loop passes to the optimizer's
    ``update``. The value used for an update is the schedule at the tokens seen *before* it:

    .. math::

        \\eta_t = s\\Big(N_0 + \\sum_{u < t} n_u\\Big)

    with ``n_u`` the tokens of update ``u`` and ``N_0 = initial_tokens``. With a constant batch of
    ``n`` tokens this equals ``in_tokens(s, n)`` at every step.

    The count is kept exactly in two int32 words (``high * 2**30 + low``), so it neither overflows
    at 2**31 tokens, as an int32 would, nor drifts, as a float32 running sum would (adding 4M
    tokens to 1e12 in float32 rounds by up to 32,768 tokens each step); it works without
    ``jax_enable_x64``. The schedule is evaluated at that count rounded once to float32
    (``state.tokens``). Non-finite or negative token counts add nothing; float counts are rounded.

    Under ``optax.MultiSteps`` only the micro-step that emits an update advances the inner state
    (the others' states are discarded), so pass the token count of the whole accumulated batch
    as ``tokens=`` at every micro-step.

    Args:
      schedule: a schedule whose count is a number of tokens.
      extra_arg: name of the extra argument carrying the tokens of the current step; a Python
        identifier (default ``'tokens'``).
      initial_tokens: tokens already seen when the state is created (resuming a run whose
        optimizer state is not restored); a non-negative integer below 2**61.

    Returns:
      A :class:`TokenSchedule` with ``init()``, ``update(state, **extra_args)`` and
      ``__call__(state, **extra_args)``; its state is a :class:`TokenScheduleState`.

    Example:
      >>> import jax.numpy as jnp, optax, optaxsched as oxs
      >>> per_token = optax.linear_schedule(1.0, 0.0, transition_steps=1000.0)
      >>> tx = optax.inject_hyperparams(optax.sgd)(learning_rate=oxs.token_schedule(per_token))
      >>> params = jnp.zeros(2)
      >>> state = tx.init(params)
      >>> for n in (100, 300, 600):  # the batch grows
      ...     _, state = tx.update(jnp.ones(2), state, params, tokens=n)
      >>> round(float(state.hyperparams["learning_rate"]), 6)  # used for the last update: s(400)
      0.6
      >>> float(optax.tree.get(state, "tokens"))
      1000.0

    References:
      allenai/OLMo#411 (schedules in token units, so that the batch size can change on restart).
    """
    where = "token_schedule"
    schedule = _check_schedule(where, "schedule", schedule)
    if not isinstance(extra_arg, str) or not extra_arg.isidentifier():
        _checks.fail(where, "extra_arg", "a Python identifier (the extra argument's name)",
                     extra_arg)
    initial = _checks.check_int(where, "initial_tokens", initial_tokens, minimum=0,
                                maximum=_MAX_TOKENS)
    return TokenSchedule(schedule, extra_arg, initial)


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
    schedule = _check_schedule(where, "schedule", schedule)
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
        at_anchors = _evaluate(schedule, jnp.asarray(anchors))
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
        body = _evaluate(schedule, local)
        if warm == 0:
            return body
        warming = ramp(_shapes.progress(local, 0.0, length), starts[j], target)
        return jnp.asarray(jnp.where((phase > 0) & (local < length), warming, body),
                           dtype=jnp.float32)

    return rewarmed
