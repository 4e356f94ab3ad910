"""Train a small Flax language model with optaxsched: the example trainer's loop and command line.

    python -m examples.train --schedule wsd --steps 300 --out runs/wsd
    python -m examples.train --schedule linear --record-grad-norms --out runs/linear
    python -m examples.train --schedule refined --refine-from runs/linear --out runs/refined
    python -m examples.train --optimizer spam --inject-spikes 0.01 --out runs/spam
    python -m examples.train --nap --out runs/nap
    python -m examples.train --out runs/wsd --schedule wsd --steps 300 --resume
    python -m examples.train --fsdp 8 --out runs/fsdp          # params + optimizer state sharded
    python -m examples.train --coordinator host0:8476 --num-processes 2 --process-id 0 --out ...

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

Crash safety: ``config.json``, ``summary.json``, the plots and a trimmed ``metrics.jsonl`` are
replaced atomically (a temporary file, then ``os.replace``); ``--resume`` skips checkpoints that
do not restore or that the kept metrics do not cover (one stderr line each) and restores the
newest one left; with none left it is a ``--resume`` error naming the run directory.

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
import os
import platform
import sys
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

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
from examples import optim
from examples import run_files as files
from examples.config import ConfigError, TrainConfig, build_parser, config_from_args, flag
from examples.run_files import CRASH_HOOK_ENV, read_metrics  # noqa: F401 (re-exported)

__all__ = ["RunResult", "run", "train", "main", "read_metrics", "TrainConfig", "ConfigError"]

SPIKE_STREAM = 2  # folded into the run's key for the spike draws (data uses 1, init 0)
LOG_WINDOW = 10  # steps between host syncs (metrics written, progress bar updated)


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
# The run.
# ------------------------------------------------------------------------------------------------


# What the steps of a run share. ``run`` reads as the list of its steps; each step is a function
# below it, in the order it runs.


@dataclasses.dataclass(frozen=True)
class _Setup:
    """A run's resolved settings and everything built from them before the model.

    Attributes:
      cfg: the resolved configuration.
      saved: the ``config.json`` of the run being resumed (``None`` for a new run).
      lead: whether this process writes the run's files (process 0).
      mesh: the (data, fsdp) device mesh.
      corpus: the training and validation tokens.
      refined_from: for ``--schedule refined``, where its norms came from (with their sha256).
      schedule: the learning-rate schedule.
    """

    cfg: TrainConfig
    saved: dict[str, Any] | None
    lead: bool
    mesh: Mesh
    corpus: data_lib.Corpus
    refined_from: dict[str, Any] | None
    schedule: Any


class _Model(NamedTuple):
    """The model, its optimizer and where their arrays live."""

    module: nnx.Module
    graphdef: Any
    optimizer: optim.Optimizer
    num_params: int
    param_shardings: Any
    state_shardings: Any


class _Data(NamedTuple):
    """The tokens on the devices: the training split (replicated; each step draws its batch
    from it) and fixed windows of each split for evaluation (split over the batch axes)."""

    train_tokens: jax.Array
    val_windows: jax.Array
    train_windows: jax.Array


class _Loop(NamedTuple):
    """What the training loop ends with."""

    params: Any
    opt_state: Any
    records: list[dict[str, Any]]
    rates: list[float]
    end: int
    wall_s: float


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
    setup = _prepare(config)
    model, params, opt_state = _build_model_and_optimizer(setup)
    data = _place_data(setup)
    compile_start = time.perf_counter()
    train_fn, eval_fn = _compile_steps(setup, model, data, params, opt_state)
    compile_s = time.perf_counter() - compile_start
    manager, start, records, params, opt_state = _open_run_dir(setup, model, params, opt_state,
                                                                argv)
    loop = _train_loop(setup, manager, train_fn, eval_fn, data, params, opt_state, start,
                       records)
    summary = _summarize(setup, model, loop, eval_fn, data, compile_s)
    if setup.cfg.out and setup.lead:
        files.replace_file(os.path.join(setup.cfg.out, "summary.json"),
                           json.dumps(summary, indent=2))
        files.replace_plots(loop.records, setup.cfg.out, _run_name(setup.cfg))
    return RunResult(setup.cfg, loop.records, summary, loop.params, loop.opt_state,
                     setup.cfg.out)


def _prepare(config: TrainConfig) -> _Setup:
    """Step 1: resolves the settings, joins the processes, checks ``--out`` (read-only), builds
    the mesh, reads the corpus and builds the schedule. Every check that can fail runs here,
    before anything is written."""
    cfg = config.resolve()
    _join_processes(cfg)
    saved = files.check_run_dir(cfg) if cfg.out else None
    mesh = _mesh(cfg)
    corpus = _corpus(cfg)
    if saved is not None and saved.get("corpus", {}).get("sha256") != corpus.sha256:
        raise ConfigError("--resume", f"the corpus changed since the run started (sha256 "
                          f"{saved.get('corpus', {}).get('sha256')} then, {corpus.sha256} now)")
    refine_norms = refined_from = None
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
    return _Setup(cfg, saved, jax.process_index() == 0, mesh, corpus, refined_from, schedule)


def _build_model_and_optimizer(setup: _Setup) -> tuple[_Model, Any, Any]:
    """Step 2: the model, its optimizer, and the initial (params, optimizer state) placed on
    the mesh.

    Parameters and every optimizer-state leaf are sharded over the fsdp axis (replicated when
    --fsdp is 1); each leaf gets its own buffer: an init may reuse one array for several fields
    (or return the parameters themselves), which buffer donation would reject.
    """
    cfg, mesh = setup.cfg, setup.mesh
    module = model_lib.build_model(cfg.model, setup.corpus.vocab_size, seq_len=cfg.seq_len,
                                   d_model=cfg.d_model, num_layers=cfg.layers,
                                   num_heads=cfg.heads, d_ff=cfg.d_ff, context=cfg.context,
                                   seed=cfg.seed)
    graphdef, state = nnx.split(module)
    params = nnx.to_pure_dict(state)
    num_params = int(sum(np.size(p) for p in jax.tree.leaves(params)))
    optimizer = optim.build_optimizer(cfg, setup.schedule, module, params)
    param_shardings = _param_shardings(state, mesh)
    state_shardings = jax.tree.map(
        lambda x: NamedSharding(mesh, fsdp_spec(x.shape, mesh.shape["fsdp"])),
        jax.eval_shape(optimizer.tx.init, params))
    opt_state = _put(jax.device_get(optimizer.tx.init(params)), state_shardings)
    params = _put(jax.device_get(params), param_shardings)
    model = _Model(module, graphdef, optimizer, num_params, param_shardings, state_shardings)
    return model, params, opt_state


def _place_data(setup: _Setup) -> _Data:
    """Step 3: the tokens on the devices (see :class:`_Data`)."""
    cfg, corpus, mesh = setup.cfg, setup.corpus, setup.mesh
    window_sharding = NamedSharding(mesh, P(None, BATCH_AXES))
    num_windows = cfg.eval_batches * cfg.batch_size
    shape = (cfg.eval_batches, cfg.batch_size, cfg.seq_len + 1)

    def windows(split):
        return _put(data_lib.eval_windows(split, num_windows, cfg.seq_len).reshape(shape),
                    window_sharding)

    return _Data(train_tokens=_put(np.asarray(corpus.train), NamedSharding(mesh, P())),
                 val_windows=windows(corpus.val), train_windows=windows(corpus.train))


def _step_functions(setup: _Setup, model: _Model) -> tuple[Any, Any]:
    """The train step ``(params, opt_state, tokens, step) -> (params, opt_state, metrics)`` and
    the eval step ``(params, windows) -> mean loss``, as Python functions (not yet jitted)."""
    cfg, schedule = setup.cfg, setup.schedule
    tx, elr_mask = model.optimizer.tx, model.optimizer.scale_invariant
    batch_sharding = NamedSharding(setup.mesh, P(BATCH_AXES))
    spike_key = jax.random.fold_in(jax.random.key(cfg.seed), SPIKE_STREAM)

    def loss_fn(p, batch):
        logits = nnx.merge(model.graphdef, p)(batch[:, :-1])
        return optax.softmax_cross_entropy_with_integer_labels(
            logits.astype(jnp.float32), batch[:, 1:]).mean()

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
            metrics["lr"], p, elr_mask, kind=model.optimizer.elr_kind).mean
        return p, s, metrics

    def eval_step(p, windows):
        return jnp.mean(jax.lax.map(lambda w: loss_fn(p, w), windows))

    return train_step, eval_step


def _compile_steps(setup: _Setup, model: _Model, data: _Data, params: Any,
                   opt_state: Any) -> tuple[Any, Any]:
    """Step 4: the compiled train and eval steps, reused from an earlier run in this process
    that defined the same program (:data:`_COMPILED`)."""
    key = _program_key(setup.cfg, setup.corpus, setup.refined_from, setup.mesh)
    if key in _COMPILED:
        return _COMPILED[key]
    train_step, eval_step = _step_functions(setup, model)
    replicated = NamedSharding(setup.mesh, P())
    step0 = jnp.asarray(0, jnp.int32)
    train_fn = jax.jit(train_step, donate_argnums=(0, 1), out_shardings=(
        model.param_shardings, model.state_shardings, replicated)).lower(
        params, opt_state, data.train_tokens, step0).compile()
    eval_fn = jax.jit(eval_step, out_shardings=replicated).lower(
        params, data.val_windows).compile()
    while len(_COMPILED) >= _COMPILED_MAX:
        _COMPILED.pop(next(iter(_COMPILED)))
    _COMPILED[key] = (train_fn, eval_fn)
    return train_fn, eval_fn


def _open_run_dir(setup: _Setup, model: _Model, params: Any, opt_state: Any,
                  argv: Sequence[str] | None) -> tuple[Any, int, list[dict[str, Any]], Any, Any]:
    """Step 5: a new run clears ``--out`` and writes its config; a resumed run restores its
    newest usable checkpoint and trims the metrics to it. Nothing was written before this
    step: a bad setting found earlier leaves an existing run directory untouched.

    Returns:
      (checkpoint manager or ``None``, first step, kept metrics records, params, opt_state).
    """
    cfg = setup.cfg
    if cfg.out and setup.saved is None and setup.lead:
        files.clear_run_dir(cfg.out)
    if jax.process_count() > 1:  # the others wait until the run directory is ready
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices("optaxsched-run-dir")
    if not cfg.out:
        return None, 0, [], params, opt_state
    manager = files.checkpoint_manager(cfg.out, "checkpoints", cfg.keep_checkpoints)
    if setup.saved is not None:
        start, records, params, opt_state = _resume(setup, manager, params, opt_state)
        return manager, start, records, params, opt_state
    if setup.lead:
        files.replace_file(os.path.join(cfg.out, "config.json"),
                      json.dumps(_run_info(setup, model, argv), indent=2))
        files.replace_file(_metrics_path(setup), "")
    return manager, 0, [], params, opt_state


def _metrics_path(setup: _Setup) -> str | None:
    """``metrics.jsonl``, for the lead process only (the others write no run files; every
    process writes its part of the checkpoints)."""
    return os.path.join(setup.cfg.out, "metrics.jsonl") if setup.cfg.out and setup.lead \
        else None


def _resume(setup: _Setup, manager, params: Any,
            opt_state: Any) -> tuple[int, list[dict[str, Any]], Any, Any]:
    """Restores the newest checkpoint the kept metrics cover; keeps the records of the updates
    before it (those after it are redone)."""
    import orbax.checkpoint as ocp

    out = setup.cfg.out
    if setup.lead:
        files.remove_stale_temporaries(out)
    try:
        kept = read_metrics(out) if os.path.exists(os.path.join(out, "metrics.jsonl")) else []
    except ValueError as err:
        raise ConfigError("--resume", str(err)) from None
    target = jax.tree.map(ocp.utils.to_shape_dtype_struct,
                          {"params": params, "opt_state": opt_state})
    start, restored = files.restore_newest(manager, out, target, files.covered_steps(kept))
    records = kept[:start]
    if _metrics_path(setup):
        files.replace_file(_metrics_path(setup), files.jsonl(records))
    return start, records, restored["params"], restored["opt_state"]


def _run_info(setup: _Setup, model: _Model, argv: Sequence[str] | None) -> dict[str, Any]:
    """The content of a new run's ``config.json``."""
    corpus, mesh = setup.corpus, setup.mesh
    return {
        "config": setup.cfg.to_dict(),
        "command": list(argv) if argv is not None else None,
        "corpus": {"name": corpus.name, "sha256": corpus.sha256, "vocab_size":
                   corpus.vocab_size, **{k: v for k, v in corpus.info.items()
                                         if k != "alphabet"}},
        "model": {"parameters": model.num_params,
                  "scale_invariant_kernels": model_lib.scale_invariant_kernels(model.module)},
        "refined_from": setup.refined_from,
        "devices": {"count": mesh.devices.size, "platform": mesh.devices.flat[0].platform,
                    "kind": mesh.devices.flat[0].device_kind, "mesh": dict(mesh.shape),
                    "processes": jax.process_count()},
        "versions": _versions(),
    }


def _run_name(cfg: TrainConfig) -> str:
    """The progress bar's and the plots' title: the run directory's name, else the schedule."""
    return cfg.schedule if cfg.out is None else os.path.basename(os.path.normpath(cfg.out))


def _decay_points(setup: _Setup) -> set[int]:
    """The updates after which ``--schedule wsd_s`` yields a decayed model (empty otherwise)."""
    return {c.save_after for c in getattr(setup.schedule, "checkpoints", ())}


class _MetricsLog:
    """The metrics of the loop: steps' device values wait in ``pending`` until a flush, which
    fetches them in one host sync, appends them to ``metrics.jsonl`` and updates the bar."""

    def __init__(self, setup: _Setup, records: list[dict[str, Any]], bar):
        self.records, self.bar = records, bar
        self.path = _metrics_path(setup)
        self.tokens_per_step = setup.cfg.batch_size * setup.cfg.seq_len
        self.pending: list[tuple[int, dict[str, Any]]] = []
        self.rates: list[float] = []
        self.last_sync = time.perf_counter()

    def flush(self, durable: bool = False) -> None:
        """Writes the pending records (``durable``: flushed to disk, as before a checkpoint)."""
        if not self.pending:
            return
        host = jax.device_get([m for _, m in self.pending])
        now = time.perf_counter()
        rate = len(self.pending) * self.tokens_per_step / max(now - self.last_sync, 1e-9)
        self.last_sync = now
        self.rates.append(rate)
        new = []
        for (step, _), values in zip(self.pending, host, strict=True):
            record = {"step": step}
            record.update({k: files.json_value(values[k]) for k in files.KEY_ORDER if k in values})
            record["tokens_per_s"] = round(rate, 1)
            new.append(record)
        self.records.extend(new)
        if self.path:
            files.append_metrics(self.path, new, durable)
        last = new[-1]
        self.bar.set_postfix(collections.OrderedDict(
            loss=files.fmt(last["loss"], ".4f"), lr=files.fmt(last["lr"], ".2e"),
            gnorm=files.fmt(last["grad_norm_l2"], ".3g"), tok_s=f"{rate:,.0f}"), refresh=False)
        self.bar.update(len(new))
        self.pending.clear()


def _train_loop(setup: _Setup, manager, train_fn, eval_fn, data: _Data, params: Any,
                opt_state: Any, start: int, records: list[dict[str, Any]]) -> _Loop:
    """Step 6: the updates from ``start`` to ``--stop-at`` (else ``--steps``), with evaluation,
    metrics and checkpoints (WSD-S: every decayed model is evaluated and kept too)."""
    from tqdm.auto import tqdm

    cfg = setup.cfg
    end = cfg.stop_at or cfg.steps
    decayed = _decay_points(setup)
    decayed_manager = (files.checkpoint_manager(cfg.out, "decayed", None)
                       if cfg.out and decayed else None)
    bar = tqdm(total=cfg.steps, initial=start, unit="step", desc=_run_name(cfg),
               disable=not (cfg.progress and setup.lead), dynamic_ncols=True, leave=True)
    log = _MetricsLog(setup, records, bar)
    run_start = log.last_sync
    for step in range(start, end):
        params, opt_state, metrics = train_fn(params, opt_state, data.train_tokens,
                                              jnp.asarray(step, jnp.int32))
        done = step + 1
        if done % cfg.eval_every == 0 or done == cfg.steps or done in decayed:
            metrics = dict(metrics, val_loss=eval_fn(params, data.val_windows))
        log.pending.append((step, metrics))
        files.crash(f"update:{done}")
        checkpoint_now = manager is not None and (
            (cfg.checkpoint_every and done % cfg.checkpoint_every == 0) or done == end)
        if len(log.pending) >= LOG_WINDOW or "val_loss" in metrics or checkpoint_now:
            log.flush(durable=checkpoint_now)  # a checkpoint's steps are on disk before it is
        if checkpoint_now:
            files.save(manager, done, {"params": params, "opt_state": opt_state})
        if decayed_manager is not None and done in decayed:
            files.save(decayed_manager, done, {"params": params})
    log.flush()
    bar.close()
    for open_manager in (manager, decayed_manager):
        if open_manager is not None:
            open_manager.wait_until_finished()
            open_manager.close()
    return _Loop(params, opt_state, log.records, log.rates, end,
                 time.perf_counter() - run_start)


def _summarize(setup: _Setup, model: _Model, loop: _Loop, eval_fn, data: _Data,
               compile_s: float) -> dict[str, Any]:
    """Step 7: the final evaluation, as ``summary.json`` holds it."""
    cfg, mesh, params = setup.cfg, setup.mesh, loop.params
    summary = {
        "steps_done": loop.end,
        "finished": loop.end == cfg.steps,
        "train_loss": float(eval_fn(params, data.train_windows)),
        "val_loss": float(eval_fn(params, data.val_windows)),
        "wall_s": round(loop.wall_s, 3),
        "compile_s": round(compile_s, 3),
        "tokens_per_s": round(float(np.median(loop.rates)), 1) if loop.rates else None,
        "parameters": model.num_params,
        "devices": int(mesh.devices.size),
        "processes": jax.process_count(),
    }
    decayed = _decay_points(setup)
    if decayed:
        summary["decayed"] = [{"after": r["step"] + 1, "val_loss": r["val_loss"]}
                              for r in loop.records if r["step"] + 1 in decayed]
    if "entropy_nats" in setup.corpus.info:
        summary["entropy_nats"] = setup.corpus.info["entropy_nats"]
    if cfg.average != "none":
        summary["val_loss_averaged"] = float(eval_fn(oxs.averaged_params(loop.opt_state),
                                                     data.val_windows))
    return summary


# ------------------------------------------------------------------------------------------------
# What the steps use: the corpus, the processes, the mesh and shardings, the compiled programs.
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


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise ConfigError(flag(name[4:].lower()), f"${name} must be an integer, got "
                          f"{value!r}") from None


def _join_processes(cfg: TrainConfig) -> None:
    """Joins a multi-process run through ``jax.distributed.initialize``.

    The coordinator address, process count and index come from ``--coordinator``,
    ``--num-processes`` and ``--process-id``, else from ``$JAX_COORDINATOR_ADDRESS``,
    ``$JAX_NUM_PROCESSES`` and ``$JAX_PROCESS_ID``. ``--coordinator auto`` lets JAX detect
    them (TPU pod slices, SLURM, Open MPI, Kubernetes). With none of them the run is
    single-process. On CPU the processes' collectives use gloo.
    """
    coordinator = cfg.coordinator or os.environ.get("JAX_COORDINATOR_ADDRESS") or None
    count = cfg.num_processes if cfg.num_processes is not None else \
        _env_int("JAX_NUM_PROCESSES")
    index = cfg.process_id if cfg.process_id is not None else _env_int("JAX_PROCESS_ID")
    if coordinator is None and count is None and index is None:
        return
    if jax.distributed.is_initialized():
        return
    if coordinator == "auto":
        coordinator = None
    elif coordinator is None or count is None or index is None:
        missing = [name for name, value in (("--coordinator", coordinator),
                                            ("--num-processes", count),
                                            ("--process-id", index)) if value is None]
        raise ConfigError(missing[0], f"a multi-process run needs {', '.join(missing)} too "
                          f"(or their $JAX_... variables, or --coordinator auto)")
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator, count, index)


def _mesh(cfg: TrainConfig) -> Mesh:
    """The (data, fsdp) device mesh: ``--fsdp`` devices hold one copy of the parameters and
    optimizer state between them; the batch is split over every device."""
    available = jax.devices()
    count = cfg.devices or len(available)
    if count > len(available):
        raise ConfigError("--devices", f"must be at most the {len(available)} available "
                          f"{available[0].platform} devices, got {count}")
    if jax.process_count() > 1 and count != len(available):
        raise ConfigError("--devices", f"a multi-process run uses all {len(available)} devices "
                          f"of its processes, got {count}")
    if count % cfg.fsdp:
        raise ConfigError("--fsdp", f"must divide the number of devices ({count}), got "
                          f"{cfg.fsdp}")
    if cfg.batch_size % count:
        raise ConfigError("--batch-size", f"must be a multiple of the number of devices "
                          f"({count}), got {cfg.batch_size}")
    devices = np.asarray(available[:count]).reshape(count // cfg.fsdp, cfg.fsdp)
    return Mesh(devices, ("data", "fsdp"))


# The batch (and the evaluation windows) are split over both mesh axes.
BATCH_AXES = ("data", "fsdp")


def fsdp_spec(shape: Sequence[int], size: int) -> P:
    """How a parameter or optimizer-state leaf of this shape is split over the ``fsdp`` axis.

    Its first dimension that ``size`` divides is sharded (FSDP's usual choice: a kernel's input
    dimension, so that XLA gathers the weights rather than resharding activations); a leaf with
    no such dimension (scalars, counts, odd-sized vectors) is replicated. Applied to the
    parameters and to every optimizer-state leaf alike, so Adam's moments, SPAM's and NaP's
    statistics and the parameter average are sharded exactly like the parameters they mirror.
    """
    if size == 1:
        return P()
    axes = [i for i, d in enumerate(shape) if d >= size and d % size == 0]
    if not axes:
        return P()
    axis = axes[0]
    return P(*(("fsdp" if i == axis else None) for i in range(len(shape))))


def _param_shardings(state: nnx.State, mesh: Mesh) -> Any:
    """Annotates every nnx variable with its ``out_sharding`` (:func:`fsdp_spec`) and returns
    the parameters' ``NamedSharding`` pure dict that ``nnx.get_named_sharding`` derives."""
    size = mesh.shape["fsdp"]
    for variable in jax.tree.leaves(state, is_leaf=lambda x: isinstance(x, nnx.Variable)):
        variable.set_metadata(out_sharding=tuple(fsdp_spec(variable.shape, size)))
    return nnx.to_pure_dict(nnx.get_named_sharding(state, mesh))


def _put(tree: Any, shardings: Any) -> Any:
    """Places host values (the same on every process) onto the global mesh, as fresh buffers."""
    if jax.process_count() == 1:
        return jax.device_put(tree, shardings, may_alias=False)

    def put(x, sharding):
        x = np.asarray(x)
        return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])

    return jax.tree.map(put, tree, shardings)


def state_bytes_per_device(*trees: Any) -> dict[str, int]:
    """Bytes each (local) device holds of the given arrays, by device."""
    held: dict[str, int] = collections.Counter()
    for leaf in jax.tree.leaves(trees):
        for shard in leaf.addressable_shards:
            held[str(shard.device)] += shard.data.nbytes
    return dict(held)


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
                       "mesh": dict(mesh.shape),
                       "platform": mesh.devices.flat[0].platform}, sort_keys=True)


def _versions() -> dict[str, str]:
    import flax

    return {"python": platform.python_version(), "jax": jax.__version__,
            "optax": optax.__version__, "flax": flax.__version__,
            "optaxsched": getattr(oxs, "__version__", "?")}


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
