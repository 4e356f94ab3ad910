"""REX (Chen et al.): the "reflected exponential" profile, a decay that stays high longer than
linear.
"""

from __future__ import annotations

import optax

from optaxsched._schedules import _assembly

__all__ = ["rex"]


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
    args = _assembly.check_budgeted("rex", peak_value, total_steps, warmup_steps, end_value,
                                    init_value)
    return _assembly.assemble_decay(lambda z: (1.0 - z) / (1.0 - 0.5 * z), *args)
