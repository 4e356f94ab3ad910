"""XLA's compiled cost of one step of the spike optimizers, from ``cost_analysis()``: no timing.

A structural check that a change which should not alter the arithmetic (a refactor, a port) does
not: bytes accessed, flops and transcendentals as XLA's cost model counts them, the number of
instructions and fusions in the compiled entry computation, the copies among them, and the
temporary bytes of the buffer assignment, for one jitted, donated step at four 1000x1000 float32
leaves. Compare the printed table before and after the change (``--json`` saves it). Nothing is
timed, so the numbers do not depend on the machine's load; compiling the eleven steps takes about
10 s on the shared 2-core machine.

Run: ``python benchmarks/compile_cost.py [--json out.json] [--no-write]``; the table goes into
the ``compile_cost`` section of ``benchmarks/RESULTS.md`` (``make bench`` runs it), except with
``--no-write``, which only prints it (for a before/after comparison of a change).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time

import jax
import jax.numpy as jnp
import optax

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import optaxsched as oxs  # noqa: E402
from benchmarks import _common  # noqa: E402

SECTION = "compile_cost"

CASES = {
    "spam": lambda: oxs.spam(1e-3),
    "spam_wd": lambda: oxs.spam(1e-3, weight_decay=0.1),
    "spam_track": lambda: oxs.spam(1e-3, track_clips=True),
    "stable_spam": lambda: oxs.stable_spam(1e-3),
    "stable_spam_wd": lambda: oxs.stable_spam(1e-3, weight_decay=0.1),
    "stable_spam_track": lambda: oxs.stable_spam(1e-3, track_clips=True),
    "stable_spam_authors": lambda: oxs.stable_spam(1e-3, reset_order="authors"),
    "clip_spikes": lambda: oxs.clip_spikes(),
    "adaclip": lambda: oxs.adaptive_spike_clip(),
    "adagn": lambda: oxs.adaptive_grad_norm(),
    "adam": lambda: optax.adam(1e-3),
}

_INSTRUCTION = re.compile(r"\s+(ROOT )?%?[\w.\-]+ = ")


def cost(tx: optax.GradientTransformation, params) -> dict:
    step = jax.jit(tx.update, donate_argnums=(1,))
    compiled = step.lower(params, tx.init(params), params).compile()
    analysis = compiled.cost_analysis()
    if isinstance(analysis, list):
        analysis = analysis[0]
    hlo = compiled.as_text()
    entry = [line for line in hlo[hlo.index("ENTRY"):].splitlines() if _INSTRUCTION.match(line)]
    return {"bytes": int(analysis.get("bytes accessed", 0)), "flops": int(analysis.get("flops", 0)),
            "transcendentals": int(analysis.get("transcendentals", 0)),
            "entry_instructions": len(entry),
            "fusions": sum(" fusion(" in line for line in entry),
            "copies": sum(re.search(r" copy\(", line) is not None for line in entry),
            "temp_bytes": int(compiled.memory_analysis().temp_size_in_bytes)}


def markdown(table: dict) -> str:
    """The table as Markdown, one row per step, the counts with thousands separators."""
    columns = list(next(iter(table.values())))
    lines = ["| step | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    for name, row in table.items():
        lines.append(f"| `{name}` | " + " | ".join(f"{row[c]:,}" for c in columns) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="also write the table to this JSON file")
    parser.add_argument("--no-write", action="store_true", help="do not touch RESULTS.md")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    params = {f"w{i}": jnp.zeros((1000, 1000), jnp.float32) for i in range(4)}
    table = {name: cost(make(), params) for name, make in CASES.items()}
    text = markdown(table)
    print(text)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(table, f, indent=1)
    if not args.no_write:
        body = (_common.header("XLA's compiled cost of one step of the spike optimizers "
                               "(four 1000×1000 float32 leaves)",
                               command=_common.command_line(),
                               wall_seconds=time.perf_counter() - start)
                + "\n" + _common.doc_to_markdown(__doc__) + "\n" + text)
        _common.write_section(SECTION, body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
