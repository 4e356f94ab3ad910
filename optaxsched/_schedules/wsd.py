"""Warmup-stable-decay (WSD) and WSD-S: a constant trunk, decayed only near a budget point.

WSD (MiniCPM, Hagele et al.) decays once, at the end of the run; WSD-S (Wen et al.) decays before
each of several budgets and resumes at the peak, so one run yields a decayed checkpoint per budget.
All counts are optax counts: 0 on the first update, so ``schedule(c)`` is the learning rate of
update number ``c + 1`` and "save after N updates" means after the update whose count is ``N - 1``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
import optax

from optaxsched import _checks, _deprecation, _shapes
from optaxsched._schedules import _assembly
from optaxsched._types import DecayShape

__all__ = ["wsd", "wsd_s", "wsd_s_checkpoints", "WsdSCheckpoint"]


@_deprecation.renamed_arguments(decay_steps="cooldown_steps")
def wsd(peak_value: float, total_steps: int, warmup_steps: int = 0,
        decay_fraction: float | None = None, cooldown_steps: int | None = None,
        decay_shape: DecayShape | Callable = "1-sqrt", end_value: float = 0.0,
        init_value: float = 0.0) -> optax.Schedule:
    """Warmup-stable-decay: linear warmup, a constant trunk, a short decay at the end.

    .. math::

        \\eta(c) = \\begin{cases}
          \\eta_0 + (\\eta_{peak} - \\eta_0)\\, c / W & c < W \\\\
          \\eta_{peak} & W \\le c < T - D \\\\
          \\eta_{end} + (\\eta_{peak} - \\eta_{end})\\, \\phi(x), \\quad x = (c - T + D)/D
            & T - D \\le c < T \\\\
          \\eta_{end} & c \\ge T
        \\end{cases}

    ``D`` is ``cooldown_steps``, or ``max(1, round(decay_fraction * total_steps))`` (halves round
    up), by default 20% of the run. The decay shapes ``phi`` (``phi(0) = 1``, ``phi(1) = 0``,
    non-increasing):

    - ``'1-sqrt'``: ``1 - sqrt(x)`` (Hagele et al.; the default),
    - ``'linear'``: ``1 - x``; ``'cosine'``: ``(1 + cos(pi x)) / 2``; ``'square'``: ``1 - x**2``,
    - ``'exponential'``: MiniCPM's half-life decay ``peak * 0.5 ** (s / h)``, ``s`` steps into
      the decay, with the half-life ``h = D ln 2 / ln(peak / end)`` that lands exactly on
      ``end_value`` after ``D`` steps; i.e. the geometric interpolation
      ``peak * (end / peak) ** x``. Needs ``end_value > 0``.
    - ``'harmonic'``: WSD-S's inverse-proportional interpolation
      ``1 / (x / end + (1 - x) / peak)``. Needs ``end_value > 0``.
    - a callable ``phi(x)`` written with ``jnp`` (checked at construction on [0, 1]).

    Because the floor is inside the formula (``end + (peak - end) * phi``), every shape ends
    exactly at ``end_value`` and never goes below it, unlike ports that decay towards 0 and then
    clamp to the floor. Over the decay the learning rate is non-increasing.

    Args:
      peak_value: the constant learning rate of the trunk; a positive number.
      total_steps: count at which ``end_value`` is reached; a positive integer.
      warmup_steps: length of the linear warmup, in [0, total_steps - D].
      decay_fraction: length of the decay as a fraction of ``total_steps``, in (0, 1] (rounded
        to the nearest step, at least one). Default 0.2 when neither this nor ``cooldown_steps``
        is given.
      cooldown_steps: length of the decay in steps, in [1, total_steps]; an alternative to
        ``decay_fraction`` (giving both is an error). Called ``decay_steps`` in 0.1.0, which
        still works with a DeprecationWarning until 0.2.0 (in optax ``decay_steps`` is the
        whole horizon, here ``total_steps``).
      decay_shape: ``'1-sqrt'``, ``'linear'``, ``'cosine'``, ``'square'``, ``'exponential'``,
        ``'harmonic'`` or a callable ``phi(x)``.
      end_value: final learning rate, in [0, peak_value] (positive for ``'exponential'`` and
        ``'harmonic'``).
      init_value: learning rate at count 0 when there is a warmup, in [0, peak_value].

    Returns:
      An optax schedule: ``count -> float32``.

    Example:
      >>> import optaxsched as oxs
      >>> schedule = oxs.wsd(1.0, total_steps=1000, warmup_steps=100, end_value=0.1)
      >>> [round(float(schedule(c)), 4) for c in (0, 100, 799, 800, 850, 1000)]
      [0.0, 1.0, 1.0, 1.0, 0.55, 0.1]

    References:
      Hu et al., "MiniCPM: Unveiling the Potential of Small Language Models with Scalable
      Training Strategies" (arXiv 2404.06395); Hagele et al., "Scaling Laws and Compute-Optimal
      Training Beyond Fixed Training Durations" (arXiv 2405.18392); Wen et al., "Understanding
      Warmup-Stable-Decay Learning Rates: A River Valley Loss Landscape Perspective"
      (arXiv 2410.05192).
    """
    where = "wsd"
    peak = _assembly.check_peak(where, peak_value)
    total = _checks.check_int(where, "total_steps", total_steps, minimum=1)
    end = _assembly.check_below(where, "end_value", end_value, peak, "peak_value")
    init = _assembly.check_below(where, "init_value", init_value, peak, "peak_value")
    steps = _assembly.decay_length(where, total, cooldown_steps, decay_fraction, 0.2)
    warm = _checks.check_int(where, "warmup_steps", warmup_steps, minimum=0)
    if warm > total - steps:
        source = (f"cooldown_steps={steps}" if cooldown_steps is not None else
                  f"decay_fraction={0.2 if decay_fraction is None else decay_fraction!r}")
        _checks.fail(where, "warmup_steps",
                     f"an integer in [0, {total - steps}] (total_steps={total} minus the {steps} "
                     f"decay steps of {source})", warmup_steps)
    shape = _shapes.validate_decay_shape(where, decay_shape, peak, end)
    start = float(total - steps)

    def schedule(count):
        count = _shapes.as_float_count(count)
        x = _shapes.progress(count, start, float(steps))
        body = jnp.where(count < start, peak, _shapes.decay(shape, x, peak, end))
        value = _shapes.overlay_warmup(count, body, warm, init, peak)
        return _assembly.as_output(_assembly.terminal(count, value, total, end))

    return schedule


class WsdSCheckpoint(NamedTuple):
    """Where one decay of a :func:`wsd_s` run sits, in optax counts.

    Attributes:
      decay_start: the first count of the decay window (its learning rate is still the peak;
        the ones after it are lower). A trainer that switches data mixtures for the decay
        switches at this count.
      save_after: the decay point. The parameters after ``save_after`` updates (i.e. right
        after the update whose count is ``save_after - 1``) are the decayed checkpoint for this
        budget; the update with count ``save_after`` already uses the peak again.
    """

    decay_start: int
    save_after: int


def _wsd_s_plan(where, decay_points, cooldown_steps, decay_fraction, warmup_steps):
    rule = "a non-empty, strictly increasing sequence of positive integers"
    _checks.check_sequence(where, "decay_points", decay_points, min_length=1)
    try:
        points = [_checks.check_int(where, "decay_points", p, minimum=1) for p in decay_points]
    except ValueError:
        _checks.fail(where, "decay_points", rule, decay_points)
    if any(b <= a for a, b in zip(points, points[1:], strict=False)):
        _checks.fail(where, "decay_points", rule, decay_points)
    segments = [b - a for a, b in zip([0, *points[:-1]], points, strict=True)]
    if cooldown_steps is not None and decay_fraction is None:
        steps = _checks.check_int(where, "cooldown_steps", cooldown_steps, minimum=1,
                                  maximum=min(segments))
        lengths = [steps] * len(points)
    else:
        lengths = [_assembly.decay_length(where, length, cooldown_steps, decay_fraction, 0.1)
                   for length in segments]
    warm = _checks.check_int(where, "warmup_steps", warmup_steps, minimum=0)
    if warm > points[0] - lengths[0]:
        _checks.fail(where, "warmup_steps",
                     f"an integer in [0, {points[0] - lengths[0]}] (the first decay point "
                     f"{points[0]} minus its {lengths[0]} decay steps)", warmup_steps)
    checkpoints = tuple(WsdSCheckpoint(p - d, p) for p, d in zip(points, lengths, strict=True))
    return checkpoints, warm


@_deprecation.renamed_arguments(decay_steps="cooldown_steps")
def wsd_s_checkpoints(decay_points: Sequence[int], cooldown_steps: int | None = None,
                      decay_fraction: float | None = None,
                      warmup_steps: int = 0) -> tuple[WsdSCheckpoint, ...]:
    """When each decayed checkpoint of a :func:`wsd_s` run is ready, and when its decay starts.

    Takes the same arguments as :func:`wsd_s` (those that fix the timing) and validates them the
    same way.

    Args:
      decay_points: the budgets, in updates; see :func:`wsd_s`.
      cooldown_steps: length of every decay window, in steps.
      decay_fraction: length of each decay window as a fraction of its segment.
      warmup_steps: length of the warmup.

    Returns:
      One :class:`WsdSCheckpoint` ``(decay_start, save_after)`` per decay point: save the
      parameters after ``save_after`` updates (``save_after == decay_point``).

    Example:
      >>> import optaxsched as oxs
      >>> for checkpoint in oxs.wsd_s_checkpoints([1000, 3000], decay_fraction=0.1):
      ...     print(checkpoint)
      WsdSCheckpoint(decay_start=900, save_after=1000)
      WsdSCheckpoint(decay_start=2800, save_after=3000)

    References:
      Wen, Li, Wang, Hall, Liang, Ma, "Understanding Warmup-Stable-Decay Learning Rates: A River
      Valley Loss Landscape Perspective" (arXiv 2410.05192).
    """
    return _wsd_s_plan("wsd_s_checkpoints", decay_points, cooldown_steps, decay_fraction,
                       warmup_steps)[0]


@_deprecation.renamed_arguments(decay_steps="cooldown_steps")
def wsd_s(peak_value: float, decay_points: Sequence[int], cooldown_steps: int | None = None,
          decay_fraction: float | None = None, warmup_steps: int = 0,
          decay_shape: DecayShape | Callable = "1-sqrt", end_value: float = 0.0,
          init_value: float = 0.0) -> optax.Schedule:
    """WSD-S: one run that yields a decayed checkpoint at every budget in ``decay_points``.

    A constant trunk at ``peak_value``; before each decay point ``P_i`` a decay window of
    ``D_i`` steps ends at ``P_i``; right after it the learning rate jumps straight back to the
    peak (no re-warmup) and training continues from the decayed weights, so the decay phases are
    reused rather than thrown away. With ``P_0 = 0``, ``S_i = P_i - D_i``:

    .. math::

        \\eta(c) = \\begin{cases}
          \\eta_0 + (\\eta_{peak} - \\eta_0)\\, c / W & c < W \\\\
          \\eta_{end} + (\\eta_{peak} - \\eta_{end})\\, \\phi((c - S_i) / D_i)
            & S_i \\le c < P_i \\\\
          \\eta_{peak} & \\text{otherwise, for } c < P_K \\\\
          \\eta_{end} & c \\ge P_K \\text{ (terminal value after the last point)}
        \\end{cases}

    ``D_i`` is ``cooldown_steps`` for every window, or
    ``max(1, round(decay_fraction * (P_i - P_{i-1})))``, a fraction of each segment from the
    previous point to this one; the default is 10% of each segment (the share used by WSD-S
    reproductions; the paper's exact share was not re-verified). Decay shapes are those of
    :func:`wsd`; the WSD-S paper derives the ``'harmonic'`` (inverse-proportional) one, which
    needs ``end_value > 0``. The default here is ``'1-sqrt'`` like :func:`wsd`.

    Checkpoints, in optax counts: the value at ``c = P_i - 1`` is the last decayed one and the
    value at ``c = P_i`` is the peak again (at ``P_K`` it is ``end_value`` forever), so the
    decayed checkpoint for budget ``P_i`` is the state after ``P_i`` updates: "save after
    ``P_i`` updates", as for a :func:`wsd` run with ``total_steps = P_i``. The schedule carries
    ``schedule.checkpoints`` (the same tuple as :func:`wsd_s_checkpoints`), and
    :func:`wsd_s_checkpoints` answers without building a schedule.

    Args:
      peak_value: the constant learning rate of the trunk; a positive number.
      decay_points: the budgets, in updates: a strictly increasing sequence of positive
        integers.
      cooldown_steps: length of every decay window, in [1, shortest segment]. An alternative to
        ``decay_fraction`` (giving both is an error). Called ``decay_steps`` in 0.1.0 (still
        accepted, with a DeprecationWarning, until 0.2.0).
      decay_fraction: length of each decay window as a fraction of its segment, in (0, 1]
        (rounded to the nearest step, at least one); default 0.1.
      warmup_steps: length of the linear warmup, at most ``decay_points[0] - D_1``.
      decay_shape: a shape name of :func:`wsd` or a callable ``phi(x)``.
      end_value: the value every decay ends at, and the terminal value; in [0, peak_value].
      init_value: learning rate at count 0 when there is a warmup, in [0, peak_value].

    Returns:
      An optax schedule ``count -> float32`` with a ``checkpoints`` attribute.

    Example:
      >>> import optaxsched as oxs
      >>> schedule = oxs.wsd_s(1.0, [100, 200], cooldown_steps=10, decay_shape="linear")
      >>> [round(float(schedule(c)), 2) for c in (89, 90, 95, 99, 100, 195, 200)]
      [1.0, 1.0, 0.5, 0.1, 1.0, 0.5, 0.0]
      >>> schedule.checkpoints[0]
      WsdSCheckpoint(decay_start=90, save_after=100)

    References:
      Wen, Li, Wang, Hall, Liang, Ma, "Understanding Warmup-Stable-Decay Learning Rates: A River
      Valley Loss Landscape Perspective" (arXiv 2410.05192).
    """
    where = "wsd_s"
    peak = _assembly.check_peak(where, peak_value)
    end = _assembly.check_below(where, "end_value", end_value, peak, "peak_value")
    init = _assembly.check_below(where, "init_value", init_value, peak, "peak_value")
    checkpoints, warm = _wsd_s_plan(where, decay_points, cooldown_steps, decay_fraction,
                                    warmup_steps)
    shape = _shapes.validate_decay_shape(where, decay_shape, peak, end)
    points = np.asarray([p.save_after for p in checkpoints], dtype=np.float32)
    starts = np.asarray([p.decay_start for p in checkpoints], dtype=np.float32)
    # At least 1: beyond 2**24 float32 can round P_i and S_i = P_i - D_i to the same number,
    # and a length of 0 made (count - S_i) / 0 a NaN in the gradient (and 0/0 at count S_i).
    lengths = np.maximum(points - starts, np.float32(1.0))
    last = float(checkpoints[-1].save_after)

    def schedule(count):
        count = _shapes.as_float_count(count)
        # Segment i holds the counts in [P_{i-1}, P_i); past the last point the terminal value
        # takes over, so the index is clipped to the last segment.
        index = jnp.minimum(jnp.searchsorted(points, count, side="right"), len(points) - 1)
        start = jnp.asarray(starts)[index]
        x = jnp.clip((count - start) / jnp.asarray(lengths)[index], 0.0, 1.0)
        body = jnp.where(count < start, peak, _shapes.decay(shape, x, peak, end))
        value = _shapes.overlay_warmup(count, body, warm, init, peak)
        return _assembly.as_output(_assembly.terminal(count, value, last, end))

    schedule.checkpoints = checkpoints  # type: ignore[attr-defined]
    return schedule
