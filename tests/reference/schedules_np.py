"""Independent float64 references for the schedule family, one count at a time.

Each function is written from the paper's (or the reference code's) piecewise definition with
plain Python branching on a single count, never by calling optaxsched, so that the vectorised
``jnp.where`` implementations are checked against a second reading of the formulas. Where the
library rewrites a formula (MiniCPM's half-life decay as a geometric interpolation, the Power
scheduler's final decay as a rescaled exponential), the reference keeps the original form.

Counts are optax counts: 0 on the first update. ``evaluate(fn, counts, **config)`` maps a
reference over an array of counts.
"""

from __future__ import annotations

import math

import numpy as np


def evaluate(fn, counts, **config) -> np.ndarray:
    """``fn(count, **config)`` for every count, as a float64 array of the counts' shape."""
    counts = np.asarray(counts)
    flat = [fn(float(c), **config) for c in counts.reshape(-1)]
    return np.asarray(flat, dtype=np.float64).reshape(counts.shape)


def _linear_warmup(c, warmup_steps, init_value, peak_value):
    return init_value + (peak_value - init_value) * c / warmup_steps


# ----------------------------------------------------------------------------- budgeted


def linear_decay(c, peak_value, total_steps, warmup_steps=0, end_value=0.0, init_value=0.0):
    if c < warmup_steps:
        return _linear_warmup(c, warmup_steps, init_value, peak_value)
    if c >= total_steps:
        return end_value
    fraction_left = (total_steps - c) / (total_steps - warmup_steps)
    return end_value + (peak_value - end_value) * fraction_left


def rex(c, peak_value, total_steps, warmup_steps=0, end_value=0.0, init_value=0.0):
    """Chen et al.: eta(z) = min + (max - min) * (1 - z) / (1/2 + (1 - z)/2)."""
    if c < warmup_steps:
        return _linear_warmup(c, warmup_steps, init_value, peak_value)
    if c >= total_steps:
        return end_value
    z = (c - warmup_steps) / (total_steps - warmup_steps)
    return end_value + (peak_value - end_value) * (1 - z) / (0.5 + 0.5 * (1 - z))


def uba(c, peak_value, total_steps, phi, warmup_steps=0, end_value=0.0, init_value=0.0):
    """eta_t = min + (max - min) * 2(1 + cos theta) / (2 phi + (2 - phi)(1 + cos theta))."""
    if c < warmup_steps:
        return _linear_warmup(c, warmup_steps, init_value, peak_value)
    if c >= total_steps:
        return end_value
    theta = math.pi * (c - warmup_steps) / (total_steps - warmup_steps)
    one_plus_cos = 1 + math.cos(theta)
    return end_value + (peak_value - end_value) * (2 * one_plus_cos) / (
        2 * phi + (2 - phi) * one_plus_cos)


def cosine_decay(c, peak_value, total_steps, warmup_steps=0, end_value=0.0, init_value=0.0):
    """The usual half-cosine, for the UBA phi = 2 identity."""
    if c < warmup_steps:
        return _linear_warmup(c, warmup_steps, init_value, peak_value)
    if c >= total_steps:
        return end_value
    z = (c - warmup_steps) / (total_steps - warmup_steps)
    return end_value + 0.5 * (peak_value - end_value) * (1 + math.cos(math.pi * z))


# ----------------------------------------------------------------------------- WSD family


def cooldown_value(shape, s, length, peak_value, end_value):
    """The value ``s`` steps into a decay of ``length`` steps, from each source's own formula.

    - 1-sqrt, linear, square, cosine: Hagele et al.'s factors ``f + (1 - f) * g(x)`` with
      ``f = end / peak``, written here on values.
    - exponential: MiniCPM's half-life form ``peak * 0.5 ** (s / h)``, with the half-life
      ``h = length * ln 2 / ln(peak / end)`` that lands on ``end`` after ``length`` steps.
    - harmonic: WSD-S's ``1 / (x / end + (1 - x) / peak)``.
    - a callable ``phi``: ``end + (peak - end) * phi(x)``.
    """
    x = s / length
    if callable(shape):
        return end_value + (peak_value - end_value) * float(shape(np.float64(x)))
    if shape == "exponential":
        if peak_value == end_value:
            return peak_value
        half_life = length * math.log(2.0) / math.log(peak_value / end_value)
        return peak_value * 0.5 ** (s / half_life)
    if shape == "harmonic":
        if peak_value == end_value:
            return peak_value
        return 1.0 / (x / end_value + (1 - x) / peak_value)
    g = {
        "1-sqrt": 1 - math.sqrt(x),
        "linear": 1 - x,
        "square": 1 - x * x,
        "cosine": 0.5 * (1 + math.cos(math.pi * x)),
    }[shape]
    return end_value + (peak_value - end_value) * g


def wsd_cooldown_steps(total_steps, decay_fraction=None, cooldown_steps=None):
    if cooldown_steps is not None:
        return cooldown_steps
    fraction = 0.2 if decay_fraction is None else decay_fraction
    return max(1, int(math.floor(fraction * total_steps + 0.5)))


def wsd(c, peak_value, total_steps, warmup_steps=0, decay_fraction=None, cooldown_steps=None,
        decay_shape="1-sqrt", end_value=0.0, init_value=0.0):
    length = wsd_cooldown_steps(total_steps, decay_fraction, cooldown_steps)
    hold_until = total_steps - length
    if c < warmup_steps:
        return _linear_warmup(c, warmup_steps, init_value, peak_value)
    if c < hold_until:
        return peak_value
    if c < total_steps:
        return cooldown_value(decay_shape, c - hold_until, length, peak_value, end_value)
    return end_value


def wsd_s_windows(decay_points, cooldown_steps=None, decay_fraction=None):
    """[(decay_start, point)] per point; fraction of each segment from the previous point."""
    windows, previous = [], 0
    for point in decay_points:
        if cooldown_steps is not None:
            length = cooldown_steps
        else:
            fraction = 0.1 if decay_fraction is None else decay_fraction
            length = max(1, int(math.floor(fraction * (point - previous) + 0.5)))
        windows.append((point - length, point))
        previous = point
    return windows


def wsd_s(c, peak_value, decay_points, cooldown_steps=None, decay_fraction=None, warmup_steps=0,
          decay_shape="1-sqrt", end_value=0.0, init_value=0.0):
    if c < warmup_steps:
        return _linear_warmup(c, warmup_steps, init_value, peak_value)
    windows = wsd_s_windows(decay_points, cooldown_steps, decay_fraction)
    if c >= windows[-1][1]:
        return end_value
    for start, point in windows:
        if start <= c < point:
            return cooldown_value(decay_shape, c - start, point - start, peak_value, end_value)
    return peak_value  # the stable trunk, including the count right after each point


# ----------------------------------------------------------------------------- anytime


def power(c, peak_value, batch_size, tokens_per_step, a=4.0, b=-0.51, warmup_tokens=0.0,
          decay_tokens=0.0, total_tokens=None, end_value=0.0):
    """Shen et al.: eta(n) = min(eta_max, beta a n^b), n = tokens seen = count * tokens/step.

    Warmup: (n / N_w) * eta_pow(N_w). Final decay: dolomite-engine's ExponentialScheduler,
    factor(x) = A exp(-x / D) + B with A = (1 - r) e / (e - 1), B = (r e - 1) / (e - 1),
    r = end / eta_pow(N - N_d), x = tokens into the decay, D = decay tokens.
    """
    n = c * tokens_per_step

    def eta_pow(tokens):
        if tokens <= 0:
            return peak_value  # the n -> 0+ limit of min(max, beta a n^b)
        return min(peak_value, batch_size * a * tokens ** b)

    if warmup_tokens > 0 and n < warmup_tokens:
        return n / warmup_tokens * eta_pow(warmup_tokens)
    if decay_tokens > 0:
        if n >= total_tokens:
            return end_value
        start = total_tokens - decay_tokens
        if n >= start:
            start_value = eta_pow(start)
            r = end_value / start_value
            e = math.e
            big_a = (1 - r) * e / (e - 1)
            big_b = (r * e - 1) / (e - 1)
            return start_value * (big_a * math.exp(-(n - start) / decay_tokens) + big_b)
    return eta_pow(n)


def infinite(c, peak_value, constant_value, warmup_steps, cooldown_steps,
             cooldown_shape="cosine", anneal_start=None, anneal_steps=0, end_value=None,
             anneal_shape="exponential", cooldown_timescale=10.0, init_value=0.0):
    """Ibrahim et al. / Beyond Cosine: warmup, cooldown, constant, geometric anneal."""
    if c < warmup_steps:
        return _linear_warmup(c, warmup_steps, init_value, peak_value)
    if anneal_start is not None:
        if c >= anneal_start + anneal_steps:
            return end_value
        if c >= anneal_start:
            s = c - anneal_start
            if anneal_shape == "exponential":  # eta_const * (eta_min / eta_const) ** x
                return constant_value * (end_value / constant_value) ** (s / anneal_steps)
            return cooldown_value(anneal_shape, s, anneal_steps, constant_value, end_value)
    if c >= warmup_steps + cooldown_steps:
        return constant_value
    x = (c - warmup_steps) / cooldown_steps
    if cooldown_shape == "inverse_sqrt":
        # h(u) = 1 / sqrt(1 + a u) - 1 = -a u / (r (1 + r)), r = sqrt(1 + a u): the same in
        # exact arithmetic, without the cancellation (1 + a u rounds to 1 for a u < 1e-16).
        def h_over_a(u):
            r = math.sqrt(1 + cooldown_timescale * u)
            return -u / (r * (1 + r))
        return peak_value + (constant_value - peak_value) * h_over_a(x) / h_over_a(1)
    return cooldown_value(cooldown_shape, c - warmup_steps, cooldown_steps, peak_value,
                          constant_value)


def inverse_sqrt(c, peak_value, warmup_steps, timescale=None, init_value=0.0):
    """transformers' get_inverse_sqrt_schedule, scaled by the peak (with an initial value)."""
    if timescale is None:
        timescale = warmup_steps or 10_000
    if c < warmup_steps:
        return _linear_warmup(c, warmup_steps, init_value, peak_value)
    shift = timescale - warmup_steps
    return peak_value / math.sqrt((c + shift) / timescale)
