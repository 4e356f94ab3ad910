"""Loss-curve forecasts from the scaling law with learning-rate annealing (Tissue et al., 2024).

The law describes a whole training curve from its learning-rate schedule::

    L(s) = L0 + A · S1(s)^(−α) − C · S2(s)

    S1(s) = Σ_{i≤s} η_i                                   forward area
    S2(s) = Σ_{i≤s} m_i,  m_i = λ·m_{i−1} + (η_{i−1} − η_i)   annealing area (with momentum)

so that one or two runs (say constant and cosine) fit ``L0, A, α, C`` and the fitted law then
predicts the curve of any other schedule. The workflow:

1. :func:`annealing_areas` computes ``S1`` and ``S2`` for a schedule or a learning-rate array
   (vectorised NumPy, O(n), float64).
2. :func:`fit` fits the law to one or several runs jointly (each a :class:`LossCurve`, a
   ``(lrs, losses)`` / ``(lrs, steps, losses)`` tuple, or a file read by
   :func:`load_loss_curve`) and returns an :class:`AnnealingLaw`.
3. :meth:`AnnealingLaw.predict` gives the predicted loss after every step of a new schedule;
   :func:`plan` ranks candidate schedules by predicted final loss and :func:`plan_wsd` searches
   the decay fraction and shape of a WSD schedule.

Conventions (the project's choices, see each docstring):

* **Steps.** Entry ``k`` of a learning-rate array is the rate of the optax count ``k`` (0 on the
  first update); the areas at entry ``k`` include ``η_k``, so ``L[k]`` is the loss after
  ``k + 1`` updates. A training loss logged *before* update ``k`` is off by one step, which
  changes ``S1`` by ``η_k / S1`` (negligible after a few hundred steps).
* **Warmup.** The first ``warmup_steps`` learning rates are counted as if they were ``η_W``,
  the rate at the end of the warmup (the peak, for a warmup that ends at the peak), and losses
  during the warmup are neither fitted nor predicted (``predict`` returns NaN there). This is
  how the re-implementations that follow the authors' code treat warmup (design notes,
  :ref:`design-forecast`); the law is
  not meant to describe the warmup phase.
* **λ** is not one of the fitted parameters: 0.999 by default (the paper works with values
  between about 0.99 and 0.999). ``fit(runs, lam=LAM_GRID)`` fits once per candidate and keeps
  the best fit, which helps in short runs where a memory of ~1/(1 − λ) = 1000 steps is long.
* **Units.** Learning rates are used raw; ``A`` and ``C`` absorb their scale, so a law fitted
  with rates in one unit predicts schedules in the same unit.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import json
import math
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from optaxsched import _checks, _io, _shapes
from optaxsched._schedules.wsd import wsd as _wsd
from optaxsched._types import DecayShape

__all__ = [
    "DEFAULT_LAM",
    "LAM_GRID",
    "HUBER_DELTA",
    "WSD_FRACTIONS",
    "WSD_SHAPES",
    "LossCurve",
    "AnnealingLaw",
    "PlanEntry",
    "annealing_areas",
    "fit",
    "plan",
    "plan_wsd",
    "load_loss_curve",
]

DEFAULT_LAM: float = 0.999
"""Default momentum decay factor λ of the annealing area."""

LAM_GRID: tuple[float, ...] = (0.95, 0.98, 0.99, 0.995, 0.998, 0.999)
"""Candidate λ values for a profile search (``fit(runs, lam=LAM_GRID)``)."""

HUBER_DELTA: float = 1e-3
"""Default threshold δ of the Huber loss on log-losses used by :func:`fit`."""

WSD_FRACTIONS: tuple[float, ...] = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5)
"""Decay fractions :func:`plan_wsd` tries by default."""

WSD_SHAPES: tuple[DecayShape, ...] = ("1-sqrt", "linear", "cosine", "square")
"""Decay shapes :func:`plan_wsd` tries by default (those that allow ``end_value = 0``)."""

_LAW_FORMAT = "optaxsched.AnnealingLaw"
_LAW_VERSION = 1
# Fewest fitted losses (post-warmup, all runs together) for a four-parameter law.
_MIN_POINTS = 8
# Candidate exponents for the starting points (the variable-projection profile).
_ALPHA_GRID = np.geomspace(0.02, 4.0, 48)
# Largest number of L-BFGS starts.
_MAX_STARTS = 32
# Stopping rules of the L-BFGS loop: gradient norm and relative decrease of the objective.
_GTOL = 1e-9
_FTOL = 1e-13
_METRICS_FILE = "metrics.jsonl"
_EXTENSIONS = (".jsonl", ".csv", ".npz")


# ---------------------------------------------------------------------------------------------
# Learning rates and the two areas.


def _check_lam(where: str, lam) -> float:
    return _checks.check_float(where, "lam", lam, minimum=0.0, maximum=1.0, strict_min=True,
                               strict_max=True)


def _sample(schedule: Callable, n: int) -> np.ndarray:
    """A schedule at counts ``0 .. n - 1``, in one vectorised call when it allows it."""
    counts = np.arange(n, dtype=np.int32 if n < 2**31 else np.int64)
    try:
        values = np.asarray(schedule(counts), dtype=np.float64)
    except (TypeError, ValueError):  # Python branching on the count: not vectorisable.
        values = None
    if values is None or values.shape != counts.shape:
        values = np.array([float(schedule(int(c))) for c in counts], dtype=np.float64)
    return values


def _as_vector(where: str, name: str, value, allowed: str) -> np.ndarray:
    """``value`` as a 1-D float64 array (no other checks), or the standard error."""
    if isinstance(value, (str, bytes, Mapping)) or callable(value):
        _checks.fail(where, name, allowed, value)
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an int beyond float64
        _checks.fail(where, name, allowed, _short(value))
    if array.ndim != 1:
        _checks.fail(where, name, allowed, _short(value))
    return array


def _short(value) -> Any:
    """A value fit for an error message (large arrays are summarised by their shape)."""
    try:
        array = np.asarray(value)
    except Exception:  # pragma: no cover - anything np.asarray refuses is shown as it is
        return value
    if array.size > 8:
        return f"<array of shape {array.shape}>"
    return value


def _fail_entry(where: str, name: str, allowed: str, value, index: int) -> None:
    raise ValueError(f"{where}: {name} must be {allowed}, got {value!r} at index {index}.")


def _check_lrs(where: str, name: str, lrs: np.ndarray) -> np.ndarray:
    allowed = "finite and non-negative"
    bad = np.flatnonzero(~np.isfinite(lrs) | (lrs < 0))
    if bad.size:
        _fail_entry(where, name, allowed, float(lrs[bad[0]]), int(bad[0]))
    return lrs


def _learning_rates(where: str, name: str, schedule_or_lrs, total_steps) -> np.ndarray:
    """A schedule sampled at ``0 .. total_steps - 1``, or a validated 1-D array of rates."""
    if callable(schedule_or_lrs):
        if total_steps is None:
            raise ValueError(f"{where}: total_steps is required when {name} is a schedule.")
        # The schedule is sampled at every step: beyond 10^8 that is a mistake (tokens given as
        # steps), not a forecast; refused here rather than as a MemoryError.
        total = _checks.check_int(where, "total_steps", total_steps, minimum=1,
                                  maximum=_MAX_SAMPLED_STEPS)
        lrs = _sample(schedule_or_lrs, total)
        return _check_lrs(where, f"{name} (sampled at counts 0..{total - 1})", lrs)
    lrs = _as_vector(where, name, schedule_or_lrs,
                     "an optax schedule or a 1-D array of learning rates")
    if lrs.size == 0:
        _checks.fail(where, name, "an optax schedule or a non-empty 1-D array of learning rates",
                     schedule_or_lrs)
    if total_steps is not None:
        total = _checks.check_int(where, "total_steps", total_steps, minimum=1)
        if total != lrs.size:
            raise ValueError(f"{where}: total_steps must equal the length of {name} ({lrs.size})"
                             f" when {name} is an array, got {total}.")
    return _check_lrs(where, name, lrs)


def _discounted_cumsum(x: np.ndarray, lam: float) -> np.ndarray:
    """``y_k = Σ_{j≤k} lam^(k−j) x_j``: the filter ``y_k = lam·y_{k−1} + x_k``, O(n).

    ``scipy.signal.lfilter([1], [1, -lam], x)``, the recursion itself: it cannot overflow for
    ``lam`` in (0, 1). Against the former blockwise power-weighted cumulative sums it agrees to
    2.4e-15 relative to ``Σ lam^(k−j) |x_j|`` and is 1.7x to 17x faster (10k and 1M points,
    ``lam`` from 0.5 to 1 − 1e-7).
    """
    from scipy import signal  # a dependency of jax; imported when areas are computed

    if x.size == 0:
        return np.zeros(0)
    return signal.lfilter([1.0], [1.0, -lam], np.asarray(x, dtype=np.float64))


def _areas(lrs: np.ndarray, lam: float, warmup_steps: int) -> tuple[np.ndarray, np.ndarray]:
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
    """The forward area ``S1`` and the annealing area ``S2`` after every step of a schedule.

    .. math::

        S_1(k) = \\sum_{i \\le k} \\eta_i, \\qquad
        m_i = \\lambda\\, m_{i-1} + (\\eta_{i-1} - \\eta_i),\\ m_0 = 0, \\qquad
        S_2(k) = \\sum_{i \\le k} m_i

    ``η_i`` is the learning rate of the optax count ``i`` (0 on the first update), so entry
    ``k`` is the area after ``k + 1`` updates. The momentum ``m`` is the linear filter
    ``m_i = λ m_{i−1} + Δ_i``, computed in O(n) with blockwise power-weighted cumulative sums
    (no Python loop over steps, no overflow for any λ in (0, 1)). Warmup: the first
    ``warmup_steps`` rates are replaced by ``η_W`` (the rate at count ``warmup_steps``), so the
    warmup adds ``W·η_W`` to ``S1`` and nothing to ``S2`` (:ref:`design-forecast`). A learning
    rate that goes back up (re-warmup) makes ``S2`` decrease, as in the paper.

    Args:
      schedule_or_lrs: an optax schedule, evaluated at counts ``0 .. total_steps − 1``, or a
        1-D array of finite, non-negative learning rates, one per step.
      total_steps: number of steps; required for a schedule, optional for an array (then it
        must equal its length).
      lam: the momentum decay factor λ, in (0, 1).
      warmup_steps: warmup length ``W``, in ``[0, n − 1]``.

    Returns:
      ``(S1, S2)``, two float64 arrays of length ``n``.

    Example:
      >>> import optax, optaxsched as oxs
      >>> s1, s2 = oxs.annealing_areas(optax.cosine_decay_schedule(1e-3, 1000), 1000)
      >>> round(float(s1[-1]), 4), round(float(s2[-1]), 4)
      (0.5005, 0.3788)

    References:
      Tissue, Wang, Wang, "Scaling Law with Learning Rate Annealing" (arXiv 2408.11029).
    """
    where = "annealing_areas"
    lam = _check_lam(where, lam)
    lrs = _learning_rates(where, "schedule_or_lrs", schedule_or_lrs, total_steps)
    warm = _checks.check_int(where, "warmup_steps", warmup_steps, minimum=0,
                             maximum=lrs.size - 1)
    return _areas(lrs, lam, warm)


# ---------------------------------------------------------------------------------------------
# Loss curves: what the fit consumes.


# A schedule given as ``lrs`` is sampled at every step up to the last observed one; beyond this
# many steps that is a mistake (a step in tokens, a corrupt log), not a run to evaluate.
_MAX_SAMPLED_STEPS = 100_000_000


def _check_step_values(where: str, name: str, steps) -> np.ndarray:
    """``steps`` as a 1-D array of finite, non-negative integers (the standard errors if not)."""
    raw = _as_vector(where, name, steps, "a 1-D array of integer steps")
    bad = np.flatnonzero(~np.isfinite(raw) | (raw != np.round(raw)) | (raw < 0))
    if bad.size:
        _fail_entry(where, name, "integers >= 0 (finite)", raw[bad[0]].item(),
                    int(bad[0]))
    return raw


def _check_curve(where: str, label: str, lrs, losses, steps):
    """Validated ``(lrs, losses, steps)`` arrays for one run; ``label`` prefixes argument names."""
    if steps is not None:  # validated before anything uses them (a schedule is sampled up to them)
        _check_step_values(where, f"{label}steps", steps)
    if callable(lrs):
        if steps is None:
            n = len(losses) if hasattr(losses, "__len__") and np.ndim(losses) == 1 else 0
        else:
            step_array = _as_vector(where, f"{label}steps", steps, "a 1-D array of integer steps")
            n = int(np.max(step_array)) + 1 if step_array.size else 0
            if n > _MAX_SAMPLED_STEPS:
                _fail_entry(where, f"{label}steps", f"at most {_MAX_SAMPLED_STEPS - 1} when lrs is "
                            f"a schedule (it is sampled at every step up to the last one)",
                            int(step_array.max()), int(np.argmax(step_array)))
        if n < 1:
            _checks.fail(where, f"{label}losses", "a non-empty 1-D array of losses", losses)
        lrs = _learning_rates(where, f"{label}lrs", lrs, n)
    else:
        lrs = _learning_rates(where, f"{label}lrs", lrs, None)
    losses = _as_vector(where, f"{label}losses", losses, "a 1-D array of losses")
    if losses.size == 0:
        _checks.fail(where, f"{label}losses", "a non-empty 1-D array of losses", losses)
    bad = np.flatnonzero(~np.isfinite(losses) | (losses <= 0))
    if bad.size:
        _fail_entry(where, f"{label}losses", "finite and positive", float(losses[bad[0]]),
                    int(bad[0]))
    if steps is None:
        if losses.size != lrs.size:
            raise ValueError(
                f"{where}: {label}losses must have one entry per learning rate ({lrs.size}) "
                f"when no steps are given, got {losses.size}.")
        step_array = np.arange(lrs.size, dtype=np.int64)
    else:
        raw = _as_vector(where, f"{label}steps", steps, "a 1-D array of integer steps")
        if raw.size != losses.size:
            raise ValueError(f"{where}: {label}steps must have one entry per loss "
                             f"({losses.size}), got {raw.size}.")
        bad = np.flatnonzero(~np.isfinite(raw) | (raw != np.round(raw)) | (raw < 0)
                             | (raw > lrs.size - 1))
        if bad.size:
            _fail_entry(where, f"{label}steps", f"integers in [0, {lrs.size - 1}] (indices into "
                        "the learning rates)", raw[bad[0]].item(), int(bad[0]))
        step_array = raw.astype(np.int64)
        bad = np.flatnonzero(np.diff(step_array) <= 0)
        if bad.size:
            _fail_entry(where, f"{label}steps", "strictly increasing",
                        int(step_array[bad[0] + 1]), int(bad[0] + 1))
    lrs, losses, step_array = lrs.copy(), losses.copy(), step_array.copy()  # never the caller's
    for array in (lrs, losses, step_array):
        array.setflags(write=False)
    return lrs, losses, step_array


@dataclasses.dataclass(frozen=True, eq=False)
class LossCurve:
    """One training run: its learning rate at every step and the losses observed along it.

    ``lrs[k]`` is the learning rate of the optax count ``k``; ``losses[i]`` was observed after
    step ``steps[i]`` (see the module docstring for the step convention). Losses may be known
    at every step (``steps=None``: then ``len(losses) == len(lrs)``) or at a subset (evaluation
    every few hundred steps), while the learning rate must be known at every step because the
    areas accumulate it. Arrays are validated and stored read-only as float64 / int64.

    Args:
      lrs: 1-D array of finite, non-negative learning rates, one per step (or an optax
        schedule, sampled at counts ``0 .. n − 1`` with ``n = len(losses)`` or
        ``max(steps) + 1``).
      losses: 1-D array of finite, positive losses.
      steps: strictly increasing integer steps in ``[0, len(lrs) − 1]``, one per loss;
        ``None`` means every step.
      name: a label for plots and messages.

    Example:
      >>> import numpy as np, optaxsched as oxs
      >>> curve = oxs.LossCurve(np.full(1000, 1e-3), [3.1, 2.9, 2.8], steps=[99, 499, 999])
    """

    lrs: np.ndarray
    losses: np.ndarray
    steps: np.ndarray | None = None
    name: str = ""

    def __post_init__(self):
        if not isinstance(self.name, str):
            _checks.fail("LossCurve", "name", "a string", self.name)
        lrs, losses, steps = _check_curve("LossCurve", "", self.lrs, self.losses, self.steps)
        object.__setattr__(self, "lrs", lrs)
        object.__setattr__(self, "losses", losses)
        object.__setattr__(self, "steps", steps)

    def __repr__(self) -> str:
        return (f"LossCurve(name={self.name!r}, steps={self.lrs.size}, observed={self.losses.size}"
                f", final_loss={float(self.losses[-1]):.6g})")


def _is_vector_like(value) -> bool:
    if isinstance(value, (str, bytes, Mapping, LossCurve)) or callable(value):
        return False
    try:
        return np.asarray(value, dtype=np.float64).ndim == 1
    except (TypeError, ValueError):
        return False


def _is_single_run(value) -> bool:
    if isinstance(value, (LossCurve, Mapping)):
        return True
    if isinstance(value, (tuple, list)) and len(value) in (2, 3):
        first, rest = value[0], value[1:]
        return (callable(first) or _is_vector_like(first)) and all(map(_is_vector_like, rest))
    return False


_RUN_KEYS = ("lrs", "losses", "steps", "name")
_RUN_ALLOWED = ("a LossCurve, a (lrs, losses) or (lrs, steps, losses) tuple, or a mapping with "
                "keys 'lrs', 'losses' and optionally 'steps', 'name'")


def _as_curve(where: str, label: str, run) -> LossCurve:
    if isinstance(run, LossCurve):
        return run
    if isinstance(run, Mapping):
        unknown = sorted(set(map(str, run)) - set(_RUN_KEYS))
        if unknown or "lrs" not in run or "losses" not in run:
            _checks.fail(where, label, _RUN_ALLOWED,
                         f"a mapping with keys {sorted(map(str, run))}")
        lrs, losses, steps, name = (run["lrs"], run["losses"], run.get("steps"),
                                    run.get("name", ""))
    elif isinstance(run, (tuple, list)) and len(run) in (2, 3):
        lrs, losses, steps, name = run[0], run[-1], (run[1] if len(run) == 3 else None), ""
    else:
        _checks.fail(where, label, _RUN_ALLOWED, _short(run))
    if not isinstance(name, str):
        _checks.fail(where, f"{label}.name", "a string", name)
    lrs, losses, steps = _check_curve(where, f"{label}.", lrs, losses, steps)
    return LossCurve(lrs, losses, steps, name)


def _as_curves(where: str, runs) -> list[LossCurve]:
    if _is_single_run(runs):
        return [_as_curve(where, "runs", runs)]
    if isinstance(runs, (str, bytes, Mapping)) or not isinstance(runs, Sequence) or not runs:
        _checks.fail(where, "runs", "a run (" + _RUN_ALLOWED + ") or a non-empty list of runs",
                     _short(runs))
    return [_as_curve(where, f"runs[{i}]", run) for i, run in enumerate(runs)]


# ---------------------------------------------------------------------------------------------
# The fitted law.


def _law_values(s1, s2, L0, A, alpha, C) -> np.ndarray:
    """``L0 + A·S1^−α − C·S2`` in float64; +inf where ``S1 = 0`` (no learning yet)."""
    s1 = np.asarray(s1, dtype=np.float64)
    s2 = np.asarray(s2, dtype=np.float64)
    if A == 0.0:  # no power-law term at all: A·S1^−α is 0 even where S1^−α overflows (0·inf)
        power = np.zeros(np.broadcast(s1, s2).shape)
    else:
        with np.errstate(divide="ignore", over="ignore"):
            power = np.where(s1 > 0, A * np.power(np.where(s1 > 0, s1, 1.0), -alpha), np.inf)
    return L0 + power - C * s2


def _json_number(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


@dataclasses.dataclass(frozen=True)
class AnnealingLaw:
    """A fitted scaling law with LR annealing: ``L = L0 + A·S1^(−α) − C·S2``.

    Built by :func:`fit` (or :meth:`from_dict` / :meth:`load`); immutable. ``lam`` and
    ``warmup_steps`` record how the areas were computed for the fit, and are the defaults
    when the law predicts a new schedule.

    Attributes:
      L0: irreducible loss, > 0.
      A: scale of the power-law term, ≥ 0 (in the units of the learning rates, see the module
        docstring).
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
      Tissue, Wang, Wang, "Scaling Law with Learning Rate Annealing" (arXiv 2408.11029).
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
        object.__setattr__(self, "lam", _check_lam(where, self.lam))
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
        """
        return _law_values(s1, s2, self.L0, self.A, self.alpha, self.C)

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

        Example:
          >>> import optaxsched as oxs
          >>> law = oxs.AnnealingLaw(L0=2.8, A=0.4, alpha=0.5, C=0.3, warmup_steps=100)
          >>> losses = law.predict(oxs.wsd(1e-3, 5000, warmup_steps=100), 5000)
        """
        return _predict(self, "AnnealingLaw.predict", "schedule_or_lrs", schedule_or_lrs,
                        total_steps, warmup_steps)

    def final_loss(self, schedule_or_lrs, total_steps: int | None = None,
                   warmup_steps: int | None = None) -> float:
        """Predicted loss after the last step (see :meth:`predict` for the arguments)."""
        return float(_predict(self, "AnnealingLaw.final_loss", "schedule_or_lrs",
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
            with open(path, encoding="utf-8") as handle:
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


def _predict(law, where, name, schedule_or_lrs, total_steps, warmup_steps) -> np.ndarray:
    lrs = _learning_rates(where, name, schedule_or_lrs, total_steps)
    if warmup_steps is None:
        warm = law.warmup_steps
        if warm > lrs.size - 1:
            raise ValueError(f"{where}: the law's warmup_steps ({warm}) must be smaller than the "
                             f"number of steps ({lrs.size}); pass warmup_steps for this "
                             "schedule.")
    else:
        warm = _checks.check_int(where, "warmup_steps", warmup_steps, minimum=0,
                                 maximum=lrs.size - 1)
    s1, s2 = _areas(lrs, law.lam, warm)
    out = law.loss_at(s1, s2)
    out[:warm] = np.nan
    return out


# ---------------------------------------------------------------------------------------------
# Fitting: starting points by variable projection, then L-BFGS (optax) vmapped over the starts.


def _nonnegative_least_squares(columns: np.ndarray, target: np.ndarray) -> tuple[np.ndarray,
                                                                                    float]:
    """min ‖columns·β − target‖² with β ≥ 0: ``scipy.optimize.nnls`` on unit-norm columns.

    Returns β and the squared residual norm. Against the former enumeration of every active set
    (three columns at most) it agrees to 4e-13 relative (coefficients and residual) and is 13x
    to 35x faster (200 to 10,000 rows).
    """
    from scipy import optimize  # a dependency of jax; imported when a law is fitted

    scale = np.linalg.norm(columns, axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    coef, residual_norm = optimize.nnls(columns / scale, target)
    return coef / scale, float(residual_norm) ** 2


def _starting_points(log_x, z, y, weight, starts: int, annealing: bool) -> np.ndarray:
    """Starts ``(log l0, log a, log α, log c)`` for the scaled model ``l0 + a·x^−α − c·z``.

    For each α of a log-spaced grid the model is linear in ``(l0, a, c) ≥ 0``: a non-negative
    least-squares fit of relative residuals gives the best coefficients and the profile
    residual r(α) (variable projection). The local minima of the profile are the candidate
    basins of the full problem; they start first (best first), and the remaining starts go to
    the next best grid points, so that every start is already close to a minimum.
    """
    root = np.sqrt(weight) / y  # relative residuals: (y - fit) / y
    target = y * root
    residuals, coefs = [], []
    for alpha in _ALPHA_GRID:
        columns = [np.ones_like(y), np.exp(-alpha * log_x)]
        if annealing:
            columns.append(-z)
        coef, residual = _nonnegative_least_squares(np.stack(columns, 1) * root[:, None], target)
        residuals.append(residual)
        coefs.append(coef if annealing else np.append(coef, 0.0))
    profile = np.array(residuals)
    padded = np.concatenate([[np.inf], profile, [np.inf]])
    is_minimum = (profile <= padded[:-2]) & (profile <= padded[2:])
    order = sorted(range(profile.size), key=lambda i: (not is_minimum[i], profile[i]))
    floor = 1e-6 * float(np.median(y))
    points = []
    for i in order[:starts]:
        l0, a, c = coefs[i]
        l0 = max(l0, 1e-3 * float(np.min(y)))
        points.append([math.log(l0), math.log(max(a, floor)), math.log(_ALPHA_GRID[i]),
                       math.log(max(c, floor))])
    return np.array(points)


def _objective(params, log_x, z, log_y, weight, delta):
    """Weighted mean of Huber_δ(log y − log ŷ)/δ² (the fit's criterion scaled to order one)."""
    l0, a, alpha, c = jnp.exp(params)
    predicted = l0 + a * jnp.exp(-alpha * log_x) - c * z
    residual = (log_y - jnp.log(jnp.maximum(predicted, 1e-30))) / delta
    # Huber with threshold 1 on residual/δ. optax.losses.huber_loss(residual, delta=1.0) gives
    # identical values and gradients but made the vmapped objective and gradient 6-18% slower
    # (8 starts, 10k and 100k points, float64, 2-core CPU), so the two-branch form stays.
    size = jnp.abs(residual)
    huber = jnp.where(size <= 1.0, 0.5 * residual * residual, size - 0.5)
    return jnp.sum(weight * huber)


def _minimise(start, log_x, z, log_y, weight, delta, max_iter):
    """One L-BFGS run (optax.lbfgs, zoom line search) from ``start``, inside a while loop."""
    def fun(params):
        return _objective(params, log_x, z, log_y, weight, delta)

    solver = optax.lbfgs()
    value_and_grad = optax.value_and_grad_from_state(fun)

    def step(carry):
        params, state, _ = carry
        value, grad = value_and_grad(params, state=state)
        updates, state = solver.update(grad, state, params, value=value, grad=grad,
                                       value_fn=fun)
        return optax.apply_updates(params, updates), state, value

    def keep_going(carry):
        _, state, previous = carry
        count = optax.tree.get(state, "count")
        value = optax.tree.get(state, "value")
        grad_norm = optax.tree.norm(optax.tree.get(state, "grad"))
        progress = jnp.abs(previous - value) > _FTOL * jnp.maximum(jnp.abs(value), 1.0)
        running = (count < max_iter) & (grad_norm > _GTOL) & progress & jnp.isfinite(value)
        return (count == 0) | running

    init = (start, solver.init(start), jnp.asarray(jnp.inf, start.dtype))
    params, state, _ = jax.lax.while_loop(keep_going, step, init)
    return params, fun(params), optax.tree.get(state, "count")


_minimise_starts = jax.jit(jax.vmap(_minimise, in_axes=(0, None, None, None, None, None, None)))


def _float64():
    """A context in which JAX computes in float64 (``jax.enable_x64``; older JAX: experimental)."""
    if hasattr(jax, "enable_x64"):
        return jax.enable_x64(True)
    from jax.experimental import enable_x64  # pragma: no cover - JAX releases before 0.6

    return enable_x64()  # pragma: no cover


def _padded_size(n: int) -> int:
    """Point counts are rounded up (by less than a quarter, to at least 256) so that the
    compiled optimiser is reused across calls with similar sizes."""
    quantum = max(32, 1 << max(0, n.bit_length() - 3))
    return max(256, -(-n // quantum) * quantum)


def fit(runs, lam: float | Sequence[float] = DEFAULT_LAM, warmup_steps: int = 0, *,
        min_step: int = 0, huber_delta: float = HUBER_DELTA, starts: int = 8,
        max_iter: int = 500) -> AnnealingLaw:
    """Fits ``L = L0 + A·S1^(−α) − C·S2`` to one or several loss curves jointly.

    Minimises, over every observed loss after the warmup (and at or after ``min_step``) of
    every run,

    .. math::

        \\frac{1}{N}\\sum_{\\text{runs}}\\sum_{k} \\mathrm{Huber}_\\delta\\big(\\log L_k
          - \\log(L_0 + A S_1(k)^{-\\alpha} - C S_2(k))\\big)

    with the paper's robust loss (Huber on log-losses, δ = 1e-3). Recipe:

    * the areas come from :func:`annealing_areas` (λ fixed; warmup rates counted at ``η_W``);
    * internally ``S1`` and ``S2`` are divided by their largest value, and the four parameters
      are optimised through their logarithms (positivity; ``C`` may tend to 0);
    * starting points by variable projection: for 48 exponents α in [0.02, 4] the law is
      linear in ``(L0, A, C) ≥ 0``, solved by non-negative least squares on relative
      residuals; the local minima of this profile over α start first, then the next best
      grid points, ``starts`` in all;
    * optax's L-BFGS (``optax.lbfgs``, zoom line search) runs from all starts at once
      (``jax.vmap`` inside one ``jit``, in float64 whatever the global setting) until the
      gradient norm or the relative decrease is negligible or ``max_iter`` iterations; the
      best start wins.

    Cost: the first call in a process compiles the vmapped L-BFGS (a few seconds on a CPU;
    setting the environment variable ``JAX_COMPILATION_CACHE_DIR`` keeps the compiled code
    across processes); point counts are padded to buckets so that later calls reuse it, and a
    fit on 10k points then takes about a second.

    Points are weighted equally, so a run with more logged losses weighs more. When no fitted
    point has any annealing (``S2 = 0`` everywhere, e.g. constant runs only) ``C`` is not
    identifiable and is set to 0.

    Args:
      runs: one run or a list of runs. A run is a :class:`LossCurve`; a tuple
        ``(lrs, losses)`` with one loss per learning rate; a tuple ``(lrs, steps, losses)``
        with the losses observed at the given steps only; or a mapping with keys ``'lrs'``,
        ``'losses'`` and optionally ``'steps'``, ``'name'``. ``lrs`` may be an optax schedule.
      lam: the momentum decay factor λ, in (0, 1); or a sequence of candidates, each fitted,
        and the law with the lowest fit criterion (``fit_huber``) returned: a profile search
        over λ. The default 0.999 gives the annealing effect a memory of about 1000 steps; in
        runs of a few thousand steps a smaller λ (e.g. from ``LAM_GRID``) often fits better.
      warmup_steps: warmup length ``W``, in ``[0, n − 1]`` for every run (same for all runs):
        rates before it are counted at ``η_W`` and losses before it are not fitted.
      min_step: also skip losses observed before this step (the early transient).
      huber_delta: the Huber threshold δ on log-losses, > 0.
      starts: number of L-BFGS starting points, in [1, 32].
      max_iter: most L-BFGS iterations per start.

    Returns:
      An :class:`AnnealingLaw` with the fitted ``L0, A, alpha, C``, plus ``lam``,
      ``warmup_steps``, ``fit_mape``, ``fit_huber``, ``n_points`` and ``n_runs``.

    Raises:
      ValueError: bad arguments, mismatched lengths, non-finite or non-positive losses, fewer
        than 8 fitted points, or a learning rate that is 0 up to a fitted step (``S1 = 0``).

    Example:
      >>> import optax, optaxsched as oxs
      >>> truth = oxs.AnnealingLaw(L0=2.5, A=0.6, alpha=0.5, C=0.4)
      >>> constant, cosine = optax.constant_schedule(1e-3), optax.cosine_decay_schedule(1e-3, 4000)
      >>> runs = [(s, truth.predict(s, 4000)) for s in (constant, cosine)]
      >>> law = oxs.forecast.fit(runs)
      >>> round(law.alpha, 3), round(law.C, 3)
      (0.5, 0.4)

    References:
      Tissue, Wang, Wang, "Scaling Law with Learning Rate Annealing" (arXiv 2408.11029).
    """
    where = "fit"
    if isinstance(lam, (str, bytes)) or not hasattr(lam, "__len__"):
        lams = [_check_lam(where, lam)]
    else:
        _checks.check_sequence(where, "lam", lam)
        lams = [_check_lam(where, value) for value in lam]  # type: ignore[union-attr]
    warm = _checks.check_int(where, "warmup_steps", warmup_steps, minimum=0)
    first = _checks.check_int(where, "min_step", min_step, minimum=0)
    delta = _checks.check_float(where, "huber_delta", huber_delta, minimum=0.0, strict_min=True)
    starts = _checks.check_int(where, "starts", starts, minimum=1, maximum=_MAX_STARTS)
    max_iter = _checks.check_int(where, "max_iter", max_iter, minimum=1)
    curves = _as_curves(where, runs)
    start_step = max(warm, first)
    for i, curve in enumerate(curves):
        if warm > curve.lrs.size - 1:
            raise ValueError(f"{where}: warmup_steps must be smaller than the number of steps of "
                             f"every run, got {warm} (run {i} has {curve.lrs.size} steps).")
        steps = curve.steps[curve.steps >= start_step]  # type: ignore[index, operator]
        if steps.size and not np.any(curve.lrs[warm:steps[0] + 1] > 0):
            raise ValueError(
                f"{where}: runs[{i}]: the learning rate is 0 up to step {int(steps[0])}, so the "
                "forward area S1 is 0 at a fitted step; raise warmup_steps or min_step.")
    n_points = sum(int(np.sum(c.steps >= start_step)) for c in curves)  # type: ignore[misc, operator]
    if n_points < _MIN_POINTS:
        raise ValueError(f"{where}: runs must hold at least {_MIN_POINTS} observed losses at "
                         f"steps >= max(warmup_steps, min_step) = {start_step}, got {n_points}.")
    laws = [_fit_one(where, curves, value, warm, start_step, delta, starts, max_iter)
            for value in dict.fromkeys(lams)]
    return min(laws, key=lambda law: law.fit_huber)


def _fit_one(where, curves, lam, warm, start_step, delta, starts, max_iter) -> AnnealingLaw:
    """The fit for one λ (arguments validated by :func:`fit`)."""
    s1_parts, s2_parts, y_parts = [], [], []
    for curve in curves:
        s1, s2 = _areas(curve.lrs, lam, warm)
        keep = curve.steps >= start_step
        s1_parts.append(s1[curve.steps[keep]])
        s2_parts.append(s2[curve.steps[keep]])
        y_parts.append(curve.losses[keep])
    s1 = np.concatenate(s1_parts)
    s2 = np.concatenate(s2_parts)
    y = np.concatenate(y_parts)
    scale1 = float(np.max(s1))
    scale2 = float(np.max(np.abs(s2)))
    annealing = scale2 > 0.0
    scale2 = scale2 if annealing else 1.0
    log_x = np.log(s1 / scale1)
    z = s2 / scale2
    weight = np.full(y.size, 1.0 / y.size)
    init = _starting_points(log_x, z, y, weight, starts, annealing)

    size = _padded_size(y.size)
    pad = size - y.size
    with _float64():
        arrays = [jnp.asarray(np.pad(a, (0, pad)), dtype=jnp.float64)
                  for a in (log_x, z, np.log(y), weight)]
        params, values, _ = _minimise_starts(jnp.asarray(init, dtype=jnp.float64), *arrays,
                                             jnp.float64(delta), jnp.int32(max_iter))
        params = np.asarray(params, dtype=np.float64)
        values = np.asarray(values, dtype=np.float64)
    if not np.any(np.isfinite(values)):
        raise ValueError(f"{where}: the optimisation diverged from every start; the losses do "
                         "not look like a curve this law can describe.")
    l0, a, alpha, c = np.exp(params[int(np.nanargmin(np.where(np.isfinite(values), values,
                                                              np.nan)))])
    A = float(a) * scale1 ** float(alpha)
    C = float(c) / scale2 if annealing else 0.0
    fitted = _law_values(s1, s2, float(l0), A, float(alpha), C)
    residual = np.log(y) - np.log(np.maximum(fitted, 1e-300))
    size = np.abs(residual)
    huber = np.where(size <= delta, 0.5 * residual ** 2, delta * (size - 0.5 * delta))
    return AnnealingLaw(L0=float(l0), A=A, alpha=float(alpha), C=C, lam=lam, warmup_steps=warm,
                        fit_mape=float(np.mean(np.abs(fitted - y) / y)),
                        fit_huber=float(np.mean(huber)), n_points=int(y.size),
                        n_runs=len(curves))


# ---------------------------------------------------------------------------------------------
# Planning.


class PlanEntry(NamedTuple):
    """One ranked candidate: its name, predicted final loss and the settings that built it."""

    name: str
    final_loss: float
    settings: dict


def _check_law(where: str, law) -> AnnealingLaw:
    if not isinstance(law, AnnealingLaw):
        _checks.fail(where, "law", "an AnnealingLaw (from optaxsched.forecast.fit)", law)
    return law


def _ranked(entries: list[PlanEntry]) -> list[PlanEntry]:
    return sorted(entries, key=lambda e: (math.isnan(e.final_loss), e.final_loss, e.name))


def plan(candidates: Mapping[str, Any], law: AnnealingLaw, total_steps: int | None = None,
         warmup_steps: int | None = None) -> list[PlanEntry]:
    """Ranks candidate schedules by the loss the law predicts after their last step.

    Args:
      candidates: ``{name: schedule or 1-D array of learning rates}``.
      law: a fitted :class:`AnnealingLaw`.
      total_steps: run length; required when a candidate is a schedule (each is evaluated at
        counts ``0 .. total_steps − 1``); arrays must then have this length. Without it, all
        candidates must be arrays of one length.
      warmup_steps: warmup length of the candidates (default: the law's).

    Returns:
      A list of :class:`PlanEntry` ``(name, final_loss, settings={})``, lowest loss first.

    Example:
      >>> import optax, optaxsched as oxs
      >>> law = oxs.AnnealingLaw(L0=2.8, A=0.4, alpha=0.5, C=0.3)
      >>> ranking = oxs.forecast.plan({"constant": optax.constant_schedule(1e-3),
      ...                              "wsd": oxs.wsd(1e-3, 5000)}, law, 5000)
      >>> ranking[0].name
      'wsd'
    """
    where = "plan"
    _check_law(where, law)
    if not isinstance(candidates, Mapping) or not candidates:
        _checks.fail(where, "candidates", "a non-empty mapping {name: schedule or lrs}",
                     _short(candidates))
    if total_steps is not None:
        total_steps = _checks.check_int(where, "total_steps", total_steps, minimum=1)
    entries, lengths = [], set()
    for name, candidate in candidates.items():
        if not isinstance(name, str):
            _checks.fail(where, "candidates", "a mapping with string names", name)
        predicted = _predict(law, where, f"candidates[{name!r}]", candidate, total_steps,
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
    """Searches the decay fraction and shape of a WSD schedule with the fitted law.

    Every combination ``oxs.wsd(peak_value, total_steps, warmup_steps, decay_fraction=f,
    decay_shape=s, end_value, init_value)`` is scored by the predicted final loss. Under the
    law a longer decay gains annealing area ``S2`` but loses forward area ``S1``; the best
    fraction balances the two.

    Args:
      law: a fitted :class:`AnnealingLaw`.
      peak_value: the WSD peak learning rate (the units of the fit), > 0.
      total_steps: run length, ≥ 2.
      warmup_steps: WSD warmup length (default: the law's ``warmup_steps``).
      fractions: decay fractions to try, each in (0, 1].
      shapes: decay shapes to try (names accepted by :func:`optaxsched.wsd`).
      end_value: final learning rate, in [0, peak_value).
      init_value: learning rate at count 0 of the warmup.

    Returns:
      A list of :class:`PlanEntry`, lowest predicted loss first; ``name`` is like
      ``"wsd 1-sqrt 0.2"`` and ``settings`` is ``{'decay_fraction': f, 'decay_shape': s}``.

    Example:
      >>> import optaxsched as oxs
      >>> law = oxs.AnnealingLaw(L0=2.8, A=0.4, alpha=0.5, C=0.3)
      >>> best = oxs.forecast.plan_wsd(law, 1e-3, 10_000)[0]
      >>> best.settings["decay_shape"] in oxs.forecast.WSD_SHAPES
      True

    References:
      Tissue, Wang, Wang, "Scaling Law with Learning Rate Annealing" (arXiv 2408.11029);
      Hagele et al., "Scaling Laws and Compute-Optimal Training Beyond Fixed Training
      Durations" (arXiv 2405.18392).
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
            final = float(_predict(law, where, "wsd", schedule, total, warm)[-1])
            entries.append(PlanEntry(f"wsd {shape} {fraction:g}", final,
                                     {"decay_fraction": fraction, "decay_shape": shape}))
    return _ranked(entries)


# ---------------------------------------------------------------------------------------------
# Reading runs from files. Readers return rows (line, step, lr, loss); ``None`` is "not logged".


def _number(where: str, path: str, at: str, key: str, value) -> float | None:
    """A logged number (possibly non-finite); ``None`` / an empty cell is "not logged"."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise ValueError(f"{where}: {path}, {at}: {key!r} must be a number, got {value!r}.")
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an int beyond float64
        raise ValueError(f"{where}: {path}, {at}: {key!r} must be a number within the float "
                         f"range, got {_short(value)!r}.") from None


def _read_jsonl(where, path, step_key, lr_key, loss_key):
    records = _io.read_json_records(where, path)
    with_steps = any(step_key in record for _, record in records)
    rows = []
    for line_number, record in records:
        if with_steps and step_key not in record:
            continue  # not a per-step record (a header, a summary)
        if lr_key not in record and loss_key not in record:
            continue
        at = f"line {line_number}"
        rows.append((at, record[step_key] if with_steps else len(rows),
                     _number(where, path, at, lr_key, record.get(lr_key)),
                     _number(where, path, at, loss_key, record.get(loss_key))))
    return rows


def _read_csv(where, path, step_key, lr_key, loss_key):
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise ValueError(f"{where}: {path} is empty.")
        header = [cell.strip() for cell in header]
        for key in (lr_key, loss_key):
            if key not in header:
                raise ValueError(f"{where}: {path} has no {key!r} column (header: "
                                 f"{', '.join(header) or 'empty'}).")
        lr_column, loss_column = header.index(lr_key), header.index(loss_key)
        step_column = header.index(step_key) if step_key in header else None
        rows = []
        for line_number, cells in enumerate(reader, start=2):
            if not any(cell.strip() for cell in cells):
                continue
            if len(cells) != len(header):
                raise ValueError(f"{where}: {path}, line {line_number}: expected {len(header)} "
                                 f"cells, got {len(cells)}.")
            step = cells[step_column].strip() if step_column is not None else len(rows)
            at = f"line {line_number}"
            rows.append((at, step, _number(where, path, at, lr_key, cells[lr_column]),
                         _number(where, path, at, loss_key, cells[loss_column])))
    return rows


def _read_npz(where, path, step_key, lr_key, loss_key):
    arrays = _io.load_npz(where, path)
    for key in (lr_key, loss_key):
        if key not in arrays:
            raise ValueError(f"{where}: {path} has no {key!r} array (arrays: "
                             f"{', '.join(sorted(arrays)) or 'none'}).")
    n = arrays[lr_key].size
    for key in (lr_key, loss_key, step_key):
        if key in arrays and (arrays[key].ndim != 1 or arrays[key].size != n
                              or not np.issubdtype(arrays[key].dtype, np.number)):
            raise ValueError(f"{where}: {path}: {key!r} must be a 1-D numeric array of length "
                             f"{n}, got shape {arrays[key].shape} and dtype {arrays[key].dtype}.")
    steps = arrays[step_key] if step_key in arrays else np.arange(n)
    lrs = arrays[lr_key].astype(np.float64)
    losses = arrays[loss_key].astype(np.float64)
    # In an array NaN is the only way to say "not logged here".
    return [(f"entry {i}", steps[i].item(), None if np.isnan(lrs[i]) else float(lrs[i]),
             None if np.isnan(losses[i]) else float(losses[i])) for i in range(n)]


def _assemble_curve(where, path, label, rows, step_key) -> LossCurve:
    """Per-step learning rates (interpolated) and observed losses from parsed rows."""
    lr_at: dict[int, float] = {}
    loss_at: dict[int, float] = {}
    for at, step, lr, loss in rows:
        step = _io.parse_step(where, path, at, step_key, step)
        if lr is not None:
            if not math.isfinite(lr) or lr < 0:
                raise ValueError(f"{where}: {path}, {at}: the learning rate must be finite and "
                                 f"non-negative, got {lr!r}.")
            lr_at[step] = lr
        if loss is not None:
            if math.isfinite(loss) and loss <= 0:
                raise ValueError(f"{where}: {path}, {at}: the loss must be positive, got "
                                 f"{loss!r}.")
            loss_at[step] = loss  # a later line for the same step wins (resumed runs)
    if not lr_at:
        raise ValueError(f"{where}: {path} holds no learning rates.")
    observed = {s: v for s, v in loss_at.items() if math.isfinite(v)}
    dropped = sorted(set(loss_at) - set(observed))
    if dropped:
        warnings.warn(f"{where}: {path}: dropped {len(dropped)} non-finite losses (first at "
                      f"step {dropped[0]}).", stacklevel=3)
    if not observed:
        raise ValueError(f"{where}: {path} holds no finite losses.")
    last = max(max(lr_at), max(loss_at))
    _io.check_step_span(where, path, 0, last)  # the learning rates are needed at 0 .. last
    n = last + 1
    known = np.array(sorted(lr_at))
    lrs = np.interp(np.arange(n), known, [lr_at[s] for s in known])
    steps = np.array(sorted(observed), dtype=np.int64)
    return LossCurve(lrs, np.array([observed[s] for s in steps]), steps, name=label)


def load_loss_curve(path: str | os.PathLike, loss_key: str = "loss", lr_key: str = "lr",
                    step_key: str = "step") -> LossCurve:
    """Reads a run (learning rates and losses) from a trainer's log or a table.

    Formats:

    * a directory: its ``metrics.jsonl``;
    * ``.jsonl``: one JSON object per line, as the trainer writes ``metrics.jsonl``, e.g.
      ``{"step": 120, "loss": 2.31, "lr": 0.0003}``. Lines without ``step`` are skipped when
      other lines have it (headers, summaries); without any ``step``, records count from 0.
    * ``.csv``: a header naming the columns ``lr`` and ``loss`` (and optionally ``step``);
      without a ``step`` column, row ``i`` is step ``i``.
    * ``.npz``: 1-D arrays ``lr``, ``loss`` (and optionally ``step``) of one length; NaN
      entries are "not logged".

    The learning rate is needed at every step: between logged steps it is interpolated
    linearly, before the first logged step it is the first logged value, and the run ends at
    the last step that logged a rate or a loss. A step logged twice (a resumed run) keeps its
    last values. Missing entries (JSON ``null`` or absent keys, empty CSV cells) are not
    observations. Non-finite logged losses (a diverged stretch) are dropped with a warning;
    a non-finite or negative learning rate and a non-positive loss are errors.

    Args:
      path: the file or run directory.
      loss_key: the loss column or key (e.g. ``'eval_loss'``).
      lr_key: the learning-rate column or key.
      step_key: the step column or key.

    Returns:
      A :class:`LossCurve` named after the file (or the run directory).

    Raises:
      ValueError: missing, empty or unreadable file, unknown extension, malformed or truncated
        content, a file of the wrong kind (a plain ``.npy`` array named ``.npz``), a step that
        is not an integer in [0, 2**53] or beyond 10^8 (the learning rate is needed at every
        step up to it), missing columns, or no learning rates / losses (the message names the
        file and the line).

    Example:
      >>> curve = oxs.load_loss_curve("runs/cosine")  # doctest: +SKIP
    """
    where = "load_loss_curve"
    if not isinstance(path, (str, os.PathLike)):
        _checks.fail(where, "path", "a file or directory path", path)
    for name, key in (("loss_key", loss_key), ("lr_key", lr_key), ("step_key", step_key)):
        if not isinstance(key, str) or not key:
            _checks.fail(where, name, "a non-empty string", key)
    path = os.fspath(path)
    label = os.path.basename(os.path.normpath(path))
    if os.path.isdir(path):
        path = os.path.join(path, _METRICS_FILE)
        if not os.path.isfile(path):
            raise ValueError(f"{where}: the run directory has no {_METRICS_FILE}: {path!r}.")
    elif not os.path.exists(path):
        raise ValueError(f"{where}: no such file or directory: {path!r}.")
    else:
        label = os.path.splitext(label)[0]
    extension = os.path.splitext(path)[1].lower()
    if extension not in _EXTENSIONS:
        _checks.fail(where, "path", "a run directory or a file ending in "
                     + ", ".join(_EXTENSIONS), path)
    if not os.path.isfile(path):
        raise ValueError(f"{where}: no such file: {path!r}.")
    reader = {".jsonl": _read_jsonl, ".csv": _read_csv, ".npz": _read_npz}[extension]
    with _io.read_errors(where, path):
        _io.require_existing_file(where, path)
        rows = reader(where, path, step_key, lr_key, loss_key)
    if not rows:
        raise ValueError(f"{where}: {path} holds no records with {lr_key!r} or {loss_key!r}.")
    return _assemble_curve(where, path, label, rows, step_key)
