"""Planning schedules with a fitted annealing law: rank candidates, search a WSD decay (private).

Under the law a schedule's final loss is ``L0 + A·S1^(−α) − C·S2`` at its last step, so ranking
candidates needs no training run: :func:`plan_schedules` ranks given schedules, :func:`plan_wsd`
searches the decay fraction and shape of a WSD schedule.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from optaxsched import _checks, _shapes
from optaxsched._curves import short
from optaxsched._forecast.law import AnnealingLaw, predict_losses
from optaxsched._schedules.wsd import wsd as _wsd
from optaxsched._types import DecayShape

__all__ = ["PlanEntry", "plan_schedules", "plan_wsd"]

# The decay fractions and shapes plan_wsd tries by default (the shapes that allow end_value = 0),
# shown as values in its signature.
WSD_FRACTIONS: tuple[float, ...] = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5)
WSD_SHAPES: tuple[DecayShape, ...] = ("1-sqrt", "linear", "cosine", "square")


class PlanEntry(NamedTuple):
    """One ranked candidate: its name, predicted final loss and the settings that built it."""

    name: str
    final_loss: float
    settings: dict


def _check_law(where: str, law) -> AnnealingLaw:
    if not isinstance(law, AnnealingLaw):
        _checks.fail(where, "law", "an AnnealingLaw (from optaxsched.fit_annealing_law)", law)
    return law


def _ranked(entries: list[PlanEntry]) -> list[PlanEntry]:
    return sorted(entries, key=lambda e: (math.isnan(e.final_loss), e.final_loss, e.name))


def plan_schedules(candidates: Mapping[str, Any], law: AnnealingLaw,
                   total_steps: int | None = None,
                   warmup_steps: int | None = None) -> list[PlanEntry]:
    r"""Ranks candidate schedules by the loss a fitted annealing law predicts after their last step.

    Each candidate's score is the law at its final step :math:`T`:

    .. math::

        L(T) = L_0 + A \cdot S_1(T)^{-\alpha} - C \cdot S_2(T)

    with the areas :math:`S_1, S_2` of :func:`optaxsched.annealing_areas`, so a ranking needs no
    training run, only a law fitted on one or two runs with the same model and data.

    Args:
      candidates: ``{name: schedule or 1-D array of learning rates}``.
      law: a fitted :class:`optaxsched.AnnealingLaw`.
      total_steps: run length; required when a candidate is a schedule (each is evaluated at
        counts ``0 .. total_steps − 1``); arrays must then have this length. Without it, all
        candidates must be arrays of one length.
      warmup_steps: warmup length of the candidates (default: the law's).

    Returns:
      A list of :class:`optaxsched.PlanEntry` ``(name, final_loss, settings={})``, lowest
      loss first.

    Example:
      >>> import optax, optaxsched as oxs
      >>> law = oxs.AnnealingLaw(L0=2.8, A=0.4, alpha=0.5, C=0.3)
      >>> ranking = oxs.plan_schedules({"constant": optax.constant_schedule(1e-3),
      ...                               "wsd": oxs.wsd(1e-3, 5000)}, law, 5000)
      >>> ranking[0].name
      'wsd'

    References:
      Tissue et al., `Scaling Law with Learning Rate Annealing
      <https://arxiv.org/abs/2408.11029>`_, 2024.
    """
    where = "plan_schedules"
    _check_law(where, law)
    if not isinstance(candidates, Mapping) or not candidates:
        _checks.fail(where, "candidates", "a non-empty mapping {name: schedule or lrs}",
                     short(candidates))
    if total_steps is not None:
        total_steps = _checks.check_int(where, "total_steps", total_steps, minimum=1)
    entries, lengths = [], set()
    for name, candidate in candidates.items():
        if not isinstance(name, str):
            _checks.fail(where, "candidates", "a mapping with string names", name)
        predicted = predict_losses(law, where, f"candidates[{name!r}]", candidate, total_steps,
                                   warmup_steps)
        lengths.add(predicted.size)
        entries.append(PlanEntry(name, float(predicted[-1]), {}))
    if len(lengths) > 1:
        raise ValueError(f"{where}: candidates must all have the same number of steps (give "
                         f"total_steps), got lengths {sorted(lengths)}.")
    return _ranked(entries)


def plan_wsd(law: AnnealingLaw, peak_value: float, total_steps: int,
             warmup_steps: int | None = None, fractions: Sequence[float] = WSD_FRACTIONS,
             shapes: Sequence[DecayShape] = WSD_SHAPES, end_value: float = 0.0,
             init_value: float = 0.0) -> list[PlanEntry]:
    r"""Searches the decay fraction and shape of a WSD schedule with a fitted annealing law.

    Every combination ``oxs.wsd(peak_value, total_steps, warmup_steps, decay_fraction=f,
    decay_shape=s, end_value, init_value)`` is scored by the law at its last step :math:`T`,

    .. math::

        L(T) = L_0 + A \cdot S_1(T)^{-\alpha} - C \cdot S_2(T):

    a longer decay gains annealing area :math:`S_2` but loses forward area :math:`S_1`, and the
    best fraction balances the two.

    Args:
      law: a fitted :class:`optaxsched.AnnealingLaw`.
      peak_value: the WSD peak learning rate (the units of the fit), > 0.
      total_steps: run length, ≥ 2.
      warmup_steps: WSD warmup length (default: the law's ``warmup_steps``).
      fractions: decay fractions to try, each in (0, 1].
      shapes: decay shapes to try (names accepted by :func:`optaxsched.wsd`).
      end_value: final learning rate, in [0, peak_value).
      init_value: learning rate at count 0 of the warmup.

    Returns:
      A list of :class:`optaxsched.PlanEntry`, lowest predicted loss first; ``name`` is like
      ``"wsd 1-sqrt 0.2"`` and ``settings`` is ``{'decay_fraction': f, 'decay_shape': s}``.

    Example:
      >>> import optaxsched as oxs
      >>> law = oxs.AnnealingLaw(L0=2.8, A=0.4, alpha=0.5, C=0.3)
      >>> best = oxs.plan_wsd(law, 1e-3, 10_000)[0]
      >>> best.settings["decay_shape"] in ("1-sqrt", "linear", "cosine", "square")
      True

    References:
      Tissue et al., `Scaling Law with Learning Rate Annealing
      <https://arxiv.org/abs/2408.11029>`_, 2024.

      Hägele et al., `Scaling Laws and Compute-Optimal Training Beyond Fixed Training
      Durations <https://arxiv.org/abs/2405.18392>`_, 2024.
    """
    where = "plan_wsd"
    _check_law(where, law)
    peak = _checks.check_float(where, "peak_value", peak_value, minimum=0.0, strict_min=True)
    total = _checks.check_int(where, "total_steps", total_steps, minimum=2)
    warm = law.warmup_steps if warmup_steps is None else warmup_steps
    warm = _checks.check_int(where, "warmup_steps", warm, minimum=0, maximum=total - 2)
    end = _checks.check_float(where, "end_value", end_value, minimum=0.0, maximum=peak,
                              strict_max=True)
    _checks.check_sequence(where, "fractions", fractions)
    fractions = [_checks.check_float(where, "fractions", f, minimum=0.0, maximum=1.0,
                                     strict_min=True) for f in fractions]
    _checks.check_sequence(where, "shapes", shapes)
    shapes = [_checks.check_choice(where, "shapes", s, _shapes.DECAY_SHAPES) for s in shapes]
    entries = []
    for shape in dict.fromkeys(shapes):
        for fraction in dict.fromkeys(fractions):
            try:
                schedule = _wsd(peak, total, warmup_steps=warm, decay_fraction=fraction,
                                decay_shape=shape, end_value=end, init_value=init_value)
            except ValueError as err:
                raise ValueError(f"{where}: decay_fraction={fraction:g}, decay_shape={shape!r}: "
                                 f"{err}") from None
            final = float(predict_losses(law, where, "wsd", schedule, total, warm)[-1])
            entries.append(PlanEntry(f"wsd {shape} {fraction:g}", final,
                                     {"decay_fraction": fraction, "decay_shape": shape}))
    return _ranked(entries)
