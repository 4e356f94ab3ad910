"""Property-based overflow fuzz over every transform of tests/_registry.py.

A finite spike must never leave a transform's state or the parameters non-finite. For every
registry entry, hypothesis draws one spike (magnitude 1e-38 to 3e38, either sign, one coordinate
of one leaf or every coordinate of every leaf) and the step it lands on (0-6: before, at and
after the resets the registry's small ``reset_interval=4`` triggers); the transform then runs
the spike and at least 10 ordinary steps, and the parameters and every floating state leaf must
be finite. The parameters mix float32, bfloat16 and float16 leaves, so that one compiled program
per entry covers all three dtypes (a spike is clipped to each leaf's largest finite value, so
the input stays finite). The whole run is one jitted ``lax.scan``, compiled once per entry; the
examples only feed arrays.

Chains: each transform sees the spike itself. An entry of role ``first`` is followed by
``optax.sgd(1e-2)``, a ``direction`` by ``optax.scale(-1e-2)``, an ``optimizer`` runs alone (the
registry's ``clip_by_global_norm`` in front would hide the spike), and a ``last`` entry receives
the spike as its update (``optax.scale(-1.0)`` in front).

Entries that run optax's own Adam inside (``nap(optax.adam)``, ``hypergradient(base=
scale_by_adam)``, ``reset_every(adam)``) inherit optax's second moment ``ν = g²``, which is inf
once ``|g|`` exceeds the square root of the leaf dtype's largest value (1.8e19 in float32, 256
in float16): optax's behaviour, not the wrapper's. For those, magnitudes are drawn only up to
that bound (``OPTAX_ADAM_INSIDE``), and their float16 leaf is bfloat16 instead: optax's Adam
divides by ``sqrt(ν) + ε`` with ``ε = 1e-8``, which is 0 in float16, and ``ν`` underflows to 0
for any gradient entry below about 8e-3, so ordinary small gradients already give inf there.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from tests import _registry as reg

# Entries that overflow on this branch: the spike transforms' own reductions and resets are
# made overflow-safe on another branch (issue 12, item 1). Empty this set after merging.
KNOWN_OVERFLOW_FAILURES: set[str] = set()

# Entries with optax's Adam inside (see the module docstring): magnitudes bounded by the dtype.
OPTAX_ADAM_INSIDE = {"nap_adam", "hypergradient_adam_mult", "reset_every_adam",
                     "reset_every_all"}

# One leaf per dtype; two matrices (the registry's `matrices` masks select them) and a vector.
LEAVES = {"w": ((2, 3, 4), jnp.float32), "h": ((3, 5), jnp.float16), "b": ((5,), jnp.bfloat16)}
SPIKE_STEPS = 7  # the spike lands on step 0..6
STEPS = SPIKE_STEPS + 10  # at least 10 ordinary steps after it


def _leaves(case_id: str) -> dict[str, tuple[tuple[int, ...], object]]:
    if case_id in OPTAX_ADAM_INSIDE:
        return {k: (s, jnp.bfloat16 if d == jnp.float16 else d) for k, (s, d) in LEAVES.items()}
    return LEAVES


def _params(case_id: str):
    rng = np.random.default_rng(0)
    return {k: jnp.asarray(rng.normal(size=s), d) for k, (s, d) in _leaves(case_id).items()}


def _good_grads() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    scale = 1.0 + 0.5 * np.sin(np.arange(STEPS))
    return {k: (scale.reshape((-1,) + (1,) * len(s)) * rng.normal(size=(STEPS,) + s)
                ).astype(np.float32) for k, (s, _) in LEAVES.items()}


def _fuzz_chain(case: reg.TransformCase) -> optax.GradientTransformation:
    tx = case.build()
    if case.role == "first":
        return optax.chain(tx, optax.sgd(1e-2))
    if case.role == "direction":
        return optax.chain(tx, optax.scale(-1e-2))
    if case.role == "optimizer":
        return tx
    return optax.chain(optax.scale(-1.0), tx)


@functools.cache
def _runner(case_id: str):
    """jit(run)(grads stacked over STEPS) -> (params, state) after every step, compiled once."""
    case = reg.TRANSFORMS[case_id]
    tx = _fuzz_chain(case)
    extra = reg.extra_args(case)

    @jax.jit
    def run(params, grads):
        def body(carry, g):
            params, state = carry
            updates, state = tx.update(g, state, params, **extra)
            return (optax.apply_updates(params, updates), state), None

        (params, state), _ = jax.lax.scan(body, (params, tx.init(params)), grads)
        return params, state

    return run


def _bound(case_id: str, dtype) -> float:
    top = float(jnp.finfo(dtype).max)
    if case_id in OPTAX_ADAM_INSIDE:
        return math.sqrt(top) / 2
    return top


def _with_spike(case_id, good, exponent, negative, whole, leaf, coordinate, step, signs_seed):
    magnitude = 10.0 ** exponent * (-1.0 if negative else 1.0)
    out = {}
    rng = np.random.default_rng(signs_seed)
    for k, (shape, dtype) in _leaves(case_id).items():
        g = good[k].copy()
        bound = _bound(case_id, dtype)
        spike = float(np.clip(magnitude, -bound, bound))
        if whole:
            g[step] = spike * rng.choice([-1.0, 1.0], size=shape)
        elif k == leaf:
            flat = g[step].reshape(-1)
            flat[coordinate % flat.size] = spike
            g[step] = flat.reshape(shape)
        out[k] = jnp.asarray(g).astype(dtype)  # |spike| <= the dtype's max: stays finite
    return out


def _non_finite(tree) -> list[str]:
    bad = []
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        if jnp.issubdtype(leaf.dtype, jnp.floating) and not bool(
                np.all(np.isfinite(np.asarray(leaf, np.float64)))):
            bad.append(jax.tree_util.keystr(path))
    return bad


CASE_PARAMS = [pytest.param(c, marks=pytest.mark.xfail(
    reason="spike transforms are made overflow-safe on another branch", strict=False))
    if c in KNOWN_OVERFLOW_FAILURES else c for c in sorted(reg.TRANSFORMS)]


@pytest.fixture(autouse=True)
def _fast_compilation():
    with reg.fast_compilation():
        yield


# Half the magnitudes from the range where float32 sums of squares overflow (1.8e19 and up);
# no shrinking (a failure prints its example, and shrinking an expected failure costs time).
EXPONENTS = st.one_of(st.floats(-38.0, math.log10(3e38)),
                      st.sampled_from([19.5, 20.0, 25.0, 30.0, 38.0, math.log10(3e38)]))


@pytest.mark.parametrize("case_id", CASE_PARAMS)
@settings(max_examples=10, phases=(Phase.explicit, Phase.reuse, Phase.generate))
@given(exponent=EXPONENTS, negative=st.booleans(),
       whole=st.booleans(), leaf=st.sampled_from(sorted(LEAVES)),
       coordinate=st.integers(0, 23), step=st.integers(0, SPIKE_STEPS - 1),
       signs_seed=st.integers(0, 3))
def test_a_finite_spike_leaves_everything_finite(case_id, exponent, negative, whole, leaf,
                                                 coordinate, step, signs_seed):
    grads = _with_spike(case_id, _good_grads(), exponent, negative, whole, leaf, coordinate,
                        step, signs_seed)
    assert not _non_finite(grads)  # the input really is finite
    params, state = _runner(case_id)(_params(case_id), grads)
    bad = _non_finite({"params": params, "state": state})
    assert not bad, (f"{case_id}: spike 10^{exponent:.2f} ({'whole tree' if whole else leaf}) "
                     f"at step {step} left non-finite: {bad}")


def test_extreme_spikes_are_in_every_run():
    """The derandomised examples are not the only check: the extremes run for every entry that
    is not in KNOWN_OVERFLOW_FAILURES (3e38 on the whole tree right before a reset, and the
    smallest normal float32 on one coordinate)."""
    good = _good_grads()
    for case_id in sorted(set(reg.TRANSFORMS) - KNOWN_OVERFLOW_FAILURES):
        for exponent, whole, step in ((math.log10(3e38), True, 3), (-38.0, False, 0),
                                      (20.0, False, 4), (20.0, True, 5)):
            grads = _with_spike(case_id, good, exponent, False, whole, "w", 5, step, 0)
            params, state = _runner(case_id)(_params(case_id), grads)
            bad = _non_finite({"params": params, "state": state})
            assert not bad, (case_id, exponent, whole, step, bad)
