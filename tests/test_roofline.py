"""Tests for benchmarks/roofline.py: the fields it computes, its peak table, its checks.

The timings themselves are never checked (they belong to ``benchmarks/RESULTS.md``); what is
checked is the arithmetic built on them: must-move bytes = fused floor × parameter bytes,
bandwidths and fractions consistent with the step times, the CPU bound, the ratios, and that the
bfloat16 path runs and its finiteness check can fail.
"""

from __future__ import annotations

import json
import math
import os
import sys

import jax
import jax.numpy as jnp
import optax
import pytest

import optaxsched as oxs

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "benchmarks"))

import _common  # noqa: E402
import roofline  # noqa: E402
import traffic  # noqa: E402

_SIZE = 20_000  # four 70 x 70 kernels: compiles and runs in a few seconds


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """One run of the script at a tiny size, both dtypes, writing into a copy of RESULTS.md that
    already holds a hand-written reading."""
    folder = tmp_path_factory.mktemp("roofline")
    results, json_path = str(folder / "RESULTS.md"), str(folder / "rows.json")
    _common.write_section("other", "untouched", results)
    _common.write_section(roofline.SECTION, "old table\n\n### Reading\n\nkept by hand\n", results)
    out = roofline.main(["--sizes", "20K", "--dtype", "float32,bfloat16", "--rounds", "2",
                         "--calls", "1", "--results", results, "--json", json_path])
    with open(json_path, encoding="utf-8") as f:
        records = json.load(f)
    return out, _common.read_section(roofline.SECTION, results), results, records


def test_rows_hold_the_floor_times_the_parameter_bytes(written):
    results, _, _, _ = written
    assert [(r.rows[0].dtype, r.rows[0].size) for r in results] == [
        ("float32", results[0].rows[0].size), ("bfloat16", results[0].rows[0].size)]
    f32, bf16 = results
    for res, itemsize in ((f32, 4), (bf16, 2)):
        assert res.backend == "cpu" and res.device_kind == jax.devices()[0].device_kind
        assert [r.name for r in res.rows] == list(roofline.DEFAULT_ENTRIES)
        params = roofline.make_params(_SIZE, res.rows[0].dtype)
        p_bytes = sum(x.size * itemsize for x in jax.tree.leaves(params))
        assert res.peak.measured_gbs > 0 and math.isfinite(res.peak.measured_gbs)
        assert res.peak.nominal_gbs is None and "no nominal peak" in res.peak.nominal_source
        for r in res.rows:
            floor = traffic.FLOORS[r.name]
            assert r.param_bytes == p_bytes
            assert r.must_move == floor.fused * p_bytes  # the state is in the params' dtype
            assert r.floor_fused == floor.fused and r.floor_backend == floor.cpu
            assert r.bound == pytest.approx(floor.fused / floor.cpu)
            assert r.step > 0 and r.step_q1 <= r.step <= r.step_q3
            assert r.achieved_gbs == pytest.approx(r.must_move / r.step / 1e9)
            assert r.fraction_measured == pytest.approx(r.achieved_gbs / res.peak.measured_gbs)
            assert 0 < r.fraction_measured < math.inf and r.fraction_nominal is None
            assert r.fraction == r.fraction_measured  # no nominal peak: the goal uses measured
            assert r.state_bytes >= 2 * p_bytes  # Adam's two moments at least
        assert [(x.name, x.goal) for x in res.ratios] == [("spam", 1.05), ("stable_spam", 1.15)]
        for x in res.ratios:
            assert 0 < x.q1 <= x.ratio <= x.q3 < math.inf
    assert bf16.rows[0].param_bytes * 2 == f32.rows[0].param_bytes
    assert traffic.FLOORS["optax.adam"].fused == 7 and traffic.FLOORS["stable_spam"].fused == 8
    assert f32.rows[0].bound == pytest.approx(0.7)  # adam on XLA:CPU: 7 of its 10 passes


def test_section_is_written_with_its_reading_kept(written):
    _, section, results, records = written
    assert section.startswith("## Step time against the memory roofline")
    assert "no nominal peak known for device kind 'cpu'" in section
    assert "| `optax.adam` | float32 | " in section and "| `stable_spam` | bfloat16 | " in section
    assert "| `spam` / `optax.adam` | bfloat16 | " in section
    assert section.rstrip().endswith("kept by hand") and "old table" not in section
    assert _common.read_section("other", results) == "untouched"
    rows = [row for r in records["results"] for row in r["rows"]]
    assert len(rows) == 6 and all(row["must_move"] > 0 for row in rows)


def test_nominal_peak_is_used_when_given():
    res = roofline.run(_SIZE, "float32", ["spam"], rounds=1, calls=1, warmup=1, peak_gbs=50.0)
    assert res.peak.nominal_gbs == 50.0 and res.peak.nominal_source == "--peak-gbs"
    assert [r.name for r in res.rows] == ["optax.adam", "spam"]
    for r in res.rows:
        assert r.fraction_nominal == pytest.approx(r.achieved_gbs / 50.0)
        assert r.fraction == r.fraction_nominal
    assert "Nominal peak: 50.0 GB/s (--peak-gbs)" in roofline.report([res])


@pytest.mark.parametrize("kind, gbs", [
    ("NVIDIA H200", 4800), ("NVIDIA H200 NVL", 4800), ("NVIDIA H100 80GB HBM3", 3350),
    ("NVIDIA H100 PCIe", 2000), ("NVIDIA H100 NVL", 3900), ("NVIDIA A100-SXM4-80GB", 2039),
    ("NVIDIA A100-SXM4-40GB", 1555), ("NVIDIA A100 80GB PCIe", 1935),
    ("NVIDIA A100-PCIE-40GB", 1555), ("TPU v4", 1200), ("TPU v5 lite", 819), ("TPU v5e", 819),
    ("TPU v5", 2765), ("TPU v5p", 2765), ("TPU v6 lite", 1638), ("TPU v6e", 1638),
    ("cpu", None), ("TPU v4 lite", None), ("NVIDIA GeForce RTX 4090", None),
])
def test_nominal_peak_table(kind, gbs):
    found = roofline.nominal_peak(kind)
    assert (found[0] if found else None) == gbs


def test_must_move_counts_a_state_in_another_dtype_at_its_size():
    params = roofline.make_params(_SIZE, jnp.bfloat16)
    p_bytes = roofline.tree_bytes(params)
    kernels = sum(x.size for x in jax.tree.leaves(params) if x.ndim >= 2)
    same = oxs.spam(1e-3).init(params)
    wide = oxs.spam(1e-3, nu_dtype=jnp.float32).init(params)
    assert roofline.must_move_bytes(7, params, same) == 7 * p_bytes
    # v in float32: read and written at 4 bytes instead of 2 (the kernels; biases are ignored).
    assert roofline.must_move_bytes(7, params, wide) == 7 * p_bytes + 2 * kernels * 2


def test_check_finite_fails_on_a_nan_or_on_parameters_that_did_not_move():
    params = roofline.make_params(_SIZE, jnp.bfloat16)
    tx = optax.adam(1e-3)
    state = tx.init(params)
    moved = jax.tree.map(lambda p: p + jnp.asarray(1e-2, p.dtype), params)
    roofline.check_finite("adam", moved, state, params)
    with pytest.raises(AssertionError, match="did not change"):
        roofline.check_finite("adam", params, state, params)
    nan = jax.tree.map(lambda p: p.at[0].set(jnp.nan), moved)
    with pytest.raises(AssertionError, match="non-finite"):
        roofline.check_finite("adam", nan, state, params)
    bad_state = jax.tree.map(lambda x: x * jnp.inf if jnp.issubdtype(x.dtype, jnp.floating)
                             else x, tx.update(moved, state, params)[1])
    with pytest.raises(AssertionError, match="non-finite"):
        roofline.check_finite("adam", moved, bad_state, params)


def test_bad_arguments_are_refused():
    with pytest.raises(SystemExit):
        roofline.main(["--only", "no_such_entry", "--no-write"])
    with pytest.raises(SystemExit):
        roofline.main(["--dtype", "int32", "--no-write"])
    with pytest.raises(ValueError, match="unknown entries"):
        roofline.run(_SIZE, "float32", ["nope"])
