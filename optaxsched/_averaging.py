"""Parameter averaging inside the optimizer state: exponential (EMA) or uniform tail average.

Training at a moderate, constant learning rate and evaluating an *average* of recent iterates
recovers much of what a learning-rate cooldown gives, without committing to a run length in
advance (Sanyal et al., 2023; Hägele et al., 2024 compare it with cooldowns). This module keeps the
average in the optimizer state:

* :func:`average_params` is a pass-through transform, placed last in a chain, that tracks the
  average of the parameters the step produces (``params + updates``).
* :func:`averaged_params` reads the average back out of an optimizer state, for evaluation.

References:
  Sanyal et al., `Early Weight Averaging meets High Learning Rates for LLM Pre-training
  <https://arxiv.org/abs/2306.03241>`_, 2023.

  Hägele et al., `Scaling Laws and Compute-Optimal Training beyond Fixed Training Durations
  <https://arxiv.org/abs/2405.18392>`_, 2024 (Section 4: SWA / EMA vs cooldown).

  Izmailov et al., `Averaging Weights Leads to Wider Optima and Better Generalization
  <https://arxiv.org/abs/1803.05407>`_, 2018.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple, get_args

import jax
import jax.numpy as jnp
import numpy as np
import optax

from optaxsched import _checks, _find_state, _numerics
from optaxsched._types import AverageKind

__all__ = [
    "AVERAGE_KINDS",
    "AverageParamsState",
    "average_params",
    "averaged_params",
]

AVERAGE_KINDS: tuple[AverageKind, ...] = get_args(AverageKind)
"""Averages :func:`average_params` keeps: exponential moving average, or uniform tail average."""

_DEFAULT_DECAY = 0.999


class AverageParamsState(NamedTuple):
    """State of :func:`average_params`.

    Attributes:
      count: int32 scalar, the number of updates seen so far (saturating).
      num_averaged: int32 scalar, the number of iterates in the average so far (saturating).
      average: a pytree like the parameters holding the average (the current parameters while
        ``num_averaged`` is 0).
    """

    count: jax.Array  # type: ignore[assignment]  # optax's field name; shadows tuple.count
    num_averaged: jax.Array
    average: Any


def average_params(kind: AverageKind = "ema", *, decay: float | None = None, start_step: int = 0,
                   every: int = 1, debias: bool = True, dtype: Any = None
                   ) -> optax.GradientTransformationExtraArgs:
    r"""Passes updates through and keeps an average of the post-update parameters.

    Placed **last** in a chain, it sees the updates that will be applied, so the iterate after the
    update with optax count ``c`` (0 first) is :math:`x_c = w + u`. Iterates with ``c >=
    start_step`` and ``(c - start_step) % every == 0`` enter the average; with :math:`n` the number
    entered so far, this one included, the average moves towards :math:`x_c` with weight
    :math:`w_n`: the uniform tail average of stochastic weight averaging (``'tail'``), the
    bias-corrected EMA :math:`\sum_k \beta^{n-k} x_k / \sum_k \beta^{n-k}` (``'ema'``, the first
    iterate gets weight 1) or the plain EMA started from the parameters before the first averaged
    iterate (``debias=False``). Before that iterate the average tracks the current parameters, so
    :func:`averaged_params` always returns something usable. Keep it last (after
    :func:`optaxsched.nap`'s projection, for instance). Non-finite parameters propagate into the
    average; finite ones of any size keep it finite where representable (:ref:`design-averaging`).

    .. math::

      a_n = (1 - w_n)\, a_{n-1} + w_n\, x_c, \qquad
      w_n = \begin{cases} 1/n & \text{tail} \\ (1-\beta)/(1-\beta^n) & \text{EMA, debiased} \\
      1-\beta & \text{EMA} \end{cases}

    Args:
      kind: ``'ema'`` or ``'tail'``, see :data:`AVERAGE_KINDS`.
      decay: EMA decay β in ``[0, 1)`` (only for ``kind='ema'``; default 0.999). The EMA's
        horizon is about ``1/(1 - β)`` averaged iterates.
      start_step: optax count of the first iterate averaged (a non-negative integer).
      every: average every ``every``-th iterate from ``start_step`` on (a positive integer).
      debias: for ``kind='ema'``, whether to use the bias-corrected weights.
      dtype: dtype of the stored average (one copy of the parameters); ``None`` keeps each
        parameter's dtype. Pass ``jnp.float32`` for bfloat16 parameters: small weights
        :math:`w_n` vanish in bfloat16.

    Returns:
      An ``optax.GradientTransformationExtraArgs`` whose state is an
      :class:`AverageParamsState`; ``update`` requires ``params``.

    Example:
      >>> import jax.numpy as jnp, optax, optaxsched as oxs
      >>> tx = optax.chain(optax.sgd(1.0), oxs.average_params("tail"))
      >>> params = {"w": jnp.zeros(2)}
      >>> state = tx.init(params)
      >>> for g in ([-1.0, 0.0], [-1.0, -2.0]):
      ...   updates, state = tx.update({"w": jnp.array(g)}, state, params)
      ...   params = optax.apply_updates(params, updates)
      >>> print(params["w"], oxs.averaged_params(state)["w"])
      [2. 2.] [1.5 1. ]

    References:
      Sanyal et al., `Early Weight Averaging meets High Learning Rates for LLM Pre-training
      <https://arxiv.org/abs/2306.03241>`_, 2023.

      Hägele et al., `Scaling Laws and Compute-Optimal Training beyond Fixed Training Durations
      <https://arxiv.org/abs/2405.18392>`_, 2024 (Section 4).

      Izmailov et al., `Averaging Weights Leads to Wider Optima and Better Generalization
      <https://arxiv.org/abs/1803.05407>`_, 2018.
    """
    where = "average_params"
    kind = _checks.check_choice(where, "kind", kind, AVERAGE_KINDS)
    if kind == "tail" and decay is not None:
        _checks.fail(where, "decay", "None for kind='tail' (decay is the EMA's)", decay)
    if kind == "ema":
        decay = _checks.check_fraction(where, "decay",
                                       _DEFAULT_DECAY if decay is None else decay,
                                       strict_max=True)
    start_step = _checks.check_int(where, "start_step", start_step, minimum=0,
                                   maximum=_numerics.INT32_MAX)
    every = _checks.check_int(where, "every", every, minimum=1, maximum=_numerics.INT32_MAX)
    if not isinstance(debias, (bool, np.bool_)):
        _checks.fail(where, "debias", "True or False", debias)
    if kind == "tail" and not debias:
        _checks.fail(where, "debias", "True for kind='tail' (debias is the EMA's)", debias)
    if dtype is not None:
        try:
            dtype = jnp.dtype(dtype)
        except TypeError:
            _checks.fail(where, "dtype", "None or a floating dtype", dtype)
        if not jnp.issubdtype(dtype, jnp.floating):
            _checks.fail(where, "dtype", "None or a floating dtype", dtype)

    if kind == "ema" and _checks.is_traced(decay):  # injected by optax.inject_hyperparams
        one_minus = 1.0 - decay  # type: ignore[operator]
        log_decay = jnp.log(decay)  # type: ignore[arg-type]  # log 0 = -inf gives the weight 1, as below
    elif kind == "ema":
        one_minus = 1.0 - decay  # type: ignore[operator]
        log_decay = math.log(decay) if decay > 0 else -math.inf  # type: ignore

    def weight(n: jax.Array) -> jax.Array:
        """w_n for n >= 1 (float32)."""
        nf = n.astype(jnp.float32)
        if kind == "tail":
            return 1.0 / nf
        if not debias:
            return jnp.asarray(one_minus, jnp.float32)
        # 1 - βⁿ = -expm1(n log β), accurate even for β close to 1. The first iterate gets
        # exactly 1 (the quotient can round to 1 - 2⁻²⁴).
        debiased = jnp.asarray(one_minus, jnp.float32) / -jnp.expm1(nf * log_decay)
        return jnp.where(n == 1, 1.0, debiased)

    def init_fn(params):
        _checks.require_float_leaves(where, params)
        average = jax.tree.map(
            lambda p: jnp.array(p, dtype=dtype if dtype is not None else jnp.asarray(p).dtype),
            params)
        return AverageParamsState(count=jnp.zeros((), jnp.int32),
                                  num_averaged=jnp.zeros((), jnp.int32), average=average)

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        _checks.require_params(where, params, "the average is taken over params + updates")
        count = state.count
        include = count >= start_step
        if every > 1:
            include = include & (((count - start_step) % every) == 0)
        num = jnp.where(include, optax.safe_increment(state.num_averaged), state.num_averaged)
        # Not yet averaging: the average tracks the current parameters (w = 1).
        w = jnp.where(include, weight(jnp.maximum(num, 1)),
                      jnp.where(num == 0, 1.0, 0.0)).astype(jnp.float32)

        def step(a, p, u):
            # (1 - w)·a + w·x rather than a + w·(x - a): a convex combination of the finite
            # average and the new iterate x = p + u never overflows (x - a can reach twice
            # the largest float), and w = 1 gives x exactly. x overflows only where the new
            # parameters themselves do.
            compute = _numerics.compute_dtype(a.dtype)
            wc = w.astype(compute)
            x = p.astype(compute) + u.astype(compute)
            new = a.astype(compute) * (1.0 - wc) + x * wc
            if jnp.finfo(a.dtype).max < jnp.finfo(compute).max:
                # Saturate finite values at the narrower state dtype's range (inf stays inf).
                top = float(jnp.finfo(a.dtype).max)
                new = jnp.where(jnp.isfinite(new), jnp.clip(new, -top, top), new)
            return new.astype(a.dtype)

        average = jax.tree.map(step, state.average, params, updates)
        return updates, AverageParamsState(count=optax.safe_increment(count), num_averaged=num,
                                           average=average)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def averaged_params(opt_state: Any) -> Any:
    """The averaged parameters kept by :func:`average_params`, read from an optimizer state.

    Finds the unique :class:`AverageParamsState` anywhere inside ``opt_state`` (a chain, a
    ``MultiSteps`` or ``inject_hyperparams`` state, the state of an ``nnx.Optimizer``) and returns
    its ``average``, a pytree like the parameters to evaluate with (in Flax NNX:
    ``nnx.update(eval_model, oxs.averaged_params(optimizer.opt_state))``; the optimizer's variable
    wrappers are removed). A pure read: training continues from the raw parameters.

    Args:
      opt_state: an optimizer state containing exactly one :class:`AverageParamsState`.

    Returns:
      The averaged parameters (in the state's dtype).

    Example:
      >>> import jax.numpy as jnp, optax, optaxsched as oxs
      >>> tx = optax.chain(optax.adam(1e-3), oxs.average_params("ema", decay=0.99))
      >>> state = tx.init({"w": jnp.ones(3)})
      >>> oxs.averaged_params(state)["w"]
      Array([1., 1., 1.], dtype=float32)

    References:
      Sanyal et al., `Early Weight Averaging meets High Learning Rates for LLM Pre-training
      <https://arxiv.org/abs/2306.03241>`_, 2023.
    """
    average = _find_state.find_state(
        "averaged_params", opt_state, AverageParamsState,
        "put optaxsched.average_params(...) last in the optimizer").average
    try:  # nnx.Optimizer wraps state arrays in variables; hand back plain arrays.
        from flax import nnx

        average = nnx.as_pure(average)
    except ImportError:  # pragma: no cover - flax is a runtime dependency
        pass
    return average
