r"""Stable-SPAM (Huang et al. 2025, arXiv 2502.17055): AdaClip, AdaGN, reset Adam.

Stable-SPAM clips each tensor's gradient against a running maximum of ``|g|`` (AdaClip), rescales
it to a running estimate of its norm (AdaGN), and feeds the result to Adam whose moments are reset
periodically. Fused: :func:`scale_by_stable_spam` and :func:`stable_spam`. Parts that chain with
any optax transform: :func:`adaptive_spike_clip`, :func:`adaptive_grad_norm`, and
:func:`~optaxsched.reset_every` for the reset. With ``t_max=None`` the parts reproduce the fused
optimizer::

    optax.chain(oxs.adaptive_spike_clip(theta), oxs.adaptive_grad_norm(gamma1, gamma2, eps),
                oxs.reset_every(optax.scale_by_adam(b1, b2, eps), interval, keep=()),
                optax.add_decayed_weights(weight_decay), optax.scale_by_learning_rate(lr))

Steps are numbered as in the paper's code, ``k = count + 1``. Policies, shared with SPAM
(docs/design.md): a NaN/Inf gradient coordinate is a spike, dropped to zero, and the step is
applied (``optax.apply_if_finite`` skips whole steps instead); AdaGN's norm cannot overflow
while the true norm is finite in float32, and every statistic saturates at the largest float32;
low-precision leaves are computed in float32; the clip counters are opt-in (``track_clips``).
The per-leaf statistics (``max_ema``, ``norm_mean``, ``norm_sq_mean``) are float32 vectors with
one entry per leaf, in the order of ``jax.tree.leaves(params)``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from optaxsched import _checks, _lowering
from optaxsched import _spike_common as common
from optaxsched._numerics import (
    INT32_MAX,
    Rate,
    compute_dtype,
    debias,
    finite_or_zero,
    largest,
    rate,
    scaled_rate,
    step_number,
    store,
)

__all__ = [
    "StableSpamState",
    "scale_by_stable_spam",
    "stable_spam",
    "AdaptiveSpikeClipState",
    "adaptive_spike_clip",
    "AdaptiveGradNormState",
    "adaptive_grad_norm",
]

_F32_MAX = largest(jnp.float32)
_RESET_ORDERS = ("zero_first", "authors")


class StableSpamState(NamedTuple):
    """State of :func:`scale_by_stable_spam` and :func:`stable_spam`.

    Attributes:
      count: int32 scalar, updates so far (saturating). AdaClip and AdaGN bias corrections use
        ``k = count + 1``; Adam's restart at each reset.
      mu: Adam first moment, like the params (dtype ``mu_dtype`` if given).
      nu: Adam second moment, like the params (dtype ``nu_dtype`` if given).
      max_ema: float32 vector, one entry per leaf: the EMA of ``max |g|`` (AdaClip).
      norm_mean: float32 vector, one entry per leaf: the EMA of the clipped gradient's ℓ2 norm
        (AdaGN).
      norm_sq_mean: float32 vector, one entry per leaf: the EMA of its square (AdaGN).
      clipped: int32 scalar, coordinates clipped by AdaClip or dropped (non-finite) at the last
        update; -1 when the transform was built with ``track_clips=False`` (the default).
      clipped_total: int32 scalar, the same since the start (saturating); -1 when not tracked.
    """

    count: jax.Array  # type: ignore[assignment]  # NamedTuple.count is a method; optax does it
    mu: optax.Updates
    nu: optax.Updates
    max_ema: jax.Array
    norm_mean: jax.Array
    norm_sq_mean: jax.Array
    clipped: jax.Array
    clipped_total: jax.Array


# ------------------------------------------------------------------------------------------------
# AdaClip and AdaGN (per leaf, scalars).
# ------------------------------------------------------------------------------------------------


class _ClipLimit(NamedTuple):
    """AdaClip's per-leaf quantities for one step."""

    limit: jax.Array  # M̂, the clipping threshold
    ratio: jax.Array  # M̂ / max|g|: clipped entries are multiplied by it
    max_ema: jax.Array  # the new EMA M of max|g|
    active: jax.Array  # whether clipping can happen (k > 1)


def _ada_clip_limit(g_max: jax.Array, max_ema: jax.Array, theta: Rate, kf: jax.Array
                    ) -> _ClipLimit:
    """AdaClip's threshold: ``M <- θ M + (1 - θ) max|g|``, ``M̂ = M / (1 - θ^k)``."""
    new_ema = jnp.minimum(theta.value * max_ema + theta.complement * g_max, _F32_MAX)
    limit = jnp.minimum(new_ema / debias(theta, kf), _F32_MAX)
    # The largest entry maps exactly to the threshold; the others keep their ratio to it.
    ratio = limit / jnp.maximum(g_max, jnp.finfo(jnp.float32).tiny)
    return _ClipLimit(limit, ratio, new_ema, kf > 1.0)


def _ada_clip(g: jax.Array, clip: _ClipLimit) -> tuple[jax.Array, jax.Array]:
    """AdaClip: (clipped g, spike mask), ``|g_i| > M̂  ->  g_i · M̂ / max|g|``. At k = 1,
    M̂ = max|g| exactly, so nothing is clipped there (rounding would otherwise make the largest
    entry a coin toss)."""
    spike = clip.active & (jnp.abs(g) > clip.limit.astype(g.dtype))
    return jnp.where(spike, g * clip.ratio.astype(g.dtype), g), spike


def _ada_gn(norm: jax.Array, mean: jax.Array, sq_mean: jax.Array, gamma1: Rate, gamma2: Rate,
            eps: jax.Array, kf: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """AdaGN on one leaf of norm ``norm``: (scalar factor for g, new mean, new squared mean).
    Every statistic saturates at the largest float32, so a huge finite norm leaves them
    finite."""
    norm = jnp.minimum(norm, _F32_MAX)
    new_mean = jnp.minimum(gamma1.value * mean + gamma1.complement * norm, _F32_MAX)
    new_sq = jnp.minimum(gamma2.value * sq_mean + gamma2.complement * norm * norm, _F32_MAX)
    mean_hat = jnp.minimum(new_mean / debias(gamma1, kf), _F32_MAX)
    sq_hat = jnp.minimum(new_sq / debias(gamma2, kf), _F32_MAX)
    # factor = target / ‖g‖ with target = μ̂ / (sqrt(ν̂) + eps). XLA rewrites a / b / c as
    # a / (b c), which overflows for a huge norm (the factor became 0 under jit); so ‖g‖ is
    # split as mantissa · 2^e and the 2^e is applied to μ̂ first (exact).
    mantissa, exponent = jnp.frexp(jnp.where(norm > 0, norm, 1.0))
    factor = jnp.ldexp(mean_hat, -exponent) / ((jnp.sqrt(sq_hat) + eps) * mantissa)
    factor = jnp.where(norm > 0, factor, 1.0)
    return factor, new_mean, new_sq


def _sanitized(g: jax.Array) -> jax.Array:
    """``g`` in its compute dtype, a NaN/Inf coordinate dropped (0): a spike."""
    return finite_or_zero(g.astype(compute_dtype(g.dtype)))


# ------------------------------------------------------------------------------------------------
# The fused optimizer.
# ------------------------------------------------------------------------------------------------


class _StepConstants(NamedTuple):
    """The scalars of one Stable-SPAM step."""

    kf: jax.Array  # k = count + 1, float32 (AdaClip's and AdaGN's bias corrections)
    theta: Rate
    gamma1: Rate  # cosine-scaled when t_max is set
    gamma2: Rate
    b1: Rate  # cosine-scaled when t_max is set
    b2: Rate
    eps: jax.Array
    reset: jax.Array  # whether this step resets Adam's moments
    bc1: jax.Array  # 1 - b1^n, n Adam's step since the last reset
    bc2: jax.Array  # 1 - b2^n


def _cosine_scale(kf: jax.Array, t_max: Any, eta_min: Any) -> tuple[jax.Array, jax.Array]:
    """Stable-SPAM's optional scale ``s_k`` of b1 and gamma1, and ``1 - s_k``."""
    if t_max is None:
        return jnp.ones((), jnp.float32), jnp.zeros((), jnp.float32)
    horizon = jnp.asarray(t_max, jnp.float32) + 1.0
    lo = jnp.asarray(eta_min, jnp.float32)
    angle = jnp.pi * jnp.minimum(kf, horizon) / horizon
    one_minus = (1.0 - lo) * 0.5 * (1.0 - jnp.cos(angle))
    return 1.0 - one_minus, one_minus


def _step_constants(count: jax.Array, b1, b2, eps, gamma1, gamma2, theta, reset_interval,
                    t_max, eta_min) -> _StepConstants:
    k = step_number(count)
    kf = k.astype(jnp.float32)
    scale, one_minus_scale = _cosine_scale(kf, t_max, eta_min)
    rate1 = scaled_rate(rate(b1), scale, one_minus_scale)
    rate2 = rate(b2)
    g1 = scaled_rate(rate(gamma1), scale, one_minus_scale)
    interval = jnp.asarray(reset_interval, jnp.int32)
    steps_since_reset, is_reset = common.phase(k, interval)
    # Adam's bias-correction step restarts at 1 on each reset step.
    n = jnp.where((interval > 0) & (k >= interval), steps_since_reset + 1, k).astype(jnp.float32)
    return _StepConstants(kf, rate(theta), g1, rate(gamma2), rate1, rate2,
                          jnp.asarray(eps, jnp.float32), is_reset, debias(rate1, n),
                          debias(rate2, n))


class _LeafScalars(NamedTuple):
    """Steps 1-2 on one leaf: AdaClip's threshold, AdaGN's factor and the new statistics."""

    clip: _ClipLimit
    factor: jax.Array
    norm_mean: jax.Array
    norm_sq_mean: jax.Array
    clipped: jax.Array  # clipped + dropped entries (0 unless counted)


def _ada_clip_and_gn(g: jax.Array, max_ema: jax.Array, mean: jax.Array, sq: jax.Array,
                     c: _StepConstants, track_clips: bool) -> _LeafScalars:
    """1. AdaClip: ``M <- θ M + (1 - θ) max|g|``, ``M̂ = M / (1 - θ^k)``, clip ``|g_i| > M̂``;
    2. AdaGN: the norm of the clipped gradient and the factor that rescales it. Both from the
    library reductions of ``_lowering.clipped_norm``; the clipped gradient is not written out.
    """

    def limit_of(g_max):
        return jnp.where(c.kf > 1.0, _ada_clip_limit(g_max, max_ema, c.theta, c.kf).limit,
                         jnp.inf)

    def clip_with(x, g_max):
        return _ada_clip(x, _ada_clip_limit(g_max, max_ema, c.theta, c.kf))

    g_max, norm, n_clipped = _lowering.clipped_norm(g, _sanitized, limit_of, clip_with,
                                                    track_clips)
    clip = _ada_clip_limit(g_max, max_ema, c.theta, c.kf)
    factor, new_mean, new_sq = _ada_gn(norm, mean, sq, c.gamma1, c.gamma2, c.eps, c.kf)
    return _LeafScalars(clip, factor, new_mean, new_sq, n_clipped)


def _normalized(g: jax.Array, s: _LeafScalars) -> jax.Array:
    """The clipped, normalised gradient, recomputed from ``g`` and the leaf's scalars."""
    gc, _ = _ada_clip(_sanitized(g), s.clip)
    return gc * s.factor.astype(gc.dtype)


def _adam_moments(r: Rate, old: list[jax.Array], new: list[jax.Array], c: _StepConstants,
                  authors_reset: bool) -> tuple[list[jax.Array], list[jax.Array]]:
    """3-4. Momentum reset and Adam's moving average ``b old + (1 - b) new``, per leaf: (the
    moments this step uses, the moments kept in the state).

    ``"zero_first"``: zeroed, then updated. ``"authors"``: this step continues the old moments
    and the kept ones are zeroed after the step. No overflow guard beyond the storage cast:
    AdaGN bounds what the moments see (saturating them made XLA copy both every step).
    """
    used, kept = [], []
    for x_old, x_new in zip(old, new, strict=True):
        cdt = x_new.dtype
        start = x_old.astype(cdt) if authors_reset else common.reset(x_old, c.reset, cdt)
        x = store(r.value.astype(cdt) * start + r.complement.astype(cdt) * x_new, x_old.dtype)
        used.append(x)
        kept.append(common.reset(x, c.reset, x_old.dtype) if authors_reset else x)
    return used, kept


def _stable_spam(where: str, b1, b2, eps, gamma1, gamma2, theta, reset_interval, t_max, eta_min,
                 mu_dtype, nu_dtype, track_clips, reset_order, learning_rate=None,
                 weight_decay=0.0, mask=None) -> optax.GradientTransformationExtraArgs:
    """Shared by scale_by_stable_spam (learning_rate None: the direction) and stable_spam.

    Passes: AdaClip's max|g| and AdaGN's Σg² per leaf together in one pass, plus one more on
    steps where AdaClip clips (most steps with fresh gradients) or the gradient is not finite;
    then Adam's ``v``, ``m`` and direction passes, each recomputing the clipped, normalised
    gradient from ``g`` and per-leaf scalars.
    """
    authors_reset = reset_order == "authors"

    def init_fn(params):
        _checks.require_float_leaves(where, params)
        return StableSpamState(
            count=common.zero_count(), mu=optax.tree.zeros_like(params, dtype=mu_dtype),
            nu=optax.tree.zeros_like(params, dtype=nu_dtype),
            max_ema=common.per_leaf_zeros(params), norm_mean=common.per_leaf_zeros(params),
            norm_sq_mean=common.per_leaf_zeros(params),
            clipped=common.counter_init(track_clips),
            clipped_total=common.counter_init(track_clips))

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        g_leaves, treedef = jax.tree.flatten(updates)
        n_leaves = len(g_leaves)
        c = _step_constants(state.count, b1, b2, eps, gamma1, gamma2, theta, reset_interval,
                            t_max, eta_min)

        # 1-2. AdaClip and AdaGN: per-leaf scalars from two reductions of each leaf.
        scalars = [_ada_clip_and_gn(g, mx, mean, sq, c, track_clips)
                   for g, mx, mean, sq in zip(
                       g_leaves, common.per_leaf(where, "max_ema", state.max_ema, n_leaves),
                       common.per_leaf(where, "norm_mean", state.norm_mean, n_leaves),
                       common.per_leaf(where, "norm_sq_mean", state.norm_sq_mean, n_leaves),
                       strict=True)]

        # 3-4. Momentum reset and Adam's moments of the clipped, normalised gradient, one copy
        # of g per loop (the normalised gradient is recomputed in each, not written out).
        g_for_v, g_for_m = _lowering.each_loop(g_leaves, list, _lowering.runtime_one(state.count))
        v_used, v_kept = _adam_moments(
            c.b2, treedef.flatten_up_to(state.nu),
            [_normalized(g, s) ** 2 for g, s in zip(g_for_v, scalars, strict=True)],
            c, authors_reset)
        m_used, m_kept = _adam_moments(
            c.b1, treedef.flatten_up_to(state.mu),
            [_normalized(g, s) for g, s in zip(g_for_m, scalars, strict=True)],
            c, authors_reset)

        # 5. The direction (m / (1 - b1^n)) / (sqrt(v / (1 - b2^n)) + eps), with m / (1 - b1^n)
        # as m times a scalar reciprocal: XLA rewrites (a / b) / c as a / (b c), and with b1
        # close to 1 and a tiny eps, (1 - b1^n) (sqrt(v) + eps) is subnormal, flushed to 0 under
        # jit, so a zero gradient gave 0 / 0 = NaN (1 / (1 - b1^n) <= 1 / 1.1e-16 is finite).
        inv_bc1 = 1.0 / c.bc1
        direction = []
        for g, m1, v1 in zip(g_leaves, m_used, v_used, strict=True):
            cdt = compute_dtype(g.dtype)
            direction.append((m1.astype(cdt) * inv_bc1.astype(cdt))
                             / (jnp.sqrt(v1.astype(cdt) / c.bc2.astype(cdt))
                                + c.eps.astype(cdt)))
        if learning_rate is not None:
            direction = common.apply_step(where, direction, params, treedef, learning_rate,
                                          state.count, weight_decay, mask,
                                          decay_after_step=False)
        out = [store(d, g.dtype) for d, g in zip(direction, g_leaves, strict=True)]
        clipped, clipped_total = common.counters(
            track_clips, [s.clipped for s in scalars] if track_clips else [], state)
        new_state = StableSpamState(
            count=optax.safe_increment(state.count),
            mu=treedef.unflatten(m_kept), nu=treedef.unflatten(v_kept),
            max_ema=common.stack_per_leaf([s.clip.max_ema for s in scalars]),
            norm_mean=common.stack_per_leaf([s.norm_mean for s in scalars]),
            norm_sq_mean=common.stack_per_leaf([s.norm_sq_mean for s in scalars]),
            clipped=clipped, clipped_total=clipped_total)
        return treedef.unflatten(out), new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def _validate_stable_spam(where: str, b1, b2, eps, gamma1, gamma2, theta, reset_interval, t_max,
                          eta_min, mu_dtype, nu_dtype, track_clips, reset_order
                          ) -> tuple[Any, Any, Any, Any, Any, Any, Any, Any, Any, Any, Any, Any,
                                     Any]:
    b1 = common.beta_arg(where, "b1", b1)
    b2 = common.beta_arg(where, "b2", b2)
    eps = common.eps_arg(where, eps)
    gamma1 = common.beta_arg(where, "gamma1", gamma1)
    gamma2 = common.beta_arg(where, "gamma2", gamma2)
    theta = common.beta_arg(where, "theta", theta)
    reset_interval = common.int_arg(where, "reset_interval", reset_interval)
    if t_max is not None:
        t_max = common.int_arg(where, "t_max", t_max, minimum=1, maximum=INT32_MAX - 1)
    eta_min = _checks.check_float(where, "eta_min", eta_min, minimum=0.0, maximum=1.0)
    mu_dtype = common.dtype_arg(where, "mu_dtype", mu_dtype)
    nu_dtype = common.dtype_arg(where, "nu_dtype", nu_dtype)
    track_clips = common.bool_arg(where, "track_clips", track_clips)
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
    r"""Rescale updates according to the Stable-SPAM algorithm: AdaClip, AdaGN, reset Adam.

    For each leaf (parameter tensor), with :math:`k` the step (from 1), :math:`n` Adam's step
    since the last reset (:math:`n = k` before the first) and :math:`\|\cdot\|` the ℓ2 norm:

    .. math::

      \begin{align*}
        M_k &= \theta M_{k-1} + (1 - \theta) \max_i |g_{k,i}|, \quad
          \hat M_k = M_k / (1 - \theta^k) \\
        g_{k,i} &\leftarrow g_{k,i}\, \hat M_k / \max_j |g_{k,j}|
          \quad \text{where } |g_{k,i}| > \hat M_k \\
        \mu_k &= \gamma_1 \mu_{k-1} + (1 - \gamma_1) \|g_k\|, \quad
          \nu_k = \gamma_2 \nu_{k-1} + (1 - \gamma_2) \|g_k\|^2 \\
        \hat g_k &= \frac{g_k}{\|g_k\|} \cdot
          \frac{\mu_k / (1 - \gamma_1^k)}{\sqrt{\nu_k / (1 - \gamma_2^k)} + \epsilon} \\
        m_{k-1}, v_{k-1} &\leftarrow 0, 0, \ n = 1 \quad
          \text{if } k \bmod \text{reset\_interval} = 0 \\
        m_k &= \beta_1 m_{k-1} + (1 - \beta_1)\, \hat g_k, \quad
          v_k = \beta_2 v_{k-1} + (1 - \beta_2)\, \hat g_k^2 \\
        u_k &= \frac{m_k / (1 - \beta_1^n)}{\sqrt{v_k / (1 - \beta_2^n)} + \epsilon}
      \end{align*}

    The AdaClip and AdaGN bias corrections use the never-reset step :math:`k`, as
    pytorch-optimizer 4.1.0 does, not the reset counter of the authors' code
    (:ref:`design-stable-spam`); :math:`M, \mu, \nu` are never reset. At :math:`k = 1`,
    :math:`\hat M = \max|g|` exactly and nothing is clipped. A leaf whose clipped gradient is
    all zeros keeps it. Optional cosine scaling (``t_max``): :math:`\beta_1` and
    :math:`\gamma_1` are multiplied by
    :math:`s_k = \eta_{min} + (1 - \eta_{min}) (1 + \cos(\pi \min(k, T + 1) / (T + 1))) / 2`,
    :math:`T` = ``t_max``, which falls to ``eta_min`` and stays there.

    ``reset_order="zero_first"`` (default, as pytorch-optimizer 4.1.0) zeroes the moments and
    then applies the reset step's update from them, a full ``sign(g)``-sized step.
    ``"authors"`` reproduces the authors' ``stablespam.py``: the reset step continues the old
    moments, divided by the bias corrections of :math:`n = 1`, and the zeroed moments act
    from the next step on (a smaller reset step; measured in ``benchmarks/RESULTS.md``). It
    costs more memory traffic on XLA's CPU backend: the update reads the old moments while the
    zeroed ones are written over them, so the compiled step copies both moments first (368 MB
    moved per step against 320 MB for ``"zero_first"`` at 4M float32 parameters,
    ``benchmarks/compile_cost.py``).

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
      track_clips: whether to count clipped and dropped coordinates in the state (from the
        reductions AdaClip makes anyway); otherwise the counters hold -1. Measured cost: +0.02 to
        +0.09 of an Adam step (1.28-1.29x ``optax.adam``'s step with it, 1.20-1.27x without, on a
        2-core CPU at 16M-64M float32 parameters; ``benchmarks/RESULTS.md``, ``step_time``).
      reset_order: ``"zero_first"`` (default) or ``"authors"``, see above.

    Returns:
      An ``optax.GradientTransformationExtraArgs`` whose state is a :class:`StableSpamState`.
      Its per-leaf statistics are flat vectors; states saved before this layout (a tree of
      scalars like the parameters) do not restore.

    Example:
      >>> import jax.numpy as jnp, optax, optaxsched as oxs
      >>> tx = optax.chain(oxs.scale_by_stable_spam(), optax.scale_by_learning_rate(1e-3))
      >>> params = {"w": jnp.zeros(3)}
      >>> state = tx.init(params)
      >>> updates, state = tx.update({"w": jnp.array([1.0, -2.0, 0.5])}, state, params)

    References:
      Huang, Zhu, Jin, Liu, Wang, Liu, `Stable-SPAM: How to Train in 4-Bit More Stably than
      16-Bit Adam <https://arxiv.org/abs/2502.17055>`_, 2025.
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
    r"""The Stable-SPAM optimizer: :func:`scale_by_stable_spam`, learning rate, weight decay.

    With :math:`u_k` the :func:`scale_by_stable_spam` direction and :math:`\eta_k` the learning
    rate (a schedule is called with optax's count, 0 at the first update), decoupled weight
    decay :math:`\lambda` acts before the step, as in the reference:

    .. math::

      w_k = w_{k-1} (1 - \eta_k \lambda) - \eta_k u_k

    which is exactly ``optax.chain(scale_by_stable_spam(...),
    optax.add_decayed_weights(weight_decay, mask), optax.scale_by_learning_rate(lr))``.

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
      Huang et al., `Stable-SPAM: How to Train in 4-Bit More Stably than 16-Bit Adam
      <https://arxiv.org/abs/2502.17055>`_, 2025.
    """
    where = "stable_spam"
    learning_rate = common.learning_rate_arg(where, learning_rate)
    args = _validate_stable_spam(where, b1, b2, eps, gamma1, gamma2, theta, reset_interval,
                                 t_max, eta_min, mu_dtype, nu_dtype, track_clips, reset_order)
    weight_decay = _checks.check_float(where, "weight_decay", weight_decay, minimum=0.0)
    mask = common.mask_arg(where, mask)
    return _stable_spam(where, *args, learning_rate=learning_rate, weight_decay=weight_decay,
                        mask=mask)


# ------------------------------------------------------------------------------------------------
# The parts.
# ------------------------------------------------------------------------------------------------


class AdaptiveSpikeClipState(NamedTuple):
    """State of :func:`adaptive_spike_clip`.

    Attributes:
      count: int32 scalar, updates so far (saturating).
      max_ema: float32 vector, one entry per leaf: the EMA of ``max |g|``.
      clipped: int32 scalar, coordinates clipped or dropped (non-finite) at the last update;
        -1 unless built with ``track_clips=True``.
      clipped_total: int32 scalar, the same since the start (saturating); -1 when not tracked.
    """

    count: jax.Array  # type: ignore[assignment]  # NamedTuple.count is a method; optax does it
    max_ema: jax.Array
    clipped: jax.Array
    clipped_total: jax.Array


def adaptive_spike_clip(theta: float = 0.999, *, track_clips: bool = False
                        ) -> optax.GradientTransformationExtraArgs:
    r"""Stable-SPAM's AdaClip: clips each leaf against a bias-corrected running max of ``|g|``.

    Per leaf, with :math:`k` = ``count + 1``:

    .. math::

      \begin{align*}
        M_k &= \theta M_{k-1} + (1 - \theta) \max_i |g_{k,i}|, \quad
          \hat M_k = M_k / (1 - \theta^k) \\
        g_{k,i} &\leftarrow g_{k,i}\, \hat M_k / \max_j |g_{k,j}|
          \quad \text{where } |g_{k,i}| > \hat M_k
      \end{align*}

    Clipped entries keep their sign and their ratio to the largest, which maps exactly to
    :math:`\hat M`. At the first step :math:`\hat M = \max|g|`, so nothing is clipped. A
    NaN/Inf entry is dropped to zero.

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
      Huang et al., `Stable-SPAM: How to Train in 4-Bit More Stably than 16-Bit Adam
      <https://arxiv.org/abs/2502.17055>`_, 2025.
    """
    where = "adaptive_spike_clip"
    theta = common.beta_arg(where, "theta", theta)
    track_clips = common.bool_arg(where, "track_clips", track_clips)

    def init_fn(params):
        _checks.require_float_leaves(where, params)
        return AdaptiveSpikeClipState(count=common.zero_count(),
                                      max_ema=common.per_leaf_zeros(params),
                                      clipped=common.counter_init(track_clips),
                                      clipped_total=common.counter_init(track_clips))

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        g_leaves, treedef = jax.tree.flatten(updates)
        max_leaves = common.per_leaf(where, "max_ema", state.max_ema, len(g_leaves))
        kf = step_number(state.count).astype(jnp.float32)
        th = rate(theta)
        out, new_max, counts = [], [], []
        for g, mx in zip(g_leaves, max_leaves, strict=True):
            raw = g.astype(compute_dtype(g.dtype))
            finite = finite_or_zero(raw)  # a NaN/Inf coordinate: dropped (0)
            g_max = _lowering.finite_max_abs(g, finite_or_zero)
            clip = _ada_clip_limit(g_max, mx, th, kf)
            gc, spike = _ada_clip(finite, clip)
            out.append(gc.astype(g.dtype))
            new_max.append(clip.max_ema)
            if track_clips:
                counts.append(_lowering.count_true(spike, ~jnp.isfinite(raw)))
        clipped, clipped_total = common.counters(track_clips, counts, state)
        new_state = AdaptiveSpikeClipState(
            count=optax.safe_increment(state.count), max_ema=common.stack_per_leaf(new_max),
            clipped=clipped, clipped_total=clipped_total)
        return treedef.unflatten(out), new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


class AdaptiveGradNormState(NamedTuple):
    """State of :func:`adaptive_grad_norm`.

    Attributes:
      count: int32 scalar, updates so far (saturating).
      norm_mean: float32 vector, one entry per leaf: the EMA of the leaf's gradient ℓ2 norm.
      norm_sq_mean: float32 vector, one entry per leaf: the EMA of its square.
    """

    count: jax.Array  # type: ignore[assignment]  # NamedTuple.count is a method; optax does it
    norm_mean: jax.Array
    norm_sq_mean: jax.Array


def adaptive_grad_norm(gamma1: float = 0.7, gamma2: float = 0.9, eps: float = 1e-8
                       ) -> optax.GradientTransformationExtraArgs:
    r"""Stable-SPAM's AdaGN: rescales each leaf's gradient to a running estimate of its norm.

    Per leaf, with :math:`k` = ``count + 1`` and :math:`\|g\|` the leaf's ℓ2 norm:

    .. math::

      \begin{align*}
        \mu_k &= \gamma_1 \mu_{k-1} + (1 - \gamma_1) \|g_k\|, \quad
          \nu_k = \gamma_2 \nu_{k-1} + (1 - \gamma_2) \|g_k\|^2 \\
        \hat g_k &= \frac{g_k}{\|g_k\|} \cdot
          \frac{\mu_k / (1 - \gamma_1^k)}{\sqrt{\nu_k / (1 - \gamma_2^k)} + \epsilon}
          \quad \text{if } \|g_k\| > 0
      \end{align*}

    The new norm is at most about 1 and shrinks when the norm fluctuates (a spike raises
    :math:`\nu` more than :math:`\mu`). A zero leaf stays zero; its EMAs still decay. A NaN/Inf
    entry is dropped to zero before the norm; the norm cannot overflow while the true norm is
    finite in float32, and the statistics saturate at the largest float32.

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
      Huang et al., `Stable-SPAM: How to Train in 4-Bit More Stably than 16-Bit Adam
      <https://arxiv.org/abs/2502.17055>`_, 2025.
    """
    where = "adaptive_grad_norm"
    gamma1 = common.beta_arg(where, "gamma1", gamma1)
    gamma2 = common.beta_arg(where, "gamma2", gamma2)
    eps = common.eps_arg(where, eps)

    def init_fn(params):
        _checks.require_float_leaves(where, params)
        return AdaptiveGradNormState(count=common.zero_count(),
                                     norm_mean=common.per_leaf_zeros(params),
                                     norm_sq_mean=common.per_leaf_zeros(params))

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        g_leaves, treedef = jax.tree.flatten(updates)
        n_leaves = len(g_leaves)
        mean_leaves = common.per_leaf(where, "norm_mean", state.norm_mean, n_leaves)
        sq_leaves = common.per_leaf(where, "norm_sq_mean", state.norm_sq_mean, n_leaves)
        kf = step_number(state.count).astype(jnp.float32)
        g1, g2 = rate(gamma1), rate(gamma2)
        e = jnp.asarray(eps, jnp.float32)
        out, new_mean, new_sq = [], [], []
        for g, mean, sq in zip(g_leaves, mean_leaves, sq_leaves, strict=True):
            norm = _lowering.finite_norm(g, _sanitized)
            factor, mean1, sq1 = _ada_gn(norm, mean, sq, g1, g2, e, kf)
            x = _sanitized(g)  # rebuilt here, no temporary shared with the norm's pass
            out.append((x * factor.astype(x.dtype)).astype(g.dtype))
            new_mean.append(mean1)
            new_sq.append(sq1)
        new_state = AdaptiveGradNormState(count=optax.safe_increment(state.count),
                                          norm_mean=common.stack_per_leaf(new_mean),
                                          norm_sq_mean=common.stack_per_leaf(new_sq))
        return treedef.unflatten(out), new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)
