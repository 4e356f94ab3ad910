"""Tests of benchmarks/lm_refinement.py (refinement on the example language model).

The benchmark's numbers belong to benchmarks/RESULTS.md; checked here: the ``--quick`` pipeline
runs end to end (pilot with recorded norms -> refined runs -> tables and figure) without touching
RESULTS.md, the refined runs follow ``oxs.refined_schedule`` of the *pilot's* ℓ1 norms with the
Adam variant, and the paired statistics and the run order are what the report says they are.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys

import numpy as np
import pytest

import optaxsched as oxs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "benchmarks")
sys.path.insert(0, BENCH)

import lm_refinement as bench  # noqa: E402

# The --quick pipeline trains five runs of the example trainer: compiling their steps is most of
# this module's time (conftest.fast_compilation_module); what is checked is the pipeline's
# records and files, not XLA's optimisations.
pytestmark = pytest.mark.usefixtures("fast_compilation_module")


def test_quick_run_end_to_end_follows_the_pilots_l1_norms(tmp_path):
    results = os.path.join(BENCH, "RESULTS.md")
    before = hashlib.sha256(open(results, "rb").read()).hexdigest()
    assert bench.main(["--quick", "--out", str(tmp_path)]) == 0
    assert hashlib.sha256(open(results, "rb").read()).hexdigest() == before

    with open(tmp_path / "lm_refinement.json", encoding="utf-8") as f:
        data = json.load(f)
    assert set(data["runs"]) == {"pilot", "linear_s0", "refined_s0", "linear_s1", "refined_s1"}
    cfg = bench.QUICK
    assert data["runs"]["pilot"]["seed"] == bench.PILOT_SEED not in bench.QUICK_SEEDS

    # The refined runs' learning rates are the refinement of the pilot's recorded l1 norms.
    records = [json.loads(line) for line in open(tmp_path / "runs" / "pilot" / "metrics.jsonl")]
    l1 = np.array([r["grad_norm_l1"] for r in records])
    l2 = np.array([r["grad_norm_l2"] for r in records])
    assert l1.size == cfg.steps and np.all(l1 > l2)
    schedule = oxs.refined_schedule(l1, cfg.peak_lr, total_steps=cfg.steps, kind="adam")
    expected = bench._blocks([float(schedule(t)) for t in range(cfg.steps)], bench.BLOCKS)
    wrong = oxs.refined_schedule(l2, cfg.peak_lr, total_steps=cfg.steps, kind="sgd")
    wrong = bench._blocks([float(wrong(t)) for t in range(cfg.steps)], bench.BLOCKS)
    for seed in bench.QUICK_SEEDS:
        run = data["runs"][f"refined_s{seed}"]
        assert run["refine_kind"] == "adam" and run["refined_from"] == "pilot"
        np.testing.assert_allclose(run["lr"], expected, rtol=1e-5, atol=1e-9)
        assert not np.allclose(run["lr"], wrong, rtol=1e-3)
        assert run["lr"][-1] < 0.1 * cfg.peak_lr  # decays to 0 at the end
        assert math.isfinite(run["val_loss"])

    text = (tmp_path / "results.md").read_text()
    assert "| refined − linear | 2 |" in text
    assert "| pilot (60 steps), ℓ1 |" in text
    assert (tmp_path / "lm_refinement.png").stat().st_size > 10_000

    # Resuming trains nothing (every planned run is in the JSON): the JSON is left as it was.
    stamp = os.path.getmtime(tmp_path / "lm_refinement.json")
    again = bench.run_all(cfg, bench.QUICK_SEEDS, bench.QUICK_VARIANTS, str(tmp_path / "runs"),
                          str(tmp_path / "lm_refinement.json"), log=lambda _: None)
    assert again["runs"] == data["runs"]
    assert os.path.getmtime(tmp_path / "lm_refinement.json") == stamp


def _fake(values: dict[str, list[float]]) -> dict:
    runs = {}
    for variant, losses in values.items():
        for seed, loss in enumerate(losses):
            runs[f"{variant}_s{seed}"] = {"variant": variant, "seed": seed, "val_loss": loss}
    return {"runs": runs}


def test_paired_differences_mean_and_standard_error():
    data = _fake({"linear": [1.0, 1.2, 1.1, 0.9], "refined": [1.05, 1.1, 1.2, 1.0]})
    mean, se, n, lower = bench.paired(data, "refined", "linear")
    d = np.array([0.05, -0.1, 0.1, 0.1])
    assert n == 4 and lower == 1
    assert math.isclose(mean, d.mean(), abs_tol=1e-12)
    assert math.isclose(se, np.std(d, ddof=1) / 2.0, rel_tol=1e-9)
    # Only the seeds both variants ran are paired; fewer than two give no statistic.
    data["runs"].pop("refined_s3")
    assert bench.paired(data, "refined", "linear")[2] == 3
    assert bench.paired(_fake({"linear": [1.0], "refined": [2.0]}), "refined", "linear") is None


def test_plan_puts_the_main_comparison_first():
    order = bench.plan(bench.SEEDS, (*bench.MAIN, *bench.EXTRA))
    assert len(order) == len(set(order)) == len(bench.SEEDS) * 5
    first = order[:9]
    assert {v for v, _ in first} == set(bench.MAIN) and {s for _, s in first} == {0, 1, 2}
    # The LR check (twice the peak, first three seeds) and the long pilot come before the
    # further seeds.
    check = bench.plan(bench.SEEDS, bench.ALL, long_pilot=True)
    assert check[:15] == order[:15]
    assert set(check[15:22]) == {(v, s) for v in bench.LR_CHECK for s in (0, 1, 2)} | {
        (bench.LONG_PILOT, bench.PILOT_SEED)}
    assert {s for _, s in check[22:]} == {3, 4} and len(check) == 22 + 2 * len(bench.ALL)
    assert {v for v, _ in check[22:28]} == set(bench.MAIN)  # the further seeds: main first
    # refined_self refines its seed's own linear run, which must come before it.
    for i, (variant, seed) in enumerate(order):
        if variant == "refined_self":
            assert ("linear", seed) in order[:i]
