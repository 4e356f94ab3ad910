"""Tests for benchmarks/planner_validation.py: the planner validation and the AutoLRS comparison.

The pipeline (runs in order, resumable JSON, fits on the seed mean, ``plan_wsd``'s picks trained
after the fits, the analysis and the RESULTS section) is checked on curves drawn from a known
annealing law, so the expected answer is known: the fits must rank the schedules as the law
does and predict their final losses closely. One tiny run of the real trainer checks the record
that ``train_one`` keeps.
"""

from __future__ import annotations

import os
import sys
import types

import numpy as np
import pytest

import optaxsched as oxs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

import planner_validation as ps  # noqa: E402

TRUE_LAW = dict(L0=2.0, A=0.3, alpha=0.5, C=2.0, lam=0.95)

# The pipeline's fits and the example trainer's run compile most of this module's time
# (conftest.fast_compilation_module); what is checked is the pipeline's records, fits and
# report, not XLA's optimisations.
pytestmark = pytest.mark.usefixtures("fast_compilation_module")


def _law_run(base, seed, name, work_dir):
    """A run whose validation losses follow TRUE_LAW under the schedule's real learning rates
    (a seed shifts the whole curve by a small amount, as an initialisation would)."""
    from examples import optim

    cfg = base.replace(seed=seed, **ps.settings_of(name)).resolve()
    schedule = optim.build_schedule(cfg)
    lrs = np.array([float(schedule(i)) for i in range(cfg.steps)])
    law = oxs.AnnealingLaw(**TRUE_LAW, warmup_steps=cfg.warmup_steps)
    steps = np.arange(cfg.eval_every - 1, cfg.steps, cfg.eval_every)
    losses = law.predict(lrs)[steps] * (1 + 1e-3 * (seed - 0.5))
    return {"name": name, "seed": seed, "val_loss": float(losses[-1]),
            "val_steps": steps.tolist(), "val_losses": losses.tolist(), "lrs": lrs.tolist(),
            "train_loss": losses.tolist(), "wall_s": 0.0, "load_1min": 0.0}


def test_planner_pipeline_recovers_a_known_law(tmp_path, monkeypatch):
    monkeypatch.setattr(ps, "train_one", _law_run)
    work = str(tmp_path)
    assert ps.main(["planner", "--quick", "--work-dir", work]) == 0
    folder = os.path.join(work, "planner_suite")
    state = ps.merged_state(folder, ps.base_config(True).to_dict())
    assert state["seeds"] == [0, 1]
    picks = {p["pick"] for p in state["plans"].values()}
    names = {*ps.PHASE1, *ps.PHASE2, *picks}
    assert set(state["runs"]) == {f"seed{s}/{n}" for s in (0, 1) for n in names}
    # The true law's own pick: the fits must find it (or one predicted within 0.05%).
    truth = oxs.AnnealingLaw(**TRUE_LAW, warmup_steps=state["config"]["warmup_steps"])
    ranking = oxs.plan_wsd(truth, 3e-3, state["config"]["steps"],
                           warmup_steps=state["config"]["warmup_steps"])
    scores = {ps.wsd_name(e.settings["decay_shape"], e.settings["decay_fraction"]): e.final_loss
              for e in ranking}
    for pick in picks:
        assert scores[pick] <= ranking[0].final_loss * 1.0005

    # Resuming trains nothing again.
    monkeypatch.setattr(ps, "train_one", lambda *a: pytest.fail("trained a finished run"))
    assert ps.main(["planner", "--quick", "--work-dir", work]) == 0

    out = ps.render(types.SimpleNamespace(
        quick=True, size="demo", planner_dir=folder, render_seeds=None,
        autolrs_dir=os.path.join(work, "none"), results=os.path.join(work, "R.md"),
        figures=os.path.join(work, "fig")), log=lambda *_: None)
    fit2 = out["analysis"]["fits"]["fit 2: + short cooldown"]
    assert fit2["spearman"] > 0.95
    assert fit2["mape_all"] < 0.005
    # Seed 1 is 0.1% above seed 0 everywhere: the paired differences see no noise.
    pv = fit2["pick_vs_wsd"]
    assert pv["se"] < 1e-6
    text = open(os.path.join(work, "R.md"), encoding="utf-8").read()
    assert "<!-- BEGIN planner_validation -->" in text and "Spearman" in text
    assert "`wsd_1-sqrt_0.2`" in text


def test_spearman_against_a_reference():
    assert ps.spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert ps.spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # 1 - 6 Σd² / (n (n² - 1)) without ties: d = (0, 1, -1, 0) -> 1 - 12 / 60.
    assert ps.spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    assert np.isnan(ps.spearman([1, 1, 1], [1, 2, 3]))


def test_schedule_names_map_to_trainer_flags():
    assert ps.settings_of("wsd_cosine_0.15") == dict(schedule="wsd", decay_shape="cosine",
                                                     decay_fraction=0.15)
    assert ps.settings_of(ps.DEFAULT_WSD) == dict(schedule="wsd", decay_shape="1-sqrt",
                                                  decay_fraction=0.2)
    assert ps.settings_of("cosine") == dict(schedule="cosine")
    assert ps.wsd_name("1-sqrt", 0.2) == ps.DEFAULT_WSD


def test_train_one_keeps_the_trainers_curve(tmp_path):
    base = ps.base_config(True).replace(d_model=8, heads=1, steps=20, eval_every=5,
                                        corpus_bytes=100_000)
    record = ps.train_one(base, 1, ps.SHORT, str(tmp_path))
    assert record["val_steps"] == [4, 9, 14, 19]
    assert record["val_losses"][-1] == pytest.approx(record["val_loss"], rel=1e-5)
    assert len(record["lrs"]) == len(record["train_loss"]) == 20
    # The short cooldown: peak until step 18, then linear to 0 over the last 10%.
    assert record["lrs"][10] == pytest.approx(3e-3, rel=1e-5)
    assert record["lrs"][-1] < record["lrs"][17]
