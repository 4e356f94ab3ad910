"""A piecewise-linear schedule through a table of values (e.g. a refined schedule).

The table may be resampled to another run length; between entries the value is interpolated
linearly, and beyond the last entry it holds the last value.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np
import optax

from optaxsched import _checks, _shapes

__all__ = ["tabulated"]



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
            or np.any(np.abs(table) > _checks.FLOAT32_MAX)):
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
    # Neighbours of opposite signs can be further apart than float32's range (-3e38, 3e38): their
    # slope overflows, and start + frac * slope would be inf (NaN at frac = 0). Such a table
    # interpolates as start * (1 - frac) + end * frac instead, whose terms cannot overflow; every
    # other table keeps the usual form, and its bits.
    wide = not bool(np.all(np.isfinite(np.asarray(slopes))))
    ends = table32[1:]

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
        if wide:
            value = starts[i] * (1.0 - frac) + ends[i] * frac
        else:
            value = starts[i] + frac * slopes[i]
        return jnp.where(scaled >= end, last, value)  # the last value exactly, not v + 1 * dv

    return schedule
