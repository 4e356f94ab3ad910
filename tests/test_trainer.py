"""Tests for the example Flax trainer (examples/): flags, metrics, refinement, NaP, spikes, resume,
data parallelism and the errors of bad flags.

Runs are tiny (a 1-block transformer of width 16 on a few steps): the cost is the compilation of
each configuration's train step, so configurations are shared through module-scoped fixtures.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest
from flax import nnx

import optaxsched as oxs
from examples import data as data_lib
from examples import model as model_lib
from examples import optim, train
from examples.config import (
    SCHEDULES,
    ConfigError,
    TrainConfig,
    build_parser,
    config_from_args,
    flag,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TINY = TrainConfig(d_model=16, layers=1, heads=2, d_ff=32, seq_len=16, batch_size=8, steps=6,
                   eval_every=3, eval_batches=1, corpus_bytes=200_000, progress=False)

# Every key a metrics record may have, and those it must have.
ALLOWED_KEYS = {"step", "loss", "val_loss", "lr", "grad_norm_l2", "grad_norm_l1",
                "effective_lr", "clipped", "spike", "tokens_per_s"}
REQUIRED_KEYS = {"step", "loss", "lr", "grad_norm_l2", "effective_lr", "tokens_per_s"}


def _deterministic(records):
    """The records without the wall-clock throughput."""
    return [{k: v for k, v in r.items() if k != "tokens_per_s"} for r in records]


def _leaves_equal(a, b) -> bool:
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    return len(la) == len(lb) and all(np.array_equal(np.asarray(x), np.asarray(y))
                                      for x, y in zip(la, lb, strict=True))


def _cli_error(capsys, argv) -> str:
    """Runs the command line, expects argparse's exit code 2, returns the error text."""
    with pytest.raises(SystemExit) as info:
        train.train(argv)
    assert info.value.code == 2
    return capsys.readouterr().err


def _tiny_argv(out=None) -> list[str]:
    argv = ["--d-model", "16", "--layers", "1", "--heads", "2", "--d-ff", "32", "--seq-len", "16",
            "--batch-size", "8", "--steps", "6", "--corpus-bytes", "200000", "--no-progress"]
    return argv + (["--out", str(out)] if out is not None else [])


# ------------------------------------------------------------------------------------------------
# Shared runs.
# ------------------------------------------------------------------------------------------------


# Less XLA backend optimisation for the whole module (conftest.fast_compilation_module): each
# run compiles its train and eval steps for a few steps, so compilation was most of this
# module's time. What is checked is the trainer's records, files, schedules and runs against
# each other (resume, decayed models, devices), not XLA's optimisations.
pytestmark = pytest.mark.usefixtures("fast_compilation_module")


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """A linear-decay run of 24 steps with --record-grad-norms and spikes, written to disk."""
    out = tmp_path_factory.mktemp("recorded")
    cfg = TINY.replace(steps=24, eval_every=8, schedule="linear", record_grad_norms=True,
                       inject_spikes=0.25, out=str(out))
    return train.run(cfg)


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    """A 6-step AdamW run without recorded norms, written to disk."""
    out = tmp_path_factory.mktemp("plain")
    return train.run(TINY.replace(out=str(out)))


# ------------------------------------------------------------------------------------------------
# Data and model (no training).
# ------------------------------------------------------------------------------------------------


def test_stdlib_corpus_is_fixed_and_hashed():
    a = data_lib.stdlib_corpus(max_bytes=50_000)
    b = data_lib.stdlib_corpus(max_bytes=50_000)
    assert a.sha256 == b.sha256 and np.array_equal(a.train, b.train)
    assert a.train.size + a.val.size == 50_000
    assert a.vocab_size == len(a.info["alphabet"]) and a.train.max() < a.vocab_size
    files = data_lib.stdlib_files()
    assert files == sorted(files) and a.info["first_file"] == os.path.basename(files[0])
    # The tokens decode back to the source text.
    with open(files[0], "rb") as handle:
        head = handle.read(200).decode("utf-8")
    assert a.decode(a.train[:200]) == head


def test_batches_are_a_pure_function_of_seed_and_step():
    tokens = jax.numpy.asarray(np.arange(1000) % 50, dtype=np.uint8)
    draw = jax.jit(lambda seed, step: data_lib.sample_batch(
        tokens, data_lib.batch_key(seed, step), 4, 8), static_argnums=0)
    first, again = draw(0, 5), draw(0, 5)
    assert np.array_equal(first, again)
    assert not np.array_equal(first, draw(0, 6)) and not np.array_equal(first, draw(1, 5))
    # Windows are consecutive tokens of the stream.
    assert first.shape == (4, 9)
    assert np.all((np.diff(np.asarray(first), axis=1) % 50) == 1)


def test_bigram_language_entropy_is_below_uniform():
    corpus = data_lib.bigram_corpus(vocab_size=16, length=1 << 14, seed=3)
    probs = data_lib.bigram_transitions(16, 1.2, 3)
    assert np.allclose(probs.sum(axis=1), 1.0)
    assert 0 < corpus.info["entropy_nats"] < math.log(16)
    # The sampled stream follows the transition matrix: empirical bigram frequencies match.
    stream = np.concatenate([corpus.train, corpus.val]).astype(np.int64)
    counts = np.zeros((16, 16))
    np.add.at(counts, (stream[:-1], stream[1:]), 1)
    empirical = counts / counts.sum(axis=1, keepdims=True)
    assert np.abs(empirical - probs).max() < 0.05


@pytest.mark.parametrize("name", model_lib.MODELS)
def test_nap_mask_selects_exactly_the_kernels_that_feed_a_norm(name):
    model = model_lib.build_model(name, 20, seq_len=8, d_model=16, num_layers=3, num_heads=2,
                                  d_ff=32, context=3, seed=0)
    mask = optim.nap_mask_of(model)  # raises if oxs.nap_mask disagrees with the design
    selected = [v for v in jax.tree.leaves(mask) if v is not False]
    assert len(selected) == 3


@pytest.mark.parametrize("name", model_lib.MODELS)
def test_automatic_nap_mask_agrees_with_the_models_pairs(name):
    # The models keep their natural attribute order; the automatic rule (siblings in definition
    # order) finds the same kernels as the pairs the trainer passes.
    model = model_lib.build_model(name, 20, seq_len=8, d_model=16, num_layers=2, num_heads=2,
                                  d_ff=32, context=3, seed=0)
    automatic = nnx.to_pure_dict(oxs.nap_mask(model))
    assert automatic == optim.nap_mask_of(model)


@pytest.mark.parametrize("schedule", SCHEDULES[:-1])
def test_every_schedule_builds_within_bounds(schedule):
    cfg = TINY.replace(schedule=schedule, steps=200, peak_lr=1e-3).resolve()
    values = np.asarray(optim.build_schedule(cfg)(np.arange(cfg.steps)))
    assert values.shape == (200,) and np.all(np.isfinite(values))
    assert values.min() >= 0 and values.max() <= 1e-3 * (1 + 1e-6)
    assert values[cfg.warmup_steps] == pytest.approx(1e-3, rel=1e-5)
    if schedule in ("cosine", "linear", "wsd", "rex", "uba", "wsd_s"):
        assert values[-1] < 0.05e-3  # decays (almost) to --end-lr 0 at the end


# ------------------------------------------------------------------------------------------------
# Runs.
# ------------------------------------------------------------------------------------------------


def test_metrics_file_schema(recorded):
    run_dir = recorded.run_dir
    records = train.read_metrics(run_dir)
    assert _deterministic(records) == _deterministic(recorded.metrics)
    assert [r["step"] for r in records] == list(range(24))
    for r in records:
        assert REQUIRED_KEYS <= set(r) <= ALLOWED_KEYS
        assert {"grad_norm_l1", "spike"} <= set(r)
        assert isinstance(r["step"], int) and isinstance(r["spike"], int)
        assert all(isinstance(r[k], float) for k in ("loss", "lr", "grad_norm_l2"))
    assert [r["step"] for r in records if "val_loss" in r] == [7, 15, 23]
    # lr is the schedule at the update's count.
    schedule = oxs.linear_decay(3e-3, 24, warmup_steps=1)
    assert np.allclose([r["lr"] for r in records], schedule(np.arange(24)), rtol=1e-6)
    # Spikes multiply the gradient: their norms stand far above the others.
    spiky = [r["grad_norm_l2"] for r in records if r["spike"]]
    calm = [r["grad_norm_l2"] for r in records if not r["spike"]]
    assert spiky and calm and min(spiky) > 50 * max(calm)

    config = json.load(open(os.path.join(run_dir, "config.json")))
    assert config["config"]["schedule"] == "linear" and config["config"]["warmup_steps"] == 1
    assert len(config["corpus"]["sha256"]) == 64 and config["corpus"]["bytes"] == 200_000
    assert config["model"]["parameters"] == recorded.summary["parameters"]
    for name in ("loss.png", "lr.png", "grad_norm.png", "summary.json"):
        assert os.path.getsize(os.path.join(run_dir, name)) > 0
    assert os.listdir(os.path.join(run_dir, "checkpoints")) == ["24"]
    # What the refine command reads.
    assert oxs.load_grad_norms(os.path.join(run_dir, "metrics.jsonl")).size == 24


def test_recorded_norms_match_the_optimizer_state(recorded):
    history = oxs.grad_norm_history(recorded.opt_state)
    for key in ("l2", "l1"):
        logged = np.asarray([r[f"grad_norm_{key}"] for r in recorded.metrics], np.float32)
        assert np.array_equal(logged, history[key])


def test_refined_schedule_from_a_recorded_run(recorded, tmp_path):
    result = train.run(TINY.replace(steps=12, schedule="refined", refine_from=recorded.run_dir,
                                    out=str(tmp_path / "refined")))
    assert result.config.refine_kind == "adam" and result.config.warmup_steps == 0
    norms = oxs.load_grad_norms(os.path.join(recorded.run_dir, "metrics.jsonl"),
                                key="grad_norm_l1")
    expected = oxs.refined_schedule(norms, 3e-3, total_steps=12, kind="adam")(np.arange(12))
    assert np.allclose([r["lr"] for r in result.metrics], expected, rtol=1e-6)
    assert result.metrics[-1]["lr"] == 0.0 and max(r["lr"] for r in result.metrics) > 1e-3
    config = json.load(open(tmp_path / "refined" / "config.json"))
    assert config["refined_from"]["key"] == "grad_norm_l1"
    assert config["refined_from"]["steps"] == 24


@pytest.mark.parametrize("optimizer", ["sgd", "spam", "stable_spam"])
def test_optimizers_train(optimizer):
    # Seed 15 at rate 0.1 draws its first spikes at steps 20 and 21 (checked below), after
    # SPAM's 20 steps without clipping, so that no unclipped spike has inflated its moments.
    cfg = TINY.replace(optimizer=optimizer, steps=24, eval_every=24, inject_spikes=0.1, seed=15)
    result = train.run(cfg)
    assert result.run_dir is None
    losses = [r["loss"] for r in result.metrics]
    assert all(np.isfinite(losses)) and np.isfinite(result.summary["val_loss"])
    spikes = [r["step"] for r in result.metrics if r["spike"]]
    assert spikes[:2] == [20, 21]
    if optimizer == "sgd":
        assert "clipped" not in result.metrics[0] and result.config.peak_lr == 0.3
        return
    # Spike-aware optimizers report the coordinates they clipped. SPAM does not clip during its
    # first 20 steps and clips the spike; Stable-SPAM's AdaClip trims a few coordinates on
    # ordinary steps and most of them on a spike.
    clipped = [r["clipped"] for r in result.metrics]
    if optimizer == "spam":
        assert clipped[:20] == [0] * 20 and clipped[20] > 0
    else:
        assert clipped[20] > 10 * max(clipped[:20])


def test_nap_keeps_scale_invariant_norms(plain):
    result = train.run(TINY.replace(nap=True, steps=8))
    final = {"/".join(str(getattr(k, "key", k)) for k in path): leaf
             for path, leaf in jax.tree_util.tree_flatten_with_path(result.params)[0]}
    vocab = data_lib.stdlib_corpus(max_bytes=TINY.corpus_bytes).vocab_size
    model = model_lib.build_model("transformer", vocab, seq_len=16, d_model=16, num_layers=1,
                                  num_heads=2, d_ff=32, context=1, seed=0)
    (path,) = model_lib.scale_invariant_kernels(model)
    initial = float(np.linalg.norm(np.asarray(model.blocks[0].mlp.fc1.kernel[...])))
    assert float(np.linalg.norm(final[path])) == pytest.approx(initial, rel=1e-5)
    # Without NaP the same kernel moved off its initial norm.
    plain_final = {"/".join(str(getattr(k, "key", k)) for k in p): leaf
                   for p, leaf in jax.tree_util.tree_flatten_with_path(plain.params)[0]}
    assert abs(float(np.linalg.norm(plain_final[path])) - initial) > 1e-4 * initial
    # Adam: effective lr = lr / ||W||, so with NaP their ratio stays at 1 / ||W0||; without
    # NaP the norm grows and the ratio drifts.
    ratio = [r["effective_lr"] / r["lr"] for r in result.metrics if r["lr"] > 0]
    assert np.allclose(ratio, 1.0 / initial, rtol=1e-4)
    drift = [r["effective_lr"] / r["lr"] for r in plain.metrics if r["lr"] > 0]
    assert abs(drift[-1] - drift[0]) > 1e-4 * drift[0]


def test_mlp_on_bigram_learns_towards_the_entropy_rate():
    cfg = TINY.replace(data="bigram", model="mlp", context=1, d_model=32, d_ff=64, steps=60,
                       batch_size=16, peak_lr=1e-2, eval_every=60, eval_batches=2)
    result = train.run(cfg)
    entropy = result.summary["entropy_nats"]
    assert result.metrics[0]["loss"] > math.log(64) - 0.1  # starts near uniform
    assert entropy - 0.1 < result.summary["val_loss"] < math.log(64) - 0.7


def test_resume_reproduces_the_uninterrupted_run_bit_for_bit(tmp_path):
    cfg = TINY.replace(steps=12, eval_every=4, record_grad_norms=True, inject_spikes=0.2,
                       checkpoint_every=3)
    full = train.run(cfg.replace(out=str(tmp_path / "full")))
    part = str(tmp_path / "part")
    train.run(cfg.replace(out=part, stop_at=6))
    assert sorted(os.listdir(os.path.join(part, "checkpoints"))) == ["3", "6"]
    # A crash after the checkpoint leaves records of steps that will be redone.
    with open(os.path.join(part, "metrics.jsonl"), "a") as handle:
        handle.write(json.dumps({"step": 6, "loss": 123.0}) + "\n")
    train._COMPILED.clear()  # a real resume is a new process: compile the step afresh
    resumed = train.run(cfg.replace(out=part, resume=True))
    assert _deterministic(resumed.metrics) == _deterministic(full.metrics)
    assert _deterministic(train.read_metrics(part)) == _deterministic(full.metrics)
    assert _leaves_equal(resumed.params, full.params)
    assert _leaves_equal(resumed.opt_state, full.opt_state)
    assert resumed.summary["val_loss"] == full.summary["val_loss"]


def test_wsd_s_keeps_every_decayed_model(tmp_path):
    import orbax.checkpoint as ocp

    cfg = TINY.replace(steps=8, eval_every=100, schedule="wsd_s", decay_points=(4, 8))
    out = str(tmp_path / "wsd_s")
    full = train.run(cfg.replace(out=out))
    assert sorted(os.listdir(os.path.join(out, "decayed")), key=int) == ["4", "8"]
    by_step = {r["step"]: r for r in full.metrics}
    assert full.summary["decayed"] == [{"after": k, "val_loss": by_step[k - 1]["val_loss"]}
                                       for k in (4, 8)]
    with ocp.CheckpointManager(os.path.join(out, "decayed")) as manager:
        first = manager.restore(4, args=ocp.args.StandardRestore())["params"]
        last = manager.restore(8, args=ocp.args.StandardRestore())["params"]
    # The model decayed at the first budget is the run's parameters after 4 updates.
    stopped = train.run(cfg.replace(out=str(tmp_path / "stopped"), stop_at=4))
    assert _leaves_equal(first, stopped.params)
    assert _leaves_equal(last, full.params)


SHARDING_SCRIPT = textwrap.dedent("""
    import json, os, sys
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
    os.environ["JAX_PLATFORMS"] = "cpu"
    sys.path.insert(0, sys.argv[1])
    import jax
    from examples import train
    from examples.config import TrainConfig
    cfg = TrainConfig(**json.loads(sys.argv[2]))
    out = {}
    for devices in (1, 8):
        result = train.run(cfg.replace(devices=devices))
        leaf = jax.tree.leaves(result.params)[0]
        out[devices] = {"loss": [r["loss"] for r in result.metrics],
                        "val_loss": result.summary["val_loss"],
                        "devices": result.summary["devices"],
                        "mesh": int(leaf.sharding.mesh.size)}
    out["available"] = jax.device_count()
    print("RESULT " + json.dumps(out))
""")


def test_data_parallel_on_8_devices_matches_one_device():
    cfg = TINY.replace(batch_size=16, steps=5, eval_every=5)
    settings = {k: v for k, v in cfg.to_dict().items() if v != getattr(TrainConfig(), k)}
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env["JAX_DISABLE_MOST_OPTIMIZATIONS"] = "1"  # as the in-process runs (pytestmark)
    proc = subprocess.run([sys.executable, "-c", SHARDING_SCRIPT, ROOT, json.dumps(settings)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    out = json.loads(line[len("RESULT "):])
    assert out["available"] == 8
    one, eight = out["1"], out["8"]
    assert (one["devices"], one["mesh"], eight["devices"], eight["mesh"]) == (1, 1, 8, 8)
    np.testing.assert_allclose(eight["loss"], one["loss"], rtol=2e-5)
    assert eight["val_loss"] == pytest.approx(one["val_loss"], rel=2e-5)


# ------------------------------------------------------------------------------------------------
# Bad flags: exit code 2 and the flag named.
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("argv, flag", [
    (["--schedule", "bogus"], "--schedule"),
    (["--steps", "-5"], "--steps"),
    (["--steps", "10", "--warmup-steps", "10"], "--warmup-steps"),
    (["--schedule", "refined"], "--refine-from"),
    (["--resume"], "--resume"),
    (["--peak-lr", "0"], "--peak-lr"),
    (["--optimizer", "lion"], "--optimizer"),
    (["--inject-spikes", "1.5"], "--inject-spikes"),
    (["--devices", "64"], "--devices"),
    (["--corpus-bytes", "1000", "--seq-len", "128"], "--corpus-bytes"),
    (["--schedule", "wsd_s", "--decay-points", "4,3"], "--decay-points"),
])
def test_bad_flags_exit_2_naming_the_flag(capsys, argv, flag):
    err = _cli_error(capsys, _tiny_argv() + argv)
    assert f"argument {flag}" in err, err


def test_refine_from_a_run_without_norms_is_a_flag_error(capsys, plain, tmp_path):
    err = _cli_error(capsys, _tiny_argv() + ["--schedule", "refined", "--refine-from",
                                             plain.run_dir])
    assert "argument --refine-from" in err and "--record-grad-norms" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    err = _cli_error(capsys, _tiny_argv() + ["--schedule", "refined", "--refine-from",
                                             str(empty)])
    assert "argument --refine-from" in err and "metrics.jsonl" in err


def test_existing_run_dir_needs_resume_or_overwrite(capsys, plain):
    err = _cli_error(capsys, _tiny_argv(plain.run_dir))
    assert "argument --out" in err and "--resume" in err
    # Resuming with a different trajectory setting names that flag.
    err = _cli_error(capsys, _tiny_argv(plain.run_dir) + ["--resume", "--peak-lr", "0.01"])
    assert "argument --peak-lr" in err
    # --overwrite with a setting found bad later leaves the existing run untouched.
    err = _cli_error(capsys, _tiny_argv(plain.run_dir) + ["--overwrite", "--devices", "64"])
    assert "argument --devices" in err
    assert len(train.read_metrics(plain.run_dir)) == 6


def test_config_error_is_a_value_error_naming_the_flag():
    with pytest.raises(ConfigError, match="argument --batch-size") as info:
        TINY.replace(batch_size=0).resolve()
    assert isinstance(info.value, ValueError) and info.value.flag == "--batch-size"


def test_script_entry_point_exits_2_on_a_bad_flag():
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "train.py"),
                           "--steps", "-5"], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, JAX_PLATFORMS="cpu"))
    assert proc.returncode == 2 and "argument --steps" in proc.stderr, proc.stderr


@pytest.mark.parametrize("argv, flag", [
    (["--schedule", "uba", "--uba-phi", "-1"], "--uba-phi"),
    (["--schedule", "power", "--power-b", "0.5"], "--power-b"),
    (["--schedule", "wsd", "--steps", "10", "--warmup-steps", "9"], "--warmup-steps"),
    (["--schedule", "wsd", "--decay-shape", "exponential"], "--end-lr"),
    (["--optimizer", "spam", "--spam-threshold", "-1"], "--spam-threshold"),
])
def test_library_checks_surface_as_flag_errors(capsys, argv, flag):
    # These settings are validated by optaxsched when the run builds its schedule or optimizer,
    # not by the trainer's config; the library's message reaches the command line, naming the flag.
    err = _cli_error(capsys, _tiny_argv() + argv)
    assert f"argument {flag}" in err and "must" in err, err
    assert "Traceback" not in err


def test_every_config_field_is_a_flag_of_the_generated_parser():
    parser = build_parser()
    dests = {action.dest: action.option_strings for action in parser._actions}
    for field in dataclasses.fields(TrainConfig):
        expected = "--no-progress" if field.name == "progress" else flag(field.name)
        assert dests[field.name] == [expected]
    assert config_from_args(parser.parse_args([])) == TrainConfig()
