"""Peer table (issue 13 item 5): pytorch-optimizer and torch AdamW against optaxsched, same CPU.

Alternates fresh processes of ``torch_steps.py`` (run with the torch venv's Python) and
``jax_steps.py`` (run with this project's Python), ``--repeats`` times each, so that the load
of a shared machine falls on both sides alike; every process times its candidates in rotating
rounds. Reports, per optimizer, the median and the range (min–max) of the per-round ms per step,
the ratio of medians to ``optax.adam`` (JAX) and to ``torch AdamW (fused)``, and writes the
``peers`` section of ``benchmarks/RESULTS.md``. Torch is never a dependency of optaxsched: it
lives in its own venv, set up once with::

    python3 -m venv /work/torchvenv
    /work/torchvenv/bin/pip install torch==2.13.0 pytorch-optimizer==4.1.0 numpy

Each side runs with its faster allocator setting: the JAX side with
``GLIBC_TUNABLES=glibc.malloc.hugetlb=1`` (what ``make test``, ``make demo`` and ``make bench`` set;
``--jax-tunables ''`` turns it off), the torch side without it (with it, fused AdamW took 28-33 ms
per step instead of 11-12 and pytorch-optimizer's SPAM 1.5 s instead of 0.75 s on this machine).

Run (from the repository root)::

    .venv/bin/python benchmarks/peers/peers.py --torch-python /work/torchvenv/bin/python
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import _common  # noqa: E402

SECTION = "peers"


def _run(python: str, script: str, rounds: int, steps: int, tunables: str) -> dict:
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(HERE)))
    env.pop("GLIBC_TUNABLES", None)
    if tunables:
        env["GLIBC_TUNABLES"] = tunables
    out = subprocess.run([python, os.path.join(HERE, script), "--rounds", str(rounds),
                          "--steps", str(steps)], capture_output=True, text=True, check=True,
                         env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--torch-python", default=os.environ.get("TORCH_PYTHON",
                                                                 "/work/torchvenv/bin/python"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--jax-tunables", default="glibc.malloc.hugetlb=1",
                        help="GLIBC_TUNABLES for the JAX side ('' for none; torch runs without)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    times: dict[str, list[float]] = {}
    versions: dict[str, str] = {}
    loads = []
    start = time.perf_counter()
    for i in range(args.repeats):
        order = [("torch", args.torch_python, "torch_steps.py", ""),
                 ("jax", sys.executable, "jax_steps.py", args.jax_tunables)]
        for side, python, script, tunables in order if i % 2 == 0 else order[::-1]:
            loads.append(os.getloadavg()[0])
            result = _run(python, script, args.rounds, args.steps, tunables)
            for name, values in result.pop("times_ms").items():
                times.setdefault(name, []).extend(values)
            versions.update({k: str(v) for k, v in result.items()})
            print(side, {k: [round(v, 1) for v in times[k][-args.rounds:]] for k in times},
                  flush=True)
    loads.append(os.getloadavg()[0])
    elapsed = time.perf_counter() - start
    median = {name: statistics.median(v) for name, v in times.items()}
    lines = [_common.header("Peers (issue 13): pytorch-optimizer and torch AdamW on the same "
                            "CPU, 16M float32 parameters", wall_seconds=elapsed), ""]
    lines.append(
        "Four 2000×2000 float32 parameters, fixed random gradients. Torch side: "
        f"`torch_steps.py` under {args.torch_python} (torch {versions.get('torch')}, "
        f"pytorch-optimizer {versions.get('pytorch_optimizer')}, {versions.get('threads')} "
        "threads), optimizers with their defaults and lr 1e-3, eager `step()`. JAX side: "
        f"`jax_steps.py` (jax {versions.get('jax')}, optax {versions.get('optax')}), one jitted "
        "step with params and state donated, "
        + (f"`GLIBC_TUNABLES={args.jax_tunables}` (torch without: it is slower with it). "
           if args.jax_tunables else "default allocator on both sides. ")
        + f"{args.repeats} fresh processes per side, alternating torch/JAX, each timing "
        f"{args.rounds} rotating rounds ({args.steps} steps per round; 2 for pytorch-optimizer "
        "SPAM): ms per step, median and range over all rounds. The machine is shared with "
        "other agents' jobs: 1-minute load average "
        f"{min(loads):.1f}–{max(loads):.1f} on 2 cores during this run, so absolute times are "
        "inflated and noisy; the ranges say how much.")
    lines.append("")
    lines.append("| optimizer | ms per step: median [min–max] | ÷ optax.adam | "
                 "÷ torch AdamW (fused) |")
    lines.append("|---|---:|---:|---:|")
    adam, fused = median.get("optax.adam"), median.get("torch AdamW (fused)")
    for name in ["optax.adam", "oxs.spam", "oxs.stable_spam", "torch AdamW (fused)",
                 "torch AdamW (foreach)", "pytorch-optimizer SPAM",
                 "pytorch-optimizer StableSPAM"]:
        if name not in times:
            continue
        v = times[name]
        lines.append(f"| {name} | {median[name]:.1f} [{min(v):.1f}–{max(v):.1f}] | "
                     f"{median[name] / adam:.2f} | {median[name] / fused:.2f} |")
    lines.append("")
    speed = {a: median[f"pytorch-optimizer {b}"] / median[f"oxs.{c}"]
             for a, b, c in (("spam", "SPAM", "spam"), ("stable_spam", "StableSPAM",
                                                        "stable_spam"))}
    lines.append(
        f"oxs.spam is {speed['spam']:.0f}× faster than pytorch-optimizer's SPAM (medians; the "
        f"issue's goal is ≥ 50×) and oxs.stable_spam {speed['stable_spam']:.1f}× faster than "
        "its StableSPAM. pytorch-optimizer's SPAM takes its per-parameter path on CPU and, even "
        "with `density=1.0`, gathers every 2-D gradient through a boolean mask and scatters the "
        "update back, which is most of its time.")
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_write:
        _common.write_section(SECTION, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
