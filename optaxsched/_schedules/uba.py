"""UBA (Tang et al.): the unified budget-aware schedule, one parameter from WSD-like to steep.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import optax

from optaxsched import _checks
from optaxsched._schedules import _assembly

__all__ = ["uba"]

_FLOAT32_TINY = _checks.FLOAT32_TINY


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
    args = _assembly.check_budgeted(where, peak_value, total_steps, warmup_steps, end_value,
                                    init_value)
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

    return _assembly.assemble_decay(factor, *args)
