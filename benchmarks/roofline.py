"""Step time as a fraction of the memory roofline: Adam, SPAM and Stable-SPAM (issue 13, item 4).

An optimizer step is memory-bound: it cannot run faster than the bytes it must move divided by
the device's memory bandwidth. For each entry this script times the donated, jitted step of
``step_time.py`` (``(params, state, grads) -> (params, state)`` on the same MLP-shaped tree,
cast to ``--dtype``; the state in whatever dtype the transform chooses for such parameters) and
reports:

* **must-move bytes** = P × the entry's fused floor (``traffic.FLOORS``: the fewest full-size
  array passes the algorithm allows on a backend that fuses the step into one loop with several
  outputs, as XLA's GPU and TPU backends do: Adam 7, SPAM 7, Stable-SPAM 8), P the parameters'
  bytes. Where a full-size state buffer is stored in another dtype than the parameters, each is
  counted once read and once written at its own size. Stable-SPAM's floor is that of a step on
  which AdaClip clips nothing, which is every timed step here: the gradient is the same on every
  step, so its maximum never exceeds AdaClip's running threshold.
* **achieved bandwidth** = must-move bytes / step time (median over rounds), and the **roofline
  fraction** = achieved / peak, against two peaks: the bandwidth a STREAM-like kernel measures on
  the same device in the same process, and the device's nominal peak from ``NOMINAL_PEAK_GBS``
  (keyed by ``jax.devices()[0].device_kind``, or ``--peak-gbs``; CPUs and unknown devices have
  none). The kernel is ``c = 0.5 c + b`` over two parameter-shaped trees, ``c`` donated and
  overwritten in place: 3 passes, best of the rounds, in float32 whatever ``--dtype`` (on a
  CPU, XLA's bfloat16 arithmetic is slower than memory: 4.8 GB/s against 25 GB/s in float32 at
  16M parameters, on the machine of the CPU run below). It updates ``c`` in place, as an optimizer
  updates its moments, rather than writing a third array: on a CPU a store to memory the loop
  has not read first also reads the line in (write-allocate), so ``c = 0.5 a + b`` into a
  donated ``c`` moves 4 passes while counting 3 (1.5x slower than in place, 16M float32, 2-core
  CPU).
* **backend bound**: the fused floor ÷ the passes the compiled step must make on this backend.
  XLA's CPU backend makes one loop per output (no multi-output loop fusion), so Adam's step
  makes 10 passes there, not 7, and its fraction cannot exceed 7/10 even at full bandwidth
  (SPAM and Stable-SPAM: 7/11 and 8/11); "of bound" is the fraction divided by that bound. On a
  fused backend the bound is 1.
* the step-time **ratios** of SPAM and Stable-SPAM to Adam, timed in the same rounds (the order
  of the entries rotates every round), as the median of the per-round ratios with its IQR.

Goals (issue 13): roofline fraction ≥ 0.8, against the nominal peak where the device has one and
else against the measured bandwidth; SPAM / Adam ≤ 1.05 (and Stable-SPAM / Adam within
``step_time``'s goal, 1.15). After timing, every entry's parameters and state must be finite and
the parameters must have moved (checked for every dtype; the script fails otherwise).

Run: ``GLIBC_TUNABLES=glibc.malloc.hugetlb=1 .venv/bin/python benchmarks/roofline.py`` (16M and
64M parameters, float32 and bfloat16; ``--sizes``, ``--dtype``, ``--only``, ``--peak-gbs``;
``--quick`` for a smoke run at a tiny size that writes nothing; ``--no-write`` to leave
``benchmarks/RESULTS.md`` alone, ``--results PATH`` to write the ``roofline`` section into
another copy of it, ``--json PATH`` for the rows as JSON). On the project's GPU machine, whose
``python3`` has a CUDA JAX: ``cp benchmarks/RESULTS.md $OUT/ && PYTHONPATH=$PWD python3
benchmarks/roofline.py --results $OUT/RESULTS.md --json $OUT/roofline.json``.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import re
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402
import step_time  # noqa: E402
import traffic  # noqa: E402

SECTION = "roofline"
BASELINE = "optax.adam"
DEFAULT_ENTRIES = ("optax.adam", "spam", "stable_spam")
FRACTION_GOAL = 0.8  # issue 13, item 4
# Ratio goals: step_time's registry (spam ≤ 1.05 is issue 13, item 4's; stable_spam ≤ 1.15).
RATIO_GOALS = {name: e.goal for name, e in step_time.REGISTRY.items() if e.goal is not None}
STREAM_PASSES = 3  # c = 0.5 c + b in place: read b and c, write c

# Nominal (published) memory bandwidth of one device, GB/s (10^9 bytes per second), matched in
# order against ``jax.devices()[0].device_kind`` (case-insensitive regular expressions; the first
# match wins, so the specific forms come first). Sources:
# * NVIDIA H200 (SXM and NVL): 4.8 TB/s; nvidia.com/en-us/data-center/h200/ (H200 datasheet).
# * NVIDIA H100: SXM5 3.35 TB/s, PCIe 2.0 TB/s, NVL 3.9 TB/s; nvidia.com/en-us/data-center/h100/
#   (H100 datasheet). JAX names the SXM part "NVIDIA H100 80GB HBM3".
# * NVIDIA A100: 80GB SXM4 2,039 GB/s, 80GB PCIe 1,935 GB/s, 40GB (SXM4 and PCIe) 1,555 GB/s;
#   NVIDIA A100 datasheet (nvidia-a100-datasheet-us-nvidia-1758950-r4-web.pdf).
# * Google TPU, per chip (cloud.google.com/tpu/docs/<version>): v4 1,200 GBps; v5e 819 GBps
#   (JAX: "TPU v5 lite"); v5p 2,765 GBps (JAX: "TPU v5"); v6e (Trillium) 1,638 GBps (JAX:
#   "TPU v6 lite").
NOMINAL_PEAK_GBS: list[tuple[str, float, str]] = [
    (r"\bH200\b", 4800.0, "NVIDIA H200: 4.8 TB/s HBM3e"),
    (r"\bH100\b.*\bNVL\b", 3900.0, "NVIDIA H100 NVL: 3.9 TB/s HBM3"),
    (r"\bH100\b.*\bPCIe\b", 2000.0, "NVIDIA H100 PCIe: 2.0 TB/s HBM2e"),
    (r"\bH100\b", 3350.0, "NVIDIA H100 SXM5: 3.35 TB/s HBM3"),
    (r"\bA100\b.*\b40\s?GB\b", 1555.0, "NVIDIA A100 40GB: 1,555 GB/s HBM2"),
    (r"\bA100\b.*\bPCIe\b", 1935.0, "NVIDIA A100 80GB PCIe: 1,935 GB/s HBM2e"),
    (r"\bA100\b", 2039.0, "NVIDIA A100 80GB SXM4: 2,039 GB/s HBM2e"),
    (r"^TPU v4$", 1200.0, "TPU v4: 1,200 GBps HBM2"),
    (r"^TPU v5 ?(lite|e)$", 819.0, "TPU v5e: 819 GBps HBM2"),
    (r"^TPU v5p?$", 2765.0, "TPU v5p: 2,765 GBps HBM2e"),
    (r"^TPU v6 ?(lite|e)$", 1638.0, "TPU v6e (Trillium): 1,638 GBps HBM"),
]


def nominal_peak(device_kind: str) -> tuple[float, str] | None:
    """``(GB/s, source)`` of the device kind's published memory bandwidth, or ``None``."""
    for pattern, gbs, source in NOMINAL_PEAK_GBS:
        if re.search(pattern, device_kind.strip(), re.IGNORECASE):
            return gbs, source
    return None


# ------------------------------------------------------------------------------------------------
# The measurement.
# ------------------------------------------------------------------------------------------------


class Peak(NamedTuple):
    measured_gbs: float  # STREAM-like kernel, best round
    nominal_gbs: float | None  # published or --peak-gbs; None when unknown
    nominal_source: str  # where the nominal peak comes from, or why there is none


class Row(NamedTuple):
    name: str
    dtype: str
    size: int  # parameter entries
    param_bytes: int  # P
    state_bytes: int
    floor_fused: float  # passes
    floor_backend: float  # passes the compiled step must make on this backend
    must_move: float  # bytes per step
    step: float  # median seconds per step
    step_q1: float
    step_q3: float
    achieved_gbs: float
    fraction_measured: float
    fraction_nominal: float | None

    @property
    def bound(self) -> float:
        """The highest fraction this backend allows: fused floor / this backend's floor."""
        return self.floor_fused / self.floor_backend

    @property
    def fraction(self) -> float:
        """The fraction the goal is checked on: against the nominal peak where known."""
        return self.fraction_measured if self.fraction_nominal is None else self.fraction_nominal


class Ratio(NamedTuple):
    name: str
    dtype: str
    size: int
    ratio: float  # median over rounds of step(name) / step(adam)
    q1: float
    q3: float
    goal: float | None


class Result(NamedTuple):
    device_kind: str
    backend: str
    peak: Peak
    rows: list[Row]
    ratios: list[Ratio]


def make_params(num_params: int, dtype: Any = jnp.float32) -> dict:
    """``step_time.make_params`` cast to ``dtype``."""
    return jax.tree.map(lambda x: x.astype(dtype), step_time.make_params(num_params))


def make_grads(params: dict, seed: int = 1) -> dict:
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda p: jnp.asarray(rng.normal(0, 1e-2, p.shape), p.dtype), params)


def tree_bytes(tree) -> int:
    return sum(int(x.size) * x.dtype.itemsize for x in jax.tree.leaves(tree)
               if hasattr(x, "dtype") and x.ndim > 0)


def must_move_bytes(floor_passes: float, params, state) -> float:
    """``floor_passes`` × P, corrected for full-size state buffers in another dtype than the
    parameters (each read once and written once at its own size). Full-size: a leaf of at least
    two dimensions with a kernel's shape (the kernels hold 99.9% of the entries)."""
    shapes = {x.shape: x.dtype.itemsize for x in jax.tree.leaves(params) if x.ndim >= 2}
    extra = sum(2 * int(x.size) * (x.dtype.itemsize - shapes[x.shape])
                for x in jax.tree.leaves(state)
                if hasattr(x, "shape") and x.ndim >= 2 and x.shape in shapes)
    return floor_passes * tree_bytes(params) + extra


class _Stepper:
    """One donated, jitted step per call on its own copy of the parameters and state."""

    def __init__(self, tx: optax.GradientTransformation, params, grads):
        def step(p, s, g):
            updates, s = tx.update(g, s, p)
            return optax.apply_updates(p, updates), s

        self._jitted = jax.jit(step, donate_argnums=(0, 1))
        self.params = jax.tree.map(jnp.copy, params)
        self.state = tx.init(self.params)
        self.grads = grads

    def __call__(self):
        self.params, self.state = self._jitted(self.params, self.state, self.grads)
        return self.params


class _Stream:
    """``c = 0.5 c + b`` over parameter-shaped trees, ``c`` donated and updated in place: 3 passes
    per call (read ``b`` and ``c``, write ``c``), the access pattern of an optimizer's step."""

    def __init__(self, b):
        self._jitted = jax.jit(
            lambda b, c: jax.tree.map(lambda y, x: x * jnp.asarray(0.5, x.dtype) + y, b, c),
            donate_argnums=(1,))
        self.b = b
        self.c = jax.tree.map(jnp.copy, b)

    def __call__(self):
        self.c = self._jitted(self.b, self.c)
        return self.c


def check_finite(name: str, params, state, initial) -> None:
    """Raises ``AssertionError`` unless every floating leaf of ``params`` and ``state`` is finite
    and some parameter moved away from ``initial`` (a step that rounds to nothing in a low
    precision would otherwise pass unnoticed)."""
    leaves = [x for x in jax.tree.leaves((params, state))
              if hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jnp.floating)]
    bad = [i for i, x in enumerate(leaves) if not bool(jnp.all(jnp.isfinite(x)))]
    if bad:
        raise AssertionError(f"{name}: {len(bad)} of {len(leaves)} parameter/state leaves hold "
                             f"non-finite values after the timed steps")
    moved = any(bool(jnp.any(p != q)) for p, q in zip(jax.tree.leaves(params),
                                                      jax.tree.leaves(initial), strict=True))
    if not moved:
        raise AssertionError(f"{name}: the parameters did not change over the timed steps")


def _batch(fn: Callable[[], Any], calls: int) -> float:
    start = time.perf_counter()
    out = None
    for _ in range(calls):
        out = fn()
    jax.block_until_ready(out)
    return (time.perf_counter() - start) / calls


def _quartiles(values: Sequence[float]) -> tuple[float, float]:
    if len(values) < 2:
        return values[0], values[0]
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[0], q[2]


def time_rotating(fns: dict[str, Callable[[], Any]], *, rounds: int, calls: int,
                  warmup: int = 2) -> dict[str, list[float]]:
    """Seconds per call of each function, per round; the order of the functions rotates every
    round so that a drift of a shared machine affects all alike."""
    for fn in fns.values():
        for _ in range(warmup):
            jax.block_until_ready(fn())
    names = list(fns)
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        k = r % len(names)
        for n in names[k:] + names[:k]:
            times[n].append(_batch(fns[n], calls))
    return times


def _auto_calls(fn: Callable[[], Any], target_s: float = 0.02, most: int = 200) -> int:
    """Calls per timed batch so that one batch lasts about ``target_s`` (one call's time is
    measured on a warm function)."""
    jax.block_until_ready(fn())
    one = _batch(fn, 1)
    return max(1, min(most, math.ceil(target_s / max(one, 1e-7))))


def run(num_params: int, dtype: str = "float32", names: Sequence[str] = DEFAULT_ENTRIES, *,
        rounds: int = 9, calls: int = 0, peak_gbs: float | None = None,
        warmup: int = 2) -> Result:
    """Times the entries and the STREAM-like kernel at one size and dtype (the script's core).

    Args:
      num_params: about how many parameter entries (``step_time.make_params``).
      dtype: the parameters' and gradients' dtype name (``"float32"``, ``"bfloat16"``).
      names: entries of ``traffic.FLOORS``; ``optax.adam`` is added for the ratios.
      rounds: timing rounds; calls: steps per timed batch (0: about 20 ms per batch).
      peak_gbs: nominal peak overriding the device table.
      warmup: untimed calls of each before timing.
    """
    names = list(dict.fromkeys([BASELINE, *names]))
    unknown = [n for n in names if n not in traffic.FLOORS]
    if unknown:
        raise ValueError(f"unknown entries {unknown}; known: {list(traffic.FLOORS)}")
    device = jax.devices()[0]
    backend = jax.default_backend()
    params = make_params(num_params, jnp.dtype(dtype))
    grads = make_grads(params)
    fns: dict[str, Callable[[], Any]] = {n: _Stepper(traffic._factory(n)(), params, grads)
                                         for n in names}
    # The bandwidth reference runs in float32 whatever the dtype: the device's bandwidth does not
    # depend on it, but XLA:CPU's bfloat16 arithmetic is slower than its memory.
    stream_b = jax.tree.map(lambda g: g.astype(jnp.float32), grads)
    fns["stream"] = _Stream(stream_b)
    calls = calls or _auto_calls(fns[BASELINE])
    times = time_rotating(fns, rounds=rounds, calls=calls, warmup=warmup)

    if peak_gbs is not None:
        nominal: tuple[float, str] | None = (float(peak_gbs), "--peak-gbs")
    else:
        nominal = nominal_peak(device.device_kind)
    p_bytes = tree_bytes(params)
    measured = STREAM_PASSES * tree_bytes(stream_b) / min(times["stream"]) / 1e9
    peak = Peak(measured, nominal[0] if nominal else None,
                nominal[1] if nominal else
                f"no nominal peak known for device kind {device.device_kind!r}")
    rows = []
    for n in names:
        stepper = fns[n]
        assert isinstance(stepper, _Stepper)
        check_finite(f"{n} ({dtype})", stepper.params, stepper.state, params)
        floor = traffic.FLOORS[n]
        move = must_move_bytes(floor.fused, params, stepper.state)
        step = statistics.median(times[n])
        q1, q3 = _quartiles(times[n])
        achieved = move / step / 1e9
        rows.append(Row(n, dtype, sum(int(x.size) for x in jax.tree.leaves(params)), p_bytes,
                        tree_bytes(stepper.state), floor.fused,
                        floor.cpu if backend == "cpu" else floor.fused, move, step, q1, q3,
                        achieved, achieved / measured,
                        None if peak.nominal_gbs is None else achieved / peak.nominal_gbs))
    ratios = []
    for n in names:
        if n == BASELINE:
            continue
        per_round = [c / b for c, b in zip(times[n], times[BASELINE], strict=True)]
        q1, q3 = _quartiles(per_round)
        ratios.append(Ratio(n, dtype, rows[0].size, statistics.median(per_round), q1, q3,
                            RATIO_GOALS.get(n)))
    del fns
    gc.collect()
    return Result(device.device_kind, backend, peak, rows, ratios)


# ------------------------------------------------------------------------------------------------
# Report.
# ------------------------------------------------------------------------------------------------


def _mark(ok: bool) -> str:
    return "✓" if ok else "✗"


def _gbs(x: float | None) -> str:
    return "—" if x is None else f"{x:,.1f}"


def peak_text(results: Sequence[Result]) -> str:
    """Device, nominal peak and the measured bandwidth of each run (size, dtype)."""
    first = results[0]
    p = first.peak
    measured = "; ".join(f"{step_time._size_label(r.rows[0].size)} {r.rows[0].dtype} "
                         f"{_gbs(r.peak.measured_gbs)} GB/s" for r in results)
    lines = [f"Device: `{first.device_kind}` (JAX backend `{first.backend}`).",
             f"Measured bandwidth (STREAM-like `c = 0.5 c + b`, {STREAM_PASSES} passes, best "
             f"round): {measured}."]
    if p.nominal_gbs is None:
        lines.append(f"Nominal peak: none ({p.nominal_source}; `--peak-gbs` sets one): the "
                     "fractions and the goal are against the measured bandwidth only.")
    else:
        lines.append(f"Nominal peak: {_gbs(p.nominal_gbs)} GB/s ({p.nominal_source}); measured "
                     f"/ nominal: " + ", ".join(f"{r.peak.measured_gbs / p.nominal_gbs:.2f}"
                                                for r in results)
                     + ". The goal is checked against the nominal peak.")
    return "  \n".join(lines) + "\n"


def rows_table(rows: Sequence[Row]) -> str:
    out = []
    for r in rows:
        goal = f"≥ {FRACTION_GOAL:g} {_mark(r.fraction >= FRACTION_GOAL)}"
        out.append([
            f"`{r.name}`", r.dtype, step_time._size_label(r.size),
            _common.format_bytes(r.param_bytes),
            f"{r.floor_fused:g} / {r.floor_backend:g}",
            _common.format_bytes(r.must_move),
            f"{_common.format_seconds(r.step)} [{_common.format_seconds(r.step_q1)}, "
            f"{_common.format_seconds(r.step_q3)}]",
            _gbs(r.achieved_gbs), f"{r.fraction_measured:.3f}",
            "—" if r.fraction_nominal is None else f"{r.fraction_nominal:.3f}",
            f"{r.bound:.3f}", f"{r.fraction / r.bound:.3f}", goal])
    return _common.markdown_table(
        ["entry", "dtype", "params", "P", "passes: fused floor / this backend",
         "must move", "step, median [IQR]", "achieved GB/s", "fraction vs measured",
         "fraction vs nominal", "backend bound", "of bound", "goal"], out)


def ratios_table(ratios: Sequence[Ratio]) -> str:
    out = []
    for r in ratios:
        goal = "" if r.goal is None else f"≤ {r.goal:.2f} {_mark(r.ratio <= r.goal)}"
        out.append([f"`{r.name}` / `{BASELINE}`", r.dtype, step_time._size_label(r.size),
                    f"{r.ratio:.3f} [{r.q1:.3f}, {r.q3:.3f}]", goal])
    return _common.markdown_table(["ratio", "dtype", "params", "median [IQR]", "goal"], out)


def report(results: Sequence[Result]) -> str:
    """The section's tables: the peaks, the rows, the ratios."""
    return "\n".join([peak_text(results),
                      rows_table([row for r in results for row in r.rows]),
                      ratios_table([ratio for r in results for ratio in r.ratios])])


def records(results: Sequence[Result]) -> dict:
    return {"machine": _common.machine_description(), "command": _common.command_line(),
            "results": [{"device_kind": r.device_kind, "backend": r.backend,
                         "peak": r.peak._asdict(),
                         "rows": [dict(row._asdict(), bound=row.bound) for row in r.rows],
                         "ratios": [x._asdict() for x in r.ratios]} for r in results]}


def _reading(path: str) -> str:
    """The section's hand-written reading, kept when the tables are regenerated."""
    previous = _common.read_section(SECTION, path) or ""
    marker = "### Reading"
    if marker in previous:
        return "\n" + previous[previous.index(marker):] + "\n"
    return ""


def main(argv: list[str] | None = None) -> list[Result]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="16M,64M",
                        help="comma-separated parameter counts (default 16M,64M)")
    parser.add_argument("--dtype", default=None,
                        help="comma-separated parameter dtypes (default float32,bfloat16; "
                             "float32 with --quick)")
    parser.add_argument("--only", default=",".join(DEFAULT_ENTRIES),
                        help=f"comma-separated entries of traffic.FLOORS (default "
                             f"{','.join(DEFAULT_ENTRIES)}; {BASELINE} is always timed)")
    parser.add_argument("--rounds", type=int, default=0,
                        help="timing rounds (default 15 on an accelerator, 9 on CPU)")
    parser.add_argument("--calls", type=int, default=0,
                        help="steps per timed batch (default: about 20 ms per batch)")
    parser.add_argument("--peak-gbs", type=float, default=None,
                        help="nominal peak bandwidth in GB/s, overriding the device table")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run at 100K parameters, 3 rounds, float32 unless --dtype "
                             "says otherwise; writes nothing")
    parser.add_argument("--no-write", action="store_true", help="do not touch RESULTS.md")
    parser.add_argument("--results", default=_common.RESULTS,
                        help="the RESULTS.md file whose roofline section is written")
    parser.add_argument("--json", default=None, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.rounds, args.calls, args.no_write = "100K", 3, 2, True
        args.dtype = args.dtype or "float32"
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in traffic.FLOORS]
    if unknown:
        parser.error(f"unknown entries {unknown}; known: {list(traffic.FLOORS)}")
    dtypes = [d.strip() for d in (args.dtype or "float32,bfloat16").split(",") if d.strip()]
    for d in dtypes:
        try:
            if not jnp.issubdtype(jnp.dtype(d), jnp.floating):
                raise TypeError(d)
        except TypeError:
            parser.error(f"--dtype: {d!r} is not a floating dtype")
    sizes = [step_time._parse_size(s) for s in args.sizes.split(",") if s.strip()]
    backend = jax.default_backend()
    rounds = args.rounds or (9 if backend == "cpu" else 15)
    kind = jax.devices()[0].device_kind
    nominal = (args.peak_gbs, "--peak-gbs") if args.peak_gbs else nominal_peak(kind)
    print(f"device kind {kind!r}, backend {backend}, sizes "
          f"{', '.join(step_time._size_label(s) for s in sizes)}, dtypes {', '.join(dtypes)}, "
          f"{rounds} rounds", flush=True)
    print(f"nominal peak: {nominal[0]:,.0f} GB/s ({nominal[1]})" if nominal else
          f"nominal peak: NONE KNOWN for device kind {kind!r}: fractions are against the "
          f"measured bandwidth only (--peak-gbs sets one)", flush=True)
    start = time.perf_counter()
    results = []
    for size in sizes:
        for dtype in dtypes:
            res = run(size, dtype, names, rounds=rounds, calls=args.calls,
                      peak_gbs=args.peak_gbs)
            results.append(res)
            print(f"-- {step_time._size_label(res.rows[0].size)} {dtype}: measured "
                  f"{res.peak.measured_gbs:,.1f} GB/s", flush=True)
            for r in res.rows:
                print(f"   {r.name:24s} step {_common.format_seconds(r.step):>10s}  "
                      f"{r.achieved_gbs:9,.1f} GB/s  fraction {r.fraction_measured:.3f} vs "
                      f"measured" + ("" if r.fraction_nominal is None else
                                     f", {r.fraction_nominal:.3f} vs nominal")
                      + f"  (bound here {r.bound:.3f})", flush=True)
            for r in res.ratios:
                print(f"   {r.name} / {BASELINE}: {r.ratio:.3f} [{r.q1:.3f}, {r.q3:.3f}]",
                      flush=True)
    wall = time.perf_counter() - start
    text = report(results)
    print(text)
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(records(results), f, indent=1, ensure_ascii=False)
            f.write("\n")
        print(f"wrote {args.json}")
    if not args.no_write:
        title, command = "Step time against the memory roofline (issue 13, item 4)", \
            _common.command_line()
        tunables = os.environ.get("GLIBC_TUNABLES")
        if tunables:
            command = f"GLIBC_TUNABLES={tunables} {command}"
        body = (_common.header(title, command=command, wall_seconds=wall)
                + "\n" + _common.doc_to_markdown(__doc__) + "\n" + text)
        _common.write_section(SECTION, body + _reading(args.results), args.results)
        print(f"wrote the {SECTION} section of {args.results}")
    return results


if __name__ == "__main__":
    main()
