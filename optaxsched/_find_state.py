"""Finding a transformation's state inside a nested optimizer state (private).

A state sits wherever the user put its transformation: in an ``optax.chain``, a ``MultiSteps`` or
``inject_hyperparams`` state, NaP's state, the state of an ``nnx.Optimizer`` or a Flax
``TrainState``. The search is optax's own ``optax.tree.get_all_with_path``, which matches the name
of a NamedTuple class as well as a field name; the type filter keeps a field or key that merely
has the same name out. What this adds is the library's errors: a state that is missing, or
present more than once, is a ``ValueError`` that names the function, the state, how to put it
there and, for several, the path of each.
"""

from __future__ import annotations

from typing import Any, TypeVar

import jax
import optax

from optaxsched import _checks

__all__ = ["find_states", "find_state"]

_State = TypeVar("_State")


def find_states(tree: Any, state_type: type[_State]) -> list[tuple[tuple, _State]]:
    """Every ``state_type`` inside ``tree`` with its path, in pytree flattening order."""
    return optax.tree.get_all_with_path(
        tree, state_type.__name__, lambda _, value: isinstance(value, state_type))


def _listed(found: list[tuple[tuple, Any]]) -> str:
    return ", ".join(f"{i}: {jax.tree_util.keystr(path) or '<root>'}"
                     for i, (path, _) in enumerate(found))


def find_state(where: str, opt_state: Any, state_type: type[_State], how: str,
               which: int | None = None, *, choosable: bool = False) -> _State:
    """The one ``state_type`` inside ``opt_state``, or the ``which``-th when ``choosable``.

    Args:
      where: the public function, for the error message.
      opt_state: the optimizer state to search.
      state_type: the NamedTuple class of the state.
      how: how the state gets there, e.g. ``"put optaxsched.average_params(...) last in the
        optimizer"``.
      which: with ``choosable``, the index (in flattening order) of the state to return when
        there are several; ``None`` when there must be one.
      choosable: whether several states are allowed, one chosen by ``which`` (two recorders in a
        chain, before and after clipping); otherwise there must be exactly one.

    Returns:
      The state.

    Raises:
      ValueError: no such state; several and no ``which`` (the message lists their paths); or a
        ``which`` out of range.
    """
    found = find_states(opt_state, state_type)
    name = state_type.__name__
    container = type(opt_state).__name__
    if not choosable:
        if len(found) != 1:
            paths = f" ({_listed(found)})" if found else ""
            raise ValueError(f"{where}: opt_state must contain exactly one {name} ({how}), found "
                             f"{len(found)} in a {container}{paths}.")
        return found[0][1]
    if not found:
        raise ValueError(f"{where}: opt_state must contain a {name} ({how}), found none in a "
                         f"{container}.")
    if which is None:
        if len(found) > 1:
            raise ValueError(f"{where}: opt_state contains {len(found)} {name} ({_listed(found)}); "
                             f"pass which=<index> to choose one.")
        return found[0][1]
    which = _checks.check_int(where, "which", which, minimum=0, maximum=len(found) - 1)
    return found[which][1]
