"""Step time of optimizer transforms against a baseline, measured in the same process.

Each entry of :data:`REGISTRY` pairs a candidate transform with a baseline (usually
``optax.adam``). For each parameter count the harness builds an MLP-shaped parameter tree
(four square kernels, their biases and a small output layer), jits one optimizer step
``(params, state, grads) -> (params, state)`` with the params and the state donated, and times
candidate and baseline alternately (:func:`_common.interleaved_ratios`): the ratio is the
median over rounds of candidate time / baseline time, with its interquartile range, so that a
busy shared machine affects both alike. It also reports the optimizer-state bytes of both, and
the minor page faults per step of each (``getrusage``): on CPU, every parameter-sized temporary
XLA allocates is served by glibc as fresh ``mmap`` pages and faulted in, 4 KiB at a time, on
every step, which costs several times the temporary's memory traffic. Run with
``GLIBC_TUNABLES=glibc.malloc.hugetlb=1`` to see the ratios with transparent huge pages.

Adding a transform is one line, next to the others at the bottom of the registry::

    register("clip_by_global_norm + adam", lambda: optax.chain(
             optax.clip_by_global_norm(1.0), optax.adam(1e-3)), _adam_after_identity,
             baseline_name="identity + adam", goal=1.10, note="part")

Run: ``.venv/bin/python benchmarks/step_time.py`` (all entries at 1M, 16M, 64M parameters;
``--sizes 1M,4M`` for others, ``--only spam,stable_spam`` to select entries, ``--no-write`` to
leave ``benchmarks/RESULTS.md`` alone). The table goes into its ``step_time`` section and the
rows, as JSON records, into ``benchmarks/figures/step_time.json`` (``--json`` for another path),
which ``benchmarks/scaling_plot.py`` draws.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import resource
import sys
import time
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402

import optaxsched as oxs  # noqa: E402

SECTION = "step_time"


class Entry(NamedTuple):
    """One comparison: factories of the candidate and of the baseline transform."""

    candidate: Callable[[], optax.GradientTransformation]
    baseline: Callable[[], optax.GradientTransformation]
    goal: float | None  # the ratio the candidate should stay under (None: no goal)
    baseline_name: str
    note: str
    fresh: int = 1  # distinct gradient trees fed in turn (1: the same gradient every step)


REGISTRY: dict[str, Entry] = {}


def register(name: str, candidate: Callable[[], optax.GradientTransformation],
             baseline: Callable[[], optax.GradientTransformation], *, goal: float | None = None,
             baseline_name: str = "optax.adam", note: str = "", fresh: int = 1) -> None:
    """Adds (or replaces) an entry: ``candidate()`` is timed against ``baseline()``.

    Args:
      name: the entry's name in the table and for ``--only``.
      candidate, baseline: zero-argument factories returning optax transforms.
      goal: optional ratio the candidate should stay under.
      baseline_name: how the table names the baseline.
      note: a short remark for the table.
      fresh: how many distinct gradient trees the steps cycle through (both sides alike). With
        one, every step sees the same gradient, so Stable-SPAM's AdaClip estimate converges to
        its maximum and no step clips: the transform's best case. Several independent draws
        make AdaClip clip on most steps, as fresh gradients do in training.
    """
    REGISTRY[name] = Entry(candidate, baseline, goal, baseline_name, note, fresh)


def _adam():
    return optax.adam(1e-3)


def _adam_after_identity():
    return optax.chain(optax.identity(), optax.adam(1e-3))


def _clip_by_global_norm_adam():
    return optax.chain(optax.clip_by_global_norm(1.0), optax.adam(1e-3))


def _hidden_kernels(params):
    """NaP's mask for :func:`make_params`: the hidden kernels (each feeds a normalisation in the
    network this tree stands for); biases and the output head stay free."""
    return {name: {"kernel": name != "head", "bias": False} for name in params}


# -------------------------------------------- registry --------------------------------------------
register("spam", lambda: oxs.spam(1e-3), _adam, goal=1.05, note="fused")
register("stable_spam", lambda: oxs.stable_spam(1e-3), _adam, goal=1.15, note="fused")
register("spam track_clips", lambda: oxs.spam(1e-3, track_clips=True), _adam, goal=1.30,
         note="fused, clip counters on")
register("stable_spam track_clips", lambda: oxs.stable_spam(1e-3, track_clips=True), _adam,
         goal=1.30, note="fused, clip counters on")
# Fresh gradients: AdaClip clips on most steps, so Stable-SPAM takes its second reduction.
register("stable_spam fresh grads", lambda: oxs.stable_spam(1e-3), _adam, goal=1.15,
         note="fused, 3 gradients in turn", fresh=3)
register("spam fresh grads", lambda: oxs.spam(1e-3), _adam, goal=1.05,
         note="fused, 3 gradients in turn", fresh=3)
register("apply_if_finite(spam)", lambda: optax.apply_if_finite(oxs.spam(1e-3), 10), _adam,
         note="exact whole-step skip")
register("clip_by_global_norm + adam", lambda: optax.chain(optax.clip_by_global_norm(1.0),
                                                           optax.adam(1e-3)),
         _adam_after_identity, baseline_name="identity + adam", note="optax's own clipping")
register("clip_spikes + adam", lambda: optax.chain(oxs.clip_spikes(), optax.adam(1e-3)),
         _clip_by_global_norm_adam, baseline_name="clip_by_global_norm + adam", goal=1.0,
         note="part")
register("adaptive_spike_clip + adaptive_grad_norm + adam",
         lambda: optax.chain(oxs.adaptive_spike_clip(), oxs.adaptive_grad_norm(),
                             optax.adam(1e-3)),
         _clip_by_global_norm_adam, baseline_name="clip_by_global_norm + adam", note="parts")
register("reset_every(adam)", lambda: optax.chain(oxs.reset_every(optax.scale_by_adam(), 500),
                                                  optax.scale_by_learning_rate(1e-3)),
         _adam, note="part")
register("record_grad_norms + adam",
         lambda: optax.chain(oxs.record_grad_norms(100_000), optax.adam(1e-3)),
         _adam_after_identity, baseline_name="identity + adam",
         note="ℓ2 + ℓ1; update only (train step: refinement section)")
register("nap(adam)", lambda: oxs.nap(optax.adam(1e-3), _hidden_kernels),
         _adam, note="update only (train step: plasticity section)")
register("nap(adam) every=10", lambda: oxs.nap(optax.adam(1e-3), _hidden_kernels, every=10),
         _adam, note="update only")
register("hypergradient(adam)",
         lambda: oxs.hypergradient(1e-3, hyper_lr=1e-7, base=optax.scale_by_adam()), _adam,
         note="additive; keeps the previous direction")
register("adam + average_params(ema)",
         lambda: optax.chain(optax.adam(1e-3), oxs.average_params("ema", decay=0.999)),
         _adam_after_identity, baseline_name="identity + adam", note="keeps the average")
# ----------------------------------------------------------------------------------------------


def _parse_size(text: str) -> int:
    text = text.strip().upper()
    scale = {"K": 10**3, "M": 10**6, "G": 10**9}.get(text[-1:], 1)
    number = text[:-1] if text[-1:] in "KMG" else text
    return int(float(number) * scale)


def _size_label(n: int) -> str:
    return f"{n / 1e6:g}M" if n >= 10**6 else f"{n / 1e3:g}K"


def make_params(num_params: int, seed: int = 0) -> dict:
    """An MLP-shaped float32 tree with about ``num_params`` entries: 4 d×d kernels + biases."""
    d = max(8, int(math.sqrt(num_params / 4)))
    rng = np.random.default_rng(seed)
    params = {}
    for i in range(4):
        params[f"layer{i}"] = {
            "kernel": jnp.asarray(rng.normal(0, d ** -0.5, (d, d)), jnp.float32),
            "bias": jnp.zeros((d,), jnp.float32)}
    params["head"] = {"kernel": jnp.asarray(rng.normal(0, d ** -0.5, (d, 10)), jnp.float32),
                      "bias": jnp.zeros((10,), jnp.float32)}
    return params


def _tree_bytes(tree) -> int:
    return sum(int(x.nbytes) for x in jax.tree.leaves(tree) if hasattr(x, "nbytes"))


def _stepper(tx: optax.GradientTransformation, params, grads: list):
    """A closure running one donated, jitted step per call on its own copy of the state,
    feeding the gradient trees of ``grads`` in turn."""

    def step(p, s, g):
        updates, s = tx.update(g, s, p)
        return optax.apply_updates(p, updates), s

    jitted = jax.jit(step, donate_argnums=(0, 1))
    carry = [jax.tree.map(jnp.copy, params), None]
    carry[1] = tx.init(carry[0])
    state_bytes = _tree_bytes(carry[1])

    turn = [0]

    def call():
        carry[0], carry[1] = jitted(carry[0], carry[1], grads[turn[0] % len(grads)])
        turn[0] += 1
        return carry[0]

    return call, state_bytes


class Row(NamedTuple):
    name: str
    baseline_name: str
    size: int
    timing: _common.Timing
    state_bytes: int
    baseline_state_bytes: int
    page_faults: tuple[float, float]  # per step: candidate, baseline
    goal: float | None
    note: str


def measure(name: str, entry: Entry, num_params: int, rounds: int, calls: int) -> Row:
    params = make_params(num_params)
    rng = np.random.default_rng(1)
    grads = [jax.tree.map(lambda p: jnp.asarray(rng.normal(0, 1e-2, p.shape), p.dtype), params)
             for _ in range(entry.fresh)]
    cand, cand_bytes = _stepper(entry.candidate(), params, grads)
    base, base_bytes = _stepper(entry.baseline(), params, grads)
    timing = _common.interleaved_ratios(cand, base, rounds=rounds, calls=calls, warmup=2,
                                        block=jax.block_until_ready)
    faults = (_page_faults(cand), _page_faults(base))
    del cand, base
    gc.collect()
    return Row(name, entry.baseline_name, sum(x.size for x in jax.tree.leaves(params)), timing,
               cand_bytes, base_bytes, faults, entry.goal, entry.note)


def _page_faults(call: Callable[[], jax.Array], steps: int = 5) -> float:
    """Minor page faults of this process per step: on CPU, each parameter-sized temporary that
    XLA allocates is a fresh ``mmap`` from glibc, faulted in page by page on every step."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(steps):
        jax.block_until_ready(call())
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / steps


def records(rows: list[Row]) -> list[dict]:
    """The rows as plain JSON-ready dicts (what ``--json`` writes and scaling_plot reads)."""
    return [{"name": r.name, "baseline": r.baseline_name, "params": int(r.size),
             "ratio": float(r.timing.ratio), "ratio_q1": float(r.timing.ratio_q1),
             "ratio_q3": float(r.timing.ratio_q3), "candidate_s": float(r.timing.candidate),
             "baseline_s": float(r.timing.baseline), "state_bytes": r.state_bytes,
             "baseline_state_bytes": r.baseline_state_bytes,
             "page_faults_per_step": list(r.page_faults), "goal": r.goal, "note": r.note}
            for r in rows]


def write_json(rows: list[Row], path: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"machine": _common.machine_description(), "command": _common.command_line(),
                   "rows": records(rows)}, f, indent=1, ensure_ascii=False)
        f.write("\n")


def table(rows: list[Row]) -> str:
    out = []
    for r in rows:
        t = r.timing
        goal = "" if r.goal is None else (f"≤ {r.goal:.2f} " + ("✓" if t.ratio <= r.goal else "✗"))
        out.append([f"`{r.name}`", f"`{r.baseline_name}`", _size_label(r.size),
                    _common.format_seconds(t.candidate), _common.format_seconds(t.baseline),
                    f"{t.ratio:.3f} [{t.ratio_q1:.3f}, {t.ratio_q3:.3f}]", goal,
                    f"{_common.format_bytes(r.state_bytes)} / "
                    f"{_common.format_bytes(r.baseline_state_bytes)}",
                    f"{r.page_faults[0]:,.0f} / {r.page_faults[1]:,.0f}", r.note])
    return _common.markdown_table(
        ["candidate", "baseline", "params", "candidate step", "baseline step",
         "ratio [IQR]", "goal", "state bytes (cand. / base.)", "page faults / step", "note"],
        out)


def main(argv: list[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1M,16M,64M",
                        help="comma-separated parameter counts, e.g. 100K,1M (default 1M,16M,64M)")
    parser.add_argument("--only", default="", help="comma-separated entry names (default: all)")
    parser.add_argument("--rounds", type=int, default=0,
                        help="timing rounds (default: 15 below 10M params, 7 above)")
    parser.add_argument("--calls", type=int, default=0,
                        help="steps per timed batch (default: 10 below 10M params, 3 above)")
    parser.add_argument("--no-write", action="store_true",
                        help="do not touch RESULTS.md (nor the default JSON file)")
    parser.add_argument("--section", default=SECTION,
                        help=f"the RESULTS.md section to write (default {SECTION})")
    parser.add_argument("--json", default=None,
                        help="where to write the rows as JSON (default "
                             "benchmarks/figures/step_time.json unless --no-write)")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(REGISTRY)
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        parser.error(f"unknown entries {unknown}; known: {list(REGISTRY)}")
    sizes = [_parse_size(s) for s in args.sizes.split(",") if s.strip()]
    start = time.perf_counter()
    rows = []
    for size in sizes:
        for name in names:
            big = size >= 10**7
            row = measure(name, REGISTRY[name], size, args.rounds or (7 if big else 15),
                          args.calls or (3 if big else 10))
            rows.append(row)
            t = row.timing
            print(f"{name:50s} {_size_label(row.size):>6s}  "
                  f"cand {_common.format_seconds(t.candidate):>10s}"
                  f"  base {_common.format_seconds(t.baseline):>10s}  ratio {t.ratio:.3f} "
                  f"[{t.ratio_q1:.3f}, {t.ratio_q3:.3f}]", flush=True)
    wall = time.perf_counter() - start
    text = table(rows)
    print(text)
    json_path = args.json or (None if args.no_write else _common.STEP_TIME_JSON)
    if json_path:
        write_json(rows, json_path)
        print(f"wrote {json_path}")
    if not args.no_write:
        title, command = "Step time against a baseline", _common.command_line()
        tunables = os.environ.get("GLIBC_TUNABLES")
        if tunables:  # the allocator setting changes the numbers: say so in title and command
            title += f" (GLIBC_TUNABLES={tunables})"
            command = f"GLIBC_TUNABLES={tunables} {command}"
        body = (_common.header(title, command=command, wall_seconds=wall)
                + "\n" + _common.doc_to_markdown(__doc__, stop_at="Adding") + "\n" + text)
        _common.write_section(args.section, body + _reading(args.section))
    return rows


def _reading(section: str) -> str:
    """The section's hand-written reading, kept when the table is regenerated."""
    previous = _common.read_section(section) or ""
    marker = "### Reading"
    if marker in previous:
        return "\n" + previous[previous.index(marker):] + "\n"
    return ""


if __name__ == "__main__":
    main()
