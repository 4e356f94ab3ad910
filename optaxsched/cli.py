"""The ``optaxsched`` console script: thin argparse wrappers around the public API.

Each subcommand lives in one ``_add_<name>(subparsers)`` function that builds its parser and sets
``func``; ``main`` returns the function's exit code. Bad arguments exit with code 2 and a message
that names the argument (argparse's own convention), never a traceback.
"""

from __future__ import annotations

import argparse
import inspect
import os
import re
import sys
from typing import TYPE_CHECKING, NoReturn, cast, overload

if TYPE_CHECKING:
    from optaxsched._types import RefineKind

__all__ = ["main", "build_parser"]


class _ArgumentError(Exception):
    """A library ``ValueError`` raised while running a subcommand: reported like argparse's."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="optaxsched",
        description="Learning-rate schedules, refined schedules and loss forecasts for optax.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in _SUBCOMMANDS:
        add(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ValueError as err:  # validation errors from the library: a usage error, not a crash.
        _exit(parser, args, str(err))
    except ImportError as err:  # an optional extra is not installed (matplotlib for pictures)
        _exit(parser, args, str(err) if "pip install" in str(err) else
              f"{err}. Plotting needs matplotlib: pip install 'optaxsched[plot]'.")
    except OSError as err:  # writing an output: permissions, a full disk, a file in the way
        target = f" {err.filename}" if err.filename else ""
        _exit(parser, args, f"cannot write{target}: {err.strerror or err}.")


def _exit(parser: argparse.ArgumentParser, args, message: str) -> NoReturn:
    """Exit code 2 and one line on stderr, the way argparse reports a usage error."""
    line = " ".join(message.split())
    parser.exit(2, f"{parser.prog} {args.command}: error: {line}\n")


@overload
def _writable(option: str, path: str) -> str: ...
@overload
def _writable(option: str, path: None) -> None: ...
def _writable(option: str, path: str | None) -> str | None:
    """``path`` with its parent directories created (a user expects ``-o runs/new/x.png`` to
    work); a named error when they cannot be (a file in the way, no permission)."""
    if path is None:
        return None
    parent = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise ValueError(f"{option} must be a file path, got the directory {path!r}.")
    try:
        os.makedirs(parent, exist_ok=True)
    except OSError as err:
        raise ValueError(f"{option}: cannot create the directory {parent!r} for {path!r}: "
                         f"{err.strerror or err}.") from None
    return path


def _require_matplotlib() -> None:
    """Fails before any work when the plotting extra is missing (ImportError with the fix)."""
    from optaxsched import plot

    plot._pyplot()


def _image(option: str, path: str | None) -> None:
    """Fails before any work when ``path`` names an image format matplotlib cannot write (its
    own error came after the work and named neither the option nor the path). A path without
    an extension is written as PNG, as matplotlib does."""
    if path is None:
        return
    _require_matplotlib()
    from matplotlib.backend_bases import FigureCanvasBase

    formats = sorted(FigureCanvasBase.get_supported_filetypes())
    extension = os.path.splitext(path)[1][1:].lower()
    if extension and extension not in formats:
        raise ValueError(f"{option} must be an image file ending in one of "
                         f"{', '.join('.' + f for f in formats)}, got {path!r}.")


# ---------------------------------------------------------------------------------------------
# plot: one sub-subcommand per schedule, generated from the schedule's signature and docstring so
# that `--help` documents every argument and can never drift from the library.

_PLOT_SCHEDULES = ("linear_decay", "wsd", "wsd_s", "rex", "power", "infinite", "uba",
                   "inverse_sqrt")


def _docstring_args(func) -> dict[str, str]:
    """``{argument: description}`` from a Google-style ``Args:`` section."""
    doc = inspect.getdoc(func) or ""
    match = re.search(r"^Args:\n(.*?)(?:^\S|\Z)", doc, flags=re.M | re.S)
    if not match:
        return {}
    described: dict[str, str] = {}
    name = None
    for line in match.group(1).splitlines():
        head = re.match(r"^ {2,4}(\*{0,2}\w+)(?: \([^)]*\))?:\s*(.*)$", line)
        if head:
            name = head.group(1)
            described[name] = head.group(2).strip()
        elif name and line.strip():
            described[name] += " " + line.strip()
    return described


def _argument_type(parameter: inspect.Parameter):
    """(type, nargs) for an argparse option, from the annotation or the default value."""
    annotation = parameter.annotation
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
    text = str(text)
    default = parameter.default
    if isinstance(default, bool):
        return None, None  # handled as a flag
    is_sequence = any(word in text for word in ("Sequence", "list", "tuple"))
    if is_sequence or isinstance(default, (list, tuple)):
        return (int if "int" in text and "float" not in text else float), "+"
    if isinstance(default, str) or text.startswith("str") or "Callable" in text:
        return str, None
    if isinstance(default, int) and "float" not in text:
        return int, None
    if "int" in text and "float" not in text:
        return int, None
    return float, None


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


def _add_schedule_parser(subparsers, name: str, func) -> None:
    doc = inspect.getdoc(func) or ""
    summary = doc.splitlines()[0] if doc else name
    parser = subparsers.add_parser(name, help=summary, description=summary)
    described = _docstring_args(func)
    for parameter in inspect.signature(func).parameters.values():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        help_text = described.get(parameter.name, "").replace("``", "")
        required = parameter.default is inspect.Parameter.empty
        if isinstance(parameter.default, bool):
            parser.add_argument(_option(parameter.name), action=argparse.BooleanOptionalAction,
                                default=parameter.default, help=help_text)
            continue
        kind, nargs = _argument_type(parameter)
        if not required and parameter.default is not None:
            help_text += f" (default: {parameter.default!r})"
        parser.add_argument(_option(parameter.name), dest=f"schedule__{parameter.name}", type=kind,
                            nargs=nargs, required=required, metavar=parameter.name.upper(),
                            default=None if required else parameter.default, help=help_text)
    parser.add_argument("-o", "--output", required=True,
                        help="where to write the figure (.png, .pdf or .svg)")
    parser.add_argument("--plot-steps", type=int, default=None,
                        help="how many steps to draw (default: the schedule's total_steps, its "
                             "last decay point, or total_tokens / tokens_per_step, else 10000)")
    parser.add_argument("--log-y", action="store_true", help="logarithmic learning-rate axis")
    parser.add_argument("--print-every", type=int, default=0,
                        help="also print the value every N steps as a table (0: do not print)")
    parser.set_defaults(func=_run_plot, schedule_name=name, schedule_factory=func)


def _run_plot(args) -> int:
    from optaxsched import plot

    kwargs = {key[len("schedule__"):]: value for key, value in vars(args).items()
              if key.startswith("schedule__")}
    schedule = args.schedule_factory(**kwargs)
    steps = args.plot_steps
    if steps is None:
        if kwargs.get("total_steps"):
            steps = kwargs["total_steps"]
        elif kwargs.get("decay_points"):
            steps = int(max(kwargs["decay_points"]))
        elif kwargs.get("total_tokens") and kwargs.get("tokens_per_step"):
            steps = int(kwargs["total_tokens"] // kwargs["tokens_per_step"])
        else:
            steps = 10_000
    if steps <= 0:
        raise ValueError(f"--plot-steps must be a positive integer, got {steps!r}.")
    if steps > plot.MAX_SAMPLES:
        raise ValueError(f"--plot-steps must be at most {plot.MAX_SAMPLES} (the schedule is "
                         f"sampled at every step), got {steps!r}; pass a smaller --plot-steps.")
    if args.print_every < 0:  # range(0, n, -k) printed the header and no rows
        raise ValueError(f"--print-every must be a non-negative integer (0: do not print), got "
                         f"{args.print_every!r}.")
    _image("-o/--output", args.output)
    _writable("-o/--output", args.output)
    plot.schedules({args.schedule_name: schedule}, steps, path=args.output, log_y=args.log_y)
    if args.print_every:
        values = plot.sample(schedule, steps)
        print(f"{'step':>10}  {'learning rate':>14}")
        for step in range(0, steps + 1, args.print_every):
            print(f"{step:>10}  {values[step]:>14.6g}")
    print(f"wrote {args.output}")
    return 0


def _add_plot(subparsers) -> None:
    import optaxsched

    parser = subparsers.add_parser(
        "plot", help="plot a schedule to an image file",
        description="Plot one schedule of the family. Each schedule takes its own arguments: "
                    "`optaxsched plot wsd --help`.")
    schedules = parser.add_subparsers(dest="schedule", required=True, metavar="SCHEDULE")
    for name in _PLOT_SCHEDULES:
        _add_schedule_parser(schedules, name, getattr(optaxsched, name))


# The trainer's norm columns, and the refinement each is for (see optaxsched.refine).
_NORM_KEYS = {"sgd": "grad_norm_l2", "adam": "grad_norm_l1"}
_NORM_SYMBOLS = {"sgd": "l2", "adam": "l1"}
_CHOOSE_KIND = ("--kind sgd refines by the l2 norms (SGD-like optimizers), --kind adam by the l1 "
                "norms (Adam-family optimizers: adam, adamw, spam, ...)")


def _refine_kind_and_key(path: str, kind: str | None, key: str | None
                         ) -> tuple[RefineKind, str]:
    """The refinement variant and the column to read, by the rule of ``optaxsched.refine``.

    ``--kind`` may be omitted when the norms say which they are: ``--key`` names one of the
    trainer's columns (``grad_norm_l2``, ``grad_norm_l1``), or the log holds one of them only.
    A log holding both needs ``--kind``, and an explicit ``--kind`` must match the norms.
    """
    from optaxsched import _io

    if key is not None:
        named = {column: k for k, column in _NORM_KEYS.items()}.get(key)  # what its name says
        if kind is None:
            if named is None:
                raise ValueError(f"--kind is required: the column {key!r} (--key) does not say "
                                 f"which norm it holds; {_CHOOSE_KIND}.")
            return cast("RefineKind", named), key
        if named is not None and named != kind:
            raise ValueError(f"--kind {kind} refines by the {_NORM_SYMBOLS[kind]} norms, but "
                             f"--key {key} holds the {_NORM_SYMBOLS[named]} norms; pass --kind "
                             f"{named}, or --key {_NORM_KEYS[kind]}.")
        return cast("RefineKind", kind), key  # argparse's choices
    # The loader's own errors for the file (missing, empty, malformed) come first.
    columns = _io.norm_log_columns("load_grad_norms", path) or []
    present = [k for k in ("sgd", "adam") if _NORM_KEYS[k] in columns]
    if kind is None:
        if len(present) == 2:
            raise ValueError(f"{path} holds both grad_norm_l2 and grad_norm_l1, so --kind must be "
                             f"given: {_CHOOSE_KIND}.")
        if not present:
            raise ValueError(f"--kind is required: {path} does not say which norm it holds (no "
                             f"grad_norm_l2 or grad_norm_l1 column); {_CHOOSE_KIND}.")
        kind = present[0]
    elif present and kind not in present:  # the column read would be the other norm's
        other = present[0]
        raise ValueError(f"--kind {kind} refines by the {_NORM_SYMBOLS[kind]} norms "
                         f"({_NORM_KEYS[kind]}), but {path} holds only {_NORM_KEYS[other]}; "
                         f"pass --kind {other}, or record the {_NORM_SYMBOLS[kind]} norms.")
    return cast("RefineKind", kind), _NORM_KEYS[kind]


def _run_refine(args) -> int:
    import warnings

    import numpy as np

    from optaxsched import _checks, _io, _refinement

    where = "optaxsched refine"
    peak_value = _checks.check_float(where, "--peak-value", args.peak_value, minimum=0.0,
                                     strict_min=True)
    if args.total_steps is not None:  # the schedule is written out at every step
        _checks.check_int(where, "--total-steps", args.total_steps, minimum=2,
                          maximum=100_000_000)
    extension = os.path.splitext(args.output)[1].lower()
    if extension not in (".npy", ".csv", ".txt"):
        _checks.fail(where, "-o/--output", "a file ending in .npy, .csv or .txt", args.output)
    kind, key = _refine_kind_and_key(args.norms_file, args.kind, args.key)
    _image("--plot", args.plot)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        norms = _io.load_grad_norms(args.norms_file, key=key)
        multipliers = _refinement.refine(norms, kind=kind, smoothing=args.smoothing)
        if args.total_steps is None or args.total_steps == norms.size:
            values = peak_value * multipliers
        else:
            schedule = _refinement.refined_schedule(norms, peak_value, args.total_steps,
                                                   kind=kind, smoothing=args.smoothing)
            values = np.asarray(schedule(np.arange(args.total_steps)), dtype=np.float64)
        if args.plot:
            from optaxsched import plot

            plot.refinement(norms, kind=kind, smoothing=args.smoothing,
                            peak_value=peak_value, path=_writable("--plot", args.plot),
                            title=f"refined schedule ({kind}) from {args.norms_file}")
    seen = set()
    for warning in caught:
        if str(warning.message) not in seen:
            seen.add(str(warning.message))
            print(f"{where}: warning: {warning.message}", file=sys.stderr)
    _writable("-o/--output", args.output)
    if extension == ".npy":
        np.save(args.output, values)
    else:
        np.savetxt(args.output, values, fmt="%.9g")
    peak = int(np.argmax(values))
    source = "" if args.norms_file.lower().endswith(".npy") else f" ({key})"
    print(f"read {norms.size} norms{source} from {args.norms_file}")
    print(f"refined schedule ({kind}, smoothing {args.smoothing:g}): {values.size} steps, "
          f"peak {values[peak]:.6g} at step {peak} ({100.0 * peak / max(values.size - 1, 1):.1f}%"
          f" of the run), final value {values[-1]:.6g}")
    print(f"wrote {args.output}" + (f" and {args.plot}" if args.plot else ""))
    return 0


def _add_refine(subparsers) -> None:
    parser = subparsers.add_parser(
        "refine", help="turn a gradient-norm log into a refined learning-rate schedule",
        description="Refine a schedule from the gradient norms of a previous run (Defazio et "
                    "al. 2023, arXiv 2310.07831): eta_t ~ w_t * sum_{p>t} w_p with "
                    "w = G^-2 (sgd, l2 norms) or G^-1 (adam, l1 norms), G the median-smoothed "
                    "norms. Writes peak_value * multipliers, one value per step.")
    parser.add_argument("norms_file",
                        help="the norm log: .npy (1-D array), .npz (arrays named by --key, "
                             "optional 'step'), .csv/.txt (one column, or a header naming "
                             "columns; a 'step' column places values by step) or a trainer's "
                             "metrics.jsonl (keys 'step', 'grad_norm_l2', 'grad_norm_l1')")
    parser.add_argument("--kind", choices=("sgd", "adam"), default=None,
                        help="sgd: l2 norms, w = G^-2, for SGD-like optimizers; adam: l1 norms, "
                             "w = G^-1, for Adam-family optimizers. Required unless the log "
                             "holds only one of grad_norm_l2 and grad_norm_l1 (or --key names "
                             "one): then it follows from the norms")
    parser.add_argument("--peak-value", type=float, default=1.0,
                        help="peak learning rate the multipliers are scaled to (default: 1.0)")
    parser.add_argument("--smoothing", type=float, default=0.1,
                        help="relative median-filter width in [0, 1] (default: 0.1)")
    parser.add_argument("--key", default=None,
                        help="column (.csv), array (.npz) or key (.jsonl) to read (default: "
                             "grad_norm_l2 for --kind sgd, grad_norm_l1 for --kind adam)")
    parser.add_argument("--total-steps", type=int, default=None,
                        help="length of the new run: resample the schedule to this many steps "
                             "(default: the log's length)")
    parser.add_argument("-o", "--output", required=True,
                        help="where to write the schedule: .npy, or .csv/.txt (one value a line)")
    parser.add_argument("--plot", default=None,
                        help="also draw norms, smoothed norms and the schedule to this image")
    parser.set_defaults(func=_run_refine)


# ---------------------------------------------------------------------------------------------
# forecast: fit the scaling law with LR annealing to runs, predict schedules, plan a WSD decay.

_FORECAST_SCHEDULES = ("constant", "cosine", "linear", "wsd")


def _forecast_warnings(where: str, caught) -> None:
    seen = set()
    for warning in caught:
        if str(warning.message) not in seen:
            seen.add(str(warning.message))
            print(f"{where}: warning: {warning.message}", file=sys.stderr)


def _load_runs(where: str, paths, loss_key: str):
    import warnings

    import optaxsched

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        curves = [optaxsched.load_loss_curve(path, loss_key=loss_key) for path in paths]
    _forecast_warnings(where, caught)
    return curves


def _run_forecast_fit(args) -> int:
    import time

    import optaxsched

    where = "optaxsched forecast fit"
    curves = _load_runs(where, args.runs, args.loss_key)
    for path, curve in zip(args.runs, curves, strict=True):
        print(f"read {path}: {curve.lrs.size} steps, {curve.losses.size} losses "
              f"(steps {int(curve.steps[0])}..{int(curve.steps[-1])})")
    start = time.perf_counter()
    law = optaxsched.fit_annealing_law(curves, lam=args.lam, warmup_steps=args.warmup_steps,
                                       min_step=args.min_step, huber_delta=args.huber_delta,
                                       starts=args.starts)
    seconds = time.perf_counter() - start
    try:
        law.save(_writable("-o/--output", args.output))
    except OSError as err:
        raise ValueError(f"cannot write {args.output}: {err.strerror or err}.") from None
    print(f"fitted L = L0 + A*S1^-alpha - C*S2 on {law.n_points} points of {law.n_runs} run(s) "
          f"in {seconds:.2f} s (lam={law.lam:g}, warmup_steps={law.warmup_steps})")
    print(f"  L0={law.L0:.6g}  A={law.A:.6g}  alpha={law.alpha:.6g}  C={law.C:.6g}")
    print(f"  fit MAPE {100 * law.fit_mape:.3f}%")
    print(f"wrote {args.output}")
    return 0


def _forecast_schedule(args):
    """The schedule --schedule names, built from the command-line numbers (or None)."""
    import optax

    import optaxsched
    from optaxsched import _checks

    where = "optaxsched forecast"
    if args.schedule is None:
        return None
    if args.peak_value is None or args.total_steps is None:
        raise ValueError(f"--schedule {args.schedule} needs --peak-value and --total-steps.")
    peak = _checks.check_float(where, "--peak-value", args.peak_value, minimum=0.0,
                               strict_min=True)
    total = _checks.check_int(where, "--total-steps", args.total_steps, minimum=2,
                              maximum=100_000_000)  # the forecast samples every step
    warm = _checks.check_int(where, "--warmup-steps", args.warmup_steps, minimum=0,
                             maximum=total - 1)
    end = args.end_value
    if args.schedule == "constant":
        if not warm:
            return optax.constant_schedule(peak)
        return optax.join_schedules([optax.linear_schedule(0.0, peak, warm),
                                     optax.constant_schedule(peak)], [warm])
    if args.schedule == "cosine":
        end = _checks.check_float(where, "--end-value", end, minimum=0.0, maximum=peak)
        return optax.warmup_cosine_decay_schedule(0.0, peak, warm, total, end)
    if args.schedule == "linear":
        return optaxsched.linear_decay(peak, total, warmup_steps=warm, end_value=end)
    return optaxsched.wsd(peak, total, warmup_steps=warm, decay_fraction=args.decay_fraction,
                          decay_shape=args.decay_shape, end_value=end)


def _run_forecast_predict(args) -> int:
    import numpy as np

    import optaxsched
    from optaxsched._curves import sample_schedule

    where = "optaxsched forecast predict"
    _image("-o/--output", args.output)
    law = optaxsched.AnnealingLaw.load(args.law)
    if args.warmup_steps is None:
        args.warmup_steps = law.warmup_steps
    schedule = _forecast_schedule(args)
    observed = {}
    for path, curve in zip(args.observed, _load_runs(where, args.observed, args.loss_key),
                           strict=True):
        label = curve.name or path
        observed[label if label not in observed else path] = curve
    if schedule is None and not observed:
        raise ValueError("give --schedule (with --peak-value and --total-steps) or --observed.")
    warm = args.warmup_steps
    # Every prediction before the first line of the table: a law that overflows float64 is an
    # error (AnnealingLaw.predict), reported alone rather than after half a table.
    predictions = {label: law.predict(curve.lrs, warmup_steps=min(warm, curve.lrs.size - 1))
                   for label, curve in observed.items()}
    label = f"{args.schedule} (--schedule)"
    if schedule is not None:
        predicted = law.predict(schedule, args.total_steps, warmup_steps=warm)
    print(f"law: L0={law.L0:.6g}  A={law.A:.6g}  alpha={law.alpha:.6g}  C={law.C:.6g}  "
          f"lam={law.lam:g}")
    print(f"{'run':<24} {'steps':>8} {'predicted final':>16} {'observed final':>15} "
          f"{'MAPE after warmup':>18}")
    if schedule is not None:
        print(f"{label:<24} {predicted.size:>8} {predicted[-1]:>16.6g} {'':>15} {'':>18}")
        if args.csv:
            lrs = sample_schedule(schedule, args.total_steps)
            table = np.column_stack([np.arange(args.total_steps), lrs, predicted])
            try:
                np.savetxt(_writable("--csv", args.csv), table, delimiter=",",
                           header="step,lr,predicted_loss", comments="",
                           fmt=["%d", "%.9g", "%.9g"])
            except OSError as err:
                raise ValueError(f"cannot write {args.csv}: {err.strerror or err}.") from None
    for run_label, curve in observed.items():
        run_warm = min(warm, curve.lrs.size - 1)
        predicted = predictions[run_label]
        after = curve.steps >= run_warm
        truth, guess = curve.losses[after], predicted[curve.steps[after]]
        mape = float(np.mean(np.abs(guess - truth) / truth)) if truth.size else float("nan")
        print(f"{run_label:<24} {curve.lrs.size:>8} {predicted[-1]:>16.6g} "
              f"{curve.losses[-1]:>15.6g} {100 * mape:>17.3f}%")
    if args.output:
        from optaxsched import plot

        schedules = {label: schedule} if schedule is not None else None
        plot.forecast(law, schedules, total_steps=args.total_steps, observed=observed,
                      path=_writable("-o/--output", args.output), warmup_steps=warm,
                      title="loss forecast (scaling law with LR annealing)")
        print(f"wrote {args.output}")
    if args.csv and schedule is not None:
        print(f"wrote {args.csv}")
    return 0


def _run_forecast_plan(args) -> int:
    import optax

    import optaxsched

    law = optaxsched.AnnealingLaw.load(args.law)
    warm = law.warmup_steps if args.warmup_steps is None else args.warmup_steps
    ranking = optaxsched.plan_wsd(law, args.peak_value, args.total_steps, warmup_steps=warm,
                                  fractions=args.fractions, shapes=args.shapes,
                                  end_value=args.end_value)
    baselines = optaxsched.plan_schedules({
        "cosine": optax.warmup_cosine_decay_schedule(0.0, args.peak_value, warm,
                                                     args.total_steps, args.end_value),
        "linear": optaxsched.linear_decay(args.peak_value, args.total_steps, warmup_steps=warm,
                                          end_value=args.end_value),
    }, law, args.total_steps, warmup_steps=warm)
    print(f"predicted final loss after {args.total_steps} steps (peak {args.peak_value:g}, "
          f"warmup {warm}):")
    for entry in baselines:
        print(f"  {entry.name:<22} {entry.final_loss:.6g}")
    shown = ranking if args.top <= 0 else ranking[:args.top]
    for rank, entry in enumerate(shown, start=1):
        print(f"  {rank:>2}. {entry.name:<18} {entry.final_loss:.6g}")
    best = ranking[0]
    print(f"best WSD: decay_fraction={best.settings['decay_fraction']:g}, "
          f"decay_shape={best.settings['decay_shape']!r}")
    return 0


def _add_forecast(subparsers) -> None:
    # The defaults of the library's signatures, written once there.
    from optaxsched._forecast.fit import HUBER_DELTA, LAM_GRID
    from optaxsched._forecast.law import DEFAULT_LAM
    from optaxsched._forecast.plan import WSD_FRACTIONS, WSD_SHAPES

    parser = subparsers.add_parser(
        "forecast", help="fit loss curves and predict other schedules (scaling law with LR "
                         "annealing)",
        description="Loss-curve forecasts with L = L0 + A*S1^-alpha - C*S2 (Tissue et al. 2024, "
                    "arXiv 2408.11029): S1 is the area under the LR curve, S2 the annealing "
                    "area with momentum lam.")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    runs_help = ("a run directory (its metrics.jsonl with keys step, loss, lr), a .jsonl, a "
                 ".csv (columns lr, loss, optional step), a .npz (arrays lr, loss, optional "
                 "step) or a structured .npy (fields lr, loss, optional step)")

    fit = actions.add_parser("fit", help="fit the law to one or more runs",
                             description="Fit L0, A, alpha, C jointly to the runs (Huber loss on "
                                         "log-losses, L-BFGS from several starts) and write the "
                                         "law as JSON.")
    fit.add_argument("runs", nargs="+", metavar="RUN", help=runs_help)
    fit.add_argument("-o", "--output", required=True, help="where to write the law (JSON)")
    fit.add_argument("--lam", type=float, nargs="+", default=[DEFAULT_LAM],
                     help=f"momentum decay of the annealing area, in (0, 1); several values: "
                          f"fit each and keep the best fit, e.g. --lam "
                          f"{' '.join(f'{v:g}' for v in LAM_GRID)} (default: "
                          f"{DEFAULT_LAM})")
    fit.add_argument("--warmup-steps", type=int, default=0,
                     help="warmup length: rates before it count at the post-warmup rate, "
                          "losses before it are not fitted (default: 0)")
    fit.add_argument("--min-step", type=int, default=0,
                     help="also skip losses logged before this step (default: 0)")
    fit.add_argument("--loss-key", default="loss",
                     help="loss key or column to read, e.g. eval_loss (default: loss)")
    fit.add_argument("--huber-delta", type=float, default=HUBER_DELTA,
                     help=f"Huber threshold on log-losses (default: {HUBER_DELTA:g})")
    fit.add_argument("--starts", type=int, default=8,
                     help="number of L-BFGS starting points, 1..32 (default: 8)")
    fit.set_defaults(func=_run_forecast_fit)

    predict = actions.add_parser(
        "predict", help="predict a schedule's loss curve (and compare with observed runs)",
        description="Predict the loss curve of a schedule given by --schedule and its numbers, "
                    "and/or of observed runs from their own learning rates (reporting the "
                    "MAPE after warmup); optionally plot them.")
    predict.add_argument("law", help="a law written by `optaxsched forecast fit`")
    predict.add_argument("--schedule", choices=_FORECAST_SCHEDULES, default=None,
                         help="schedule to predict: constant, cosine (optax warmup cosine), "
                              "linear (optaxsched.linear_decay) or wsd (optaxsched.wsd)")
    predict.add_argument("--peak-value", type=float, default=None, help="peak learning rate")
    predict.add_argument("--total-steps", type=int, default=None, help="run length in steps")
    predict.add_argument("--warmup-steps", type=int, default=None,
                         help="warmup length (default: the law's)")
    predict.add_argument("--end-value", type=float, default=0.0,
                         help="final learning rate of cosine / linear / wsd (default: 0)")
    predict.add_argument("--decay-fraction", type=float, default=0.2,
                         help="wsd: fraction of the run spent decaying (default: 0.2)")
    predict.add_argument("--decay-shape", default="1-sqrt",
                         help="wsd: decay shape, e.g. 1-sqrt, linear, cosine (default: 1-sqrt)")
    predict.add_argument("--observed", nargs="+", default=[], metavar="RUN",
                         help="observed runs to compare with: " + runs_help)
    predict.add_argument("--loss-key", default="loss",
                         help="loss key or column of the observed runs (default: loss)")
    predict.add_argument("-o", "--output", default=None,
                         help="plot observed against predicted curves to this image")
    predict.add_argument("--csv", default=None,
                         help="write step, lr, predicted_loss of --schedule to this CSV")
    predict.set_defaults(func=_run_forecast_predict)

    plan = actions.add_parser(
        "plan", help="rank WSD decay fractions and shapes by predicted final loss",
        description="Search the decay fraction and shape of a WSD schedule with a fitted law; "
                    "cosine and linear decay are shown for comparison.")
    plan.add_argument("law", help="a law written by `optaxsched forecast fit`")
    plan.add_argument("--peak-value", type=float, required=True, help="peak learning rate")
    plan.add_argument("--total-steps", type=int, required=True, help="run length in steps")
    plan.add_argument("--warmup-steps", type=int, default=None,
                      help="warmup length (default: the law's)")
    plan.add_argument("--end-value", type=float, default=0.0,
                      help="final learning rate (default: 0)")
    plan.add_argument("--fractions", type=float, nargs="+", default=list(WSD_FRACTIONS),
                      help="decay fractions to try")
    plan.add_argument("--shapes", nargs="+", default=list(WSD_SHAPES),
                      help="decay shapes to try")
    plan.add_argument("--top", type=int, default=10,
                      help="how many WSD settings to print (0: all; default: 10)")
    plan.set_defaults(func=_run_forecast_plan)


# Subcommands register here, in the order `--help` lists them.
_SUBCOMMANDS: list = [_add_plot, _add_refine, _add_forecast]


if __name__ == "__main__":
    sys.exit(main())
