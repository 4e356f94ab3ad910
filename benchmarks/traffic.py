"""Memory traffic of the spike optimizers' compiled steps against Adam's: a load-independent check.

The step-time ratios of ``step_time.py`` move with the load of the machine; what the compiled
program does per step does not. For each entry below this script compiles the same donated,
jitted step as ``step_time.py`` (``(params, state, grads) -> (params, state)``, MLP-shaped
float32 tree) without running it, and reads three things off the compiled program:

* **XLA bytes**: ``compiled.cost_analysis()["bytes accessed"]``, XLA's own estimate. It counts
  *every* branch of a ``lax.cond``/``lax.switch`` as if it ran, so for Stable-SPAM it includes
  the other branches (a step where AdaClip clips, a non-finite gradient) on top of the common
  path.
* **Passes on the common path** (Stable-SPAM: a step where nothing is clipped): the optimised
  HLO (``compiled.as_text()``) of the entry computation, outside any conditional, is walked
  instruction by instruction; every fusion, library call or copy that reads or writes a
  parameter-sized array (one of the 2-D kernels, which hold 99.9% of the entries) counts each
  distinct such operand once and its output once. Divided by the kernels' bytes this is the
  number of full-size array passes per step, what a memory-bound step costs on any machine.
  ``loops`` is the number of those instructions per kernel, ``branches`` the passes each branch
  of the step's conditionals adds on the steps that take it (Stable-SPAM: the common step, a
  step where AdaClip clips, a non-finite or overflowing gradient), ``temp`` XLA's temporary
  buffer bytes (``memory_analysis()``; a temporary that only a branch uses is allocated all the
  same but not touched on the common path).
* **Floors**: the fewest passes the algorithm allows, derived by hand (``FLOORS``), once for a
  backend that fuses a whole optimizer step into one loop with several outputs (XLA's GPU and
  TPU backends) and once for XLA's CPU backend, whose loops each write one array.

The ratios are candidate ÷ baseline of each measure, as in ``step_time.py``.

Run: ``.venv/bin/python benchmarks/traffic.py`` (``--size 64M`` for another parameter count,
``--no-write`` to leave ``benchmarks/RESULTS.md`` alone; the table goes into its ``traffic``
section). Compiling takes seconds; nothing is timed.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from collections.abc import Callable
from typing import NamedTuple

import jax
import optax

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402
import step_time  # noqa: E402

SECTION = "traffic"

# An array with at least this many entries is "parameter-sized" (the benchmark's kernels have
# 4·10^6 at 16M parameters; its biases and head have at most 2·10^4).
_FULL_SIZE = 2**16


class Floor(NamedTuple):
    """The fewest full-size array passes per step (in units of the parameters' bytes)."""

    fused: float  # one loop per step with several outputs (GPU/TPU XLA)
    cpu: float  # XLA's CPU backend: one output per loop
    why: str


# Per step, in units of one full-size array (P bytes). Adam with donated buffers and applied
# updates must read g, m, v, p and write m, v, p: 7. XLA's CPU backend makes one loop per output
# (it has no multi-output loop fusion), so Adam is three loops there: v (reads g, v; writes v),
# m (reads g, m; writes m) and the step (reads p, m, v; writes p): 3 + 3 + 4 = 10.
FLOORS: dict[str, Floor] = {
    "optax.adam": Floor(7, 10, "read g, m, v, p; write m, v, p. CPU: v 3 + m 3 + step 4"),
    "spam": Floor(7, 11, "Adam's arrays, nothing more (the clip is elementwise). CPU: the m "
                         "loop must also read v for the clip test g² > θ v (the old or the new "
                         "v: one read either way), 3 + 4 + 4"),
    "spam track_clips": Floor(7, 13, "as spam on a fused backend (the count is a reduction of "
                                     "values the loop computes anyway). CPU: the count is a "
                                     "loop of its own (a reduction cannot be an extra output "
                                     "of an elementwise loop) and reads g and v again: 11 + 2"),
    "stable_spam": Floor(8, 11, "Adam's 7 + one read of g for max|g| and Σg² together "
                                "(nothing is clipped on the common step, so the clipped "
                                "gradient's norm is √Σg²); a step where AdaClip clips reads g "
                                "once more (9): its threshold depends on this step's max. "
                                "CPU: 10 + 1 (+ 1 on a clipping step), with max|g| and Σg² "
                                "in one loop, which needs a maximum XLA:CPU vectorises "
                                "(_lowering.max_abs_and_sum_squares)"),
    "stable_spam track_clips": Floor(8, 11, "as stable_spam on the common step (nothing is "
                                            "clipped: the count is 0 unless the gradient is "
                                            "not finite, which the sum shows)"),
    "identity + adam": Floor(7, 10, "optax.adam"),
    "clip_by_global_norm + adam": Floor(8, 11, "Adam's 7 + one read of g for the global norm. "
                                               "CPU: 10 + 1 if the scaled gradient were "
                                               "recomputed in Adam's loops; optax's chain "
                                               "writes it out and reads it beside g: 15"),
    "clip_spikes + adam": Floor(9, 15, "Adam's 7 + the part's own second moment v' (read and "
                                       "written; it cannot share Adam's v). CPU: v' loop (g, "
                                       "v' -> v': 3) + Adam's v and m loops each also reading "
                                       "v' to redo the clip (4 + 4) + the step (4); 16 in "
                                       "practice, because XLA does not copy the clip's square "
                                       "root into two loops, so the clipped gradient is written "
                                       "out once (3 + 3 + 10)"),
}


class Measure(NamedTuple):
    name: str
    baseline: str
    xla_bytes: tuple[float, float]  # candidate, baseline (bytes)
    passes: tuple[float, float]  # common-path full-size passes
    loops: tuple[float, float]  # full-size instructions per kernel
    branches: tuple[float, ...]  # candidate's extra passes per branch index of its conditionals
    temp: tuple[float, float]  # temporaries, in units of the parameters' bytes
    floor: tuple[Floor, Floor]


# ------------------------------------------------------------------------------------------------
# Reading the optimised HLO.
# ------------------------------------------------------------------------------------------------

_SHAPE = re.compile(r"\b(pred|s8|u8|s16|u16|bf16|f16|s32|u32|f32|s64|u64|f64)\[([0-9,]*)\]")
_BYTES = {"pred": 1, "s8": 1, "u8": 1, "s16": 2, "u16": 2, "bf16": 2, "f16": 2, "s32": 4,
          "u32": 4, "f32": 4, "s64": 8, "u64": 8, "f64": 8}
_INSTR = re.compile(r"^\s*(?:ROOT\s+)?%(\S+)\s*=\s*(.*?)\s+([a-z][a-z0-9-]*)\((.*)$")
# Instructions that move no data of their own.
_FREE = {"parameter", "tuple", "get-tuple-element", "bitcast", "constant", "conditional",
         "after-all", "add-dependency", "opt-barrier", "partition-id", "replica-id"}


def _array_bytes(shape_text: str) -> list[int]:
    """Bytes of each full-size array in a shape string (a tuple shape may hold several)."""
    out = []
    for dtype, dims in _SHAPE.findall(shape_text):
        n = 1
        for d in filter(None, dims.split(",")):
            n *= int(d)
        if n >= _FULL_SIZE:
            out.append(n * _BYTES[dtype])
    return out


def _computations(hlo: str) -> dict[str, list[str]]:
    """The module's computations by name, as lists of instruction lines."""
    comps: dict[str, list[str]] = {}
    current = None
    for line in hlo.splitlines():
        head = re.match(r"^(?:ENTRY\s+)?%(\S+)\s.*\{\s*$", line)
        if head and not line.startswith(" "):
            current = "ENTRY" if line.startswith("ENTRY") else head.group(1)
            comps[current] = []
        elif line.startswith("}"):
            current = None
        elif current is not None:
            comps[current].append(line)
    return comps


class _Traffic(NamedTuple):
    bytes: int  # full-size bytes read and written by the computation's own instructions
    instructions: int  # instructions that touch a full-size array
    branches: tuple[int, ...]  # extra bytes of each branch index, summed over the conditionals

    @property
    def rare(self) -> int:
        """The largest extra of a branch (all conditionals taking the same branch index)."""
        return max(self.branches, default=0)


def _traffic(comps: dict[str, list[str]], name: str) -> _Traffic:
    """Full-size traffic of one computation, branches of its conditionals apart."""
    shapes: dict[str, str] = {}
    total = count = 0
    branch_bytes: list[int] = []
    for line in comps[name]:
        m = _INSTR.match(line)
        if not m:
            continue
        var, shape, op, rest = m.groups()
        shapes[var] = shape
        if op == "conditional":
            branches = re.search(r"branch_computations=\{([^}]*)\}", rest)
            names = ([b.strip().lstrip("%") for b in branches.group(1).split(",")] if branches
                     else [x.lstrip("%") for x in re.findall(r"(?:true|false)_computation=(%\S+?),",
                                                             rest)])
            extra = [_traffic(comps, b) for b in names if b in comps]
            for i, t in enumerate(extra):
                if i == len(branch_bytes):
                    branch_bytes.append(0)
                branch_bytes[i] += t.bytes + t.rare
            continue
        if op in _FREE:
            continue
        operands = re.findall(r"%([\w.\-]+)", rest.split("), ")[0] if "), " in rest else rest)
        read = sum(sum(_array_bytes(shapes.get(o, ""))) for o in dict.fromkeys(operands)
                   if o in shapes)
        written = sum(_array_bytes(shape))
        if read or written:
            total += read + written
            count += 1
    return _Traffic(total, count, tuple(branch_bytes))


def analyse(tx: optax.GradientTransformation, params) -> tuple[float, _Traffic, float]:
    """(XLA bytes accessed, common-path traffic, temporary bytes) of the donated step."""
    spec = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), params)

    def step(p, s, g):
        updates, s = tx.update(g, s, p)
        return optax.apply_updates(p, updates), s

    state = jax.eval_shape(tx.init, spec)
    compiled = jax.jit(step, donate_argnums=(0, 1)).lower(spec, state, spec).compile()
    cost = compiled.cost_analysis()
    if isinstance(cost, (list, tuple)):  # older jax: one dict per device
        cost = cost[0]
    traffic = _traffic(_computations(compiled.as_text()), "ENTRY")
    return float(cost["bytes accessed"]), traffic, float(
        compiled.memory_analysis().temp_size_in_bytes)


# ------------------------------------------------------------------------------------------------
# Entries: (candidate, baseline) names of step_time's registry, plus Adam against itself.
# ------------------------------------------------------------------------------------------------

ENTRIES: list[tuple[str, str]] = [
    ("optax.adam", "optax.adam"),
    ("spam", "optax.adam"),
    ("spam track_clips", "optax.adam"),
    ("stable_spam", "optax.adam"),
    ("stable_spam track_clips", "optax.adam"),
    ("clip_by_global_norm + adam", "identity + adam"),
    ("clip_spikes + adam", "clip_by_global_norm + adam"),
]


def _factory(name: str) -> Callable[[], optax.GradientTransformation]:
    if name == "optax.adam":
        return lambda: optax.adam(1e-3)
    if name == "identity + adam":
        return lambda: optax.chain(optax.identity(), optax.adam(1e-3))
    return step_time.REGISTRY[name].candidate


def measure_all(num_params: int) -> list[Measure]:
    params = jax.eval_shape(lambda: step_time.make_params(num_params))
    kernel_bytes = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(params)
                       if x.size >= _FULL_SIZE)
    seen: dict[str, tuple[float, _Traffic, float]] = {}
    rows = []
    for name, base in ENTRIES:
        for n in (name, base):
            if n not in seen:
                seen[n] = analyse(_factory(n)(), params)
        (cb, ct, ctemp), (bb, bt, btemp) = seen[name], seen[base]
        kernels = sum(1 for x in jax.tree.leaves(params) if x.size >= _FULL_SIZE)
        rows.append(Measure(
            name, base, (cb, bb), (ct.bytes / kernel_bytes, bt.bytes / kernel_bytes),
            (ct.instructions / kernels, bt.instructions / kernels),
            tuple(b / kernel_bytes for b in ct.branches),
            (ctemp / kernel_bytes, btemp / kernel_bytes), (FLOORS[name], FLOORS[base])))
    return rows


def table(rows: list[Measure]) -> str:
    out = []
    for r in rows:
        (cf, bf) = r.floor
        out.append([
            f"`{r.name}`", f"`{r.baseline}`",
            f"{r.xla_bytes[0] / r.xla_bytes[1]:.3f}",
            f"{r.passes[0]:g} / {r.passes[1]:g} = {r.passes[0] / r.passes[1]:.3f}",
            f"{r.loops[0]:g} / {r.loops[1]:g}",
            " / ".join(f"{b:g}" for b in r.branches) or "none",
            f"{r.temp[0]:.2f}",
            f"{cf.fused:g} / {bf.fused:g} = {cf.fused / bf.fused:.3f}",
            f"{cf.cpu:g} / {bf.cpu:g} = {cf.cpu / bf.cpu:.3f}"])
    return _common.markdown_table(
        ["candidate", "baseline", "XLA bytes ratio", "passes, common path (cand. / base.)",
         "loops per kernel", "branches: +passes", "temp (× P)",
         "floor, fused backend", "floor, XLA:CPU"], out)


def floors_text() -> str:
    return "\n".join(f"* `{name}`: fused {f.fused:g}, CPU {f.cpu:g}: {f.why}."
                     for name, f in FLOORS.items())


def main(argv: list[str] | None = None) -> list[Measure]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="16M", help="parameter count (default 16M)")
    parser.add_argument("--no-write", action="store_true", help="do not touch RESULTS.md")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    size = step_time._parse_size(args.size)
    rows = measure_all(size)
    text = table(rows)
    print(text)
    if not args.no_write:
        body = (_common.header(f"Memory traffic of the compiled step (issue 13), "
                               f"{step_time._size_label(size)} float32 parameters",
                               command=_common.command_line(),
                               wall_seconds=time.perf_counter() - start)
                + "\n" + _common.doc_to_markdown(__doc__) + "\n" + text
                + "\n\nFloors, in full-size array passes per step (P = the parameters' bytes):"
                + "\n\n" + floors_text() + "\n" + step_time._reading(SECTION))
        _common.write_section(SECTION, body)
    return rows


if __name__ == "__main__":
    main()
