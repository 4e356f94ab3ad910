"""The inverse-square-root schedule (Vaswani et al.): linear warmup, then ``1 / sqrt(count)``.

It has no horizon: the learning rate decays like ``1 / sqrt(c)`` forever and stays positive.
"""

from __future__ import annotations

import jax.numpy as jnp
import optax

from optaxsched import _checks, _shapes
from optaxsched._schedules import _assembly

__all__ = ["inverse_sqrt"]


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
    peak = _assembly.check_peak(where, peak_value)
    warm = _checks.check_int(where, "warmup_steps", warmup_steps, minimum=0)
    if timescale is None:
        tau = float(warm or 10_000)
    else:
        tau = _checks.check_float(where, "timescale", timescale, minimum=0.0, strict_min=True)
    init = _assembly.check_below(where, "init_value", init_value, peak, "peak_value")

    def schedule(count):
        count = _shapes.as_float_count(count)
        # max(count, W) keeps the masked warmup side inside the square root's domain.
        elapsed = jnp.maximum(count, float(warm)) - float(warm)
        value = peak * jnp.sqrt(tau / (elapsed + tau))
        return _assembly.as_output(_shapes.overlay_warmup(count, value, warm, init, peak))

    return schedule
