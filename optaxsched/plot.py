"""Matplotlib pictures of schedules, gradient-norm logs and loss forecasts.

matplotlib is an optional extra (``pip install 'optaxsched[plot]'``); importing this module works
without it, and each function raises an ``ImportError`` that says how to install it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from optaxsched import _checks
from optaxsched._types import RefineKind

__all__ = ["schedules", "sample", "refinement", "forecast", "MAX_SAMPLES"]

# The most counts a picture samples a schedule at (one float64 each: 800 MB); a longer horizon is
# a mistake (a step count in tokens) rather than a picture anyone can look at.
MAX_SAMPLES = 100_000_000


def _check_samples(where: str, total_steps) -> int:
    """A positive number of steps to sample, at most :data:`MAX_SAMPLES`."""
    total_steps = _checks.check_int(where, "total_steps", total_steps, minimum=1)
    if total_steps > MAX_SAMPLES:
        _checks.fail(where, "total_steps", f"at most {MAX_SAMPLES} (the schedule is sampled at "
                     "every step)", total_steps)
    return total_steps


def _pyplot():
    """Imports ``matplotlib.pyplot`` with a headless backend, or explains how to install it."""
    try:
        import matplotlib
    except ImportError as err:  # pragma: no cover - exercised by a test that hides matplotlib
        raise ImportError(
            "optaxsched.plot needs matplotlib: pip install 'optaxsched[plot]' "
            "(or pip install matplotlib).") from err
    if matplotlib.get_backend().lower() not in ("agg", "pdf", "svg", "ps", "cairo"):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def sample(schedule: Callable, total_steps: int) -> np.ndarray:
    """Evaluates a schedule at counts ``0`` to ``total_steps`` (inclusive) in one vectorised call.

    Args:
      schedule: any optax schedule (a function of the count).
      total_steps: the last count to evaluate.

    Returns:
      A float64 NumPy array of ``total_steps + 1`` values.
    """
    from optaxsched._curves import sample_schedule  # the package's one sampler

    return sample_schedule(schedule, _check_samples("sample", total_steps) + 1)


def _finish(fig, path):
    if path is not None:
        fig.savefig(path, dpi=120, bbox_inches="tight")
    return fig


def schedules(named: Mapping[str, Callable], total_steps: int, path: str | None = None,
              log_y: bool = False, title: str | None = None, ax=None):
    """Plots several schedules against the step count on one set of axes.

    Args:
      named: ``{label: schedule}``.
      total_steps: how many steps to draw (counts ``0 .. total_steps``).
      path: where to save the figure (PNG, PDF, SVG by extension); ``None`` saves nothing.
      log_y: use a logarithmic learning-rate axis.
      title: an optional title.
      ax: draw into these matplotlib axes instead of a new figure.

    Returns:
      The matplotlib ``Figure``.

    Example:
      >>> import optax, optaxsched.plot as oplot
      >>> fig = oplot.schedules({"cosine": optax.cosine_decay_schedule(1e-3, 1000)}, 1000)
    """
    if not isinstance(named, Mapping) or not named:
        _checks.fail("plot.schedules", "named", "a non-empty mapping {label: schedule}", named)
    total_steps = _check_samples("plot.schedules", total_steps)
    plt = _pyplot()
    if ax is None:
        fig, ax = plt.subplots(figsize=(7.5, 4.2))
    else:
        fig = ax.figure
    steps = np.arange(total_steps + 1)
    for label, schedule in named.items():
        ax.plot(steps, sample(schedule, total_steps), label=label, linewidth=1.6)
    ax.set_xlabel("step")
    ax.set_ylabel("learning rate")
    if log_y:
        ax.set_yscale("log")
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", ncol=2 if len(named) > 5 else 1)
    return _finish(fig, path)


def refinement(grad_norms, kind: RefineKind | None = None, smoothing: float = 0.1,
               peak_value: float = 1.0, path: str | None = None, title: str | None = None):
    """Plots a gradient-norm log, its smoothed version and the refined schedule it gives.

    Top panel: the raw norms and the median-smoothed norms Ĝ (``optaxsched.smooth_norms``);
    bottom panel: ``peak_value · optaxsched.refine(grad_norms, kind, smoothing)`` against the
    linear decay from the same peak (what constant norms would give).

    Args:
      grad_norms: 1-D sequence of gradient norms, one per step, or a mapping from norm names as
        ``optaxsched.grad_norm_history`` returns (see ``optaxsched.refine``).
      kind: ``'sgd'`` (ℓ2 norms, SGD-like optimizers) or ``'adam'`` (ℓ1 norms, Adam family);
        required unless the mapping holds only one of ℓ2 and ℓ1 (see ``optaxsched.refine``).
      smoothing: relative median-filter width in [0, 1].
      peak_value: the peak learning rate the multipliers are scaled to.
      path: where to save the figure (PNG, PDF, SVG by extension); ``None`` saves nothing.
      title: an optional title.

    Returns:
      The matplotlib ``Figure``.

    Example:
      >>> import numpy as np, optaxsched.plot as oplot
      >>> fig = oplot.refinement(1.0 + np.exp(-np.arange(500) / 50.0), kind="sgd",
      ...                        peak_value=3e-4)
    """
    from optaxsched import _refinement

    where = "plot.refinement"
    peak_value = _checks.check_float(where, "peak_value", peak_value, minimum=0.0,
                                     strict_min=True)
    grad_norms, kind = _refinement.select_norms(where, grad_norms, kind)
    smoothed = _refinement.smooth_norms(grad_norms, smoothing=smoothing)  # validates
    refined = peak_value * _refinement.refine(grad_norms, kind=kind, smoothing=smoothing)
    raw = np.asarray(grad_norms, dtype=np.float64)
    plt = _pyplot()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7.5, 6.0), sharex=True)
    steps = np.arange(raw.size)
    top.plot(steps, raw, color="0.6", linewidth=0.6, alpha=0.7, label="gradient norm")
    top.plot(steps, smoothed, color="C0", linewidth=1.8, label=f"median-smoothed ({smoothing:g})")
    finite = raw[np.isfinite(raw) & (raw > 0)]
    if finite.size and finite.max() / finite.min() > 100.0:
        top.set_yscale("log")
    top.set_ylabel("ℓ1 norm" if kind == "adam" else "ℓ2 norm")
    top.grid(alpha=0.3)
    top.legend(fontsize="small")
    last = max(raw.size - 1, 1)
    bottom.plot(steps, peak_value * (1.0 - steps / last), color="0.5", linestyle="--",
                linewidth=1.2, label="linear decay")
    bottom.plot(steps, refined, color="C3", linewidth=1.8, label=f"refined ({kind})")
    bottom.set_xlabel("step")
    bottom.set_ylabel("learning rate")
    bottom.grid(alpha=0.3)
    bottom.legend(fontsize="small")
    if title:
        top.set_title(title)
    fig.tight_layout()
    return _finish(fig, path)


def forecast(law, schedules: Mapping | None = None, total_steps: int | None = None,
             observed: Mapping | None = None, path: str | None = None,
             title: str | None = None, warmup_steps: int | None = None, start_step: int = 0):
    """Plots observed loss curves against the curves a fitted annealing law predicts.

    Top panel: loss against step. Each observed run is drawn as a thin line (dots when it was
    logged at fewer than 50 steps) with the law's prediction for its own learning rates as a
    dashed line of the same colour; each extra schedule gets a predicted curve only. The
    y-range is set by the observed losses and the predictions after the first 5% of the run
    (or after ``start_step``), so that the law's steep start does not squash the plot. Bottom
    panel: the learning rates.
    The prediction is :meth:`optaxsched.AnnealingLaw.predict`:
    ``L0 + A·S1^(−α) − C·S2`` (NaN, so not drawn, during the warmup).

    Args:
      law: an :class:`optaxsched.AnnealingLaw`.
      schedules: ``{label: schedule or 1-D array of learning rates}`` to predict.
      total_steps: run length of the schedules in ``schedules`` (required for schedules).
      observed: ``{label: LossCurve}`` of observed runs (see ``optaxsched.load_loss_curve``);
        a label also present in ``schedules`` is predicted from that schedule instead of the
        run's own learning rates.
      path: where to save the figure (PNG, PDF, SVG by extension); ``None`` saves nothing.
      title: an optional title.
      warmup_steps: warmup length of the predicted schedules (default: the law's).
      start_step: draw from this step on (a zoom on the end of the runs), ≥ 0.

    Returns:
      The matplotlib ``Figure``.

    Example:
      >>> import optax, optaxsched as oxs, optaxsched.plot as oplot
      >>> law = oxs.AnnealingLaw(L0=2.8, A=0.4, alpha=0.5, C=0.3)
      >>> fig = oplot.forecast(law, {"wsd": oxs.wsd(1e-3, 5000)}, total_steps=5000)
    """
    from optaxsched._curves import LossCurve
    from optaxsched._forecast.law import AnnealingLaw

    where = "plot.forecast"
    if not isinstance(law, AnnealingLaw):
        _checks.fail(where, "law", "an AnnealingLaw (from optaxsched.fit_annealing_law)", law)
    schedules = {} if schedules is None else schedules
    observed = {} if observed is None else observed
    if not isinstance(schedules, Mapping):
        _checks.fail(where, "schedules", "a mapping {label: schedule or lrs}", schedules)
    if not isinstance(observed, Mapping):
        _checks.fail(where, "observed", "a mapping {label: LossCurve}", observed)
    if not schedules and not observed:
        _checks.fail(where, "schedules", "a non-empty mapping when observed is empty", schedules)
    for label, curve in observed.items():
        if not isinstance(curve, LossCurve):
            _checks.fail(where, f"observed[{label!r}]", "a LossCurve", curve)
    start_step = _checks.check_int(where, "start_step", start_step, minimum=0)
    predicted = {}
    for label, curve in observed.items():
        if label not in schedules:
            predicted[label] = (curve.lrs, law.predict(curve.lrs, warmup_steps=warmup_steps))
    for label, schedule in schedules.items():
        if callable(schedule):
            losses = law.predict(schedule, total_steps, warmup_steps=warmup_steps)
            lrs = sample(schedule, total_steps)[:-1]  # type: ignore[arg-type]
        else:
            losses = law.predict(schedule, warmup_steps=warmup_steps)
            lrs = np.asarray(schedule, dtype=np.float64)
        predicted[label] = (lrs, losses)
    plt = _pyplot()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7.5, 6.4), sharex=True,
                                      gridspec_kw={"height_ratios": [3, 1.3]})
    in_range = []
    for index, (label, (lrs, losses)) in enumerate(predicted.items()):
        color = f"C{index % 10}"
        steps = np.arange(losses.size)
        if label in observed:
            curve = observed[label]
            shown = curve.steps >= start_step
            style = {"marker": "o", "markersize": 3, "linestyle": "none"} \
                if curve.losses.size < 50 else {"linewidth": 0.9, "alpha": 0.6}
            top.plot(curve.steps[shown], curve.losses[shown], color=color,
                     label=f"{label} (observed)", **style)
            warm = law.warmup_steps if warmup_steps is None else warmup_steps
            in_range.append(curve.losses[curve.steps >= max(warm, start_step)])
        top.plot(steps[start_step:], losses[start_step:], color=color, linestyle="--",
                 linewidth=1.6, label=f"{label} (predicted)")
        tail = losses[max(int(0.05 * losses.size), start_step):]
        in_range.append(tail[np.isfinite(tail)])
        bottom.plot(steps[start_step:], lrs[start_step:], color=color, linewidth=1.4,
                    label=label)
    values = np.concatenate([v for v in in_range if v.size]) if in_range else np.zeros(0)
    if values.size:
        low, high = float(values.min()), float(values.max())
        margin = 0.06 * (high - low) if high > low else 0.05 * abs(high) + 1e-12
        top.set_ylim(low - margin, high + margin)
    top.set_ylabel("loss")
    top.grid(alpha=0.3)
    top.legend(fontsize="small", ncol=2)
    top.text(0.99, 0.97, f"L0={law.L0:.4g}  A={law.A:.4g}  α={law.alpha:.4g}  C={law.C:.4g}  "
             f"λ={law.lam:g}", transform=top.transAxes, ha="right", va="top", fontsize="small")
    bottom.set_xlabel("step")
    bottom.set_ylabel("learning rate")
    bottom.grid(alpha=0.3)
    if title:
        top.set_title(title)
    fig.tight_layout()
    return _finish(fig, path)
