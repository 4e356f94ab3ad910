"""Tests for the benchmark harness (benchmarks/): ``make bench``'s runner, step_time's JSON rows
and the scaling figure drawn from them.

The timings themselves are never checked here (they belong to ``benchmarks/RESULTS.md``); what is
checked is that every suite still runs end to end, and that a smoke run leaves RESULTS.md and the
committed figures alone.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "benchmarks")
sys.path.insert(0, BENCH)

import run_all  # noqa: E402
import scaling_plot  # noqa: E402


def _digests(folder: str) -> dict[str, str]:
    out = {}
    for base, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(base, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, folder)] = hashlib.sha256(f.read()).hexdigest()
    return out


# The quick bench in two halves, so that the suite's two workers share it (step_time and the
# scaling plot drawn from its rows, last in the plan, stay together; roofline, first, goes with
# the first half); together they run it all.
_QUICK_NAMES = [name for name, _ in run_all.plan(quick=True, scratch="")]
_QUICK_HALVES = [_QUICK_NAMES[:len(_QUICK_NAMES) // 2], _QUICK_NAMES[len(_QUICK_NAMES) // 2:]]


def test_the_halves_cover_the_quick_plan():
    assert len(_QUICK_NAMES) >= 6
    assert sorted(sum(_QUICK_HALVES, [])) == sorted(_QUICK_NAMES)
    assert {"step_time", "scaling_plot"} <= set(_QUICK_HALVES[1])
    assert "roofline" in _QUICK_HALVES[0]
    for name in _QUICK_NAMES:  # --only matches parts of names: each selects just itself
        assert [n for n in _QUICK_NAMES if run_all._selected(n, [name])] == [name]


@pytest.mark.parametrize("half", [0, 1])
def test_quick_bench_runs_every_suite_and_writes_nothing(tmp_path, half):
    names = _QUICK_HALVES[half]
    before = _digests(BENCH)
    env = dict(os.environ, JAX_PLATFORMS="cpu", MPLBACKEND="Agg")
    result = subprocess.run([sys.executable, os.path.join(BENCH, "run_all.py"), "--quick",
                             "--only", ",".join(names)],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    summary = result.stdout[result.stdout.index("summary:"):]
    for name in names:
        assert any(line.split()[:2] == [name, "ok"] for line in summary.splitlines()), summary
    # The step_time registry is reported whole, and nothing committed has changed.
    if "step_time" in names:
        import step_time  # noqa: PLC0415 - imports JAX and the library

        for entry in step_time.REGISTRY:
            assert entry in result.stdout
    after = _digests(BENCH)
    changed = {k for k in before.keys() | after.keys()
               if before.get(k) != after.get(k) and "__pycache__" not in k}
    assert not changed, f"a --quick run changed {sorted(changed)}"


def test_plan_runs_the_scaling_plot_after_step_time(tmp_path):
    for quick in (False, True):
        names = [name for name, _ in run_all.plan(quick=quick, scratch=str(tmp_path))]
        assert names[-1] == "scaling_plot"
        assert names.index("step_time") < names.index("scaling_plot")
        assert names[0] == "roofline"
        assert all(n.endswith("_suite") or n.startswith("step_time") or n in run_all.FULL_ONLY
                   for n in names[1:-1])
    full = dict(run_all.plan(quick=False, scratch=str(tmp_path)))
    assert full["step_time_hugepages"][:2] == ["env", "GLIBC_TUNABLES=glibc.malloc.hugetlb=1"]
    assert full["roofline"][:2] == ["env", "GLIBC_TUNABLES=glibc.malloc.hugetlb=1"]
    assert full["recorder_overhead"][:2] == ["env", "GLIBC_TUNABLES=glibc.malloc.hugetlb=1"]
    # The long, full-only benchmarks run in the full plan, with no flags (so they write their
    # sections), and never in the quick one, which the test suite runs.
    for name in run_all.FULL_ONLY:
        assert full[name][-1] == os.path.join(BENCH, f"{name}.py")
        assert name not in _QUICK_NAMES


def test_every_script_that_writes_a_results_section_is_in_the_plan_or_excused(tmp_path):
    """A benchmark that writes a RESULTS.md section but that ``make bench`` forgets leaves its
    section stale (traffic, compile_cost and recorder_overhead were not run)."""
    planned = {os.path.relpath(part, BENCH) for _, command in
               run_all.plan(quick=False, scratch=str(tmp_path)) for part in command
               if part.endswith(".py")}
    writers = set()
    for base, _, files in os.walk(BENCH):
        for name in files:
            path = os.path.join(base, name)
            if name.endswith(".py") and name != "_common.py":
                with open(path, encoding="utf-8") as f:
                    if "write_section(" in f.read():
                        writers.add(os.path.relpath(path, BENCH))
    assert writers - planned == set(run_all.NOT_IN_PLAN), (writers - planned, run_all.NOT_IN_PLAN)
    assert not planned & set(run_all.NOT_IN_PLAN)
    assert dict(run_all.plan(quick=True, scratch=str(tmp_path)))["roofline"][-1] == "--quick"


def _row(name, params, ratio, goal=None):
    return {"name": name, "baseline": "optax.adam", "params": params, "ratio": ratio,
            "ratio_q1": ratio * 0.9, "ratio_q3": ratio * 1.1, "candidate_s": 1e-3 * ratio,
            "baseline_s": 1e-3, "state_bytes": 8, "baseline_state_bytes": 8, "goal": goal,
            "note": ""}


def test_scaling_plot_draws_the_json_rows(tmp_path):
    rows = [_row("spam", n, r, 1.05) for n, r in ((10**6, 1.3), (16 * 10**6, 1.2))]
    rows += [_row("nap(adam)", n, r) for n, r in ((10**6 + 5, 1.1), (16 * 10**6 + 7, 1.05))]
    path = tmp_path / "rows.json"
    path.write_text(json.dumps({"machine": "test", "command": "test", "rows": rows}))
    figure = tmp_path / "scaling.png"
    assert scaling_plot.main(["--json", str(path), "--figure", str(figure), "--no-write"]) == 0
    assert figure.stat().st_size > 1000
    text = scaling_plot.section(rows, str(figure), wall=1.0)
    assert "| `spam` | `optax.adam` | 1.300 | 1.200 | ≤ 1.05 |" in text
    assert "| `nap(adam)` | `optax.adam` | 1.100 | 1.050 |  |" in text


@pytest.mark.parametrize("content, message", [
    (None, "does not exist"),
    ("[]", "holds no step_time rows"),
    (json.dumps({"rows": [{"name": "x"}]}), "holds no step_time rows"),
    (json.dumps({"rows": [_row("x", 0, 1.0)]}), "unusable rows"),
])
def test_scaling_plot_rejects_bad_json(tmp_path, content, message):
    path = tmp_path / "rows.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(SystemExit, match=message):
        scaling_plot.load_rows(str(path))
