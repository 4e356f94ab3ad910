"""AutoLRS on the example trainer's model, and its comparison with cosine and WSD.

    python -m examples.autolrs_run --out runs/autolrs                     # sequential trials
    python -m examples.autolrs_run --out runs/autolrs --parallel          # vmapped trials
    python -m examples.autolrs_run --out runs/cmp --compare cosine:3e-3,wsd:3e-3
    python -m examples.train --schedule autolrs --out runs/autolrs        # the trainer's mode

The loop of Jin et al. (arXiv 2105.10762) on the library's pieces (``optaxsched.autolrs``): the
budget ``--steps`` counts every step, the trials' included (``optaxsched.autolrs_stages``). In a
stage, each of ``--autolrs-candidates`` learning rates trains ``τ'`` steps from the stage's state
(parameters AND optimizer state); its per-step training losses are forecast to ``τ`` steps by the
exponential model; ``optaxsched.LRSearch`` proposes the candidates by Gaussian-process BO over
``log η``; the stage then trains ``τ`` steps from the same state at the best candidate.

* Sequential (default, the paper's procedure): one candidate at a time, each told to the GP
  before the next is proposed. "Restoring the checkpoint" is free in JAX: the stage's state is an
  immutable pytree that every trial starts from.
* ``--parallel``: all of a stage's candidates at once, one vmapped program from the same state
  (``optaxsched.stack_params`` of the parameters and of the optimizer state, whose injected
  learning rates are set to the candidates); the GP proposes the batch (see
  ``LRSearch.ask``). Same number of steps of compute; fewer, larger programs.

Data order: training step ``t`` (counting only the steps that train the kept model) sees the
trainer's batch ``t``; the trials of a stage see the batches of the steps they would replace, so
every candidate of a stage sees the same data. The forecast uses the trials' training losses, as
the authors' code does while stages are shorter than its ``τ_max`` (it switches to validation
loss after); the final comparison uses the validation loss.

``--compare NAME:LR,...`` also trains the trainer's schedules (``cosine``, ``wsd``...) for the
same budget at the given peak learning rates, on the same model, initialisation and data order,
and writes ``comparison.md`` / ``comparison.json`` / ``autolrs_lr.png``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

if __package__ in (None, ""):  # `python examples/autolrs_run.py`: make `examples` importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax
import jax.numpy as jnp
import numpy as np
import optax

import optaxsched as oxs
from examples import data as data_lib
from examples import sweep as sweep_lib
from examples.config import ConfigError, TrainConfig

__all__ = ["AutoLRSSettings", "AutoLRSResult", "run_autolrs", "run", "main"]


@dataclasses.dataclass(frozen=True)
class AutoLRSSettings:
    """AutoLRS's own settings (the trainer's flags give the model, data and budget).

    Defaults: the range ``[peak_lr / 30, peak_lr · 30]`` around ``--peak-lr``; the paper's 10
    candidates and ``τ' = τ/10``; ``τ`` starting at a tenth of the budget (at least 30 steps, so
    that a trial has 3 losses to fit) and doubling up to 4 times that.
    """

    min_lr: float | None = None
    max_lr: float | None = None
    candidates: int = 10
    first_stage: int | None = None
    max_stage: int | None = None
    trial_fraction: float = 0.1
    parallel: bool = False
    kappa: float = oxs.LRSearch.kappa  # the library default (a dataclass field default)

    def resolve(self, cfg: TrainConfig) -> AutoLRSSettings:
        first = self.first_stage or max(30, cfg.steps // 10)
        return dataclasses.replace(
            self, min_lr=self.min_lr or cfg.peak_lr / 30, max_lr=self.max_lr or cfg.peak_lr * 30,
            first_stage=first, max_stage=self.max_stage or 4 * first)


@dataclasses.dataclass
class AutoLRSResult:
    """What :func:`run_autolrs` returns: ``lr`` and ``loss`` per training step, the stages with
    their candidates and forecasts, the final validation loss, timings."""

    lr: list[float]
    loss: list[float]
    stages: list[dict[str, Any]]
    val_loss: float
    budget: int
    trial_steps: int
    wall_s: float
    params: Any
    opt_state: Any


def _step_program(setup: sweep_lib.Setup, tx: optax.GradientTransformation):
    """``jit(step)(stacked params, state, batch step) -> (params, state, losses [K])``."""
    cfg = setup.cfg
    grad_fn = jax.vmap(jax.value_and_grad(setup.loss_fn), in_axes=(0, None))

    def step(params, state, data_step):
        batch = data_lib.sample_batch(setup.tokens, data_lib.batch_key(cfg.seed, data_step),
                                      cfg.batch_size, cfg.seq_len)
        loss, grads = grad_fn(params, batch)
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state, loss

    return jax.jit(step)


def _repeat(tree: Any, k: int) -> Any:
    """A stacked pytree of one run (leading axis 1) repeated for ``k`` runs (new buffers)."""
    return jax.tree.map(lambda x: jnp.repeat(x, k, axis=0), tree)


def _set_lr(state: Any, lrs: Any) -> Any:
    """The injected learning rate of every run of a stacked optimizer state."""
    return optax.tree.set(state, learning_rate=jnp.asarray(lrs, jnp.float32))


def _train(program, params, state, first_data_step: int, steps: int):
    """``steps`` updates; returns the new params, state and losses ``[steps, K]``."""
    losses = []
    for i in range(steps):
        params, state, loss = program(params, state, jnp.int32(first_data_step + i))
        losses.append(loss)
    return params, state, np.asarray(jnp.stack(losses)) if losses else np.zeros((0, 1))


def run_autolrs(setup: sweep_lib.Setup, settings: AutoLRSSettings, *, log=print
                ) -> AutoLRSResult:
    """Trains ``setup.cfg.steps`` budget steps with AutoLRS (see the module docstring)."""
    cfg = setup.cfg
    s = settings.resolve(cfg)
    stages = oxs.autolrs_stages(cfg.steps, first_stage_steps=s.first_stage,
                                max_stage_steps=s.max_stage, num_candidates=s.candidates,
                                trial_fraction=s.trial_fraction)
    factory = setup.factory(cfg)
    # One optimizer for any K: vmap_hyperparams's update reads each run's LR from its state.
    tx = oxs.vmap_hyperparams(factory, learning_rate=[s.min_lr])
    program = _step_program(setup, tx)
    params = oxs.stack_params(setup.params, 1)
    state = tx.init(params)
    lr_trace: list[float] = []
    loss_trace: list[float] = []
    records = []
    start = time.perf_counter()
    data_step = 0  # training steps of the kept model so far (its data order)
    lr = s.min_lr
    for stage in stages:
        record = {"index": stage.index, "start": stage.start, "trial_steps": stage.trial_steps,
                  "train_steps": stage.train_steps, "candidates": [], "forecasts": []}
        if stage.num_candidates:
            search = oxs.LRSearch(s.min_lr, s.max_lr, num_candidates=stage.num_candidates,
                                  horizon=stage.train_steps, kappa=s.kappa, seed=cfg.seed)
            batch = stage.num_candidates if s.parallel else 1
            while not search.done:
                lrs = search.ask(min(batch, search.remaining))
                # Every trial starts from the stage's state: the same parameters, the same
                # optimizer moments; only the injected learning rate differs.
                trial_params = _repeat(params, len(lrs))
                trial_state = _set_lr(_repeat(state, len(lrs)), lrs)
                _, _, curves = _train(program, trial_params, trial_state, data_step,
                                      stage.trial_steps)
                search.tell(lrs, curves.T)
            lr = search.best_lr
            record["candidates"], record["forecasts"] = search.learning_rates, [
                f if math.isfinite(f) else None for f in search.forecasts]
        record["lr"] = lr
        state = _set_lr(state, [lr])
        params, state, losses = _train(program, params, state, data_step, stage.train_steps)
        data_step += stage.train_steps
        lr_trace += [lr] * stage.train_steps
        loss_trace += losses[:, 0].tolist()
        records.append(record)
        log(f"stage {stage.index}: {stage.num_candidates} trials x {stage.trial_steps} steps, "
            f"then {stage.train_steps} steps at lr {lr:.3g} (train loss "
            f"{np.mean(losses[-10:, 0]):.4f})")
    val = float(jax.vmap(setup.evaluate)(params)[0])
    trials = sum(st.num_candidates * st.trial_steps for st in stages)
    return AutoLRSResult(lr_trace, loss_trace, records, val, cfg.steps, trials,
                         time.perf_counter() - start, params, state)


def run(config: TrainConfig, argv: Sequence[str] | None = None,
        settings: AutoLRSSettings | None = None):
    """The trainer's ``--schedule autolrs``: an :class:`examples.train.RunResult`.

    AutoLRS replaces the trainer's loop (a constant learning rate per stage chosen by trials);
    the run writes ``metrics.jsonl`` (``step``, ``loss``, ``lr`` of every kept training step),
    ``autolrs.json`` (stages, candidates, forecasts) and ``summary.json`` to ``--out``. The
    trainer's checkpointing, resume, NaP, spike injection and gradient-norm recording do not
    apply to this mode and are refused.
    """
    from examples.train import RunResult  # the trainer imports this module lazily

    cfg = config.resolve()
    for name, bad in (("--resume", cfg.resume), ("--record-grad-norms", cfg.record_grad_norms),
                      ("--inject-spikes", cfg.inject_spikes > 0),
                      ("--checkpoint-every", cfg.checkpoint_every > 0),
                      ("--stop-at", cfg.stop_at is not None)):
        if bad:
            raise ConfigError(name, "is not supported with --schedule autolrs")
    setup = sweep_lib.Setup(cfg.replace(schedule="constant"))
    result = run_autolrs(setup, settings or AutoLRSSettings(),
                         log=print if cfg.progress else (lambda *_: None))
    metrics = [{"step": i, "loss": loss, "lr": lr}
               for i, (loss, lr) in enumerate(zip(result.loss, result.lr, strict=True))]
    summary = {"val_loss": result.val_loss, "train_loss": float(np.mean(result.loss[-10:])),
               "steps_done": len(result.loss), "budget_steps": result.budget,
               "trial_steps": result.trial_steps, "wall_s": result.wall_s, "finished": True,
               "compile_s": 0.0, "tokens_per_s": None}
    if cfg.out:
        _write(cfg.out, metrics, summary, result, cfg, argv)
    return RunResult(cfg, metrics, summary, result.params, result.opt_state, cfg.out)


def _write(out: str, metrics, summary, result: AutoLRSResult, cfg: TrainConfig, argv) -> None:
    if os.path.exists(out) and not os.path.isdir(out):
        raise ConfigError("--out", f"{out!r} exists and is not a directory")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "metrics.jsonl"), "w", encoding="utf-8") as handle:
        for record in metrics:
            handle.write(json.dumps({k: (v if not isinstance(v, float) or math.isfinite(v)
                                         else None) for k, v in record.items()}) + "\n")
    with open(os.path.join(out, "summary.json"), "w", encoding="utf-8") as handle:
        json.dump(summary, handle, indent=1)
    with open(os.path.join(out, "autolrs.json"), "w", encoding="utf-8") as handle:
        json.dump({"config": cfg.to_dict(), "argv": list(argv or []), "stages": result.stages},
                  handle, indent=1)


def plot_lr(result: AutoLRSResult, baselines: dict[str, Any], path: str) -> str | None:
    """The learning rate AutoLRS chose per training step, with the baselines' schedules, and the
    training losses against the budget step."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, (ax_lr, ax_loss) = plt.subplots(1, 2, figsize=(11, 4))
    # AutoLRS trains its kept model only on the steps after each stage's trials: each stage's
    # segment is drawn at its place on the budget axis, so that the curves compare at equal cost.
    trained = 0
    for stage in result.stages:
        width = len(stage["candidates"]) * stage["trial_steps"]
        first = stage["start"] + width
        steps = np.arange(first, first + stage["train_steps"])
        kept = slice(trained, trained + stage["train_steps"])
        label = "AutoLRS" if stage["index"] == 0 else None
        ax_lr.plot(steps, result.lr[kept], color="C3", lw=2, label=label)
        ax_loss.plot(steps, result.loss[kept], color="C3", lw=0.8, label=label)
        trained += stage["train_steps"]
        if width:
            ax_lr.axvspan(stage["start"], first, color="grey", alpha=0.15)
            ax_lr.scatter([stage["start"] + width / 2] * len(stage["candidates"]),
                          stage["candidates"], s=10, color="grey")
    for i, (name, base) in enumerate(baselines.items()):
        ax_lr.plot(base["lr"], label=name, color=f"C{i}")
        ax_loss.plot(base["loss"], label=name, lw=0.8, color=f"C{i}")
    low = min([min(st["candidates"] or [st["lr"]]) for st in result.stages])
    ax_lr.set_ylim(low / 3, None)
    ax_lr.set_yscale("log")
    ax_lr.set_xlabel("budget step (grey: trials, dots: candidates)")
    ax_lr.set_ylabel("learning rate")
    ax_lr.legend(fontsize=8)
    ax_loss.set_xlabel("budget step")
    ax_loss.set_ylabel("training loss")
    ax_loss.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _baseline(setup: sweep_lib.Setup, schedule: str, peak: float, optimizer: str):
    """A trainer schedule at one peak LR, same model/data/budget: final val loss, losses, LRs."""
    record = sweep_lib.run_pair(setup, schedule, optimizer, np.array([peak]))
    cfg = setup.cfg.replace(schedule=schedule, optimizer=optimizer, peak_lr=peak).resolve()
    from examples import optim

    schedule_fn = optim.build_schedule(cfg)
    lrs = [float(schedule_fn(i)) for i in range(cfg.steps)]
    return {"val_loss": record["final_val_loss"][0], "lr": lrs,
            "loss": record["train_losses"][0], "peak_lr": peak}


def _parser():
    from examples.config import build_parser

    parser = build_parser()
    parser.prog = "python -m examples.autolrs_run"
    parser.description = "AutoLRS (Jin et al., arXiv 2105.10762) on the example trainer."
    g = parser.add_argument_group("autolrs")
    g.add_argument("--autolrs-min-lr", type=float, default=None, help="search range's low end")
    g.add_argument("--autolrs-max-lr", type=float, default=None, help="search range's high end")
    g.add_argument("--autolrs-candidates", type=int, default=10, help="candidates per stage")
    g.add_argument("--autolrs-first-stage", type=int, default=None, help="tau of stage 0")
    g.add_argument("--autolrs-max-stage", type=int, default=None, help="tau_max")
    g.add_argument("--parallel", action="store_true",
                   help="train a stage's candidates at once, vmapped from the same state")
    g.add_argument("--compare", default="", metavar="NAME:LR,...",
                   help="also train these trainer schedules at these peak LRs, same budget")
    g.add_argument("--quick", action="store_true", help="a tiny model and budget (a test)")
    return parser


QUICK = sweep_lib.QUICK.replace(steps=60)
QUICK_SETTINGS = AutoLRSSettings(candidates=3, first_stage=30, max_stage=30)


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point (exit code 2 for a bad flag)."""
    from examples.config import config_from_args

    parser = _parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    settings = AutoLRSSettings(min_lr=args.autolrs_min_lr, max_lr=args.autolrs_max_lr,
                               candidates=args.autolrs_candidates,
                               first_stage=args.autolrs_first_stage,
                               max_stage=args.autolrs_max_stage, parallel=args.parallel)
    base = config_from_args(args)
    if args.quick:
        base = QUICK.replace(out=base.out, progress=base.progress)
        settings = dataclasses.replace(QUICK_SETTINGS, parallel=args.parallel)
    cfg = base.replace(schedule="autolrs")
    compare = []
    for item in filter(None, (x.strip() for x in args.compare.split(","))):
        name, _, lr = item.partition(":")
        try:
            compare.append((name, float(lr)))
        except ValueError:
            parser.error(f"argument --compare: expected NAME:LR, got {item!r}")
    try:
        result = run(cfg, argv, settings)
        if compare:
            _compare(result, cfg, settings, compare, args)
    except (ConfigError, ValueError) as err:
        parser.error(str(err))
    s = result.summary
    print(f"AutoLRS: val loss {s['val_loss']:.4f} after {s['steps_done']} training + "
          f"{s['trial_steps']} trial steps ({s['wall_s']:.1f} s)")
    return 0


def _compare(result, cfg: TrainConfig, settings: AutoLRSSettings, compare, args) -> None:
    setup = sweep_lib.Setup(cfg.replace(schedule="constant"))
    baselines = {}
    for name, peak in compare:
        baselines[f"{name} (peak {peak:g})"] = _baseline(setup, name, peak, cfg.optimizer)
    autolrs = AutoLRSResult(
        [m["lr"] for m in result.metrics], [m["loss"] for m in result.metrics],
        json.load(open(os.path.join(cfg.out, "autolrs.json"), encoding="utf-8"))["stages"],
        result.summary["val_loss"], cfg.steps, result.summary["trial_steps"],
        result.summary["wall_s"], None, None)
    mode = "parallel" if settings.parallel else "sequential"
    lines = ["| run | final val loss | steps training the kept model | trial steps |",
             "|---|---:|---:|---:|",
             f"| AutoLRS ({mode}) | {autolrs.val_loss:.4f} | {len(autolrs.lr)} | "
             f"{autolrs.trial_steps} |"]
    for name, base in baselines.items():
        lines.append(f"| {name} | {base['val_loss']:.4f} | {cfg.steps} | 0 |")
    with open(os.path.join(cfg.out, "comparison.md"), "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    with open(os.path.join(cfg.out, "comparison.json"), "w", encoding="utf-8") as handle:
        json.dump({"autolrs": {"val_loss": autolrs.val_loss, "stages": autolrs.stages,
                               "mode": mode},
                   "baselines": baselines,  # val_loss, peak_lr, per-step lr and loss
                   "budget_steps": cfg.steps, "initial_loss": setup.initial_loss}, handle,
                  indent=1)
    plot_lr(autolrs, baselines, os.path.join(cfg.out, "autolrs_lr.png"))
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
