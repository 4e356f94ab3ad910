"""Tests for examples/quickstart.py: both runs learn, and run 2 really trains on the refinement.

The quickstart is run through its ``main`` on fewer steps than its default (the cost is two
compilations plus the steps); ``python -m examples.quickstart`` is the same ``main``.
"""

from __future__ import annotations

import contextlib
import io

import jax
import numpy as np
import pytest
from flax import nnx

import optaxsched as oxs
from examples import quickstart

STEPS = 200

# Two training runs whose compilation is most of this module's time
# (conftest.fast_compilation_module); what is checked is what they learn and record.
pytestmark = pytest.mark.usefixtures("fast_compilation_module")


@pytest.fixture(scope="module")
def runs_and_output():
    output = io.StringIO()  # module-scoped, so not capsys (function-scoped)
    with contextlib.redirect_stdout(output):
        runs = quickstart.main(steps=STEPS)
    return runs, output.getvalue()


def test_both_runs_learn(runs_and_output):
    runs, _ = runs_and_output
    assert set(runs) == {"wsd", "refined"}
    for name, run in runs.items():
        losses = run["losses"]
        assert losses.shape == (STEPS,), name
        assert np.all(np.isfinite(losses)), name
        assert np.isfinite(run["val_loss"]), name
        # From about ln 32 = 3.47 at initialisation towards the entropy rate (2.6).
        assert losses[0] > 3.3, name
        assert losses[-20:].mean() < losses[:20].mean() - 0.4, name
        assert run["val_loss"] < np.log(32) - 0.4, name
        # Decreasing over the run, not only at its end: each quarter below the one before.
        quarters = losses.reshape(4, -1).mean(axis=1)
        assert np.all(np.diff(quarters) < 0), (name, quarters)


def test_run_two_follows_the_refinement_of_run_one(runs_and_output):
    runs, _ = runs_and_output
    norms = runs["wsd"]["norms"]
    assert norms.shape == (STEPS,) and np.all(np.isfinite(norms)) and np.all(norms > 0)
    # Independently: the Adam refinement of run 1's recorded l1 norms, times the peak.
    expected = quickstart.PEAK_LR * oxs.refine(norms, kind="adam")
    np.testing.assert_allclose(runs["refined"]["lrs"], expected, rtol=1e-5, atol=1e-9)
    # ... which is not the WSD schedule of run 1 (no warmup from 0, no constant trunk).
    wsd_lrs = runs["wsd"]["lrs"]
    assert wsd_lrs[0] == 0.0 and runs["refined"]["lrs"][0] > 0.0
    assert not np.allclose(runs["refined"]["lrs"], wsd_lrs, rtol=0.1)
    # Run 2 recorded its own norms, and its training differs from run 1's.
    assert runs["refined"]["norms"].shape == (STEPS,)
    assert not np.allclose(runs["refined"]["losses"], runs["wsd"]["losses"])


def test_the_schedule_drives_the_update():
    """A zero schedule leaves the model at its initialisation: the rate is the one passed."""
    corpus = quickstart.bigram_corpus(vocab_size=32, length=1 << 13, seed=0)
    initial = nnx.state(quickstart.CharMLP(corpus.vocab_size, rngs=nnx.Rngs(0)), nnx.Param)
    frozen = quickstart.train(lambda count: 0.0 * count, corpus, steps=3)["model"]
    moved = quickstart.train(lambda count: 1e-2 + 0.0 * count, corpus, steps=3)["model"]
    same = jax.tree.map(np.array_equal, initial, nnx.state(frozen, nnx.Param))
    assert all(jax.tree.leaves(same))
    differs = jax.tree.map(np.array_equal, initial, nnx.state(moved, nnx.Param))
    assert not all(jax.tree.leaves(differs))


def test_prints_the_table(runs_and_output):
    _, output = runs_and_output
    lines = output.splitlines()
    assert any(line.startswith("wsd ") for line in lines)
    assert any(line.startswith("refined ") for line in lines)
    assert "entropy rate" in output
