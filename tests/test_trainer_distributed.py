"""The example trainer beyond one device (issue 18): parameters and optimizer state sharded over
an FSDP mesh axis, and multi-process runs through ``jax.distributed`` (gloo on CPU).

Both run in subprocesses: the 8-device CPU mesh needs ``XLA_FLAGS`` before JAX starts, and a
multi-process run needs one process per member.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from examples import train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# float32 tolerance of a sharded run against the unsharded one: the same arithmetic, with
# reductions (gradient sums, norms) split and combined in another order, then carried through 8
# Adam-type updates (which divide by small second moments). Per leaf, the largest absolute
# difference relative to the leaf's largest magnitude: observed at most 8.8e-6 (SPAM's tail
# average of the head kernel); losses agree to 2.3e-7.
LEAF_TOLERANCE = 5e-5
LOSS_RTOL = 1e-5


def _env(devices: int | None = None, cache_dir: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("XLA_FLAGS", train.CRASH_HOOK_ENV) and not k.startswith("JAX_")}
    # Less XLA backend optimisation (as tests/_sharding_worker.py, see
    # _registry.fast_compilation): every run compiles its train and eval steps for a few steps,
    # so compilation is most of these tests' cost (a third less CPU for the FSDP test). What is
    # compared is the placement of the state, bytes per device, and a sharded or multi-process
    # run against the unsharded one compiled with the same settings.
    env.update(JAX_PLATFORMS="cpu", PYTHONPATH=ROOT, JAX_DISABLE_MOST_OPTIMIZATIONS="1")
    if devices is not None:
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    if cache_dir is not None:
        env.update(JAX_COMPILATION_CACHE_DIR=cache_dir,
                   JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
                   JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")
    return env


# ------------------------------------------------------------------------------------------------
# FSDP on the 8-device CPU mesh.
# ------------------------------------------------------------------------------------------------

FSDP_SCRIPT = textwrap.dedent("""
    import json, sys
    sys.path.insert(0, sys.argv[1])
    import jax, numpy as np
    from examples import train
    from examples.config import TrainConfig
    base = TrainConfig(**json.loads(sys.argv[2]))
    report = {"available": jax.device_count(), "runs": []}
    for optimizer, average in (("spam", "tail"), ("stable_spam", "ema")):
        cfg = base.replace(optimizer=optimizer, average=average)
        one = train.run(cfg.replace(devices=1))
        sharded = train.run(cfg.replace(fsdp=8))
        flat_one = jax.tree_util.tree_flatten_with_path((one.params, one.opt_state))[0]
        flat = jax.tree.leaves((sharded.params, sharded.opt_state))
        errors, specs, expected = {}, {}, 0
        for (path, a), b in zip(flat_one, flat, strict=True):
            name = jax.tree_util.keystr(path)
            a, b_host = np.asarray(a, np.float64), np.asarray(b, np.float64)
            scale = max(float(np.max(np.abs(a))), 1e-30) if a.size else 1.0
            errors[name] = float(np.max(np.abs(a - b_host))) / scale if a.size else 0.0
            specs[name] = str(b.sharding.spec)
            split = any(axis is not None for axis in b.sharding.spec)
            expected += b.nbytes // 8 if split else b.nbytes
        report["runs"].append({
            "optimizer": optimizer, "average": average,
            "loss": [[r["loss"] for r in run.metrics] for run in (one, sharded)],
            "val_loss": [one.summary["val_loss"], sharded.summary["val_loss"]],
            "val_loss_averaged": [one.summary["val_loss_averaged"],
                                  sharded.summary["val_loss_averaged"]],
            "mesh": dict(jax.tree.leaves(sharded.params)[0].sharding.mesh.shape),
            "errors": errors, "specs": specs,
            "bytes_unsharded": train.state_bytes_per_device(one.params, one.opt_state),
            "bytes_sharded": train.state_bytes_per_device(sharded.params, sharded.opt_state),
            "bytes_expected": expected})
    print("RESULT " + json.dumps(report))
""")


def test_fsdp_on_8_devices_matches_unsharded_and_holds_an_eighth_each():
    # Every optaxsched piece the trainer offers at once: SPAM / Stable-SPAM, NaP, the gradient
    # norm recorder (8 steps: its history shards too) and both parameter averages.
    cfg = train.TrainConfig(d_model=32, layers=1, heads=2, d_ff=64, seq_len=16, batch_size=16,
                            steps=8, eval_every=8, eval_batches=1, corpus_bytes=200_000,
                            progress=False, nap=True, record_grad_norms=True)
    settings = {k: v for k, v in cfg.to_dict().items() if v != getattr(train.TrainConfig(), k)}
    proc = subprocess.run([sys.executable, "-c", FSDP_SCRIPT, ROOT, json.dumps(settings)],
                          capture_output=True, text=True, env=_env(devices=8), timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    report = json.loads(line[len("RESULT "):])
    assert report["available"] == 8
    for run in report["runs"]:
        assert run["mesh"] == {"data": 1, "fsdp": 8}
        np.testing.assert_allclose(run["loss"][1], run["loss"][0], rtol=LOSS_RTOL)
        assert run["val_loss"][1] == pytest.approx(run["val_loss"][0], rel=LOSS_RTOL)
        assert run["val_loss_averaged"][1] == pytest.approx(run["val_loss_averaged"][0],
                                                            rel=LOSS_RTOL)
        worst = max(run["errors"], key=run["errors"].get)
        assert run["errors"][worst] <= LEAF_TOLERANCE, (worst, run["errors"][worst])
        # Every parameter and every optimizer-state leaf mirroring one is split; the moments,
        # SPAM's / Stable-SPAM's statistics, the average and the norm history included.
        specs = run["specs"]
        assert all("fsdp" in spec for name, spec in specs.items() if name.startswith("[0]"))
        for kind in ("mu", "nu", "average", "grad_norm_l2", "grad_norm_l1"):
            mirrored = [spec for name, spec in specs.items()
                        if re.search(rf"\.{kind}(\[|$)", name)]
            assert mirrored and all("fsdp" in spec for spec in mirrored), kind
        # Bytes per device: 1/8 of the state, plus the replicated scalars (counts, NaP's
        # initial norms).
        (total,) = run["bytes_unsharded"].values()
        held = run["bytes_sharded"]
        assert len(held) == 8 and len(set(held.values())) == 1
        per_device = next(iter(held.values()))
        assert per_device == run["bytes_expected"]
        assert total / 8 <= per_device <= total / 8 * 1.01, (per_device, total)


# ------------------------------------------------------------------------------------------------
# Two processes (gloo) against one.
# ------------------------------------------------------------------------------------------------

MP_ARGV = ["--d-model", "32", "--layers", "1", "--heads", "2", "--d-ff", "64", "--seq-len", "16",
           "--batch-size", "16", "--steps", "8", "--corpus-bytes", "200000", "--no-progress",
           "--checkpoint-every", "4", "--eval-every", "4", "--eval-batches", "1",
           "--record-grad-norms", "--nap", "--average", "ema", "--optimizer", "stable_spam",
           "--fsdp", "2"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        return sock.getsockname()[1]


def _checkpoint(out, step):
    """Every leaf of checkpoint ``step`` (on this process's one device, whatever mesh wrote it)."""
    import orbax.checkpoint as ocp

    path = os.path.join(os.path.abspath(out), "checkpoints", str(step), "default")
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    with ocp.StandardCheckpointer() as checkpointer:
        meta = checkpointer.metadata(path)
        meta = getattr(meta, "item_metadata", meta)
        target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device),
                              meta)
        tree = checkpointer.restore(path, target)
    return [(jax.tree_util.keystr(p), np.asarray(x))
            for p, x in jax.tree_util.tree_flatten_with_path(tree)[0]]


def _metrics(out):
    return [{k: v for k, v in r.items() if k != "tokens_per_s"}
            for r in train.read_metrics(str(out))]


def test_two_processes_equal_one_and_their_checkpoints_resume_in_one(tmp_path):
    cache = str(tmp_path / "jax_cache")
    cli = [sys.executable, "-m", "examples.train", *MP_ARGV]
    single, multi = tmp_path / "single", tmp_path / "multi"
    # One process with 2 devices, and two processes with 1 device each (the same global batch,
    # the same (1 data, 2 fsdp) mesh), run side by side.
    port = _free_port()
    procs = [subprocess.Popen(cli + ["--out", str(single)], env=_env(2, cache), cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)]
    procs += [subprocess.Popen(cli + ["--out", str(multi), "--stop-at", "4", "--coordinator",
                                      f"localhost:{port}", "--num-processes", "2",
                                      "--process-id", str(i)],
                               env=_env(None, cache), cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True) for i in range(2)]
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
    config = json.loads((multi / "config.json").read_text())
    assert config["devices"]["processes"] == 2 and config["devices"]["mesh"] == {"data": 1,
                                                                                 "fsdp": 2}
    # Both processes wrote their shards of the checkpoint; one wrote the run's files.
    assert {"ocdbt.process_0", "ocdbt.process_1"} <= set(
        os.listdir(multi / "checkpoints" / "4" / "default"))
    assert _same(_checkpoint(multi, 4), _checkpoint(single, 4))
    assert _metrics(multi) == _metrics(single)[:4]
    # The two processes' checkpoint resumed by one process (2 devices) ends where the
    # single-process run ended, bit for bit.
    proc = subprocess.run(cli + ["--out", str(multi), "--resume"], env=_env(2, cache), cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _same(_checkpoint(multi, 8), _checkpoint(single, 8))
    assert _metrics(multi) == _metrics(single)
    summary = json.loads((multi / "summary.json").read_text())
    reference = json.loads((single / "summary.json").read_text())
    for key in ("train_loss", "val_loss", "val_loss_averaged"):
        assert summary[key] == reference[key]


def _same(a, b) -> bool:
    """Same leaves, same paths, bit for bit."""
    return len(a) == len(b) and all(pa == pb and x.dtype == y.dtype and np.array_equal(x, y)
                                    for (pa, x), (pb, y) in zip(a, b, strict=True))


# ------------------------------------------------------------------------------------------------
# Bad distribution flags: exit code 2, the flag named, before JAX's runtime is touched.
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("argv, flag", [
    (["--coordinator", "localhost:1234"], "--num-processes"),
    (["--num-processes", "2", "--process-id", "0"], "--coordinator"),
    (["--num-processes", "2", "--process-id", "2"], "--process-id"),
    (["--fsdp", "0"], "--fsdp"),
    (["--devices", "1", "--fsdp", "2"], "--fsdp"),
])
def test_bad_distribution_flags_exit_2(capsys, monkeypatch, argv, flag):
    for name in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID"):
        monkeypatch.delenv(name, raising=False)
    base = ["--d-model", "16", "--layers", "1", "--heads", "2", "--d-ff", "32", "--seq-len",
            "16", "--batch-size", "8", "--steps", "2", "--corpus-bytes", "200000",
            "--no-progress"]
    with pytest.raises(SystemExit) as info:
        train.train(base + argv)
    assert info.value.code == 2
    assert f"argument {flag}" in capsys.readouterr().err
    assert not jax.distributed.is_initialized()


def test_process_settings_come_from_flags_or_the_standard_variables(monkeypatch):
    calls = []
    monkeypatch.setattr(jax.distributed, "is_initialized", lambda: False)
    monkeypatch.setattr(jax.distributed, "initialize", lambda *args: calls.append(args))
    monkeypatch.setattr(jax.config, "update", lambda *args: calls.append(args))
    for name in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID"):
        monkeypatch.delenv(name, raising=False)
    cfg = train.TrainConfig()
    train._join_processes(cfg)
    assert calls == []  # single-process: JAX's runtime is left alone
    monkeypatch.setenv("JAX_COORDINATOR_ADDRESS", "10.0.0.1:8476")
    monkeypatch.setenv("JAX_NUM_PROCESSES", "4")
    monkeypatch.setenv("JAX_PROCESS_ID", "3")
    train._join_processes(cfg)
    assert calls == [("jax_cpu_collectives_implementation", "gloo"), ("10.0.0.1:8476", 4, 3)]
    calls.clear()
    train._join_processes(cfg.replace(coordinator="host0:1", num_processes=2, process_id=1))
    assert calls[-1] == ("host0:1", 2, 1)  # flags win over the variables
    calls.clear()
    for name in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID"):
        monkeypatch.delenv(name)
    train._join_processes(cfg.replace(coordinator="auto"))
    assert calls[-1] == (None, None, None)  # JAX detects the cluster
    monkeypatch.setenv("JAX_NUM_PROCESSES", "two")
    with pytest.raises(train.ConfigError, match="argument --num-processes"):
        train._join_processes(cfg)
