"""AutoLRS: a learning-rate schedule searched stage by stage with Bayesian optimization.

Jin et al., "AutoLRS: Automatic Learning-Rate Schedule by Bayesian Optimization on the Fly",
ICLR 2021 (https://arxiv.org/abs/2105.10762). Training is cut into stages of ``τ`` steps, each
at one constant learning rate. At the start of a stage, ``k`` candidate learning rates are each
trained for ``τ' = τ/10`` steps from the stage's checkpoint; an exponential fitted to each
candidate's loss curve forecasts its loss at ``t = τ``; a Gaussian process over ``log η``
chooses the next candidate (lower confidence bound); the stage is trained at the candidate with
the lowest forecast. Stages double in length up to ``τ_max``.

The host-side pieces a user drives from their own training loop: :func:`fit_exponential` /
:func:`forecast_loss` (the forecasting model), :func:`propose_learning_rates` (the GP proposal,
scikit-learn's ``GaussianProcessRegressor``: ``pip install optaxsched[autolrs]``),
:class:`LRSearch` (one stage's search, ``ask`` / ``tell``, sequential as in the paper or all
candidates at once for vmapped trials) and :func:`autolrs_stages` (the stage plan within a step
budget that counts the trials' steps). Training the candidates is the user's: with an optimizer
built by ``optax.inject_hyperparams``, a stage's trials can run as one vmapped program
(``optax.tree.set(optaxsched.stack_params(opt_state, k), learning_rate=lrs)``; see
``examples/autolrs_run.py``). Where this departs from the paper and the authors' code (a lower
bound on the forecast's rate, no spline smoothing, a finite penalty for diverged trials, a grid
acquisition, batch proposals) and why: :ref:`design-autolrs`.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import warnings
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from optaxsched._checks import fail

__all__ = [
    "ExponentialFit",
    "fit_exponential",
    "forecast_loss",
    "propose_learning_rates",
    "LRSearch",
    "AutoLRSStage",
    "autolrs_stages",
]

# The authors' acquisition: skopt's "LCB" with kappa = 1e6, i.e. the candidate of largest
# posterior uncertainty; the final choice is the lowest forecast among the candidates tried.
DEFAULT_KAPPA = 1e6
_GRID = 1024


def _require_sklearn():
    try:
        from sklearn.gaussian_process import GaussianProcessRegressor
        from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel
    except ImportError as err:  # pragma: no cover - exercised by a monkeypatched test
        raise ImportError(
            "optaxsched.LRSearch: the Gaussian-process learning-rate search needs scikit-learn, "
            "which is not installed; install the extra with `pip install 'optaxsched[autolrs]'` "
            "(or `pip install scikit-learn`).") from err
    return GaussianProcessRegressor, ConstantKernel, Matern, WhiteKernel


# ------------------------------------------------------------------------------------------------
# The exponential forecast.
# ------------------------------------------------------------------------------------------------


class ExponentialFit(NamedTuple):
    """``L(t) = a·exp(b·t) + c`` with ``b < 0`` (AutoLRS's forecasting model).

    Attributes:
      a: amplitude (positive for a decreasing curve).
      b: the (negative) rate, per unit of ``t``.
      c: the asymptote.
      residual: root-mean-square error of the fit on the observed points.
    """

    a: float
    b: float
    c: float
    residual: float

    def predict(self, t: Any) -> np.ndarray | float:
        """The model's loss at ``t`` (a number or an array of steps)."""
        value = self.a * np.exp(self.b * np.asarray(t, np.float64)) + self.c
        return float(value) if np.ndim(value) == 0 else value


def _as_curve(where: str, name: str, values: Any) -> np.ndarray:
    try:
        arr = np.asarray(values)
    except (TypeError, ValueError):
        fail(where, name, "a 1-D array of real numbers", values)
    if arr.dtype == object or arr.dtype == bool or not (
            np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        fail(where, name, "a 1-D array of real numbers", values)
    if arr.ndim != 1:
        fail(where, name, "a 1-D array (one value per step)", values)
    return arr.astype(np.float64)


def _profile(t: np.ndarray, y: np.ndarray, rate: float) -> tuple[float, float, float]:
    """Best (a, c) for a fixed rate and the sum of squared residuals."""
    basis = np.exp(-rate * t)
    design = np.stack([basis, np.ones_like(t)], axis=1)
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    res = y - design @ coef
    return float(coef[0]), float(coef[1]), float(res @ res)


def fit_exponential(losses: Any, steps: Any = None, *, min_rate: Any = None) -> ExponentialFit:
    r"""Fits ``L(t) = a·exp(b·t) + c`` (``b < 0``) to a loss curve by least squares.

    For each rate ``r = -b`` the best ``(a, c)`` is a linear least-squares problem, so the fit
    searches ``r`` alone (variable projection, as the authors' code does): a grid of ``log r`` over
    ``[min_rate, 10 / step]``, then a golden-section refinement around the best grid point. The
    default ``min_rate = 1 / span`` (``span`` the observed range of ``t``) keeps the curve's time
    constant within what was observed, so the forecast beyond the data falls by at most ``1/e`` of
    the fitted amplitude; an unbounded fit extrapolates a short, still straight trial linearly
    (:ref:`design-autolrs`).

    .. math::

      \min_{a,\, b < 0,\, c} \sum_i \big(a\, e^{b t_i} + c - L_i\big)^2

    Args:
      losses: 1-D array of at least 3 finite losses.
      steps: their steps ``t`` (1-D, increasing, same length); default ``0, 1, 2, ...``.
      min_rate: the smallest rate ``-b`` allowed (per unit of ``t``); default ``1 / span``.
        ``0.01 / span`` lets a straight line be fitted as a slow exponential.

    Returns:
      An :class:`ExponentialFit`.

    Raises:
      ValueError: fewer than 3 losses, a non-finite loss, ``steps`` of another length, not
        strictly increasing or not finite; ``min_rate`` not a positive number below
        ``10 / step``.

    Example:
      >>> import numpy as np, optaxsched as oxs
      >>> t = np.arange(50)
      >>> fit = oxs.fit_exponential(2.0 * np.exp(-0.1 * t) + 1.0)
      >>> round(fit.a, 3), round(fit.b, 3), round(fit.c, 3)
      (2.0, -0.1, 1.0)

    References:
      Jin et al., `AutoLRS: Automatic Learning-Rate Schedule by Bayesian Optimization on the Fly
      <https://arxiv.org/abs/2105.10762>`_, ICLR 2021 (its exponential forecasting model).
    """
    y = _as_curve("fit_exponential", "losses", losses)
    if y.size < 3:
        fail("fit_exponential", "losses", "at least 3 values (the model has 3 parameters)",
             losses)
    if not np.all(np.isfinite(y)):
        fail("fit_exponential", "losses", "finite (use forecast_loss for a diverged curve)",
             losses)
    if steps is None:
        t = np.arange(y.size, dtype=np.float64)
    else:
        t = _as_curve("fit_exponential", "steps", steps)
        if t.size != y.size or not np.all(np.isfinite(t)) or np.any(np.diff(t) <= 0):
            fail("fit_exponential", "steps", f"{y.size} finite, strictly increasing steps",
                 steps)
    t0 = t[0]
    t = t - t0  # fit from the first observation: exp(b t) stays in range
    span = t[-1]
    min_step = float(np.min(np.diff(t)))
    hi = math.log(10.0 / min_step)
    if min_rate is None:
        min_rate = 1.0 / span
    elif isinstance(min_rate, bool) or not isinstance(min_rate, numbers.Real) or \
            not 0 < float(min_rate) < 10.0 / min_step:
        fail("fit_exponential", "min_rate", f"a number in (0, {10.0 / min_step:g}) (10 / the "
             f"smallest step)", min_rate)
    lo = math.log(min_rate)
    grid = np.linspace(lo, hi, 96)
    sse = np.array([_profile(t, y, math.exp(g))[2] for g in grid])
    i = int(np.argmin(sse))
    left, right = grid[max(i - 1, 0)], grid[min(i + 1, grid.size - 1)]
    golden = (math.sqrt(5) - 1) / 2
    x1, x2 = right - golden * (right - left), left + golden * (right - left)
    f1, f2 = _profile(t, y, math.exp(x1))[2], _profile(t, y, math.exp(x2))[2]
    for _ in range(60):
        if f1 < f2:
            right, x2, f2 = x2, x1, f1
            x1 = right - golden * (right - left)
            f1 = _profile(t, y, math.exp(x1))[2]
        else:
            left, x1, f1 = x1, x2, f2
            x2 = left + golden * (right - left)
            f2 = _profile(t, y, math.exp(x2))[2]
    best = min((f1, x1), (f2, x2), (float(sse[i]), float(grid[i])))[1]
    rate = math.exp(best)
    a, c, sq = _profile(t, y, rate)
    # Shift back to the caller's origin: a·exp(-r (t - t0)) = (a·exp(r t0))·exp(-r t).
    a_origin = a * math.exp(rate * t0) if t0 else a
    return ExponentialFit(a_origin, -rate, c, math.sqrt(sq / y.size))


def forecast_loss(losses: Any, horizon: Any, steps: Any = None, *,
                  min_rate: Any = None) -> float:
    r"""AutoLRS's forecast: the loss at step ``horizon`` of the exponential fitted to ``losses``.

    .. math::

      \hat L(\tau) = a\, e^{b \tau} + c, \qquad (a, b, c) = \text{fit\_exponential}(L_{0..\tau'})

    Args:
      losses: a trial's loss curve (1-D, at least 3 values).
      horizon: the step to forecast (the end of the stage, ``τ``, counted like ``steps``).
      steps: the steps of ``losses`` (default ``0, 1, ...``).
      min_rate: the fit's smallest rate (see :func:`fit_exponential`).

    Returns:
      The forecast loss; ``inf`` when the curve holds a non-finite loss (a diverged trial).

    Raises:
      ValueError: as :func:`fit_exponential`, or a non-finite ``horizon``.

    Example:
      >>> import numpy as np, optaxsched as oxs
      >>> t = np.arange(20)
      >>> round(oxs.forecast_loss(2.0 * np.exp(-0.1 * t) + 1.0, horizon=100), 3)
      1.0

    References:
      Jin et al., `AutoLRS: Automatic Learning-Rate Schedule by Bayesian Optimization on the Fly
      <https://arxiv.org/abs/2105.10762>`_, ICLR 2021.
    """
    if isinstance(horizon, bool) or not isinstance(horizon, numbers.Real) or \
            not math.isfinite(horizon):
        fail("forecast_loss", "horizon", "a finite real number (a step)", horizon)
    y = _as_curve("forecast_loss", "losses", losses)
    if not np.all(np.isfinite(y)):
        return math.inf
    return float(fit_exponential(y, steps, min_rate=min_rate).predict(horizon))


# ------------------------------------------------------------------------------------------------
# The Gaussian-process proposal.
# ------------------------------------------------------------------------------------------------


def _check_range(where: str, min_lr: Any, max_lr: Any) -> tuple[float, float]:
    for name, value in (("min_lr", min_lr), ("max_lr", max_lr)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or \
                not math.isfinite(value) or value <= 0:
            fail(where, name, "a finite positive learning rate", value)
    if not min_lr < max_lr:
        fail(where, "max_lr", f"greater than min_lr ({min_lr})", max_lr)
    return float(min_lr), float(max_lr)


def _check_seed(where: str, seed: Any) -> None:
    """The GP's random state: scikit-learn refused others only once there were trials to fit
    (a traceback in its own words from a later ``ask``), and took 1.5 or True silently."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or \
            not 0 <= int(seed) <= 2**32 - 1:
        fail(where, "seed", "an integer in [0, 2**32 - 1]", seed)


def _unit_scale(values: np.ndarray) -> tuple[np.ndarray, int]:
    """``values · 2**-e`` and ``e``, the exponent that brings ``max |values|`` into [0.5, 1).

    The GP normalises its targets (``normalize_y``: mean 0, standard deviation 1), which a
    common factor does not change, but scikit-learn computes that standard deviation from
    squares: targets of 1e300 overflowed it (NaN, and every proposal became ``min_lr``), and
    targets of 1e-300 underflowed it to 0 (taken as 1: a flat posterior). Scaling by an exact
    power of two gives the same normalised targets, bit for bit, wherever no overflow or
    underflow occurred, and sane ones for any finite values.
    """
    top = float(np.max(np.abs(values))) if values.size else 0.0
    exponent = int(np.frexp(top)[1]) if top > 0 else 0
    return np.ldexp(values, -exponent), exponent


def propose_learning_rates(learning_rates: Sequence[float], values: Sequence[float],
                           min_lr: float, max_lr: float, num: int = 1, *,
                           kappa: float = DEFAULT_KAPPA, seed: int = 0) -> np.ndarray:
    r"""The next ``num`` learning rates a Gaussian process over ``log η`` proposes to try.

    A ``GaussianProcessRegressor`` (constant × Matérn-5/2 + white noise, normalised targets,
    hyperparameters by maximum likelihood) is fitted to ``(x_i, values_i)``, ``x`` being
    ``log η`` scaled to ``[0, 1]`` over ``[min_lr, max_lr]``. The proposal minimises the lower
    confidence bound ``μ(x) - κ·σ(x)`` over a grid of 1024 points (points already tried are
    excluded). For ``num > 1`` each pick is added as a fantasy observation at its posterior mean
    before the next ("kriging believer"). With no observation, the midpoints of ``num`` equal
    bins of ``log η`` (the centre for ``num = 1``).

    .. math::

      x_{\mathrm{next}} = \arg\min_x \; \mu(x) - \kappa\, \sigma(x), \qquad
      x = \frac{\log \eta - \log \eta_{\min}}{\log \eta_{\max} - \log \eta_{\min}}

    Args:
      learning_rates: the learning rates tried so far in this stage.
      values: their forecast losses (finite, of any magnitude: only their differences
        relative to their spread matter).
      min_lr, max_lr: the search range (``0 < min_lr < max_lr``).
      num: how many to propose.
      kappa: the confidence bound's weight (large: explore where the GP is least sure, the
        authors' 1e6; 0: the posterior mean's minimiser).
      seed: the GP optimiser's random state.

    Returns:
      ``num`` learning rates in ``[min_lr, max_lr]``.

    Raises:
      ValueError: bad range, ``num`` or ``kappa``; ``values`` of another length or not finite.
      ImportError: scikit-learn is missing (install ``optaxsched[autolrs]``).

    Example:
      >>> import optaxsched as oxs
      >>> [round(float(x), 6) for x in oxs.propose_learning_rates([], [], 1e-4, 1e-2, 2)]
      [0.000316, 0.003162]

    References:
      Jin et al., `AutoLRS: Automatic Learning-Rate Schedule by Bayesian Optimization on the Fly
      <https://arxiv.org/abs/2105.10762>`_, ICLR 2021.
    """
    min_lr, max_lr = _check_range("propose_learning_rates", min_lr, max_lr)
    if isinstance(num, bool) or not isinstance(num, numbers.Integral) or num < 1:
        fail("propose_learning_rates", "num", "a positive integer", num)
    if isinstance(kappa, bool) or not isinstance(kappa, numbers.Real) or \
            not math.isfinite(kappa) or kappa < 0:
        fail("propose_learning_rates", "kappa", "a finite non-negative number", kappa)
    _check_seed("propose_learning_rates", seed)
    lrs = _as_curve("propose_learning_rates", "learning_rates", learning_rates)
    ys = _as_curve("propose_learning_rates", "values", values)
    if ys.size != lrs.size:
        fail("propose_learning_rates", "values", f"one value per learning rate ({lrs.size})",
             values)
    if not np.all(np.isfinite(ys)):
        fail("propose_learning_rates", "values", "finite", values)
    if np.any(~np.isfinite(lrs)) or np.any(lrs < min_lr * (1 - 1e-9)) or \
            np.any(lrs > max_lr * (1 + 1e-9)):
        fail("propose_learning_rates", "learning_rates", f"within [{min_lr}, {max_lr}]",
             learning_rates)
    lo, hi = math.log(min_lr), math.log(max_lr)
    to_lr = lambda x: np.exp(lo + np.asarray(x) * (hi - lo))
    if lrs.size == 0:
        return to_lr((np.arange(num) + 0.5) / num)
    gpr_cls, constant, matern, white = _require_sklearn()
    x = (np.log(lrs) - lo) / (hi - lo)
    grid = np.linspace(0.0, 1.0, _GRID)
    picks: list[float] = []
    xs, ys_fit = list(x), list(_unit_scale(ys)[0])
    for _ in range(num):
        kernel = constant(1.0, (1e-3, 1e3)) * matern(0.3, (0.1, 10.0), nu=2.5) + \
            white(1e-3, (1e-6, 1e-1))
        gp = gpr_cls(kernel, normalize_y=True, random_state=seed, n_restarts_optimizer=2)
        with warnings.catch_warnings():  # bounds reached on a handful of points: harmless
            warnings.simplefilter("ignore")
            gp.fit(np.asarray(xs)[:, None], np.asarray(ys_fit))
        mean, std = gp.predict(grid[:, None], return_std=True)
        score = mean - kappa * std
        taken = np.min(np.abs(grid[:, None] - np.asarray(xs)[None, :]), axis=1) < 0.5 / _GRID
        score[taken] = np.inf
        best = int(np.argmin(score))
        picks.append(float(grid[best]))
        xs.append(float(grid[best]))
        ys_fit.append(float(mean[best]))
    return to_lr(picks)


# ------------------------------------------------------------------------------------------------
# One stage's search.
# ------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class LRSearch:
    """One AutoLRS stage's search: ask for candidates, tell their loss curves, read the best.

    Sequential (the paper): ``ask(1)``, train it ``trial_steps`` from the stage's checkpoint,
    ``tell`` its curve, repeat ``num_candidates`` times. Parallel: ``ask(num_candidates)`` and
    train them all at once (vmapped from the same state), then ``tell`` every curve. Mixed
    batches work too. Each curve is forecast to ``horizon`` (:func:`forecast_loss`); the stage
    trains at :attr:`best_lr`, the candidate with the lowest forecast.

    Attributes:
      min_lr, max_lr: the search range.
      num_candidates: candidates per stage (the paper's 10).
      horizon: the step, counted from the trial's start like its curve, whose loss is forecast
        (the stage's length ``τ``).
      kappa: the GP confidence bound's weight (:func:`propose_learning_rates`).
      seed: random state of the GP's optimiser.
      min_rate: the forecast's smallest rate (:func:`fit_exponential`; default ``1 / span``).
      learning_rates, forecasts: what was told so far (``inf``: a diverged trial).

    Example:
      >>> import numpy as np, optaxsched as oxs
      >>> search = oxs.LRSearch(1e-4, 1e-1, num_candidates=3, horizon=100)
      >>> t = np.arange(10)
      >>> while not search.done:
      ...     lrs = search.ask(1)
      ...     # a made-up trial: the loss falls fastest at lr = 1e-2
      ...     rate = 0.05 / (1 + np.log10(lrs[0] / 1e-2) ** 2)
      ...     forecasts = search.tell(lrs, [2 + np.exp(-rate * t)])
      >>> round(search.best_lr, 5)
      0.00316

    References:
      Jin et al., `AutoLRS: Automatic Learning-Rate Schedule by Bayesian Optimization on the Fly
      <https://arxiv.org/abs/2105.10762>`_, ICLR 2021.
    """

    min_lr: float
    max_lr: float
    num_candidates: int = 10
    horizon: float = 1000
    kappa: float = DEFAULT_KAPPA
    seed: int = 0
    min_rate: float | None = None
    learning_rates: list[float] = dataclasses.field(default_factory=list)
    forecasts: list[float] = dataclasses.field(default_factory=list)

    def __post_init__(self):
        self.min_lr, self.max_lr = _check_range("LRSearch", self.min_lr, self.max_lr)
        if isinstance(self.num_candidates, bool) or \
                not isinstance(self.num_candidates, numbers.Integral) or self.num_candidates < 1:
            fail("LRSearch", "num_candidates", "a positive integer", self.num_candidates)
        if isinstance(self.horizon, bool) or not isinstance(self.horizon, numbers.Real) or \
                not math.isfinite(self.horizon) or self.horizon <= 0:
            fail("LRSearch", "horizon", "a finite positive number of steps", self.horizon)
        if isinstance(self.kappa, bool) or not isinstance(self.kappa, numbers.Real) or \
                not math.isfinite(self.kappa) or self.kappa < 0:
            fail("LRSearch", "kappa", "a finite non-negative number", self.kappa)
        _check_seed("LRSearch", self.seed)
        self._first_losses: list[float] = []

    @property
    def remaining(self) -> int:
        """Candidates still to try in this stage."""
        return self.num_candidates - len(self.learning_rates)

    @property
    def done(self) -> bool:
        """Whether every candidate of the stage was told."""
        return self.remaining <= 0

    def _gp_targets(self) -> np.ndarray:
        """Forecasts with diverged trials replaced by a finite penalty (see the module notes)."""
        values = np.asarray(self.forecasts, np.float64)
        is_finite = np.isfinite(values)
        if np.any(is_finite):
            # In units of 2**exponent (exact: the same penalty at ordinary scales, which
            # propose_learning_rates scales back to anyway): forecasts near float64's largest
            # value made max - min, and so the penalty, overflow to inf, which it refuses.
            finite, exponent = _unit_scale(values[is_finite])
            floor = min(float(np.ldexp(1e-3, -exponent)), 1e300)  # 1e-3 of the forecasts' unit
            penalty = float(finite.max() + max(finite.max() - finite.min(), floor))
            return np.where(is_finite, np.ldexp(values, -exponent), penalty)
        penalty = (max(self._first_losses) if self._first_losses else 0.0) + 1.0
        return np.where(is_finite, values, penalty)

    def ask(self, num: int = 1) -> np.ndarray:
        """The next ``num`` candidates (at most :attr:`remaining`).

        Raises:
          ValueError: ``num`` not a positive integer, or more than remain.
        """
        if isinstance(num, bool) or not isinstance(num, numbers.Integral) or num < 1 or \
                num > self.remaining:
            fail("LRSearch.ask", "num", f"an integer in [1, {self.remaining}] (the candidates "
                 f"left in this stage)", num)
        return propose_learning_rates(self.learning_rates, self._gp_targets(), self.min_lr,
                                      self.max_lr, num, kappa=self.kappa, seed=self.seed)

    def tell(self, learning_rates: Any, loss_curves: Any, steps: Any = None) -> np.ndarray:
        """Records trials: each curve is forecast to :attr:`horizon`.

        Args:
          learning_rates: the trials' learning rates (1-D, ``n`` values).
          loss_curves: ``[n, T]`` losses (row ``i``: trial ``i``'s curve, ``T >= 3``).
          steps: the curves' steps (default ``0 .. T-1``), in the unit of :attr:`horizon`.

        Returns:
          The ``n`` forecasts (``inf`` for a diverged trial).

        Raises:
          ValueError: shapes that disagree, more trials than remain, a learning rate outside
            the range.
        """
        lrs = _as_curve("LRSearch.tell", "learning_rates", learning_rates)
        curves = np.asarray(loss_curves)
        if curves.dtype == object or curves.dtype == bool or not (
                np.issubdtype(curves.dtype, np.integer)
                or np.issubdtype(curves.dtype, np.floating)):
            fail("LRSearch.tell", "loss_curves", "a [n, T] array of real losses",
                 f"an array of dtype {curves.dtype}")
        if curves.ndim != 2 or curves.shape[0] != lrs.size or curves.shape[1] < 3:
            fail("LRSearch.tell", "loss_curves", f"of shape [{lrs.size}, T >= 3] (one curve "
                 f"per learning rate)", f"an array of shape {curves.shape}")
        if lrs.size > self.remaining:
            fail("LRSearch.tell", "learning_rates", f"at most the {self.remaining} candidates "
                 f"left in this stage", learning_rates)
        if np.any(~np.isfinite(lrs)) or np.any(lrs < self.min_lr * (1 - 1e-6)) or \
                np.any(lrs > self.max_lr * (1 + 1e-6)):
            fail("LRSearch.tell", "learning_rates", f"within [{self.min_lr}, {self.max_lr}]",
                 learning_rates)
        forecasts = np.array([forecast_loss(c, self.horizon, steps, min_rate=self.min_rate)
                              for c in curves])
        for lr, value, curve in zip(lrs, forecasts, curves, strict=True):
            self.learning_rates.append(float(lr))
            self.forecasts.append(float(value))
            if np.isfinite(curve[0]):
                self._first_losses.append(float(curve[0]))
        return forecasts

    @property
    def best_lr(self) -> float:
        """The candidate with the lowest finite forecast (the smallest tried if all diverged).

        Raises:
          ValueError: nothing was told yet.
        """
        if not self.learning_rates:
            raise ValueError("LRSearch.best_lr: no candidate was told yet; call tell first.")
        values = np.asarray(self.forecasts)
        if not np.any(np.isfinite(values)):
            return float(min(self.learning_rates))
        return float(self.learning_rates[int(np.argmin(np.where(np.isfinite(values), values,
                                                                  np.inf)))])


# ------------------------------------------------------------------------------------------------
# Stage bookkeeping.
# ------------------------------------------------------------------------------------------------


class AutoLRSStage(NamedTuple):
    """One stage of an AutoLRS run.

    Attributes:
      index: 0, 1, ...
      start: budget steps spent before the stage (trials of earlier stages included).
      num_candidates: trials in this stage (0: no search; train at the previous stage's LR).
      trial_steps: ``τ'``, steps of each trial.
      train_steps: ``τ``, steps trained at the chosen learning rate.
    """

    index: int  # type: ignore[assignment]  # shadows tuple.index, as optax's count fields do
    start: int
    num_candidates: int
    trial_steps: int
    train_steps: int

    @property
    def cost(self) -> int:
        """Budget steps the stage spends: ``num_candidates · trial_steps + train_steps``."""
        return self.num_candidates * self.trial_steps + self.train_steps


def autolrs_stages(total_steps: int, *, first_stage_steps: int, max_stage_steps: int,
                   num_candidates: int = 10, trial_fraction: float = 0.1,
                   min_trial_steps: int = 3) -> list[AutoLRSStage]:
    r"""The stages of an AutoLRS run that spends exactly ``total_steps`` steps, trials included.

    As in the paper and the authors' code, stage ``i`` trains ``τ_i`` steps after
    ``num_candidates`` trials of ``τ'_i = trial_fraction · τ_i`` steps; ``τ`` starts at
    ``first_stage_steps`` and doubles after each stage until it reaches ``max_stage_steps``
    (``τ_max``). The budget counts every trial step (the paper's accounting: a trial costs what a
    training step costs). The last stage is shrunk to the budget left; when its trials would be
    shorter than ``min_trial_steps``, it has no search and trains the rest at the previous
    stage's learning rate.

    .. math::

      \tau_{i+1} = \min(2\tau_i, \tau_{\max}), \qquad \tau'_i = \text{trial\_fraction}\cdot\tau_i,
      \qquad \text{cost}_i = k\,\tau'_i + \tau_i

    Args:
      total_steps: the run's budget in steps, trials included.
      first_stage_steps: ``τ`` of the first stage.
      max_stage_steps: ``τ_max`` (``>= first_stage_steps``).
      num_candidates: ``k``, trials per stage (the paper's 10).
      trial_fraction: ``τ'/τ`` (the paper's 0.1).
      min_trial_steps: the shortest trial worth fitting (at least 3: the model's parameters).

    Returns:
      The stages, whose costs sum to ``total_steps``.

    Raises:
      ValueError: a non-positive or non-integral count, ``trial_fraction`` outside ``(0, 1]``,
        ``max_stage_steps < first_stage_steps``, a budget too small for the first stage's trials.

    Example:
      >>> import optaxsched as oxs
      >>> [(s.trial_steps, s.train_steps) for s in oxs.autolrs_stages(
      ...     700, first_stage_steps=100, max_stage_steps=200, num_candidates=5)]
      [(10, 100), (20, 200), (16, 170)]

    References:
      Jin et al., `AutoLRS: Automatic Learning-Rate Schedule by Bayesian Optimization on the Fly
      <https://arxiv.org/abs/2105.10762>`_, ICLR 2021.
    """
    where = "autolrs_stages"
    for name, value, minimum in (("total_steps", total_steps, 1),
                                 ("first_stage_steps", first_stage_steps, 1),
                                 ("max_stage_steps", max_stage_steps, 1),
                                 ("num_candidates", num_candidates, 1),
                                 ("min_trial_steps", min_trial_steps, 3)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
            fail(where, name, f"an integer >= {minimum}", value)
    if isinstance(trial_fraction, bool) or not isinstance(trial_fraction, numbers.Real) or \
            not 0 < trial_fraction <= 1:
        fail(where, "trial_fraction", "in (0, 1]", trial_fraction)
    if max_stage_steps < first_stage_steps:
        fail(where, "max_stage_steps", f">= first_stage_steps ({first_stage_steps})",
             max_stage_steps)
    if round(trial_fraction * first_stage_steps) < min_trial_steps:
        fail(where, "first_stage_steps", f"large enough for trials of min_trial_steps "
             f"({min_trial_steps}) steps at trial_fraction {trial_fraction}", first_stage_steps)
    first_cost = num_candidates * round(trial_fraction * first_stage_steps) + first_stage_steps
    if total_steps < first_cost:
        fail(where, "total_steps", f"at least the first stage's cost ({first_cost} steps: "
             f"{num_candidates} trials of {round(trial_fraction * first_stage_steps)} + "
             f"{first_stage_steps})", total_steps)
    stages: list[AutoLRSStage] = []
    spent, tau = 0, int(first_stage_steps)
    while spent < total_steps:
        left = total_steps - spent
        trial = round(trial_fraction * tau)
        if num_candidates * trial + tau > left:  # the last stage: shrink it to the budget
            tau = int(left / (1 + num_candidates * trial_fraction))
            trial = int(trial_fraction * tau)
            if trial < min_trial_steps:
                stages.append(AutoLRSStage(len(stages), spent, 0, 0, left))
                break
            tau = left - num_candidates * trial
        stage = AutoLRSStage(len(stages), spent, int(num_candidates), int(trial), int(tau))
        stages.append(stage)
        spent += stage.cost
        tau = min(2 * tau, int(max_stage_steps))
    return stages
