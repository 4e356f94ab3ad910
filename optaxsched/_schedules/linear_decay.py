"""Linear decay (Defazio et al.): linear warmup, then a straight line down to the end value.

With ``end_value = 0`` it is the "decay to zero" schedule, worst-case optimal in their analysis.
"""

from __future__ import annotations

import optax

from optaxsched._schedules import _assembly

__all__ = ["linear_decay"]


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
    args = _assembly.check_budgeted("linear_decay", peak_value, total_steps, warmup_steps,
                                    end_value, init_value)
    return _assembly.assemble_decay(lambda z: 1.0 - z, *args)
