"""The forecast planner validated over seeds, and AutoLRS against cosine and WSD over seeds.

    .venv/bin/python benchmarks/planner_validation.py planner   # part A (any number of processes)
    .venv/bin/python benchmarks/planner_validation.py autolrs   # part B (likewise)
    .venv/bin/python benchmarks/planner_validation.py render    # RESULTS.md sections and figures
    ... planner --size small --seeds 0,1 --fit-seeds 0,1        # what RESULTS.md reports
    .venv/bin/python benchmarks/planner_validation.py all --quick --work-dir /tmp/q   # smoke run

Both parts train the example trainer's transformer: by default at the demo's size and budget
(``examples.demo.DEMO``: 0.44M parameters, d_model 128, 2 blocks, 500 AdamW steps of 32 x 64
characters, peak 3e-3, warmup 25), with ``--size small`` at the LR sweep's
(``examples.sweep.SWEEP``: 114k parameters, 600 steps of 16 x 32 characters, peak 3e-3, warmup
30); the validation loss is evaluated every 20 steps on fixed windows; seed ``s`` sets the
initialisation and the data order. It is not one of ``make bench``'s ``*_suite.py``: a full run
is hours of CPU.

**A. Planner validation.** Every schedule below is trained on every seed by
``examples.train.run``: ``constant``, ``cosine``, ``linear``, ``wsd_1-sqrt_0.2`` (the default
WSD), ``wsd_linear_0.1`` (a short linear cooldown), ``infinite`` (the trainer's infinite
schedule: cosine cooldown to a plateau, then a geometric anneal), and the schedule(s)
``oxs.plan_wsd`` picks. The annealing law (``oxs.fit_annealing_law``, λ chosen on the grid
:data:`LAM_GRID` by the fit criterion) is fitted on the **seed-mean** validation curves of
``constant`` + ``cosine`` (fit 1) and of ``constant`` + ``cosine`` + ``wsd_linear_0.1`` (fit 2,
whose short cooldown pins λ); each fit predicts every schedule's final loss and ``oxs.plan_wsd``
picks a WSD shape and fraction under it. The plan is made once, from the ``--fit-seeds``' runs
of the fits' inputs, and kept in ``plans.json``; the picks are then trained on every seed. The
same fits are also made per seed (seed s's runs only) as a check.

**B. AutoLRS** (``examples.autolrs_run.run_autolrs``, the paper's k = 10 candidates and
τ' = τ/10, trials counted in the budget) with sequential and with vmapped trials, on the
``--autolrs-seeds``, searching ``[3e-4, 3e-2]`` (a decade either side of 3e-3); the baselines
are part A's cosine and default-WSD runs of the same seeds (same model, initialisation, data
order, budget and validation windows) at peak 3e-3.

Every run is kept as its own JSON file (``benchmarks/figures/planner_suite[_small]/seed<s>/
<schedule>.json``, ``benchmarks/figures/autolrs_<size>/seed<s>/<mode>.json``) as soon as it
ends; processes share the list of runs through claim files, so several can train at once, an
interrupted sweep resumes where it stopped, and ``render`` reports what is there. ``--quick``: a
tiny model and budget, everything under ``--work-dir`` (RESULTS.md untouched).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from typing import Any

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:  # `examples` is imported as a package from the repository root.
    sys.path.insert(0, ROOT)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from _common import FIGURES, header, markdown_table, write_section  # noqa: E402

import optaxsched as oxs  # noqa: E402

# λ candidates of the fits (the profile search of ``oxs.fit_annealing_law``).
LAM_GRID = (0.95, 0.98, 0.99, 0.995, 0.998, 0.999)
SEEDS = (0, 1, 2)
AUTOLRS_SEEDS = (0, 1)
AUTOLRS_RANGE = (3e-4, 3e-2)
DEFAULT_WSD = "wsd_1-sqrt_0.2"
SHORT = "wsd_linear_0.1"
FIT_SETS = {"fit 1: constant + cosine": ("constant", "cosine"),
            "fit 2: + short cooldown": ("constant", "cosine", SHORT)}
# Trained before the fits (fit inputs and the default WSD), then after them (with the picks).
PHASE1 = ("constant", "cosine", SHORT, DEFAULT_WSD)
PHASE2 = ("linear", "infinite")
# Set by main() from --size: file and section suffix, the flag to repeat, the config's origin.
SUFFIX, SIZE_FLAG = "", ""
SCRIPT = ".venv/bin/python benchmarks/planner_validation.py"
CONFIG_NOTES = {
    "demo": "The demo's configuration (`examples.demo.DEMO`, 0.44M parameters).",
    "small": "The LR sweep's configuration (`examples.sweep.SWEEP`, 114k parameters: a quarter "
             "of the demo's width, half its sequence length and batch; 600 steps), peak 3e-3.",
}
CONFIG_NOTE = CONFIG_NOTES["demo"]
LABELS = {"sequential": "AutoLRS sequential", "parallel": "AutoLRS vmapped", "wsd": "WSD"}
FIXED = {
    "constant": dict(schedule="constant"),
    "cosine": dict(schedule="cosine"),
    "linear": dict(schedule="linear"),
    "infinite": dict(schedule="infinite"),
}


def wsd_name(shape: str, fraction: float) -> str:
    return f"wsd_{shape}_{fraction:g}"


def settings_of(name: str) -> dict[str, Any]:
    """The trainer flags of a schedule name (``wsd_<shape>_<fraction>`` or a fixed one)."""
    if name in FIXED:
        return dict(FIXED[name])
    _, shape, fraction = name.split("_")
    return dict(schedule="wsd", decay_shape=shape, decay_fraction=float(fraction))


def base_config(quick: bool, size: str = "demo"):
    """The runs' configuration: the demo's (``examples.demo.DEMO``) or, with ``size='small'``,
    the LR sweep's smaller transformer (``examples.sweep.SWEEP``: d_model 64, 114k parameters,
    600 steps of 16 x 32 characters), evaluated every 20 steps, peak 3e-3."""
    from examples.demo import DEMO
    from examples.sweep import SWEEP

    cfg = (DEMO if size == "demo" else SWEEP.replace(peak_lr=3e-3)).replace(
        eval_every=20, progress=False, overwrite=True)
    if quick:
        cfg = cfg.replace(d_model=16, layers=1, heads=2, seq_len=16, batch_size=8, steps=60,
                          warmup_steps=3, eval_every=10, eval_batches=1, corpus_bytes=200_000)
    return cfg


# ------------------------------------------------------------------------------------------------
# Results files: written after every run.
# ------------------------------------------------------------------------------------------------


def _load(path: str, config: dict) -> dict:
    if os.path.exists(path):
        with open(path, encoding="utf-8") as handle:
            state = json.load(handle)
        if state.get("config") != config:
            raise SystemExit(f"{path} holds runs of another configuration; move it away first")
        return state
    return {"config": config, "runs": {}}


def _save(path: str, state: dict) -> None:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(state, handle, indent=0)
    os.replace(tmp, path)


def _r(values, digits: int = 6) -> list[float]:
    return [float(f"{float(v):.{digits}g}") for v in values]


# ------------------------------------------------------------------------------------------------
# Part A: the planner.
# ------------------------------------------------------------------------------------------------


def train_one(base, seed: int, name: str, work_dir: str) -> dict[str, Any]:
    """One trainer run; its validation curve, learning rates and training losses."""
    from examples import train

    out = os.path.join(work_dir, f"runs{SUFFIX}", f"seed{seed}", name)
    load = os.getloadavg()[0]
    result = train.run(base.replace(seed=seed, out=out, **settings_of(name)))
    curve = oxs.load_loss_curve(out, loss_key="val_loss")
    return {"name": name, "seed": seed, "val_loss": float(result.summary["val_loss"]),
            "val_steps": [int(s) for s in curve.steps], "val_losses": _r(curve.losses),
            "lrs": _r(curve.lrs),
            "train_loss": _r([m["loss"] for m in result.metrics if "loss" in m], 5),
            "wall_s": float(result.summary["wall_s"] + result.summary["compile_s"]),
            "load_1min": load}


def _claim(folder: str, key: str) -> bool:
    """Claims a run for this process (several processes share the list of runs): False when a
    live process holds it."""
    claims = os.path.join(folder, "claims")
    os.makedirs(claims, exist_ok=True)
    path = os.path.join(claims, key.replace("/", "_"))
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                with open(path, encoding="utf-8") as handle:
                    pid = int(handle.read().strip() or 0)
                os.kill(pid, 0)
                return False  # its process is alive
            except (ProcessLookupError, ValueError):
                os.remove(path)  # a stale claim of a process that died
                continue
            except FileNotFoundError:
                continue
        with os.fdopen(fd, "w") as handle:
            handle.write(str(os.getpid()))
        return True
    return False


def _release(folder: str, key: str) -> None:
    try:
        os.remove(os.path.join(folder, "claims", key.replace("/", "_")))
    except FileNotFoundError:
        pass


def _record_path(folder: str, key: str) -> str:
    return os.path.join(folder, key + ".json")  # key: seed<s>/<name>


def _work_through(folder: str, config: dict, keys: list[str], train, done_runs, log,
                  needed: list[str] | None = None) -> None:
    """Trains the keys not yet done, in order, sharing the list with the other processes
    (claims). Returns once every key in ``needed`` (default: all) is done and no other key is
    left to claim, waiting meanwhile for the ones other processes hold."""
    needed = keys if needed is None else needed
    waiting = False
    while True:
        done = done_runs()
        todo = [k for k in keys if k not in done]
        if all(k in done for k in needed) and not any(_claimable(folder, k) for k in todo):
            return
        for key in todo:
            if _claim(folder, key):
                try:
                    record = train(key)
                    _save(_record_path(folder, key), {"config": config, "record": record})
                finally:
                    _release(folder, key)
                log(f"{key}: val {record['val_loss']:.4f} ({record['wall_s']:.0f} s, load "
                    f"{record['load_1min']:.1f})")
                waiting = False
                break
        else:
            if not waiting:
                log(f"waiting for {', '.join(todo)} (other processes)")
                waiting = True
            time.sleep(20)


def _claimable(folder: str, key: str) -> bool:
    path = os.path.join(folder, "claims", key.replace("/", "_"))
    try:
        with open(path, encoding="utf-8") as handle:
            os.kill(int(handle.read().strip() or 0), 0)
        return False
    except (FileNotFoundError, ProcessLookupError, ValueError):
        return True


def _curve(records: list[dict]) -> dict[str, Any]:
    """The seed-mean validation curve of one schedule (same LRs and eval steps on every seed)."""
    return {"lrs": np.asarray(records[0]["lrs"]), "steps": np.asarray(records[0]["val_steps"]),
            "losses": np.mean([r["val_losses"] for r in records], axis=0),
            "name": records[0]["name"]}


def _fit(state: dict, names, seeds, warmup: int):
    runs = []
    for name in names:
        records = [state["runs"][f"seed{s}/{name}"] for s in seeds]
        runs.append(_curve(records))
    return oxs.fit_annealing_law(runs, lam=LAM_GRID, warmup_steps=warmup)


def plan(state: dict, base, seeds) -> dict[str, Any]:
    """The fits on the seed mean and ``oxs.plan_wsd``'s pick under each."""
    plans = {}
    for label, names in FIT_SETS.items():
        try:
            law = _fit(state, names, seeds, base.warmup_steps)
        except ValueError as err:  # reported, not hidden: the fit found no valid law
            plans[label] = {"law": None, "pick": None, "failed": str(err)}
            continue
        ranking = oxs.plan_wsd(law, base.peak_lr, base.steps, warmup_steps=base.warmup_steps)
        top = ranking[0].settings
        plans[label] = {"law": law.to_dict(),
                        "pick": wsd_name(top["decay_shape"], top["decay_fraction"]),
                        "top5": [[e.name, e.final_loss] for e in ranking[:5]]}
    return {"seeds": list(seeds), "fits": plans}


def merged_state(folder: str, config: dict, seeds=None) -> dict:
    """Every seed's runs (one JSON file per seed, each written by one process) and the plans."""
    runs: dict[str, Any] = {}
    found = []
    for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        if not name.startswith("seed"):
            continue
        path = os.path.join(folder, name)
        if name.endswith(".json"):  # a whole seed's runs, written by one process
            batch = _load(path, config)["runs"]
        elif os.path.isdir(path):  # one file per run
            batch = {}
            for run in sorted(os.listdir(path)):
                if run.endswith(".json"):
                    batch[f"{name}/{run[:-5]}"] = _load(os.path.join(path, run), config)[
                        "record"]
        else:
            continue
        seed = int(name[4:].split(".")[0])
        if batch and (seeds is None or seed in seeds):
            runs.update(batch)
            found.append(seed)
    state = {"config": config, "runs": runs, "seeds": sorted(set(found))}
    plans_path = os.path.join(folder, "plans.json")
    if os.path.exists(plans_path):
        with open(plans_path, encoding="utf-8") as handle:
            state["plans"] = json.load(handle)["fits"]
    return state


def _shared_plan(folder: str, base, fit_seeds, log) -> dict:
    """The plan, made once from every fit seed's phase-1 runs (the processes of the other seeds
    may still be training them: wait), and kept in ``plans.json`` (the first writer wins)."""
    path = os.path.join(folder, "plans.json")
    waited = False
    while not os.path.exists(path):
        state = merged_state(folder, base.to_dict(), fit_seeds)
        missing = [f"seed{s}/{n}" for s in fit_seeds for n in PHASE1
                   if n != DEFAULT_WSD and f"seed{s}/{n}" not in state["runs"]]
        if not missing:
            plans = plan(state, base, fit_seeds)
            tmp = f"{path}.{os.getpid()}.tmp"
            with open(tmp, "w", encoding="utf-8") as handle:
                json.dump(plans, handle, indent=1)
            try:
                os.link(tmp, path)  # atomic, and fails if another process wrote it first
            except FileExistsError:
                pass
            os.remove(tmp)
            break
        if not waited:
            log(f"waiting for {', '.join(missing)}")
            waited = True
        time.sleep(20)
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)["fits"]


def run_planner(args, log=print) -> dict:
    """Part A; any number of processes may run it at once (they share the runs by claims)."""
    base = base_config(args.quick, args.size)
    folder, config = args.planner_dir, base.to_dict()

    def train(key):
        seed, name = key.split("/")
        return train_one(base, int(seed[4:]), name, args.work_dir)

    def done():
        return merged_state(folder, config)["runs"]

    # Schedule-major: the fits' inputs on every seed first; the schedules that do not depend on
    # the plan keep the processes busy while the others finish them (the plan needs only the
    # fits' inputs); the picks come as soon as the plan is made.
    inputs = [n for n in PHASE1 if n != DEFAULT_WSD]
    first = [f"seed{s}/{n}" for n in (*inputs, DEFAULT_WSD, *PHASE2) for s in args.seeds]
    # The plan waits for the fit seeds' inputs only (they may be other seeds than this run's).
    needed = [f"seed{s}/{n}" for n in inputs for s in args.fit_seeds]
    _work_through(folder, config, first, train, done, log, needed=needed)
    plans = _shared_plan(folder, base, args.fit_seeds, log)
    picks = list(dict.fromkeys(p["pick"] for p in plans.values() if p["pick"]))
    log(f"plan_wsd picks: {picks}")
    then = [f"seed{s}/{n}" for n in [*picks, DEFAULT_WSD, *PHASE2] for s in args.seeds]
    _work_through(folder, config, then, train, done, log)
    return merged_state(folder, config)


def spearman(a, b) -> float:
    """Spearman's rank correlation (average ranks for ties)."""
    def ranks(x):
        x = np.asarray(x, float)
        order = np.argsort(x, kind="stable")
        r = np.empty(len(x))
        r[order] = np.arange(len(x), dtype=float)
        for v in np.unique(x):  # ties share their mean rank
            r[x == v] = r[x == v].mean()
        return r

    ra, rb = ranks(a), ranks(b)
    if np.std(ra) == 0 or np.std(rb) == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def _law(params: dict):
    return oxs.AnnealingLaw.from_dict(params)


def analyse(state: dict) -> dict[str, Any]:
    """Per fit: predicted vs observed final losses, Spearman, MAPE, the pick against default WSD."""
    base_cfg = state["config"]
    warmup = base_cfg["warmup_steps"]
    runs = state["runs"]
    seeds = [s for s in state.get("seeds", SEEDS)]
    names = sorted({r["name"] for r in runs.values()})
    complete = [n for n in names if all(f"seed{s}/{n}" in runs for s in seeds)]
    observed = {n: np.array([runs[f"seed{s}/{n}"]["val_loss"] for s in seeds]) for n in complete}
    out: dict[str, Any] = {"seeds": seeds, "schedules": complete, "observed": {
        n: {"mean": float(v.mean()), "se": float(v.std(ddof=1) / math.sqrt(len(v)))
            if len(v) > 1 else float("nan"), "per_seed": v.tolist()}
        for n, v in observed.items()}, "fits": {}}
    plans = state.get("plans", {})
    for label, fit_names in FIT_SETS.items():
        if not all(n in complete for n in fit_names):
            continue
        try:
            law = _fit(state, fit_names, seeds, warmup)
        except ValueError as err:
            out["fits"][label] = {"failed": str(err)}
            continue
        pred = {n: float(law.predict(np.asarray(runs[f"seed{seeds[0]}/{n}"]["lrs"]))[-1])
                for n in complete}
        err = {n: pred[n] / observed[n].mean() - 1 for n in complete}
        held = [n for n in complete if n not in fit_names]
        entry = {"fitted": list(fit_names), "lam": law.lam, "L0": law.L0, "A": law.A,
                 "alpha": law.alpha, "C": law.C, "fit_mape": law.fit_mape,
                 "predicted": pred, "error": err,
                 "spearman": spearman([pred[n] for n in complete],
                                      [observed[n].mean() for n in complete]),
                 "spearman_held_out": spearman([pred[n] for n in held],
                                               [observed[n].mean() for n in held])
                 if len(held) > 2 else float("nan"),
                 "mape_all": float(np.mean([abs(err[n]) for n in complete])),
                 "mape_held_out": float(np.mean([abs(err[n]) for n in held])) if held else None,
                 "max_error": max(complete, key=lambda n: abs(err[n]))}
        pick = plans.get(label, {}).get("pick")
        entry["pick"] = pick
        if pick in observed and DEFAULT_WSD in observed:
            diff = observed[pick] / observed[DEFAULT_WSD] - 1  # paired, per seed
            entry["pick_vs_wsd"] = {
                "per_seed": diff.tolist(), "mean": float(diff.mean()),
                "se": float(diff.std(ddof=1) / math.sqrt(len(diff))) if len(diff) > 1 else None,
                "predicted": pred[pick] / pred[DEFAULT_WSD] - 1}
        # The same fit on each seed alone, predicting that seed's runs.
        per_seed = []
        for s in seeds:
            try:
                law_s = _fit(state, fit_names, [s], warmup)
            except ValueError as err:
                per_seed.append({"seed": s, "failed": str(err)})
                continue
            p = [float(law_s.predict(np.asarray(runs[f"seed{s}/{n}"]["lrs"]))[-1])
                 for n in complete]
            o = [runs[f"seed{s}/{n}"]["val_loss"] for n in complete]
            e = [pi / oi - 1 for pi, oi in zip(p, o, strict=True)]
            row = {"seed": s, "lam": law_s.lam, "spearman": spearman(p, o),
                   "mape_all": float(np.mean(np.abs(e))), "max_abs": float(np.max(np.abs(e)))}
            if pick in complete:
                i, j = complete.index(pick), complete.index(DEFAULT_WSD)
                row["pick_vs_wsd_predicted"] = p[i] / p[j] - 1
                law_pick = oxs.plan_wsd(law_s, base_cfg["peak_lr"], base_cfg["steps"],
                                        warmup_steps=warmup)[0]
                row["own_pick"] = wsd_name(law_pick.settings["decay_shape"],
                                           law_pick.settings["decay_fraction"])
            per_seed.append(row)
        entry["per_seed"] = per_seed
        out["fits"][label] = entry
    return out


# ------------------------------------------------------------------------------------------------
# Part B: AutoLRS.
# ------------------------------------------------------------------------------------------------


def _autolrs_state(folder: str, config: dict) -> dict:
    """Every AutoLRS run: one file per run in ``folder`` (and the single file of a whole sweep
    written by one process, ``folder + '.json'``, if there is one)."""
    runs: dict[str, Any] = {}
    if os.path.exists(folder + ".json"):
        runs.update(_load(folder + ".json", config)["runs"])
    for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        path = os.path.join(folder, name)
        if os.path.isdir(path) and name.startswith("seed"):
            for run in sorted(os.listdir(path)):
                if run.endswith(".json"):
                    runs[f"{name}/{run[:-5]}"] = _load(os.path.join(path, run), config)["record"]
    return {"config": config, "runs": runs}


def run_autolrs_part(args, log=print) -> dict:
    """Part B; any number of processes may run it at once (they share the runs by claims)."""
    from examples import autolrs_run
    from examples import sweep as sweep_lib

    base = base_config(args.quick, args.size)
    folder, config = args.autolrs_dir, base.to_dict()

    def train(key):
        seed, mode = key.split("/")
        seed = int(seed[4:])
        setup = sweep_lib.Setup(base.replace(seed=seed, schedule="constant"))
        settings = autolrs_run.AutoLRSSettings(
            min_lr=AUTOLRS_RANGE[0], max_lr=AUTOLRS_RANGE[1], parallel=mode == "parallel")
        if args.quick:
            settings = autolrs_run.AutoLRSSettings(
                min_lr=AUTOLRS_RANGE[0], max_lr=AUTOLRS_RANGE[1], candidates=3,
                first_stage=30, max_stage=30, parallel=mode == "parallel")
        load = os.getloadavg()[0]
        result = autolrs_run.run_autolrs(setup, settings, log=log)
        return {"seed": seed, "mode": mode, "val_loss": result.val_loss,
                "lr": _r(result.lr), "loss": _r(result.loss, 5), "stages": result.stages,
                "budget": result.budget, "trial_steps": result.trial_steps,
                "kept_steps": len(result.lr), "wall_s": result.wall_s, "load_1min": load,
                "initial_loss": setup.initial_loss,
                "settings": {"min_lr": AUTOLRS_RANGE[0], "max_lr": AUTOLRS_RANGE[1],
                             "candidates": settings.candidates}}

    keys = [f"seed{s}/{m}" for s in args.autolrs_seeds for m in ("sequential", "parallel")]
    _work_through(folder, config, keys, train,
                  lambda: _autolrs_state(folder, config)["runs"], log)
    return _autolrs_state(folder, config)


# ------------------------------------------------------------------------------------------------
# Rendering.
# ------------------------------------------------------------------------------------------------


def _pct(x: float | None, signed: bool = True) -> str:
    if x is None or not math.isfinite(x):
        return "-"
    return f"{100 * x:+.2f}%" if signed else f"{100 * x:.2f}%"


def planner_figure(state: dict, analysis: dict, path: str) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fits = {k: f for k, f in analysis["fits"].items() if "failed" not in f}
    if not fits:
        return None
    fig, axes = plt.subplots(1, max(1, len(fits)), figsize=(5.5 * max(1, len(fits)), 4.5),
                             squeeze=False)
    for ax, (label, fit) in zip(axes[0], fits.items(), strict=False):
        for i, name in enumerate(analysis["schedules"]):
            obs = analysis["observed"][name]
            marker = "s" if name in fit["fitted"] else "o"
            ax.errorbar(fit["predicted"][name], obs["mean"], yerr=obs["se"], fmt=marker,
                        color=f"C{i % 10}", label=name, capsize=3)
        lo = min(min(fit["predicted"].values()), min(o["mean"] for o in
                                                     analysis["observed"].values()))
        hi = max(max(fit["predicted"].values()), max(o["mean"] for o in
                                                     analysis["observed"].values()))
        pad = 0.02 * (hi - lo + 1e-9)
        ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="grey", lw=0.8)
        ax.set_xlabel("predicted final val loss")
        ax.set_ylabel(f"observed final val loss (mean ± SE, {len(analysis['seeds'])} seeds)")
        ax.set_title(f"{label} (λ = {fit['lam']:g}); squares: fitted", fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def planner_section(state: dict, analysis: dict, figure: str | None) -> str:
    cfg = state["config"]
    runs = state["runs"]
    loads = [r["load_1min"] for r in runs.values()]
    walls = [r["wall_s"] for r in runs.values()]
    size = "the demo's model" if cfg["d_model"] == 128 else "a small transformer"
    lines = [header(f"Forecast planner validated over seeds (issue 14): {size}, "
                    f"{cfg['steps']} steps",
                    command=f"{SCRIPT} planner {SIZE_FLAG} (several processes) && "
                            f"{SCRIPT} render {SIZE_FLAG}").rstrip(), ""]
    lines.append(
        f"{CONFIG_NOTE} Character transformer, d_model "
        f"{cfg['d_model']}, {cfg['layers']} blocks, AdamW, {cfg['steps']} steps of "
        f"{cfg['batch_size']} x {cfg['seq_len']} characters of the stdlib corpus, peak "
        f"{cfg['peak_lr']:g}, warmup {cfg['warmup_steps']}; validation loss on "
        f"{cfg['eval_batches'] * cfg['batch_size']} fixed windows every {cfg['eval_every']} steps. "
        f"Seeds {', '.join(map(str, analysis['seeds']))} (each sets the initialisation and the "
        f"data order). {len(runs)} runs of the trainer, {min(walls):.0f}-{max(walls):.0f} s each "
        f"(compile included) on 2 CPU cores shared with other agents' jobs (1-min load average "
        f"{min(loads):.1f}-{max(loads):.1f} at the runs' starts).")
    lines.append("")
    lines.append(
        "Fits: `oxs.fit_annealing_law` on the **seed-mean** validation curves (the mean over "
        "seeds of each evaluation; every seed has the same LRs and evaluation steps), λ chosen "
        f"on the grid {LAM_GRID} by the fit criterion, warmup {cfg['warmup_steps']}. Each fit "
        "predicts every schedule's final validation loss from its learning rates; `oxs.plan_wsd"
        f"(law, {cfg['peak_lr']:g}, {cfg['steps']}, warmup_steps={cfg['warmup_steps']})` searches "
        "fractions 0.05-0.5 x shapes 1-sqrt/linear/cosine/square, and its pick is then trained on "
        "every seed.")
    lines.append("")
    failed = {k: f["failed"] for k, f in analysis["fits"].items() if "failed" in f}
    fits = {k: f for k, f in analysis["fits"].items() if "failed" not in f}
    for label, why in failed.items():
        lines.append(f"**{label}: the fit failed** ({why}).")
        lines.append("")
    head = ["schedule", "observed (mean ± SE)", "per seed"]
    head += [f"{label.split(':')[0]}: predicted (error)" for label in fits]
    rows = []
    order = sorted(analysis["schedules"], key=lambda n: analysis["observed"][n]["mean"])
    for name in order:
        obs = analysis["observed"][name]
        row = [f"`{name}`", f"{obs['mean']:.4f} ± {obs['se']:.4f}",
               " / ".join(f"{v:.4f}" for v in obs["per_seed"])]
        for fit in fits.values():
            star = " (fitted)" if name in fit["fitted"] else ""
            row.append(f"{fit['predicted'][name]:.4f} ({_pct(fit['error'][name])}){star}")
        rows.append(row)
    lines.append(markdown_table(head, rows))
    head = ["fit", "λ", "L0, A, α, C", "Spearman (all / held out)", "final-loss MAPE (all / "
            "held out)", "max error", "plan_wsd pick", "pick vs default WSD: predicted",
            "observed (mean ± SE, paired)", "per seed"]
    rows = []
    for label, fit in fits.items():
        pv = fit.get("pick_vs_wsd")
        rows.append([
            label, f"{fit['lam']:g}",
            f"{fit['L0']:.3g}, {fit['A']:.3g}, {fit['alpha']:.3g}, {fit['C']:.3g}",
            f"{fit['spearman']:.2f} / {fit['spearman_held_out']:.2f}",
            f"{_pct(fit['mape_all'], False)} / {_pct(fit['mape_held_out'], False)}",
            f"{_pct(fit['error'][fit['max_error']])} (`{fit['max_error']}`)",
            f"`{fit['pick']}`",
            _pct(pv["predicted"]) if pv else "-",
            f"{_pct(pv['mean'])} ± {_pct(pv['se'], False)}" if pv else "not run",
            " / ".join(_pct(d) for d in pv["per_seed"]) if pv else "-"])
    lines.append(markdown_table(head, rows))
    head = ["fit", "seed", "λ", "Spearman", "final-loss MAPE", "max abs error",
            "own plan_wsd pick", "predicted pick vs default WSD"]
    rows = []
    for label, fit in fits.items():
        for row in fit["per_seed"]:
            if "failed" in row:
                rows.append([label.split(":")[0], row["seed"], "fit failed: " + row["failed"],
                             *["-"] * 5])
                continue
            rows.append([label.split(":")[0], row["seed"], f"{row['lam']:g}",
                         f"{row['spearman']:.2f}", _pct(row["mape_all"], False),
                         _pct(row["max_abs"], False), f"`{row.get('own_pick', '-')}`",
                         _pct(row.get("pick_vs_wsd_predicted"))])
    lines.append("The same fits made on each seed alone (predicting that seed's runs):")
    lines.append("")
    lines.append(markdown_table(head, rows))
    if figure:
        lines.append(f"![planner validation](figures/{os.path.basename(figure)})")
        lines.append("")
    return "\n".join(lines) + "\n"


def autolrs_section(astate: dict, pstate: dict, figure: str | None) -> str:
    cfg = astate["config"]
    runs = astate["runs"]
    size = "the demo's model and budget" if cfg["d_model"] == 128 else \
        "a small transformer, several seeds"
    lines = [header(f"AutoLRS at {size} (issue 17)",
                    command=f"{SCRIPT} autolrs {SIZE_FLAG} (several processes) && "
                            f"{SCRIPT} render {SIZE_FLAG}").rstrip(), ""]
    loads = [r["load_1min"] for r in runs.values()]
    lines.append(
        f"{CONFIG_NOTE} Transformer, d_model {cfg['d_model']}, {cfg['layers']} blocks, "
        f"{cfg['batch_size']} x {cfg['seq_len']} characters, "
        f"**{cfg['steps']} budget steps**, AutoLRS's trials counted in them as the paper "
        f"counts them. AutoLRS (`examples.autolrs_run.run_autolrs`, the paper's k = 10 "
        f"candidates, τ' = τ/10, τ from {max(30, cfg['steps'] // 10)} doubling to "
        f"{4 * max(30, cfg['steps'] // 10)}) searches [{AUTOLRS_RANGE[0]:g}, "
        f"{AUTOLRS_RANGE[1]:g}], a decade either side of the baselines' peak; the baselines are "
        f"the planner suite's cosine and default-WSD runs of the same seeds at the demo's (and "
        f"the trainer's default) peak {cfg['peak_lr']:g}, not tuned for this comparison: same "
        f"model, initialisation, data "
        f"order (AutoLRS's kept step t and the baselines' step t see batch t), budget and "
        f"validation windows. 1-min load average {min(loads):.1f}-{max(loads):.1f} at the runs' "
        f"starts.")
    lines.append("")
    head = ["seed", "run", "kept / trial steps", "LR chosen per stage", "final val loss",
            "vs cosine", "wall time (AutoLRS loop)"]
    rows = []
    seeds = sorted({r["seed"] for r in runs.values()})
    prun = pstate.get("runs", {}) if pstate else {}
    deltas: dict[str, list[float]] = {}
    for seed in seeds:
        cos = prun.get(f"seed{seed}/cosine")
        wsd = prun.get(f"seed{seed}/{DEFAULT_WSD}")
        for mode in ("sequential", "parallel"):
            r = runs.get(f"seed{seed}/{mode}")
            if r is None:
                continue
            lrs = ", ".join(f"{st['lr']:.2g}" for st in r["stages"])
            rel = r["val_loss"] / cos["val_loss"] - 1 if cos else None
            if rel is not None:
                deltas.setdefault(mode, []).append(rel)
            rows.append([seed, f"AutoLRS, {'vmapped' if mode == 'parallel' else mode} trials",
                         f"{r['kept_steps']} / {r['trial_steps']}", lrs, f"{r['val_loss']:.4f}",
                         _pct(rel), f"{r['wall_s']:.0f} s"])
        for name, base in (("cosine", cos), ("WSD (1-sqrt, 20%)", wsd)):
            if base is not None:
                rel = base["val_loss"] / cos["val_loss"] - 1 if cos else None
                if name.startswith("WSD") and rel is not None:
                    deltas.setdefault("wsd", []).append(rel)
                rows.append([seed, f"{name}, peak {cfg['peak_lr']:g}", f"{cfg['steps']} / 0",
                             "-", f"{base['val_loss']:.4f}", _pct(rel), "-"])
    lines.append(markdown_table(head, rows))
    if deltas:
        lines.append("Mean over seeds of the final loss relative to cosine (paired): " + "; ".join(
            f"{LABELS.get(k, k)} {_pct(float(np.mean(v)))} ({len(v)} seeds)"
            for k, v in deltas.items()) + ".")
        lines.append("")
    if figure:
        lines.append(f"![AutoLRS learning rate](figures/{os.path.basename(figure)})")
        lines.append("")
        lines.append(f"The figure is seed {seeds[0]}'s vmapped run: left, the learning rate on "
                     "the budget axis (grey: the stages' trials; dots: their candidates; red: "
                     "the kept model's LR), right, the training loss.")
        lines.append("")
    return "\n".join(lines) + "\n"


def autolrs_figure(astate: dict, pstate: dict, path: str) -> str | None:
    from examples import autolrs_run

    runs = astate["runs"]
    seeds = sorted({r["seed"] for r in runs.values()})
    r = runs.get(f"seed{seeds[0]}/parallel") or runs.get(f"seed{seeds[0]}/sequential")
    if r is None:
        return None
    result = autolrs_run.AutoLRSResult(r["lr"], r["loss"], r["stages"], r["val_loss"],
                                       r["budget"], r["trial_steps"], r["wall_s"], None, None)
    baselines = {}
    for label, name in (("cosine", "cosine"), ("WSD", DEFAULT_WSD)):
        base = (pstate or {}).get("runs", {}).get(f"seed{seeds[0]}/{name}")
        if base is not None:
            baselines[label] = {"lr": base["lrs"], "loss": base["train_loss"]}
    return autolrs_run.plot_lr(result, baselines, path)


def render(args, log=print) -> dict:
    base = base_config(args.quick, args.size)
    pstate = merged_state(args.planner_dir, base.to_dict(), args.render_seeds)
    astate = _autolrs_state(args.autolrs_dir, base.to_dict())
    results = args.results
    fig_dir = args.figures
    os.makedirs(fig_dir, exist_ok=True)
    out: dict[str, Any] = {}
    if pstate["runs"]:
        analysis = analyse(pstate)
        out["analysis"] = analysis
        figure = planner_figure(pstate, analysis, os.path.join(
            fig_dir, f"planner_validation{SUFFIX}.png")) if analysis["fits"] else None
        write_section(f"planner_validation{SUFFIX}",
                      planner_section(pstate, analysis, figure), results)
        for label, fit in analysis["fits"].items():
            if "failed" in fit:
                log(f"{label}: fit failed: {fit['failed']}")
                continue
            log(f"{label}: lam {fit['lam']:g} spearman {fit['spearman']:.2f} MAPE "
                f"{_pct(fit['mape_all'], False)} pick {fit['pick']} "
                f"{fit.get('pick_vs_wsd')}")
    if astate["runs"]:
        figure = autolrs_figure(astate, pstate, os.path.join(
            fig_dir, f"autolrs_lr{SUFFIX or '_demo'}.png"))
        write_section(f"autolrs{SUFFIX or '_demo'}",
                      autolrs_section(astate, pstate, figure), results)
        out["autolrs"] = {k: r["val_loss"] for k, r in astate["runs"].items()}
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=("planner", "autolrs", "render", "all"))
    parser.add_argument("--quick", action="store_true",
                        help="tiny model and budget, 2 seeds, everything under --work-dir")
    parser.add_argument("--work-dir", default=os.path.join(ROOT, "runs", "planner_suite"),
                        help="run directories (and, with --quick, every output)")
    parser.add_argument("--size", choices=("demo", "small"), default="demo",
                        help="demo: examples.demo.DEMO; small: examples.sweep.SWEEP's transformer "
                             "(about 16x cheaper per run)")
    parser.add_argument("--seeds", default=",".join(map(str, SEEDS)))
    parser.add_argument("--fit-seeds", default=",".join(map(str, SEEDS)),
                        help="seeds whose mean curves the planner's fits use (their first runs "
                             "may be trained by other processes: the plan waits for them)")
    parser.add_argument("--render-seeds", default=None, help="seeds to report (default: all)")
    parser.add_argument("--autolrs-seeds", default=",".join(map(str, AUTOLRS_SEEDS)))
    args = parser.parse_args(argv)
    global SUFFIX, SIZE_FLAG, CONFIG_NOTE
    SUFFIX = "" if args.size == "demo" else "_" + args.size
    SIZE_FLAG = "" if args.size == "demo" else f"--size {args.size}"
    CONFIG_NOTE = CONFIG_NOTES[args.size]
    args.seeds = tuple(int(s) for s in args.seeds.split(","))
    args.autolrs_seeds = tuple(int(s) for s in args.autolrs_seeds.split(","))
    args.fit_seeds = tuple(int(s) for s in args.fit_seeds.split(","))
    args.render_seeds = tuple(int(s) for s in args.render_seeds.split(",")) \
        if args.render_seeds else None
    if args.quick:
        args.seeds, args.autolrs_seeds = args.seeds[:2], args.autolrs_seeds[:1]
        args.fit_seeds = args.seeds
        args.planner_dir = os.path.join(args.work_dir, "planner_suite" + SUFFIX)
        args.autolrs_dir = os.path.join(args.work_dir, "autolrs" + (SUFFIX or "_demo"))
        args.results = os.path.join(args.work_dir, "RESULTS.md")
        args.figures = os.path.join(args.work_dir, "figures")
    else:
        args.planner_dir = os.path.join(FIGURES, "planner_suite" + SUFFIX)
        args.autolrs_dir = os.path.join(FIGURES, "autolrs" + (SUFFIX or "_demo"))
        args.results = os.path.join(HERE, "RESULTS.md")
        args.figures = FIGURES
    start = time.perf_counter()
    if args.part in ("planner", "all"):
        run_planner(args)
    if args.part in ("autolrs", "all"):
        run_autolrs_part(args)
    if args.part in ("render", "all"):
        render(args)
    print(f"done in {time.perf_counter() - start:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
