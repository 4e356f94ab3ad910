"""Refined learning-rate schedules from logged gradient norms (Defazio et al., 2023).

The refinement loop crosses a process boundary on purpose:

1. Run 1 (for example with linear decay) places :func:`record_grad_norms` in its optimizer chain;
   the gradient norm of every step lands in fixed-size buffers of the optimizer state.
2. The norms leave the run, either read from the state with :func:`grad_norm_history` or written
   per step to ``metrics.jsonl`` by the trainer (keys ``grad_norm_l2`` / ``grad_norm_l1``) and
   read back with :func:`optaxsched.load_grad_norms` (in :mod:`optaxsched._io`, the one log
   reader).
3. :func:`refine` turns the norms into multipliers that peak at 1 and end at 0 (NumPy only).
4. :func:`refined_schedule` wraps them in an optax schedule for run 2, resampled to its length.

Each step is usable on its own; the console script ``optaxsched refine`` runs steps 2-4.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple, get_args

import jax
import jax.numpy as jnp
import numpy as np
import optax

from optaxsched import _checks, _find_state, _numerics, _reductions
from optaxsched._schedules.tabulated import tabulated
from optaxsched._types import NormName, RefineKind

__all__ = [
    "NORM_NAMES",
    "REFINE_KINDS",
    "RecordGradNormsState",
    "record_grad_norms",
    "grad_norm_history",
    "latest_grad_norms",
    "smooth_norms",
    "refine",
    "refined_schedule",
]

NORM_NAMES: tuple[NormName, ...] = get_args(NormName)
"""Norms :func:`record_grad_norms` can record: Euclidean, sum of absolute values, max absolute."""

REFINE_KINDS: tuple[RefineKind, ...] = get_args(RefineKind)
"""Refinement variants: ``'sgd'`` (ℓ2 norms, w = Ĝ⁻²) and ``'adam'`` (ℓ1 norms, w = Ĝ⁻¹)."""

# The norm each variant refines by, and the optimizers it is for.
_KIND_NORM: dict[str, str] = {"sgd": "l2", "adam": "l1"}
_FAMILY = {"sgd": "SGD-like", "adam": "of the Adam family"}
_SYMBOL = {"l2": "ℓ2", "l1": "ℓ1"}

# The median filter runs on at most this many points; longer logs are first reduced to block
# medians (see `smooth_norms`). 10,000 is the resolution the paper's code smooths at.
_MAX_GRID = 10_000
# Bound on points × window of the filter (the grid it sets for a given smoothing is part of the
# documented result, so it stays although scipy's filter no longer needs the bound for speed).
_MAX_FILTER_WORK = 10_000_000
# Smoothed norms below this fraction of the largest are raised to it (weights stay finite).
_NORM_FLOOR = 1e-6


# ------------------------------------------------------------------------------------------------
# Recording gradient norms inside the optimizer state.
# ------------------------------------------------------------------------------------------------


class RecordGradNormsState(NamedTuple):
    """State of :func:`record_grad_norms`.

    Attributes:
      count: int32 scalar, the number of updates seen so far (saturating at the int32 maximum).
        The norm of update ``i`` (0-based) is stored at index ``i`` while ``i < num_steps``.
      grad_norm_l2: float32 ``[num_steps]`` buffer of global ℓ2 norms, or ``None`` if not asked.
      grad_norm_l1: float32 ``[num_steps]`` buffer of global ℓ1 norms, or ``None``.
      grad_norm_linf: float32 ``[num_steps]`` buffer of global max-abs norms, or ``None``.
    """

    count: jax.Array  # type: ignore[assignment]  # optax's field name; shadows tuple.count
    grad_norm_l2: jax.Array | None
    grad_norm_l1: jax.Array | None
    grad_norm_linf: jax.Array | None


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _as_float32(leaf: jax.Array) -> jax.Array:
    """``leaf`` in float32, a finite float64 entry beyond float32's range saturated at its
    largest value rather than cast to ``inf`` (which recorded a finite gradient's norm as
    ``inf``, the mark of a non-finite one). Leaves of float32 and narrower are cast as is."""
    if not jnp.issubdtype(leaf.dtype, jnp.floating) or jnp.finfo(leaf.dtype).bits <= 32:
        return leaf.astype(jnp.float32)
    return jnp.where(jnp.isfinite(leaf), jnp.clip(leaf, -_FLOAT32_MAX, _FLOAT32_MAX),
                     leaf).astype(jnp.float32)


def _global_norms(tree: Any, names: Sequence[str]) -> dict[str, jax.Array]:
    """Global norms of a pytree, accumulated in float32 whatever the leaves' dtype."""
    # The barrier makes the reductions read the gradients once they exist. Without it XLA (CPU)
    # fuses the gradient's producers (the backward matmuls) into the reductions and computes
    # them twice: measured +55% step time on a 5.8M-parameter MLP instead of about +3%.
    leaves = jax.lax.optimization_barrier(jax.tree.leaves(tree))
    reduce = {"l2": lambda a: jnp.sum(a * a), "l1": jnp.sum,
              "linf": lambda a: jnp.max(a, initial=0.0)}
    combine = {"l2": jnp.add, "l1": jnp.add, "linf": jnp.maximum}
    one_pass = {"l1", "linf"} <= set(names)
    totals = {name: jnp.zeros((), jnp.float32) for name in names}
    for leaf in leaves:
        a = jnp.abs(_as_float32(leaf))
        if not one_pass:
            # Separate reductions: XLA's CPU backend vectorises them (ℓ2 and ℓ1 of a 16M leaf:
            # 6 ms, against 10 ms for one variadic loop).
            parts: Any = [reduce[name](a) for name in names]
        else:
            # When ℓ1 and ℓ∞ both read |x|, XLA materialised it as a parameter-sized temporary
            # (all three norms of a 16M leaf: 31 ms); one variadic pass needs none (11 ms).
            parts = _reductions.reduce_all([a * a if n == "l2" else a for n in names],
                                           [0.0] * len(names),
                                           ["max" if n == "linf" else "add" for n in names])
        for name, part in zip(names, parts, strict=True):
            totals[name] = combine[name](totals[name], part)
    return _finish_norms(totals, leaves)


def _finish_norms(totals: dict[str, jax.Array], leaves: Sequence[jax.Array]
                  ) -> dict[str, jax.Array]:
    """ℓ2 from its sum of squares, overflow-safe; ℓ1 and ℓ2 saturated at float32's maximum.

    A float32 sum of squares overflows once the ℓ2 norm passes about 1.8e19, and a sum of
    magnitudes can overflow although every entry is finite. Only then (rarely) the largest
    magnitude is reduced and the ℓ2 norm recomputed rescaled by it, under ``lax.cond``; a norm
    whose true value exceeds float32's range, with every entry finite, is recorded as the
    largest float32 (3.4e38). Non-finite entries still give ``inf``/``nan``.
    """
    summed = [n for n in ("l2", "l1") if n in totals]
    if not summed:
        return totals
    overflowed = functools.reduce(jnp.logical_or, [jnp.isposinf(totals[n]) for n in summed])

    def rescaled():
        wide = [_as_float32(leaf) for leaf in leaves]
        # initial=0: an empty leaf (shape (0,)) or an empty tree has no maximum to reduce.
        m = functools.reduce(jnp.maximum, [jnp.max(jnp.abs(x), initial=0.0) for x in wide],
                             jnp.zeros((), jnp.float32))
        finite = jnp.isfinite(m)
        out = {}
        if "l2" in totals:
            safe = jnp.where(finite & (m > 0), m, 1.0)
            s = sum(jnp.sum(jnp.square(x / safe)) for x in wide)
            norm = jnp.where(finite, jnp.minimum(safe * jnp.sqrt(s), _FLOAT32_MAX),
                             jnp.sqrt(totals["l2"]))
            out["l2"] = norm
        if "l1" in totals:
            out["l1"] = jnp.where(finite, jnp.minimum(totals["l1"], _FLOAT32_MAX),
                                  totals["l1"])
        return out

    def cheap():
        out = {}
        if "l2" in totals:
            out["l2"] = jnp.sqrt(totals["l2"])
        if "l1" in totals:
            out["l1"] = totals["l1"]
        return out

    return {**totals, **jax.lax.cond(overflowed, rescaled, cheap)}


def record_grad_norms(num_steps: int, norms: Sequence[str] | str = ("l2", "l1")
                      ) -> optax.GradientTransformationExtraArgs:
    r"""Passes updates through unchanged and records their global norms, one entry per step.

    At the update with optax count ``i`` (0 for the first update) the global norms of the
    incoming updates :math:`g` over the whole pytree,

    .. math::

        \|g\|_2 = \Big(\sum_j g_j^2\Big)^{1/2}, \qquad
        \|g\|_1 = \sum_j |g_j|, \qquad
        \|g\|_\infty = \max_j |g_j|,

    are written at index ``i`` of fixed-size float32 buffers in the state (fields
    ``grad_norm_l2``, ``grad_norm_l1``, ``grad_norm_linf``; a norm that was not requested is
    ``None``). They are the norms the refinement of Defazio et al. weighs the steps by: ℓ2 norms
    of the raw gradients for SGD, ℓ1 norms for Adam. Place the transform first in a chain to log
    the raw gradients, after ``optax.scale_by_adam()`` to log the update directions.

    Policies:

    * **After ``num_steps`` updates** the buffers are full and nothing more is written (the
      first steps are kept: the warmup lives at the start); ``count`` keeps advancing, and
      :func:`optaxsched.grad_norm_history` warns about the dropped steps.
    * **Non-finite updates** are recorded as they are; :func:`optaxsched.refine` drops such
      entries with a warning. The updates themselves are never modified.
    * **Finite updates of any size** are recorded finite (float32 accumulation, also for 16-bit
      updates): where the sum of squares overflows (ℓ2 beyond about 1.8e19) it is recomputed
      rescaled on those steps only, and a norm beyond float32's range is recorded as 3.4e38.
    * **Complex leaves** are refused by ``init`` (and ``update``), naming the leaf: their norm
      was that of the real part alone. Integer leaves are read as they are.
    * **optax.MultiSteps**: inside it, one norm per real step (of the accumulated gradient).
    * **Sharded parameters**: true global norms; the buffers are small, replicated arrays.
    * **Cost**: one extra read of the updates per recorded norm (record one norm to halve it;
      measured overheads: ``benchmarks/RESULTS.md``, *Step overhead of record_grad_norms*).
      The write is in place when the state is donated (``jax.jit(step, donate_argnums=...)``).

    Args:
      num_steps: length of the buffers: the number of steps to record (a positive integer).
      norms: which norms to record, a non-empty subset of :data:`NORM_NAMES` (``'l2'``,
        ``'l1'``, ``'linf'``); a single name may be given as a string.

    Returns:
      An ``optax.GradientTransformationExtraArgs`` whose state is a
      :class:`RecordGradNormsState`.

    Example:
      >>> import jax.numpy as jnp, optax, optaxsched as oxs
      >>> tx = optax.chain(oxs.record_grad_norms(1000), optax.adam(1e-3))
      >>> params = {"w": jnp.ones(3)}
      >>> state = tx.init(params)
      >>> _, state = tx.update({"w": jnp.array([3.0, 0.0, -4.0])}, state, params)
      >>> oxs.grad_norm_history(state)["l2"]
      array([5.], dtype=float32)

    References:
      Defazio, Cutkosky, Mehta, Mishchenko, `When, Why and How Much? Adaptive Learning Rate
      Scheduling by Refinement <https://arxiv.org/abs/2310.07831>`_, 2023.
    """
    where = "record_grad_norms"
    num_steps = _checks.check_int(where, "num_steps", num_steps, minimum=1,
                                  maximum=_numerics.INT32_MAX)
    if isinstance(norms, str):
        norms = (norms,)
    _checks.check_sequence(where, "norms", norms, min_length=1)
    for name in norms:
        _checks.check_choice(where, "norms", name, NORM_NAMES)
    if len(set(norms)) != len(norms):
        _checks.fail(where, "norms", "a sequence of distinct norm names", tuple(norms))
    names = tuple(n for n in NORM_NAMES if n in norms)

    def init_fn(params):
        # The norms are of the updates, which have the parameters' structure and dtypes: a
        # complex leaf was cast to float32, recording the norm of its real part alone. An
        # integer leaf's norm is well defined (and frozen integer leaves are common), so only
        # complex ones are refused.
        _checks.require_float_leaves(where, params, allow_integers=True)
        buffers = {n: (jnp.zeros((num_steps,), jnp.float32) if n in names else None)
                   for n in NORM_NAMES}
        return RecordGradNormsState(count=jnp.zeros((), jnp.int32),
                                    grad_norm_l2=buffers["l2"], grad_norm_l1=buffers["l1"],
                                    grad_norm_linf=buffers["linf"])

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        # The same check on the updates themselves (their dtypes are static: it costs nothing
        # under jit), for updates made complex after init by an earlier transform.
        _checks.require_float_leaves(where, updates, "updates", allow_integers=True)
        values = _global_norms(updates, names)
        in_range = state.count < num_steps
        position = jnp.minimum(state.count, num_steps - 1)
        fields = {}
        for name in names:
            buffer = getattr(state, f"grad_norm_{name}")
            # Past the end, write the last entry back (a no-op) instead of overwriting it.
            value = jnp.where(in_range, values[name], buffer[num_steps - 1])
            # .at[].set rather than lax.dynamic_update_slice: the latter is rejected on meshes
            # with explicit axes (jax.make_mesh's default) used without jax.set_mesh.
            fields[f"grad_norm_{name}"] = buffer.at[position].set(value.astype(buffer.dtype))
        return updates, state._replace(count=optax.safe_increment(state.count), **fields)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def _find_recorder(opt_state: Any, where: str, which: int | None) -> RecordGradNormsState:
    """The unique (or the ``which``-th) RecordGradNormsState inside an optimizer state.

    Found by its type, wherever it sits; ``which`` chooses one of several recorders (two in one
    chain, e.g. before and after clipping)."""
    return _find_state.find_state(where, opt_state, RecordGradNormsState,
                                  "put optaxsched.record_grad_norms(...) in the optimizer", which,
                                  choosable=True)


def _recorded_names(state: RecordGradNormsState) -> tuple[str, ...]:
    return tuple(n for n in NORM_NAMES if getattr(state, f"grad_norm_{n}") is not None)


def grad_norm_history(opt_state: Any, norm: NormName | None = None, which: int | None = None
                      ) -> dict[str, np.ndarray] | np.ndarray:
    """Reads the recorded gradient norms out of an optimizer state, cut to the steps recorded.

    Finds the :class:`RecordGradNormsState` anywhere inside ``opt_state`` (a chain,
    ``MultiSteps``, ``inject_hyperparams``, a Flax ``TrainState``...), the way
    ``optax.tree.get`` finds a field, and returns host NumPy copies of its buffers, cut to
    ``min(count, num_steps)`` entries. Entry ``i`` is the norm at optax count ``i``.

    A state batched with ``vmap`` (leading axes on ``count`` and the buffers, e.g. one run per
    seed) is returned with the same leading axes; its counts must all be equal.

    Args:
      opt_state: an optimizer state (on device or host) that contains one recorder, or several
        and ``which``.
      norm: return only this norm (one of those recorded) as an array; ``None`` returns a dict.
      which: with several recorders in the state, the index of the one to read, in pytree
        flattening order (the error message lists them).

    Returns:
      ``{name: float32 array}`` for every recorded norm (``'l2'``, ``'l1'``, ``'linf'``), or
      the array of ``norm``. Warns (``RuntimeWarning``) when steps were dropped because the
      buffers were full.

    Example:
      >>> import jax.numpy as jnp, optax, optaxsched as oxs
      >>> tx = optax.chain(oxs.record_grad_norms(100), optax.sgd(0.1))
      >>> opt_state = tx.init(jnp.zeros(2))
      >>> for g in ([3.0, 4.0], [0.0, 2.0]):
      ...     _, opt_state = tx.update(jnp.array(g), opt_state)
      >>> norms = oxs.grad_norm_history(opt_state)
      >>> norms["l2"], norms["l1"]
      (array([5., 2.], dtype=float32), array([7., 2.], dtype=float32))
    """
    where = "grad_norm_history"
    state = _find_recorder(opt_state, where, which)
    names = _recorded_names(state)
    if norm is not None:
        _checks.check_choice(where, "norm", norm, names)
    count = np.asarray(jax.device_get(state.count)).astype(np.int64)
    if count.size == 0 or np.any(count != count.flat[0]):
        _checks.fail(where, "opt_state", "a state whose (batched) counts are all equal",
                     f"counts {count.tolist()}")
    count = int(count.flat[0])  # type: ignore[assignment]
    buffers = {n: np.asarray(jax.device_get(getattr(state, f"grad_norm_{n}"))) for n in names}
    num_steps = next(iter(buffers.values())).shape[-1]
    if count > num_steps:
        warnings.warn(
            f"{where}: the buffers hold the first {num_steps} steps; the last "
            f"{count - num_steps} steps were not recorded (make record_grad_norms(num_steps) "
            f"as long as the run).", RuntimeWarning, stacklevel=2)
    recorded = min(count, num_steps)
    history = {n: b[..., :recorded].copy() for n, b in buffers.items()}
    return history[norm] if norm is not None else history


def latest_grad_norms(opt_state: Any, which: int | None = None) -> dict[str, jax.Array]:
    """The norms recorded at the most recent update; works inside ``jit`` (e.g. for logging).

    Args:
      opt_state: an optimizer state containing a :class:`RecordGradNormsState` (see
        :func:`grad_norm_history` for ``which``). Not batched (``vmap`` this function instead).
      which: index of the recorder when there are several.

    Returns:
      ``{name: float32 scalar}`` for every recorded norm; ``nan`` before the first update and
      once the buffers are full (the norms of those steps were not recorded).

    Example:
      >>> import jax.numpy as jnp, optax, optaxsched as oxs
      >>> tx = optax.chain(oxs.record_grad_norms(100), optax.sgd(0.1))
      >>> opt_state = tx.init(jnp.zeros(2))
      >>> _, opt_state = tx.update(jnp.array([3.0, -4.0]), opt_state)
      >>> logs = oxs.latest_grad_norms(opt_state)  # e.g. in the jitted train step
      >>> {"grad_norm_l2": float(logs["l2"]), "grad_norm_l1": float(logs["l1"])}
      {'grad_norm_l2': 5.0, 'grad_norm_l1': 7.0}
    """
    state = _find_recorder(opt_state, "latest_grad_norms", which)
    out = {}
    for name in _recorded_names(state):
        buffer = getattr(state, f"grad_norm_{name}")
        size = buffer.shape[-1]
        last = state.count - 1
        valid = (last >= 0) & (last < size)
        out[name] = jnp.where(valid, buffer[jnp.clip(last, 0, size - 1)], jnp.nan)
    return out


# ------------------------------------------------------------------------------------------------
# Smoothing and the closed-form refinement (NumPy, float64, on the host).
# ------------------------------------------------------------------------------------------------


def _window(length: int, smoothing: float) -> int:
    """Odd median-window width for a relative width ``smoothing`` of ``length`` points."""
    return 2 * int(math.floor(smoothing * length / 2.0)) + 1


def _min_length(smoothing: float) -> float:
    """The shortest log whose median window spans at least 3 points (inf: none is)."""
    if 2.0 / smoothing > 1e300:  # a subnormal smoothing: no log is long enough
        return math.inf
    n = max(2, int(math.ceil(2.0 / smoothing)) - 1)
    for _ in range(8):  # rounding of smoothing * n: a step or two past 2 / smoothing
        if _window(n, smoothing) >= 3:
            return n
        n += 1
    # A tiny smoothing: adding 1 no longer changes smoothing * n in float64.
    return int(math.ceil(2.0 / smoothing * (1.0 + 2.0**-40)))


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _as_norms(where: str, grad_norms: Any, smoothing: float) -> np.ndarray:
    """Validates a norm log; returns a float64 copy with non-finite entries interpolated."""
    allowed = "a 1-D sequence of non-negative numbers"
    values = _checks.real_float64(where, "grad_norms", grad_norms, allowed,
                                  _short_repr(grad_norms))
    if values.ndim != 1:
        _checks.fail(where, "grad_norms", allowed, f"an array of shape {values.shape}")
    finite = np.isfinite(values)
    n_finite = int(finite.sum())
    if n_finite < 2:
        _checks.fail(where, "grad_norms", "a sequence with at least 2 finite entries",
                     f"{values.size} entries of which {n_finite} finite")
    negative = np.flatnonzero(finite & (values < 0))
    if negative.size:
        i = int(negative[0])
        _checks.fail(where, "grad_norms", "non-negative (it holds norms)",
                     f"{float(values[i])!r} at index {i} ({negative.size} negative entries)")
    if not np.any(values[finite] > 0):
        _checks.fail(where, "grad_norms", "not all zero (the refinement divides by the norms)",
                     f"{n_finite} zeros")
    if n_finite < values.size:
        bad = np.flatnonzero(~finite)
        warnings.warn(
            f"{where}: dropped {bad.size} non-finite entries of grad_norms (the first at index "
            f"{int(bad[0])}) and filled them by linear interpolation between their finite "
            f"neighbours.", RuntimeWarning, stacklevel=3)
        index = np.arange(values.size)
        values[~finite] = np.interp(index[~finite], index[finite], values[finite])
    if smoothing > 0.0 and _window(values.size, smoothing) < 3:
        raise ValueError(
            f"{where}: grad_norms is too short to smooth with smoothing={smoothing!r}: a "
            f"median window of at least 3 steps needs at least {_min_length(smoothing)} "
            f"entries, got {values.size}. Record more steps, increase smoothing, or pass "
            f"smoothing=0 to refine the raw norms.")
    return values


def _median_filter(values: np.ndarray, width: int) -> np.ndarray:
    """Sliding median of odd ``width``, mirror-padded at both ends (``c b | a b c d | c b``).

    ``scipy.ndimage.median_filter`` with ``mode="mirror"`` (its agreement with the sliding-window
    ``np.median`` it replaced, and its speed: ``benchmarks/RESULTS.md``, *Library internals*).
    """
    from scipy import ndimage  # a dependency of jax; imported when a log is smoothed

    if width <= 1:
        return values.copy()
    return ndimage.median_filter(np.asarray(values, dtype=np.float64), size=width, mode="mirror")


def _smooth(values: np.ndarray, smoothing: float) -> np.ndarray:
    """Median-filtered norms (see :func:`smooth_norms`); ``values`` is already validated."""
    n = values.size
    if smoothing == 0.0:
        return values.copy()
    grid = min(_MAX_GRID, int(math.sqrt(_MAX_FILTER_WORK / smoothing)))
    if n <= grid:
        return _median_filter(values, _window(n, smoothing))
    # Block medians (blocks of `size` steps, the last one possibly shorter), filtered on the
    # block grid with the same relative width, interpolated back to every step.
    size = -(-n // grid)
    full = n // size
    medians = np.median(values[:full * size].reshape(full, size), axis=1)
    centers = np.arange(full) * float(size) + (size - 1) / 2.0
    rest = n - full * size
    if rest:
        medians = np.append(medians, np.median(values[full * size:]))
        centers = np.append(centers, full * size + (rest - 1) / 2.0)
    filtered = _median_filter(medians, _window(medians.size, smoothing))
    return np.interp(np.arange(n, dtype=np.float64), centers, filtered)


def smooth_norms(grad_norms: Any, smoothing: float = 0.1) -> np.ndarray:
    """Median-filtered gradient norms Ĝ, as :func:`refine` uses them.

    The filter is a sliding median whose odd width is ``2·floor(smoothing·n/2) + 1`` points for
    a log of ``n`` steps (the paper's code uses a relative width of 0.1). Edges: the series is
    reflected about its first and last entries (``… x2 x1 | x0 x1 x2 …``), so a window near an
    edge is a symmetric window over the nearest real steps. (The paper's code pads the right
    end by reflection and the left end by repeating the first value, which lets a single noisy
    first step set the start of the smoothed curve; reflecting at both ends treats the two ends
    alike.) The paper's code also drops the first and last two points of its wandb exports;
    nothing is dropped here.

    Long logs: the filter runs on at most 10,000 points (fewer for wide windows, so that points ×
    width ≤ 10⁷). A longer log is first reduced to the medians of ``ceil(n / grid)``-step
    blocks, the filter runs on the block medians with the same relative width, and the result is
    interpolated linearly back to every step (held constant before the first and after the last
    block centre); the median of block medians approximates the windowed median of the raw
    steps. Logs up to the grid size are filtered exactly (timings: ``benchmarks/RESULTS.md``,
    *Speed of refine on a 1M-step log*).

    Non-finite entries are dropped and filled by linear interpolation between their finite
    neighbours, with a ``RuntimeWarning``.

    Args:
      grad_norms: 1-D sequence of non-negative gradient norms, one per step (at least 2 finite
        entries, not all zero).
      smoothing: relative window width in [0, 1]; 0 disables smoothing. With ``smoothing > 0``
        the window must span at least 3 steps (``smoothing · n ≥ 2``), else a ``ValueError``.

    Returns:
      A float64 array of the same length.

    Example:
      >>> import optaxsched as oxs
      >>> oxs.smooth_norms([1.0, 1.0, 9.0, 1.0, 1.0], smoothing=0.6)
      array([1., 1., 1., 1., 1.])

    References:
      Defazio, Cutkosky, Mehta, Mishchenko, `When, Why and How Much? Adaptive Learning Rate
      Scheduling by Refinement <https://arxiv.org/abs/2310.07831>`_, 2023 (the smoothing of
      the logged norms before refinement).
    """
    where = "smooth_norms"
    smoothing = _checks.check_fraction(where, "smoothing", smoothing)
    return _smooth(_as_norms(where, grad_norms, smoothing), smoothing)


def _closed_form(smoothed: np.ndarray, kind: str, where: str) -> np.ndarray:
    """η_t ∝ w_t Σ_{p>t} w_p, normalised to peak 1; ``smoothed`` is non-negative."""
    top = smoothed.max()
    if not top > 0:
        raise ValueError(
            f"{where}: the smoothed norms are all zero (more than half of every median window "
            f"is zero); use a smaller smoothing.")
    scaled = smoothed / top
    low = scaled < _NORM_FLOOR
    if np.any(low):
        warnings.warn(
            f"{where}: {int(low.sum())} smoothed norms are below {_NORM_FLOOR:g} of the largest "
            f"(the gradient vanished) and were raised to that floor; refinement degenerates "
            f"when norms collapse: consider linear decay.", RuntimeWarning, stacklevel=3)
        scaled = np.maximum(scaled, _NORM_FLOOR)
    weights = scaled ** -2.0 if kind == "sgd" else 1.0 / scaled
    # Suffix sums Σ_{p ≥ t} w_p, accumulated from the end: the tail has no cancellation, and
    # the last step's multiplier is exactly 0.
    suffix = np.cumsum(weights[::-1])[::-1]
    after = np.zeros_like(weights)
    after[:-1] = suffix[1:]
    eta = weights * after
    return eta / eta.max()


def select_norms(where: str, grad_norms: Any, kind: Any) -> tuple[Any, RefineKind]:
    """The norm log to refine and the variant, ``kind`` inferred from the norms' names if omitted.

    The variant must match the norm (ℓ2 for ``'sgd'``, ℓ1 for ``'adam'``), and the wrong pairing
    silently gives a worse schedule; so ``kind`` has no default. Norms named by
    :func:`grad_norm_history` (a mapping ``{'l2': ..., 'l1': ...}``) say which they are: with only
    one of ℓ2 and ℓ1 the variant follows from it, with both it must be chosen, and an explicit
    ``kind`` must find its norm. A plain array does not say which norm it holds: ``kind`` is
    required, and nothing can check it.

    Raises:
      ValueError: ``kind`` omitted for a plain array or for norms holding both ℓ2 and ℓ1; a
        ``kind`` whose norm is not in the mapping; a mapping with keys that are not norm names
        or without ℓ2 and ℓ1 norms; an unknown ``kind``.
    """
    if kind is not None:
        kind = _checks.check_choice(where, "kind", kind, REFINE_KINDS)
    choose = (f"pass kind='sgd' to refine by the ℓ2 norms (SGD-like optimizers) or kind='adam' "
              f"to refine by the ℓ1 norms (Adam-family optimizers: adam, adamw, spam, ...), e.g. "
              f"{where}(..., kind='adam')")
    if not isinstance(grad_norms, Mapping):
        if kind is None:
            raise ValueError(f"{where}: kind is required when grad_norms is an array, which does "
                             f"not say which norm it holds: {choose}; or pass the norms by name "
                             f"({{'l1': norms}}, as grad_norm_history returns them) to have kind "
                             f"inferred.")
        return grad_norms, kind
    names = list(grad_norms)
    if not names or any(name not in NORM_NAMES for name in names):
        _checks.fail(where, "grad_norms", f"a 1-D sequence of norms or a mapping from norm names "
                     f"{NORM_NAMES} to them (as grad_norm_history returns)",
                     f"a mapping with keys {names}")
    usable = [k for k in REFINE_KINDS if _KIND_NORM[k] in grad_norms]
    if kind is None:
        if len(usable) == 2:
            raise ValueError(f"{where}: grad_norms holds both ℓ2 and ℓ1 norms, so kind cannot "
                             f"be inferred: {choose}.")
        if not usable:
            _checks.fail(where, "grad_norms", "a mapping holding 'l2' or 'l1' norms (the norms "
                         "the refinement weighs steps by)", f"a mapping with keys {names}")
        kind = usable[0]
    elif kind not in usable:
        norm = _KIND_NORM[kind]
        other = "adam" if kind == "sgd" else "sgd"
        instead = (f", or pass kind={other!r} if the optimizer is {_FAMILY[other]}"
                   if other in usable else "")
        raise ValueError(f"{where}: kind={kind!r} refines by the {_SYMBOL[norm]} norms, which "
                         f"grad_norms does not hold (its norms: {names}); record them with "
                         f"record_grad_norms(..., norms={norm!r}){instead}.")
    return grad_norms[_KIND_NORM[kind]], kind


def refine(grad_norms: Any, kind: RefineKind | None = None, smoothing: float = 0.1
           ) -> np.ndarray:
    r"""Refined learning-rate multipliers from a run's gradient norms (peak 1, last step 0).

    The closed form of Defazio et al. for a run of :math:`T` steps, with :math:`\hat G_t` the
    median-smoothed norms (:func:`smooth_norms`):

    .. math::

        w_t = \hat G_t^{-2}\ \ (\text{SGD, } \ell_2 \text{ norms}), \qquad
        w_t = \hat G_t^{-1}\ \ (\text{Adam, } \ell_1 \text{ norms}), \qquad
        \eta_t = \frac{w_t \sum_{p=t+1}^{T} w_p}{\max_{t'} w_{t'} \sum_{p=t'+1}^{T} w_p}

    so the last multiplier is exactly 0, and constant norms give exactly linear decay. Large
    early norms produce a warmup; norms that grow late, a faster final decay. The paper's steps
    :math:`t = 1..T` are the entries ``0..n-1`` here.

    ``kind`` must match the optimizer and the norm: ``'sgd'`` with ℓ2 norms for SGD-like
    optimizers, ``'adam'`` with ℓ1 norms for the Adam family (on the example language model,
    ℓ2 norms with ``'sgd'`` for an Adam run ended 0.111 above linear decay, the ℓ1 pairing 0.067:
    ``benchmarks/RESULTS.md``). So it has no default. Given the norms by name, as
    :func:`grad_norm_history` returns them, ``kind`` is inferred when they hold only one of ℓ2
    and ℓ1 (``record_grad_norms(n, norms="l1")``) and must be given when they hold both (what
    ``record_grad_norms`` records by default); given a plain array, which does not say which
    norm it holds, ``kind`` must be given and nothing checks it (:ref:`design-refinement`).

    Smoothed norms below 10⁻⁶ of the largest are raised to that floor with a warning
    (collapsing norms make refinement degenerate; the paper's advice is linear decay then).
    Multiply by the tuned peak learning rate, or use :func:`refined_schedule`.

    Args:
      grad_norms: 1-D sequence of non-negative gradient norms, one per step of the recorded run
        (non-finite entries are interpolated with a warning; at least 2 finite, not all zero),
        or a mapping from norm names (``'l2'``, ``'l1'``, ``'linf'``) to such sequences, as
        :func:`grad_norm_history` returns; the norm ``kind`` refines by is taken from it.
      kind: ``'sgd'`` (ℓ2 norms, w = Ĝ⁻², SGD-like optimizers) or ``'adam'`` (ℓ1 norms,
        w = Ĝ⁻¹, Adam-family optimizers); ``None`` infers it from a mapping that holds only one
        of ``'l2'`` and ``'l1'``.
      smoothing: relative median-filter width in [0, 1] (default 0.1 = 10% of the run, the
        paper's choice); 0 refines the raw norms.

    Returns:
      A float64 NumPy array of multipliers, one per recorded step, in [0, 1], exactly 1 at the
      peak and exactly 0 at the last entry.

    Raises:
      ValueError: bad norms or ``smoothing``; ``kind`` omitted for a plain array or for norms
        that hold both ℓ2 and ℓ1; a ``kind`` whose norm the mapping does not hold.

    Example:
      >>> import numpy as np, optaxsched as oxs
      >>> oxs.refine(np.ones(5), kind="sgd", smoothing=0.0)
      array([1.  , 0.75, 0.5 , 0.25, 0.  ])
      >>> oxs.refine({"l1": np.ones(5)}, smoothing=0.0)  # only ℓ1 norms: kind='adam' inferred
      array([1.  , 0.75, 0.5 , 0.25, 0.  ])

    References:
      Defazio, Cutkosky, Mehta, Mishchenko, `When, Why and How Much? Adaptive Learning Rate
      Scheduling by Refinement <https://arxiv.org/abs/2310.07831>`_, 2023 (v2: "Optimal Linear
      Decay Learning Rate Schedules and Further Refinements").
    """
    where = "refine"
    grad_norms, kind = select_norms(where, grad_norms, kind)
    smoothing = _checks.check_fraction(where, "smoothing", smoothing)
    values = _as_norms(where, grad_norms, smoothing)
    return _closed_form(_smooth(values, smoothing), kind, where)


def refined_schedule(grad_norms: Any, peak_value: float, total_steps: int | None = None,
                     kind: RefineKind | None = None, smoothing: float = 0.1) -> Callable:
    r"""An optax schedule that follows the refinement of a recorded run's gradient norms.

    .. math::

        \eta(\text{count}) = \eta_{\text{peak}} \cdot \text{refine}(G)
        \Big[\text{count} \cdot \frac{n - 1}{T - 1}\Big]
        \quad (\text{linear interpolation})

    ``peak_value · refine(grad_norms, kind, smoothing)`` as a piecewise-linear schedule of the
    optax count (:func:`optaxsched.tabulated`). When ``total_steps`` (``T``) differs from the
    recorded length ``n`` the multipliers are resampled linearly onto the new run, so the shape
    is kept in relative time (a recorded run of 1,000 steps can refine a run of 10,000): entry
    ``i`` sits at count ``i (T - 1) / (n - 1)``, the first at count 0 and the last, 0, at count
    ``T - 1``; later counts hold 0. Constant norms give ``peak_value · (1 - count / (T - 1))``,
    i.e. ``optaxsched.linear_decay(peak_value, total_steps=T - 1)`` on the run's counts.

    Args:
      grad_norms: the recorded run's gradient norms: a 1-D sequence, or a mapping from norm
        names as :func:`grad_norm_history` returns (see :func:`refine`).
      peak_value: the peak learning rate (positive).
      total_steps: length of the new run (at least 2); ``None`` keeps the recorded length.
      kind: ``'sgd'`` (ℓ2 norms, SGD-like optimizers) or ``'adam'`` (ℓ1 norms, Adam family);
        required unless the mapping holds only one of ℓ2 and ℓ1 (see :func:`refine`).
      smoothing: relative median-filter width in [0, 1].

    Returns:
      A schedule ``count -> float32`` that peaks at ``peak_value`` and ends at 0.

    Example:
      >>> import numpy as np, optax, optaxsched as oxs
      >>> schedule = oxs.refined_schedule(np.ones(100), 3e-4, total_steps=1000, kind="adam")
      >>> tx = optax.adam(schedule)

    References:
      Defazio, Cutkosky, Mehta, Mishchenko, `When, Why and How Much? Adaptive Learning Rate
      Scheduling by Refinement <https://arxiv.org/abs/2310.07831>`_, 2023.
    """
    where = "refined_schedule"
    peak_value = _checks.check_float(where, "peak_value", peak_value, minimum=0.0,
                                     strict_min=True)
    if total_steps is not None:
        total_steps = _checks.check_int(where, "total_steps", total_steps, minimum=2)
    grad_norms, kind = select_norms(where, grad_norms, kind)
    smoothing = _checks.check_fraction(where, "smoothing", smoothing)
    values = _as_norms(where, grad_norms, smoothing)
    multipliers = _closed_form(_smooth(values, smoothing), kind, where)
    return tabulated(peak_value * multipliers, total_steps=total_steps)
