"""Issue 17: a K-learning-rate sweep as one vmapped program against K sequential runs.

The example trainer's transformer (``examples/sweep.py``'s setup: same data, initialisation and
batches) is trained for ``STEPS`` steps at K = 8 log-spaced peak learning rates (cosine schedule,
AdamW, the trainer's optimizer chain) in two ways, at two model widths:

* vmapped: ONE jitted program, ``lax.scan`` over the steps of a step ``jax.vmap``-ed over the K
  runs (``optaxsched.lr_sweep``), the batch shared;
* sequential: the same program at K = 1, compiled once (the learning rate is optimizer state,
  so one executable serves all K runs), run K times one after another.

Compile time is reported apart; the run times are the minimum over ``REPEATS`` interleaved
repetitions (vmapped, sequential, vmapped, ...), in wall-clock and process CPU seconds. The
machine's two cores are shared with other jobs: the load average is recorded, and the CPU time is
the fairer figure when the load is high.

Run: ``.venv/bin/python benchmarks/sweep_suite.py`` (``--quick`` for a smoke run that writes
nothing).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:  # `examples` is imported as a package from the repository root.
    sys.path.insert(0, ROOT)

import jax  # noqa: E402

import optaxsched as oxs  # noqa: E402
from examples import optim  # noqa: E402
from examples import sweep as sweep_lib  # noqa: E402

sys.path.insert(0, HERE)
import _common  # noqa: E402

SECTION = "sweep"
K = 8
STEPS = 200
REPEATS = 2
WIDTHS = (32, 64)
LRS = np.geomspace(3e-4, 1e-1, K)


def _time(fn):
    start, cpu = time.perf_counter(), time.process_time()
    jax.block_until_ready(fn())
    return time.perf_counter() - start, time.process_time() - cpu


def measure(cfg, k: int, repeats: int) -> dict:
    """Compile and run times of the K-run vmapped program and of K sequential K = 1 runs."""
    setup = sweep_lib.Setup(cfg)
    run_cfg = setup.cfg.replace(schedule="cosine", optimizer="adamw", peak_lr=1.0).resolve()
    shape = optim.build_schedule(run_cfg)
    lrs = LRS[:k]
    programs = {}
    for name, grid in (("vmapped", lrs), ("sequential", lrs[:1])):
        tx = oxs.lr_sweep(setup.factory(run_cfg), grid, schedule=shape)
        params = oxs.stack_params(setup.params, len(grid))
        state = tx.init(params)
        start = time.perf_counter()
        program = sweep_lib.train_program(setup, tx, run_cfg.steps).lower(
            params, state, setup.tokens).compile()
        programs[name] = (program, params, state, time.perf_counter() - start)

    def vmapped():
        program, params, state, _ = programs["vmapped"]
        return program(params, state, setup.tokens)

    def sequential():
        program, params, state, _ = programs["sequential"]
        out = []
        for lr in lrs:
            state_k = state._replace(hyperparams={**state.hyperparams,
                                                  "learning_rate": np.full((1,), lr, np.float32)})
            out.append(jax.block_until_ready(program(params, state_k, setup.tokens)))
        return out

    times = {"vmapped": [], "sequential": []}
    for _ in range(repeats):
        times["vmapped"].append(_time(vmapped))
        times["sequential"].append(_time(sequential))
    params = int(sum(np.size(p) for p in jax.tree.leaves(setup.params)))
    return {"params": params, "compile": {n: programs[n][3] for n in programs},
            "wall": {n: min(t[0] for t in times[n]) for n in times},
            "cpu": {n: min(t[1] for t in times[n]) for n in times}}


def render(rows, cfg, elapsed, load) -> str:
    table = _common.markdown_table(
        ["d_model (params)", "K", "steps", "compile vmapped / K=1", "vmapped wall (CPU)",
         f"{K} sequential wall (CPU)", "speed-up wall", "speed-up CPU"],
        [[f"{w} ({r['params']:,})", K, STEPS,
          f"{r['compile']['vmapped']:.1f} s / {r['compile']['sequential']:.1f} s",
          f"{r['wall']['vmapped']:.1f} s ({r['cpu']['vmapped']:.1f} s)",
          f"{r['wall']['sequential']:.1f} s ({r['cpu']['sequential']:.1f} s)",
          f"{r['wall']['sequential'] / r['wall']['vmapped']:.2f}x",
          f"{r['cpu']['sequential'] / r['cpu']['vmapped']:.2f}x"] for w, r in rows])
    return (_common.header("LR sweep in one program (issue 17): K = 8 vmapped vs 8 sequential "
                           "runs", wall_seconds=elapsed)
            + f"\nModel: the trainer's transformer, {cfg.layers} layers, seq_len "
              f"{cfg.seq_len}, batch {cfg.batch_size}, stdlib corpus ({cfg.corpus_bytes:,} "
              f"bytes); cosine schedule, AdamW; K = {K} peak LRs log-spaced in [3e-4, 0.1]. "
              f"Times: minimum over {REPEATS} interleaved repetitions; compile apart. "
              f"1-min load average {load[0]:.1f} at the start, {load[1]:.1f} at the end: the "
              f"two cores are shared with other agents' jobs, so the wall times are noisy and "
              f"the CPU times (this process only) are the fairer comparison.\n\n" + table)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run; writes nothing")
    args = parser.parse_args(argv)
    start, load0 = time.perf_counter(), os.getloadavg()[0]
    if args.quick:
        cfg = sweep_lib.QUICK.replace(steps=4)
        result = measure(cfg, 2, 1)
        print(f"quick: {result}")
        return 0
    rows = []
    for width in WIDTHS:
        cfg = sweep_lib.SWEEP.replace(d_model=width, steps=STEPS, warmup_steps=STEPS // 20)
        rows.append((width, measure(cfg, K, REPEATS)))
        print(width, rows[-1][1], flush=True)
    body = render(rows, cfg, time.perf_counter() - start, (load0, os.getloadavg()[0]))
    _common.write_section(SECTION, body)
    print(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
