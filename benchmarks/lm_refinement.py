"""Refinement on the example language model (Defazio et al., arXiv 2310.07831; issue 14 item 2).

The paper's deep-learning protocol: train with linear decay while logging the gradient norms,
refine the schedule from those norms (for Adam: ``w_t = 1 / ‖g_t‖₁``, the ℓ1 norm), train again
with the refined schedule, and compare the final loss with linear decay and cosine at the same
budget. This runner does that with the example trainer (``examples/train.py``: a character-level
transformer on the installed Python standard library's source, AdamW):

1. ``pilot``: linear decay (5% warmup) on a seed that is **not** an evaluation seed, recording
   every step's ℓ1 and ℓ2 gradient norms (``oxs.record_grad_norms``, first in the chain: the raw
   gradients, as the paper logs them);
2. on each evaluation seed (initialisation and data order), at the same peak LR and budget:
   ``linear`` (5% warmup, records its norms too), ``cosine`` (optax's warmup-cosine, 5%),
   ``refined`` (``oxs.refined_schedule(pilot ℓ1 norms, kind="adam")``: the pairing the library
   documents for Adam; no extra warmup, the shape makes its own), and two variants that say what
   the choice of norms costs: ``refined_l2`` (the pilot's ℓ2 norms with ``kind="sgd"``, which is
   what ``oxs.refine``'s former default ``kind`` gave an Adam user who passed
   ``grad_norm_history(...)["l2"]``; ``kind`` has no default now),
   and ``refined_self`` (``kind="adam"`` from the same seed's own ``linear`` run: no pilot, but
   the norms are those of the very initialisation and data order that are then evaluated).

Metric: the validation loss (nats per character) of the final parameters on a fixed set of
evenly spaced windows of the held-out 10% of the corpus, the same for every run; every schedule
sees the same initialisation and batches for a given seed, so differences are paired per seed.

Runs go in order of priority (pilot, then linear/cosine/refined on the first three seeds, then
the variants, then further seeds) and each finished run is appended to the JSON file at once, so
an interrupted invocation resumes where it stopped (``--resume`` is implied when the JSON holds
runs of the same configuration). ``--render-only`` redraws the figure and rewrites the RESULTS.md
section from the JSON.

    nice -n 10 .venv/bin/python benchmarks/lm_refinement.py            # the benchmark
    .venv/bin/python benchmarks/lm_refinement.py --render-only         # tables and figure
    .venv/bin/python benchmarks/lm_refinement.py --quick --out /tmp/q  # smoke run (seconds)

``--quick`` trains a tiny model for 60 steps on two seeds and writes only under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:  # `python benchmarks/lm_refinement.py`: make `examples` importable
    sys.path.insert(0, ROOT)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import _common  # noqa: E402
import numpy as np  # noqa: E402

import optaxsched as oxs  # noqa: E402
from examples import train  # noqa: E402
from examples.config import TrainConfig  # noqa: E402

SECTION = "lm_refinement"
JSON = os.path.join(HERE, "figures", "lm_refinement.json")
FIGURE = os.path.join(HERE, "figures", "lm_refinement.png")

# 2000 steps of 16 x 32 characters (about 1M characters, a quarter of an epoch of the corpus),
# a 2-block transformer of width 64 (122k parameters): 4x the demo's 500 steps, small enough
# that 26 runs fit in an hour on two shared CPU cores. AdamW, peak 3e-3 (the demo's), the
# trainer's defaults otherwise (b2 0.95, weight decay 0.1, 5% warmup for linear and cosine).
CONFIG = TrainConfig(data="stdlib", model="transformer", d_model=64, layers=2, heads=4,
                     seq_len=32, batch_size=16, steps=2000, peak_lr=3e-3, eval_every=200,
                     eval_batches=32, record_grad_norms=True, progress=False, overwrite=True)
# `--quick`: the same pipeline on the trainer's MLP next-token model (it compiles in a fraction of
# the transformer's time; a smoke test of the runner, not a measurement).
QUICK = CONFIG.replace(model="mlp", d_model=16, layers=1, context=4, seq_len=16, batch_size=4,
                       steps=60, eval_every=30, eval_batches=2, corpus_bytes=200_000)
PILOT_SEED = 1000
SEEDS = (0, 1, 2, 3, 4)
QUICK_SEEDS = (0, 1)
BLOCKS = 200  # the per-step curves are kept as means over this many equal blocks of the run

# variant -> (trainer settings, where its norms come from: "pilot", "self" or None)
VARIANTS: dict[str, tuple[dict[str, Any], str | None]] = {
    "linear": (dict(schedule="linear"), None),
    "cosine": (dict(schedule="cosine"), None),
    "refined": (dict(schedule="refined", refine_kind="adam"), "pilot"),
    "refined_l2": (dict(schedule="refined", refine_kind="sgd"), "pilot"),
    "refined_self": (dict(schedule="refined", refine_kind="adam"), "self"),
    # `--lr-check`: the same at twice the peak (the refined schedule spends less learning rate
    # than linear decay at the same peak; is it just under-stepped?).
    "linear_2x": (dict(schedule="linear", peak_lr=2 * CONFIG.peak_lr), None),
    "refined_2x": (dict(schedule="refined", refine_kind="adam", peak_lr=2 * CONFIG.peak_lr),
                   "pilot"),
}
MAIN = ("linear", "cosine", "refined")
EXTRA = ("refined_l2", "refined_self")
LR_CHECK = ("linear_2x", "refined_2x")
ALL = (*MAIN, *EXTRA, *LR_CHECK)
# `--long-pilot N`: one more linear run of N steps on the pilot seed, for its norm profile only
# (does the profile settle at a longer horizon?).
LONG_PILOT = "pilot_long"
QUICK_VARIANTS = ("linear", "refined")

# (label, a, b): the paired differences a - b reported per seed and as mean ± SE.
PAIRS = (("refined − linear", "refined", "linear"),
         ("linear − cosine", "linear", "cosine"),
         ("refined − cosine", "refined", "cosine"),
         ("refined_l2 − linear", "refined_l2", "linear"),
         ("refined_self − linear", "refined_self", "linear"),
         ("refined_self − refined", "refined_self", "refined"),
         ("linear_2x − linear", "linear_2x", "linear"),
         ("refined_2x − linear", "refined_2x", "linear"),
         ("refined_2x − refined", "refined_2x", "refined"))


def plan(seeds: tuple[int, ...], variants: tuple[str, ...],
         long_pilot: bool = False) -> list[tuple[str, int]]:
    """The (variant, seed) runs in order of priority: the main comparison on the first three
    seeds, then the variants on them, then the LR check and the long pilot, then everything on
    the further seeds."""
    first, rest = seeds[:3], seeds[3:]
    order = [(v, s) for s in first for v in MAIN if v in variants]
    order += [(v, s) for s in first for v in EXTRA if v in variants]
    order += [(v, s) for s in first for v in LR_CHECK if v in variants]
    if long_pilot:
        order.append((LONG_PILOT, PILOT_SEED))
    order += [(v, s) for group in (MAIN, EXTRA, LR_CHECK) for s in rest for v in group
              if v in variants]
    return order


def run_name(variant: str, seed: int) -> str:
    return variant if variant in ("pilot", LONG_PILOT) else f"{variant}_s{seed}"


def _blocks(values: list[float], blocks: int) -> list[float]:
    """Means over ``blocks`` equal consecutive blocks (fewer when the run is shorter)."""
    arr = np.asarray(values, np.float64)
    parts = np.array_split(arr, min(blocks, arr.size))
    return [float(f"{p.mean():.6g}") for p in parts]


def _record(result: train.RunResult, variant: str, seed: int, wall: float,
            load: tuple[float, float]) -> dict[str, Any]:
    m = result.metrics
    return {
        "variant": variant, "seed": seed, "schedule": result.config.schedule,
        "refine_kind": result.config.refine_kind,
        "refined_from": os.path.basename(result.config.refine_from or "") or None,
        "warmup_steps": result.config.warmup_steps,
        "val_loss": result.summary["val_loss"], "train_loss": result.summary["train_loss"],
        "val_curve": [[r["step"] + 1, r["val_loss"]] for r in m if "val_loss" in r],
        "lr": _blocks([r["lr"] for r in m], BLOCKS),
        "loss": _blocks([r["loss"] for r in m], BLOCKS),
        "grad_norm_l1": _blocks([r["grad_norm_l1"] for r in m], BLOCKS),
        "grad_norm_l2": _blocks([r["grad_norm_l2"] for r in m], BLOCKS),
        "lr_peak_step": int(np.argmax([r["lr"] for r in m])),
        "parameters": result.summary["parameters"],
        "wall_s": round(wall, 1), "load_avg": [round(x, 2) for x in load],
    }


def _write_json(path: str, data: dict[str, Any]) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1)
    os.replace(tmp, path)


def _train(cfg: TrainConfig, workdir: str, name: str, data: dict[str, Any], path: str,
           variant: str, seed: int, log) -> None:
    load0 = os.getloadavg()[0]
    start = time.perf_counter()
    # Only the runs whose norms are refined later need a run directory (metrics.jsonl); the
    # others skip the trainer's files, plots and checkpoint.
    keep = variant in ("pilot", "linear")
    result = train.run(cfg.replace(out=os.path.join(workdir, name) if keep else None))
    wall = time.perf_counter() - start
    data["runs"][name] = _record(result, variant, seed, wall, (load0, os.getloadavg()[0]))
    _write_json(path, data)
    log(f"{name:18s} val {result.summary['val_loss']:.4f}  train "
        f"{result.summary['train_loss']:.4f}  {wall:.0f} s  (load {load0:.1f})")


def _has_norms(workdir: str, name: str, steps: int) -> bool:
    """Whether ``workdir/name`` holds a finished run (its norms can be refined)."""
    try:
        with open(os.path.join(workdir, name, "summary.json"), encoding="utf-8") as f:
            return json.load(f).get("steps_done") == steps
    except (OSError, ValueError):
        return False


def run_all(base: TrainConfig, seeds: tuple[int, ...], variants: tuple[str, ...],
            workdir: str, path: str, log=print, long_pilot: int | None = None
            ) -> dict[str, Any]:
    """Trains every planned run not yet in ``path`` (resuming), appending each to it."""
    config = base.to_dict()
    data: dict[str, Any] = {"config": config, "pilot_seed": PILOT_SEED, "runs": {}}
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            old = json.load(f)
        if old.get("config") == config and old.get("pilot_seed") == PILOT_SEED:
            data = old
            log(f"resuming: {len(data['runs'])} runs already in {path}")
    data["seeds"] = list(seeds)
    data["variants"] = list(variants)
    todo = [("pilot", PILOT_SEED)] + plan(seeds, variants, bool(long_pilot))
    for variant, seed in todo:
        name = run_name(variant, seed)
        if name in data["runs"]:
            continue
        if variant == LONG_PILOT:
            cfg = base.replace(seed=PILOT_SEED, schedule="linear", steps=long_pilot,
                               eval_every=max(1, long_pilot // 10))
            _train(cfg, workdir, LONG_PILOT, data, path, LONG_PILOT, PILOT_SEED, log)
            data["runs"][LONG_PILOT]["steps"] = long_pilot
            _write_json(path, data)
            continue
        changes, source = VARIANTS.get(variant, (dict(schedule="linear"), None))
        cfg = base.replace(seed=seed, **changes)
        if source is not None:
            src = "pilot" if source == "pilot" else run_name("linear", seed)
            if not _has_norms(workdir, src, base.steps):  # e.g. a new workdir: retrain it
                log(f"(re)training {src} for its gradient norms")
                src_seed = PILOT_SEED if src == "pilot" else seed
                _train(base.replace(seed=src_seed, schedule="linear"), workdir, src, data,
                       path, "pilot" if src == "pilot" else "linear", src_seed, log)
            cfg = cfg.replace(refine_from=os.path.join(workdir, src))
        _train(cfg, workdir, name, data, path, variant, seed, log)
    return data


# ------------------------------------------------------------------------------------------------
# Rendering.
# ------------------------------------------------------------------------------------------------


def _final(data: dict[str, Any], variant: str) -> dict[int, float]:
    return {r["seed"]: r["val_loss"] for r in data["runs"].values() if r["variant"] == variant}


def paired(data: dict[str, Any], a: str, b: str) -> tuple[float, float, int, int] | None:
    """Mean and standard error of the per-seed differences a − b of the final validation loss,
    the number of seeds, and on how many a is lower; ``None`` with fewer than 2 seeds."""
    fa, fb = _final(data, a), _final(data, b)
    common = sorted(set(fa) & set(fb))
    if len(common) < 2:
        return None
    d = np.array([fa[s] - fb[s] for s in common])
    return float(d.mean()), float(d.std(ddof=1) / math.sqrt(d.size)), d.size, int((d < 0).sum())


def _smoothed_profile(norms: list[float]) -> np.ndarray:
    return oxs.smooth_norms(np.asarray(norms, np.float64), 0.1)


def profile_rows(data: dict[str, Any]) -> list[str]:
    """The pilot's gradient-norm profile at fractions of the run, relative to mid-run."""
    if "pilot" not in data["runs"]:
        return []
    fracs = (0.02, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.97)
    lines = ["| norm, median-smoothed over 10% of the run (÷ its value at 50%) | "
             + " | ".join(f"{f:.0%}" for f in fracs) + " |",
             "|---|" + "---:|" * len(fracs)]
    steps = data["config"]["steps"]
    for name in ("pilot", LONG_PILOT):
        run = data["runs"].get(name)
        if run is None:
            continue
        for key in ("grad_norm_l1", "grad_norm_l2"):
            prof = _smoothed_profile(run[key])
            mid = prof[int(0.5 * (prof.size - 1))]
            cells = [f"{prof[int(f * (prof.size - 1))] / mid:.2f}" for f in fracs]
            lines.append(f"| {name} ({run.get('steps', steps)} steps), ℓ{key[-1]} | "
                         + " | ".join(cells) + " |")
    return lines


def settle_numbers(run: dict[str, Any]) -> dict[str, float]:
    """How much a run's smoothed ℓ1 norm still moves: relative change 25% → 50% and 50% → 90%
    of the run (0 for a profile that has settled)."""
    prof = _smoothed_profile(run["grad_norm_l1"])
    at = {f: prof[int(f * (prof.size - 1))] for f in (0.25, 0.5, 0.9)}
    return {"25_50": at[0.5] / at[0.25] - 1.0, "50_90": at[0.9] / at[0.5] - 1.0}


def render(data: dict[str, Any], figure: str | None, command: str | None = None) -> str:
    """The Markdown section (tables and reading aids) of the runs in ``data``."""
    cfg = TrainConfig.from_dict(data["config"])
    runs = data["runs"]
    variants = [v for v in ALL if _final(data, v)]
    seeds = sorted({r["seed"] for r in runs.values() if r["variant"] in ALL})
    params = next(iter(runs.values()))["parameters"] if runs else 0
    loads = [x for r in runs.values() for x in r["load_avg"]]
    walls = [r["wall_s"] for r in runs.values()]
    out = [_common.header("Refinement on the language model (issue 14): linear vs refined vs "
                          "cosine at 2000 steps" if cfg.steps == 2000 else
                          f"Refinement on the language model (issue 14): {cfg.steps} steps",
                          command=command),
           f"Model and data: the example trainer's character-level transformer ({params:,} "
           f"parameters: d_model {cfg.d_model}, {cfg.layers} blocks, {cfg.heads} heads) on the "
           f"installed Python standard library's source; AdamW (b1 {cfg.b1}, b2 {cfg.b2}, "
           f"weight decay {cfg.weight_decay if cfg.weight_decay is not None else 0.1}), peak "
           f"LR {cfg.peak_lr:g} for every schedule (the demo's; not tuned per schedule), "
           f"{cfg.steps} steps of {cfg.batch_size} × {cfg.seq_len} characters; linear and "
           f"cosine warm up over 5% of the run, the refined schedules have no warmup of their "
           f"own but the one their shape makes. Norms: `oxs.record_grad_norms` first in the "
           f"chain (raw gradients). Pilot: linear decay on seed {data['pilot_seed']} (not an "
           f"evaluation seed). Evaluation seeds {', '.join(map(str, seeds))} (a seed fixes the "
           f"initialisation and the data order; all schedules share them). Metric: validation "
           f"loss (nats/character) of the final parameters on {cfg.eval_batches * cfg.batch_size}"
           f" fixed windows of the held-out 10% of the corpus. Seconds per run: "
           f"{min(walls, default=0):.0f}–{max(walls, default=0):.0f} (load average "
           f"{min(loads, default=0):.1f}–{max(loads, default=0):.1f} on 2 cores shared with "
           f"other jobs).",
           "",
           "- `refined`: `oxs.refined_schedule(pilot ℓ1 norms, peak, kind=\"adam\")` "
           "(w = 1/‖g‖₁), the pairing the library documents for Adam;",
           "- `refined_l2`: the pilot's ℓ2 norms with `kind=\"sgd\"` (w = 1/‖g‖₂²): what "
           "`oxs.refine`'s former default `kind` gave an Adam user who passed the ℓ2 history;",
           "- `refined_self`: `kind=\"adam\"` from the same seed's own `linear` run;",
           f"- `linear_2x`, `refined_2x`: `linear` and `refined` at twice the peak "
           f"({2 * cfg.peak_lr:g}).",
           "",
           "### Final validation loss per seed", ""]
    head = "| seed | " + " | ".join(variants) + " |"
    out += [head, "|---:|" + "---:|" * len(variants)]
    for s in seeds:
        cells = [f"{_final(data, v)[s]:.4f}" if s in _final(data, v) else "—" for v in variants]
        out.append(f"| {s} | " + " | ".join(cells) + " |")
    means = []
    for v in variants:
        vals = list(_final(data, v).values())
        se = np.std(vals, ddof=1) / math.sqrt(len(vals)) if len(vals) > 1 else float("nan")
        means.append(f"{np.mean(vals):.4f} ± {se:.4f}")
    out.append("| mean ± SE | " + " | ".join(means) + " |")
    if "pilot" in runs:
        out += ["", f"Pilot (linear, seed {data['pilot_seed']}): final validation loss "
                    f"{runs['pilot']['val_loss']:.4f}."]
    out += ["", "### Paired differences of the final validation loss (a − b; negative: a is "
                "better)", "",
            "| a − b | seeds | mean ± SE | a lower on | per seed |", "|---|---:|---:|---:|---|"]
    for label, a, b in PAIRS:
        res = paired(data, a, b)
        if res is None:
            continue
        mean, se, n, lower = res
        fa, fb = _final(data, a), _final(data, b)
        per = ", ".join(f"{fa[s] - fb[s]:+.4f}" for s in sorted(set(fa) & set(fb)))
        star = " **" if abs(mean) > 2 * se else ""
        out.append(f"| {label} | {n} | {mean:+.4f} ± {se:.4f}{star} | {lower}/{n} | {per} |")
    out += ["", "** marks |mean| > 2 SE.", ""]
    prof = profile_rows(data)
    if prof:
        out += ["### The pilot's gradient-norm profile and the refined schedules", ""] + prof
        moves = []
        for name in ("pilot", LONG_PILOT):
            if name in runs:
                m = settle_numbers(runs[name])
                moves.append(f"{name} ({runs[name].get('steps', cfg.steps)} steps) "
                             f"{m['25_50']:+.0%} from 25% to 50% of the run and "
                             f"{m['50_90']:+.0%} from 50% to 90%")
        out += ["", "Smoothed ℓ1 gradient norm: " + "; ".join(moves) + "."]
        peaks = {v: [r["lr_peak_step"] / cfg.steps for r in runs.values() if r["variant"] == v]
                 for v in ("linear", "cosine", "refined", "refined_l2", "refined_self")}
        pk = ", ".join(f"{v} {min(p):.0%}" + (f"–{max(p):.0%}" if f"{max(p):.0%}" !=
                                               f"{min(p):.0%}" else "")
                       for v, p in peaks.items() if p)
        out += ["", f"Where the learning rate peaks (fraction of the run): {pk}."]
        shapes = _schedule_shapes(data, cfg)
        if shapes:
            out += ["", "| schedule (÷ peak) | " + " | ".join(f"{f:.0%}" for f in SHAPE_AT)
                    + " |", "|---|" + "---:|" * len(SHAPE_AT)]
            out += shapes
    norms = norm_by_schedule(data)
    if norms:
        out += ["", "The ℓ1 gradient norm under each schedule (mean over its evaluation seeds "
                    "of the mean over a window of the run; the refinement assumes it does not "
                    "depend on the schedule):", "",
                "| schedule | " + " | ".join(f"{a:.0%}–{b:.0%}" for a, b in NORM_WINDOWS)
                + " |", "|---|" + "---:|" * len(NORM_WINDOWS)] + norms
    if figure:
        rel = os.path.relpath(figure, HERE)
        out += ["", f"![refined schedules, gradient norms, validation loss]({rel})"]
    return "\n".join(out) + "\n"


SHAPE_AT = (0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95)
NORM_WINDOWS = ((0.0, 0.05), (0.05, 0.1), (0.2, 0.3), (0.45, 0.55), (0.7, 0.8), (0.9, 1.0))


def norm_by_schedule(data: dict[str, Any]) -> list[str]:
    """Rows: each schedule's block-mean ℓ1 gradient norm over windows of the run."""
    rows = []
    for v in ALL:
        runs = [np.asarray(r["grad_norm_l1"]) for r in data["runs"].values()
                if r["variant"] == v]
        if not runs:
            continue
        cells = []
        for a, b in NORM_WINDOWS:
            vals = [r[int(a * r.size):max(int(a * r.size) + 1, int(b * r.size))].mean()
                    for r in runs]
            cells.append(f"{np.mean(vals):.0f}")
        rows.append(f"| {v} | " + " | ".join(cells) + " |")
    return rows


def _schedule_shapes(data: dict[str, Any], cfg: TrainConfig) -> list[str]:
    """Each schedule's learning rate (÷ peak) at fractions of the run, from the first seed."""
    rows = []
    for v in ("linear", "cosine", "refined", "refined_l2", "refined_self"):
        run = next((r for r in data["runs"].values() if r["variant"] == v), None)
        if run is None:
            continue
        lr = np.asarray(run["lr"]) / cfg.peak_lr
        cells = [f"{lr[min(lr.size - 1, int(f * lr.size))]:.2f}" for f in SHAPE_AT]
        rows.append(f"| {v} (seed {run['seed']}) | " + " | ".join(cells) + " |")
    return rows


COLORS = {"linear": "C0", "cosine": "C1", "refined": "C2", "refined_l2": "C3",
          "refined_self": "C4", "linear_2x": "C5", "refined_2x": "C6", "pilot": "k",
          LONG_PILOT: "0.4"}


def plot(data: dict[str, Any], path: str) -> None:
    """Three panels: the schedules, the gradient norms, the validation loss (mean over seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cfg = TrainConfig.from_dict(data["config"])
    runs = data["runs"]
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6))
    ax = axes[0]
    drawn: set[str] = set()
    for r in runs.values():
        v = r["variant"]
        if v not in ALL:
            continue
        x = (np.arange(len(r["lr"])) + 0.5) * cfg.steps / len(r["lr"])
        ax.plot(x, r["lr"], color=COLORS[v], lw=1.4 if v not in drawn else 0.7,
                alpha=1.0 if v not in drawn else 0.5, label=v if v not in drawn else None)
        drawn.add(v)
    ax.set(title="learning rate (refined_self: one line per seed)", xlabel="step", ylabel="lr")
    ax.legend(fontsize=8)
    ax = axes[1]
    for r in runs.values():
        v = r["variant"]
        if v not in ("pilot", LONG_PILOT, "linear", "cosine", "refined"):
            continue
        n = len(r["grad_norm_l1"])
        x = (np.arange(n) + 0.5) * r.get("steps", cfg.steps) / n
        pilot = v in ("pilot", LONG_PILOT)
        style = dict(color=COLORS[v], lw=1.6 if pilot else 0.6, alpha=1.0 if pilot else 0.5)
        ax.plot(x, r["grad_norm_l1"], **style,
                label=f"{v} ℓ1" if f"{v}1" not in drawn else None)
        drawn.add(f"{v}1")
    ax.set(title="gradient ℓ1 norm (block means; thin: evaluation seeds)", xlabel="step",
           ylabel="‖g‖₁",
           yscale="log")
    ax2 = ax.twinx()
    if "pilot" in runs:
        p = runs["pilot"]["grad_norm_l2"]
        x = (np.arange(len(p)) + 0.5) * cfg.steps / len(p)
        ax2.plot(x, p, color="0.5", ls="--", lw=1.0, label="pilot ℓ2 (right axis)")
        ax2.set_yscale("log")
        ax2.legend(fontsize=8, loc="upper center")
    ax.legend(fontsize=8)
    ax = axes[2]
    for v in ALL:
        curves = [np.asarray(r["val_curve"]) for r in runs.values() if r["variant"] == v]
        if not curves:
            continue
        n = min(len(c) for c in curves)
        mean = np.mean([c[:n, 1] for c in curves], axis=0)
        ax.plot(curves[0][:n, 0], mean, marker="o", ms=3, color=COLORS[v], label=v)
    finals = [r["val_loss"] for r in runs.values() if r["variant"] in ALL]
    if finals:
        lo, hi = min(finals), max(finals)
        ax.set_ylim(lo - 0.05, hi + 0.6)
    ax.set(title="validation loss (mean over seeds)", xlabel="step", ylabel="nats/char")
    ax.legend(fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ------------------------------------------------------------------------------------------------
# Command line.
# ------------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    """Runs (or resumes) the benchmark, then renders it; returns 0."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="tiny model, 60 steps, 2 seeds; writes only under --out")
    parser.add_argument("--out", default=None,
                        help="with --quick: where the JSON, figure and results.md go")
    parser.add_argument("--seeds", type=int, default=None,
                        help=f"number of evaluation seeds (default {len(SEEDS)})")
    parser.add_argument("--steps", type=int, default=None, help="steps per run")
    parser.add_argument("--workdir", default=None,
                        help="where the trainer's run directories go (default: a folder in the "
                             "system's temporary directory)")
    parser.add_argument("--json", default=None, help=f"results file (default {JSON})")
    parser.add_argument("--lr-check", action="store_true",
                        help="also linear and refined at twice the peak LR on the first 3 seeds")
    parser.add_argument("--long-pilot", type=int, default=None, metavar="STEPS",
                        help="also a linear run of STEPS steps on the pilot seed (its gradient-"
                             "norm profile only)")
    parser.add_argument("--render-only", action="store_true",
                        help="only redraw the figure and the RESULTS.md section from the JSON")
    args = parser.parse_args(argv)
    if args.quick and not args.out:
        parser.error("argument --out: required with --quick (the quick run writes only there)")
    base = QUICK if args.quick else CONFIG
    if args.steps is not None:
        base = base.replace(steps=args.steps, eval_every=max(1, args.steps // 10))
    seeds = QUICK_SEEDS if args.quick else SEEDS
    if args.seeds is not None:
        seeds = tuple(range(args.seeds))
    variants = QUICK_VARIANTS if args.quick else (*MAIN, *EXTRA)
    if args.lr_check:
        variants = (*variants, *LR_CHECK)
    if args.quick:
        path = args.json or os.path.join(args.out, "lm_refinement.json")
        figure = os.path.join(args.out, "lm_refinement.png")
        workdir = args.workdir or os.path.join(args.out, "runs")
    else:
        path = args.json or JSON
        figure = FIGURE
        workdir = args.workdir or os.path.join(tempfile.gettempdir(),
                                               "optaxsched_lm_refinement")
    if args.render_only:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    else:
        start = time.perf_counter()
        data = run_all(base, seeds, variants, workdir, path,
                       log=lambda s: print(s, flush=True), long_pilot=args.long_pilot)
        print(f"all runs done in {time.perf_counter() - start:.0f} s", flush=True)
    plot(data, figure)
    # The command that makes the section (it resumes; `--render-only` redraws it).
    command = (".venv/bin/python benchmarks/lm_refinement.py --lr-check --long-pilot 4000"
               if not args.quick else None)
    text = render(data, figure, command=command)
    if args.quick:
        with open(os.path.join(args.out, "results.md"), "w", encoding="utf-8") as f:
            f.write(text)
    else:
        _common.write_section(SECTION, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
