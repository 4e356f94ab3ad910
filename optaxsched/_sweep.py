"""Hyperparameter sweeps as one vmapped optimizer, and the LR sensitivity of a sweep's losses.

JAX can train K copies of a model, each with its own learning rate, in one compiled program: the
parameters and optimizer states get a leading axis of size K and the whole training step is
``jax.vmap``-ed over it. :func:`vmap_hyperparams` builds the optimizer side of that program from
any optax-style factory, through ``optax.inject_hyperparams`` (the swept values live in the
state, so one program serves every value); :func:`lr_sweep` is the common case of peak learning
rates multiplying a unit-peak schedule. :func:`lr_sensitivity` summarises the final losses of
such a sweep as Wortsman et al. (2023) do.
"""

from __future__ import annotations

import inspect
import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from optaxsched._checks import fail

__all__ = ["vmap_hyperparams", "lr_sweep", "lr_sensitivity", "stack_params"]


def _sweep_values(where: str, hyperparams: dict[str, Any]) -> tuple[dict[str, np.ndarray], int]:
    """Validates the swept values: 1-D, real, finite, non-empty, one common length."""
    if not hyperparams:
        fail(where, "hyperparams", "at least one swept hyperparameter (name=array of values)",
             hyperparams)
    values: dict[str, np.ndarray] = {}
    size = 0
    for name, value in hyperparams.items():
        if callable(value):
            fail(where, name, "a 1-D array of numbers (a schedule cannot be vmapped over; sweep "
                 "a scale of it with lr_sweep)", value)
        try:
            arr = np.asarray(value)
        except (TypeError, ValueError):
            fail(where, name, "a 1-D array of real numbers", value)
        if arr.dtype == object or not (np.issubdtype(arr.dtype, np.integer)
                                       or np.issubdtype(arr.dtype, np.floating)):
            fail(where, name, "a 1-D array of real numbers", value)
        if arr.ndim != 1 or arr.size == 0:
            fail(where, name, "a non-empty 1-D array (one value per run)", value)
        with np.errstate(over="ignore"):  # the swept values are stored as float32
            stored = arr.astype(np.float32) if np.issubdtype(arr.dtype, np.floating) else arr
        if not np.all(np.isfinite(stored)):
            fail(where, name, "finite in float32 (the dtype they are stored in)", value)
        if size and arr.size != size:
            fail(where, name, f"of the same length as the other swept values ({size})", value)
        size = arr.size
        values[name] = arr
    return values, size


def _check_factory(where: str, factory: Any, names: Sequence[str]) -> None:
    if not callable(factory):
        fail(where, "factory", "a callable returning an optax GradientTransformation", factory)
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):  # builtins without a signature: let optax decide.
        return
    params = signature.parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    for name in names:
        if name not in params:
            fail(where, name, f"an argument of {getattr(factory, '__name__', factory)!r} "
                 f"(its arguments are {list(params)})", name)


def stack_params(params: Any, num_runs: int) -> Any:
    """``num_runs`` copies of ``params`` stacked on a new leading axis (the sweep's axis).

    Every run of a sweep then starts from the same initialisation, as in Wortsman et al. (2023).

    Args:
      params: a pytree of arrays.
      num_runs: the sweep's size K (a positive integer).

    Returns:
      The pytree with every leaf of shape ``(num_runs, *leaf.shape)``.

    References:
      Wortsman et al., `Small-scale proxies for large-scale Transformer training instabilities
      <https://arxiv.org/abs/2309.14322>`_, 2023 (one initialisation for every run).
    """
    if isinstance(num_runs, bool) or not isinstance(num_runs, numbers.Integral) or num_runs < 1:
        fail("stack_params", "num_runs", "a positive integer", num_runs)
    return jax.tree.map(lambda x: jnp.broadcast_to(x, (num_runs, *jnp.shape(x))).copy(), params)


def vmap_hyperparams(factory: Callable[..., optax.GradientTransformation], /,
                     **hyperparams: Any) -> optax.GradientTransformationExtraArgs:
    """The optimizer of ``factory`` for K values of its hyperparameters at once, vmapped.

    Run ``k`` of the sweep uses ``factory(**{name: values[k] for name, values in
    hyperparams.items()})``. The returned transformation works on pytrees whose every leaf has a
    leading axis of size K (one slice per run): ``init`` takes stacked parameters (see
    :func:`stack_params`), ``update`` stacked gradients, state and parameters. Inside, each run is
    ``optax.inject_hyperparams(factory)`` with its values, so the swept values are state (the
    ``hyperparams`` field, of shape ``[K]``) and one compiled program serves the whole sweep:
    ``jax.vmap`` the model's loss and gradient over the same axis and the entire training step
    runs K runs at once on one device.

    Bind the arguments that are not swept with ``functools.partial`` (a swept argument must be a
    numeric argument of the factory; a schedule cannot be vmapped over, but its scale can: see
    :func:`lr_sweep`). Extra arguments of ``update`` (``value=`` ...) are passed to every run
    unbatched.

    Args:
      factory: a function returning an ``optax.GradientTransformation`` (``optax.adamw``,
        ``optaxsched.stable_spam``, a ``functools.partial`` of one...).
      **hyperparams: for each swept argument of ``factory``, a 1-D array of K finite values
        (every array of the same length).

    Returns:
      An ``optax.GradientTransformationExtraArgs`` over stacked pytrees.

    Raises:
      ValueError: no swept values; a value that is not a non-empty 1-D real array, holds a
        non-finite number, or differs in length from the others; a name ``factory`` does not
        take; parameters whose leaves lack the leading axis of size K (at ``init``).

    Example:
      >>> import functools, jax.numpy as jnp, optax, optaxsched as oxs
      >>> tx = oxs.vmap_hyperparams(functools.partial(optax.sgd, momentum=0.9),
      ...                           learning_rate=jnp.array([0.1, 0.2, 0.4]))
      >>> params = oxs.stack_params({"w": jnp.ones(2)}, 3)
      >>> state = tx.init(params)
      >>> updates, state = tx.update({"w": jnp.ones((3, 2))}, state, params)
      >>> [round(float(u), 2) for u in updates["w"][:, 0]]
      [-0.1, -0.2, -0.4]

    References:
      Wortsman et al., `Small-scale proxies for large-scale Transformer training instabilities
      <https://arxiv.org/abs/2309.14322>`_, 2023 (its hyperparameter sweeps).
    """
    values, size = _sweep_values("vmap_hyperparams", hyperparams)
    _check_factory("vmap_hyperparams", factory, list(values))
    injected = optax.inject_hyperparams(factory)
    # float32 whatever the values' dtype: inject_hyperparams infers the dtype from the value.
    swept = {name: jnp.asarray(v, jnp.float32) if np.issubdtype(v.dtype, np.floating)
             else jnp.asarray(v) for name, v in values.items()}

    def check_leading_axis(tree: Any, what: str) -> None:
        for leaf in jax.tree.leaves(tree):
            shape = jnp.shape(leaf)
            if not shape or shape[0] != size:
                fail("vmap_hyperparams", what, f"a pytree whose leaves have a leading axis of "
                     f"size {size} (one slice per run; see stack_params)", f"a leaf of shape "
                     f"{tuple(shape)}")

    def init_fn(params):
        check_leading_axis(params, "params")
        return jax.vmap(lambda p, hp: injected(**hp).init(p))(params, swept)

    # `update` reads every run's values from its state (inject_hyperparams rebuilds the inner
    # transformation from state.hyperparams); the factory's construction-time values are unused.
    template = injected(**{name: v[0] for name, v in swept.items()})

    def update_fn(updates, state, params=None, **extra_args):
        def one(u, s, p):
            if extra_args:
                tx = optax.with_extra_args_support(template)
                return tx.update(u, s, p, **extra_args)
            return template.update(u, s, p)

        return jax.vmap(one, in_axes=(0, 0, None if params is None else 0))(
            updates, state, params)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def lr_sweep(factory: Callable[..., optax.GradientTransformation],
             learning_rates: Any, *, schedule: Callable[[Any], Any] | None = None,
             ) -> optax.GradientTransformationExtraArgs:
    """``factory``'s optimizer for K peak learning rates at once (see :func:`vmap_hyperparams`).

    Run ``k`` uses ``factory(learning_rate=lambda count: learning_rates[k] * schedule(count))``:
    ``schedule`` is the shape of the schedule with a peak of 1 (``optaxsched.wsd(1.0, ...)``,
    ``optax.cosine_decay_schedule(1.0, ...)``), and the sweep scales it. Without ``schedule`` the
    learning rate is constant. Only the scale is vmapped over; the schedule is traced once.

    Args:
      factory: an optimizer factory whose first argument is ``learning_rate`` (``optax.adamw``,
        ``optaxsched.spam``, ``optaxsched.stable_spam``, a ``functools.partial`` of one...).
      learning_rates: 1-D array of K finite positive peak learning rates (a log-spaced grid for
        :func:`lr_sensitivity`).
      schedule: optional unit-peak schedule, a function of the count.

    Returns:
      An ``optax.GradientTransformationExtraArgs`` over stacked pytrees whose state holds the K
      peak learning rates in ``hyperparams["learning_rate"]``.

    Raises:
      ValueError: bad ``learning_rates`` (not a non-empty 1-D array of finite positive numbers),
        a ``schedule`` that is not callable, a ``factory`` without ``learning_rate``.

    Example:
      >>> import jax.numpy as jnp, optax, optaxsched as oxs
      >>> shape = optax.linear_schedule(1.0, 0.0, 10)
      >>> tx = oxs.lr_sweep(optax.sgd, jnp.array([1.0, 2.0]), schedule=shape)
      >>> params = oxs.stack_params({"w": jnp.zeros(1)}, 2)
      >>> updates, state = tx.update({"w": jnp.ones((2, 1))}, tx.init(params), params)
      >>> updates["w"][:, 0].tolist()
      [-1.0, -2.0]

    References:
      Wortsman et al., `Small-scale proxies for large-scale Transformer training instabilities
      <https://arxiv.org/abs/2309.14322>`_, 2023 (its learning-rate sweeps).
    """
    values, _ = _sweep_values("lr_sweep", {"learning_rates": learning_rates})
    if np.any(values["learning_rates"] <= 0):
        fail("lr_sweep", "learning_rates", "positive", learning_rates)
    if schedule is not None and not callable(schedule):
        fail("lr_sweep", "schedule", "a function of the count (a unit-peak schedule) or None",
             schedule)
    _check_factory("lr_sweep", factory, ["learning_rate"])
    if schedule is None:
        return vmap_hyperparams(factory, learning_rate=values["learning_rates"])

    def scaled(learning_rate):
        return factory(learning_rate=lambda count: learning_rate * schedule(count))

    return vmap_hyperparams(scaled, learning_rate=values["learning_rates"])


def lr_sensitivity(final_losses: Any, initial_loss: Any) -> float:
    r"""LR sensitivity of a sweep: the mean excess of the final loss over the best one.

    With :math:`L_i` the final loss of the run with learning rate :math:`\eta_i` (a log-spaced grid
    of K values) and :math:`L_0` the loss at initialisation, the Monte Carlo estimate over the grid
    of :math:`\mathbb{E}_\eta[\min(\ell(A(\eta)), \ell_0) - \min_\eta \ell(A(\eta))]`: 0 when every
    learning rate of the grid reaches the same loss, large when only a narrow range trains. A
    non-finite :math:`L_i` (a diverged run) counts as :math:`L_0`; the capped minimum keeps a sweep
    in which every run diverged at 0. Computed in float64 on the host.

    .. math::

      \mathrm{sensitivity} = \frac{1}{K}\sum_i \min(L_i, L_0) - \min_i \min(L_i, L_0)

    Args:
      final_losses: 1-D array of K >= 1 real final losses (NaN and ±inf allowed: diverged runs).
      initial_loss: the finite real loss at initialisation, ``L_0``.

    Returns:
      The sensitivity, a non-negative Python float.

    Raises:
      ValueError: ``final_losses`` empty, not 1-D, complex, boolean or not numeric;
        ``initial_loss`` not a finite real scalar.

    Example:
      >>> import optaxsched as oxs
      >>> oxs.lr_sensitivity([3.0, 2.0, float("nan"), 2.5], initial_loss=4.0)
      0.875

    References:
      Wortsman et al., `Small-scale proxies for large-scale Transformer training instabilities
      <https://arxiv.org/abs/2309.14322>`_, 2023 (the "LR sensitivity" metric).
    """
    losses = _real_array("final_losses", final_losses)
    if losses.ndim != 1 or losses.size == 0:
        fail("lr_sensitivity", "final_losses", "a non-empty 1-D array (one loss per learning "
             "rate)", final_losses)
    initial = _real_array("initial_loss", initial_loss)
    if initial.shape != () or not math.isfinite(float(initial)):
        fail("lr_sensitivity", "initial_loss", "a finite real number", initial_loss)
    l0 = float(initial)
    capped = np.minimum(np.where(np.isfinite(losses), losses, l0), l0)
    # mean(capped - min), not mean - min: exactly 0 for equal losses, and never negative.
    return float(np.mean(capped - np.min(capped)))


def _real_array(name: str, value: Any) -> np.ndarray:
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError):
        fail("lr_sensitivity", name, "real numbers", value)
    if arr.dtype == object or arr.dtype == bool or not (
            np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        fail("lr_sensitivity", name, "real numbers (not complex, boolean or text)", value)
    return arr.astype(np.float64)
