"""The Power scheduler (Shen et al.): a learning rate that follows a power law in tokens seen.

The curve ``min(peak, batch_size * a * n**b)`` depends on the count alone, so a run can be
extended without changing the schedule; an optional exponential decay ends it.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import optax

from optaxsched import _checks, _deprecation, _shapes
from optaxsched._schedules import _assembly

__all__ = ["power"]


def _check_token_budget(where: str, warmup_tokens, decay_tokens, total_tokens
                        ) -> tuple[float, float, float | None]:
    """``(warmup, decay, total)`` in tokens: a decay needs ``total_tokens``, and both phases fit."""
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
    return warm_tokens, decay_tok, total_tok


def _in_steps(where: str, name: str, tokens: float, per_step: float) -> float:
    """``tokens / per_step``, a position or length in steps, checked to be 0 or a normal float32.

    The phases are located in steps, in float32: a quotient beyond float32's range is ``inf``
    there and one below its normal range is 0 (flushed), and either turns the progress through
    a phase into ``0 / 0`` or ``inf / inf``: NaN, in the values' gradient if not in the values.
    """
    steps = tokens / per_step
    if steps != 0 and not _checks.FLOAT32_TINY <= steps <= _checks.FLOAT32_MAX:
        _checks.fail(where, "tokens_per_step",
                     f"such that {name} / tokens_per_step, a number of steps computed in float32, "
                     f"is 0 or in [{_checks.FLOAT32_TINY:.7g}, {_checks.FLOAT32_MAX:.7g}] "
                     f"({name} = {tokens!r} gives {steps:.7g})", per_step)
    return steps


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
        The token arguments divided by it (the phases in steps) must be 0 or normal float32
        numbers, in [1.2e-38, 3.4e38].
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
    top = _assembly.check_peak(where, peak_value)
    beta = _checks.check_float(where, "batch_size", batch_size, minimum=0.0, strict_min=True)
    per_step = _checks.check_float(where, "tokens_per_step", tokens_per_step, minimum=0.0,
                                   strict_min=True)
    a = _checks.check_float(where, "a", a, minimum=0.0, strict_min=True)
    b = _checks.check_float(where, "b", b, maximum=0.0, strict_max=True)
    warm_tokens, decay_tok, total_tok = _check_token_budget(where, warmup_tokens, decay_tokens,
                                                            total_tokens)

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

    warm = _in_steps(where, "warmup_tokens", warm_tokens, per_step)
    use_decay = decay_tok > 0
    if use_decay:
        assert total_tok is not None  # checked above: a decay needs total_tokens
        horizon = _in_steps(where, "total_tokens", total_tok, per_step)
        decay_start = _in_steps(where, "(total_tokens - decay_tokens)", total_tok - decay_tok,
                                per_step)
        decay_len = _in_steps(where, "decay_tokens", decay_tok, per_step)
        start_value = curve_at(decay_start)
        # A relative slack of 1e-9 lets end_value be the start value computed another way.
        end = min(start_value, _assembly.check_below(
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
            value = _assembly.terminal(count, value, horizon, end)
        value = _shapes.overlay_warmup(count, value, warm, 0.0, warm_top)
        return _assembly.as_output(value)

    return schedule
