"""Memory footprint of every transform's compiled step: no parameter-sized buffers beyond what
the algorithm needs.

For each case of the registry, the donated, jitted step of ``case.chained()`` is compiled on a
parameter tree of 0.13M float32 entries, and so is the same chain with an optax stand-in in the
case's place (Adam for an optimizer or a direction, the identity before or after Adam); XLA's
buffer assignment is read back (``compiled.memory_analysis()``). The temporary bytes the case
adds, in units of the parameters' bytes, must stay within its documented ``temporaries`` (0 for
fused transforms; NaP needs ``w + u``), and its step must not copy a parameter-sized buffer.

This is a deterministic property of the compiled program, not a timing (timings are in
``benchmarks/step_time.py``). On CPU each such temporary is faulted in page by page on every
step, so one that crept in would cost several times its memory traffic
(``benchmarks/RESULTS.md``, step_time section).
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import optax
import pytest

import optaxsched as oxs
from tests import _registry as reg

# Two matrices (rank >= 2, selected by the registry's `matrices` masks) and a vector.
SHAPES = {"w": (256, 384), "v": (128, 256), "b": (384,)}
# Slack for the scalar and per-row buffers every step keeps (reductions, counters).
SLACK = 0.05


def _params():
    return {k: jnp.full(s, 0.01, jnp.float32) for k, s in SHAPES.items()}


# What stands in for a case of each role in the baseline chain.
STAND_INS = {"first": optax.identity, "direction": optax.scale_by_adam,
             "optimizer": lambda: optax.adam(1e-2), "last": optax.identity}


def _compiled(tx: optax.GradientTransformation, extra: dict | None = None):
    """The donated, jitted step ``(params, state, grads) -> (params, state)``, compiled."""
    extra = extra or {}

    def step(params, state, grads):
        updates, state = tx.update(grads, state, params, **extra)
        return optax.apply_updates(params, updates), state

    params = _params()
    grads = jax.tree.map(lambda p: jnp.full_like(p, 1e-3), params)
    return jax.jit(step, donate_argnums=(0, 1)).lower(params, tx.init(params), grads).compile()


def _temp_bytes(compiled) -> int:
    return compiled.memory_analysis().temp_size_in_bytes


def _full_size_copies(hlo: str) -> list[str]:
    entry = hlo[hlo.index("\nENTRY"):]
    shapes = [f"f32[{','.join(map(str, s))}]" for s in SHAPES.values() if len(s) >= 2]
    return [line.strip()[:120] for line in entry.splitlines()
            if " copy(" in line and any(shape in line for shape in shapes)]


@pytest.mark.parametrize("case_id", sorted(reg.TRANSFORMS))
def test_step_allocates_only_the_temporaries_it_documents(case_id):
    case = reg.TRANSFORMS[case_id]
    extra = reg.extra_args(case)
    compiled = _compiled(case.chained(), extra)
    baseline = _compiled(case.chained(STAND_INS[case.role]()), extra)
    param_bytes = sum(x.nbytes for x in jax.tree.leaves(_params()))
    temp = (_temp_bytes(compiled) - _temp_bytes(baseline)) / param_bytes
    assert temp <= case.temporaries + SLACK, (
        f"{case_id}: the compiled step allocates {temp:.2f}× the parameters' bytes in "
        f"temporaries beyond its baseline chain's; documented: {case.temporaries}")
    assert not _full_size_copies(compiled.as_text())


@pytest.mark.parametrize("norms", [c for k in (1, 2, 3)
                                   for c in itertools.combinations(oxs.NORM_NAMES, k)])
def test_the_recorder_needs_no_temporary_for_any_choice_of_norms(norms):
    # Its reductions take one of two routes depending on the norms (refinement._global_norms).
    param_bytes = sum(x.nbytes for x in jax.tree.leaves(_params()))
    extra = (_temp_bytes(_compiled(optax.chain(oxs.record_grad_norms(8, norms),
                                               optax.adam(1e-3))))
             - _temp_bytes(_compiled(optax.chain(optax.identity(), optax.adam(1e-3)))))
    assert extra <= SLACK * param_bytes


def test_the_check_sees_a_temporary():
    """The measure itself: clipping by the global norm before Adam must materialise the clipped
    gradient (the norm is needed before any of it can be written), one temporary."""
    extra = (_temp_bytes(_compiled(optax.chain(optax.clip_by_global_norm(1.0), optax.adam(1e-3))))
             - _temp_bytes(_compiled(optax.chain(optax.identity(), optax.adam(1e-3)))))
    assert extra >= 0.9 * sum(x.nbytes for x in jax.tree.leaves(_params()))
