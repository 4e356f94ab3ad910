"""Schedules in token units: a fixed batch size (stateless) or the tokens actually seen (stateful).

``in_tokens`` drives a schedule written in tokens with the optax step count at a fixed batch size.
``token_schedule`` is an ``optax.schedules.StatefulSchedule`` that counts the tokens actually seen
(read from an extra argument of ``update``) for runs whose batch size changes, for use with
``optax.inject_hyperparams``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from optaxsched import _checks, _numerics, _shapes
from optaxsched._combinators import check_schedule, evaluate

__all__ = ["in_tokens", "token_schedule", "TokenSchedule", "TokenScheduleState"]


def in_tokens(schedule: Callable, tokens_per_step: float) -> optax.Schedule:
    """Drives a schedule written in tokens with the optax step count, at a fixed batch size.

    .. math::

        \\eta(c) = s(c \\cdot \\text{tokens\\_per\\_step})

    so ``s`` is evaluated at the number of tokens seen *before* this update (0 on the first
    update, as the optax count is). Writing the schedule in tokens lets the batch size change
    between runs without rewriting the schedule (allenai/OLMo#411); for a batch size that changes
    *within* a run use :func:`token_schedule`, which counts the tokens actually seen.

    Precision: the token count is computed in float32 (relative precision 2**-24, about
    6e-8, and no overflow: float32 reaches 3e38). At 1e12 tokens the count is exact to within
    65,536 tokens, far less than one step of any realistic batch, so a schedule of the token count
    is as accurate as a schedule of the step count. The inner schedule must accept float counts
    beyond 2**31: give its step arguments as Python floats where it would otherwise turn them into
    int32 (``optax.linear_schedule(1.0, 0.0, transition_steps=2e12)``, not ``2 * 10**12``, which
    overflows inside ``jnp.clip``).

    Args:
      schedule: a schedule whose count is a number of tokens.
      tokens_per_step: tokens in each step (global batch size times sequence length); a positive
        finite number.

    Returns:
      An optax schedule of the step count ``count -> float32``.

    Example:
      >>> import optax, optaxsched as oxs
      >>> per_token = optax.linear_schedule(1.0, 0.0, transition_steps=1e9)
      >>> schedule = oxs.in_tokens(per_token, tokens_per_step=2**20)
      >>> round(float(schedule(476)), 4)  # 476 * 2**20 tokens, about half of 1e9
      0.5009

    References:
      allenai/OLMo#411 (schedules in token units). Shen et al., "Power Scheduler: A Batch Size
      and Token Number Agnostic Learning Rate Scheduler" (arXiv 2408.13359).
    """
    where = "in_tokens"
    schedule = check_schedule(where, "schedule", schedule)
    per_step = _checks.check_float(where, "tokens_per_step", tokens_per_step, minimum=0.0,
                                   strict_min=True)

    def stepped(count):
        count = _shapes.as_float_count(count)
        return evaluate(schedule, count * per_step)

    return stepped


# Exact token counting in two int32 words: total = high * 2**30 + low, 0 <= low < 2**30.
_LOW_BITS = 30
_LOW_MASK = (1 << _LOW_BITS) - 1
_INT32_MAX = _numerics.INT32_MAX
_MAX_TOKENS = _INT32_MAX << _LOW_BITS  # about 2.3e18 tokens.
_LARGEST_FLOAT32_BELOW_2_31 = 2147483520.0


class TokenScheduleState(NamedTuple):
    """State of :func:`token_schedule`: the tokens seen before the current update.

    Attributes:
      tokens: float32 scalar, the token count the schedule is evaluated at (``high * 2**30 +
        low`` rounded once to float32, never accumulated in float32); log it with
        ``optax.tree.get(state, "tokens")``.
      high: int32 scalar, the count's multiples of 2**30.
      low: int32 scalar in [0, 2**30), the rest. ``high`` and ``low`` count exactly, beyond the
        int32 range (up to about 2.3e18 tokens, where the count saturates).
    """

    tokens: jax.Array
    high: jax.Array
    low: jax.Array


class TokenSchedule:
    """A stateful schedule of the tokens seen (``optax.schedules.StatefulSchedule``).

    Build it with :func:`token_schedule`; see there for the semantics.
    """

    def __init__(self, schedule: Callable, extra_arg: str, initial_tokens: int):
        self.schedule = schedule
        self.extra_arg = extra_arg
        self.initial_tokens = initial_tokens

    def __repr__(self) -> str:
        return (f"TokenSchedule(schedule={self.schedule!r}, extra_arg={self.extra_arg!r}, "
                f"initial_tokens={self.initial_tokens!r})")

    def init(self) -> TokenScheduleState:
        """The state before the first update: ``initial_tokens`` seen."""
        high, low = divmod(self.initial_tokens, 1 << _LOW_BITS)
        return _token_state(jnp.asarray(high, jnp.int32), jnp.asarray(low, jnp.int32))

    def update(self, state: TokenScheduleState, **extra_args) -> TokenScheduleState:
        """Adds this step's tokens, read from the extra argument ``extra_arg``.

        Negative or non-finite token counts add nothing; float counts are rounded to the nearest
        integer; one step may add at most 2**31 - 1 tokens (larger values are clipped).
        """
        tokens = extra_args.get(self.extra_arg)
        if tokens is None:
            _checks.fail("token_schedule", self.extra_arg,
                         f"passed to update() as the extra argument {self.extra_arg}=<number of "
                         "tokens in this step> (e.g. tx.update(grads, state, params, "
                         f"{self.extra_arg}=n))", tokens)
        step = _as_token_increment(tokens, self.extra_arg)
        low = state.low + (step & _LOW_MASK)           # < 2**31: no overflow.
        carry = (step >> _LOW_BITS) + (low >> _LOW_BITS)  # 0, 1 or 2
        # Saturate at the largest count (high = 2**31 - 1, low = 2**30 - 1): high + carry
        # wrapped to a negative count, and the schedule jumped back to its start.
        full = state.high > _INT32_MAX - carry
        return _token_state(jnp.where(full, _INT32_MAX, state.high + carry),
                            jnp.where(full, _LOW_MASK, low & _LOW_MASK))

    def __call__(self, state: TokenScheduleState, **extra_args) -> jax.Array:
        """The schedule at the tokens seen before this update (extra arguments are ignored)."""
        del extra_args
        return jnp.asarray(self.schedule(state.tokens), dtype=jnp.float32)


def _token_state(high: jnp.ndarray, low: jnp.ndarray) -> TokenScheduleState:
    tokens = (high.astype(jnp.float32) * float(1 << _LOW_BITS) + low.astype(jnp.float32))
    return TokenScheduleState(tokens=tokens, high=high, low=low)


def _as_token_increment(tokens: Any, name: str) -> jnp.ndarray:
    """This step's token count as a non-negative int32 scalar (traceable)."""
    if isinstance(tokens, (int, np.integer)) and not isinstance(tokens, bool):
        tokens = min(max(int(tokens), 0), _INT32_MAX)  # Python ints beyond int32: clip first.
    tokens = jnp.asarray(tokens)
    if tokens.shape != ():
        _checks.fail("token_schedule", name, "a scalar (the number of tokens in this step)",
                     f"an array of shape {tokens.shape}")
    if jnp.issubdtype(tokens.dtype, jnp.floating):
        tokens = tokens.astype(jnp.float32)
        tokens = jnp.where(jnp.isfinite(tokens), jnp.round(tokens), 0.0)
        return jnp.clip(tokens, 0.0, _LARGEST_FLOAT32_BELOW_2_31).astype(jnp.int32)
    if jnp.issubdtype(tokens.dtype, jnp.integer):
        if jnp.iinfo(tokens.dtype).max > _INT32_MAX:  # uint32, int64, uint64 (with x64).
            tokens = jnp.minimum(tokens, jnp.asarray(_INT32_MAX, tokens.dtype))
        return jnp.maximum(tokens.astype(jnp.int32), 0)
    _checks.fail("token_schedule", name, "a number (the number of tokens in this step)", tokens)


def token_schedule(schedule: Callable, extra_arg: str = "tokens",
                   initial_tokens: int = 0) -> TokenSchedule:
    """A stateful schedule of the tokens actually seen, for runs whose batch size changes.

    An ``optax.schedules.StatefulSchedule`` for ``optax.inject_hyperparams``: its state counts the
    tokens seen so far, each ``update`` adds the tokens of the current step, read from the extra
    argument ``tokens=`` (name configurable) that the training loop passes to the optimizer's
    ``update``. The value used for an update is the schedule at the tokens seen *before* it:

    .. math::

        \\eta_t = s\\Big(N_0 + \\sum_{u < t} n_u\\Big)

    with ``n_u`` the tokens of update ``u`` and ``N_0 = initial_tokens``. With a constant batch of
    ``n`` tokens this equals ``in_tokens(s, n)`` at every step.

    The count is kept exactly in two int32 words (``high * 2**30 + low``), so it neither overflows
    at 2**31 tokens, as an int32 would, nor drifts, as a float32 running sum would (adding 4M
    tokens to 1e12 in float32 rounds by up to 32,768 tokens each step); it works without
    ``jax_enable_x64``. The schedule is evaluated at that count rounded once to float32
    (``state.tokens``). Non-finite or negative token counts add nothing; float counts are rounded.

    Under ``optax.MultiSteps`` only the micro-step that emits an update advances the inner state
    (the others' states are discarded), so pass the token count of the whole accumulated batch
    as ``tokens=`` at every micro-step.

    Args:
      schedule: a schedule whose count is a number of tokens.
      extra_arg: name of the extra argument carrying the tokens of the current step; a Python
        identifier (default ``'tokens'``).
      initial_tokens: tokens already seen when the state is created (resuming a run whose
        optimizer state is not restored); a non-negative integer of at most 2**53.

    Returns:
      A :class:`TokenSchedule` with ``init()``, ``update(state, **extra_args)`` and
      ``__call__(state, **extra_args)``; its state is a :class:`TokenScheduleState`.

    Example:
      >>> import jax.numpy as jnp, optax, optaxsched as oxs
      >>> per_token = optax.linear_schedule(1.0, 0.0, transition_steps=1000.0)
      >>> tx = optax.inject_hyperparams(optax.sgd)(learning_rate=oxs.token_schedule(per_token))
      >>> params = jnp.zeros(2)
      >>> state = tx.init(params)
      >>> for n in (100, 300, 600):  # the batch grows
      ...     _, state = tx.update(jnp.ones(2), state, params, tokens=n)
      >>> round(float(state.hyperparams["learning_rate"]), 6)  # used for the last update: s(400)
      0.6
      >>> float(optax.tree.get(state, "tokens"))
      1000.0

    References:
      allenai/OLMo#411 (schedules in token units, so that the batch size can change on restart).
    """
    where = "token_schedule"
    schedule = check_schedule(where, "schedule", schedule)
    if not isinstance(extra_arg, str) or not extra_arg.isidentifier():
        _checks.fail(where, "extra_arg", "a Python identifier (the extra argument's name)",
                     extra_arg)
    # At most 2**53, check_int's bound for every count (the docstring said 2**61, and the
    # message named both bounds).
    initial = _checks.check_int(where, "initial_tokens", initial_tokens, minimum=0,
                                maximum=_checks.MAX_STEP)
    return TokenSchedule(schedule, extra_arg, initial)
