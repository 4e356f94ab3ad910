"""Step overhead of ``record_grad_norms`` in the demo transformer's train step (issue 13, item 3).

The train step is the one ``examples/train.py`` compiles, reduced to what the recorder can
affect: a batch of token windows, ``jax.value_and_grad`` of the next-token loss of the demo's
transformer (``examples/model.py``: d_model 128, 2 layers, 4 heads, d_ff 512, sequence 64;
0.44M parameters), the demo's AdamW (``optax.adamw(3e-3, weight_decay=0.1)`` on the kernels and
embeddings) and ``optax.apply_updates``, jitted with the parameters and the state donated. The
candidate puts ``oxs.record_grad_norms(100_000, norm)`` first in the chain with the one norm
each refinement kind uses (``'l2'`` for ``kind='sgd'``, ``'l1'`` for ``kind='adam'``); the
baseline is the same chain without it. Both run at the demo's batch (32) and at 4x (128).

Timing: candidate and baseline alternate in one process and the ratio is taken per round (as
:func:`_common.interleaved_ratios` does), for wall time and for the process's CPU time (on an
oversubscribed machine wall time mostly measures the wait for a core), repeated ``--repeats``
times; the table gives the median of the repeats' median ratios and their range. XLA's cost
analysis of the two compiled steps (bytes accessed, flops) is the deterministic counterpart.
Run with ``GLIBC_TUNABLES=glibc.malloc.hugetlb=1`` as ``make bench`` does.

    GLIBC_TUNABLES=glibc.malloc.hugetlb=1 python benchmarks/recorder_overhead.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import optaxsched as oxs  # noqa: E402
from benchmarks import _common  # noqa: E402
from examples import model as model_lib  # noqa: E402

SECTION = "recorder_overhead"
VOCAB = 96  # about the demo corpus's character vocabulary
DEMO = dict(d_model=128, num_layers=2, num_heads=4, d_ff=512, seq_len=64, context=8)
DEMO_BATCH = 32


def _train_step(tx, graphdef):
    def loss_fn(params, batch):
        logits = nnx.merge(graphdef, params)(batch[:, :-1])
        return optax.softmax_cross_entropy_with_integer_labels(
            logits.astype(jnp.float32), batch[:, 1:]).mean()

    def step(params, state, batch):
        loss, grads = jax.value_and_grad(loss_fn)(params, batch)
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state, loss

    return jax.jit(step, donate_argnums=(0, 1))


def _runner(norm: str | None, batch_size: int):
    """A zero-argument callable running one train step (carrying params and state)."""
    model = model_lib.build_model("transformer", VOCAB, seed=0, **DEMO)
    graphdef, state = nnx.split(model)
    params = nnx.to_pure_dict(state)
    decay_mask = jax.tree.map(lambda p: jnp.ndim(p) >= 2, params)
    adamw = optax.adamw(3e-3, weight_decay=0.1, mask=decay_mask)
    tx = (optax.with_extra_args_support(adamw) if norm is None
          else optax.chain(oxs.record_grad_norms(100_000, norm), adamw))
    step = _train_step(tx, graphdef)
    rng = np.random.default_rng(0)
    batch = jnp.asarray(rng.integers(0, VOCAB, size=(batch_size, DEMO["seq_len"] + 1)),
                        jnp.int32)
    carry = {"params": jax.tree.map(jnp.array, params)}
    carry["state"] = jax.tree.map(lambda x: jnp.array(x, copy=True), tx.init(carry["params"]))

    compiled = step.lower(carry["params"], carry["state"], batch).compile()

    def run():
        carry["params"], carry["state"], loss = compiled(carry["params"], carry["state"], batch)
        return loss

    run.compiled = compiled
    return run


def _interleave(candidate, baseline, rounds: int, calls: int) -> dict[str, list[float]]:
    """Per-round ratios of wall time and of the process's CPU time (all threads).

    Like :func:`_common.interleaved_ratios` (alternating order, ratio per round), but also
    recording CPU time: on an oversubscribed machine a step's wall time mostly measures waiting
    for a core, while its CPU time measures the work.
    """
    for fn in (candidate, baseline):
        for _ in range(2):
            jax.block_until_ready(fn())

    def batch(fn):
        wall, cpu = time.perf_counter(), time.process_time()
        out = None
        for _ in range(calls):
            out = fn()
        jax.block_until_ready(out)
        return (time.perf_counter() - wall) / calls, (time.process_time() - cpu) / calls

    out = {"wall": [], "cpu": [], "base_wall": [], "base_cpu": []}
    for r in range(rounds):
        if r % 2 == 0:
            c, b = batch(candidate), batch(baseline)
        else:
            b = batch(baseline)
            c = batch(candidate)
        out["wall"].append(c[0] / b[0])
        out["cpu"].append(c[1] / b[1])
        out["base_wall"].append(b[0])
        out["base_cpu"].append(b[1])
    return out


def _cost(runner_step) -> dict[str, float]:
    analysis = runner_step.cost_analysis()
    analysis = analysis[0] if isinstance(analysis, list) else analysis
    return {"flops": float(analysis.get("flops", 0.0)),
            "bytes": float(analysis.get("bytes accessed", 0.0))}


def measure(repeats: int, rounds: int, calls: int) -> list[dict]:
    rows = []
    for batch_size in (DEMO_BATCH, 4 * DEMO_BATCH):
        baseline = _runner(None, batch_size)
        for norm in ("l2", "l1"):
            candidate = _runner(norm, batch_size)
            wall, cpu, base_wall, base_cpu = [], [], [], []
            for _ in range(repeats):
                res = _interleave(candidate, baseline, rounds, calls)
                wall.append(float(np.median(res["wall"])))
                cpu.append(float(np.median(res["cpu"])))
                base_wall += res["base_wall"]
                base_cpu += res["base_cpu"]
            cost_c, cost_b = _cost(candidate.compiled), _cost(baseline.compiled)
            row = dict(batch=batch_size, norm=norm, wall=wall, cpu=cpu,
                       baseline_wall_ms=float(np.median(base_wall)) * 1e3,
                       baseline_cpu_ms=float(np.median(base_cpu)) * 1e3,
                       bytes_ratio=cost_c["bytes"] / cost_b["bytes"],
                       flops_ratio=cost_c["flops"] / cost_b["flops"])
            print(f"batch {batch_size} {norm}: baseline {row['baseline_wall_ms']:.1f} ms wall, "
                  f"{row['baseline_cpu_ms']:.1f} ms CPU; ratio wall {np.median(wall):.4f} "
                  f"({min(wall):.4f}-{max(wall):.4f}), CPU {np.median(cpu):.4f} "
                  f"({min(cpu):.4f}-{max(cpu):.4f}); XLA bytes x{row['bytes_ratio']:.4f}, "
                  f"flops x{row['flops_ratio']:.4f}", flush=True)
            rows.append(row)
    return rows


def render(rows: list[dict], repeats: int, rounds: int, calls: int, wall: float) -> str:
    lines = [_common.header("Step overhead of `record_grad_norms` in the demo transformer's "
                            "train step (issue 13, item 3; goal ≤ 2%)", wall_seconds=wall),
             "",
             "The demo's transformer (0.44M parameters, sequence 64) and AdamW, "
             "`value_and_grad` + update + `apply_updates`, jitted with donated params and "
             "state; candidate: `optax.chain(oxs.record_grad_norms(100_000, norm), adamw)` with "
             "the one norm each refinement kind reads; baseline: `adamw` alone. "
             f"{repeats} repeats, each {rounds} interleaved rounds of {calls} steps; the ratio "
             "of a repeat is the median of its per-round ratios.",
             "",
             "| batch | norm | baseline step (wall / CPU) | ratio, CPU time: median of "
             "repeats (range) | ratio, wall time: median (range) | XLA bytes accessed | "
             "XLA flops |",
             "|---:|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(
            f"| {r['batch']} | {r['norm']} | {r['baseline_wall_ms']:.1f} / "
            f"{r['baseline_cpu_ms']:.1f} ms | {np.median(r['cpu']):.4f} "
            f"({min(r['cpu']):.4f}–{max(r['cpu']):.4f}) | {np.median(r['wall']):.4f} "
            f"({min(r['wall']):.4f}–{max(r['wall']):.4f}) | ×{r['bytes_ratio']:.4f} | "
            f"×{r['flops_ratio']:.4f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 repeat of 5 rounds")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--calls", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    repeats, rounds = (1, 5) if args.quick else (args.repeats, args.rounds)
    start = time.perf_counter()
    rows = measure(repeats, rounds, args.calls)
    text = render(rows, repeats, rounds, args.calls, time.perf_counter() - start)
    print(text)
    if not args.no_write and not args.quick:
        _common.write_section(SECTION, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
