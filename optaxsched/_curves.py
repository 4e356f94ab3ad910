"""Validated learning-rate and loss curves: :class:`LossCurve` and its checks (private).

The log reader (:mod:`optaxsched._io`) returns a :class:`LossCurve` and the forecast
(:mod:`optaxsched._forecast`) fits it; both import it from here, below them, so that the reader
does not depend on the forecast (imports flow downward only, :ref:`design-layout`). The checks of
learning-rate arrays and the schedule sampler, :func:`sample_schedule`, live here with it because
the container needs them; the forecast, the plots and the command line use them too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from optaxsched import _checks

__all__ = ["LossCurve", "sample_schedule"]

# A schedule given as ``lrs`` is sampled at every step up to the last observed one; beyond this
# many steps that is a mistake (a step in tokens, a corrupt log), not a run to evaluate.
MAX_SAMPLED_STEPS = 100_000_000
# The least a loss may be: the smallest normal float64 (subnormal ones: see check_curve).
_FLOAT64_TINY = float(np.finfo(np.float64).tiny)


def sample_schedule(schedule: Callable, n: int) -> np.ndarray:
    """A schedule at counts ``0 .. n - 1`` as float64, in one vectorised call when it allows it.

    The one sampler of the package (the forecast's areas, ``optaxsched.plot``, the command
    line); ``n`` is checked by the caller. A schedule that branches in Python on the count cannot
    take an array of counts: it is then evaluated one count at a time.
    """
    counts = np.arange(n, dtype=np.int32 if n < 2**31 else np.int64)
    try:
        values = np.asarray(schedule(counts), dtype=np.float64)
    except (TypeError, ValueError):  # Python branching on the count: not vectorisable.
        values = None
    if values is None or values.shape != counts.shape:
        values = np.array([float(schedule(int(c))) for c in counts], dtype=np.float64)
    return values


def as_vector(where: str, name: str, value, allowed: str) -> np.ndarray:
    """``value`` as a 1-D float64 array (no other checks), or the standard error."""
    if isinstance(value, (str, bytes, Mapping)) or callable(value):
        _checks.fail(where, name, allowed, value)
    array = _checks.real_float64(where, name, value, allowed, short(value))
    if array.ndim != 1:
        _checks.fail(where, name, allowed, short(value))
    return array


def short(value) -> Any:
    """A value fit for an error message (large arrays are summarised by their shape)."""
    try:
        array = np.asarray(value)
    except Exception:  # pragma: no cover - anything np.asarray refuses is shown as it is
        return value
    if array.size > 8:
        return f"<array of shape {array.shape}>"
    return value


def fail_entry(where: str, name: str, allowed: str, value, index: int) -> None:
    raise ValueError(f"{where}: {name} must be {allowed}, got {value!r} at index {index}.")


def _check_lrs(where: str, name: str, lrs: np.ndarray) -> np.ndarray:
    allowed = "finite and non-negative"
    bad = np.flatnonzero(~np.isfinite(lrs) | (lrs < 0))
    if bad.size:
        fail_entry(where, name, allowed, float(lrs[bad[0]]), int(bad[0]))
    return lrs


def learning_rates(where: str, name: str, schedule_or_lrs, total_steps) -> np.ndarray:
    """A schedule sampled at ``0 .. total_steps - 1``, or a validated 1-D array of rates."""
    if callable(schedule_or_lrs):
        if total_steps is None:
            raise ValueError(f"{where}: total_steps is required when {name} is a schedule.")
        # The schedule is sampled at every step: beyond 10^8 that is a mistake (tokens given as
        # steps), not a forecast; refused here rather than as a MemoryError.
        total = _checks.check_int(where, "total_steps", total_steps, minimum=1,
                                  maximum=MAX_SAMPLED_STEPS)
        lrs = sample_schedule(schedule_or_lrs, total)
        return _check_lrs(where, f"{name} (sampled at counts 0..{total - 1})", lrs)
    lrs = as_vector(where, name, schedule_or_lrs,
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



def _check_step_values(where: str, name: str, steps) -> np.ndarray:
    """``steps`` as a 1-D array of finite, non-negative integers (the standard errors if not)."""
    raw = as_vector(where, name, steps, "a 1-D array of integer steps")
    bad = np.flatnonzero(~np.isfinite(raw) | (raw != np.round(raw)) | (raw < 0))
    if bad.size:
        fail_entry(where, name, "integers >= 0 (finite)", raw[bad[0]].item(),
                   int(bad[0]))
    return raw


def check_curve(where: str, label: str, lrs, losses, steps):
    """Validated ``(lrs, losses, steps)`` arrays for one run; ``label`` prefixes argument names."""
    if steps is not None:  # validated before anything uses them (a schedule is sampled up to them)
        _check_step_values(where, f"{label}steps", steps)
    if callable(lrs):
        if steps is None:
            n = len(losses) if hasattr(losses, "__len__") and np.ndim(losses) == 1 else 0
        else:
            step_array = as_vector(where, f"{label}steps", steps, "a 1-D array of integer steps")
            n = int(np.max(step_array)) + 1 if step_array.size else 0
            if n > MAX_SAMPLED_STEPS:
                fail_entry(where, f"{label}steps", f"at most {MAX_SAMPLED_STEPS - 1} when lrs is "
                           f"a schedule (it is sampled at every step up to the last one)",
                           int(step_array.max()), int(np.argmax(step_array)))
        if n < 1:
            _checks.fail(where, f"{label}losses", "a non-empty 1-D array of losses", losses)
        lrs = learning_rates(where, f"{label}lrs", lrs, n)
    else:
        lrs = learning_rates(where, f"{label}lrs", lrs, None)
    losses = as_vector(where, f"{label}losses", losses, "a 1-D array of losses")
    if losses.size == 0:
        _checks.fail(where, f"{label}losses", "a non-empty 1-D array of losses", losses)
    # A subnormal loss is refused too: the fit works on log-losses and keeps its parameters
    # positive normal float64 numbers, so a law fitted to losses below the smallest normal one
    # (2.2e-308) had L0 clamped above the data, and no longer described it.
    bad = np.flatnonzero(~np.isfinite(losses) | (losses < _FLOAT64_TINY))
    if bad.size:
        fail_entry(where, f"{label}losses", f"finite and positive, at least float64's smallest "
                   f"normal number {_FLOAT64_TINY:.7g}", float(losses[bad[0]]), int(bad[0]))
    if steps is None:
        if losses.size != lrs.size:
            raise ValueError(
                f"{where}: {label}losses must have one entry per learning rate ({lrs.size}) "
                f"when no steps are given, got {losses.size}.")
        step_array = np.arange(lrs.size, dtype=np.int64)
    else:
        raw = as_vector(where, f"{label}steps", steps, "a 1-D array of integer steps")
        if raw.size != losses.size:
            raise ValueError(f"{where}: {label}steps must have one entry per loss "
                             f"({losses.size}), got {raw.size}.")
        bad = np.flatnonzero(~np.isfinite(raw) | (raw != np.round(raw)) | (raw < 0)
                             | (raw > lrs.size - 1))
        if bad.size:
            fail_entry(where, f"{label}steps", f"integers in [0, {lrs.size - 1}] (indices into "
                       "the learning rates)", raw[bad[0]].item(), int(bad[0]))
        step_array = raw.astype(np.int64)
        bad = np.flatnonzero(np.diff(step_array) <= 0)
        if bad.size:
            fail_entry(where, f"{label}steps", "strictly increasing",
                       int(step_array[bad[0] + 1]), int(bad[0] + 1))
    lrs, losses, step_array = lrs.copy(), losses.copy(), step_array.copy()  # never the caller's
    for array in (lrs, losses, step_array):
        array.setflags(write=False)
    return lrs, losses, step_array


@dataclasses.dataclass(frozen=True, eq=False)
class LossCurve:
    """One training run: its learning rate at every step and the losses observed along it.

    ``lrs[k]`` is the learning rate of the optax count ``k``; ``losses[i]`` was observed after
    step ``steps[i]`` (the convention of :func:`optaxsched.annealing_areas`). Losses may be known
    at every step (``steps=None``: then ``len(losses) == len(lrs)``) or at a subset (evaluation
    every few hundred steps), while the learning rate must be known at every step because the
    areas accumulate it. Arrays are validated and stored read-only as float64 / int64.

    Args:
      lrs: 1-D array of finite, non-negative learning rates, one per step (or an optax
        schedule, sampled at counts ``0 .. n − 1`` with ``n = len(losses)`` or
        ``max(steps) + 1``).
      losses: 1-D array of finite, positive losses, each at least the smallest normal float64
        (about 2.2e-308).
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
        lrs, losses, steps = check_curve("LossCurve", "", self.lrs, self.losses, self.steps)
        object.__setattr__(self, "lrs", lrs)
        object.__setattr__(self, "losses", losses)
        object.__setattr__(self, "steps", steps)

    def __repr__(self) -> str:
        return (f"LossCurve(name={self.name!r}, steps={self.lrs.size}, observed={self.losses.size}"
                f", final_loss={float(self.losses[-1]):.6g})")
