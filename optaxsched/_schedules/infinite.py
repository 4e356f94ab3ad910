"""The infinite schedule (Ibrahim et al.): warmup, cooldown to a plateau, the plateau, anneal.

The plateau lasts as long as the run does; the anneal to a converged checkpoint is added only when
one is wanted, by building the schedule again with ``anneal_start`` (the count continues).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax.numpy as jnp
import optax

from optaxsched import _checks, _shapes
from optaxsched._schedules import _assembly
from optaxsched._types import CooldownShape, DecayShape

__all__ = ["infinite"]

_COOLDOWN_SHAPES = ("cosine", "inverse_sqrt") + tuple(
    s for s in _shapes.DECAY_SHAPES if s != "cosine")

# Below this cooldown_timescale the 'inverse_sqrt' cooldown's ratio h(x) / h(1) is computed from
# the series of h(y) / y (see _inverse_sqrt_ratio); its first omitted term is 35 y^3 / 128, a
# relative error below 6e-10 here.
_SERIES_BELOW = 1e-3


def _inverse_sqrt_ratio(alpha: float):
    """``x -> h(x) / h(1)`` for ``h(x) = 1 / sqrt(1 + alpha x) - 1``, accurate for every alpha.

    Written directly, ``1 + alpha x`` rounds to 1 in float32 once ``alpha x < 6e-8``: the cooldown
    stays flat and then jumps to the plateau, and once ``h(1)`` itself is 0 in float64 (alpha
    below about 1e-16) the ratio is ``0 / 0 = NaN``. ``h(x) = expm1(-log1p(alpha x) / 2)`` does
    not cancel; for a small alpha, where ``alpha x`` (and ``h(1) ~ -alpha / 2``) would also
    underflow, the ratio is ``x g(alpha x) / g(alpha)`` with ``g(y) = h / y = -1/2 + 3y/8 -
    5y^2/16 + ...``, which tends to ``x`` (a linear cooldown) as alpha goes to 0.
    """
    if alpha < _SERIES_BELOW:
        g_one = math.expm1(-0.5 * math.log1p(alpha)) / alpha  # float64: exact enough for any alpha

        def series(x):
            y = alpha * x
            return x * ((-0.5 + y * (0.375 - 0.3125 * y)) / g_one)

        return series
    h_one = math.expm1(-0.5 * math.log1p(alpha))  # in [-1, -0.0005]

    def direct(x):
        return jnp.expm1(-0.5 * jnp.log1p(alpha * x)) / h_one

    return direct


def _check_anneal(where: str, anneal_start, anneal_steps, end_value, anneal_shape,
                  plateau: float, warm: int, cool: int):
    """The anneal's ``(start, steps, end, shape)``; ``start`` is None when there is no anneal."""
    plateau_start = warm + cool
    end = None
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
        end = _assembly.check_below(where, "end_value", end_value, plateau, "constant_value")
        anneal_shape = _shapes.validate_decay_shape(where, anneal_shape, plateau, end,
                                                    "anneal_shape")
    return anneal_start, anneal_steps, end, anneal_shape


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
      cooldown_timescale: ``alpha`` of the ``'inverse_sqrt'`` cooldown; a positive number. The
        shape is computed without cancellation for every alpha float32 holds; as alpha goes to
        0 it tends to the linear cooldown.
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
    peak = _assembly.check_peak(where, peak_value)
    plateau = _assembly.check_below(where, "constant_value", constant_value, peak, "peak_value")
    warm = _checks.check_int(where, "warmup_steps", warmup_steps, minimum=0)
    cool = _checks.check_int(where, "cooldown_steps", cooldown_steps, minimum=1)
    _checks.check_choice(where, "cooldown_shape", cooldown_shape, _COOLDOWN_SHAPES)
    alpha = _checks.check_float(where, "cooldown_timescale", cooldown_timescale, minimum=0.0,
                                strict_min=True)
    if cooldown_shape != "inverse_sqrt":
        _shapes.validate_decay_shape(where, cooldown_shape, peak, plateau, "cooldown_shape",
                                     end_name="constant_value")
    init = _assembly.check_below(where, "init_value", init_value, peak, "peak_value")
    plateau_start = warm + cool
    anneal_start, anneal_steps, end, anneal_shape = _check_anneal(
        where, anneal_start, anneal_steps, end_value, anneal_shape, plateau, warm, cool)
    ratio = _inverse_sqrt_ratio(alpha)

    def cooldown_factor(x):
        if cooldown_shape == "inverse_sqrt":
            return 1.0 - ratio(x)
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
            value = _assembly.terminal(count, value, anneal_start + anneal_steps, end)
        value = _shapes.overlay_warmup(count, value, warm, init, peak)
        return _assembly.as_output(value)

    return schedule
