"""Schedules whose main phase does not depend on the length of the run.

WSD and WSD-S hold a constant trunk and decay only near a budget point; the infinite schedule
holds a plateau for as long as needed; the Power scheduler and inverse-sqrt follow a curve of the
count alone. All counts are optax counts: 0 on the first update, so ``schedule(c)`` is the
learning rate of update number ``c + 1`` and "save after N updates" means after the update whose
count is ``N - 1``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
import optax

from optaxsched import _checks, _deprecation, _shapes
from optaxsched._types import CooldownShape, DecayShape
from optaxsched.schedules import _common

__all__ = [
    "wsd",
    "wsd_s",
    "wsd_s_checkpoints",
    "WsdSCheckpoint",
    "power",
    "infinite",
    "inverse_sqrt",
]

# ---------------------------------------------------------------------------------------------
# WSD


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
    peak = _common.check_peak(where, peak_value)
    total = _checks.check_int(where, "total_steps", total_steps, minimum=1)
    end = _common.check_below(where, "end_value", end_value, peak, "peak_value")
    init = _common.check_below(where, "init_value", init_value, peak, "peak_value")
    steps = _common.decay_length(where, total, cooldown_steps, decay_fraction, 0.2)
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
        value = _common.with_warmup(count, body, warm, init, peak)
        return _common.as_output(_common.terminal(count, value, total, end))

    return schedule


# ---------------------------------------------------------------------------------------------
# WSD-S


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
        lengths = [_common.decay_length(where, length, cooldown_steps, decay_fraction, 0.1)
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
    peak = _common.check_peak(where, peak_value)
    end = _common.check_below(where, "end_value", end_value, peak, "peak_value")
    init = _common.check_below(where, "init_value", init_value, peak, "peak_value")
    checkpoints, warm = _wsd_s_plan(where, decay_points, cooldown_steps, decay_fraction,
                                    warmup_steps)
    shape = _shapes.validate_decay_shape(where, decay_shape, peak, end)
    points = np.asarray([p.save_after for p in checkpoints], dtype=np.float32)
    starts = np.asarray([p.decay_start for p in checkpoints], dtype=np.float32)
    lengths = points - starts
    last = float(checkpoints[-1].save_after)

    def schedule(count):
        count = _shapes.as_float_count(count)
        # Segment i holds the counts in [P_{i-1}, P_i); past the last point the terminal value
        # takes over, so the index is clipped to the last segment.
        index = jnp.minimum(jnp.searchsorted(points, count, side="right"), len(points) - 1)
        start = jnp.asarray(starts)[index]
        x = jnp.clip((count - start) / jnp.asarray(lengths)[index], 0.0, 1.0)
        body = jnp.where(count < start, peak, _shapes.decay(shape, x, peak, end))
        value = _common.with_warmup(count, body, warm, init, peak)
        return _common.as_output(_common.terminal(count, value, last, end))

    schedule.checkpoints = checkpoints  # type: ignore[attr-defined]
    return schedule


# ---------------------------------------------------------------------------------------------
# Power scheduler


@_deprecation.renamed_arguments(max_value="peak_value")
def power(peak_value: float, batch_size: float, tokens_per_step: float, a: float = 4.0,
          b: float = -0.51, warmup_tokens: float = 0, decay_tokens: float = 0,
          total_tokens: float | None = None, end_value: float = 0.0) -> optax.Schedule:
    """The Power scheduler: ``min(peak_value, batch_size * a * n**b)`` in tokens seen ``n``.

    .. math::

        \\eta_{pow}(n) &= \\min(\\eta_{max},\\ \\beta\\, a\\, n^{b}) \\\\
        \\eta(n) &= \\begin{cases}
          (n / N_w)\\, \\eta_{pow}(N_w) & n < N_w \\text{ (linear warmup from 0)} \\\\
          \\eta_{pow}(n) & N_w \\le n < N - N_d \\\\
          \\eta_{end} + (\\eta_{pow}(N - N_d) - \\eta_{end})\\,
            \\frac{e^{1 - x} - 1}{e - 1},\\ x = \\frac{n - N + N_d}{N_d} & N - N_d \\le n < N \\\\
          \\eta_{end} & n \\ge N
        \\end{cases}

    with ``beta = batch_size`` in sequences, ``N_w = warmup_tokens``, ``N_d = decay_tokens``,
    ``N = total_tokens``. The schedule is driven by the optax count: the tokens seen before
    update ``c`` are ``n = c * tokens_per_step`` (so the first update sees ``n = 0``, as
    dolomite-engine counts). At ``n = 0`` without warmup the value is the limit
    ``eta_pow(0+) = peak_value`` (``n**b`` is infinite there); with warmup it is 0.

    The final decay is optional (``decay_tokens=0``, the default, keeps the power curve forever, as
    dolomite-engine's ``PowerScheduler`` does) and needs ``total_tokens``. Its shape is the
    exponential of the project's decision (design notes, :ref:`design-power`): dolomite-engine's
    ``ExponentialScheduler`` form ``A e^{-x} + B``, rescaled to start at the curve and land exactly
    on ``end_value``; it is non-increasing. The paper's fraction of tokens spent in the decay was
    not verified; pick ``decay_tokens`` yourself (MiniCPM found ~10% sufficient).

    Defaults ``a = 4``, ``b = -0.51`` are dolomite-engine's configuration (``a: 4096 # 4 *
    global_batch_size``); the paper's fit reports ``a`` near 4.6 (unverified). dolomite-engine's
    recipe warms up for 2,500 steps of 4,194,304 tokens (about 1.05e10 tokens); the default
    here is no warmup, so set ``warmup_tokens`` for real runs.

    Args:
      peak_value: the cap ``eta_max`` (e.g. 0.02 with muP); a positive number. Called
        ``max_value`` in 0.1.0; that name still works, with a DeprecationWarning, until 0.2.0.
      batch_size: the global batch size in sequences (``beta``); a positive number.
      tokens_per_step: tokens consumed by one update (batch size in tokens); a positive number.
      a: the amplitude; a positive number.
      b: the exponent; a negative number.
      warmup_tokens: tokens of linear warmup from 0, at least 0.
      decay_tokens: tokens of the final exponential decay, at least 0; needs ``total_tokens``.
      total_tokens: length of the run in tokens, at least ``warmup_tokens + decay_tokens``;
        needed only with a decay, which ends at ``n = total_tokens`` (the value is
        ``end_value`` from there on). Without a decay it has no effect on the values.
      end_value: the value the decay ends at, in [0, value of the curve where the decay
        starts]; unused without a decay.

    Returns:
      An optax schedule: ``count -> float32``.

    Example:
      >>> import optaxsched as oxs
      >>> schedule = oxs.power(0.02, batch_size=1024, tokens_per_step=4 * 2**20,
      ...                      warmup_tokens=1e10)
      >>> [f"{float(schedule(c)):.3g}" for c in (0, 1000, 10_000, 100_000)]
      ['0', '0.00839', '0.0157', '0.00484']

    References:
      Shen et al., "Power Scheduler: A Batch Size and Token Number Agnostic Learning Rate
      Scheduler" (arXiv 2408.13359).
    """
    where = "power"
    top = _common.check_peak(where, peak_value)
    beta = _checks.check_float(where, "batch_size", batch_size, minimum=0.0, strict_min=True)
    per_step = _checks.check_float(where, "tokens_per_step", tokens_per_step, minimum=0.0,
                                   strict_min=True)
    a = _checks.check_float(where, "a", a, minimum=0.0, strict_min=True)
    b = _checks.check_float(where, "b", b, maximum=0.0, strict_max=True)
    warm_tokens = _checks.check_float(where, "warmup_tokens", warmup_tokens, minimum=0.0)
    decay_tok = _checks.check_float(where, "decay_tokens", decay_tokens, minimum=0.0)
    total_tok = None
    if total_tokens is not None:
        total_tok = _checks.check_float(where, "total_tokens", total_tokens, minimum=0.0,
                                        strict_min=True)
    elif decay_tok > 0:
        _checks.fail(where, "total_tokens",
                     "a positive number when decay_tokens > 0 (the decay ends there)",
                     total_tokens)
    if total_tok is not None and warm_tokens + decay_tok > total_tok:
        _checks.fail(where, "total_tokens",
                     f">= warmup_tokens + decay_tokens = {warm_tokens + decay_tok:g}", total_tokens)

    # Everything below is in steps: n = count * tokens_per_step, so n**b = per_step**b * count**b
    # and eta_pow = min(cap, exp(log_k + b log count)). Taking the minimum on the exponent keeps
    # exp() finite (and its derivative) however small the count; at count 0 the tiny floor makes
    # log() finite and the exponent exceeds log(cap), so the value is the cap: the n -> 0+ limit.
    log_k = math.log(beta) + math.log(a) + b * math.log(per_step)
    log_beta_a = math.log(beta) + math.log(a)
    log_per_step = math.log(per_step)
    log_top = math.log(top)

    def curve_at(steps: float) -> float:  # eta_pow in float64, for the phase joins.
        if steps <= 0:
            return top
        return math.exp(min(log_k + b * math.log(steps), log_top))

    warm = warm_tokens / per_step
    use_decay = decay_tok > 0
    if use_decay:
        assert total_tok is not None  # checked above: a decay needs total_tokens
        horizon = total_tok / per_step
        decay_start = (total_tok - decay_tok) / per_step
        decay_len = decay_tok / per_step
        start_value = curve_at(decay_start)
        # A relative slack of 1e-9 lets end_value be the start value computed another way.
        end = min(start_value, _common.check_below(
            where, "end_value", end_value, start_value * (1 + 1e-9),
            "the curve's value where the decay starts"))
    else:
        end = _checks.check_float(where, "end_value", end_value, minimum=0.0)
    warm_top = curve_at(warm) if warm > 0 else top

    def schedule(count):
        count = _shapes.as_float_count(count)
        # log(beta a) + b log(n), n = count * tokens_per_step: every term is finite in float32
        # except b log(n) itself, which may round to +-inf for a huge |b| (then exp gives 0 or
        # the cap, never NaN). Writing it as log_k + b log(count) instead adds two large
        # numbers of opposite sign, inf - inf = NaN when b is ~1e38. Count 0 (n -> 0+) is the
        # cap, however large tokens_per_step makes log(n) at the floor.
        log_n = jnp.log(jnp.maximum(count, 1e-30)) + log_per_step
        exponent = log_beta_a + b * log_n
        capped = (exponent >= log_top) | (count <= 0.0)
        value = jnp.where(capped, top, jnp.exp(jnp.minimum(exponent, log_top)))
        if use_decay:
            x = _shapes.progress(count, decay_start, decay_len)
            tail = end + (start_value - end) * jnp.expm1(1.0 - x) / math.expm1(1.0)
            # Exactly on the curve where the decay starts (XLA multiplies by the reciprocal of
            # the constant, which rounds the factor at x = 0 to 1 - 2**-24).
            tail = jnp.where(x > 0.0, tail, start_value)
            value = jnp.where(count >= float(decay_start), tail, value)
            value = _common.terminal(count, value, horizon, end)
        value = _common.with_warmup(count, value, warm, 0.0, warm_top)
        return _common.as_output(value)

    return schedule


# ---------------------------------------------------------------------------------------------
# Infinite schedule

_COOLDOWN_SHAPES = ("cosine", "inverse_sqrt") + tuple(
    s for s in _shapes.DECAY_SHAPES if s != "cosine")


def infinite(peak_value: float, constant_value: float, warmup_steps: int, cooldown_steps: int,
             cooldown_shape: CooldownShape = "cosine", anneal_start: int | None = None,
             anneal_steps: int = 0, end_value: float | None = None,
             anneal_shape: DecayShape | Callable = "exponential", cooldown_timescale: float = 10.0,
             init_value: float = 0.0) -> optax.Schedule:
    """Infinite schedule: warmup, cooldown to a plateau, the plateau for as long as needed, anneal.

    With ``W = warmup_steps``, ``C = cooldown_steps``, ``A = anneal_start``, ``M = anneal_steps``:

    .. math::

        \\eta(c) = \\begin{cases}
          \\eta_0 + (\\eta_{max} - \\eta_0)\\, c / W & c < W \\\\
          \\eta_{const} + (\\eta_{max} - \\eta_{const})\\, \\phi_{cd}((c - W) / C)
            & W \\le c < W + C \\\\
          \\eta_{const} & W + C \\le c < A \\\\
          \\eta_{const} \\,(\\eta_{end} / \\eta_{const})^{(c - A) / M} & A \\le c < A + M \\\\
          \\eta_{end} & c \\ge A + M
        \\end{cases}

    The warmup happens once. Cooldown shapes ``phi_cd``: ``'cosine'`` ``(1 + cos(pi x)) / 2`` (as in
    the third-party ports of Beyond Cosine), ``'inverse_sqrt'`` ``1 - h(x) / h(1)`` with ``h(x) = 1
    / sqrt(1 + alpha x) - 1`` and ``alpha = cooldown_timescale`` (Ibrahim et al.'s form; their
    ``alpha`` was not verified, 10 is the value a public reproduction uses), or any :func:`wsd`
    shape name. The anneal is geometric (``anneal_shape='exponential'``, :ref:`design-infinite`),
    from the plateau to ``end_value`` over ``M`` steps, and happens only when ``anneal_start`` is
    given: a run that will be extended later leaves it out and builds a new schedule with
    ``anneal_start`` when a converged checkpoint is wanted (the count continues; nothing before
    ``anneal_start`` changes). ``anneal_shape`` accepts the :func:`wsd` shapes too. Without an
    anneal the terminal value is ``constant_value``; with one it is ``end_value``.

    Args:
      peak_value: learning rate at the end of warmup (``eta_max``); a positive number.
      constant_value: the plateau (``eta_const``), in [0, peak_value].
      warmup_steps: length of the linear warmup, at least 0.
      cooldown_steps: length of the cooldown from the peak to the plateau, at least 1.
      cooldown_shape: ``'cosine'``, ``'inverse_sqrt'`` or a :func:`wsd` shape name.
      anneal_start: the count at which the anneal starts, at least ``warmup_steps +
        cooldown_steps``; ``None`` (default) for no anneal.
      anneal_steps: length of the anneal, at least 1 when ``anneal_start`` is given, else 0.
      end_value: the value the anneal ends at, in [0, constant_value] (positive for the
        geometric anneal); required when ``anneal_start`` is given.
      anneal_shape: ``'exponential'`` (geometric, default), another :func:`wsd` shape name or a
        callable ``phi(x)``.
      cooldown_timescale: ``alpha`` of the ``'inverse_sqrt'`` cooldown; a positive number.
      init_value: learning rate at count 0 when there is a warmup, in [0, peak_value].

    Returns:
      An optax schedule: ``count -> float32``.

    Example:
      >>> import optaxsched as oxs
      >>> schedule = oxs.infinite(3e-4, 3e-5, warmup_steps=100, cooldown_steps=900,
      ...                         anneal_start=5000, anneal_steps=1000, end_value=3e-6)
      >>> [f"{float(schedule(c)):.3g}" for c in (0, 100, 550, 1000, 4999, 5500, 6000)]
      ['0', '0.0003', '0.000165', '3e-05', '3e-05', '9.49e-06', '3e-06']

    References:
      Ibrahim et al., "Simple and Scalable Strategies to Continually Pre-train Large Language
      Models" (arXiv 2403.08763, section 7); Singh et al., "Beyond Cosine Decay: On the
      effectiveness of Infinite Learning Rate Schedule for Continual Pre-training"
      (arXiv 2503.02844).
    """
    where = "infinite"
    peak = _common.check_peak(where, peak_value)
    plateau = _common.check_below(where, "constant_value", constant_value, peak, "peak_value")
    warm = _checks.check_int(where, "warmup_steps", warmup_steps, minimum=0)
    cool = _checks.check_int(where, "cooldown_steps", cooldown_steps, minimum=1)
    _checks.check_choice(where, "cooldown_shape", cooldown_shape, _COOLDOWN_SHAPES)
    alpha = _checks.check_float(where, "cooldown_timescale", cooldown_timescale, minimum=0.0,
                                strict_min=True)
    if cooldown_shape != "inverse_sqrt":
        _shapes.validate_decay_shape(where, cooldown_shape, peak, plateau, "cooldown_shape",
                                     end_name="constant_value")
    init = _common.check_below(where, "init_value", init_value, peak, "peak_value")
    plateau_start = warm + cool
    if anneal_start is None:
        if anneal_steps not in (0, None):
            _checks.fail(where, "anneal_steps", "0 when anneal_start is None (no anneal)",
                         anneal_steps)
        if end_value is not None:
            _checks.fail(where, "end_value", "None when anneal_start is None (no anneal)",
                         end_value)
        _shapes.validate_decay_shape(where, anneal_shape, plateau, plateau, "anneal_shape")
    else:
        anneal_start = _checks.check_int(where, "anneal_start", anneal_start, minimum=0)
        if anneal_start < plateau_start:
            _checks.fail(where, "anneal_start",
                         f"an integer >= warmup_steps + cooldown_steps = {warm} + {cool} = "
                         f"{plateau_start}", anneal_start)
        anneal_steps = _checks.check_int(where, "anneal_steps", anneal_steps, minimum=1)
        if end_value is None:
            _checks.fail(where, "end_value",
                         "a number in [0, constant_value] when anneal_start is given", end_value)
        end = _common.check_below(where, "end_value", end_value, plateau, "constant_value")
        anneal_shape = _shapes.validate_decay_shape(where, anneal_shape, plateau, end,
                                                    "anneal_shape")

    h_one = 1.0 / math.sqrt(1.0 + alpha) - 1.0

    def cooldown_factor(x):
        if cooldown_shape == "inverse_sqrt":
            return 1.0 - (1.0 / jnp.sqrt(1.0 + alpha * x) - 1.0) / h_one
        return _shapes.decay_factor(cooldown_shape, x, peak, plateau)

    def schedule(count):
        count = _shapes.as_float_count(count)
        x = _shapes.progress(count, float(warm), float(cool))
        value = plateau + (peak - plateau) * cooldown_factor(x)
        value = jnp.where(count >= float(plateau_start), plateau, value)
        if anneal_start is not None:
            y = _shapes.progress(count, float(anneal_start), float(anneal_steps))
            tail = _shapes.decay(anneal_shape, y, plateau, end)
            value = jnp.where(count >= float(anneal_start), tail, value)
            value = _common.terminal(count, value, anneal_start + anneal_steps, end)
        value = _common.with_warmup(count, value, warm, init, peak)
        return _common.as_output(value)

    return schedule


# ---------------------------------------------------------------------------------------------
# Inverse square root


def inverse_sqrt(peak_value: float, warmup_steps: int, timescale: float | None = None,
                 init_value: float = 0.0) -> optax.Schedule:
    """Linear warmup, then ``peak / sqrt((count + shift) / timescale)``: the rsqrt schedule.

    .. math::

        \\eta(c) = \\begin{cases}
          \\eta_0 + (\\eta_{peak} - \\eta_0)\\, c / W & c < W \\\\
          \\eta_{peak} \\big/ \\sqrt{(c - W + \\tau) / \\tau} & c \\ge W
        \\end{cases}

    the form of transformers' ``get_inverse_sqrt_schedule`` (``shift = timescale - W``), so the
    value is exactly ``peak_value`` at ``c = W`` and the schedule is continuous there. The
    default ``timescale`` is ``warmup_steps``, or 10,000 when there is no warmup (as in
    transformers), which gives the classic ``peak * sqrt(W / c)`` after warmup. It has no
    horizon: it decays like ``1 / sqrt(c)`` forever and stays positive.

    Args:
      peak_value: learning rate at the end of warmup; a positive number.
      warmup_steps: length of the linear warmup, at least 0.
      timescale: ``tau``, a positive number; default ``warmup_steps or 10_000``.
      init_value: learning rate at count 0 when there is a warmup (transformers: 0), in
        [0, peak_value].

    Returns:
      An optax schedule: ``count -> float32``.

    Example:
      >>> import optaxsched as oxs
      >>> schedule = oxs.inverse_sqrt(1.0, warmup_steps=100)
      >>> [round(float(schedule(c)), 4) for c in (0, 50, 100, 400, 10_000)]
      [0.0, 0.5, 1.0, 0.5, 0.1]

    References:
      Vaswani et al., "Attention Is All You Need" (arXiv 1706.03762); Zhai et al., "Scaling
      Vision Transformers" (arXiv 2106.04560), whose big_vision code transformers adapted.
    """
    where = "inverse_sqrt"
    peak = _common.check_peak(where, peak_value)
    warm = _checks.check_int(where, "warmup_steps", warmup_steps, minimum=0)
    if timescale is None:
        tau = float(warm or 10_000)
    else:
        tau = _checks.check_float(where, "timescale", timescale, minimum=0.0, strict_min=True)
    init = _common.check_below(where, "init_value", init_value, peak, "peak_value")

    def schedule(count):
        count = _shapes.as_float_count(count)
        # max(count, W) keeps the masked warmup side inside the square root's domain.
        elapsed = jnp.maximum(count, float(warm)) - float(warm)
        value = peak * jnp.sqrt(tau / (elapsed + tau))
        return _common.as_output(_common.with_warmup(count, value, warm, init, peak))

    return schedule
