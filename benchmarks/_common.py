"""Helpers shared by the benchmark suites: machine description, timing, and RESULTS.md sections.

Every suite writes its own section of ``benchmarks/RESULTS.md``, delimited by markers::

    <!-- BEGIN name -->
    ...
    <!-- END name -->

:func:`write_section` replaces the text between the markers of one section (or appends the
section if it is new) and leaves the rest of the file untouched, so suites can run in any order.
:func:`header` gives the lines every section starts with: the command, the date and the machine.

Timing: :func:`interleaved_ratios` times a candidate and a baseline alternately in one process,
so that slow drifts of a shared machine (other jobs, frequency scaling) affect both alike, and
reports the median of the per-round ratios with its interquartile range.

Only the standard library, NumPy and JAX are used here; benchmarks import ``optaxsched`` through
its public API (``import optaxsched as oxs``).
"""

from __future__ import annotations

import datetime
import os
import platform
import re
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "RESULTS.md")
FIGURES = os.path.join(HERE, "figures")
# Where step_time.py writes its rows and scaling_plot.py reads them.
STEP_TIME_JSON = os.path.join(FIGURES, "step_time.json")

__all__ = [
    "HERE",
    "RESULTS",
    "FIGURES",
    "STEP_TIME_JSON",
    "machine_description",
    "command_line",
    "header",
    "write_section",
    "read_section",
    "Timing",
    "interleaved_ratios",
    "format_seconds",
    "format_bytes",
    "markdown_table",
    "doc_to_markdown",
]


# ------------------------------------------------------------------------------------------------
# Where and how a benchmark ran.
# ------------------------------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_description() -> str:
    """One line: CPU model and core count, OS, JAX backend and devices, jax and optax versions."""
    import jax
    import optax

    cores = os.cpu_count() or 0
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        pass
    devices = jax.devices()
    kinds = sorted({d.device_kind for d in devices})
    return (f"{_cpu_model()}, {cores} CPU cores ({platform.platform()}); JAX backend "
            f"{jax.default_backend()} ({len(devices)} × {', '.join(kinds)}); "
            f"jax {jax.__version__}, optax {optax.__version__}, Python {platform.python_version()}")


def command_line() -> str:
    """The command that started this process, relative to the repository root when possible."""
    argv = list(sys.argv)
    if argv:
        root = os.path.dirname(HERE)
        script = os.path.abspath(argv[0])
        if script.startswith(root + os.sep):
            argv[0] = os.path.relpath(script, root)
    return ".venv/bin/python " + " ".join(shlex.quote(a) for a in argv)


def header(title: str, *, command: str | None = None, wall_seconds: float | None = None,
           date: datetime.date | None = None) -> str:
    """The first lines of a section: a ``##`` title, then command, date, machine and wall time."""
    date = date or datetime.date.today()
    lines = [f"## {title}", "", f"Command: `{command or command_line()}`  ",
             f"Date: {date.isoformat()}; machine: {machine_description()}"]
    if wall_seconds is not None:
        lines[-1] += f"; wall time {wall_seconds:.0f} s"
    lines[-1] += "."
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------
# RESULTS.md sections.
# ------------------------------------------------------------------------------------------------


def _markers(name: str) -> tuple[str, str]:
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise ValueError(f"write_section: name must be letters, digits, '_', '-' or '.', "
                         f"got {name!r}.")
    return f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"


def read_section(name: str, path: str = RESULTS) -> str | None:
    """The text between the markers of section ``name`` (without them), or ``None``."""
    begin, end = _markers(name)
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        text = f.read()
    i = text.find(begin)
    j = text.find(end, i + len(begin)) if i >= 0 else -1
    if i < 0 or j < 0:
        return None
    return text[i + len(begin):j].strip("\n")


def write_section(name: str, body: str, path: str = RESULTS) -> None:
    """Replaces section ``name`` of ``path`` with ``body`` (appends it if the section is new).

    Only the text between ``<!-- BEGIN name -->`` and ``<!-- END name -->`` changes; the file is
    created with a ``# Benchmark results`` title if it does not exist. The write goes through a
    temporary file and ``os.replace``, so a crash never leaves a half-written file.

    Args:
      name: section name (letters, digits, ``_``, ``-``, ``.``).
      body: the section's Markdown, usually starting with :func:`header`.
      path: the results file (default ``benchmarks/RESULTS.md``).
    """
    begin, end = _markers(name)
    block = f"{begin}\n{body.strip(chr(10))}\n{end}"
    text = "# Benchmark results\n"
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            text = f.read()
    i = text.find(begin)
    j = text.find(end, i + len(begin)) if i >= 0 else -1
    if i >= 0 and j >= 0:
        text = text[:i] + block + text[j + len(end):]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


# ------------------------------------------------------------------------------------------------
# Timing.
# ------------------------------------------------------------------------------------------------


class Timing(NamedTuple):
    """Result of :func:`interleaved_ratios` (times in seconds per call)."""

    candidate: float  # median time of one candidate call
    baseline: float  # median time of one baseline call
    ratio: float  # median over rounds of candidate / baseline
    ratio_q1: float  # first quartile of the per-round ratios
    ratio_q3: float  # third quartile
    rounds: int


def _quartiles(values: Sequence[float]) -> tuple[float, float]:
    if len(values) < 2:
        return values[0], values[0]
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[0], q[2]


def interleaved_ratios(candidate: Callable[[], Any], baseline: Callable[[], Any], *,
                       rounds: int = 15, calls: int = 5, warmup: int = 2,
                       block: Callable[[Any], Any] | None = None) -> Timing:
    """Times two callables alternately; returns medians and the median per-round ratio.

    Each round runs ``calls`` candidate calls, then ``calls`` baseline calls (the order flips
    every round), each batch followed by ``block`` on its last result (for JAX:
    ``jax.block_until_ready``). Per-round ratios cancel slow drifts of a shared machine.

    Args:
      candidate, baseline: zero-argument callables (typically closures over a jitted step that
        carry their state between calls).
      rounds: number of rounds.
      calls: calls per batch.
      warmup: untimed calls of each before timing (compilation, first-touch).
      block: called on the last result of each batch before the clock stops.

    Returns:
      A :class:`Timing`.
    """
    block = block or (lambda x: x)
    for fn in (candidate, baseline):
        for _ in range(warmup):
            block(fn())
    cand, base, ratios = [], [], []

    def batch(fn):
        start = time.perf_counter()
        out = None
        for _ in range(calls):
            out = fn()
        block(out)
        return (time.perf_counter() - start) / calls

    for r in range(rounds):
        if r % 2 == 0:
            c = batch(candidate)
            b = batch(baseline)
        else:
            b = batch(baseline)
            c = batch(candidate)
        cand.append(c)
        base.append(b)
        ratios.append(c / b)
    q1, q3 = _quartiles(ratios)
    return Timing(candidate=statistics.median(cand), baseline=statistics.median(base),
                  ratio=statistics.median(ratios), ratio_q1=q1, ratio_q3=q3, rounds=rounds)


# ------------------------------------------------------------------------------------------------
# Formatting.
# ------------------------------------------------------------------------------------------------


def format_seconds(seconds: float) -> str:
    """``0.00123`` -> ``'1.23 ms'``; ``2.5e-5`` -> ``'25.0 µs'``; ``3.2`` -> ``'3.20 s'``."""
    if seconds >= 1.0:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.1f} µs"


def format_bytes(num: float) -> str:
    """Binary units: ``format_bytes(3 * 2**20) == '3.00 MiB'``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(num) < 1024.0 or unit == "GiB":
            return f"{num:.0f} B" if unit == "B" else f"{num:.2f} {unit}"
        num /= 1024.0
    return f"{num:.2f} GiB"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub Markdown table (cells converted with ``str``)."""
    lines = ["| " + " | ".join(str(h) for h in headers) + " |",
             "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def doc_to_markdown(doc: str, *, skip_first: bool = True, stop_at: str = "Run:") -> str:
    """A module docstring as Markdown: paragraphs unwrapped, ``*`` bullets kept one per line.

    Args:
      doc: the docstring.
      skip_first: drop the first paragraph (the one-line title).
      stop_at: drop the paragraph starting with this text and everything after it.
    """
    paragraphs = [p.strip("\n") for p in doc.strip().split("\n\n")]
    if skip_first:
        paragraphs = paragraphs[1:]
    out = []
    for par in paragraphs:
        if stop_at and par.lstrip().startswith(stop_at):
            break
        items, current = [], []
        for line in par.split("\n"):
            if line.lstrip().startswith("* ") and current:
                items.append(" ".join(current))
                current = []
            current.append(line.strip())
        items.append(" ".join(current))
        text = "\n".join(items).replace("``", "`")
        out.append(re.sub(r":[a-z]+:`([^`]+)`", r"`\1`", text))
    return "\n\n".join(out) + "\n"
