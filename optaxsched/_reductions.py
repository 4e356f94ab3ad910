"""Several reductions of same-shape arrays in one pass: one variadic ``lax.reduce``.

XLA's CPU backend compiles a variadic reduction into a single loop fused with the elementwise
producers of its operands. Separate ``jnp.sum``/``jnp.max`` calls over the same input can instead
materialise the shared producer as a full-size temporary (three norms of one gradient did), and
the plain ``max`` reduction there does not propagate NaN. Used by the spike transforms and the
gradient-norm recorder.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

__all__ = ["variadic_reduce", "reduce_all"]


def variadic_reduce(operands: Sequence[jax.Array], inits: Sequence, ops: Sequence[str],
                    axes: tuple[int, ...]) -> tuple[jax.Array, ...]:
    """One ``lax.reduce`` over several same-shape operands (``ops``: ``"add"`` or ``"max"``)."""
    fns = tuple(jnp.add if op == "add" else jnp.maximum for op in ops)

    def combine(a, b):
        return tuple(f(x, y) for f, x, y in zip(fns, a, b, strict=True))

    inits = tuple(jnp.asarray(x, o.dtype) for x, o in zip(inits, operands, strict=True))
    return tuple(jax.lax.reduce(tuple(operands), inits, combine, axes))


def reduce_all(operands: Sequence[jax.Array], inits: Sequence, ops: Sequence[str]
               ) -> tuple[jax.Array, ...]:
    """A variadic reduction over all axes, by rows first for operands of rank >= 2 (XLA's CPU
    backend spreads a row reduction over its threads; a full reduction runs on one)."""
    ndim = operands[0].ndim
    if ndim >= 2:
        rows = variadic_reduce(operands, inits, ops, (ndim - 1,))
        return variadic_reduce(rows, inits, ops, tuple(range(ndim - 1)))
    return variadic_reduce(operands, inits, ops, tuple(range(ndim)))
