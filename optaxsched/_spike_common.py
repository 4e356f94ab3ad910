"""What SPAM (:mod:`optaxsched._spam`) and Stable-SPAM (:mod:`optaxsched._stable_spam`) share.

Argument checks (each names the argument and raises when the transform is built), the opt-in clip
counters, the momentum-reset phase, the reset selection, and the final step ``-lr · direction``
with decoupled weight decay. The numerics (decay rates, bias corrections, storage casts, int32
steps) are in :mod:`optaxsched._numerics`; the CPU lowering devices in
:mod:`optaxsched._lowering`.

Every numeric argument may also arrive as a traced array when a factory is wrapped in
``optax.inject_hyperparams``; traced values cannot be checked and are passed on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from optaxsched import _checks
from optaxsched._numerics import INT32_MAX, saturating_add

__all__ = ["int_arg", "beta_arg", "eps_arg", "learning_rate_arg", "dtype_arg", "bool_arg",
           "mask_arg", "check_window", "zero_count", "counter_init", "counters", "phase",
           "reset", "per_leaf", "per_leaf_zeros", "stack_per_leaf", "apply_step"]


# ------------------------------------------------------------------------------------------------
# Arguments.
# ------------------------------------------------------------------------------------------------


def int_arg(where: str, name: str, value: Any, *, minimum: int = 0,
            maximum: int | None = INT32_MAX) -> Any:
    """``_checks.check_int`` that also takes a 0-d integer array (an injected value read back)."""
    if _checks.is_traced(value):
        return value
    if isinstance(value, (jax.Array, np.ndarray, np.generic)) and np.ndim(value) == 0:
        value = np.asarray(value).item()
    return _checks.check_int(where, name, value, minimum=minimum, maximum=maximum)


def beta_arg(where: str, name: str, value: Any) -> Any:
    """A decay rate, in [0, 1)."""
    return _checks.check_float(where, name, value, minimum=0.0, maximum=1.0, strict_max=True)


def eps_arg(where: str, value: Any) -> Any:
    return _checks.check_float(where, "eps", value, minimum=0.0, strict_min=True)


def learning_rate_arg(where: str, value: Any) -> Any:
    if callable(value) and not isinstance(value, type):
        return value
    return _checks.check_float(where, "learning_rate", value, minimum=0.0)


def dtype_arg(where: str, name: str, value: Any) -> Any:
    if value is None:
        return None
    try:
        dtype = jnp.dtype(value)
    except TypeError:
        dtype = None
    if dtype is None or not jnp.issubdtype(dtype, jnp.floating):
        _checks.fail(where, name, "None or a floating-point dtype", value)
    return dtype


def bool_arg(where: str, name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        _checks.fail(where, name, "True or False", value)
    return bool(value)


def mask_arg(where: str, value: Any) -> Any:
    if value is None or callable(value):
        return value
    leaves = jax.tree.leaves(value)
    if not leaves or not all(isinstance(x, (bool, np.bool_)) for x in leaves):
        _checks.fail(where, "mask", "None, a pytree of bools like the params, or a callable "
                     "returning one", value)
    return value


def check_window(where: str, reset_interval: Any, clip_delay: Any | None,
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
# Counts, the reset phase and per-leaf statistics.
# ------------------------------------------------------------------------------------------------


def zero_count() -> jax.Array:
    return jnp.zeros((), jnp.int32)


def counter_init(track: bool) -> jax.Array:
    """Initial value of an opt-in clip counter: 0 when tracked, -1 (never changes) when not."""
    return jnp.asarray(0 if track else -1, jnp.int32)


def counters(track: bool, counts: Sequence[jax.Array], state: Any
             ) -> tuple[jax.Array, jax.Array]:
    """(clipped, clipped_total) after a step: this step's count (summed over the leaves) and the
    saturating total when tracked, the state's -1 otherwise."""
    if not track:
        return state.clipped, state.clipped_total
    n = zero_count()
    for c in counts:
        n = saturating_add(n, c)
    return n, saturating_add(state.clipped_total, n)


def phase(k: jax.Array, interval: Any) -> tuple[jax.Array, jax.Array]:
    """Steps since the last reset (``k`` itself before the first) and whether step ``k`` resets.

    Resets happen at ``k = interval, 2 interval, ...``; ``interval = 0`` means never.
    """
    interval = jnp.asarray(interval, jnp.int32)
    on = interval > 0
    steps = jnp.where(on, k % jnp.maximum(interval, 1), k)
    return steps, on & (steps == 0)


def reset(x: jax.Array, is_reset: jax.Array, cdt: Any) -> jax.Array:
    """``0`` on a reset step, else ``x`` (in ``cdt``): a selection, never ``x * 0``, which would
    be NaN for an infinite ``x``."""
    return jnp.where(is_reset, jnp.zeros((), cdt), x.astype(cdt))


def per_leaf_zeros(params: Any) -> jax.Array:
    """A float32 vector with one 0 per leaf of ``params``: per-leaf scalar statistics are kept
    flat, not in a tree like the parameters, so that ``optax.tree.map_params`` does not take
    them for parameters (it maps them with ``transform_non_params``, as it does ``count``)."""
    return jnp.zeros((len(jax.tree.leaves(params)),), jnp.float32)


def per_leaf(where: str, name: str, vector: jax.Array, num_leaves: int) -> list[jax.Array]:
    """The entries of a per-leaf statistics vector, checked against the number of leaves."""
    if vector.shape != (num_leaves,):
        raise ValueError(f"{where}: the state's {name} has shape {vector.shape}, but the "
                         f"updates have {num_leaves} leaves (a state from another tree, or from "
                         f"a version that kept it as a tree like the parameters).")
    return [vector[i] for i in range(num_leaves)]


def stack_per_leaf(values: Sequence[jax.Array]) -> jax.Array:
    """The per-leaf scalars ``values`` as the float32 vector the state keeps."""
    if not values:
        return jnp.zeros((0,), jnp.float32)
    return jnp.stack([jnp.asarray(v, jnp.float32) for v in values])


# ------------------------------------------------------------------------------------------------
# The step: -lr · direction, with decoupled weight decay.
# ------------------------------------------------------------------------------------------------


def _mask_leaves(where: str, mask: Any, params: Any, treedef: Any) -> list[bool]:
    if mask is None:
        return [True] * treedef.num_leaves
    tree = mask(params) if callable(mask) else mask
    try:
        leaves = treedef.flatten_up_to(tree)
    except (ValueError, TypeError) as err:
        raise ValueError(f"{where}: mask must have the structure of the params ({err}).") from err
    return [bool(x) for x in leaves]


def apply_step(where: str, direction: list[jax.Array], params: Any, treedef: Any,
               learning_rate: Any, count: jax.Array, weight_decay: Any, mask: Any,
               decay_after_step: bool) -> list[jax.Array]:
    """``-lr · direction`` plus decoupled weight decay, applied before the step
    (``p <- p (1 - lr wd) - lr d``) or after it (``p <- (p - lr d)(1 - lr wd)``). A schedule
    is called with optax's ``count``."""
    value = learning_rate(count) if callable(learning_rate) else learning_rate
    lr = jnp.asarray(value, jnp.float32)
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
