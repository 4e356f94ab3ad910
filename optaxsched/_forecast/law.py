"""The scaling law with learning-rate annealing: the two areas and the law's prediction (private).

Tissue et al. describe a whole training curve by its learning-rate schedule:

.. math::

    L(s) = L_0 + A\\, S_1(s)^{-\\alpha} - C\\, S_2(s), \\qquad
    S_1(s) = \\sum_{i \\le s} \\eta_i, \\qquad
    S_2(s) = \\sum_{i \\le s} m_i, \\quad m_i = \\lambda\\, m_{i-1} + (\\eta_{i-1} - \\eta_i)

``S1`` is the forward area, ``S2`` the annealing area (the learning-rate drops, with momentum).
:func:`annealing_areas` computes both (vectorised NumPy, O(n), float64); :class:`AnnealingLaw`
holds a fitted law and predicts the curve of any schedule. The fit is in
:mod:`optaxsched._forecast.fit`, the planner in :mod:`optaxsched._forecast.plan`.

Conventions (the project's choices):

* **Steps.** Entry ``k`` of a learning-rate array is the rate of the optax count ``k`` (0 on the
  first update); the areas at entry ``k`` include ``η_k``, so ``L[k]`` is the loss after
  ``k + 1`` updates. A training loss logged *before* update ``k`` is off by one step, which
  changes ``S1`` by ``η_k / S1`` (negligible after a few hundred steps).
* **Warmup.** The first ``warmup_steps`` learning rates are counted as if they were ``η_W``,
  the rate at the end of the warmup (the peak, for a warmup that ends at the peak), and losses
  during the warmup are neither fitted nor predicted (``predict`` returns NaN there). This is
  how the re-implementations that follow the authors' code treat warmup (design notes,
  :ref:`design-forecast`); the law is not meant to describe the warmup phase.
* **λ** is not one of the fitted parameters: 0.999 by default (the paper works with values
  between about 0.99 and 0.999).
* **Units.** Learning rates are used raw; ``A`` and ``C`` absorb their scale, so a law fitted
  with rates in one unit predicts schedules in the same unit.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from optaxsched import _checks
from optaxsched._curves import learning_rates

__all__ = ["annealing_areas", "AnnealingLaw"]

# The default momentum decay factor λ of the annealing area (the paper's usual value). Written once
# here and shown as the value ``lam=0.999`` in the signatures that use it.
DEFAULT_LAM: float = 0.999

_LAW_FORMAT = "optaxsched.AnnealingLaw"
_LAW_VERSION = 1

# ---------------------------------------------------------------------------------------------
# The two areas.


def check_lam(where: str, lam) -> float:
    return _checks.check_float(where, "lam", lam, minimum=0.0, maximum=1.0, strict_min=True,
                               strict_max=True)


def _discounted_cumsum(x: np.ndarray, lam: float) -> np.ndarray:
    """``y_k = Σ_{j≤k} lam^(k−j) x_j``: the filter ``y_k = lam·y_{k−1} + x_k``, O(n).

    ``scipy.signal.lfilter([1], [1, -lam], x)``, the recursion itself: it cannot overflow for
    ``lam`` in (0, 1) (its agreement with the blockwise sums it replaced, and its speed:
    ``benchmarks/RESULTS.md``, *Library internals*).
    """
    from scipy import signal  # a dependency of jax; imported when areas are computed

    if x.size == 0:
        return np.zeros(0)
    return signal.lfilter([1.0], [1.0, -lam], np.asarray(x, dtype=np.float64))


def areas(lrs: np.ndarray, lam: float, warmup_steps: int) -> tuple[np.ndarray, np.ndarray]:
    """``(S1, S2)`` of validated learning rates (see :func:`annealing_areas`)."""
    eta = np.array(lrs, dtype=np.float64)
    if warmup_steps:
        eta[:warmup_steps] = eta[warmup_steps]
    s1 = np.cumsum(eta)
    drops = np.zeros_like(eta)
    drops[1:] = eta[:-1] - eta[1:]
    s2 = np.cumsum(_discounted_cumsum(drops, lam))
    return s1, s2


def annealing_areas(schedule_or_lrs, total_steps: int | None = None, lam: float = DEFAULT_LAM,
                    warmup_steps: int = 0) -> tuple[np.ndarray, np.ndarray]:
    r"""The forward area :math:`S_1` and the annealing area :math:`S_2` after every step.

    In the paper's notation, for the learning rates :math:`\eta_1, \dots, \eta_s` of the
    first :math:`s` steps:

    .. math::

        S_1 = \sum_{i=1}^{s} \eta_i, \qquad
        S_2 = \sum_{i=1}^{s} m_i, \qquad
        m_i = \lambda \cdot m_{i-1} + (\eta_{i-1} - \eta_i), \quad m_0 = 0

    :math:`S_1` is the area under the schedule, :math:`S_2` the learning-rate drops seen through
    a momentum of decay :math:`\lambda`; a rate that goes back up (re-warmup) makes :math:`S_2`
    decrease, as in the paper. Entry ``k`` of the result is after the update with optax count
    ``k`` (the paper's step :math:`s = k + 1`). Warmup: the first ``warmup_steps`` rates count as
    :math:`\eta_W`, the rate at count ``warmup_steps``, so the warmup adds :math:`W \eta_W` to
    :math:`S_1` and nothing to :math:`S_2` (:ref:`design-forecast`). Computed in O(n) in
    float64 (the momentum as a linear filter, ``scipy.signal.lfilter``).

    Args:
      schedule_or_lrs: an optax schedule, evaluated at counts ``0 .. total_steps − 1``, or a
        1-D array of finite, non-negative learning rates, one per step.
      total_steps: number of steps; required for a schedule, optional for an array (then it
        must equal its length).
      lam: the momentum decay factor :math:`\lambda`, in (0, 1).
      warmup_steps: warmup length ``W``, in ``[0, n − 1]``.

    Returns:
      ``(S1, S2)``, two float64 arrays of length ``n``.

    Example:
      >>> import optax, optaxsched as oxs
      >>> s1, s2 = oxs.annealing_areas(optax.cosine_decay_schedule(1e-3, 1000), 1000)
      >>> round(float(s1[-1]), 4), round(float(s2[-1]), 4)
      (0.5005, 0.3788)

    References:
      Tissue et al., `Scaling Law with Learning Rate Annealing
      <https://arxiv.org/abs/2408.11029>`_, 2024.
    """
    where = "annealing_areas"
    lam = check_lam(where, lam)
    lrs = learning_rates(where, "schedule_or_lrs", schedule_or_lrs, total_steps)
    warm = _checks.check_int(where, "warmup_steps", warmup_steps, minimum=0,
                             maximum=lrs.size - 1)
    return areas(lrs, lam, warm)


# ---------------------------------------------------------------------------------------------
# The fitted law.


def law_values(s1, s2, L0, A, alpha, C) -> np.ndarray:
    """``L0 + A·S1^−α − C·S2`` in float64; +inf where ``S1 = 0`` (no learning yet)."""
    s1 = np.asarray(s1, dtype=np.float64)
    s2 = np.asarray(s2, dtype=np.float64)
    if A == 0.0:  # no power-law term at all: A·S1^−α is 0 even where S1^−α overflows (0·inf)
        power = np.zeros(np.broadcast(s1, s2).shape)
    else:
        with np.errstate(divide="ignore", over="ignore"):
            power = np.where(s1 > 0, A * np.power(np.where(s1 > 0, s1, 1.0), -alpha), np.inf)
    with np.errstate(over="ignore", invalid="ignore"):  # overflow: see require_finite
        return L0 + power - C * s2


def require_finite(where: str, law: AnnealingLaw, values: np.ndarray, s1: np.ndarray,
                   s2: np.ndarray, at: str, skip: int = 0) -> np.ndarray:
    """``values`` (the law at areas ``s1``, ``s2``), or a named error where one overflowed.

    The law is +inf where ``S1 = 0`` (nothing learnt yet: documented, and ranked last by the
    planners). Elsewhere its value is a finite real number, but parameters that pass their own
    checks can make it overflow float64 (``alpha = 1e300`` with ``S1 < 1``; ``L0 = A = C =
    1e308``; ``inf - inf`` is NaN): the forecasts printed ``inf`` or ``-inf`` tables and the
    planners ranked them as if they meant something. Refused rather than saturated: the law's
    value is then beyond any loss it was fitted to, by hundreds of orders of magnitude. ``at``
    names the position, a format string of the flat index ``i``: ``"step {i} of lrs"``; the
    first ``skip`` entries (the warmup's, NaN by design) are not checked.
    """
    values = np.asarray(values)  # loss_at of scalar areas: a NumPy scalar
    bad = np.flatnonzero(~np.isfinite(values) & (np.broadcast_to(s1, values.shape) > 0))
    bad = bad[bad >= skip]
    if bad.size:
        i = int(bad[0])
        s1_i = float(np.broadcast_to(s1, values.shape).flat[i])
        s2_i = float(np.broadcast_to(s2, values.shape).flat[i])
        raise ValueError(
            f"{where}: the law's parameters (L0={law.L0!r}, A={law.A!r}, alpha={law.alpha!r}, "
            f"C={law.C!r}) must give a finite loss wherever the learning rate has been positive "
            f"(S1 > 0), got {float(values.flat[i])!r} at {at.format(i=i)} (S1={s1_i:.6g}, "
            f"S2={s2_i:.6g}): the law overflows float64 there.")
    return values


def _json_number(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


@dataclasses.dataclass(frozen=True)
class AnnealingLaw:
    r"""A fitted scaling law with learning-rate annealing.

    .. math::

        L(s) = L_0 + A \cdot S_1^{-\alpha} - C \cdot S_2

    with the areas :math:`S_1, S_2` of :func:`optaxsched.annealing_areas`. Built by
    :func:`optaxsched.fit_annealing_law` (or by hand, :meth:`from_dict`, :meth:`load`);
    immutable. ``lam`` and ``warmup_steps`` record how the areas were computed for the fit, and
    are the defaults when the law predicts a new schedule.

    Attributes:
      L0: irreducible loss, > 0.
      A: scale of the power-law term, ≥ 0 (learning rates are used raw: ``A`` and ``C`` absorb
        their unit, so the law predicts schedules in the unit it was fitted in).
      alpha: exponent α of the forward area, > 0.
      C: weight of the annealing area, ≥ 0 (0 when the fitted runs had no annealing).
      lam: momentum decay factor λ of ``S2``, in (0, 1).
      warmup_steps: warmup length whose learning rates are counted at ``η_W``.
      fit_mape: mean absolute percentage error over the fitted points, as a fraction
        (0.01 = 1%); NaN when unknown.
      fit_huber: the fit's criterion at the optimum: mean Huber loss of
        ``log(observed) − log(fitted)``; NaN when unknown.
      n_points: number of fitted losses (all runs).
      n_runs: number of fitted runs.

    Two laws are equal when everything but the two fit statistics is equal.

    Example:
      >>> import optax, optaxsched as oxs
      >>> law = oxs.AnnealingLaw(L0=2.8, A=0.4, alpha=0.5, C=0.3)
      >>> curve = law.predict(optax.cosine_decay_schedule(1e-3, 10_000), 10_000)

    References:
      Tissue et al., `Scaling Law with Learning Rate Annealing
      <https://arxiv.org/abs/2408.11029>`_, 2024.
    """

    L0: float
    A: float
    alpha: float
    C: float
    lam: float = DEFAULT_LAM
    warmup_steps: int = 0
    fit_mape: float = dataclasses.field(default=math.nan, compare=False)
    fit_huber: float = dataclasses.field(default=math.nan, compare=False)
    n_points: int = 0
    n_runs: int = 0

    def __post_init__(self):
        where = "AnnealingLaw"
        # The law is evaluated on the host in float64.
        check = functools.partial(_checks.check_float, dtype=np.float64)
        object.__setattr__(self, "L0", check(where, "L0", self.L0, minimum=0.0, strict_min=True))
        object.__setattr__(self, "A", check(where, "A", self.A, minimum=0.0))
        object.__setattr__(self, "alpha", check(where, "alpha", self.alpha, minimum=0.0,
                                                strict_min=True))
        object.__setattr__(self, "C", check(where, "C", self.C, minimum=0.0))
        object.__setattr__(self, "lam", check_lam(where, self.lam))
        object.__setattr__(self, "warmup_steps", _checks.check_int(where, "warmup_steps",
                                                                   self.warmup_steps))
        for name in ("fit_mape", "fit_huber"):
            value = getattr(self, name)
            value = math.nan if value is None else value
            if not (isinstance(value, float) and math.isnan(value)):
                value = check(where, name, value, minimum=0.0)
            object.__setattr__(self, name, float(value))
        object.__setattr__(self, "n_points", _checks.check_int(where, "n_points", self.n_points))
        object.__setattr__(self, "n_runs", _checks.check_int(where, "n_runs", self.n_runs))

    # -- prediction ---------------------------------------------------------------------------

    def loss_at(self, s1, s2) -> np.ndarray:
        """The law at given areas: ``L0 + A·S1^(−α) − C·S2`` (float64; +inf where S1 = 0).

        Args:
          s1: forward area(s), ≥ 0.
          s2: annealing area(s), broadcastable against ``s1``.

        Returns:
          A float64 array of the broadcast shape.

        Raises:
          ValueError: the law overflows float64 where ``S1 > 0`` (it is ``inf`` or ``-inf``
            there), naming its parameters and the first such index.
        """
        return require_finite("AnnealingLaw.loss_at", self, law_values(
            s1, s2, self.L0, self.A, self.alpha, self.C), np.asarray(s1, np.float64),
            np.asarray(s2, np.float64), "index {i}")

    def predict(self, schedule_or_lrs, total_steps: int | None = None,
                warmup_steps: int | None = None) -> np.ndarray:
        """Predicted loss after every step of a schedule.

        .. math::

            \\hat L(k) = L_0 + A\\, S_1(k)^{-\\alpha} - C\\, S_2(k)

        with the areas of :func:`annealing_areas` (same λ as the fit). Entry ``k`` is the loss
        after the update with count ``k``; the last entry is the final loss. Entries during the
        warmup are NaN: the law does not describe the warmup.

        Args:
          schedule_or_lrs: an optax schedule (evaluated at counts ``0 .. total_steps − 1``) or
            a 1-D array of learning rates, one per step, in the units used for the fit.
          total_steps: number of steps; required for a schedule.
          warmup_steps: warmup length of this schedule (default: the fit's ``warmup_steps``).

        Returns:
          A float64 array of ``total_steps`` predicted losses.

        Raises:
          ValueError: the law overflows float64 at a step where ``S1 > 0`` (its prediction is
            ``inf`` or ``-inf`` there), naming its parameters and the step.

        Example:
          >>> import optaxsched as oxs
          >>> law = oxs.AnnealingLaw(L0=2.8, A=0.4, alpha=0.5, C=0.3, warmup_steps=100)
          >>> losses = law.predict(oxs.wsd(1e-3, 5000, warmup_steps=100), 5000)
        """
        return predict_losses(self, "AnnealingLaw.predict", "schedule_or_lrs", schedule_or_lrs,
                              total_steps, warmup_steps)

    def final_loss(self, schedule_or_lrs, total_steps: int | None = None,
                   warmup_steps: int | None = None) -> float:
        """Predicted loss after the last step (see :meth:`predict` for the arguments)."""
        return float(predict_losses(self, "AnnealingLaw.final_loss", "schedule_or_lrs",
                                    schedule_or_lrs, total_steps, warmup_steps)[-1])

    # -- serialisation ------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (NaN statistics become ``None``); :meth:`from_dict` inverts it."""
        return {
            "format": _LAW_FORMAT,
            "version": _LAW_VERSION,
            "L0": self.L0,
            "A": self.A,
            "alpha": self.alpha,
            "C": self.C,
            "lam": self.lam,
            "warmup_steps": self.warmup_steps,
            "fit_mape": _json_number(self.fit_mape),
            "fit_huber": _json_number(self.fit_huber),
            "n_points": self.n_points,
            "n_runs": self.n_runs,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AnnealingLaw:
        """Rebuilds a law from :meth:`to_dict`'s output (validated; unknown keys are refused).

        Args:
          data: a mapping with at least ``L0``, ``A``, ``alpha``, ``C``.

        Returns:
          An :class:`AnnealingLaw`.
        """
        where = "AnnealingLaw.from_dict"
        if not isinstance(data, Mapping):
            _checks.fail(where, "data", "a mapping (from AnnealingLaw.to_dict)", data)
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - fields - {"format", "version"})
        if unknown:
            _checks.fail(where, "data", "a mapping with the keys of AnnealingLaw.to_dict "
                         f"({', '.join(sorted(fields))})", f"unknown keys {unknown}")
        missing = [k for k in ("L0", "A", "alpha", "C") if k not in data]
        if missing:
            _checks.fail(where, "data", "a mapping with keys 'L0', 'A', 'alpha', 'C'",
                         f"missing keys {missing}")
        if data.get("format", _LAW_FORMAT) != _LAW_FORMAT:
            _checks.fail(where, "data['format']", repr(_LAW_FORMAT), data["format"])
        if data.get("version", _LAW_VERSION) != _LAW_VERSION:
            _checks.fail(where, "data['version']", str(_LAW_VERSION), data["version"])
        return cls(**{k: v for k, v in data.items() if k in fields})

    def save(self, path: str | os.PathLike) -> None:
        """Writes :meth:`to_dict` as JSON to ``path``."""
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(self.to_dict(), handle, indent=2)
            handle.write("\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> AnnealingLaw:
        """Reads a law written by :meth:`save`.

        Raises:
          ValueError: the file is missing, not JSON, or not a valid law (the message names it).
        """
        where = "AnnealingLaw.load"
        if not isinstance(path, (str, os.PathLike)):
            _checks.fail(where, "path", "a file path", path)
        try:
            with open(path, encoding="utf-8-sig") as handle:  # a byte-order mark is not an error
                data = json.load(handle)
        except FileNotFoundError:
            raise ValueError(f"{where}: no such file: {os.fspath(path)!r}.") from None
        except (OSError, ValueError, RecursionError) as err:
            # ValueError: not JSON (empty, truncated), not UTF-8, an integer of too many digits.
            raise ValueError(f"{where}: {os.fspath(path)} is not a readable JSON law ({err}).") \
                from None
        try:
            return cls.from_dict(data)
        except (ValueError, TypeError) as err:
            raise ValueError(f"{where}: {os.fspath(path)}: {err}") from None


def predict_losses(law, where, name, schedule_or_lrs, total_steps, warmup_steps) -> np.ndarray:
    lrs = learning_rates(where, name, schedule_or_lrs, total_steps)
    if warmup_steps is None:
        warm = law.warmup_steps
        if warm > lrs.size - 1:
            raise ValueError(f"{where}: the law's warmup_steps ({warm}) must be smaller than the "
                             f"number of steps ({lrs.size}); pass warmup_steps for this "
                             "schedule.")
    else:
        warm = _checks.check_int(where, "warmup_steps", warmup_steps, minimum=0,
                                 maximum=lrs.size - 1)
    s1, s2 = areas(lrs, law.lam, warm)
    out = law_values(s1, s2, law.L0, law.A, law.alpha, law.C)
    out[:warm] = np.nan
    return require_finite(where, law, out, s1, s2, f"step {{i}} of {name}", skip=warm)


