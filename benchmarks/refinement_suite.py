"""Benchmark for issue 3: refined schedules from gradient norms (Defazio et al., arXiv 2310.07831).

Three parts, each written into the ``refinement`` section of ``benchmarks/RESULTS.md``:

1. **Schedules on logistic regression.** Multinomial logistic regression (with a small L2 term,
   so that the optimum is unique) on five datasets bundled with scikit-learn (iris, wine,
   breast_cancer, digits, diabetes with its target split at the median), trained with minibatch
   SGD and Adam. For each dataset and optimizer: linear decay and cosine are swept over a grid
   of peak learning rates on the evaluation seeds; a pilot run of linear decay at its best peak
   (separate seeds) records the gradient norms with ``record_grad_norms`` (ℓ2 for SGD, ℓ1 for
   Adam); ``refined_schedule`` turns the seed-averaged norms into the refined schedule, whose
   peak is swept on the same grid. The metric is the final full-batch training objective minus
   its minimum (found with SciPy's L-BFGS in float64), averaged over the evaluation seeds at
   each schedule's best peak.
2. **Speed of ``refine``** on a 1M-step log (goal: under 1 s).
3. **Step overhead of ``record_grad_norms``**: an MLP training step (forward, backward, Adam)
   jitted with donated buffers, with and without the recorder: XLA's cost analysis of both
   compiled steps, and timings interleaved in one process at two sizes (goal: at most 2%),
   plus the optimizer update alone as the worst case.

Run: ``.venv/bin/python benchmarks/refinement_suite.py`` (a few minutes on 2 CPU cores;
``--quick`` for a smoke run that writes nothing).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import optaxsched as oxs

HERE = os.path.dirname(os.path.abspath(__file__))
FIGURES = os.path.join(HERE, "figures")
RESULTS = os.path.join(HERE, "RESULTS.md")
SECTION = "refinement"

DATASETS = ("iris", "wine", "breast_cancer", "digits", "diabetes")
OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("cosine", "linear", "refined")
L2 = 1e-3  # weight of (λ/2)·‖W‖² in the objective
OVERHEAD_STEPS, OVERHEAD_ROUNDS = 3, 41
LR_GRIDS = {"sgd": 2.0 ** np.arange(-7, 7), "adam": 2.0 ** np.arange(-10, 4)}


# ------------------------------------------------------------------------------------------------
# Data and the objective.
# ------------------------------------------------------------------------------------------------


def load(name: str) -> tuple[np.ndarray, np.ndarray, int]:
    from sklearn import datasets

    loader = {"iris": datasets.load_iris, "wine": datasets.load_wine,
              "breast_cancer": datasets.load_breast_cancer, "digits": datasets.load_digits,
              "diabetes": datasets.load_diabetes}[name]
    x, y = loader(return_X_y=True)
    if name == "diabetes":  # regression target: above / below the median
        y = (y > np.median(y)).astype(np.int64)
    x = (x - x.mean(0)) / np.where(x.std(0) > 0, x.std(0), 1.0)
    return x.astype(np.float64), y.astype(np.int64), int(y.max()) + 1


def objective_np(w: np.ndarray, b: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
    logits = x @ w + b
    logits = logits - logits.max(1, keepdims=True)
    log_probs = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    return float(-log_probs[np.arange(len(y)), y].mean() + 0.5 * L2 * np.sum(w * w))


def optimum(x: np.ndarray, y: np.ndarray, k: int) -> float:
    """Minimum of the objective, by L-BFGS in float64 with exact gradients."""
    from scipy.optimize import minimize

    d = x.shape[1]
    onehot = np.eye(k)[y]

    def f(theta):
        w, b = theta[:d * k].reshape(d, k), theta[d * k:]
        logits = x @ w + b
        logits = logits - logits.max(1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(1, keepdims=True)
        value = objective_np(w, b, x, y)
        delta = (p - onehot) / len(y)
        return value, np.concatenate([(x.T @ delta + L2 * w).ravel(), delta.sum(0)])

    result = minimize(f, np.zeros(d * k + k), jac=True, method="L-BFGS-B",
                      options={"maxiter": 20_000, "ftol": 1e-15, "gtol": 1e-12})
    return float(result.fun)


# ------------------------------------------------------------------------------------------------
# Training: one jitted function per (dataset, optimizer), vmapped over peak LRs and seeds; the
# schedule is passed as a table of multipliers so every schedule shares the compiled code.
# ------------------------------------------------------------------------------------------------


def make_runner(x: np.ndarray, y: np.ndarray, k: int, optimizer: str, steps: int, batch: int):
    xs, ys = jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.int32)
    n, d = x.shape
    norms = ("l2",) if optimizer == "sgd" else ("l1",)
    base = optax.identity() if optimizer == "sgd" else optax.scale_by_adam()
    tx = optax.chain(oxs.record_grad_norms(steps, norms=norms), base)

    def loss(params, xb, yb):
        logits = xb @ params["w"] + params["b"]
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()
        return ce + 0.5 * L2 * jnp.sum(params["w"] ** 2)

    def single(lr, key, table):
        params = {"w": jnp.zeros((d, k)), "b": jnp.zeros((k,))}
        state = tx.init(params)

        def body(carry, count):
            params, state, key = carry
            key, sub = jax.random.split(key)
            index = jax.random.randint(sub, (batch,), 0, n)
            grads = jax.grad(loss)(params, xs[index], ys[index])
            directions, state = tx.update(grads, state, params)
            scale = lr * table[count]
            params = jax.tree.map(lambda p, u: p - scale * u, params, directions)
            return (params, state, key), None

        (params, state, _), _ = jax.lax.scan(body, (params, state, key), jnp.arange(steps))
        return params, state

    @jax.jit
    def run(lrs, seeds, table):
        keys = jax.vmap(jax.random.PRNGKey)(seeds)
        lr_grid = jnp.repeat(lrs, seeds.size)
        key_grid = jnp.tile(keys, (lrs.size, 1))
        return jax.vmap(single, in_axes=(0, 0, None))(lr_grid, key_grid, table)

    def final_objectives(lrs, seeds, table):
        """Final objectives, shape [len(lrs), len(seeds)] (inf where the run diverged)."""
        params, state = run(jnp.asarray(lrs, jnp.float32), jnp.asarray(seeds, jnp.uint32),
                            jnp.asarray(table, jnp.float32))
        w = np.asarray(params["w"], np.float64)
        b = np.asarray(params["b"], np.float64)
        values = np.array([objective_np(w[i], b[i], x, y) if np.all(np.isfinite(w[i]))
                           else np.inf for i in range(w.shape[0])])
        return values.reshape(len(lrs), len(seeds)), state

    return final_objectives


def sample(schedule, steps: int) -> np.ndarray:
    return np.asarray(schedule(np.arange(steps)), np.float64)


def benchmark_schedules(steps: int, batch: int, eval_seeds, pilot_seeds, datasets):
    rows, curves = [], {}
    for name in datasets:
        x, y, k = load(name)
        best = optimum(x, y, k)
        for optimizer in OPTIMIZERS:
            start = time.perf_counter()
            run = make_runner(x, y, k, optimizer, steps, batch)
            grid = LR_GRIDS[optimizer]
            tables = {"cosine": sample(optax.cosine_decay_schedule(1.0, steps), steps),
                      "linear": sample(oxs.linear_decay(1.0, steps), steps)}
            sweeps = {}
            for schedule in ("cosine", "linear"):
                sweeps[schedule], _ = run(grid, eval_seeds, tables[schedule])
            linear_best = int(np.argmin(_mean_over_seeds(sweeps["linear"])))
            _, pilot_state = run(grid[linear_best:linear_best + 1], pilot_seeds,
                                 tables["linear"])
            norm = "l2" if optimizer == "sgd" else "l1"
            logged = oxs.grad_norm_history(pilot_state, norm=norm)  # [pilot seeds, steps]
            norms = logged.mean(axis=0)
            refined = oxs.refined_schedule(norms, 1.0, total_steps=steps, kind=optimizer)
            tables["refined"] = sample(refined, steps)
            sweeps["refined"], _ = run(grid, eval_seeds, tables["refined"])
            row = {"dataset": name, "optimizer": optimizer, "n": x.shape[0], "d": x.shape[1],
                   "k": k, "optimum": best, "seconds": time.perf_counter() - start}
            for schedule in SCHEDULES:
                excess = sweeps[schedule] - best
                mean = _mean_over_seeds(excess)
                i = int(np.argmin(mean))
                row[schedule] = {"lr": float(grid[i]), "mean": float(mean[i]),
                                 "se": float(excess[i].std(ddof=1) / np.sqrt(excess.shape[1])),
                                 "edge": i in (0, len(grid) - 1), "per_seed": excess[i]}
            row["peak_position"] = int(np.argmax(tables["refined"])) / (steps - 1)
            rows.append(row)
            curves[(name, optimizer)] = {"grid": grid, "tables": tables, "norms": norms,
                                         "sweeps": {s: _mean_over_seeds(sweeps[s] - best)
                                                    for s in SCHEDULES}}
            print(f"{name:>13} {optimizer:>4}: " + "  ".join(
                f"{s} {row[s]['mean']:.3e} (lr {row[s]['lr']:.3g})" for s in SCHEDULES)
                + f"  [{row['seconds']:.1f}s]", flush=True)
    return rows, curves


def _mean_over_seeds(values: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        mean = values.mean(axis=1)
    return np.where(np.isfinite(mean), mean, np.inf)


# ------------------------------------------------------------------------------------------------
# Timings.
# ------------------------------------------------------------------------------------------------


def time_refine(repeats: int = 5) -> dict[str, float]:
    rng = np.random.default_rng(0)
    n = 1_000_000
    t = np.arange(n) / n
    norms = (1.0 + 5.0 * np.exp(-t / 0.05) + t) * rng.lognormal(0.0, 0.3, n)
    out = {}
    for label, fn in [("refine (sgd)", lambda: oxs.refine(norms, kind="sgd")),
                      ("refine (adam)", lambda: oxs.refine(norms, kind="adam")),
                      ("smooth_norms", lambda: oxs.smooth_norms(norms))]:
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        out[label] = statistics.median(times)
    return out


def _mlp(sizes, key):
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
        key, sub = jax.random.split(key)
        params.append({"w": jax.random.normal(sub, (fan_in, fan_out)) / np.sqrt(fan_in),
                       "b": jnp.zeros(fan_out)})
    return params


def _mlp_loss(params, x, y):
    for layer in params[:-1]:
        x = jax.nn.relu(x @ layer["w"] + layer["b"])
    logits = x @ params[-1]["w"] + params[-1]["b"]
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


def _cost(compiled) -> dict[str, float]:
    analysis = compiled.cost_analysis()
    analysis = analysis[0] if isinstance(analysis, (list, tuple)) else analysis
    return {"flops": float(analysis.get("flops", np.nan)),
            "bytes": float(analysis.get("bytes accessed", np.nan))}


def time_overhead(configs, steps: int = 5, rounds: int = 21, record_steps: int = 100_000):
    """Per-step cost with and without the recorder: XLA's cost analysis and interleaved timings.

    ``configs``: ``(layer sizes, batch size, mode, timed, norms)``; ``mode`` is
    ``'train step'`` (forward, backward, Adam) or ``'update only'`` (Adam on fixed gradients);
    ``norms`` is what the recorder records.
    """
    results = []
    for sizes, batch, mode, timed, norms in configs:
        key = jax.random.PRNGKey(0)
        x = jax.random.normal(key, (batch, sizes[0]))
        y = jax.random.randint(key, (batch,), 0, sizes[-1])
        variants = {"plain": optax.adam(1e-3),
                    "recorded": optax.chain(oxs.record_grad_norms(record_steps, norms),
                                            optax.adam(1e-3))}
        carries, steppers, costs = {}, {}, {}
        for label, tx in variants.items():
            params = _mlp(sizes, jax.random.PRNGKey(1))
            # Inputs are arguments, not constants, so that nothing is folded at compile time.
            if mode == "train step":
                def step(params, state, x, y, tx=tx):
                    grads = jax.grad(_mlp_loss)(params, x, y)
                    updates, state = tx.update(grads, state, params)
                    return optax.apply_updates(params, updates), state
                inputs = (x, y)
            else:
                def step(params, state, grads, tx=tx):
                    updates, state = tx.update(grads, state, params)
                    return optax.apply_updates(params, updates), state
                inputs = (jax.tree.map(lambda p: 1e-3 * jnp.ones_like(p), params),)
            state = tx.init(params)
            steppers[label] = jax.jit(step, donate_argnums=(0, 1)).lower(
                params, state, *inputs).compile()
            costs[label] = _cost(steppers[label])
            carries[label] = (params, state)
        n_params = sum(p.size for p in jax.tree.leaves(carries["plain"][0]))
        result = {"sizes": sizes, "batch": batch, "params": int(n_params), "mode": mode,
                  "norms": "+".join(norms),
                  "flops_ratio": costs["recorded"]["flops"] / costs["plain"]["flops"],
                  "bytes_ratio": costs["recorded"]["bytes"] / costs["plain"]["bytes"],
                  "timed": timed}
        if timed:
            for label in variants:
                for _ in range(3):  # warm up
                    carries[label] = steppers[label](*carries[label], *inputs)
                jax.block_until_ready(carries[label])
            timings = {label: [] for label in variants}
            ratios, cpu_ratios = [], []
            for r in range(rounds):
                order = ("plain", "recorded") if r % 2 == 0 else ("recorded", "plain")
                wall, cpu = {}, {}
                for label in order:
                    carry = carries[label]
                    start, start_cpu = time.perf_counter(), time.process_time()
                    for _ in range(steps):
                        carry = steppers[label](*carry, *inputs)
                    jax.block_until_ready(carry)
                    wall[label] = (time.perf_counter() - start) / steps
                    cpu[label] = (time.process_time() - start_cpu) / steps
                    carries[label] = carry
                    timings[label].append(wall[label])
                ratios.append(wall["recorded"] / wall["plain"])
                cpu_ratios.append(cpu["recorded"] / cpu["plain"])
            result.update({"plain_ms": 1e3 * statistics.median(timings["plain"]),
                           "recorded_ms": 1e3 * statistics.median(timings["recorded"]),
                           "ratio": statistics.median(ratios),
                           "ratio_q": np.percentile(ratios, [25, 75]).tolist(),
                           "cpu_ratio": statistics.median(cpu_ratios)})
        results.append(result)
        print(f"overhead {sizes} batch {batch} {mode} {norms}: flops x{result['flops_ratio']:.4f}, "
              f"bytes x{result['bytes_ratio']:.4f}" + (
                  f"; {result['plain_ms']:.3f} ms vs {result['recorded_ms']:.3f} ms, wall "
                  f"x{result['ratio']:.4f}, cpu x{result['cpu_ratio']:.4f}" if timed else ""),
              flush=True)
    return results


# ------------------------------------------------------------------------------------------------
# Figures and the RESULTS.md section.
# ------------------------------------------------------------------------------------------------


def figures(curves, datasets) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(FIGURES, exist_ok=True)
    colors = {"cosine": "C0", "linear": "0.4", "refined": "C3"}
    paths = []

    fig, axes = plt.subplots(2, len(datasets), figsize=(3.2 * len(datasets), 5.6), squeeze=False)
    for col, name in enumerate(datasets):
        for row, optimizer in enumerate(OPTIMIZERS):
            ax = axes[row][col]
            curve = curves[(name, optimizer)]
            steps = np.arange(curve["tables"]["linear"].size)
            for schedule in SCHEDULES:
                ax.plot(steps, curve["tables"][schedule], color=colors[schedule],
                        linewidth=1.5, label=schedule)
            norms = oxs.smooth_norms(curve["norms"])
            ax.plot(steps, norms / norms.max(), color="C2", linewidth=1.0, linestyle=":",
                    label=f"smoothed {'ℓ2' if optimizer == 'sgd' else 'ℓ1'} norm (scaled)")
            ax.set_title(f"{name} / {optimizer}", fontsize="medium")
            ax.grid(alpha=0.3)
            if col == 0:
                ax.set_ylabel("multiplier of the peak LR")
            if row == 1:
                ax.set_xlabel("step")
    axes[0][0].legend(fontsize="x-small")
    fig.tight_layout()
    path = os.path.join(FIGURES, "refinement_schedules.png")
    fig.savefig(path, dpi=110)
    paths.append(path)
    plt.close(fig)

    fig, axes = plt.subplots(2, len(datasets), figsize=(3.2 * len(datasets), 5.6), squeeze=False)
    for col, name in enumerate(datasets):
        for row, optimizer in enumerate(OPTIMIZERS):
            ax = axes[row][col]
            curve = curves[(name, optimizer)]
            for schedule in SCHEDULES:
                values = np.where(np.isfinite(curve["sweeps"][schedule]),
                                  curve["sweeps"][schedule], np.nan)
                ax.loglog(curve["grid"], np.maximum(values, 1e-12), marker="o", markersize=3,
                          color=colors[schedule], label=schedule)
            ax.set_title(f"{name} / {optimizer}", fontsize="medium")
            ax.grid(alpha=0.3, which="both")
            if col == 0:
                ax.set_ylabel("final objective − optimum")
            if row == 1:
                ax.set_xlabel("peak learning rate")
    axes[0][0].legend(fontsize="x-small")
    fig.tight_layout()
    path = os.path.join(FIGURES, "refinement_lr_sweep.png")
    fig.savefig(path, dpi=110)
    paths.append(path)
    plt.close(fig)
    return paths


def _fmt(cell) -> str:
    edge = " (edge)" if cell["edge"] else ""
    return f"{cell['mean']:.3e} ± {cell['se']:.1e} @ {cell['lr']:.3g}{edge}"


def render(rows, refine_times, overhead, config, elapsed) -> str:
    lines = [
        "## Refinement (issue 3): refined schedules from gradient norms",
        "",
        f"Command: `{config['command']}`  ",
        f"Date: {config['date']}; machine: {config['machine']}; jax {jax.__version__}, "
        f"optax {optax.__version__}; wall time {elapsed:.0f} s.",
        "",
        "### Noise-floor check (not the paper's protocol): cosine vs linear decay vs refined "
        "at 1000 steps",
        "",
        f"Multinomial logistic regression with (λ/2)‖W‖², λ = {L2:g}, features standardised; "
        f"{config['steps']} steps of batch {config['batch']} (sampled with replacement), "
        f"{len(config['eval_seeds'])} evaluation seeds; peak LR tuned per schedule on "
        f"2^k grids (SGD 2^-7..2^6, Adam 2^-10..2^3). The refined schedule comes from a "
        f"pilot run of linear decay at its tuned peak on {len(config['pilot_seeds'])} other "
        f"seeds (norms recorded by `record_grad_norms`: ℓ2 of the raw gradient for SGD, ℓ1 for "
        f"Adam; averaged over the pilot seeds; `refined_schedule(..., kind=sgd|adam)` with the "
        f"default smoothing 0.1). Cells: final training objective minus its minimum (L-BFGS, "
        f"float64), mean ± standard error over seeds, @ the best peak LR; lower is better; "
        f"'(edge)' marks a best peak at the end of the grid. Every schedule sees the same "
        f"minibatch sequence for a given seed, so the seeds are paired: 'seeds refined < "
        f"linear' counts the seeds on which refined (at its best peak) ends lower than linear "
        f"(at its best peak). 'refined peak at': where the refined schedule peaks (its warmup).",
        "",
        "| dataset (n×d, classes) | opt | cosine | linear | refined | refined / linear | "
        "seeds refined < linear | refined peak at |",
        "|---|---|---|---|---|---|---|---|",
    ]
    wins = {s: 0 for s in SCHEDULES}
    for row in rows:
        means = {s: row[s]["mean"] for s in SCHEDULES}
        winner = min(means, key=means.get)
        wins[winner] += 1
        cells = [(f"**{_fmt(row[s])}**" if s == winner else _fmt(row[s])) for s in SCHEDULES]
        ratio = row["refined"]["mean"] / row["linear"]["mean"] if row["linear"]["mean"] > 0 \
            else float("nan")
        better = int(np.sum(row["refined"]["per_seed"] < row["linear"]["per_seed"]))
        seeds = row["linear"]["per_seed"].size
        lines.append(f"| {row['dataset']} ({row['n']}×{row['d']}, {row['k']}) | "
                     f"{row['optimizer']} | " + " | ".join(cells) +
                     f" | {ratio:.2f} | {better}/{seeds} | {100 * row['peak_position']:.0f}% |")
    lines += [
        "",
        f"Best of the three (lowest mean): cosine {wins['cosine']}, linear {wins['linear']}, "
        f"refined {wins['refined']} of {len(rows)}.",
        "",
        "![refined schedules](figures/refinement_schedules.png)",
        "",
        "![LR sweeps](figures/refinement_lr_sweep.png)",
        "",
        "### Speed of `refine` on a 1M-step log (goal < 1 s)",
        "",
        "| call | median of 5 |",
        "|---|---|",
    ]
    lines += [f"| `{label}` | {seconds * 1e3:.0f} ms |" for label, seconds in refine_times.items()]
    lines += [
        "",
        "### Step overhead of `record_grad_norms` (goal ≤ 2%)",
        "",
        "`optax.chain(record_grad_norms(100_000), optax.adam(1e-3))` (ℓ2 and ℓ1, the default) "
        "against `optax.adam(1e-3)`, MLP (float32), `jax.jit(step, donate_argnums=(0, 1))`. "
        "'XLA flops/bytes': ratios of the compiled steps' `cost_analysis()` (deterministic: "
        "what the recorder adds to the work, independent of machine load). Timed rows: the "
        "two variants run alternately in one process "
        f"({config['overhead_steps']} steps per measurement, {config['overhead_rounds']} "
        "rounds); ratio = median of the per-round ratios (interquartile range in brackets), "
        "of wall time and of this process's CPU time (less sensitive to the other users of "
        "this shared 2-core machine). 'update only' runs the optimizer update without "
        "forward/backward: the worst case, where the extra reads of the gradients are not "
        "hidden by model compute.",
        "",
        "| MLP | params | batch | step | norms | XLA flops | XLA bytes | plain | with recorder "
        "| ratio (wall) | ratio (CPU time) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in overhead:
        timing = (f"{r['plain_ms']:.2f} ms | {r['recorded_ms']:.2f} ms | {r['ratio']:.3f} "
                  f"[{r['ratio_q'][0]:.3f}, {r['ratio_q'][1]:.3f}] | {r['cpu_ratio']:.3f}"
                  if r["timed"] else "not timed | | | ")
        lines.append(f"| {'-'.join(map(str, r['sizes']))} | {r['params'] / 1e6:.2f}M | "
                     f"{r['batch']} | {r['mode']} | {r['norms']} | ×{r['flops_ratio']:.4f} | "
                     f"×{r['bytes_ratio']:.3f} | {timing} |")
    lines += ["", config["notes"]]
    return "\n".join(lines).rstrip() + "\n"


def write_section(text: str) -> None:
    """Replaces (or appends) the section between this suite's markers in RESULTS.md."""
    try:
        sys.path.insert(0, HERE)
        from _common import write_section as shared  # type: ignore[import-not-found]
    except ImportError:
        shared = None
    finally:
        sys.path.remove(HERE)
    if shared is not None:
        shared(SECTION, text)
        return
    begin, end = f"<!-- BEGIN {SECTION} -->", f"<!-- END {SECTION} -->"
    block = f"{begin}\n{text}{end}\n"
    old = open(RESULTS, encoding="utf-8").read() if os.path.exists(RESULTS) else \
        "# Benchmark results\n\n"
    if begin in old and end in old:
        head, rest = old.split(begin, 1)
        new = head + block + rest.split(end, 1)[1].lstrip("\n")
    else:
        new = old.rstrip("\n") + "\n\n" + block
    with open(RESULTS, "w", encoding="utf-8") as handle:
        handle.write(new)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run; writes nothing")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--skip-timing", action="store_true")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    load_start = os.getloadavg()[0]
    datasets = DATASETS[:2] if args.quick else DATASETS
    steps = 200 if args.quick else args.steps
    eval_seeds = np.arange(args.seeds if not args.quick else 2)
    pilot_seeds = 1000 + np.arange(args.seeds if not args.quick else 2)
    rows, curves = benchmark_schedules(steps, args.batch, eval_seeds, pilot_seeds, datasets)
    refine_times, overhead = {}, []
    if not args.skip_timing:
        refine_times = time_refine(repeats=2 if args.quick else 5)
        print("refine timings (s):", {k: round(v, 3) for k, v in refine_times.items()})
        both, big = ("l2", "l1"), (784, 2048, 2048, 10)
        configs = ([((784, 256, 10), 128, "train step", True, both)] if args.quick else
                   [((784, 512, 512, 10), 128, "train step", True, both),
                    ((784, 512, 512, 10), 128, "update only", True, both),
                    (big, 128, "train step", True, both),
                    (big, 128, "update only", True, both),
                    (big, 128, "train step", False, ("l2",)),
                    (big, 1024, "train step", False, both),
                    (big, 8192, "train step", False, both)])
        overhead = time_overhead(configs, rounds=3 if args.quick else OVERHEAD_ROUNDS,
                                 steps=OVERHEAD_STEPS)
    elapsed = time.perf_counter() - start
    if args.quick:
        print(f"quick run done in {elapsed:.0f} s (nothing written)")
        return 0
    paths = figures(curves, datasets)
    config = {"command": ".venv/bin/python benchmarks/refinement_suite.py",
              "date": datetime.date.today().isoformat(),
              "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores "
                         f"({platform.processor() or platform.platform()}), JAX on "
                         f"{jax.default_backend()}; 1-min load average {load_start:.1f} at "
                         f"the start, {os.getloadavg()[0]:.1f} at the end (other jobs share "
                         f"the cores)",
              "steps": steps, "batch": args.batch, "eval_seeds": eval_seeds,
              "pilot_seeds": pilot_seeds, "notes": reading(rows, refine_times, overhead),
              "overhead_steps": OVERHEAD_STEPS,
              "overhead_rounds": OVERHEAD_ROUNDS}
    write_section(render(rows, refine_times, overhead, config, elapsed))
    print("wrote", RESULTS, "and", ", ".join(paths))
    return 0


def reading(rows, refine_times, overhead) -> str:
    """The interpretation, with the numbers of this run filled in."""
    ratios = [row["refined"]["mean"] / row["linear"]["mean"] for row in rows]
    wins = {s: sum(1 for row in rows if min(SCHEDULES, key=lambda k: row[k]["mean"]) == s)
            for s in SCHEDULES}
    paired = sum(int(np.sum(row["refined"]["per_seed"] < row["linear"]["per_seed"]))
                 for row in rows)
    total = sum(row["linear"]["per_seed"].size for row in rows)
    peaks = [100 * row["peak_position"] for row in rows]
    verdict = ("Refinement did not help on these problems." if wins["refined"] == 0
               and 2 * paired < total else "Refinement gave mixed results on these problems.")
    linear_wins = ", ".join(f"{row['dataset']}/{row['optimizer']}" for row in rows
                            if min(SCHEDULES, key=lambda k: row[k]["mean"]) == "linear")
    ties = ", ".join(f"{row['dataset']}/{row['optimizer']}" for row, r in zip(rows, ratios,
                                                                            strict=True)
                     if r < 1.05)
    text = [
        "### Reading",
        "",
        f"- **{verdict}** The refined schedule was the best of the three on "
        f"{wins['refined']} of {len(rows)}; its final excess objective is "
        f"{min(ratios):.2f}–{max(ratios):.2f}× "
        f"that of linear decay (each at its own tuned peak), and it ended below linear decay "
        f"on {paired} of {total} paired (dataset, optimizer, seed) runs. Where it comes "
        f"within 5% ({ties or 'nowhere'}) its schedule is close to linear decay (the norms "
        f"are nearly flat after a short transient).",
        f"- The refined schedules have the shape the paper predicts: a warmup (they peak at "
        f"{min(peaks):.0f}–{max(peaks):.0f}% of the run), because the stochastic gradient norms "
        f"are largest early, then a decay to 0 that is not straight (where the norms keep "
        f"falling it rises again mid-run; see the figure). On these convex problems started "
        f"from zero the "
        f"early large steps are what makes progress, so the warmup costs; and the schedule "
        f"that keeps the rate higher later ends with more minibatch noise. The closed form "
        f"assumes the norm sequence does not depend on the schedule, which is not the case "
        f"here (the norms of run 1 fall because of run 1's large early steps).",
        f"- Cosine was best on {wins['cosine']} of {len(rows)} and linear decay on "
        f"{wins['linear']} ({linear_wins or 'none'}); the differences between cosine and "
        f"linear are mostly within about one standard error (the LR is chosen on the same "
        f"seeds it is reported on). This is a check at the minibatch noise floor (1000 steps "
        f"of batch 16 with L2: 107 epochs of iris but 9 of digits), not the paper's protocol; "
        f"the paper's abstract claims linear ≥ cosine and refined > linear for its "
        f"logistic-regression suite too, which the `refinement_paper` section measures under "
        f"that protocol.",
        "- Limits of this benchmark: small convex problems, one step budget, one smoothing "
        "width (0.1), norms from one pilot configuration. It checks that the pipeline "
        "(record → refine → schedule) works end to end and measures its effect honestly; it "
        "does not reproduce the paper's protocol (see `refinement_paper`).",
    ]
    if refine_times:
        text.append(f"- `refine` on a 1M-step log took {1e3 * max(refine_times.values()):.0f} ms "
                    f"at most (goal < 1 s), on a machine shared with other jobs.")
    if overhead:
        train = [r for r in overhead if r["mode"] == "train step" and r["norms"] == "l2+l1"]
        single = [r for r in overhead if r["norms"] == "l2"]
        timed = [r for r in train if r["timed"]]
        text.append(
            "- `record_grad_norms` costs one extra read of the gradients per recorded norm "
            "and a scalar write; flops barely change (" +
            ", ".join(f"×{r['flops_ratio']:.4f}" for r in train) + " for the train steps). "
            "In bytes accessed (XLA's estimate) the train step grows by " +
            ", ".join(f"{100 * (r['bytes_ratio'] - 1):.1f}% at batch {r['batch']} "
                      f"({r['params'] / 1e6:.2f}M params)" for r in train) +
            ". Measured CPU time: " +
            ", ".join(f"+{100 * (r['cpu_ratio'] - 1):.1f}% ({r['params'] / 1e6:.2f}M, batch "
                      f"{r['batch']})" for r in timed) +
            ". So the ≤ 2% goal is not met for these small-batch MLPs on CPU, where the step "
            "is memory-bound and the extra reads show; XLA's estimate approaches it only with "
            "much more compute per parameter (batch 8192). Recording one norm (`norms='l2'`, "
            "or `'l1'` for the Adam refinement) halves the extra traffic (" +
            ", ".join(f"+{100 * (r['bytes_ratio'] - 1):.1f}% bytes at batch {r['batch']}, "
                      f"{r['params'] / 1e6:.2f}M" for r in single) + "). "
            "An earlier version without `jax.lax.optimization_barrier` before the reductions "
            "let XLA fuse the backward matmuls into them and compute them twice (+55% step "
            "time on the 5.8M-parameter MLP); the barrier is in the library now.")
    return "\n".join(text) + "\n"

if __name__ == "__main__":
    sys.exit(main())
