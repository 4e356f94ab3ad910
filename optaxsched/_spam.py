r"""SPAM: Spike-Aware Adam with Momentum Reset (Huang et al., ICLR 2025, arXiv 2501.06842).

Adam with spike-aware clipping of each gradient coordinate against the second moment, a periodic
momentum reset and a cosine warmup of the step size after each reset. Fused: :func:`scale_by_spam`
and :func:`spam`. Parts that chain with any optax transform: :func:`clip_spikes`,
:func:`reset_every` (also Stable-SPAM's reset) and :func:`reset_warmup`. With
``weight_decay = 0`` the parts reproduce the fused optimizer::

    optax.chain(oxs.clip_spikes(threshold, b2, clip_delay, reset_interval=interval),
                oxs.reset_every(optax.scale_by_adam(b1, b2, eps), interval),
                optax.scale_by_learning_rate(oxs.multiply(lr, oxs.reset_warmup(interval, n))))

up to where ``eps`` sits: the reference adds it to the un-corrected ``sqrt(v)``, optax to the
bias-corrected one (an injected ``eps / sqrt(1 - b2**k)`` makes them identical). The fused
version keeps one parameter-sized buffer fewer.

Steps are numbered as in the paper's code, ``k = count + 1`` (optax counts updates from 0).
Policies, shared with Stable-SPAM (docs/design.md): a NaN/Inf gradient coordinate is a spike of
unknown size, dropped to zero, and the step is applied (``optax.apply_if_finite(oxs.spam(...))``
skips whole steps instead, at the cost of a global finiteness pass); stored moments saturate at
their dtype's largest finite value; low-precision leaves are computed in float32. The clip
counters ``clipped``/``clipped_total`` are opt-in (``track_clips=True``), otherwise -1; read
them with ``optax.tree.get(state, "clipped")``. Their cost and the step time against
``optax.adam`` are in ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from optaxsched import _checks, _lowering
from optaxsched import _spike_common as common
from optaxsched._numerics import (
    INT32_MAX,
    Rate,
    compute_dtype,
    debias,
    finite_or_zero,
    rate,
    saturate,
    step_number,
    store,
)

__all__ = [
    "SpamState",
    "scale_by_spam",
    "spam",
    "ClipSpikesState",
    "clip_spikes",
    "ResetEveryState",
    "reset_every",
    "reset_warmup",
]

# The reference's post-reset factor starts at 1 - 0.99 = 0.01.
_WARMUP_DEPTH = 0.99


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


# ------------------------------------------------------------------------------------------------
# Algorithm 1, one leaf.
# ------------------------------------------------------------------------------------------------


class _SpikeRule(NamedTuple):
    """SPAM's clipping rule at one step (scalars)."""

    reset: jax.Array  # whether this step resets the moments (before its update)
    threshold: jax.Array  # θ
    clip_on: jax.Array  # whether clipping is active at this step
    b2: Rate


def _spike_rule(k: jax.Array, threshold: Any, reset_interval: Any, clip_delay: Any,
                b2: Any) -> _SpikeRule:
    """No clipping in the first ``clip_delay`` steps of training nor of each reset window, where
    ``v`` is still near 0."""
    steps_since_reset, is_reset = common.phase(k, reset_interval)
    theta = jnp.asarray(threshold, jnp.float32)
    clip_on = (theta > 0) & (k >= clip_delay) & (steps_since_reset >= clip_delay)
    return _SpikeRule(is_reset, theta, clip_on, rate(b2))


def _ema(r: Rate, old: jax.Array, new: jax.Array, dtype: Any) -> jax.Array:
    """``b old + (1 - b) new`` (compute dtype), saturated so that storing it in ``dtype`` stays
    finite."""
    cdt = new.dtype
    return saturate(r.value.astype(cdt) * old + r.complement.astype(cdt) * new, dtype)


def _clip_and_update_v(g_for_v: jax.Array, g: jax.Array, v_old: jax.Array, rule: _SpikeRule,
                       v_dtype: Any, one: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Spike-aware clipping against the old ``v``, then ``v``'s update: (ĝ, new v, spike mask).

    ``g² > θ v  ->  ĝ = sign(g) sqrt(θ v)``, then ``v <- b2 v + (1 - b2) ĝ²``. ``g_for_v`` and
    ``g`` are the same gradient, one copy per loop (``_lowering.each_loop``).
    """
    # ĝ² = min(g², θ v) needs no square root.
    g2 = g_for_v * g_for_v
    g_hat_sq = jnp.where(rule.clip_on, jnp.minimum(g2, rule.threshold.astype(g2.dtype) * v_old),
                         g2)
    v_new = _lowering.stored(_ema(rule.b2, v_old, g_hat_sq, v_dtype), one).astype(v_dtype)
    # ĝ itself, read back from the new v: the same value, and it lets v be updated in place.
    g_hat, spike = _lowering.spam_clip_from_new_moment(g, v_new.astype(g.dtype), rule.threshold,
                                                        rule.b2, rule.clip_on)
    return g_hat, v_new, spike


def _spam_leaf(g: jax.Array, m: jax.Array, v: jax.Array, rule: _SpikeRule, b1: Rate,
               one: jax.Array) -> tuple[jax.Array, jax.Array, tuple[jax.Array, jax.Array]]:
    """Algorithm 1 on one leaf: reset, clip against the old ``v``, update ``m`` and ``v``.

    Returns the new ``m`` and ``v`` and, for the opt-in counters, the masks of clipped and of
    non-finite coordinates.
    """
    cdt = compute_dtype(g.dtype)
    raw = g.astype(cdt)
    # A NaN/Inf coordinate is a spike: dropped (0), in each loop that reads g.
    g_for_v, g = _lowering.each_loop(raw, finite_or_zero, one)
    # 1. Momentum reset (k mod ΔT = 0), before this step's update.
    m_old, v_old = common.reset(m, rule.reset, cdt), common.reset(v, rule.reset, cdt)
    # 2-3. ĝ = clip(g) against the old v;  v <- b2 v + (1 - b2) ĝ²;  m <- b1 m + (1 - b1) ĝ.
    g_hat, v_new, spike = _clip_and_update_v(g_for_v, g, v_old, rule, v.dtype, one)
    m_new = _lowering.stored(_ema(b1, m_old, g_hat, m.dtype), one).astype(m.dtype)
    return m_new, v_new, (spike, ~jnp.isfinite(raw))


def _post_reset_factor(k: jax.Array, interval: Any, warmup_steps: Any) -> jax.Array:
    """SPAM's step-size factor: ``1 - 0.99 (1 + cos(pi c / (N + 1))) / 2`` for ``c < N``.

    ``c = k mod interval`` is the number of steps since the last reset (0 at the reset step);
    before the first reset, and from ``c = N`` on, the factor is 1.
    """
    interval = jnp.asarray(interval, jnp.int32)
    n = jnp.asarray(warmup_steps, jnp.int32)
    c, _ = common.phase(k, interval)
    # The reference restarts its warmup counter at the end of a step, so a reset at k = 1
    # (interval 1) starts no warmup; it is a no-op anyway, the moments are still zero.
    active = (interval > 0) & (k >= jnp.maximum(interval, 2)) & (c < n)
    cf = c.astype(jnp.float32)
    depth = _WARMUP_DEPTH * 0.5 * (1.0 + jnp.cos(jnp.pi * cf / (n.astype(jnp.float32) + 1.0)))
    return jnp.where(active, 1.0 - depth, 1.0).astype(jnp.float32)


# ------------------------------------------------------------------------------------------------
# The fused optimizer.
# ------------------------------------------------------------------------------------------------


def _validate_spam(where: str, b1, b2, eps, threshold, reset_interval, warmup_steps,
                   clip_delay, mu_dtype, nu_dtype, track_clips
                   ) -> tuple[Any, Any, Any, Any, Any, Any, Any, Any, Any, Any]:
    b1 = common.beta_arg(where, "b1", b1)
    b2 = common.beta_arg(where, "b2", b2)
    eps = common.eps_arg(where, eps)
    threshold = _checks.check_float(where, "threshold", threshold, minimum=0.0)
    reset_interval = common.int_arg(where, "reset_interval", reset_interval)
    warmup_steps = common.int_arg(where, "warmup_steps", warmup_steps)
    # At least 2: clipping against a second moment that is still exactly 0 would clip every
    # coordinate to 0, and v would never grow (no update, ever).
    clip_delay = common.int_arg(where, "clip_delay", clip_delay, minimum=2)
    common.check_window(where, reset_interval, clip_delay, warmup_steps)
    mu_dtype = common.dtype_arg(where, "mu_dtype", mu_dtype)
    nu_dtype = common.dtype_arg(where, "nu_dtype", nu_dtype)
    track_clips = common.bool_arg(where, "track_clips", track_clips)
    return (b1, b2, eps, threshold, reset_interval, warmup_steps, clip_delay, mu_dtype, nu_dtype,
            track_clips)


def _spam(where: str, b1, b2, eps, threshold, reset_interval, warmup_steps, clip_delay,
          mu_dtype, nu_dtype, track_clips, learning_rate=None, weight_decay=0.0, mask=None
          ) -> optax.GradientTransformationExtraArgs:
    """Shared by scale_by_spam (learning_rate None: returns the direction) and spam.

    Adam's passes and nothing else: ``v`` (reads g, v), ``m`` (reads g, m and the new v), the
    direction (reads m, v; fused with the caller's parameter update). The opt-in counters add
    one reduction over g and the new v.
    """

    def init_fn(params):
        _checks.require_float_leaves(where, params)
        return SpamState(count=common.zero_count(),
                         mu=optax.tree.zeros_like(params, dtype=mu_dtype),
                         nu=optax.tree.zeros_like(params, dtype=nu_dtype),
                         clipped=common.counter_init(track_clips),
                         clipped_total=common.counter_init(track_clips))

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        g_leaves, treedef = jax.tree.flatten(updates)
        k = step_number(state.count)
        rule = _spike_rule(k, threshold, reset_interval, clip_delay, b2)
        rate1 = rate(b1)
        kf = k.astype(jnp.float32)
        # The reference's step size s_k sqrt(1 - b2^k) / (1 - b1^k), s_k the post-reset warmup.
        step_size = (_post_reset_factor(k, reset_interval, warmup_steps)
                     * jnp.sqrt(debias(rule.b2, kf)) / debias(rate1, kf))

        one = _lowering.runtime_one(state.count)
        new_m, new_v, counts = [], [], []
        for g, m, v in zip(g_leaves, treedef.flatten_up_to(state.mu),
                           treedef.flatten_up_to(state.nu), strict=True):
            m1, v1, (spike, dropped) = _spam_leaf(g, m, v, rule, rate1, one)
            new_m.append(m1)
            new_v.append(v1)
            if track_clips:
                counts.append(_lowering.count_true(spike, dropped))

        # 4. The direction s_k sqrt(1 - b2^k) / (1 - b1^k) · m / (sqrt(v) + eps): eps is added to
        # the un-corrected sqrt(v), as in the reference.
        direction = []
        for g, m1, v1 in zip(g_leaves, new_m, new_v, strict=True):
            cdt = compute_dtype(g.dtype)
            direction.append(step_size.astype(cdt) * m1.astype(cdt)
                             / (jnp.sqrt(v1.astype(cdt))
                                + jnp.asarray(eps, jnp.float32).astype(cdt)))
        if learning_rate is not None:
            direction = common.apply_step(where, direction, params, treedef, learning_rate,
                                          state.count, weight_decay, mask,
                                          decay_after_step=True)
        out = [store(d, g.dtype) for d, g in zip(direction, g_leaves, strict=True)]
        clipped, clipped_total = common.counters(track_clips, counts, state)
        new_state = SpamState(count=optax.safe_increment(state.count),
                              mu=treedef.unflatten(new_m), nu=treedef.unflatten(new_v),
                              clipped=clipped, clipped_total=clipped_total)
        return treedef.unflatten(out), new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def scale_by_spam(b1: float = 0.9, b2: float = 0.999, eps: float = 1e-6,
                  threshold: float = 5000.0, reset_interval: int = 500, warmup_steps: int = 150,
                  clip_delay: int = 20, *, mu_dtype: Any = None, nu_dtype: Any = None,
                  track_clips: bool = False) -> optax.GradientTransformationExtraArgs:
    r"""Rescale updates according to the SPAM algorithm (Adam with spike-aware clipping).

    Each gradient coordinate whose square exceeds ``threshold`` times the second moment is
    clipped to that bound, keeping its sign; the moments are reset to zero every
    ``reset_interval`` steps, and the step size rises again along a cosine after each reset.
    With :math:`k` the step (from 1), :math:`\theta` the threshold, :math:`\Delta T` the reset
    interval, :math:`N` the warmup length and :math:`c = k \bmod \Delta T`:

    .. math::

      \begin{align*}
        m_{k-1}, v_{k-1} &\leftarrow 0, 0 \quad \text{if } c = 0 \\
        \hat g_k &= \operatorname{sign}(g_k) \sqrt{\theta\, v_{k-1}}
          \quad \text{where } g_k^2 > \theta\, v_{k-1}, \text{ else } g_k \\
        m_k &= \beta_1 m_{k-1} + (1 - \beta_1)\, \hat g_k \\
        v_k &= \beta_2 v_{k-1} + (1 - \beta_2)\, \hat g_k^2 \\
        s_k &= 1 - 0.99\, \tfrac{1 + \cos(\pi c / (N + 1))}{2}
          \quad \text{if } k \ge \Delta T,\ c < N, \text{ else } 1 \\
        u_k &= s_k\, \frac{\sqrt{1 - \beta_2^k}}{1 - \beta_1^k}
          \cdot \frac{m_k}{\sqrt{v_k} + \epsilon}
      \end{align*}

    Clipping is off while :math:`k < \text{clip\_delay}` or :math:`c < \text{clip\_delay}`,
    where :math:`v` is still near 0. As in the reference, the bias-correction step :math:`k` is
    never reset and ``eps`` is added to the un-corrected :math:`\sqrt{v}` (optax's Adam adds it
    to the corrected one). Sparse momentum (the reference's ``density < 1``) is not implemented.
    ``threshold = 0`` turns clipping off, ``reset_interval = 0`` the resets and the warmup.

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
      track_clips: whether to count clipped and dropped coordinates in the state (one more
        reduction per leaf, over g and the new v); otherwise the counters hold -1. Measured
        cost: the step took 1.39-1.42x ``optax.adam``'s with it against 1.06-1.09x without
        (2-core CPU, 16M-64M float32 parameters; ``benchmarks/RESULTS.md``, ``step_time``).

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
      Huang, Zhu, Jin, Liu, Wang, Liu, `SPAM: Spike-Aware Adam with Momentum Reset for Stable
      LLM Training <https://arxiv.org/abs/2501.06842>`_, ICLR 2025.
    """
    args = _validate_spam("scale_by_spam", b1, b2, eps, threshold, reset_interval, warmup_steps,
                          clip_delay, mu_dtype, nu_dtype, track_clips)
    return _spam("scale_by_spam", *args)


def spam(learning_rate: optax.ScalarOrSchedule, b1: float = 0.9, b2: float = 0.999,
         eps: float = 1e-6, threshold: float = 5000.0, reset_interval: int = 500,
         warmup_steps: int = 150, clip_delay: int = 20, weight_decay: float = 0.0, *,
         mu_dtype: Any = None, nu_dtype: Any = None, track_clips: bool = False,
         mask: Any = None) -> optax.GradientTransformationExtraArgs:
    r"""The SPAM optimizer: :func:`scale_by_spam`, the learning rate and decoupled weight decay.

    With :math:`d_k` the :func:`scale_by_spam` direction and :math:`\eta_k` the learning rate
    (a schedule is called with optax's count, 0 at the first update), the weight decay
    :math:`\lambda` acts after the step and is not scaled by the post-reset factor, as in the
    reference:

    .. math::

      w_k = (w_{k-1} - \eta_k d_k)(1 - \eta_k \lambda)

    With ``weight_decay = 0`` this is exactly
    ``optax.chain(scale_by_spam(...), optax.scale_by_learning_rate(learning_rate))``. Every
    numeric argument can be injected with ``optax.inject_hyperparams(oxs.spam)(...)``; with
    bfloat16 parameters pass ``hyperparam_dtype=jnp.float32`` there (bfloat16 rounds
    ``b2 = 0.999`` to 1.0).

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
      Huang et al., `SPAM: Spike-Aware Adam with Momentum Reset for Stable LLM Training
      <https://arxiv.org/abs/2501.06842>`_, ICLR 2025.
    """
    where = "spam"
    learning_rate = common.learning_rate_arg(where, learning_rate)
    args = _validate_spam(where, b1, b2, eps, threshold, reset_interval, warmup_steps,
                          clip_delay, mu_dtype, nu_dtype, track_clips)
    weight_decay = _checks.check_float(where, "weight_decay", weight_decay, minimum=0.0)
    mask = common.mask_arg(where, mask)
    return _spam(where, *args, learning_rate=learning_rate, weight_decay=weight_decay,
                 mask=mask)


# ------------------------------------------------------------------------------------------------
# The parts.
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
    r"""SPAM's spike-aware clipping as a stand-alone transform, with its own second moment.

    Keeps :math:`v`, a moving average of the squared clipped gradient, and clips each
    coordinate whose square exceeds :math:`\theta` times it (the value before this step's
    update), keeping its sign:

    .. math::

      \begin{align*}
        \hat g_k &= \operatorname{sign}(g_k) \sqrt{\theta\, v_{k-1}}
          \quad \text{where } g_k^2 > \theta\, v_{k-1}, \text{ else } g_k \\
        v_k &= \beta_2 v_{k-1} + (1 - \beta_2)\, \hat g_k^2
      \end{align*}

    Clipping is off for the first ``clip_delay - 1`` steps. With ``reset_interval > 0``,
    :math:`v` is zeroed every ``reset_interval`` steps and clipping pauses for ``clip_delay``
    steps, as in SPAM. Placed before any optimizer (``optax.sgd``, ``optax.lion``) it protects
    it from gradient spikes; before a reset Adam (:func:`reset_every`) it reproduces SPAM's
    clipping, at the cost of a second copy of :math:`v`. A NaN/Inf entry is dropped to zero.

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
      Huang et al., `SPAM: Spike-Aware Adam with Momentum Reset for Stable LLM Training
      <https://arxiv.org/abs/2501.06842>`_, ICLR 2025.
    """
    where = "clip_spikes"
    threshold = _checks.check_float(where, "threshold", threshold, minimum=0.0)
    b2 = common.beta_arg(where, "b2", b2)
    # At least 2: clipping against a second moment that is still exactly 0 would clip every
    # coordinate to 0, and v would never grow (no update, ever).
    clip_delay = common.int_arg(where, "clip_delay", clip_delay, minimum=2)
    reset_interval = common.int_arg(where, "reset_interval", reset_interval)
    common.check_window(where, reset_interval, clip_delay, None)
    nu_dtype = common.dtype_arg(where, "nu_dtype", nu_dtype)
    track_clips = common.bool_arg(where, "track_clips", track_clips)

    def init_fn(params):
        _checks.require_float_leaves(where, params)
        return ClipSpikesState(count=common.zero_count(),
                               nu=optax.tree.zeros_like(params, dtype=nu_dtype),
                               clipped=common.counter_init(track_clips),
                               clipped_total=common.counter_init(track_clips))

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        g_leaves, treedef = jax.tree.flatten(updates)
        rule = _spike_rule(step_number(state.count), threshold, reset_interval, clip_delay, b2)
        one = _lowering.runtime_one(state.count)
        new_v, out, counts = [], [], []
        for leaf, v in zip(g_leaves, treedef.flatten_up_to(state.nu), strict=True):
            cdt = compute_dtype(leaf.dtype)
            raw = leaf.astype(cdt)
            # A NaN/Inf coordinate is a spike: dropped (0), in each loop that reads it.
            g_for_v, g = _lowering.each_loop(raw, finite_or_zero, one)
            v_old = common.reset(v, rule.reset, cdt)
            g_hat, v1, spike = _clip_and_update_v(g_for_v, g, v_old, rule, v.dtype, one)
            new_v.append(v1)
            # Written out once, whole (_lowering.stored): a chained Adam's two moment loops read
            # it. Otherwise XLA wrote out only the shared square root and recomputed the rest in
            # both loops, which then read g, the new v and that root (19 passes instead of 16).
            out.append(_lowering.stored(g_hat, one).astype(leaf.dtype))
            if track_clips:
                counts.append(_lowering.count_true(spike, ~jnp.isfinite(raw)))
        clipped, clipped_total = common.counters(track_clips, counts, state)
        new_state = ClipSpikesState(count=optax.safe_increment(state.count),
                                    nu=treedef.unflatten(new_v), clipped=clipped,
                                    clipped_total=clipped_total)
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


def _check_kept_fields(where: str, keep: Any, inner_state: Any) -> None:
    """A named error when a name in ``keep`` is no NamedTuple field holding arrays anywhere in
    the inner state: it would silently keep nothing (a misspelt ``"cout"``)."""
    fields = {key.name for path, _ in jax.tree_util.tree_flatten_with_path(inner_state)[0]
              for key in path if isinstance(key, jax.tree_util.GetAttrKey)}
    missing = sorted(set(keep) - fields)
    if missing:
        _checks.fail(where, "keep", f"names of fields of the inner state, which has "
                     f"{sorted(fields)} ({missing} match none)", keep)


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
      keep: names of the state fields to carry over (a string or a sequence of strings); other
        than the default, each must name a field of the inner state (checked at ``init``).

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
      Huang et al., `SPAM: Spike-Aware Adam with Momentum Reset for Stable LLM Training
      <https://arxiv.org/abs/2501.06842>`_; Huang et al., `Stable-SPAM: How to Train in 4-Bit
      More Stably than 16-Bit Adam <https://arxiv.org/abs/2502.17055>`_.
    """
    where = "reset_every"
    if not (callable(getattr(inner, "init", None)) and callable(getattr(inner, "update", None))):
        _checks.fail(where, "inner", "an optax GradientTransformation", inner)
    interval = common.int_arg(where, "interval", interval, minimum=1)
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
        inner_state = inner.init(params)
        if keep_names != frozenset(("count",)):  # the default also serves inners without a count
            _check_kept_fields(where, keep, inner_state)
        return ResetEveryState(count=common.zero_count(), inner_state=inner_state)

    def update_fn(updates, state, params=None, **extra_args):
        _, is_reset = common.phase(step_number(state.count), interval)
        fresh = inner.init(params if params is not None else updates)

        def choose(path, new, old):
            if _kept(path, keep_names):
                return old
            return jnp.where(is_reset, jnp.asarray(new, old.dtype), old)

        inner_state = jax.tree_util.tree_map_with_path(choose, fresh, state.inner_state)
        updates, inner_state = inner.update(updates, inner_state, params, **extra_args)
        return updates, ResetEveryState(count=optax.safe_increment(state.count),
                                        inner_state=inner_state)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def reset_warmup(interval: int, warmup_steps: int) -> optax.Schedule:
    r"""SPAM's post-reset step-size factor as a schedule, to multiply into a learning rate.

    With :math:`k` = ``count + 1``, :math:`c = k \bmod \text{interval}` the steps since the last
    reset and :math:`N` = ``warmup_steps``:

    .. math::

      s_k = 1 - 0.99\, \frac{1 + \cos(\pi c / (N + 1))}{2}
        \quad \text{if } k \ge \text{interval and } c < N, \text{ else } 1

    0.01 at each reset step, rising along a cosine to about 1 after :math:`N` steps, and 1
    before the first reset. Use it with :func:`reset_every` (same ``interval``), e.g.
    ``optax.scale_by_learning_rate(oxs.multiply(3e-4, oxs.reset_warmup(500, 150)))``.

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
      Huang et al., `SPAM: Spike-Aware Adam with Momentum Reset for Stable LLM Training
      <https://arxiv.org/abs/2501.06842>`_, ICLR 2025.
    """
    where = "reset_warmup"
    interval = common.int_arg(where, "interval", interval, minimum=1)
    warmup_steps = common.int_arg(where, "warmup_steps", warmup_steps)
    common.check_window(where, interval, None, warmup_steps)

    def schedule(count):
        if not isinstance(count, jax.Array):
            # A Python or NumPy integer beyond int32 ("any int"): clip on the host, where it is
            # exact, before JAX would refuse it (OverflowError) or wrap it.
            host = np.asarray(count)
            if np.issubdtype(host.dtype, np.integer) or host.dtype == object:
                count = np.asarray(np.clip(host, -1, INT32_MAX - 1)).astype(np.int32)
        count = jnp.asarray(count)
        if not jnp.issubdtype(count.dtype, jnp.integer):
            count = jnp.floor(jnp.clip(count.astype(jnp.float32), -1.0, float(2**31 - 256)))
        count = jnp.clip(count, -1, INT32_MAX - 1).astype(jnp.int32)
        return _post_reset_factor(count + 1, interval, warmup_steps)

    return schedule
