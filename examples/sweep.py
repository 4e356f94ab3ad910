"""Learning-rate sweeps in one compiled program: final loss against the peak LR, and LR sensitivity.

    python -m examples.sweep --out sweep_out                  # cosine, wsd x adamw, stable_spam
    python -m examples.sweep --quick --out /tmp/sweep         # a smoke test (seconds)
    python -m examples.sweep --time-sequential --schedules cosine --optimizers adamw --out t

For every (schedule, optimizer) pair, the example trainer's model (``examples.model``) is trained
on the trainer's data (``examples.data``: same seed, same batches, same initialisation) for K
log-spaced peak learning rates by ONE jitted program: the parameters and optimizer states carry a
leading axis of size K, ``optaxsched.lr_sweep`` builds the optimizer (the trainer's own chain,
``examples.optim.build_optimizer``, with the learning rate ``η_k · schedule(count)`` for a
unit-peak schedule), the loss and gradient are ``jax.vmap``-ed over the K copies with the batch
shared, and ``jax.lax.scan`` runs every step inside the program. Each pair is its own program
(its optimizer state has its own structure); they run one after another in one call.

Writes to ``--out``: ``sweep.json`` (every run's final validation loss, the initial loss, the
LR sensitivity of each pair, timings), ``sweep.md`` (the table) and ``sweep.png`` (final loss
against the learning rate, one line per pair). The LR sensitivity is
``optaxsched.lr_sensitivity`` (Wortsman et al., arXiv 2309.14322): the mean excess of the capped
final loss over the best one on the grid.

``--time-sequential`` also trains the same K runs one after another with the same program at
K = 1 (compiled once, the learning rate being optimizer state) and reports both wall times.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import sys
import time
from collections.abc import Sequence
from typing import Any

if __package__ in (None, ""):  # `python examples/sweep.py`: make `examples` importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

import optaxsched as oxs
from examples import data as data_lib
from examples import model as model_lib
from examples import optim
from examples.config import OPTIMIZERS, SCHEDULES, ConfigError, TrainConfig

__all__ = ["SWEEP", "QUICK", "Setup", "SweepResult", "sweep", "run_pair", "table", "plot", "main"]

# The sweep's model and budget: the trainer's transformer at a size that lets 4 pairs x 8 rates
# train on two shared CPU cores in minutes (the demo's own size costs 30x more per sweep).
SWEEP = TrainConfig(data="stdlib", model="transformer", d_model=64, layers=2, heads=4,
                    seq_len=32, batch_size=16, steps=600, warmup_steps=30, eval_batches=4,
                    corpus_bytes=2_000_000, seed=0)
QUICK = SWEEP.replace(d_model=16, layers=1, heads=2, seq_len=16, batch_size=8, steps=12,
                      warmup_steps=2, eval_batches=1, corpus_bytes=200_000)

# Schedules whose shape the sweep can scale: every trainer schedule but ``refined`` (which needs
# a previous run's norms).
SWEEP_SCHEDULES = tuple(s for s in SCHEDULES if s != "refined")


class SweepResult(dict):
    """``sweep.json``'s content: ``pairs`` (per pair: learning rates, final losses,
    sensitivity, times), ``initial_loss``, ``config``."""


def _loss_fn(graphdef):
    def loss_fn(p, batch):
        logits = nnx.merge(graphdef, p)(batch[:, :-1])
        return optax.softmax_cross_entropy_with_integer_labels(
            logits.astype(jnp.float32), batch[:, 1:]).mean()

    return loss_fn


class Setup:
    """What every pair shares: corpus, model, initial parameters, evaluation windows."""

    def __init__(self, cfg: TrainConfig):
        cfg = self.cfg = cfg.resolve()
        if cfg.data == "stdlib":
            self.corpus = data_lib.stdlib_corpus(max_bytes=cfg.corpus_bytes)
        else:
            self.corpus = data_lib.bigram_corpus(vocab_size=cfg.bigram_vocab, seed=cfg.data_seed)
        self.model = model_lib.build_model(
            cfg.model, self.corpus.vocab_size, seq_len=cfg.seq_len, d_model=cfg.d_model,
            num_layers=cfg.layers, num_heads=cfg.heads, d_ff=cfg.d_ff, context=cfg.context,
            seed=cfg.seed)
        self.graphdef, state = nnx.split(self.model)
        self.params = nnx.to_pure_dict(state)
        self.loss_fn = _loss_fn(self.graphdef)
        self.tokens = jnp.asarray(self.corpus.train)
        windows = cfg.eval_batches * cfg.batch_size
        self.val = jnp.asarray(data_lib.eval_windows(self.corpus.val, windows, cfg.seq_len)
                               .reshape(cfg.eval_batches, cfg.batch_size, cfg.seq_len + 1))
        self.initial_loss = float(self.evaluate(self.params))

    def evaluate(self, params):
        return jnp.mean(jax.lax.map(lambda w: self.loss_fn(params, w), self.val))

    def factory(self, cfg: TrainConfig):
        """The trainer's optimizer chain as a factory of its learning rate (or schedule)."""

        def make(learning_rate):
            return optim.build_optimizer(cfg, learning_rate, self.model, self.params).tx

        return make


def train_program(setup: Setup, tx: optax.GradientTransformation, steps: int):
    """``jit(train)(stacked params, state) -> (final val losses [K], train losses [steps, K])``."""
    cfg = setup.cfg
    grad_fn = jax.vmap(jax.value_and_grad(setup.loss_fn), in_axes=(0, None))

    def train(params, state, tokens):
        def body(carry, step):
            p, s = carry
            batch = data_lib.sample_batch(tokens, data_lib.batch_key(cfg.seed, step),
                                          cfg.batch_size, cfg.seq_len)
            loss, grads = grad_fn(p, batch)
            updates, s = tx.update(grads, s, p)
            return (optax.apply_updates(p, updates), s), loss

        (params, _), losses = jax.lax.scan(body, (params, state),
                                           jnp.arange(steps, dtype=jnp.int32))
        return jax.vmap(setup.evaluate)(params), losses

    return jax.jit(train)


def run_pair(setup: Setup, schedule: str, optimizer: str, learning_rates: np.ndarray,
             *, sequential: bool = False) -> dict[str, Any]:
    """Trains one (schedule, optimizer) pair at every learning rate in one program.

    Args:
      setup: the shared model and data.
      schedule: a trainer schedule name (``--schedule``), scaled to each peak learning rate.
      optimizer: a trainer optimizer name (``--optimizer``).
      learning_rates: the K peak learning rates.
      sequential: also train the K runs one after another (K = 1 program, compiled once) and
        time both.

    Returns:
      The pair's record (see ``sweep.json``).
    """
    cfg = setup.cfg.replace(schedule=schedule, optimizer=optimizer, peak_lr=1.0).resolve()
    shape = optim.build_schedule(cfg)  # peak 1: the sweep scales it
    k = len(learning_rates)
    tx = oxs.lr_sweep(setup.factory(cfg), learning_rates, schedule=shape)

    def fresh(count, tx):
        params = oxs.stack_params(setup.params, count)
        return params, tx.init(params)

    params, state = fresh(k, tx)
    start = time.perf_counter()
    program = train_program(setup, tx, cfg.steps).lower(params, state, setup.tokens).compile()
    compile_s = time.perf_counter() - start
    start, cpu = time.perf_counter(), time.process_time()
    final, losses = jax.block_until_ready(program(params, state, setup.tokens))
    run_s, cpu_s = time.perf_counter() - start, time.process_time() - cpu
    final = np.asarray(final, np.float64)
    record = {
        "schedule": schedule, "optimizer": optimizer,
        "learning_rates": [float(x) for x in learning_rates],
        "final_val_loss": [v if math.isfinite(v) else None for v in final.tolist()],
        "final_train_loss_last10": [float(np.mean(losses[-10:, i])) for i in range(k)],
        "train_losses": np.asarray(losses, np.float64).T.tolist(),  # [K][steps]
        "lr_sensitivity": oxs.lr_sensitivity(final, setup.initial_loss),
        "best_lr": float(learning_rates[int(np.nanargmin(np.where(np.isfinite(final), final,
                                                                   np.inf)))])
        if np.any(np.isfinite(final)) else None,
        "best_val_loss": float(np.nanmin(np.where(np.isfinite(final), final, np.nan)))
        if np.any(np.isfinite(final)) else None,
        # Wall and process CPU time: the CPU time is the fairer figure on a shared machine.
        "vmapped": {"compile_s": compile_s, "run_s": run_s, "cpu_s": cpu_s},
    }
    if sequential:
        single = oxs.lr_sweep(setup.factory(cfg), learning_rates[:1], schedule=shape)
        p1, s1 = fresh(1, single)
        start = time.perf_counter()
        program1 = train_program(setup, single, cfg.steps).lower(p1, s1, setup.tokens).compile()
        compile1 = time.perf_counter() - start
        start, cpu = time.perf_counter(), time.process_time()
        finals1 = []
        for lr in learning_rates:
            p1, s1 = fresh(1, single)
            # The learning rate is state: one compiled program serves every run.
            s1 = s1._replace(hyperparams={**s1.hyperparams,
                                          "learning_rate": jnp.full((1,), lr, jnp.float32)})
            finals1.append(float(jax.block_until_ready(program1(p1, s1, setup.tokens)[0])[0]))
        record["sequential"] = {"compile_s": compile1, "run_s": time.perf_counter() - start,
                                "cpu_s": time.process_time() - cpu, "final_val_loss": finals1}
        record["speedup"] = record["sequential"]["run_s"] / run_s
        record["cpu_speedup"] = record["sequential"]["cpu_s"] / cpu_s
    return record


def sweep(cfg: TrainConfig, schedules: Sequence[str], optimizers: Sequence[str],
          learning_rates: np.ndarray, *, sequential: bool = False,
          log=print) -> SweepResult:
    """Every (schedule, optimizer) pair at every learning rate; see the module docstring."""
    setup = Setup(cfg)
    result = SweepResult(initial_loss=setup.initial_loss, config=cfg.to_dict(), pairs=[],
                         parameters=int(sum(np.size(p) for p in jax.tree.leaves(setup.params))))
    for schedule in schedules:
        for optimizer in optimizers:
            record = run_pair(setup, schedule, optimizer, learning_rates, sequential=sequential)
            result["pairs"].append(record)
            timing = record["vmapped"]
            extra = ""
            if sequential:
                extra = (f", sequential {record['sequential']['run_s']:.1f} s "
                         f"(x{record['speedup']:.2f} wall, x{record['cpu_speedup']:.2f} CPU)")
            log(f"{schedule:>12} {optimizer:>12}: best {record['best_val_loss']} at "
                f"{record['best_lr']}, sensitivity {record['lr_sensitivity']:.4f}; "
                f"{timing['run_s']:.1f} s (+{timing['compile_s']:.1f} s compile){extra}")
    return result


def table(result: SweepResult) -> list[str]:
    """Markdown: final validation loss per learning rate, one row per pair."""
    lrs = result["pairs"][0]["learning_rates"]
    head = "| schedule | optimizer | " + " | ".join(f"{lr:.2g}" for lr in lrs) + \
        " | best LR | LR sensitivity |"
    lines = [head, "|---|---|" + "---:|" * (len(lrs) + 2)]
    for pair in result["pairs"]:
        cells = ["div." if v is None else f"{v:.3f}" for v in pair["final_val_loss"]]
        best = "-" if pair["best_lr"] is None else f"{pair['best_lr']:.2g}"
        lines.append(f"| {pair['schedule']} | {pair['optimizer']} | " + " | ".join(cells) +
                     f" | {best} | {pair['lr_sensitivity']:.4f} |")
    lines.append(f"\nInitial loss L0 = {result['initial_loss']:.4f}; diverged runs (div.) count "
                 f"as L0 in the sensitivity.")
    return lines


def plot(result: SweepResult, path: str) -> str | None:
    """Final validation loss against the peak learning rate (log axis), one line per pair."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for pair in result["pairs"]:
        losses = [np.nan if v is None else v for v in pair["final_val_loss"]]
        ax.plot(pair["learning_rates"], losses, marker="o",
                label=f"{pair['schedule']} + {pair['optimizer']} "
                      f"(sens. {pair['lr_sensitivity']:.3f})")
    ax.axhline(result["initial_loss"], color="grey", ls=":", lw=1, label="initial loss")
    ax.set_xscale("log")
    ax.set_xlabel("peak learning rate")
    ax.set_ylabel("final validation loss")
    finite = [v for p in result["pairs"] for v in p["final_val_loss"] if v is not None]
    if finite:
        ax.set_ylim(min(finite) - 0.05, result["initial_loss"] + 0.1)
    ax.legend(fontsize=8)
    ax.set_title("LR sweep (one vmapped program per pair)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m examples.sweep",
        description="Train the example model for K log-spaced peak learning rates in one "
                    "vmapped, jitted program per (schedule, optimizer) pair; write the final "
                    "loss against the LR and the LR sensitivity.")
    parser.add_argument("--out", required=True, metavar="DIR", help="output directory")
    parser.add_argument("--schedules", default="cosine,wsd",
                        help=f"comma-separated, from {', '.join(SWEEP_SCHEDULES)}")
    parser.add_argument("--optimizers", default="adamw,stable_spam",
                        help=f"comma-separated, from {', '.join(OPTIMIZERS)}")
    parser.add_argument("--num-lrs", type=int, default=8, help="K, the grid's size")
    parser.add_argument("--min-lr", type=float, default=3e-4, help="smallest peak LR")
    parser.add_argument("--max-lr", type=float, default=1e-1, help="largest peak LR")
    parser.add_argument("--steps", type=int, default=None, help="updates per run")
    parser.add_argument("--time-sequential", action="store_true",
                        help="also run the K runs one after another and compare wall times")
    parser.add_argument("--quick", action="store_true",
                        help="a tiny model and budget: a smoke test of the whole pipeline")
    return parser


def _names(parser, flag: str, text: str, allowed: Sequence[str]) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    bad = [n for n in names if n not in allowed]
    if not names or bad:
        parser.error(f"argument {flag}: invalid choice {bad or text!r} (choose from "
                     f"{', '.join(allowed)})")
    return names


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point (exit code 2 for a bad flag)."""
    parser = _parser()
    args = parser.parse_args(argv)
    schedules = _names(parser, "--schedules", args.schedules, SWEEP_SCHEDULES)
    optimizers = _names(parser, "--optimizers", args.optimizers, OPTIMIZERS)
    if args.num_lrs < 1:
        parser.error(f"argument --num-lrs: must be a positive integer, got {args.num_lrs}")
    if not (0 < args.min_lr <= args.max_lr) or not math.isfinite(args.max_lr):
        parser.error(f"argument --min-lr/--max-lr: need 0 < min <= max (finite), got "
                     f"{args.min_lr}, {args.max_lr}")
    cfg = QUICK if args.quick else SWEEP
    if args.steps is not None:
        if args.steps < 1:
            parser.error(f"argument --steps: must be a positive integer, got {args.steps}")
        cfg = cfg.replace(steps=args.steps, warmup_steps=max(1, args.steps // 20))
    learning_rates = np.geomspace(args.min_lr, args.max_lr, args.num_lrs)
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        parser.error(f"argument --out: {args.out!r} exists and is not a directory")
    try:
        result = sweep(cfg, schedules, optimizers, learning_rates,
                       sequential=args.time_sequential)
    except ConfigError as err:
        parser.error(str(err))
    result["machine"] = {"platform": platform.platform(), "cpus": os.cpu_count(),
                         "devices": [str(d) for d in jax.devices()],
                         "date": datetime.datetime.now(datetime.timezone.utc).isoformat()}
    result["command"] = "python -m examples.sweep " + " ".join(
        sys.argv[1:] if argv is None else argv)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "sweep.json"), "w", encoding="utf-8") as handle:
        json.dump(result, handle, indent=1)
    lines = table(result)
    with open(os.path.join(args.out, "sweep.md"), "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    plot(result, os.path.join(args.out, "sweep.png"))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
