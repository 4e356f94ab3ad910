"""Schedules that need the length of the run up front: linear decay, REX and UBA.

Each one warms up linearly from ``init_value`` to ``peak_value`` over ``warmup_steps`` (the value
at count 0 is ``init_value``, optax's convention), then decays over the remaining
``total_steps - warmup_steps`` steps with progress ``z = (count - warmup_steps) /
(total_steps - warmup_steps)``, reaches ``end_value`` at ``count == total_steps`` and stays there.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import optax

from optaxsched import _checks, _shapes
from optaxsched.schedules import _common

__all__ = ["linear_decay", "rex", "uba"]

_FLOAT32_TINY = _checks.FLOAT32_TINY


def _budgeted(where: str, peak_value, total_steps, warmup_steps, end_value, init_value):
    peak = _common.check_peak(where, peak_value)
    total = _checks.check_int(where, "total_steps", total_steps, minimum=1)
    warm = _checks.check_int(where, "warmup_steps", warmup_steps, minimum=0, maximum=total - 1)
    end = _common.check_below(where, "end_value", end_value, peak, "peak_value")
    init = _common.check_below(where, "init_value", init_value, peak, "peak_value")
    return peak, total, warm, end, init


def _assemble(phi, peak, total, warm, end, init) -> optax.Schedule:
    """warmup -> ``end + (peak - end) * phi(z)`` -> ``end`` from ``total`` on."""
    length = float(total - warm)

    def schedule(count):
        count = _shapes.as_float_count(count)
        z = _shapes.progress(count, float(warm), length)
        body = end + (peak - end) * phi(z)
        value = _common.with_warmup(count, body, warm, init, peak)
        return _common.as_output(_common.terminal(count, value, total, end))

    return schedule


def linear_decay(peak_value: float, total_steps: int, warmup_steps: int = 0,
                 end_value: float = 0.0, init_value: float = 0.0) -> optax.Schedule:
    """Linear warmup, then a straight line from ``peak_value`` to ``end_value``.

    The worst-case-optimal schedule of Defazio et al. (their large benchmark finds it at least as
    good as cosine on average); with ``end_value = 0`` it is the "decay to zero" schedule.

    .. math::

        \\eta(c) = \\begin{cases}
          \\eta_0 + (\\eta_{peak} - \\eta_0)\\, c / W & c < W \\\\
          \\eta_{end} + (\\eta_{peak} - \\eta_{end})(1 - z) & W \\le c < T \\\\
          \\eta_{end} & c \\ge T
        \\end{cases}

    with ``c`` the optax count (0 on the first update), ``W = warmup_steps``, ``T = total_steps``
    and ``z = (c - W) / (T - W)``.

    Args:
      peak_value: learning rate at the end of warmup; a positive number.
      total_steps: count at which ``end_value`` is reached; a positive integer.
      warmup_steps: length of the linear warmup, in [0, total_steps - 1].
      end_value: final learning rate, in [0, peak_value].
      init_value: learning rate at count 0 when there is a warmup, in [0, peak_value].

    Returns:
      An optax schedule: ``count -> float32`` (elementwise for arrays of counts).

    Example:
      >>> import optaxsched as oxs
      >>> schedule = oxs.linear_decay(1e-3, total_steps=1000, warmup_steps=100)
      >>> [round(float(schedule(c)), 6) for c in (0, 50, 100, 550, 1000, 5000)]
      [0.0, 0.0005, 0.001, 0.0005, 0.0, 0.0]

    References:
      Defazio, Cutkosky, Mehta, Mishchenko, "Optimal Linear Decay Learning Rate Schedules and
      Further Refinements" (arXiv 2310.07831).
    """
    peak, total, warm, end, init = _budgeted("linear_decay", peak_value, total_steps,
                                             warmup_steps, end_value, init_value)
    return _assemble(lambda z: 1.0 - z, peak, total, warm, end, init)


def rex(peak_value: float, total_steps: int, warmup_steps: int = 0, end_value: float = 0.0,
        init_value: float = 0.0) -> optax.Schedule:
    """REX: "reflected exponential" profile, a decay that stays high longer than linear.

    .. math::

        \\eta(z) = \\eta_{end} + (\\eta_{peak} - \\eta_{end})
                  \\frac{1 - z}{\\tfrac12 + \\tfrac12 (1 - z)}, \\qquad
        z = \\frac{c - W}{T - W} \\in [0, 1]

    after an optional linear warmup from ``init_value`` (the paper and the reference port have
    none; ``warmup_steps=0`` reproduces them). This is the paper's profile with ``beta = 1``
    (the IvanVassi/REX_LR port uses 0.9). The value is recomputed at every count (REX's
    "sampling rate" of one iteration). It starts at ``peak_value`` and reaches ``end_value``
    at ``count == total_steps``.

    Args:
      peak_value: learning rate at the start of the decay; a positive number.
      total_steps: count at which ``end_value`` is reached; a positive integer.
      warmup_steps: length of an optional linear warmup, in [0, total_steps - 1].
      end_value: final learning rate, in [0, peak_value].
      init_value: learning rate at count 0 when there is a warmup, in [0, peak_value].

    Returns:
      An optax schedule: ``count -> float32``.

    Example:
      >>> import optaxsched as oxs
      >>> schedule = oxs.rex(1.0, total_steps=100)
      >>> round(float(schedule(50)), 6)  # (1 - 0.5) / (1 - 0.25)
      0.666667

    References:
      Chen, Wolfe, Kyrillidis, "REX: Revisiting Budgeted Training with an Improved Schedule"
      (MLSys 2022, arXiv 2107.04197).
    """
    peak, total, warm, end, init = _budgeted("rex", peak_value, total_steps, warmup_steps,
                                             end_value, init_value)
    return _assemble(lambda z: (1.0 - z) / (1.0 - 0.5 * z), peak, total, warm, end, init)


def uba(peak_value: float, total_steps: int, phi: float, warmup_steps: int = 0,
        end_value: float = 0.0, init_value: float = 0.0) -> optax.Schedule:
    """UBA: the unified budget-aware schedule, one parameter ``phi`` from WSD-like to steep.

    .. math::

        \\eta(z) = \\eta_{end} + (\\eta_{peak} - \\eta_{end})
          \\frac{2\\,(1 + \\cos \\pi z)}{2\\varphi + (2 - \\varphi)(1 + \\cos \\pi z)}, \\qquad
        z = \\frac{c - W}{T - W}

    after an optional linear warmup. ``phi = 2`` is exactly cosine decay; ``phi -> 0`` stays at
    the peak until the very end (WSD-like); larger ``phi`` decays earlier. For every
    ``phi > 0`` the denominator is at least ``min(4, 2 phi) > 0`` and the fraction increases with
    ``1 + cos(pi z)``, so the schedule is finite and non-increasing after warmup, equals
    ``peak_value`` at ``z = 0`` and ``end_value`` at ``z = 1``. It is computed as the equal
    ``cos^2(pi z/2) / (cos^2(pi z/2) + (phi/2) sin^2(pi z/2))``, a sum of non-negative terms
    that neither cancels nor overflows, so it stays finite for every ``phi`` that float32 can
    hold (the direct form returns inf at the start of the decay once ``phi >= 1e8``).

    **Formula unverified.** The paper (Tang et al. 2025) could not be read here beyond its
    abstract and introduction (single hyperparameter ``phi`` tied to the condition number):
    the stored copies of arXiv 2505.24452 (HTML v1, abs v2), the NeurIPS and OpenReview pages
    end before the schedule's equation, and no code by the authors was found. This is the form
    of the design notes (:ref:`design-uba`), taken from a third-party ``UBAScheduler``; what
    was verified is algebraic only: ``phi = 2`` reduces to
    ``(1 + cos pi z) / 2`` (cosine), the end points are ``peak_value`` and ``end_value``, and
    the shape is monotone for all ``phi > 0`` (tests pin these). Other unofficial versions
    disagree (``(1 - t/T) ** phi``; a generated summary's ``(1 - phi t/T) ** 2``) and were not
    followed. Treat the formula, and the mapping from ``phi`` to the paper's recommendations,
    as unconfirmed until checked against the paper's equation.

    Args:
      peak_value: learning rate at the start of the decay; a positive number.
      total_steps: count at which ``end_value`` is reached; a positive integer.
      phi: the shape parameter, a positive number (2 = cosine).
      warmup_steps: length of an optional linear warmup, in [0, total_steps - 1].
      end_value: final learning rate, in [0, peak_value].
      init_value: learning rate at count 0 when there is a warmup, in [0, peak_value].

    Returns:
      An optax schedule: ``count -> float32``.

    Example:
      >>> import optaxsched as oxs
      >>> schedule = oxs.uba(1.0, total_steps=100, phi=2.0)  # cosine
      >>> round(float(schedule(50)), 6)
      0.5

    References:
      Tang, Dong, Zeng, Zhou, Lin, "Stepsize anything: A unified learning rate schedule for
      budgeted-iteration training" (NeurIPS 2025, arXiv 2505.24452).
    """
    where = "uba"
    peak, total, warm, end, init = _budgeted(where, peak_value, total_steps, warmup_steps,
                                             end_value, init_value)
    phi = _checks.check_float(where, "phi", phi, minimum=0.0, strict_min=True)

    half_phi = 0.5 * phi

    def factor(z):
        # With u = 1 + cos(pi z) = 2 cos^2(pi z / 2) and 2 - u = 2 sin^2(pi z / 2), the
        # denominator 2 phi + (2 - phi) u = phi (2 - u) + 2 u is a sum of two non-negative terms:
        # no cancellation, whatever phi. Dividing through by 4:
        #   2 u / (2 phi + (2 - phi) u) = c^2 / (c^2 + (phi / 2) s^2),
        # c = cos(pi z / 2), s = sin(pi z / 2). Neither term can overflow float32 (phi / 2 <=
        # 1.7e38, s^2 <= 1), and c^2 + s^2 = 1 keeps the denominator away from zero (the floor
        # guards c^2 and phi s^2 both rounding to zero).
        c2 = jnp.square(jnp.cos(0.5 * math.pi * z))
        s2 = jnp.square(jnp.sin(0.5 * math.pi * z))
        return c2 / jnp.maximum(c2 + half_phi * s2, _FLOAT32_TINY)

    return _assemble(factor, peak, total, warm, end, init)
