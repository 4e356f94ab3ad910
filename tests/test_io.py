"""The one log reader (``optaxsched._io``) behind ``load_loss_curve`` and ``load_grad_norms``.

Both loaders read the same formats with the same rules (the last logged value of a step wins,
per key; gaps are interpolated; a record without a step in a stepped log is skipped) and raise
the same errors. The loaders' own tests: the loss-curve ones below, the norm-log ones in
tests/test_refinement.py, the bad-file matrix in tests/test_bad_inputs.py.
"""

from __future__ import annotations

import json

import numpy as np
import optax
import pytest

import optaxsched as oxs
from optaxsched import plot
from optaxsched._curves import sample_schedule


def _write_jsonl(path, records):
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")


# ------------------------------------------------------------------------------------------
# Loss curves
# ------------------------------------------------------------------------------------------


def test_load_jsonl_interpolates_rates_and_keeps_the_last_duplicate(tmp_path):
    run = tmp_path / "run1"
    run.mkdir()
    records = [{"config": {"lr": 1}}]  # no step: not a per-step record
    records += [{"step": s, "lr": 1e-3 * (1 - s / 100), "loss": 3.0 - s / 100}
                for s in range(0, 100, 10)]
    records += [{"step": 50, "eval_loss": 2.6}, {"step": 60, "lr": 2e-4, "loss": 2.25}]
    _write_jsonl(run / "metrics.jsonl", records)
    curve = oxs.load_loss_curve(run)
    assert curve.name == "run1"
    assert curve.lrs.size == 91
    np.testing.assert_allclose(curve.lrs, 1e-3 * (1 - np.arange(91) / 100) +
                               np.interp(np.arange(91), [50, 60, 70], [0, -2e-4, 0]))
    np.testing.assert_array_equal(curve.steps, np.arange(0, 100, 10))
    assert curve.losses[6] == 2.25
    evals = oxs.load_loss_curve(run / "metrics.jsonl", loss_key="eval_loss")
    np.testing.assert_array_equal(evals.steps, [50])


def test_load_csv_and_npz(tmp_path):
    csv_path = tmp_path / "cosine.csv"
    csv_path.write_text("lr,loss\n0.001,3.0\n0.0009,\n0.0008,2.8\n")
    curve = oxs.load_loss_curve(csv_path)
    assert curve.name == "cosine"
    np.testing.assert_allclose(curve.lrs, [1e-3, 9e-4, 8e-4])
    np.testing.assert_array_equal(curve.steps, [0, 2])
    npz_path = tmp_path / "run.npz"
    np.savez(npz_path, lr=np.full(5, 1e-3), loss=[np.nan, 3.0, np.nan, 2.9, 2.8],
             step=np.arange(10, 15))
    curve = oxs.load_loss_curve(npz_path)
    assert curve.lrs.size == 15
    np.testing.assert_array_equal(curve.steps, [11, 13, 14])


def test_load_drops_non_finite_losses_with_a_warning(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"step": 0, "lr": 0.1, "loss": 3.0}\n{"step": 1, "lr": 0.1, "loss": NaN}\n'
                    '{"step": 2, "lr": 0.1, "loss": 2.0}\n')
    with pytest.warns(UserWarning, match=r"dropped 1 non-finite losses \(first at step 1\)"):
        curve = oxs.load_loss_curve(path)
    np.testing.assert_array_equal(curve.steps, [0, 2])


@pytest.mark.parametrize("name, content, match", [
    ("a.jsonl", '{"step": 0, "lr": 0.1, "loss": 3}\n{oops\n', r"line 2: not valid JSON"),
    ("a.jsonl", '[1, 2]\n', "expected a JSON object"),
    ("a.jsonl", '{"step": 0, "loss": 3.0}\n', "holds no learning rates"),
    ("a.jsonl", '{"step": 0, "lr": 0.1}\n', "holds no finite losses"),
    ("a.jsonl", '{"step": -1, "lr": 0.1, "loss": 3}\n', "'step' must be an integer >= 0"),
    ("a.jsonl", '{"step": 0, "lr": "fast", "loss": 3}\n', "line 1: 'lr' must be a number"),
    ("a.jsonl", '{"step": 0, "lr": -0.1, "loss": 3}\n', "learning rate must be finite"),
    ("a.jsonl", '{"step": 0, "lr": 0.1, "loss": -3}\n', "the loss must be positive"),
    ("a.csv", "lr,accuracy\n0.1,0.5\n", "has no column 'loss'"),
    ("a.csv", "lr,loss\n0.1\n", "line 2: expected 2 cells, got 1"),
    ("a.csv", "", "is empty"),
    ("a.npz", None, "has no column 'loss'"),
    ("a.txt", "1\n", "path must be a run directory or a file ending in"),
])
def test_load_rejects_bad_files(tmp_path, name, content, match):
    path = tmp_path / name
    if name.endswith(".npz"):
        np.savez(path, lr=np.ones(3))
    else:
        path.write_text(content)
    with pytest.raises(ValueError, match=match):
        oxs.load_loss_curve(path)


def test_load_rejects_missing_paths(tmp_path):
    with pytest.raises(ValueError, match="no such file or directory"):
        oxs.load_loss_curve(tmp_path / "none.jsonl")
    with pytest.raises(ValueError, match="no such file or directory"):
        oxs.load_loss_curve(tmp_path / "run_dir_that_is_not_there")
    with pytest.raises(ValueError, match="has no metrics.jsonl"):
        oxs.load_loss_curve(tmp_path)


def test_structured_npy_is_a_loss_curve(tmp_path):
    table = np.zeros(4, dtype=[("step", "i8"), ("lr", "f8"), ("loss", "f8")])
    table["step"], table["lr"], table["loss"] = [0, 2, 4, 6], [4e-3, 3e-3, 2e-3, 1e-3], 3.0
    np.save(tmp_path / "run.npy", table)
    curve = oxs.load_loss_curve(tmp_path / "run.npy")
    assert curve.name == "run"
    np.testing.assert_allclose(curve.lrs, 4e-3 - 0.5e-3 * np.arange(7))
    np.testing.assert_array_equal(curve.steps, [0, 2, 4, 6])
    np.save(tmp_path / "plain.npy", np.ones(4))
    with pytest.raises(ValueError, match=r"load_loss_curve: .*plain\.npy holds one unnamed array"):
        oxs.load_loss_curve(tmp_path / "plain.npy")


# ------------------------------------------------------------------------------------------
# One rule for both loaders
# ------------------------------------------------------------------------------------------


def test_a_later_record_without_the_value_erases_nothing(tmp_path):
    """Duplicate steps: the last *logged* value wins, per key; null and absent keys never
    overwrite (an evaluation line re-logging a step, a resumed run's partial record)."""
    path = tmp_path / "metrics.jsonl"
    _write_jsonl(path, [{"step": 0, "lr": 0.1, "loss": 3.0, "grad_norm_l2": 2.0},
                        {"step": 1, "lr": 0.1, "loss": 2.5, "grad_norm_l2": 1.0},
                        {"step": 1, "lr": None, "loss": None, "grad_norm_l2": None},
                        {"step": 1, "eval_loss": 2.7},
                        {"step": 0, "lr": 0.2, "loss": 2.9, "grad_norm_l2": 4.0}])  # resumed
    np.testing.assert_array_equal(oxs.load_grad_norms(path), [4.0, 1.0])
    curve = oxs.load_loss_curve(path)
    np.testing.assert_array_equal(curve.lrs, [0.2, 0.1])
    np.testing.assert_array_equal(curve.losses, [2.9, 2.5])


def test_gaps_and_stepless_records_follow_one_rule(tmp_path):
    path = tmp_path / "metrics.jsonl"
    _write_jsonl(path, [{"config": "x", "lr": 1.0, "grad_norm_l2": 99.0},  # no step: skipped
                        {"step": 2, "lr": 0.4, "loss": 3.0, "grad_norm_l2": 4.0},
                        {"step": 6, "lr": 0.0, "loss": 2.0, "grad_norm_l2": 8.0}])
    # Norms start at the first logged step; the gap is interpolated.
    np.testing.assert_allclose(oxs.load_grad_norms(path), [4.0, 5.0, 6.0, 7.0, 8.0])
    # The learning rates start at count 0 (held at the first logged rate), gap interpolated.
    curve = oxs.load_loss_curve(path)
    np.testing.assert_allclose(curve.lrs, [0.4, 0.4, 0.4, 0.3, 0.2, 0.1, 0.0])
    np.testing.assert_array_equal(curve.steps, [2, 6])


def test_npz_norm_logs_are_placed_by_step(tmp_path):
    np.savez(tmp_path / "n.npz", grad_norm_l2=[1.0, np.nan, 3.0], step=[10, 11, 13])
    out = oxs.load_grad_norms(tmp_path / "n.npz")
    # Step 11 was logged empty (NaN: refine reports it); step 12, never logged, is interpolated
    # between the logged values around it (steps 10 and 13).
    assert out[0] == 1.0 and np.isnan(out[1]) and out[3] == 3.0
    assert out[2] == pytest.approx(1.0 + 2.0 * 2.0 / 3.0, rel=1e-15)
    np.savez(tmp_path / "bad.npz", grad_norm_l2=[1.0, 2.0], step=[0, -1])
    with pytest.raises(ValueError, match=r"load_grad_norms: .*entry 1: every 'step' must be"):
        oxs.load_grad_norms(tmp_path / "bad.npz")


@pytest.mark.parametrize("content, norms_error, curve_error", [
    ("step,a\n0,1\n", "has no column 'grad_norm_l2'; its columns are ['step', 'a']",
     "has no column 'lr'; its columns are ['step', 'a']"),
    ("step,grad_norm_l2,lr,loss\n0,x,x,x\n", "line 2: 'grad_norm_l2' must be a number, got 'x'",
     "line 2: 'lr' must be a number, got 'x'"),
    ("step,grad_norm_l2,lr,loss\n0,1,0.1,3\n1,1\n", "line 3: expected 4 cells, got 2",
     "line 3: expected 4 cells, got 2"),
    ("step,grad_norm_l2,lr,loss\n", "has a header but no rows", "has a header but no rows"),
    ("step,grad_norm_l2,lr,loss\n1.5,1,0.1,3\n", "line 2: every 'step' must be an integer",
     "line 2: every 'step' must be an integer"),
])
def test_both_loaders_name_the_same_problem_the_same_way(tmp_path, content, norms_error,
                                                        curve_error):
    path = tmp_path / "log.csv"
    path.write_text(content)
    with pytest.raises(ValueError) as norms:
        oxs.load_grad_norms(path)
    with pytest.raises(ValueError) as curve:
        oxs.load_loss_curve(path)
    assert str(norms.value).startswith(f"load_grad_norms: {path}") and norms_error in str(
        norms.value), str(norms.value)
    assert str(curve.value).startswith(f"load_loss_curve: {path}") and curve_error in str(
        curve.value), str(curve.value)


@pytest.mark.parametrize("name, content", [
    ("log.csv", "step,grad_norm_l2,lr,loss\n0,4,0.1,3\n2,8,0.2,2\n"),  # steps read
    ("log.csv", "grad_norm_l2\n4\n6\n8\n"),
    ("log.txt", "4\n6\n8\n"),  # no header: the first number is a number
    ("metrics.jsonl", '{"step": 0, "grad_norm_l2": 4, "lr": 0.1, "loss": 3}\n'
                      '{"step": 2, "grad_norm_l2": 8, "lr": 0.2, "loss": 2}\n'),
])
def test_a_byte_order_mark_changes_nothing(tmp_path, name, content):
    """A UTF-8 byte-order mark (Excel's "CSV UTF-8", PowerShell) is not part of the first cell:
    it had turned the header "step" into another name (steps silently ignored), a header-less
    first number into a header (silently dropped), and a JSON line into an error."""
    plain, marked = tmp_path / "plain", tmp_path / "marked"
    plain.mkdir()
    marked.mkdir()
    (plain / name).write_text(content, encoding="utf-8")
    (marked / name).write_text(content, encoding="utf-8-sig")
    norms = oxs.load_grad_norms(marked / name)
    np.testing.assert_array_equal(norms, oxs.load_grad_norms(plain / name))
    np.testing.assert_array_equal(norms, [4.0, 6.0, 8.0])
    if "lr" in content:
        curve, expected = oxs.load_loss_curve(marked / name), oxs.load_loss_curve(plain / name)
        np.testing.assert_array_equal(curve.lrs, expected.lrs)
        np.testing.assert_array_equal(curve.steps, [0, 2])


def test_a_number_beyond_the_float_range_is_refused_by_both(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"step": 0, "lr": 0.1, "loss": 2.0, "grad_norm_l2": 1' + "0" * 400 + "}\n")
    with pytest.raises(ValueError, match="'grad_norm_l2' must be a number within the float range"):
        oxs.load_grad_norms(path)
    path.write_text('{"step": 0, "lr": 0.1, "loss": 1' + "0" * 400 + "}\n")
    with pytest.raises(ValueError, match="'loss' must be a number within the float range"):
        oxs.load_loss_curve(path)
    path.write_text('{"step": 0, "lr": 0.1, "loss": 2.0}\n{"step": 1' + "0" * 5000 + "}\n")
    for load in (oxs.load_grad_norms, oxs.load_loss_curve):  # beyond int("...")'s digit limit
        with pytest.raises(ValueError, match=r"m\.jsonl, line 2: not readable JSON"):
            load(path)


# ------------------------------------------------------------------------------------------
# One sampler
# ------------------------------------------------------------------------------------------


def test_plot_and_forecast_sample_a_schedule_the_same_way():
    def branching(count):  # Python control flow on the count: sampled one count at a time
        return 1.0 if count < 3 else 0.5

    for schedule in (optax.cosine_decay_schedule(1e-3, 10), branching):
        np.testing.assert_array_equal(plot.sample(schedule, 9), sample_schedule(schedule, 10))
    np.testing.assert_array_equal(sample_schedule(branching, 5), [1.0, 1.0, 1.0, 0.5, 0.5])
    law = oxs.AnnealingLaw(L0=2.0, A=0.5, alpha=0.5, C=0.1)
    np.testing.assert_array_equal(law.predict(branching, 5),
                                  law.predict(sample_schedule(branching, 5)))


def _npy_declaring(shape) -> bytes:
    """A .npy file whose header declares ``shape`` (float64) but holds 64 bytes of data."""
    header = f"{{'descr': '<f8', 'fortran_order': False, 'shape': {shape!r}, }}"
    header += " " * (63 - (len(header) + 10) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode() + bytes(64)


def test_csv_errors_and_absurd_array_headers_are_named_errors(tmp_path):
    """The csv module's own error (a cell beyond its field limit) and NumPy's MemoryError (a
    corrupt header declaring terabytes) are not ValueErrors: they escaped both loaders, and the
    console script printed a traceback."""
    import zipfile

    big = tmp_path / "norms.csv"
    big.write_text('grad_norm_l2\n1.0\n"' + "1" * 200_000 + '"\n')
    with pytest.raises(ValueError, match=r"load_grad_norms: .*norms.csv is not a readable CSV "
                                         r"file \(field larger than field limit"):
        oxs.load_grad_norms(big)
    run = tmp_path / "run.csv"
    run.write_text('step,lr,loss\n0,0.1,"' + "2" * 200_000 + '"\n')
    with pytest.raises(ValueError, match="load_loss_curve: .*run.csv is not a readable CSV"):
        oxs.load_loss_curve(run)
    huge = tmp_path / "norms.npy"
    huge.write_bytes(_npy_declaring((10**12,)))
    with pytest.raises(ValueError, match="norms.npy is not a readable .npy array .*declares"):
        oxs.load_grad_norms(huge)
    archive = tmp_path / "run.npz"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("lr.npy", _npy_declaring((10**12,)))
        z.writestr("loss.npy", _npy_declaring((10**12,)))
    with pytest.raises(ValueError, match="run.npz is not a readable .npz archive .*declares"):
        oxs.load_loss_curve(archive)
