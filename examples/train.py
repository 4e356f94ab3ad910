"""Train a small Flax language model with optaxsched: the example trainer's loop and command line.

    python -m examples.train --schedule wsd --steps 300 --out runs/wsd
    python -m examples.train --schedule linear --record-grad-norms --out runs/linear
    python -m examples.train --schedule refined --refine-from runs/linear --out runs/refined
    python -m examples.train --optimizer spam --inject-spikes 0.01 --out runs/spam
    python -m examples.train --nap --out runs/nap
    python -m examples.train --out runs/wsd --schedule wsd --steps 300 --resume

Programmatic use (tests, the demo, benchmarks): :func:`run` takes a :class:`TrainConfig` and
returns a :class:`RunResult` with every step's metrics; :func:`train` does the same from a list of
command-line arguments; :func:`main` is the console entry point (exit code 2 for a bad flag).

What a run writes into ``--out RUN_DIR``:

* ``config.json``: the resolved configuration, the corpus (with its sha256), the model size, the
  devices and the library versions.
* ``metrics.jsonl``: one JSON object per update, ``step`` being the optax count of that update
  (0 for the first): ``loss`` (training loss of the step's batch, before the update), ``lr``
  (``schedule(step)``, the rate this update used), ``grad_norm_l2`` (global ℓ2 norm of the
  gradient the optimizer received), ``grad_norm_l1`` (with ``--record-grad-norms``; both norms are
  then read from ``optaxsched.record_grad_norms``'s state), ``effective_lr`` (mean over the
  scale-invariant kernels of η/‖W‖ for Adam-type optimizers, η/‖W‖² for SGD: constant up to the
  schedule with ``--nap``, decaying as the norms grow without it), ``clipped`` (SPAM/Stable-SPAM:
  coordinates clipped at this update), ``spike`` (1 on steps with an injected spike, with
  ``--inject-spikes``), ``tokens_per_s`` (throughput over the last logging window; wall-clock, so
  not reproducible) and ``val_loss`` (on the steps after which the model was evaluated: the
  validation loss of the parameters after that update; every ``--eval-every`` updates, at the
  end, and with ``--schedule wsd_s`` at every decay point).
* ``loss.png``, ``lr.png``, ``grad_norm.png``; ``summary.json`` (final losses, timings).
* ``checkpoints/<k>/``: orbax checkpoints of (params, optimizer state) after ``k`` updates.
* ``decayed/<k>/`` (``--schedule wsd_s``): the parameters of each decayed model, saved after the
  ``k`` updates that end a decay window (``oxs.wsd_s_checkpoints``), all kept: these are the
  schedule's deliverables, one model per budget. ``summary.json`` lists their validation losses
  under ``decayed``. Read one with orbax:
  ``ocp.CheckpointManager(f"{out}/decayed").restore(k, args=ocp.args.StandardRestore())``.

Determinism: the batch of step ``k`` is drawn inside the jitted step from the key (seed, k), and
the injected spikes likewise, so ``--resume`` reproduces an uninterrupted run bit for bit on CPU
(the same program on restored bits), and a different device count changes only the order of
floating-point reductions.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import math
import os
import platform
import shutil
import sys
import time
from collections.abc import Sequence
from typing import Any

if __package__ in (None, ""):  # `python examples/train.py`: make `examples` importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

import optaxsched as oxs
from examples import data as data_lib
from examples import model as model_lib
from examples import optim, plots
from examples.config import (
    RESUME_FREE,
    ConfigError,
    TrainConfig,
    build_parser,
    config_from_args,
    flag,
)

__all__ = ["RunResult", "run", "train", "main", "read_metrics", "TrainConfig", "ConfigError"]

SPIKE_STREAM = 2  # folded into the run's key for the spike draws (data uses 1, init 0)
LOG_WINDOW = 10  # steps between host syncs (metrics written, progress bar updated)
_ARTIFACTS = ("config.json", "metrics.jsonl", "summary.json", "loss.png", "lr.png",
              "grad_norm.png", "checkpoints", "decayed")


@dataclasses.dataclass
class RunResult:
    """What :func:`run` returns.

    Attributes:
      config: the resolved configuration.
      metrics: every step's record (as written to ``metrics.jsonl``, including the records of
        earlier invocations of a resumed run).
      summary: final numbers: ``train_loss`` and ``val_loss`` of the final parameters on fixed
        windows of each split, ``steps_done``, ``wall_s`` (this invocation), ``compile_s``,
        ``tokens_per_s`` (median over logging windows), ``parameters``, ``devices``.
      params: the final parameters (a pure dict of arrays).
      opt_state: the final optimizer state.
      run_dir: ``--out``, or ``None``.
    """

    config: TrainConfig
    metrics: list[dict[str, Any]]
    summary: dict[str, Any]
    params: Any
    opt_state: Any
    run_dir: str | None


# ------------------------------------------------------------------------------------------------
# Metrics file.
# ------------------------------------------------------------------------------------------------


# Order of the keys in a metrics record (after "step"; "tokens_per_s" comes last).
_KEY_ORDER = ("loss", "val_loss", "lr", "grad_norm_l2", "grad_norm_l1", "effective_lr",
              "clipped", "spike")


def _fmt(value: Any, spec: str) -> str:
    return "nan" if value is None else format(value, spec)


def _json_value(value: Any) -> Any:
    value = np.asarray(value)
    if value.dtype.kind in "iub":
        return int(value)
    value = float(value)
    return value if math.isfinite(value) else None


def read_metrics(run_dir: str) -> list[dict[str, Any]]:
    """The records of ``RUN_DIR/metrics.jsonl`` (one dict per line)."""
    path = os.path.join(run_dir, "metrics.jsonl")
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _write_metrics(path: str, records: Sequence[dict[str, Any]], mode: str) -> None:
    with open(path, mode, encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, allow_nan=False) + "\n")


# ------------------------------------------------------------------------------------------------
# Run directory: fresh, overwritten or resumed.
# ------------------------------------------------------------------------------------------------


def _check_run_dir(cfg: TrainConfig) -> dict[str, Any] | None:
    """Checks ``--out`` against ``--resume``/``--overwrite`` (read-only); returns the saved
    config.json when resuming."""
    out = cfg.out
    if cfg.resume:
        path = os.path.join(out, "config.json")
        if not os.path.isfile(path):
            raise ConfigError("--resume", f"{out!r} holds no run to resume (no config.json)")
        with open(path, encoding="utf-8") as handle:
            saved = json.load(handle)
        try:
            old = TrainConfig.from_dict(saved["config"])
        except (KeyError, TypeError, ValueError) as err:
            raise ConfigError("--resume", f"{path} is not a config this trainer wrote ({err})") \
                from None
        for field in dataclasses.fields(TrainConfig):
            if field.name in RESUME_FREE:
                continue
            before, now = getattr(old, field.name), getattr(cfg, field.name)
            if before != now:
                raise ConfigError(flag(field.name), f"differs from the run being resumed "
                                  f"({path} has {before!r}, this command {now!r}); resume "
                                  f"with the original settings")
        return saved
    if os.path.exists(out) and not os.path.isdir(out):
        raise ConfigError("--out", f"{out!r} exists and is not a directory")
    existing = _existing_artifacts(out)
    if existing and not cfg.overwrite:
        raise ConfigError("--out", f"{out!r} already holds a run ({', '.join(existing)}); pass "
                          f"--resume to continue it, --overwrite to replace it, or choose "
                          f"another directory")
    return None


def _existing_artifacts(out: str) -> list[str]:
    return [name for name in _ARTIFACTS if os.path.exists(os.path.join(out, name))]


def _clear_run_dir(out: str) -> None:
    """Removes a previous run's files (only the trainer's own) from ``out``, creating it."""
    for name in _existing_artifacts(out):
        target = os.path.join(out, name)
        if os.path.isdir(target):
            shutil.rmtree(target)
        else:
            os.remove(target)
    os.makedirs(out, exist_ok=True)


def _checkpoint_manager(out: str, folder: str, max_to_keep: int | None):
    import orbax.checkpoint as ocp

    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                           enable_async_checkpointing=False)
    return ocp.CheckpointManager(os.path.abspath(os.path.join(out, folder)), options=options)


def _save(manager, step: int, tree: dict) -> None:
    import orbax.checkpoint as ocp

    manager.save(step, args=ocp.args.StandardSave(tree))


# ------------------------------------------------------------------------------------------------
# The run.
# ------------------------------------------------------------------------------------------------


def _corpus(cfg: TrainConfig) -> data_lib.Corpus:
    if cfg.data == "stdlib":
        corpus = data_lib.stdlib_corpus(max_bytes=cfg.corpus_bytes)
    else:
        corpus = data_lib.bigram_corpus(vocab_size=cfg.bigram_vocab, seed=cfg.data_seed)
    shortest = min(corpus.train.size, corpus.val.size)
    if shortest < cfg.seq_len + 2:
        name = "--corpus-bytes" if cfg.corpus_bytes is not None else "--seq-len"
        raise ConfigError(name, f"the {cfg.data} corpus's smaller split has {shortest} tokens, "
                          f"too few for windows of --seq-len {cfg.seq_len} + 1")
    return corpus


def _mesh(cfg: TrainConfig) -> Mesh:
    available = jax.devices()
    count = cfg.devices or len(available)
    if count > len(available):
        raise ConfigError("--devices", f"must be at most the {len(available)} available "
                          f"{available[0].platform} devices, got {count}")
    if cfg.batch_size % count:
        raise ConfigError("--batch-size", f"must be a multiple of the number of devices "
                          f"({count}), got {cfg.batch_size}")
    return Mesh(np.asarray(available[:count]), ("data",))


# Compiled (train step, eval step) by program key: a run whose settings define the same program
# as an earlier run in this process (a resumed run, the same configuration in another directory)
# reuses its executables instead of compiling again.
_COMPILED: dict[str, tuple[Any, Any]] = {}
_COMPILED_MAX = 8
# Fields that only steer the loop or the output, never the compiled steps.
_NOT_IN_PROGRAM = ("out", "resume", "overwrite", "stop_at", "progress", "checkpoint_every",
                   "keep_checkpoints", "eval_every")


def _program_key(cfg: TrainConfig, corpus: data_lib.Corpus, refined_from: dict | None,
                 mesh: Mesh) -> str:
    """Everything the train and eval steps are built from (the config is already resolved)."""
    settings = {k: v for k, v in cfg.to_dict().items() if k not in _NOT_IN_PROGRAM}
    return json.dumps({"config": settings, "corpus": corpus.sha256,
                       "refined": refined_from and refined_from["sha256"],
                       "devices": [d.id for d in mesh.devices.flat],
                       "platform": mesh.devices.flat[0].platform}, sort_keys=True)


def _versions() -> dict[str, str]:
    import flax

    return {"python": platform.python_version(), "jax": jax.__version__,
            "optax": optax.__version__, "flax": flax.__version__,
            "optaxsched": getattr(oxs, "__version__", "?")}


def run(config: TrainConfig, argv: Sequence[str] | None = None) -> RunResult:
    """Trains one run; the programmatic entry point of the trainer.

    Args:
      config: the run's settings (resolved here; see :class:`TrainConfig`).
      argv: the command line, recorded in ``config.json`` when given.

    Returns:
      A :class:`RunResult` with every step's metrics and the final parameters.

    Raises:
      ConfigError: an invalid setting, or one that conflicts with the run directory (the error
        names the flag).
    """
    if config.schedule == "autolrs":  # a stage-wise search with its own loop
        from examples import autolrs_run

        return autolrs_run.run(config, argv)
    cfg = config.resolve()
    saved = _check_run_dir(cfg) if cfg.out else None
    mesh = _mesh(cfg)
    replicated = NamedSharding(mesh, P())
    batch_sharding = NamedSharding(mesh, P("data"))
    window_sharding = NamedSharding(mesh, P(None, "data"))

    corpus = _corpus(cfg)
    if saved is not None and saved.get("corpus", {}).get("sha256") != corpus.sha256:
        raise ConfigError("--resume", f"the corpus changed since the run started (sha256 "
                          f"{saved.get('corpus', {}).get('sha256')} then, {corpus.sha256} now)")
    refine_norms = refine_key = refined_from = None
    if cfg.schedule == "refined":
        refine_norms, refine_key = optim.load_refine_norms(cfg)
        refined_from = {"run_dir": os.path.abspath(cfg.refine_from), "key": refine_key,
                        "steps": int(refine_norms.size),
                        "sha256": hashlib.sha256(refine_norms.tobytes()).hexdigest()}
        if saved is not None and saved.get("refined_from", {}).get("sha256") != \
                refined_from["sha256"]:
            raise ConfigError("--refine-from", f"the norms in {cfg.refine_from!r} changed since "
                              f"this run started, so its schedule would change")
    schedule = optim.build_schedule(cfg, refine_norms)

    model = model_lib.build_model(cfg.model, corpus.vocab_size, seq_len=cfg.seq_len,
                                  d_model=cfg.d_model, num_layers=cfg.layers,
                                  num_heads=cfg.heads, d_ff=cfg.d_ff, context=cfg.context,
                                  seed=cfg.seed)
    graphdef, state = nnx.split(model)
    params = nnx.to_pure_dict(state)
    num_params = int(sum(np.size(p) for p in jax.tree.leaves(params)))
    optimizer = optim.build_optimizer(cfg, schedule, model, params)
    tx, elr_mask = optimizer.tx, optimizer.scale_invariant
    params = jax.device_put(params, replicated)
    # Every state leaf in its own buffer: an init may reuse one array for several fields (or
    # return the parameters themselves), which buffer donation would reject.
    opt_state = jax.tree.map(lambda x: jnp.array(x, copy=True),
                             jax.device_put(tx.init(params), replicated))

    train_tokens = jax.device_put(jnp.asarray(corpus.train), replicated)
    num_windows = cfg.eval_batches * cfg.batch_size
    shape = (cfg.eval_batches, cfg.batch_size, cfg.seq_len + 1)
    val_windows = jax.device_put(
        data_lib.eval_windows(corpus.val, num_windows, cfg.seq_len).reshape(shape),
        window_sharding)
    train_windows = jax.device_put(
        data_lib.eval_windows(corpus.train, num_windows, cfg.seq_len).reshape(shape),
        window_sharding)

    def loss_fn(p, batch):
        logits = nnx.merge(graphdef, p)(batch[:, :-1])
        return optax.softmax_cross_entropy_with_integer_labels(
            logits.astype(jnp.float32), batch[:, 1:]).mean()

    spike_key = jax.random.fold_in(jax.random.key(cfg.seed), SPIKE_STREAM)

    def train_step(p, s, tokens, step):
        batch = data_lib.sample_batch(tokens, data_lib.batch_key(cfg.seed, step),
                                      cfg.batch_size, cfg.seq_len)
        batch = jax.lax.with_sharding_constraint(batch, batch_sharding)
        loss, grads = jax.value_and_grad(loss_fn)(p, batch)
        metrics = {"loss": loss, "lr": jnp.asarray(schedule(step), jnp.float32)}
        if cfg.inject_spikes > 0:
            spike = jax.random.bernoulli(jax.random.fold_in(spike_key, step), cfg.inject_spikes)
            factor = jnp.where(spike, cfg.spike_factor, 1.0)
            grads = jax.tree.map(lambda g: g * factor.astype(g.dtype), grads)
            metrics["spike"] = spike.astype(jnp.int32)
        updates, s = tx.update(grads, s, p)
        p = optax.apply_updates(p, updates)
        if cfg.record_grad_norms:
            norms = oxs.latest_grad_norms(s)
            metrics["grad_norm_l2"], metrics["grad_norm_l1"] = norms["l2"], norms["l1"]
        else:
            metrics["grad_norm_l2"] = optax.tree.norm(grads)
        clipped = optim.clipped_count(s)
        if clipped is not None:
            metrics["clipped"] = jnp.sum(jnp.asarray(clipped)).astype(jnp.int32)
        metrics["effective_lr"] = oxs.effective_learning_rate(
            metrics["lr"], p, elr_mask, kind=optimizer.elr_kind).mean
        return p, s, metrics

    def eval_step(p, windows):
        return jnp.mean(jax.lax.map(lambda w: loss_fn(p, w), windows))

    compile_start = time.perf_counter()
    key = _program_key(cfg, corpus, refined_from, mesh)
    if key in _COMPILED:
        train_fn, eval_fn = _COMPILED[key]
    else:
        step0 = jnp.asarray(0, jnp.int32)
        train_fn = jax.jit(train_step, donate_argnums=(0, 1), out_shardings=replicated).lower(
            params, opt_state, train_tokens, step0).compile()
        eval_fn = jax.jit(eval_step, out_shardings=replicated).lower(params,
                                                                     val_windows).compile()
        while len(_COMPILED) >= _COMPILED_MAX:
            _COMPILED.pop(next(iter(_COMPILED)))
        _COMPILED[key] = (train_fn, eval_fn)
    compile_s = time.perf_counter() - compile_start

    # Resume, or write the new run's config (nothing was written before: a bad setting found
    # above leaves an existing run directory untouched).
    if cfg.out and saved is None:
        _clear_run_dir(cfg.out)
    start, records = 0, []
    manager = (_checkpoint_manager(cfg.out, "checkpoints", cfg.keep_checkpoints)
               if cfg.out else None)
    metrics_path = os.path.join(cfg.out, "metrics.jsonl") if cfg.out else None
    if saved is not None:
        import orbax.checkpoint as ocp

        latest = manager.latest_step()
        if latest is None:
            raise ConfigError("--resume", f"{cfg.out!r} has no checkpoint yet (it stopped before "
                              f"the first --checkpoint-every); start it again with --overwrite")
        target = jax.tree.map(ocp.utils.to_shape_dtype_struct,
                              {"params": params, "opt_state": opt_state})
        restored = manager.restore(latest, args=ocp.args.StandardRestore(target))
        params, opt_state = restored["params"], restored["opt_state"]
        start = int(latest)
        records = [r for r in read_metrics(cfg.out) if r["step"] < start]
        _write_metrics(metrics_path, records, "w")  # drop steps logged after the checkpoint
    elif cfg.out:
        info = {
            "config": cfg.to_dict(),
            "command": list(argv) if argv is not None else None,
            "corpus": {"name": corpus.name, "sha256": corpus.sha256, "vocab_size":
                       corpus.vocab_size, **{k: v for k, v in corpus.info.items()
                                             if k != "alphabet"}},
            "model": {"parameters": num_params,
                      "scale_invariant_kernels": model_lib.scale_invariant_kernels(model)},
            "refined_from": refined_from,
            "devices": {"count": mesh.devices.size, "platform": mesh.devices.flat[0].platform,
                        "kind": mesh.devices.flat[0].device_kind},
            "versions": _versions(),
        }
        with open(os.path.join(cfg.out, "config.json"), "w", encoding="utf-8") as handle:
            json.dump(info, handle, indent=2)
        _write_metrics(metrics_path, [], "w")

    end = cfg.stop_at or cfg.steps
    # WSD-S yields a decayed model at every budget: evaluate and keep each one.
    decayed = {c.save_after for c in getattr(schedule, "checkpoints", ())}
    decayed_manager = (_checkpoint_manager(cfg.out, "decayed", None)
                       if cfg.out and decayed else None)
    tokens_per_step = cfg.batch_size * cfg.seq_len
    name = cfg.schedule if cfg.out is None else os.path.basename(os.path.normpath(cfg.out))
    from tqdm.auto import tqdm

    bar = tqdm(total=cfg.steps, initial=start, unit="step", desc=name, disable=not cfg.progress,
               dynamic_ncols=True, leave=True)
    pending: list[tuple[int, dict[str, Any]]] = []
    rates: list[float] = []
    run_start = last_sync = time.perf_counter()

    def flush():
        nonlocal last_sync
        if not pending:
            return
        host = jax.device_get([m for _, m in pending])
        now = time.perf_counter()
        rate = len(pending) * tokens_per_step / max(now - last_sync, 1e-9)
        last_sync = now
        rates.append(rate)
        new = []
        for (step, _), values in zip(pending, host, strict=True):
            record = {"step": step}
            record.update({k: _json_value(values[k]) for k in _KEY_ORDER if k in values})
            record["tokens_per_s"] = round(rate, 1)
            new.append(record)
        records.extend(new)
        if metrics_path:
            _write_metrics(metrics_path, new, "a")
        last = new[-1]
        bar.set_postfix(collections.OrderedDict(
            loss=_fmt(last["loss"], ".4f"), lr=_fmt(last["lr"], ".2e"),
            gnorm=_fmt(last["grad_norm_l2"], ".3g"), tok_s=f"{rate:,.0f}"), refresh=False)
        bar.update(len(new))
        pending.clear()

    for step in range(start, end):
        params, opt_state, metrics = train_fn(params, opt_state, train_tokens,
                                              jnp.asarray(step, jnp.int32))
        done = step + 1
        if done % cfg.eval_every == 0 or done == cfg.steps or done in decayed:
            metrics = dict(metrics, val_loss=eval_fn(params, val_windows))
        pending.append((step, metrics))
        checkpoint_now = manager is not None and (
            (cfg.checkpoint_every and done % cfg.checkpoint_every == 0) or done == end)
        if len(pending) >= LOG_WINDOW or "val_loss" in metrics or checkpoint_now:
            flush()
        if checkpoint_now:
            _save(manager, done, {"params": params, "opt_state": opt_state})
        if decayed_manager is not None and done in decayed:
            _save(decayed_manager, done, {"params": params})
    flush()
    bar.close()
    for open_manager in (manager, decayed_manager):
        if open_manager is not None:
            open_manager.wait_until_finished()
            open_manager.close()
    wall_s = time.perf_counter() - run_start

    summary = {
        "steps_done": end,
        "finished": end == cfg.steps,
        "train_loss": float(eval_fn(params, train_windows)),
        "val_loss": float(eval_fn(params, val_windows)),
        "wall_s": round(wall_s, 3),
        "compile_s": round(compile_s, 3),
        "tokens_per_s": round(float(np.median(rates)), 1) if rates else None,
        "parameters": num_params,
        "devices": int(mesh.devices.size),
    }
    if decayed:
        summary["decayed"] = [{"after": r["step"] + 1, "val_loss": r["val_loss"]}
                              for r in records if r["step"] + 1 in decayed]
    if "entropy_nats" in corpus.info:
        summary["entropy_nats"] = corpus.info["entropy_nats"]
    if cfg.out:
        with open(os.path.join(cfg.out, "summary.json"), "w", encoding="utf-8") as handle:
            json.dump(summary, handle, indent=2)
        plots.plot_run(records, cfg.out, title=name)
    return RunResult(cfg, records, summary, params, opt_state, cfg.out)


# ------------------------------------------------------------------------------------------------
# Command line.
# ------------------------------------------------------------------------------------------------


def train(argv: Sequence[str] | None = None) -> RunResult:
    """Parses command-line arguments and runs (argparse exits with code 2 on a bad flag)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return run(config_from_args(args), argv=list(sys.argv[1:] if argv is None else argv))
    except ConfigError as err:
        parser.error(str(err))
        raise  # pragma: no cover (parser.error exits)


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point: trains, prints the final losses, returns 0."""
    result = train(argv)
    s = result.summary
    where = f" -> {result.run_dir}" if result.run_dir else ""
    print(f"{'finished' if s['finished'] else 'stopped'} after {s['steps_done']} steps{where}: "
          f"train loss {s['train_loss']:.4f}, val loss {s['val_loss']:.4f}, "
          f"{s['tokens_per_s'] or 0:,.0f} tokens/s, {s['wall_s']:.1f} s "
          f"(+{s['compile_s']:.1f} s compile)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
