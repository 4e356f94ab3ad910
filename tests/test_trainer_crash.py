"""Crash safety of the example trainer (issue 19): a run killed with SIGKILL at any moment, or
left with a damaged checkpoint, resumes to the uninterrupted run bit for bit, or fails with one
clear error when nothing restorable remains.

The kills are deterministic: the trainer's hidden hook (``train.CRASH_HOOK_ENV``) SIGKILLs the
process at a named point: during a checkpoint's write (its data written, before orbax's commit),
half way through a metrics append, between the temporary file and ``os.replace`` of the metrics
rewrite and of the summary, and after an update whose metrics are not written yet. Each kill runs
the command line in a subprocess; the subprocesses share a persistent JAX compilation cache so
that only the first one compiles.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys

import jax
import numpy as np
import pytest

from examples import run_files, train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A tiny run: 24 updates, a checkpoint every 3 (two kept), evaluation every 8, recorded norms and
# injected spikes so that the optimizer state has several kinds of leaves.
ARGV = ["--d-model", "16", "--layers", "1", "--heads", "2", "--d-ff", "32", "--seq-len", "16",
        "--batch-size", "8", "--steps", "24", "--corpus-bytes", "200000", "--no-progress",
        "--checkpoint-every", "3", "--eval-every", "8", "--eval-batches", "1",
        "--record-grad-norms", "--inject-spikes", "0.2"]
STEPS = 24
# Summary fields that are wall-clock measurements.
CLOCK_KEYS = ("wall_s", "compile_s", "tokens_per_s")


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("jax_cache"))


def _cli(out, cache_dir, *extra, crash=None) -> subprocess.CompletedProcess:
    """Runs ``python -m examples.train`` in a subprocess (crash: the hook's point)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("XLA_FLAGS", train.CRASH_HOOK_ENV)}
    # Less XLA backend optimisation (see _registry.fast_compilation): the first run compiles
    # the train and eval steps for 24 small steps; every run here uses the same setting.
    env.update(JAX_PLATFORMS="cpu", PYTHONPATH=ROOT, JAX_COMPILATION_CACHE_DIR=cache_dir,
               JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
               JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0", JAX_DISABLE_MOST_OPTIMIZATIONS="1")
    if crash is not None:
        env[train.CRASH_HOOK_ENV] = crash
    return subprocess.run([sys.executable, "-m", "examples.train", *ARGV, "--out", str(out),
                           *extra], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=300)


def _killed(proc) -> None:
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stderr[-3000:])


def _ok(proc) -> None:
    assert proc.returncode == 0, proc.stderr[-3000:]


def _final_state(out):
    """(paths, arrays) of every leaf of the final checkpoint (params and optimizer state)."""
    import orbax.checkpoint as ocp

    with ocp.CheckpointManager(os.path.join(os.path.abspath(out), "checkpoints")) as manager:
        tree = manager.restore(STEPS, args=ocp.args.StandardRestore())
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    return [jax.tree_util.keystr(path) for path, _ in flat], [np.asarray(x) for _, x in flat]


def _metric_lines(out):
    """metrics.jsonl's lines without the wall-clock throughput."""
    return [{k: v for k, v in r.items() if k != "tokens_per_s"}
            for r in train.read_metrics(str(out))]


def _summary(out):
    with open(os.path.join(out, "summary.json"), encoding="utf-8") as handle:
        return {k: v for k, v in json.load(handle).items() if k not in CLOCK_KEYS}


def _assert_same_run(out, reference):
    paths, leaves = _final_state(out)
    ref_paths, ref_leaves = _final_state(reference)
    assert paths == ref_paths and any("opt_state" in p for p in paths)
    for path, a, b in zip(paths, leaves, ref_leaves, strict=True):
        assert a.dtype == b.dtype and np.array_equal(a, b), path
    assert _metric_lines(out) == _metric_lines(reference)
    assert [r["step"] for r in train.read_metrics(str(out))] == list(range(STEPS))
    assert _summary(out) == _summary(reference)


def _checkpoints(out):
    return sorted(os.listdir(os.path.join(out, "checkpoints")))


def _truncate_checkpoint(out, step):
    """Cuts every data file of checkpoint ``step`` to 10 bytes (a full disk, a killed copy)."""
    cut = 0
    for root, _, files in os.walk(os.path.join(out, "checkpoints", str(step))):
        if os.path.basename(root) == "d":
            for name in files:
                os.truncate(os.path.join(root, name), 10)
                cut += 1
    assert cut


@pytest.fixture(scope="module")
def reference(tmp_path_factory, cache_dir):
    """The uninterrupted run (its subprocess fills the compilation cache)."""
    out = tmp_path_factory.mktemp("reference") / "run"
    _ok(_cli(out, cache_dir))
    return out


def test_killed_five_times_resumes_bit_for_bit(tmp_path, reference, cache_dir):
    out = tmp_path / "run"
    # 1. Killed while checkpoint 6 is written: its temporary directory holds the data, uncommitted.
    _killed(_cli(out, cache_dir, crash="checkpoint:6"))
    assert _checkpoints(out) == ["3", "6.orbax-checkpoint-tmp"]
    # 2. Resumed from 3 (the uncommitted 6 is removed), killed half way through the metrics line
    #    of update 9: a torn last line.
    _killed(_cli(out, cache_dir, "--resume", crash="append:9"))
    with open(out / "metrics.jsonl", encoding="utf-8") as handle:
        text = handle.read()
    assert not text.endswith("\n")
    assert _checkpoints(out) == ["3", "6"]
    # 3. Resumed from 6, killed while it rewrites metrics.jsonl without the records after the
    #    checkpoint: the temporary file is written, the old file still whole.
    _killed(_cli(out, cache_dir, "--resume", crash="replace:metrics.jsonl"))
    with open(out / "metrics.jsonl", encoding="utf-8") as handle:
        assert handle.read() == text
    assert any(name.startswith(".metrics.jsonl.") for name in os.listdir(out))
    # 4. Resumed from 6, killed after update 20 (its metrics not yet written).
    _killed(_cli(out, cache_dir, "--resume", crash="update:20"))
    assert not any(name.endswith(".tmp") for name in os.listdir(out))
    assert _checkpoints(out) == ["15", "18"]
    assert [r["step"] for r in train.read_metrics(str(out))] == list(range(18))
    # 5. The newest checkpoint damaged: resume falls back to 15 and says so in one line; killed
    #    while the final summary.json is swapped in.
    _truncate_checkpoint(out, 18)
    proc = _cli(out, cache_dir, "--resume", crash="replace:summary.json")
    _killed(proc)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("resume: skipped checkpoint 18 of "), lines
    assert "OUT_OF_RANGE" in lines[0] and lines[0].endswith("resuming from checkpoint 15")
    assert not os.path.exists(out / "summary.json")
    # 6. Resumed from the final checkpoint: only the summary and plots are left to write.
    proc = _cli(out, cache_dir, "--resume")
    _ok(proc)
    assert proc.stderr == ""
    _assert_same_run(out, reference)
    assert {"loss.png", "lr.png", "grad_norm.png"} <= set(os.listdir(out))


def test_nothing_restorable_is_one_error_naming_the_run(tmp_path, reference, cache_dir):
    out = tmp_path / "run"
    shutil.copytree(reference, out)
    for step in (21, 24):
        _truncate_checkpoint(out, step)
    before = {name: (out / name).read_bytes() for name in ("metrics.jsonl", "summary.json",
                                                          "config.json")}
    proc = _cli(out, cache_dir, "--resume")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("usage:"), proc.stderr[-3000:]
    assert "error: argument --resume: no checkpoint of" in lines[1]
    assert str(out) in lines[1] and "checkpoint 24: OUT_OF_RANGE" in lines[1]
    assert "--overwrite" in lines[1] and "Traceback" not in proc.stderr
    # Nothing was touched.
    assert {name: (out / name).read_bytes() for name in before} == before
    assert _checkpoints(out) == ["21", "24"]


def test_metrics_with_a_gap_fall_back_to_a_covered_checkpoint(tmp_path, reference, cache_dir):
    # A line lost in the middle of metrics.jsonl (damage from outside the trainer): checkpoint
    # 24 lies beyond the records that cover steps without a gap, so the run resumes from 21.
    out = tmp_path / "run"
    shutil.copytree(reference, out)
    lines = (out / "metrics.jsonl").read_text().splitlines(keepends=True)
    (out / "metrics.jsonl").write_text("".join(lines[:22] + lines[23:]))
    proc = _cli(out, cache_dir, "--resume")
    _ok(proc)
    assert proc.stderr.strip().splitlines() == [
        f"resume: skipped checkpoint 24 of {out} (metrics.jsonl covers only steps 0-21); "
        f"resuming from checkpoint 21"]
    _assert_same_run(out, reference)


def test_read_metrics_drops_only_a_torn_last_line(tmp_path):
    good = [{"step": 0, "loss": 1.0}, {"step": 1, "loss": 2.0}]
    text = "".join(json.dumps(r) + "\n" for r in good)
    (tmp_path / "metrics.jsonl").write_text(text + '{"step": 2, "lo')
    assert train.read_metrics(str(tmp_path)) == good
    (tmp_path / "metrics.jsonl").write_text('{"step": 0, "lo\n' + text)
    with pytest.raises(ValueError, match="line 1 is not JSON"):
        train.read_metrics(str(tmp_path))


def test_replace_file_leaves_the_old_file_when_the_write_fails(tmp_path, monkeypatch):
    path = tmp_path / "summary.json"
    path.write_text("old")
    run_files.replace_file(str(path), "new")
    assert path.read_text() == "new"

    def full_disk(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space"):
        run_files.replace_file(str(path), "newer")
    assert path.read_text() == "new" and os.listdir(tmp_path) == ["summary.json"]
