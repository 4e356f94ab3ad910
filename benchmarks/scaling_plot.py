"""Step-time ratio against parameter count, from the rows of ``benchmarks/step_time.py``.

One line per step-time entry (candidate / baseline step time, median over interleaved rounds,
with the interquartile range as error bars), parameter count on a log axis, each entry's goal as
a dashed line of its colour. The figure goes to ``benchmarks/figures/step_time_scaling.png`` and
the ``step_time_scaling`` section of ``benchmarks/RESULTS.md`` (figure and a ratio table, one
column per size). The rows come from the JSON file that step_time writes
(``benchmarks/figures/step_time.json``, or ``--json FILE``).

Run: ``.venv/bin/python benchmarks/step_time.py && .venv/bin/python benchmarks/scaling_plot.py``
(what ``benchmarks/run_all.py`` does).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import _common  # noqa: E402

SECTION = "step_time_scaling"
DEFAULT_FIGURE = os.path.join(_common.FIGURES, "step_time_scaling.png")
FIELDS = ("name", "baseline", "params", "ratio", "ratio_q1", "ratio_q3", "goal")


def load_rows(path: str) -> list[dict]:
    """The ``rows`` of a step_time JSON file, checked for the fields the figure needs."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise SystemExit(f"scaling_plot: {path} does not exist; run benchmarks/step_time.py "
                         f"first (it writes it), or give --json FILE.") from None
    rows = data.get("rows") if isinstance(data, dict) else None
    if not rows or not all(isinstance(r, dict) and set(FIELDS) <= set(r) for r in rows):
        raise SystemExit(f"scaling_plot: {path} holds no step_time rows with the fields "
                         f"{FIELDS}.")
    bad = [r for r in rows if not (math.isfinite(r["ratio"]) and r["params"] > 0)]
    if bad:
        raise SystemExit(f"scaling_plot: unusable rows in {path}: {bad}")
    return rows


# ------------------------------------------------------------------------------------------------
# The figure and the section.
# ------------------------------------------------------------------------------------------------


def _by_entry(records: list[dict]) -> dict[str, list[dict]]:
    entries: dict[str, list[dict]] = {}
    for r in records:
        entries.setdefault(r["name"], []).append(r)
    return {k: sorted(v, key=lambda r: r["params"]) for k, v in entries.items()}


def figure(records: list[dict], path: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    entries = _by_entry(records)
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (name, rows) in enumerate(entries.items()):
        colour = colours[i % len(colours)]
        x = [r["params"] for r in rows]
        y = [r["ratio"] for r in rows]
        err = [[r["ratio"] - r["ratio_q1"] for r in rows], [r["ratio_q3"] - r["ratio"]
                                                            for r in rows]]
        ax.errorbar(x, y, yerr=err, marker="o", capsize=3, color=colour,
                    label=f"{name} / {rows[0]['baseline']}")
        goals = {r["goal"] for r in rows if r["goal"] is not None}
        for goal in goals:
            ax.axhline(goal, color=colour, linestyle="--", linewidth=0.8, alpha=0.7)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("parameters")
    ax.set_ylabel("step time / baseline step time")
    ax.set_title("Optimizer step time relative to its baseline (dashed: goals)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _label(n: int) -> str:
    return f"{n / 1e6:.3g}M" if n >= 10**6 else f"{n / 1e3:.3g}K"


def section(records: list[dict], figure_path: str, wall: float) -> str:
    """The section's Markdown: header, figure, one row per entry and one column per size.

    Entries measured at the same requested sizes get nearly (not exactly) equal parameter
    counts, so columns are matched by rank and labelled with the smallest count of the rank.
    """
    entries = _by_entry(records)
    ranks = max(len(rows) for rows in entries.values())
    labels = [_label(min(rows[i]["params"] for rows in entries.values() if len(rows) > i))
              for i in range(ranks)]
    table = []
    for name, rows in entries.items():
        cells = [f"{r['ratio']:.3f}" for r in rows] + [""] * (ranks - len(rows))
        goal = rows[0]["goal"]
        table.append([f"`{name}`", f"`{rows[0]['baseline']}`", *cells,
                      "" if goal is None else f"≤ {goal:.2f}"])
    rel = os.path.relpath(figure_path, HERE)
    return (_common.header("Step-time ratio against parameter count", wall_seconds=wall)
            + "\nFrom the rows of the `step_time` section (median ratio over interleaved "
              "rounds; error bars: interquartile range).\n\n"
            + f"![step-time scaling]({rel})\n\n"
            + _common.markdown_table(["candidate", "baseline", *labels, "goal"], table))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", default=_common.STEP_TIME_JSON,
                        help=f"step_time rows to draw (default "
                             f"{os.path.relpath(_common.STEP_TIME_JSON, os.path.dirname(HERE))})")
    parser.add_argument("--figure", default=DEFAULT_FIGURE, help="where to draw the figure")
    parser.add_argument("--no-write", action="store_true",
                        help="do not write the step_time_scaling section of RESULTS.md")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    records = load_rows(args.json)
    path = figure(records, args.figure)
    print(f"wrote {path} ({len(records)} points, {len(_by_entry(records))} entries)")
    if not args.no_write:
        _common.write_section(SECTION, section(records, path, time.perf_counter() - start))
        print(f"wrote the {SECTION} section of {_common.RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
