"""Fitting the scaling law with learning-rate annealing to observed runs (private).

A run is a :class:`~optaxsched.LossCurve` (:mod:`optaxsched._curves`: learning rates at every
step, losses where observed). The fit minimises a Huber loss on log-losses over
``(L0, A, α, C)``: starting points by variable projection (for a grid of α the law is linear in
``(L0, A, C) ≥ 0``), then optax's L-BFGS from all of them at once (``jax.vmap`` in one ``jit``,
float64). See :func:`fit_annealing_law`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from optaxsched import _checks
from optaxsched._curves import LossCurve, check_curve, short
from optaxsched._forecast.law import DEFAULT_LAM, AnnealingLaw, areas, check_lam, law_values

__all__ = ["fit_annealing_law"]

# The λ values the docs and ``optaxsched forecast fit --lam`` suggest for a profile search
# (``fit_annealing_law(runs, lam=LAM_GRID)``): one fit per value, the best criterion wins.
LAM_GRID: tuple[float, ...] = (0.95, 0.98, 0.99, 0.995, 0.998, 0.999)
# The default Huber threshold δ on log-losses (the paper's robust loss), shown as
# ``huber_delta=0.001`` in the signature.
HUBER_DELTA: float = 1e-3


# Fewest fitted losses (post-warmup, all runs together) for a four-parameter law.
_MIN_POINTS = 8
# Candidate exponents for the starting points (the variable-projection profile).
_ALPHA_GRID = np.geomspace(0.02, 4.0, 48)
# Largest number of L-BFGS starts.
_MAX_STARTS = 32
# Stopping rules of the L-BFGS loop: gradient norm and relative decrease of the objective.
_GTOL = 1e-9
_FTOL = 1e-13

# ---------------------------------------------------------------------------------------------
# Runs: what the fit consumes (each a LossCurve, from optaxsched._curves).


def _is_vector_like(value) -> bool:
    if isinstance(value, (str, bytes, Mapping, LossCurve)) or callable(value):
        return False
    try:
        return np.asarray(value).ndim == 1  # no float cast: complex ones are refused later
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
        _checks.fail(where, label, _RUN_ALLOWED, short(run))
    if not isinstance(name, str):
        _checks.fail(where, f"{label}.name", "a string", name)
    lrs, losses, steps = check_curve(where, f"{label}.", lrs, losses, steps)
    return LossCurve(lrs, losses, steps, name)


def _as_curves(where: str, runs) -> list[LossCurve]:
    if _is_single_run(runs):
        return [_as_curve(where, "runs", runs)]
    if isinstance(runs, (str, bytes, Mapping)) or not isinstance(runs, Sequence) or not runs:
        _checks.fail(where, "runs", "a run (" + _RUN_ALLOWED + ") or a non-empty list of runs",
                     short(runs))
    return [_as_curve(where, f"runs[{i}]", run) for i, run in enumerate(runs)]



# ---------------------------------------------------------------------------------------------
# Fitting: starting points by variable projection, then L-BFGS (optax) vmapped over the starts.


def _nonnegative_least_squares(columns: np.ndarray, target: np.ndarray) -> tuple[np.ndarray,
                                                                                    float]:
    """min ‖columns·β − target‖² with β ≥ 0: ``scipy.optimize.nnls`` on unit-norm columns.

    Returns β and the squared residual norm (its agreement with the enumeration of active sets it
    replaced, and its speed: ``benchmarks/RESULTS.md``, *Library internals*).
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


def fit_annealing_law(runs, lam: float | Sequence[float] = DEFAULT_LAM, warmup_steps: int = 0,
                      *, min_step: int = 0, huber_delta: float = HUBER_DELTA, starts: int = 8,
                      max_iter: int = 500) -> AnnealingLaw:
    r"""Fits the scaling law with learning-rate annealing to one or several runs jointly.

    The law of Tissue et al. gives the loss after step :math:`s` of any schedule
    :math:`\eta_1, \eta_2, \dots`:

    .. math::

        L(s) = L_0 + A \cdot S_1^{-\alpha} - C \cdot S_2, \qquad
        S_1 = \sum_{i=1}^{s} \eta_i, \qquad
        S_2 = \sum_{i=1}^{s} m_i, \quad m_i = \lambda \cdot m_{i-1} + (\eta_{i-1} - \eta_i)

    and :math:`(L_0, A, \alpha, C)` are fitted, as in the paper, by a Huber loss on log-losses
    over every observed loss :math:`L_k` after the warmup (and at or after ``min_step``):

    .. math::

        \min_{L_0, A, \alpha, C}\; \frac{1}{N} \sum_{k}
        \mathrm{Huber}_\delta\big(\log L_k - \log L(k)\big)

    :math:`\lambda` is fixed (a sequence of candidates is a profile search: one fit each, the
    lowest criterion wins). Starting points come from variable projection (for 48 exponents
    :math:`\alpha \in [0.02, 4]` the law is linear in :math:`(L_0, A, C) \ge 0`, solved by
    non-negative least squares); optax's L-BFGS then runs from ``starts`` of them at once
    (``jax.vmap`` in one ``jit``, float64) and the best wins. Points are weighted equally, so a
    run with more logged losses weighs more; when no fitted point has any annealing
    (:math:`S_2 = 0`, constant runs only) :math:`C` is not identifiable and is set to 0. The
    first call in a process compiles the optimiser (fit times: ``benchmarks/RESULTS.md``,
    section *Forecast*). Step and warmup conventions: :func:`optaxsched.annealing_areas`.

    Args:
      runs: one run or a list of runs. A run is a :class:`optaxsched.LossCurve`; a tuple
        ``(lrs, losses)`` with one loss per learning rate; a tuple ``(lrs, steps, losses)``
        with the losses observed at the given steps only; or a mapping with keys ``'lrs'``,
        ``'losses'`` and optionally ``'steps'``, ``'name'``. ``lrs`` may be an optax schedule.
      lam: the momentum decay factor :math:`\lambda`, in (0, 1), or a sequence of candidates,
        e.g. ``(0.95, 0.98, 0.99, 0.995, 0.998, 0.999)``: in runs of a few thousand steps a
        :math:`\lambda` below 0.999 (a memory of ~1000 steps) often fits better.
      warmup_steps: warmup length ``W`` (the same for all runs, below every run's length): the
        rates before it count as :math:`\eta_W` and the losses before it are not fitted.
      min_step: also skip losses observed before this step (the early transient).
      huber_delta: the Huber threshold :math:`\delta` on log-losses, > 0.
      starts: number of L-BFGS starting points, in [1, 32].
      max_iter: most L-BFGS iterations per start.

    Returns:
      An :class:`optaxsched.AnnealingLaw` with the fitted ``L0, A, alpha, C``, plus ``lam``,
      ``warmup_steps``, ``fit_mape``, ``fit_huber``, ``n_points`` and ``n_runs``.

    Raises:
      ValueError: bad arguments, mismatched lengths, non-finite or non-positive losses, fewer
        than 8 fitted points, or a learning rate that is 0 up to a fitted step (:math:`S_1 = 0`).

    Example:
      >>> import optax, optaxsched as oxs
      >>> truth = oxs.AnnealingLaw(L0=2.5, A=0.6, alpha=0.5, C=0.4)
      >>> constant, cosine = optax.constant_schedule(1e-3), optax.cosine_decay_schedule(1e-3, 4000)
      >>> runs = [(s, truth.predict(s, 4000)) for s in (constant, cosine)]
      >>> law = oxs.fit_annealing_law(runs)
      >>> round(law.alpha, 3), round(law.C, 3)
      (0.5, 0.4)

    References:
      Tissue et al., `Scaling Law with Learning Rate Annealing
      <https://arxiv.org/abs/2408.11029>`_, 2024.
    """
    where = "fit_annealing_law"
    if isinstance(lam, (str, bytes)) or not hasattr(lam, "__len__"):
        lams = [check_lam(where, lam)]
    else:
        _checks.check_sequence(where, "lam", lam)
        lams = [check_lam(where, value) for value in lam]  # type: ignore[union-attr]
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
    """The fit for one λ (arguments validated by :func:`fit_annealing_law`)."""
    s1_parts, s2_parts, y_parts = [], [], []
    for curve in curves:
        s1, s2 = areas(curve.lrs, lam, warm)
        keep = curve.steps >= start_step
        s1_parts.append(s1[curve.steps[keep]])
        s2_parts.append(s2[curve.steps[keep]])
        y_parts.append(curve.losses[keep])
    s1 = np.concatenate(s1_parts)
    s2 = np.concatenate(s2_parts)
    y = np.concatenate(y_parts)
    # L0, A and C scale with the losses. Losses far from 1 (below about 1e-50) were fitted
    # badly, silently (MAPE 0.3% for an exact law, 99.9% below 1e-200, where the relative
    # residuals overflow): such losses are fitted as y / 2^shift, an exact scaling, and the
    # coefficients scaled back. Losses within 2^±64 of 1 are fitted as given.
    shift = int(np.round(np.mean(np.log2(y))))
    shift = shift if abs(shift) > 64 else 0
    y = np.ldexp(y, -shift)
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
    best = params[int(np.nanargmin(np.where(np.isfinite(values), values, np.nan)))]
    # The parameters are fitted as logarithms; one driven towards -inf (e.g. an irreducible loss
    # that short runs do not identify) would underflow to 0, which no law accepts: keep it at the
    # smallest positive normal float64 instead, and the largest finite at the other end.
    info = np.finfo(np.float64)
    l0, a, alpha, c = np.exp(np.clip(best, np.log(info.tiny), np.log(info.max)))
    A = float(a) * scale1 ** float(alpha)
    C = float(c) / scale2 if annealing else 0.0
    fitted = law_values(s1, s2, float(l0), A, float(alpha), C)
    residual = np.log(y) - np.log(np.maximum(fitted, 1e-300))
    size = np.abs(residual)
    huber = np.where(size <= delta, 0.5 * residual ** 2, delta * (size - 0.5 * delta))
    if shift:  # back to the losses' own scale (L0 kept a positive normal float64)
        l0 = max(float(np.ldexp(l0, shift)), float(info.tiny))
        A, C = float(np.ldexp(A, shift)), float(np.ldexp(C, shift))
    return AnnealingLaw(L0=float(l0), A=A, alpha=float(alpha), C=C, lam=lam, warmup_steps=warm,
                        fit_mape=float(np.mean(np.abs(fitted - y) / y)),
                        fit_huber=float(np.mean(huber)), n_points=int(y.size),
                        n_runs=len(curves))
