"""Online learning-rate adaptation by hypergradient descent (Baydin et al., 2018).

The learning rate is itself a parameter, trained by gradient descent on the loss: since the
previous update moved the parameters by ``-α u_{t-1}``, the derivative of the current loss with
respect to α is ``-g_t · u_{t-1}``, so descending on α adds ``β g_t · u_{t-1}``. The learning rate
grows while successive directions agree and shrinks when they oppose (overshooting).

References:
  Baydin et al., `Online Learning Rate Adaptation with Hypergradient Descent
  <https://arxiv.org/abs/1703.04782>`_, ICLR 2018.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple, get_args

import jax
import jax.numpy as jnp
import numpy as np
import optax

from optaxsched import _checks, _reductions
from optaxsched._types import HypergradientMode

__all__ = ["HYPERGRADIENT_MODES", "HypergradientState", "hypergradient"]

HYPERGRADIENT_MODES: tuple[HypergradientMode, ...] = get_args(HypergradientMode)
"""Learning-rate update rules of :func:`hypergradient`."""


class HypergradientState(NamedTuple):
    """State of :func:`hypergradient`.

    Attributes:
      count: int32 scalar, the number of updates so far (saturating).
      learning_rate: float32 scalar, the learning rate η_t used by the latest update (``s(0)``
        before the first update). Log it with ``optax.tree.get(state, "learning_rate")``.
      hypergradient: float32 scalar, the latest ``h_t = g_t · u_{t-1}`` (0 before the second
        update). Finite for finite gradients: a true value beyond float32's range is stored as
        ±3.4e38 (and then, like a non-finite one, leaves the rate unchanged); ``nan``/``inf``
        is stored when a gradient entry was not finite.
      adaptation: float32 scalar, what the hypergradient has learned: the offset ``o_t`` added
        to the base rate (``mode='additive'``, 0 at first) or the factor ``c_t`` multiplying it
        (``mode='multiplicative'``, 1 at first).
      adaptation_compensation: float32 scalar, the rounding error of ``adaptation`` carried to
        the next update (compensated summation, so that increments far below its float32
        resolution still accumulate).
      prev_direction: the previous direction ``u_{t-1}`` (the base transform's output), same
        structure and dtypes as the parameters.
      base_state: the base transform's state.
    """

    count: jax.Array  # type: ignore[assignment]  # optax's field name; shadows tuple.count
    learning_rate: jax.Array
    hypergradient: jax.Array
    adaptation: jax.Array
    adaptation_compensation: jax.Array
    prev_direction: optax.Updates
    base_state: optax.OptState


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _dot(a: Any, b: Any) -> jax.Array:
    """Σ over leaves of Σ a·b, in float32."""
    products = [jnp.sum(x.astype(jnp.float32) * y.astype(jnp.float32))
                for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)]
    return sum(products, jnp.zeros((), jnp.float32))


def _max_abs(tree: Any) -> jax.Array:
    # initial=0: an empty leaf (shape (0,)) has no maximum to reduce.
    return functools.reduce(jnp.maximum, [jnp.max(jnp.abs(x.astype(jnp.float32)), initial=0.0)
                                          for x in jax.tree.leaves(tree)],
                            jnp.zeros((), jnp.float32))


def _scaled(tree: Any, m: jax.Array) -> Any:
    safe = jnp.where(jnp.isfinite(m) & (m > 0), m, 1.0)
    return jax.tree.map(lambda x: x.astype(jnp.float32) / safe, tree)


def _hypergradient_and_cosine(grads: Any, prev: Any, with_cosine: bool
                              ) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``(h, cos, representable)``: ``h = g·u`` (±3.4e38 where its true value is beyond float32),
    the cosine between ``g`` and ``u`` (0 if either is zero; only if ``with_cosine``) and
    whether ``h`` is exact (not saturated).

    The cheap path is the float32 dot products. Only when one of them is not finite are the
    largest magnitudes of ``g`` and ``u`` reduced and the products recomputed on the rescaled
    vectors (``lax.cond``): a finite spike makes Σ g·u overflow (1e20·1e20) or even NaN
    (inf - inf) long before the hypergradient itself stops being representable.
    """
    h = _dot(grads, prev)
    gg = _dot(grads, grads) if with_cosine else jnp.zeros((), jnp.float32)
    uu = _dot(prev, prev) if with_cosine else jnp.zeros((), jnp.float32)

    def cosine_of(h, gg, uu):
        scale = jnp.sqrt(gg) * jnp.sqrt(uu)
        positive = scale > 0.0
        return jnp.where(positive, h / jnp.where(positive, scale, 1.0), 0.0)

    def cheap():
        cos = cosine_of(h, gg, uu) if with_cosine else jnp.zeros((), jnp.float32)
        return h, cos, jnp.isfinite(h)

    def rescaled():
        mg, mu = _max_abs(grads), _max_abs(prev)
        finite = jnp.isfinite(mg) & jnp.isfinite(mu)
        gs, us = _scaled(grads, mg), _scaled(prev, mu)
        if with_cosine:
            # One variadic pass per leaf: three separate sums would make XLA materialise the
            # rescaled g and u (two parameter-sized buffers, reserved even while the branch
            # is not taken; tests/test_footprint.py).
            sums = [_reductions.reduce_all([a * b, a * a, b * b], [0.0] * 3, ["add"] * 3)
                    for a, b in zip(jax.tree.leaves(gs), jax.tree.leaves(us), strict=True)]
            hs, ggs, uus = (sum((p[k] for p in sums), jnp.zeros((), jnp.float32))
                            for k in range(3))
        else:
            hs = _dot(gs, us)
        exact = (hs * mg) * mu
        saturated = jnp.clip(exact, -_FLOAT32_MAX, _FLOAT32_MAX)
        h_out = jnp.where(finite, saturated, h)  # non-finite entries: the raw value
        cos = (cosine_of(hs, ggs, uus) if with_cosine else jnp.zeros((), jnp.float32))
        cos = jnp.where(finite, cos, jnp.nan)
        return h_out, cos, finite & jnp.isfinite(exact)

    suspicious = ~(jnp.isfinite(h) & jnp.isfinite(gg) & jnp.isfinite(uu))
    return jax.lax.cond(suspicious, rescaled, cheap)


def _in_float32(where: str, name: str, value: Any) -> Any:
    """The rates live in float32: a value beyond its range would be inf there."""
    if not _checks.is_traced(value) and abs(value) > _FLOAT32_MAX:
        _checks.fail(where, name, "a number representable in float32 (magnitude at most "
                     "3.4e38)", value)
    return value


def _two_sum(a: jax.Array, b: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``s = fl(a + b)`` and its exact rounding error ``e`` (``a + b = s + e``), Knuth's TwoSum."""
    s = a + b
    a_part = s - b
    b_part = s - a_part
    return s, (a - a_part) + (b - b_part)


def hypergradient(learning_rate: optax.ScalarOrSchedule, hyper_lr: float,
                  mode: HypergradientMode = "additive", min_lr: float = 0.0,
                  max_lr: float | None = None,
                  base: optax.GradientTransformation | None = None
                  ) -> optax.GradientTransformationExtraArgs:
    r"""An optimizer whose global learning rate is adapted online by hypergradient descent.

    The learning rate is trained by gradient descent on the loss: the previous update moved the
    parameters by :math:`-\alpha u_{t-1}`, so the loss's derivative with respect to α is
    :math:`-g_t^\top u_{t-1}`, and the rate grows while successive directions agree and shrinks when
    they oppose. :math:`g_t` is the gradient at update ``t`` (the optax count), :math:`u_t` the
    ``base`` direction for it (the gradient itself for ``base=None``, SGD-HD;
    ``optax.scale_by_adam()`` gives Adam-HD), :math:`u_{-1} = 0`. For a constant ``learning_rate``
    :math:`\alpha_0` this is the paper's rule with :math:`\eta_t = \alpha_t`. A **schedule**
    ``s(t)`` sets the base the adaptation acts on: additive mode adds the learned offset to
    ``s(t)``, multiplicative mode multiplies ``s(t)`` by the learned factor (a warmup keeps its
    shape); a rate injected with ``optax.inject_hyperparams`` acts the same way. The rate is clipped
    to ``[min_lr, max_lr]`` (FedHyper's safeguard; without ``max_lr`` one large aligned gradient can
    raise the additive rate by :math:`\beta h_t`). A non-finite or unrepresentable :math:`h_t`
    leaves the rate unchanged; the updates themselves are not sanitised
    (:ref:`design-hypergradient`).

    .. math::

      h_t = g_t^\top u_{t-1}, \qquad
      \alpha_t = \begin{cases} \alpha_{t-1} + \beta\, h_t & \text{additive} \\
      \alpha_{t-1} \big(1 + \beta\, h_t / (\|g_t\| \|u_{t-1}\|)\big) & \text{multiplicative}
      \end{cases}, \qquad
      \theta_t = \theta_{t-1} - \alpha_t u_t

    Args:
      learning_rate: the base rate ``s``: the initial learning rate α_0 (a non-negative
        number; positive for ``mode='multiplicative'``; within ``[min_lr, max_lr]``), or an
        optax schedule ``count -> rate`` (its values are not checked).
      hyper_lr: the hypergradient learning rate β (non-negative; below 1 for
        ``mode='multiplicative'``). The paper used α_0 = 1e-3 with β = 1e-3 (SGD-HD) and
        β = 1e-7 (Adam-HD); the reference code's defaults are 1e-6 and 1e-8.
      mode: ``'additive'`` (the paper's main rule) or ``'multiplicative'`` (the hypergradient
        normalised to a cosine), see :data:`HYPERGRADIENT_MODES`.
      min_lr: lower bound of the learning rate (non-negative).
      max_lr: upper bound (positive), or ``None`` for no upper bound.
      base: the transform giving the direction ``u_t`` (without the learning rate and without
        the minus sign), e.g. ``optax.scale_by_adam()`` or ``optax.trace(0.9)``; ``None`` for SGD.

    Returns:
      An ``optax.GradientTransformationExtraArgs`` (a complete optimizer: its updates include
      ``-η_t``) whose state is a :class:`HypergradientState`. Its ``init`` refuses integer
      and complex parameter leaves (a ``TypeError`` that is also a ``ValueError``, naming the
      leaf): leave them out with ``optax.masked`` or ``optax.partition``.

    Example:
      >>> import jax.numpy as jnp, optax, optaxsched as oxs
      >>> tx = oxs.hypergradient(0.1, hyper_lr=0.01)  # SGD-HD
      >>> params = jnp.array([1.0, 2.0])
      >>> opt_state = tx.init(params)
      >>> for _ in range(2):
      ...     updates, opt_state = tx.update(2 * params, opt_state)  # f = ‖x‖²
      ...     params = optax.apply_updates(params, updates)
      >>> round(float(optax.tree.get(opt_state, "learning_rate")), 4)  # 0.1 + 0.01·(g1·g0)
      0.26
      >>> warm = oxs.hypergradient(optax.linear_schedule(0.0, 0.1, 100), hyper_lr=0.01)

    References:
      Baydin et al., `Online Learning Rate Adaptation with Hypergradient Descent
      <https://arxiv.org/abs/1703.04782>`_, ICLR 2018.

      Wang et al., `FedHyper: A Universal and Robust Learning Rate Scheduler for Federated Learning
      with Hypergradient Descent <https://arxiv.org/abs/2310.03156>`_, ICLR 2024.
    """
    where = "hypergradient"
    mode = _checks.check_choice(where, "mode", mode, HYPERGRADIENT_MODES)
    multiplicative = mode == "multiplicative"
    scheduled = callable(learning_rate)
    if not scheduled:
        learning_rate = _in_float32(where, "learning_rate", _checks.check_float(
            where, "learning_rate", learning_rate, minimum=0.0, strict_min=multiplicative))
    if multiplicative:
        hyper_lr = _checks.check_float(where, "hyper_lr", hyper_lr, minimum=0.0, maximum=1.0,
                                       strict_max=True)
    else:
        hyper_lr = _in_float32(where, "hyper_lr", _checks.check_float(where, "hyper_lr",
                                                                      hyper_lr, minimum=0.0))
    min_lr = _in_float32(where, "min_lr", _checks.check_float(where, "min_lr", min_lr,
                                                              minimum=0.0))
    if max_lr is not None:
        max_lr = _in_float32(where, "max_lr", _checks.check_float(
            where, "max_lr", max_lr, minimum=0.0, strict_min=True))
        _checks.check_order(where, "min_lr", min_lr, "max_lr", max_lr)
        if not scheduled:
            _checks.check_order(where, "learning_rate", learning_rate, "max_lr", max_lr)
    if not scheduled:
        _checks.check_order(where, "min_lr", min_lr, "learning_rate", learning_rate)
    if base is None:
        base = optax.identity()
    elif not (callable(getattr(base, "init", None)) and callable(getattr(base, "update", None))):
        _checks.fail(where, "base", "None or an optax GradientTransformation", base)
    base = optax.with_extra_args_support(base)
    upper = jnp.inf if max_lr is None else max_lr

    def base_rate(count: jax.Array) -> jax.Array:
        value = learning_rate(count) if scheduled else learning_rate
        return jnp.asarray(value, jnp.float32)

    def init_fn(params):
        # The previous direction has the parameters' dtypes and the dot products are taken in
        # float32: a complex leaf lost its imaginary part there, and an integer leaf's update
        # (-lr times a direction) was truncated to an integer, 0 for any lr below 1.
        _checks.require_float_leaves(where, params)
        return HypergradientState(
            count=jnp.zeros((), jnp.int32),
            learning_rate=jnp.clip(base_rate(jnp.zeros((), jnp.int32)), min_lr, upper),
            hypergradient=jnp.zeros((), jnp.float32),
            adaptation=jnp.asarray(1.0 if multiplicative else 0.0, jnp.float32),
            adaptation_compensation=jnp.zeros((), jnp.float32),
            prev_direction=optax.tree.zeros_like(params),
            base_state=base.init(params))

    def update_fn(updates, state, params=None, **extra_args):
        # The barrier makes the dot products read the gradients once they exist; without it XLA
        # may fuse the gradient's producers (backward matmuls) into the reductions and compute
        # them twice (see record_grad_norms).
        grads = jax.lax.optimization_barrier(updates)
        h, cosine, exact = _hypergradient_and_cosine(grads, state.prev_direction,
                                                     multiplicative)
        adapted = state.adaptation
        if multiplicative:
            delta = adapted * (hyper_lr * cosine)
        else:
            delta = hyper_lr * h
        total, error = _two_sum(adapted, delta + state.adaptation_compensation)
        # Additive steps need h itself; the multiplicative rule only its cosine, which is
        # exact even where h is beyond float32's range.
        known = jnp.isfinite(cosine) if multiplicative else exact
        usable = known & jnp.isfinite(delta) & jnp.isfinite(total) & jnp.isfinite(error)
        total = jnp.where(usable, total, adapted)
        error = jnp.where(usable, error, state.adaptation_compensation)
        rate = base_rate(state.count)
        wanted = rate * total if multiplicative else rate + total
        wanted = jnp.where(jnp.isnan(wanted), rate, wanted)  # inf · 0 and the like
        lr = jnp.clip(wanted, min_lr, upper)
        clipped = lr != wanted
        if multiplicative:  # the factor that gives the clipped rate (kept where s = 0)
            positive = rate > 0
            at_bound = jnp.where(positive, lr / jnp.where(positive, rate, 1.0), total)
        else:
            at_bound = lr - rate
        at_bound = jnp.where(jnp.isfinite(at_bound), at_bound, total)
        adaptation = jnp.where(clipped, at_bound, total)
        error = jnp.where(clipped, 0.0, error)  # a clipped rate carries no residue

        directions, base_state = base.update(updates, state.base_state, params, **extra_args)
        # Written so that XLA overwrites the donated previous-direction buffer in place; a plain
        # assignment cost two full copies and a parameter-sized temporary per step on CPU
        # (3.5-5x Adam's step at 16M-64M parameters, against 1.6x now):
        # * the new direction is a select over the old buffer, on a predicate that is always
        #   true but depends on the new learning rate, which orders the dot products reading
        #   the old direction before the write;
        # * the barrier materialises the new direction there, and the update reads it back,
        #   so the direction does not have two consumers that each want a buffer.
        always = (state.count >= 0) | jnp.isnan(lr)
        prev_direction = jax.lax.optimization_barrier(jax.tree.map(
            lambda u, p: jnp.where(always, u.astype(p.dtype), p), directions,
            state.prev_direction))
        new_updates = jax.tree.map(
            lambda u, d: (-lr * (d if d.dtype == u.dtype else u)).astype(u.dtype),
            directions, prev_direction)
        new_state = HypergradientState(
            count=optax.safe_increment(state.count), learning_rate=lr, hypergradient=h,
            adaptation=adaptation, adaptation_compensation=error,
            prev_direction=prev_direction, base_state=base_state)
        return new_updates, new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)
