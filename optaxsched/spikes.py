"""Gradient-spike handling: SPAM and Stable-SPAM, fused and as composable parts.

Two optimizers from the literature, each available as a fused transform and as parts that can be
chained with any optax transform:

* **SPAM** (Huang et al., ICLR 2025, arXiv 2501.06842): Adam with spike-aware clipping of each
  gradient coordinate against the second moment, a periodic momentum reset and a cosine
  warmup of the step size after each reset. Fused: :func:`scale_by_spam`, :func:`spam`.
  Parts: :func:`clip_spikes`, :func:`reset_every`, :func:`reset_warmup`.
* **Stable-SPAM** (Huang et al. 2025, arXiv 2502.17055): AdaClip (clipping against a running
  maximum), AdaGN (per-tensor gradient-norm normalisation) and momentum reset around Adam.
  Fused: :func:`scale_by_stable_spam`, :func:`stable_spam`. Parts:
  :func:`adaptive_spike_clip`, :func:`adaptive_grad_norm`, :func:`reset_every`.

Step numbering. The papers' code numbers steps from 1; optax counts updates from 0. Everywhere
below ``k = count + 1`` is the reference's step: the first update has ``k = 1``.

The parts reproduce the fused optimizers (the tests check it to float32 precision)::

    # Stable-SPAM (t_max=None):
    optax.chain(oxs.adaptive_spike_clip(theta), oxs.adaptive_grad_norm(gamma1, gamma2, eps),
                oxs.reset_every(optax.scale_by_adam(b1, b2, eps), interval, keep=()),
                optax.add_decayed_weights(weight_decay), optax.scale_by_learning_rate(lr))
    # SPAM (weight_decay=0):
    optax.chain(oxs.clip_spikes(threshold, b2, clip_delay, reset_interval=interval),
                oxs.reset_every(optax.scale_by_adam(b1, b2, eps), interval),
                optax.scale_by_learning_rate(oxs.multiply(lr, oxs.reset_warmup(interval, n))))

For SPAM the second recipe differs from the fused optimizer in one detail only: the reference
adds ``eps`` to the *un-corrected* ``sqrt(v)``, optax to the bias-corrected one. Giving
``optax.scale_by_adam`` the time-varying ``eps / sqrt(1 - b2**k)`` (through
``optax.inject_hyperparams``) makes the two identical; with gradients far above ``eps`` the
difference is negligible anyway. The fused versions hold one full-size buffer fewer (the parts
keep ``clip_spikes``' own second moment next to Adam's).

Observability: the states have fields ``clipped`` (coordinates clipped or dropped at the last
update, summed over all leaves) and ``clipped_total`` (since the start), int32, saturating at
2**31 - 1. They are opt-in: build the transform with ``track_clips=True``; otherwise they hold
-1 ("not tracked") and cost nothing. Read them with ``optax.tree.get(state, "clipped")``.
Their cost is measured in ``benchmarks/RESULTS.md`` (step_time section).

Numerics. Decay rates given as Python floats are expanded in float64 before rounding to
float32 (``1 - 0.999`` computed in float32 is off by 1.3e-5, relative), and bias corrections
``1 - b^k`` are computed as ``-expm1(k log b)``; low-precision leaves are computed in float32.

Overflow. No finite gradient, in float32, bfloat16 or float16, makes a state or an update
non-finite: resets select zero (never multiply by it, ``inf * 0 = NaN``); every stored moment
and statistic saturates at its dtype's largest finite value (``_numerics.saturate``), and
AdaGN's norm is rescaled when its sum of squares overflows (``_numerics.norm_from_sum_squares``).
For float16 parameters the second moment saturates at 65504 (a gradient entry above about
8000 reaches it in one step); pass ``nu_dtype=jnp.float32`` to keep it exact, at twice its
memory.

Non-finite gradients, per coordinate: a NaN or ±inf entry is a spike of unknown size and is
dropped to zero, so nothing non-finite enters a moment or the parameters; the step is applied
and counted (when tracked, the dropped entries count as clipped). This needs no pass over the
gradient beyond the algorithm's own. The exact whole-step skip is one wrapper away,
``optax.apply_if_finite(oxs.spam(...))``: it makes the step a no-op, at the cost of a global
finiteness reduction (measured in RESULTS.md).

Cost. The fused SPAM makes exactly Adam's passes (``v``, ``m``, the direction); the ``m`` pass
reads the *new* ``v`` to redo the clip test, so that ``v`` is updated in place
(``_lowering``). Stable-SPAM adds, per leaf, AdaClip's ``max |g|`` and the ``Σ g²`` AdaGN's
norm needs (two library reductions of the gradient as passed in); one more pass runs only on
steps where AdaClip clips or the gradient is not finite. ``benchmarks/step_time.py``
measures both against ``optax.adam``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from optaxsched import _checks, _lowering, _numerics

__all__ = [
    "SpamState",
    "scale_by_spam",
    "spam",
    "StableSpamState",
    "scale_by_stable_spam",
    "stable_spam",
    "ClipSpikesState",
    "clip_spikes",
    "AdaptiveSpikeClipState",
    "adaptive_spike_clip",
    "AdaptiveGradNormState",
    "adaptive_grad_norm",
    "ResetEveryState",
    "reset_every",
    "reset_warmup",
]

_INT32_MAX = int(np.iinfo(np.int32).max)
# The reference's post-reset factor starts at 1 - 0.99 = 0.01.
_WARMUP_DEPTH = 0.99


# ------------------------------------------------------------------------------------------------
# Argument validation. Every numeric argument may also arrive as a traced array when the factory
# is wrapped in `optax.inject_hyperparams`; traced values cannot be checked and are passed on.
# ------------------------------------------------------------------------------------------------


def _int_arg(where: str, name: str, value: Any, *, minimum: int = 0,
             maximum: int | None = _INT32_MAX) -> Any:
    """``_checks.check_int`` that also takes a 0-d integer array (an injected value read back)."""
    if _checks.is_traced(value):
        return value
    if isinstance(value, (jax.Array, np.ndarray, np.generic)) and np.ndim(value) == 0:
        value = np.asarray(value).item()
    return _checks.check_int(where, name, value, minimum=minimum, maximum=maximum)


def _beta_arg(where: str, name: str, value: Any) -> Any:
    return _checks.check_float(where, name, value, minimum=0.0, maximum=1.0, strict_max=True)


def _eps_arg(where: str, value: Any) -> Any:
    return _checks.check_float(where, "eps", value, minimum=0.0, strict_min=True)


def _learning_rate_arg(where: str, value: Any) -> Any:
    if callable(value) and not isinstance(value, type):
        return value
    return _checks.check_float(where, "learning_rate", value, minimum=0.0)


def _dtype_arg(where: str, name: str, value: Any) -> Any:
    if value is None:
        return None
    try:
        dtype = jnp.dtype(value)
    except TypeError:
        dtype = None
    if dtype is None or not jnp.issubdtype(dtype, jnp.floating):
        _checks.fail(where, name, "None or a floating-point dtype", value)
    return dtype


def _bool_arg(where: str, name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        _checks.fail(where, name, "True or False", value)
    return bool(value)


def _mask_arg(where: str, value: Any) -> Any:
    if value is None or callable(value):
        return value
    leaves = jax.tree.leaves(value)
    if not leaves or not all(isinstance(x, (bool, np.bool_)) for x in leaves):
        _checks.fail(where, "mask", "None, a pytree of bools like the params, or a callable "
                     "returning one", value)
    return value


def _check_window(where: str, reset_interval: Any, clip_delay: Any | None,
                  warmup_steps: Any | None) -> None:
    """Cross-checks against ``reset_interval`` (skipped for traced values and when it is 0)."""
    if _checks.is_traced(reset_interval) or reset_interval == 0:
        return
    if clip_delay is not None and not _checks.is_traced(clip_delay):
        _checks.check_order(where, "clip_delay", clip_delay, "reset_interval", reset_interval,
                            strict=True)
    if warmup_steps is not None and not _checks.is_traced(warmup_steps):
        _checks.check_order(where, "warmup_steps", warmup_steps, "reset_interval",
                            reset_interval)


# ------------------------------------------------------------------------------------------------
# Counts and step arithmetic (int32, saturating).
# ------------------------------------------------------------------------------------------------


def _zero_count() -> jax.Array:
    return jnp.zeros((), jnp.int32)


def _step_number(count: jax.Array) -> jax.Array:
    """The reference's 1-based step ``k = count + 1`` of the update at optax ``count``."""
    return jnp.minimum(jnp.asarray(count, jnp.int32), _INT32_MAX - 1) + 1


def _saturating_add(total: jax.Array, n: jax.Array) -> jax.Array:
    """``total + n`` for int32 ``total, n >= 0``, saturating at 2**31 - 1."""
    return jnp.where(total > _INT32_MAX - n, _INT32_MAX, total + n)


def _sum_counts(counts: Sequence[jax.Array]) -> jax.Array:
    total = _zero_count()
    for n in counts:
        total = _saturating_add(total, n)
    return total


def _counter_init(track: bool) -> jax.Array:
    """Initial value of an opt-in clip counter: 0 when tracked, -1 (never changes) when not."""
    return jnp.asarray(0 if track else -1, jnp.int32)


def _counters(track: bool, counts: Sequence[jax.Array], state: Any
              ) -> tuple[jax.Array, jax.Array]:
    """(clipped, clipped_total) after a step: the new count and the saturating total when
    tracked, the state's -1 otherwise."""
    if not track:
        return state.clipped, state.clipped_total
    n = _sum_counts(counts)
    return n, _saturating_add(state.clipped_total, n)


def _phase(k: jax.Array, interval: Any) -> tuple[jax.Array, jax.Array]:
    """Steps since the last reset (``k`` itself before the first) and whether ``k`` resets.

    Resets happen at ``k = interval, 2 interval, ...``; ``interval = 0`` means never.
    """
    interval = jnp.asarray(interval, jnp.int32)
    on = interval > 0
    phase = jnp.where(on, k % jnp.maximum(interval, 1), k)
    return phase, on & (phase == 0)


def _post_reset_factor(k: jax.Array, interval: Any, warmup_steps: Any) -> jax.Array:
    """SPAM's step-size factor: ``1 - 0.99 (1 + cos(pi c / (N + 1))) / 2`` for ``c < N``.

    ``c = k mod interval`` is the number of steps since the last reset (0 at the reset step);
    before the first reset, and from ``c = N`` on, the factor is 1.
    """
    interval = jnp.asarray(interval, jnp.int32)
    n = jnp.asarray(warmup_steps, jnp.int32)
    phase, _ = _phase(k, interval)
    # The reference restarts its warmup counter at the end of a step, so a reset at k = 1
    # (interval 1) starts no warmup; it is a no-op anyway, the moments are still zero.
    active = (interval > 0) & (k >= jnp.maximum(interval, 2)) & (phase < n)
    c = phase.astype(jnp.float32)
    depth = _WARMUP_DEPTH * 0.5 * (1.0 + jnp.cos(jnp.pi * c / (n.astype(jnp.float32) + 1.0)))
    return jnp.where(active, 1.0 - depth, 1.0).astype(jnp.float32)


class _Rate(NamedTuple):
    """A decay rate ``b`` as float32 ``b``, ``1 - b`` and ``log b`` (for ``1 - b^k``)."""

    value: jax.Array
    complement: jax.Array
    log: jax.Array


def _rate(b: Any) -> _Rate:
    """Python floats are expanded in float64 first: float32(0.999) is 0.99900001, so computing
    ``1 - b`` in float32 would be off by 1.3e-5 (relative), and ``1 - b^k`` likewise. Traced
    (injected) values are expanded in float32."""
    if isinstance(b, (int, float)):
        b = float(b)
        log = math.log(b) if b > 0 else -math.inf
        return _Rate(jnp.float32(b), jnp.float32(1.0 - b), jnp.float32(log))
    b = jnp.asarray(b, jnp.float32)
    return _Rate(b, 1.0 - b, jnp.log(b))


def _scaled_rate(rate: _Rate, scale: jax.Array, one_minus_scale: jax.Array) -> _Rate:
    """The rate ``b · s`` (Stable-SPAM's cosine scaling), given ``s`` and ``1 - s``."""
    return _Rate(rate.value * scale, rate.complement + rate.value * one_minus_scale,
                 rate.log + jnp.log(scale))


def _debias(rate: _Rate, k: jax.Array) -> jax.Array:
    """``1 - b^k`` for a float32 step ``k >= 1``, accurate also for ``b`` close to 1."""
    return -jnp.expm1(k * rate.log)


def _compute_dtype(dtype: Any) -> Any:
    """float32 for low-precision leaves (bfloat16, float16), the leaf's dtype otherwise."""
    return jnp.promote_types(dtype, jnp.float32)


def _store(x: jax.Array, dtype: Any) -> jax.Array:
    """``x`` cast to a moment's or an update's storage ``dtype``: as it is for 32/64-bit dtypes,
    saturated at the largest finite value for 16-bit ones. A 16-bit moment can overflow (a
    normalised entry of 256 squares past float16's 65504), and a 16-bit second moment can
    underflow to 0 while the first does not, which makes a float32 direction m / (sqrt(v) + eps)
    too large for float16. (Saturating float32 Stable-SPAM moments too made XLA copy both
    moments every step; AdaGN bounds what they see.)"""
    if jnp.finfo(dtype).bits < 32:
        x = _numerics.saturate(x, dtype)
    return x.astype(dtype)


def _mask_leaves(where: str, mask: Any, params: Any, treedef: Any) -> list[bool]:
    if mask is None:
        return [True] * treedef.num_leaves
    tree = mask(params) if callable(mask) else mask
    try:
        leaves = treedef.flatten_up_to(tree)
    except (ValueError, TypeError) as err:
        raise ValueError(f"{where}: mask must have the structure of the params ({err}).") from err
    return [bool(x) for x in leaves]


def _learning_rate_at(learning_rate: Any, count: jax.Array) -> jax.Array:
    value = learning_rate(count) if callable(learning_rate) else learning_rate
    return jnp.asarray(value, jnp.float32)


def _apply_step(where: str, direction: list[jax.Array], params: Any, treedef: Any,
                learning_rate: Any, count: jax.Array, weight_decay: Any, mask: Any,
                decay_after_step: bool) -> list[jax.Array]:
    """``-lr * direction`` plus decoupled weight decay (before or after the step)."""
    lr = _learning_rate_at(learning_rate, count)
    out = [-lr * d for d in direction]
    if not _checks.is_traced(weight_decay) and weight_decay == 0:
        return out
    if params is None:
        raise ValueError(f"{where}: params must be passed to update when weight_decay is used.")
    p_leaves = treedef.flatten_up_to(params)
    decay = lr * jnp.asarray(weight_decay, jnp.float32)
    use = _mask_leaves(where, mask, params, treedef)
    result = []
    for u, p, on in zip(out, p_leaves, use, strict=True):
        if not on:
            result.append(u)
            continue
        p = p.astype(u.dtype)
        if decay_after_step:  # p <- (p + u) (1 - lr wd): the decay acts on the stepped params
            result.append(u - decay * (p + u))
        else:  # p <- p (1 - lr wd) + u
            result.append(u - decay * p)
    return result


# ------------------------------------------------------------------------------------------------
# SPAM.
# ------------------------------------------------------------------------------------------------


class SpamState(NamedTuple):
    """State of :func:`scale_by_spam` and :func:`spam`.

    Attributes:
      count: int32 scalar, updates so far (saturating). The Adam bias correction uses
        ``k = count + 1`` and is never reset.
      mu: first moment, like the params (dtype ``mu_dtype`` if given).
      nu: second moment, like the params (dtype ``nu_dtype`` if given); the spike threshold is
        ``threshold * nu``.
      clipped: int32 scalar, coordinates clipped or dropped (non-finite) at the last update;
        -1 when the transform was built with ``track_clips=False`` (the default).
      clipped_total: int32 scalar, the same since the start (saturating); -1 when not tracked.
    """

    count: jax.Array  # type: ignore[assignment]  # NamedTuple.count is a method; optax does it
    mu: optax.Updates
    nu: optax.Updates
    clipped: jax.Array
    clipped_total: jax.Array


def _validate_spam(where: str, b1, b2, eps, threshold, reset_interval, warmup_steps,
                   clip_delay, mu_dtype, nu_dtype, track_clips
                   ) -> tuple[Any, Any, Any, Any, Any, Any, Any, Any, Any, Any]:
    b1 = _beta_arg(where, "b1", b1)
    b2 = _beta_arg(where, "b2", b2)
    eps = _eps_arg(where, eps)
    threshold = _checks.check_float(where, "threshold", threshold, minimum=0.0)
    reset_interval = _int_arg(where, "reset_interval", reset_interval)
    warmup_steps = _int_arg(where, "warmup_steps", warmup_steps)
    # At least 2: clipping against a second moment that is still exactly 0 would clip every
    # coordinate to 0, and v would never grow (no update, ever).
    clip_delay = _int_arg(where, "clip_delay", clip_delay, minimum=2)
    _check_window(where, reset_interval, clip_delay, warmup_steps)
    mu_dtype = _dtype_arg(where, "mu_dtype", mu_dtype)
    nu_dtype = _dtype_arg(where, "nu_dtype", nu_dtype)
    track_clips = _bool_arg(where, "track_clips", track_clips)
    return (b1, b2, eps, threshold, reset_interval, warmup_steps, clip_delay, mu_dtype, nu_dtype,
            track_clips)


class _SpikeRule(NamedTuple):
    """SPAM's clipping rule for one step (scalars)."""

    reset: jax.Array  # whether this step resets the moments (before its update)
    threshold: jax.Array  # θ
    clip_on: jax.Array  # whether clipping is active at this step
    b2: _Rate
    limit_ratio: jax.Array  # θ / (b2 + (1 - b2) θ), see `_lowering.spam_clip_from_new_moment`


def _spike_rule(k: jax.Array, threshold: Any, reset_interval: Any, clip_delay: Any,
                b2: Any) -> _SpikeRule:
    phase, reset = _phase(k, reset_interval)
    thr = jnp.asarray(threshold, jnp.float32)
    clip_on = (thr > 0) & (k >= clip_delay) & (phase >= clip_delay)
    rate2 = _rate(b2)
    growth = rate2.value + rate2.complement * thr  # c: v_new = c v_old on a spike
    ratio = jnp.where(growth > 0, thr / jnp.where(growth > 0, growth, 1.0), 0.0)
    return _SpikeRule(reset, thr, clip_on, rate2, ratio)


def _reset(x: jax.Array, reset: jax.Array, cdt: Any) -> jax.Array:
    """``0`` on a reset step, else ``x`` (compute dtype): a selection, never ``x * 0``, which
    would be NaN for an infinite ``x``."""
    return jnp.where(reset, jnp.zeros((), cdt), x.astype(cdt))


def _clip_spike(g: jax.Array, v: jax.Array, rule: _SpikeRule) -> jax.Array:
    """SPAM's spike-aware clipping: ``g² > θ v  ->  g = sign(g) sqrt(θ v)`` (when active)."""
    limit = rule.threshold.astype(g.dtype) * v
    return jnp.where(rule.clip_on & (g * g > limit), jnp.copysign(jnp.sqrt(limit), g), g)


def _plain_ema(rate: _Rate, old: jax.Array, new: jax.Array) -> jax.Array:
    """``b old + (1 - b) new`` (compute dtype), for moments that cannot overflow: Stable-SPAM's
    Adam moments see AdaGN's output, whose norm is at most about ``μ̂ / sqrt(ν̂) = O(1)``.
    (Saturating them anyway, or passing them through ``_lowering.stored``, made XLA copy
    both moments of multi-leaf trees on every step: tests/test_footprint.py.)"""
    cdt = new.dtype
    return rate.value.astype(cdt) * old + rate.complement.astype(cdt) * new


def _clipped_square(g: jax.Array, v: jax.Array, rule: _SpikeRule) -> jax.Array:
    """``ĝ²`` for SPAM's clipped ``ĝ``: ``min(g², θ v)`` where clipping is active (no square
    root: XLA's CPU backend materialises a square root that several loops share)."""
    g2 = g * g
    return jnp.where(rule.clip_on, jnp.minimum(g2, rule.threshold.astype(g.dtype) * v), g2)


def _ema(rate: _Rate, old: jax.Array, new: jax.Array, dtype: Any) -> jax.Array:
    """``b old + (1 - b) new`` (compute dtype), saturated so that storing it in ``dtype``
    stays finite."""
    cdt = new.dtype
    value = rate.value.astype(cdt) * old + rate.complement.astype(cdt) * new
    return _numerics.saturate(value, dtype)


def _spam_moments(g: jax.Array, m: jax.Array, v: jax.Array, rule: _SpikeRule, rate1: _Rate,
                  one: jax.Array) -> tuple[jax.Array, jax.Array, tuple[jax.Array, jax.Array]]:
    """One leaf of SPAM's Algorithm 1 (moments only): (new m, new v, (clipped, non-finite)).

    The two masks are used only by the opt-in counters.
    """
    cdt = _compute_dtype(g.dtype)
    raw = g.astype(cdt)
    # A NaN/Inf coordinate is a spike: dropped (0). Each loop drops it on its own (_lowering).
    g_v, g = _lowering.each_loop(raw, _numerics.finite_or_zero, one)
    # 1. Momentum reset (k mod ΔT == 0), before this step's update.
    m0, v0 = _reset(m, rule.reset, cdt), _reset(v, rule.reset, cdt)
    # 2. Spike-aware clipping against the old v; 3. v <- b2 v + (1 - b2) ĝ².
    v1 = _ema(rule.b2, v0, _clipped_square(g_v, v0, rule), v.dtype)
    v1 = _lowering.stored(v1, one).astype(v.dtype)
    # 3. m <- b1 m + (1 - b1) ĝ, with ĝ read back from the new v (the same value; it lets XLA
    # update v in place, see _lowering).
    g_hat, spike = _lowering.spam_clip_from_new_moment(g, v1.astype(cdt), rule.limit_ratio,
                                                        rule.clip_on)
    m1 = _lowering.stored(_ema(rate1, m0, g_hat, m.dtype), one).astype(m.dtype)
    return m1, v1, (spike, ~jnp.isfinite(raw))


def _spam(where: str, b1, b2, eps, threshold, reset_interval, warmup_steps, clip_delay,
          mu_dtype, nu_dtype, track_clips, learning_rate=None, weight_decay=0.0, mask=None
          ) -> optax.GradientTransformationExtraArgs:
    """Shared by scale_by_spam (learning_rate None: returns the direction) and spam.

    Adam's passes and nothing else: ``v`` (reads g, v), ``m`` (reads g, m and the new v), the
    direction (reads m, v; fused with the caller's parameter update). The opt-in counters add
    one reduction over g and the new v.
    """

    def init_fn(params):
        return SpamState(count=_zero_count(), mu=optax.tree.zeros_like(params, dtype=mu_dtype),
                         nu=optax.tree.zeros_like(params, dtype=nu_dtype),
                         clipped=_counter_init(track_clips),
                         clipped_total=_counter_init(track_clips))

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        g_leaves, treedef = jax.tree.flatten(updates)
        m_leaves = treedef.flatten_up_to(state.mu)
        v_leaves = treedef.flatten_up_to(state.nu)
        k = _step_number(state.count)
        rule = _spike_rule(k, threshold, reset_interval, clip_delay, b2)
        rate1 = _rate(b1)
        kf = k.astype(jnp.float32)
        # Step size of the reference: sqrt(1 - b2^k) / (1 - b1^k) times the post-reset factor,
        # with eps added to the un-corrected sqrt(v).
        step_scale = (_post_reset_factor(k, reset_interval, warmup_steps)
                      * jnp.sqrt(_debias(rule.b2, kf)) / _debias(rate1, kf))

        one = _lowering.runtime_one(state.count)
        new_m, new_v, counts = [], [], []
        for g, m, v in zip(g_leaves, m_leaves, v_leaves, strict=True):
            m1, v1, (spike, dropped) = _spam_moments(g, m, v, rule, rate1, one)
            new_m.append(m1)
            new_v.append(v1)
            if track_clips:
                counts.append(_lowering.count_true(spike, dropped))

        # 4. The direction s_k sqrt(1 - b2^k) / (1 - b1^k) · m / (sqrt(v) + eps).
        direction = []
        for g, m1, v1 in zip(g_leaves, new_m, new_v, strict=True):
            cdt = _compute_dtype(g.dtype)
            direction.append(step_scale.astype(cdt) * m1.astype(cdt)
                             / (jnp.sqrt(v1.astype(cdt))
                                + jnp.asarray(eps, jnp.float32).astype(cdt)))
        if learning_rate is not None:
            direction = _apply_step(where, direction, params, treedef, learning_rate,
                                    state.count, weight_decay, mask, decay_after_step=True)
        out = [_store(d, g.dtype) for d, g in zip(direction, g_leaves, strict=True)]
        clipped, clipped_total = _counters(track_clips, counts, state)
        new_state = SpamState(count=optax.safe_increment(state.count),
                              mu=treedef.unflatten(new_m), nu=treedef.unflatten(new_v),
                              clipped=clipped, clipped_total=clipped_total)
        return treedef.unflatten(out), new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def scale_by_spam(b1: float = 0.9, b2: float = 0.999, eps: float = 1e-6,
                  threshold: float = 5000.0, reset_interval: int = 500, warmup_steps: int = 150,
                  clip_delay: int = 20, *, mu_dtype: Any = None, nu_dtype: Any = None,
                  track_clips: bool = False) -> optax.GradientTransformationExtraArgs:
    """SPAM's update direction: spike-aware clipping, Adam with momentum reset, post-reset warmup.

    With ``k = count + 1`` the reference's 1-based step (optax counts from 0), per coordinate:

    1. **Reset** (``k mod reset_interval == 0``): ``m <- 0``, ``v <- 0``; the bias-correction
       step ``k`` is *not* reset.
    2. **Spike clipping**, against the un-bias-corrected ``v`` before this step's update, when
       ``k >= clip_delay`` and ``k mod reset_interval >= clip_delay`` (so never in the first
       ``clip_delay - 1`` steps of training nor in the first ``clip_delay`` steps after each
       reset, where ``v`` is still near 0)::

           if g² > threshold · v:   g <- sign(g) · sqrt(threshold · v)

    3. ``m <- b1 m + (1 - b1) g``, ``v <- b2 v + (1 - b2) g²``.
    4. Direction ``s_k · sqrt(1 - b2^k) / (1 - b1^k) · m / (sqrt(v) + eps)``. Note that, as in
       the reference, ``eps`` is added to the un-corrected ``sqrt(v)`` (optax's Adam adds it to
       the bias-corrected one).

    The post-reset factor (the reference's cosine warmup) is, with ``c = k mod reset_interval``
    the steps since the last reset (0 at the reset step) and ``N = warmup_steps``,
    ``s_k = 1 - 0.99 (1 + cos(pi c / (N + 1))) / 2`` for ``c < N`` after the first reset, and 1
    otherwise: it rises from 0.01 at the reset step to about 1 at ``c = N``. It damps the first
    updates after a reset, which are about ``(1 - b1) / sqrt(1 - b2) ≈ 3.2`` in size. Because
    the bias correction keeps the global ``k`` while ``v`` restarts from zero, updates stay
    larger than Adam's by about ``sqrt((1 - b2^k) / (1 - b2^c))`` for roughly ``1 / (1 - b2)``
    steps after each reset (1.9× at ``c = 150, k = 650`` with the defaults): the reference's
    behaviour, kept as is.
    :func:`reset_warmup` is the same factor as a schedule. Sparse momentum (the reference's
    ``density < 1``) is not implemented; ``density = 1`` is what this computes.

    Policies: ``threshold = 0`` disables clipping and ``reset_interval = 0`` disables resets
    (and the warmup), as in the reference. A NaN/Inf gradient entry is dropped to zero (a
    spike; the step is applied), and stored moments saturate at their dtype's largest finite
    value (see the module docstring); wrap in ``optax.apply_if_finite`` to skip whole steps.
    Low-precision leaves are computed in float32 and the moments stored in the leaf's dtype
    (``mu_dtype``, ``nu_dtype`` override them). With ``track_clips=True``,
    ``clipped``/``clipped_total`` count clipped and dropped coordinates (read them with
    ``optax.tree.get(state, "clipped")``); otherwise they hold -1.

    Args:
      b1: first-moment decay, in [0, 1).
      b2: second-moment decay, in [0, 1).
      eps: positive constant added to ``sqrt(v)``.
      threshold: spike threshold θ (a coordinate is a spike when ``g² > θ v``), >= 0; 0 turns
        clipping off.
      reset_interval: momentum reset period ΔT in steps, a non-negative integer; 0 never resets.
      warmup_steps: length N of the post-reset warmup, an integer in [0, reset_interval].
      clip_delay: steps without clipping at the start and after each reset, an integer in
        [2, reset_interval) (any integer >= 2 without resets).
      mu_dtype: optional dtype of the first moment.
      nu_dtype: optional dtype of the second moment (``jnp.float32`` for float16 parameters
        keeps it from saturating at 65504).
      track_clips: whether to count clipped coordinates in the state (one more reduction per
        leaf; its cost is in ``benchmarks/RESULTS.md``).

    Returns:
      An ``optax.GradientTransformationExtraArgs`` whose state is a :class:`SpamState`.

    Example:
      >>> import jax.numpy as jnp, optax, optaxsched as oxs
      >>> tx = optax.chain(oxs.scale_by_spam(track_clips=True),
      ...                  optax.scale_by_learning_rate(1e-3))
      >>> params = {"w": jnp.zeros(3)}
      >>> state = tx.init(params)
      >>> updates, state = tx.update({"w": jnp.array([1.0, -2.0, 0.5])}, state, params)
      >>> int(optax.tree.get(state, "clipped"))
      0

    References:
      Huang, Zhu, Jin, Liu, Wang, Liu, "SPAM: Spike-Aware Adam with Momentum Reset for Stable
      LLM Training" (ICLR 2025, arXiv 2501.06842).
    """
    args = _validate_spam("scale_by_spam", b1, b2, eps, threshold, reset_interval, warmup_steps,
                          clip_delay, mu_dtype, nu_dtype, track_clips)
    return _spam("scale_by_spam", *args)


def spam(learning_rate: optax.ScalarOrSchedule, b1: float = 0.9, b2: float = 0.999,
         eps: float = 1e-6, threshold: float = 5000.0, reset_interval: int = 500,
         warmup_steps: int = 150, clip_delay: int = 20, weight_decay: float = 0.0, *,
         mu_dtype: Any = None, nu_dtype: Any = None, track_clips: bool = False,
         mask: Any = None) -> optax.GradientTransformationExtraArgs:
    """The SPAM optimizer: :func:`scale_by_spam` times ``-learning_rate``, with weight decay.

    The update is ``u = -η_count · d`` with ``d`` the :func:`scale_by_spam` direction and
    ``η_count`` the learning rate (a schedule is called with the optax count, 0 at the first
    update). Decoupled weight decay acts after the step and is not scaled by the post-reset
    factor, as in the reference::

        p <- (p - η d) (1 - η · weight_decay)

    so ``u = -η d - η · weight_decay · (p - η d)``. With ``weight_decay = 0`` this is exactly
    ``optax.chain(scale_by_spam(...), optax.scale_by_learning_rate(learning_rate))``.

    A NaN/Inf gradient entry is dropped to zero; ``optax.apply_if_finite(oxs.spam(...))``
    skips whole steps instead (no decay either). All numeric arguments can be injected with
    ``optax.inject_hyperparams(oxs.spam)(learning_rate=..., threshold=...)``; with bfloat16
    parameters pass ``hyperparam_dtype=jnp.float32`` there (optax casts injected values to the
    parameters' dtype, and bfloat16 rounds ``b2 = 0.999`` to 1.0).

    Args:
      learning_rate: a non-negative float or an optax schedule.
      b1, b2, eps, threshold, reset_interval, warmup_steps, clip_delay: as in
        :func:`scale_by_spam`.
      weight_decay: decoupled weight-decay coefficient, >= 0.
      mu_dtype, nu_dtype, track_clips: as in :func:`scale_by_spam`.
      mask: where weight decay applies: ``None`` (everywhere), a pytree of bools like the
        params, or a callable ``params -> pytree of bools``.

    Returns:
      An ``optax.GradientTransformationExtraArgs`` whose state is a :class:`SpamState`.

    Example:
      >>> import jax.numpy as jnp, optax, optaxsched as oxs
      >>> tx = oxs.spam(optax.cosine_decay_schedule(1e-3, 10_000), weight_decay=0.1)
      >>> params = {"w": jnp.ones(3)}
      >>> state = tx.init(params)
      >>> updates, state = tx.update({"w": jnp.array([1.0, -2.0, 0.5])}, state, params)
      >>> params = optax.apply_updates(params, updates)

    References:
      Huang et al., "SPAM: Spike-Aware Adam with Momentum Reset for Stable LLM Training"
      (arXiv 2501.06842).
    """
    where = "spam"
    learning_rate = _learning_rate_arg(where, learning_rate)
    args = _validate_spam(where, b1, b2, eps, threshold, reset_interval, warmup_steps,
                          clip_delay, mu_dtype, nu_dtype, track_clips)
    weight_decay = _checks.check_float(where, "weight_decay", weight_decay, minimum=0.0)
    mask = _mask_arg(where, mask)
    return _spam(where, *args, learning_rate=learning_rate, weight_decay=weight_decay,
                 mask=mask)


# ------------------------------------------------------------------------------------------------
# Stable-SPAM.
# ------------------------------------------------------------------------------------------------


class StableSpamState(NamedTuple):
    """State of :func:`scale_by_stable_spam` and :func:`stable_spam`.

    Attributes:
      count: int32 scalar, updates so far (saturating). AdaClip and AdaGN bias corrections use
        ``k = count + 1``; Adam's restart at each reset.
      mu: Adam first moment, like the params (dtype ``mu_dtype`` if given).
      nu: Adam second moment, like the params (dtype ``nu_dtype`` if given).
      max_ema: per leaf, float32 scalar EMA of ``max |g|`` (AdaClip).
      norm_mean: per leaf, float32 scalar EMA of the clipped gradient's ℓ2 norm (AdaGN).
      norm_sq_mean: per leaf, float32 scalar EMA of its square (AdaGN).
      clipped: int32 scalar, coordinates clipped by AdaClip or dropped (non-finite) at the last
        update; -1 when the transform was built with ``track_clips=False`` (the default).
      clipped_total: int32 scalar, the same since the start (saturating); -1 when not tracked.
    """

    count: jax.Array  # type: ignore[assignment]  # NamedTuple.count is a method; optax does it
    mu: optax.Updates
    nu: optax.Updates
    max_ema: optax.Updates
    norm_mean: optax.Updates
    norm_sq_mean: optax.Updates
    clipped: jax.Array
    clipped_total: jax.Array


def _scalar_tree(params: Any) -> Any:
    return jax.tree.map(lambda _: jnp.zeros((), jnp.float32), params)


_F32_MAX = _numerics.largest(jnp.float32)


class _ClipLimit(NamedTuple):
    """AdaClip's per-leaf quantities for one step."""

    limit: jax.Array  # M̂, the clipping threshold
    ratio: jax.Array  # M̂ / max|g|: clipped entries are multiplied by it
    max_ema: jax.Array  # the new EMA M of max|g|
    active: jax.Array  # whether clipping can happen (k > 1)


def _adaptive_limit(g_max: jax.Array, max_ema: jax.Array, theta: _Rate, kf: jax.Array
                    ) -> _ClipLimit:
    """AdaClip's threshold: ``M <- θ M + (1 - θ) max|g|``, ``M̂ = M / (1 - θ^k)``."""
    new_ema = jnp.minimum(theta.value * max_ema + theta.complement * g_max, _F32_MAX)
    limit = jnp.minimum(new_ema / _debias(theta, kf), _F32_MAX)
    # The largest entry maps exactly to the threshold; the others keep their ratio to it.
    ratio = limit / jnp.maximum(g_max, jnp.finfo(jnp.float32).tiny)
    return _ClipLimit(limit, ratio, new_ema, kf > 1.0)


def _adaptive_apply(g: jax.Array, clip: _ClipLimit) -> tuple[jax.Array, jax.Array]:
    """AdaClip: (clipped g, spike mask), ``|g_i| > M̂  ->  g_i · M̂ / max|g|``. At k = 1,
    M̂ = max|g| exactly, so nothing is clipped there (rounding would otherwise make the largest
    entry a coin toss)."""
    spike = clip.active & (jnp.abs(g) > clip.limit.astype(g.dtype))
    return jnp.where(spike, g * clip.ratio.astype(g.dtype), g), spike


def _norm_factor(norm: jax.Array, mean: jax.Array, sq_mean: jax.Array, gamma1: _Rate,
                 gamma2: _Rate, eps: jax.Array, kf: jax.Array
                 ) -> tuple[jax.Array, jax.Array, jax.Array]:
    """AdaGN on one leaf of norm ``norm``: (scalar factor for g, new mean, new squared mean).
    Every statistic saturates at the largest float32, so a huge finite norm leaves them
    finite."""
    norm = jnp.minimum(norm, _F32_MAX)
    new_mean = jnp.minimum(gamma1.value * mean + gamma1.complement * norm, _F32_MAX)
    new_sq = jnp.minimum(gamma2.value * sq_mean + gamma2.complement * norm * norm, _F32_MAX)
    mean_hat = jnp.minimum(new_mean / _debias(gamma1, kf), _F32_MAX)
    sq_hat = jnp.minimum(new_sq / _debias(gamma2, kf), _F32_MAX)
    # factor = target / ‖g‖ with target = μ̂ / (sqrt(ν̂) + eps). XLA rewrites a / b / c as
    # a / (b c), which overflows for a huge norm (the factor became 0 under jit); so ‖g‖ is
    # split as mantissa · 2^e and the 2^e is applied to μ̂ first (exact).
    mantissa, exponent = jnp.frexp(jnp.where(norm > 0, norm, 1.0))
    factor = jnp.ldexp(mean_hat, -exponent) / ((jnp.sqrt(sq_hat) + eps) * mantissa)
    factor = jnp.where(norm > 0, factor, 1.0)
    return factor, new_mean, new_sq


def _cosine_scale(kf: jax.Array, t_max: Any, eta_min: Any) -> tuple[jax.Array, jax.Array]:
    """Stable-SPAM's optional scale ``s_k`` of b1 and gamma1, and ``1 - s_k``."""
    if t_max is None:
        return jnp.ones((), jnp.float32), jnp.zeros((), jnp.float32)
    horizon = jnp.asarray(t_max, jnp.float32) + 1.0
    lo = jnp.asarray(eta_min, jnp.float32)
    angle = jnp.pi * jnp.minimum(kf, horizon) / horizon
    one_minus = (1.0 - lo) * 0.5 * (1.0 - jnp.cos(angle))
    return 1.0 - one_minus, one_minus


_RESET_ORDERS = ("zero_first", "authors")


def _stable_spam(where: str, b1, b2, eps, gamma1, gamma2, theta, reset_interval, t_max, eta_min,
                 mu_dtype, nu_dtype, track_clips, reset_order, learning_rate=None,
                 weight_decay=0.0, mask=None) -> optax.GradientTransformationExtraArgs:
    """Shared by scale_by_stable_spam (learning_rate None: the direction) and stable_spam.

    Passes: AdaClip's max|g| and AdaGN's Σg² per leaf (``_lowering.clipped_norm``; one more
    pass only on steps where AdaClip clips or the gradient is not finite), then Adam's ``v``,
    ``m`` and direction passes, each recomputing the clipped, normalised gradient from ``g``
    and per-leaf scalars.
    """
    authors_reset = reset_order == "authors"

    def init_fn(params):
        return StableSpamState(
            count=_zero_count(), mu=optax.tree.zeros_like(params, dtype=mu_dtype),
            nu=optax.tree.zeros_like(params, dtype=nu_dtype), max_ema=_scalar_tree(params),
            norm_mean=_scalar_tree(params), norm_sq_mean=_scalar_tree(params),
            clipped=_counter_init(track_clips), clipped_total=_counter_init(track_clips))

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        g_leaves, treedef = jax.tree.flatten(updates)
        m_leaves = treedef.flatten_up_to(state.mu)
        v_leaves = treedef.flatten_up_to(state.nu)
        max_leaves = treedef.flatten_up_to(state.max_ema)
        mean_leaves = treedef.flatten_up_to(state.norm_mean)
        sq_leaves = treedef.flatten_up_to(state.norm_sq_mean)
        k = _step_number(state.count)
        kf = k.astype(jnp.float32)
        scale, one_minus_scale = _cosine_scale(kf, t_max, eta_min)
        rate1 = _scaled_rate(_rate(b1), scale, one_minus_scale)
        rate2 = _rate(b2)
        g1 = _scaled_rate(_rate(gamma1), scale, one_minus_scale)
        g2 = _rate(gamma2)
        th = _rate(theta)
        eps32 = jnp.asarray(eps, jnp.float32)
        interval = jnp.asarray(reset_interval, jnp.int32)
        phase, reset = _phase(k, interval)
        # Adam's bias-correction step restarts at 1 on each reset step.
        n = jnp.where((interval > 0) & (k >= interval), phase + 1, k).astype(jnp.float32)
        bc1 = _debias(rate1, n)
        bc2 = _debias(rate2, n)

        # One copy of the gradient per loop that reads it: the clipped, normalised gradient is
        # recomputed in each instead of written out (see _lowering.each_loop).
        one = _lowering.runtime_one(state.count)
        g_v, g_m = _lowering.each_loop(g_leaves, list, one, 2)

        def sanitized(g):  # a NaN/Inf coordinate is a spike: dropped (0)
            return _numerics.finite_or_zero(g.astype(_compute_dtype(g.dtype)))

        clips, factors, new_mean, new_sq, counts = [], [], [], [], []
        for g, mx, mean, sq in zip(g_leaves, max_leaves, mean_leaves, sq_leaves, strict=True):
            # 1. AdaClip: M <- θ M + (1 - θ) max|g|, M̂ = M / (1 - θ^k), clip |g_i| > M̂;
            # 2. AdaGN: ‖g‖ of the clipped gradient (both from _lowering.clipped_norm).
            def limit_of(g_max, mx=mx):
                return jnp.where(kf > 1.0, _adaptive_limit(g_max, mx, th, kf).limit, jnp.inf)

            def clip_with(x, g_max, mx=mx):
                return _adaptive_apply(x, _adaptive_limit(g_max, mx, th, kf))

            g_max, norm, n_clipped = _lowering.clipped_norm(
                g, sanitized, limit_of, clip_with, track_clips)
            clip = _adaptive_limit(g_max, mx, th, kf)
            factor, mean1, sq1 = _norm_factor(norm, mean, sq, g1, g2, eps32, kf)
            clips.append(clip)
            factors.append(factor)
            new_mean.append(mean1)
            new_sq.append(sq1)
            if track_clips:
                counts.append(n_clipped)

        def normalized(g, clip, factor):
            gc, _ = _adaptive_apply(sanitized(g), clip)
            return gc * factor.astype(gc.dtype)

        # 3. Momentum reset (selection, never multiplication); 4. Adam's moments.
        # reset_order="authors": this step's moments continue the old ones and are zeroed
        # after the step (the authors' code), see scale_by_stable_spam.
        new_v, used_v = [], []
        for g, clip, factor, v in zip(g_v, clips, factors, v_leaves, strict=True):
            gn = normalized(g, clip, factor)
            cdt = gn.dtype
            old = v.astype(cdt) if authors_reset else _reset(v, reset, cdt)
            v1 = _store(_plain_ema(rate2, old, gn * gn), v.dtype)
            used_v.append(v1)
            new_v.append(_reset(v1, reset, v.dtype) if authors_reset else v1)
        new_m, used_m = [], []
        for g, clip, factor, m in zip(g_m, clips, factors, m_leaves, strict=True):
            gn = normalized(g, clip, factor)
            cdt = gn.dtype
            old = m.astype(cdt) if authors_reset else _reset(m, reset, cdt)
            m1 = _store(_plain_ema(rate1, old, gn), m.dtype)
            used_m.append(m1)
            new_m.append(_reset(m1, reset, m.dtype) if authors_reset else m1)
        # 5. The direction (m / (1 - b1^n)) / (sqrt(v / (1 - b2^n)) + eps).
        direction = []
        for g, m1, v1 in zip(g_leaves, used_m, used_v, strict=True):
            cdt = _compute_dtype(g.dtype)
            direction.append((m1.astype(cdt) / bc1.astype(cdt))
                             / (jnp.sqrt(v1.astype(cdt) / bc2.astype(cdt)) + eps32.astype(cdt)))
        if learning_rate is not None:
            direction = _apply_step(where, direction, params, treedef, learning_rate,
                                    state.count, weight_decay, mask, decay_after_step=False)
        out = [_store(d, g.dtype) for d, g in zip(direction, g_leaves, strict=True)]
        clipped, clipped_total = _counters(track_clips, counts, state)
        new_state = StableSpamState(
            count=optax.safe_increment(state.count),
            mu=treedef.unflatten(new_m), nu=treedef.unflatten(new_v),
            max_ema=treedef.unflatten([c.max_ema for c in clips]),
            norm_mean=treedef.unflatten(new_mean), norm_sq_mean=treedef.unflatten(new_sq),
            clipped=clipped, clipped_total=clipped_total)
        return treedef.unflatten(out), new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def _validate_stable_spam(where: str, b1, b2, eps, gamma1, gamma2, theta, reset_interval, t_max,
                          eta_min, mu_dtype, nu_dtype, track_clips, reset_order
                          ) -> tuple[Any, Any, Any, Any, Any, Any, Any, Any, Any, Any, Any, Any,
                                     Any]:
    b1 = _beta_arg(where, "b1", b1)
    b2 = _beta_arg(where, "b2", b2)
    eps = _eps_arg(where, eps)
    gamma1 = _beta_arg(where, "gamma1", gamma1)
    gamma2 = _beta_arg(where, "gamma2", gamma2)
    theta = _beta_arg(where, "theta", theta)
    reset_interval = _int_arg(where, "reset_interval", reset_interval)
    if t_max is not None:
        t_max = _int_arg(where, "t_max", t_max, minimum=1, maximum=_INT32_MAX - 1)
    eta_min = _checks.check_float(where, "eta_min", eta_min, minimum=0.0, maximum=1.0)
    mu_dtype = _dtype_arg(where, "mu_dtype", mu_dtype)
    nu_dtype = _dtype_arg(where, "nu_dtype", nu_dtype)
    track_clips = _bool_arg(where, "track_clips", track_clips)
    if not isinstance(reset_order, str) or reset_order not in _RESET_ORDERS:
        _checks.fail(where, "reset_order", " or ".join(repr(x) for x in _RESET_ORDERS),
                     reset_order)
    return (b1, b2, eps, gamma1, gamma2, theta, reset_interval, t_max, eta_min, mu_dtype,
            nu_dtype, track_clips, reset_order)


def scale_by_stable_spam(b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8,
                         gamma1: float = 0.7, gamma2: float = 0.9, theta: float = 0.999,
                         reset_interval: int = 1000, t_max: int | None = None,
                         eta_min: float = 0.5, *, mu_dtype: Any = None, nu_dtype: Any = None,
                         track_clips: bool = False, reset_order: str = "zero_first"
                         ) -> optax.GradientTransformationExtraArgs:
    """Stable-SPAM's update direction: AdaClip, AdaGN, then Adam with momentum reset.

    With ``k = count + 1`` the reference's 1-based step, for each leaf (parameter tensor):

    1. **AdaClip** (clipping against a running maximum)::

           M <- θ M + (1 - θ) max|g|,   M̂ = M / (1 - θ^k)
           where |g_i| > M̂:  g_i <- g_i · M̂ / max|g|     (the largest entry maps to M̂)

    2. **AdaGN** (norm normalisation, ``‖g‖`` the ℓ2 norm of the clipped leaf)::

           μ <- γ1 μ + (1 - γ1) ‖g‖,   ν <- γ2 ν + (1 - γ2) ‖g‖²
           μ̂ = μ / (1 - γ1^k),  ν̂ = ν / (1 - γ2^k)
           if ‖g‖ > 0:  g <- g / ‖g‖ · μ̂ / (sqrt(ν̂) + eps)

    3. **Reset** (``k mod reset_interval == 0``): ``m <- 0``, ``v <- 0`` and Adam's
       bias-correction step restarts, ``n = 1`` (``n = k`` before the first reset).
    4. **Adam**: ``m <- b1 m + (1 - b1) g``, ``v <- b2 v + (1 - b2) g²``, direction
       ``(m / (1 - b1^n)) / (sqrt(v / (1 - b2^n)) + eps)``.

    Project decision (:ref:`design-stable-spam`): the AdaClip and AdaGN bias corrections use the
    never-reset step ``k``, as pytorch-optimizer 4.1.0 does, not the reset counter ``n`` of the
    original code (which inflates the clip threshold by up to ``1 / (1 - θ^n)`` after each
    reset). The statistics ``M, μ, ν`` are never reset.

    Optional cosine scaling (``t_max``, off by default): ``b1`` and ``γ1`` are multiplied by
    ``s_k = eta_min + (1 - eta_min) (1 + cos(pi min(k, t_max + 1) / (t_max + 1))) / 2``, which
    falls from 1 to ``eta_min`` at ``k = t_max + 1`` and stays there (the reference formula,
    held at its end instead of rising again).

    Reset step (``reset_order``). The default, ``"zero_first"``, zeroes ``m`` and ``v`` and then
    applies this step's update from them (as pytorch-optimizer 4.1.0 does): with ``n = 1`` the
    reset step's direction is ``g / (|g| + eps) ≈ sign(g)``, a full-size step. The authors'
    ``stablespam.py`` binds the moment tensors before its reset rebinds them, so its reset step
    continues the *old* moments with this step's gradient and divides by the bias corrections
    of ``n = 1`` (``1 - b1 = 0.1``, ``1 - b2 = 0.001``); the zeroed moments act from the next
    step on. That step is ``(m̃ / 0.1) / sqrt(ṽ / 0.001) = 0.316 · m̃ / sqrt(ṽ)``. Measured on
    a steady noisy gradient stream (signal = noise, ``tests/test_spikes.py``): the authors'
    reset step is 0.29-0.32x the zero-first one and about 0.50x the step before it, while the
    zero-first reset step is 1.6-1.7x the step before it; the next step differs by 2-6% and
    later ones less. ``reset_order="authors"`` reproduces the authors' step exactly, for
    replication.

    Policies: a NaN/Inf gradient entry is dropped to zero (a spike; see the module
    docstring), and stored statistics saturate at their dtype's largest value. A leaf whose
    clipped gradient is all zeros keeps it (its norm EMAs still decay), as in the reference.
    At ``k = 1``, ``M̂ = max|g|`` exactly and nothing is clipped (decided exactly, not by
    float rounding). Low-precision leaves are computed in float32;
    the per-leaf statistics are float32 scalars (replicated under sharding; they are tiny).

    Args:
      b1: Adam first-moment decay, in [0, 1).
      b2: Adam second-moment decay, in [0, 1).
      eps: positive constant of AdaGN and Adam.
      gamma1: decay of the norm EMA μ, in [0, 1).
      gamma2: decay of the squared-norm EMA ν, in [0, 1).
      theta: decay θ of the max-|g| EMA, in [0, 1).
      reset_interval: momentum reset period in steps, a non-negative integer; 0 never resets.
      t_max: optional horizon of the cosine scaling of ``b1`` and ``gamma1`` (positive integer).
      eta_min: the scaling's final value, in [0, 1] (used only with ``t_max``).
      mu_dtype: optional dtype of the first moment.
      nu_dtype: optional dtype of the second moment (``jnp.float32`` for float16 parameters).
      track_clips: whether to count clipped coordinates in the state (the count comes from
        the reductions AdaClip makes anyway; cost in ``benchmarks/RESULTS.md``).
      reset_order: ``"zero_first"`` (default; pytorch-optimizer 4.1.0) or ``"authors"`` (the
        authors' code: the reset step's update uses the old moments, see above).

    Returns:
      An ``optax.GradientTransformationExtraArgs`` whose state is a :class:`StableSpamState`.

    Example:
      >>> import jax.numpy as jnp, optax, optaxsched as oxs
      >>> tx = optax.chain(oxs.scale_by_stable_spam(), optax.scale_by_learning_rate(1e-3))
      >>> params = {"w": jnp.zeros(3)}
      >>> state = tx.init(params)
      >>> updates, state = tx.update({"w": jnp.array([1.0, -2.0, 0.5])}, state, params)

    References:
      Huang, Zhu, Jin, Liu, Wang, Liu, "Stable-SPAM: How to Train in 4-Bit More Stably than
      16-Bit Adam" (arXiv 2502.17055).
    """
    args = _validate_stable_spam("scale_by_stable_spam", b1, b2, eps, gamma1, gamma2, theta,
                                 reset_interval, t_max, eta_min, mu_dtype, nu_dtype, track_clips,
                                 reset_order)
    return _stable_spam("scale_by_stable_spam", *args)


def stable_spam(learning_rate: optax.ScalarOrSchedule, b1: float = 0.9, b2: float = 0.999,
                eps: float = 1e-8, gamma1: float = 0.7, gamma2: float = 0.9,
                theta: float = 0.999, reset_interval: int = 1000, t_max: int | None = None,
                eta_min: float = 0.5, weight_decay: float = 0.0, *, mu_dtype: Any = None,
                nu_dtype: Any = None, track_clips: bool = False,
                reset_order: str = "zero_first", mask: Any = None
                ) -> optax.GradientTransformationExtraArgs:
    """The Stable-SPAM optimizer: :func:`scale_by_stable_spam` times ``-learning_rate``.

    Decoupled weight decay acts before the step, as in the reference::

        p <- p (1 - η · weight_decay) - η d

    which is exactly ``optax.chain(scale_by_stable_spam(...),
    optax.add_decayed_weights(weight_decay, mask), optax.scale_by_learning_rate(lr))``. A
    schedule is called with the optax count (0 at the first update).

    Args:
      learning_rate: a non-negative float or an optax schedule.
      b1, b2, eps, gamma1, gamma2, theta, reset_interval, t_max, eta_min: as in
        :func:`scale_by_stable_spam`.
      weight_decay: decoupled weight-decay coefficient, >= 0.
      mu_dtype, nu_dtype, track_clips, reset_order: as in :func:`scale_by_stable_spam`.
      mask: where weight decay applies: ``None`` (everywhere), a pytree of bools like the
        params, or a callable ``params -> pytree of bools``.

    Returns:
      An ``optax.GradientTransformationExtraArgs`` whose state is a :class:`StableSpamState`.

    Example:
      >>> import jax.numpy as jnp, optax, optaxsched as oxs
      >>> tx = oxs.stable_spam(1e-3, weight_decay=0.01)
      >>> params = {"w": jnp.ones(3)}
      >>> state = tx.init(params)
      >>> updates, state = tx.update({"w": jnp.array([1.0, -2.0, 0.5])}, state, params)

    References:
      Huang et al., "Stable-SPAM: How to Train in 4-Bit More Stably than 16-Bit Adam"
      (arXiv 2502.17055).
    """
    where = "stable_spam"
    learning_rate = _learning_rate_arg(where, learning_rate)
    args = _validate_stable_spam(where, b1, b2, eps, gamma1, gamma2, theta, reset_interval,
                                 t_max, eta_min, mu_dtype, nu_dtype, track_clips, reset_order)
    weight_decay = _checks.check_float(where, "weight_decay", weight_decay, minimum=0.0)
    mask = _mask_arg(where, mask)
    return _stable_spam(where, *args, learning_rate=learning_rate, weight_decay=weight_decay,
                        mask=mask)


# ------------------------------------------------------------------------------------------------
# Parts.
# ------------------------------------------------------------------------------------------------


class ClipSpikesState(NamedTuple):
    """State of :func:`clip_spikes`.

    Attributes:
      count: int32 scalar, updates so far (saturating).
      nu: the second-moment estimate of the clipped gradients, like the params (dtype
        ``nu_dtype`` if given).
      clipped: int32 scalar, coordinates clipped or dropped (non-finite) at the last update;
        -1 unless built with ``track_clips=True``.
      clipped_total: int32 scalar, the same since the start (saturating); -1 when not tracked.
    """

    count: jax.Array  # type: ignore[assignment]  # NamedTuple.count is a method; optax does it
    nu: optax.Updates
    clipped: jax.Array
    clipped_total: jax.Array


def clip_spikes(threshold: float = 5000.0, b2: float = 0.999, clip_delay: int = 20, *,
                reset_interval: int = 0, nu_dtype: Any = None, track_clips: bool = False
                ) -> optax.GradientTransformationExtraArgs:
    """SPAM's spike-aware clipping as a stand-alone transform, with its own second moment.

    Keeps ``v``, an EMA of the squared (clipped) gradient, and clips each coordinate whose
    square exceeds ``threshold`` times it, with ``k = count + 1``::

        if k >= clip_delay and (k mod reset_interval) >= clip_delay and g² > threshold · v:
            g <- sign(g) · sqrt(threshold · v)
        v <- b2 v + (1 - b2) g²

    (``v`` is the value before this step's update.) With ``reset_interval > 0``, ``v`` is
    zeroed at ``k = reset_interval, 2 reset_interval, ...`` and clipping pauses for
    ``clip_delay`` steps, as in SPAM; with the default 0 it is never reset. Placed before
    ``optax.sgd``, ``optax.lion`` or any other optimizer it protects it from gradient spikes;
    before a reset Adam (:func:`reset_every`) it reproduces SPAM's clipping, at the cost of a
    second copy of ``v`` (the fused :func:`scale_by_spam` shares Adam's).

    Policy for non-finite gradients: a NaN/Inf entry is a spike dropped to zero (as in the
    fused optimizers); ``v`` saturates at its dtype's largest finite value. Use
    ``optax.apply_if_finite`` around the chain to skip whole steps instead.

    Args:
      threshold: spike threshold θ, >= 0 (0 turns clipping off).
      b2: decay of the second-moment estimate, in [0, 1).
      clip_delay: steps without clipping at the start (and after each reset), an integer
        >= 2, below reset_interval when resets are on.
      reset_interval: period of the reset of ``v`` in steps; 0 (default) never resets.
      nu_dtype: optional dtype of ``v`` (default: the params').
      track_clips: whether to count clipped coordinates in the state (off: -1).

    Returns:
      An ``optax.GradientTransformationExtraArgs`` whose state is a :class:`ClipSpikesState`.

    Example:
      >>> import jax.numpy as jnp, optax, optaxsched as oxs
      >>> tx = optax.chain(oxs.clip_spikes(track_clips=True), optax.sgd(0.1))
      >>> params = {"w": jnp.zeros(2)}
      >>> state = tx.init(params)
      >>> for g in [[1.0, 1.0]] * 30 + [[1000.0, 1.0]]:  # a spike at k = 31
      ...     updates, state = tx.update({"w": jnp.array(g)}, state, params)
      >>> int(optax.tree.get(state, "clipped_total"))
      1
      >>> round(float(updates["w"][0]) / -0.1, 2)  # clipped to sqrt(5000 v)
      12.16

    References:
      Huang et al., "SPAM: Spike-Aware Adam with Momentum Reset for Stable LLM Training"
      (arXiv 2501.06842).
    """
    where = "clip_spikes"
    threshold = _checks.check_float(where, "threshold", threshold, minimum=0.0)
    b2 = _beta_arg(where, "b2", b2)
    # At least 2: clipping against a second moment that is still exactly 0 would clip every
    # coordinate to 0, and v would never grow (no update, ever).
    clip_delay = _int_arg(where, "clip_delay", clip_delay, minimum=2)
    reset_interval = _int_arg(where, "reset_interval", reset_interval)
    _check_window(where, reset_interval, clip_delay, None)
    nu_dtype = _dtype_arg(where, "nu_dtype", nu_dtype)
    track_clips = _bool_arg(where, "track_clips", track_clips)

    def init_fn(params):
        return ClipSpikesState(count=_zero_count(),
                               nu=optax.tree.zeros_like(params, dtype=nu_dtype),
                               clipped=_counter_init(track_clips),
                               clipped_total=_counter_init(track_clips))

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        g_leaves, treedef = jax.tree.flatten(updates)
        v_leaves = treedef.flatten_up_to(state.nu)
        rule = _spike_rule(_step_number(state.count), threshold, reset_interval, clip_delay,
                           b2)
        one = _lowering.runtime_one(state.count)
        new_v, out, counts = [], [], []
        for leaf, v in zip(g_leaves, v_leaves, strict=True):
            cdt = _compute_dtype(leaf.dtype)
            raw = leaf.astype(cdt)
            # A NaN/Inf coordinate is a spike: dropped (0), in each loop (_lowering.each_loop).
            g_v, g = _lowering.each_loop(raw, _numerics.finite_or_zero, one)
            v0 = _reset(v, rule.reset, cdt)
            v1 = _lowering.stored(_ema(rule.b2, v0, _clipped_square(g_v, v0, rule), v.dtype),
                                  one).astype(v.dtype)
            # The clipped gradient, read back from the new v (see _lowering).
            g_hat, spike = _lowering.spam_clip_from_new_moment(g, v1.astype(cdt),
                                                                rule.limit_ratio, rule.clip_on)
            new_v.append(v1)
            # Written out once, whole (_lowering.stored): Adam's two moment loops read it.
            # Otherwise XLA wrote out only the shared square root and recomputed the rest in
            # both loops, which then read g, the new v and that root (19 passes instead of 16).
            out.append(_lowering.stored(g_hat, one).astype(leaf.dtype))
            if track_clips:
                counts.append(_lowering.count_true(spike, ~jnp.isfinite(raw)))
        clipped, clipped_total = _counters(track_clips, counts, state)
        new_state = ClipSpikesState(count=optax.safe_increment(state.count),
                                    nu=treedef.unflatten(new_v), clipped=clipped,
                                    clipped_total=clipped_total)
        return treedef.unflatten(out), new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


class AdaptiveSpikeClipState(NamedTuple):
    """State of :func:`adaptive_spike_clip`.

    Attributes:
      count: int32 scalar, updates so far (saturating).
      max_ema: per leaf, float32 scalar EMA of ``max |g|``.
      clipped: int32 scalar, coordinates clipped or dropped (non-finite) at the last update;
        -1 unless built with ``track_clips=True``.
      clipped_total: int32 scalar, the same since the start (saturating); -1 when not tracked.
    """

    count: jax.Array  # type: ignore[assignment]  # NamedTuple.count is a method; optax does it
    max_ema: optax.Updates
    clipped: jax.Array
    clipped_total: jax.Array


def adaptive_spike_clip(theta: float = 0.999, *, track_clips: bool = False
                        ) -> optax.GradientTransformationExtraArgs:
    """Stable-SPAM's AdaClip: clips each leaf against a bias-corrected running max of ``|g|``.

    Per leaf, with ``k = count + 1``::

        M <- θ M + (1 - θ) max|g|,   M̂ = M / (1 - θ^k)
        where |g_i| > M̂:  g_i <- g_i · M̂ / max|g|

    Clipped entries keep their sign and their ratio to the largest, which maps exactly to M̂.
    At the first step M̂ = max|g|, so nothing is clipped. ``M`` is a float32 scalar per leaf.

    Policy for non-finite gradients: a NaN/Inf entry is a spike dropped to zero; use
    ``optax.apply_if_finite`` around the chain to skip whole steps instead.

    Args:
      theta: decay θ of the running maximum, in [0, 1).
      track_clips: whether to count clipped coordinates in the state (off: -1).

    Returns:
      An ``optax.GradientTransformationExtraArgs`` whose state is an
      :class:`AdaptiveSpikeClipState`.

    Example:
      >>> import jax.numpy as jnp, optax, optaxsched as oxs
      >>> tx = optax.chain(oxs.adaptive_spike_clip(0.9, track_clips=True), optax.sgd(0.1))
      >>> params = {"w": jnp.zeros(2)}
      >>> state = tx.init(params)
      >>> for g in ([1.0, 1.0], [1.0, 1.0], [100.0, 1.0]):
      ...     updates, state = tx.update({"w": jnp.array(g)}, state, params)
      >>> int(optax.tree.get(state, "clipped"))
      1

    References:
      Huang et al., "Stable-SPAM: How to Train in 4-Bit More Stably than 16-Bit Adam"
      (arXiv 2502.17055).
    """
    theta = _beta_arg("adaptive_spike_clip", "theta", theta)
    track_clips = _bool_arg("adaptive_spike_clip", "track_clips", track_clips)

    def init_fn(params):
        return AdaptiveSpikeClipState(count=_zero_count(), max_ema=_scalar_tree(params),
                                      clipped=_counter_init(track_clips),
                                      clipped_total=_counter_init(track_clips))

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        g_leaves, treedef = jax.tree.flatten(updates)
        max_leaves = treedef.flatten_up_to(state.max_ema)
        kf = _step_number(state.count).astype(jnp.float32)
        th = _rate(theta)
        out, new_max, counts = [], [], []
        for g, mx in zip(g_leaves, max_leaves, strict=True):
            raw = g.astype(_compute_dtype(g.dtype))
            finite = _numerics.finite_or_zero(raw)  # a NaN/Inf coordinate: dropped (0)
            g_max = _lowering.finite_max_abs(g, _numerics.finite_or_zero)
            clip = _adaptive_limit(g_max, mx, th, kf)
            gc, spike = _adaptive_apply(finite, clip)
            out.append(gc.astype(g.dtype))
            new_max.append(clip.max_ema)
            if track_clips:
                counts.append(_lowering.count_true(spike, ~jnp.isfinite(raw)))
        clipped, clipped_total = _counters(track_clips, counts, state)
        new_state = AdaptiveSpikeClipState(
            count=optax.safe_increment(state.count), max_ema=treedef.unflatten(new_max),
            clipped=clipped, clipped_total=clipped_total)
        return treedef.unflatten(out), new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


class AdaptiveGradNormState(NamedTuple):
    """State of :func:`adaptive_grad_norm`.

    Attributes:
      count: int32 scalar, updates so far (saturating).
      norm_mean: per leaf, float32 scalar EMA of the leaf's gradient ℓ2 norm.
      norm_sq_mean: per leaf, float32 scalar EMA of its square.
    """

    count: jax.Array  # type: ignore[assignment]  # NamedTuple.count is a method; optax does it
    norm_mean: optax.Updates
    norm_sq_mean: optax.Updates


def adaptive_grad_norm(gamma1: float = 0.7, gamma2: float = 0.9, eps: float = 1e-8
                       ) -> optax.GradientTransformationExtraArgs:
    """Stable-SPAM's AdaGN: rescales each leaf's gradient to a running estimate of its norm.

    Per leaf, with ``k = count + 1`` and ``‖g‖`` the leaf's ℓ2 norm::

        μ <- γ1 μ + (1 - γ1) ‖g‖,   ν <- γ2 ν + (1 - γ2) ‖g‖²
        μ̂ = μ / (1 - γ1^k),  ν̂ = ν / (1 - γ2^k)
        if ‖g‖ > 0:  g <- g / ‖g‖ · μ̂ / (sqrt(ν̂) + eps)

    The new norm ``μ̂ / (sqrt(ν̂) + eps)`` is at most about 1 and shrinks when the norm
    fluctuates (a spike raises ν̂ more than μ̂). A zero leaf stays zero; its EMAs still decay.

    Policy for non-finite gradients: a NaN/Inf entry is dropped to zero before the norm; the
    norm cannot overflow while the true norm is finite in float32 (it is rescaled when the
    sum of squares overflows), and the statistics saturate at the largest float32. Use
    ``optax.apply_if_finite`` around the chain to skip whole steps instead.

    Args:
      gamma1: decay of the norm EMA, in [0, 1).
      gamma2: decay of the squared-norm EMA, in [0, 1).
      eps: positive constant in the denominator.

    Returns:
      An ``optax.GradientTransformationExtraArgs`` whose state is an
      :class:`AdaptiveGradNormState`.

    Example:
      >>> import jax.numpy as jnp, optax, optaxsched as oxs
      >>> tx = oxs.adaptive_grad_norm()
      >>> state = tx.init({"w": jnp.zeros(2)})
      >>> updates, state = tx.update({"w": jnp.array([3.0, 4.0])}, state)
      >>> [round(float(x), 4) for x in updates["w"]]  # first step: unit norm
      [0.6, 0.8]

    References:
      Huang et al., "Stable-SPAM: How to Train in 4-Bit More Stably than 16-Bit Adam"
      (arXiv 2502.17055).
    """
    where = "adaptive_grad_norm"
    gamma1 = _beta_arg(where, "gamma1", gamma1)
    gamma2 = _beta_arg(where, "gamma2", gamma2)
    eps = _eps_arg(where, eps)

    def init_fn(params):
        return AdaptiveGradNormState(count=_zero_count(), norm_mean=_scalar_tree(params),
                                     norm_sq_mean=_scalar_tree(params))

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        g_leaves, treedef = jax.tree.flatten(updates)
        mean_leaves = treedef.flatten_up_to(state.norm_mean)
        sq_leaves = treedef.flatten_up_to(state.norm_sq_mean)
        kf = _step_number(state.count).astype(jnp.float32)
        g1, g2 = _rate(gamma1), _rate(gamma2)
        e = jnp.asarray(eps, jnp.float32)
        out, new_mean, new_sq = [], [], []
        for g, mean, sq in zip(g_leaves, mean_leaves, sq_leaves, strict=True):
            # A NaN/Inf coordinate is a spike: dropped (0); rebuilt in each pass, no temporary.
            def finite(g=g):
                return _numerics.finite_or_zero(g.astype(_compute_dtype(g.dtype)))

            norm = _lowering.finite_norm(g, lambda raw: finite(raw))
            factor, mean1, sq1 = _norm_factor(norm, mean, sq, g1, g2, e, kf)
            x = finite()
            out.append((x * factor.astype(x.dtype)).astype(g.dtype))
            new_mean.append(mean1)
            new_sq.append(sq1)
        new_state = AdaptiveGradNormState(count=optax.safe_increment(state.count),
                                          norm_mean=treedef.unflatten(new_mean),
                                          norm_sq_mean=treedef.unflatten(new_sq))
        return treedef.unflatten(out), new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


class ResetEveryState(NamedTuple):
    """State of :func:`reset_every`.

    Attributes:
      count: int32 scalar, updates so far (saturating); never reset.
      inner_state: the wrapped transform's state.
    """

    count: jax.Array  # type: ignore[assignment]  # NamedTuple.count is a method; optax does it
    inner_state: optax.OptState


# optax.inject_hyperparams' fields: hyperparameters are settings, not moments, so a reset never
# restores them (a learning rate lowered by hand stays lowered).
_ALWAYS_KEPT = frozenset({"hyperparams", "hyperparams_states"})


def _kept(path: tuple, keep: frozenset[str]) -> bool:
    names = keep | _ALWAYS_KEPT
    return any(isinstance(key, jax.tree_util.GetAttrKey) and key.name in names for key in path)


def reset_every(inner: optax.GradientTransformation, interval: int, *,
                keep: Sequence[str] | str = ("count",)) -> optax.GradientTransformationExtraArgs:
    """Re-initialises the inner transform's state every ``interval`` steps (momentum reset).

    At the updates with ``k = count + 1 = interval, 2 interval, ...`` the inner state is
    replaced by ``inner.init(params)`` *before* the inner update runs, except for the state
    fields named in ``keep``: every leaf under a NamedTuple field with one of those names
    (anywhere in the inner state) is carried over.

    * ``keep=("count",)`` (default): the moments restart from zero but step counts go on, so
      Adam's bias correction is not reset. This is SPAM's momentum reset:
      ``reset_every(optax.scale_by_adam(b1, b2, eps), 500)``.
    * ``keep=()``: everything restarts, counts included, so Adam's bias correction restarts at
      1. This is Stable-SPAM's reset: ``reset_every(optax.scale_by_adam(...), 1000, keep=())``.

    Schedules inside ``optax.inject_hyperparams`` keep their position with the default, since
    their state is a ``count`` field. The injected values themselves (the ``hyperparams`` and
    ``hyperparams_states`` fields) are always carried over, whatever ``keep`` says: they are
    settings, not moments, and a learning rate changed by hand must not snap back at a reset.
    Only NamedTuple fields match (dict keys never do, so a parameter named ``count`` is not
    affected).

    The fresh state comes from ``inner.init(params)``; when ``update`` is called without params
    the updates stand in for them (same shapes and dtypes), which is right for every transform
    whose initial state depends only on shapes (moments, counts). The reset is a select between
    the fresh and the old state, fused by XLA into the inner update. Non-finite gradients are
    simply handed to the inner transform.

    Args:
      inner: the transform to reset (an ``optax.GradientTransformation``).
      interval: reset period in steps, a positive integer.
      keep: names of the state fields to carry over (a string or a sequence of strings).

    Returns:
      An ``optax.GradientTransformationExtraArgs`` whose state is a :class:`ResetEveryState`.

    Example:
      >>> import jax.numpy as jnp, optax, optaxsched as oxs
      >>> tx = oxs.reset_every(optax.scale_by_adam(), 2)
      >>> state = tx.init({"w": jnp.zeros(1)})
      >>> for _ in range(2):
      ...     _, state = tx.update({"w": jnp.ones(1)}, state)
      >>> state.inner_state.mu["w"].tolist(), int(state.inner_state.count)  # reset at k = 2
      ([0.10000000149011612], 2)

    References:
      Huang et al., "SPAM: Spike-Aware Adam with Momentum Reset for Stable LLM Training"
      (arXiv 2501.06842); Huang et al., "Stable-SPAM" (arXiv 2502.17055).
    """
    where = "reset_every"
    if not (callable(getattr(inner, "init", None)) and callable(getattr(inner, "update", None))):
        _checks.fail(where, "inner", "an optax GradientTransformation", inner)
    interval = _int_arg(where, "interval", interval, minimum=1)
    if isinstance(keep, str):
        keep = (keep,)
    if isinstance(keep, (bytes, dict)) or not isinstance(keep, (list, tuple, set, frozenset)):
        _checks.fail(where, "keep", "a string or a sequence of strings", keep)
    for name in keep:
        if not isinstance(name, str):
            _checks.fail(where, "keep", "a string or a sequence of strings", keep)
    keep_names = frozenset(keep)
    inner = optax.with_extra_args_support(inner)

    def init_fn(params):
        return ResetEveryState(count=_zero_count(), inner_state=inner.init(params))

    def update_fn(updates, state, params=None, **extra_args):
        k = _step_number(state.count)
        _, reset = _phase(k, interval)
        fresh = inner.init(params if params is not None else updates)

        def choose(path, new, old):
            if _kept(path, keep_names):
                return old
            return jnp.where(reset, jnp.asarray(new, old.dtype), old)

        inner_state = jax.tree_util.tree_map_with_path(choose, fresh, state.inner_state)
        updates, inner_state = inner.update(updates, inner_state, params, **extra_args)
        return updates, ResetEveryState(count=optax.safe_increment(state.count),
                                        inner_state=inner_state)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def reset_warmup(interval: int, warmup_steps: int) -> optax.Schedule:
    """SPAM's post-reset step-size factor as a schedule, to multiply into a learning rate.

    With ``k = count + 1`` the reference's step and ``c = k mod interval`` the steps since the
    last reset (resets at ``k = interval, 2 interval, ...``)::

        factor(count) = 1 - 0.99 (1 + cos(pi c / (N + 1))) / 2    if k >= interval and c < N
                      = 1                                          otherwise

    with ``N = warmup_steps``: 0.01 at each reset step, rising along a cosine to about 1 after
    ``N`` steps, and 1 before the first reset. Use it with :func:`reset_every` (same
    ``interval``), e.g. ``optax.scale_by_learning_rate(oxs.multiply(3e-4,
    oxs.reset_warmup(500, 150)))``.

    Args:
      interval: reset period in steps, a positive integer.
      warmup_steps: warmup length N, an integer in [0, interval] (0: no warmup).

    Returns:
      A schedule ``count -> float32`` (count: any int or float dtype, scalar or array).

    Example:
      >>> import numpy as np, optaxsched as oxs
      >>> factor = oxs.reset_warmup(500, 150)
      >>> [round(float(x), 4) for x in factor(np.array([0, 498, 499, 500, 649]))]
      [1.0, 1.0, 0.01, 0.0101, 1.0]

    References:
      Huang et al., "SPAM: Spike-Aware Adam with Momentum Reset for Stable LLM Training"
      (arXiv 2501.06842).
    """
    where = "reset_warmup"
    interval = _int_arg(where, "interval", interval, minimum=1)
    warmup_steps = _int_arg(where, "warmup_steps", warmup_steps)
    _check_window(where, interval, None, warmup_steps)

    def schedule(count):
        if not isinstance(count, jax.Array):
            # A Python or NumPy integer beyond int32 ("any int"): clip on the host, where it is
            # exact, before JAX would refuse it (OverflowError) or wrap it.
            host = np.asarray(count)
            if np.issubdtype(host.dtype, np.integer) or host.dtype == object:
                count = np.asarray(np.clip(host, -1, _INT32_MAX - 1)).astype(np.int32)
        count = jnp.asarray(count)
        if not jnp.issubdtype(count.dtype, jnp.integer):
            count = jnp.floor(jnp.clip(count.astype(jnp.float32), -1.0, float(2**31 - 256)))
        count = jnp.clip(count, -1, _INT32_MAX - 1).astype(jnp.int32)
        return _post_reset_factor(count + 1, interval, warmup_steps)

    return schedule
