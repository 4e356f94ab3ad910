"""The trainer's configuration: one dataclass that declares every flag.

Every field of :class:`TrainConfig` is a flag of ``python -m examples.train`` (``d_model`` is
``--d-model``), declared once with :func:`option`: its default, help text, allowed values and
bounds. :func:`build_parser` generates the argparse parser from these declarations and
:meth:`TrainConfig.resolve` checks the declared bounds; neither repeats a flag by hand.

Fields left at ``None`` are resolved by :meth:`TrainConfig.resolve` (for example the peak learning
rate depends on the optimizer); a run's ``config.json`` stores the resolved values. Invalid values
raise :class:`ConfigError`, which names the flag; the command line turns it into an argparse error
(one line, exit code 2).

Who checks what: the hyperparameters that only optaxsched's schedules and optimizers consume
(``--uba-phi``, ``--power-a``, ``--power-b``, ``--refine-smoothing``, ``--spam-threshold``, the
order of ``--decay-points``, the room ``wsd`` leaves for its warmup, a positive ``--end-lr`` for
exponential decays) are validated by the library when the run builds them, and
:func:`library_error` turns its error into a :class:`ConfigError` naming the flag. Declared here
are the bounds the library cannot check: the trainer's own settings (model, data, budget,
evaluation, output), the values that go to optax's unvalidated transforms (AdamW's and SGD's
betas, momentum, weight decay, clipping, the cosine and constant schedules), flag combinations,
and files and directories.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import typing
from typing import Any

from examples.data import CORPORA
from examples.model import MODELS

__all__ = [
    "SCHEDULES",
    "OPTIMIZERS",
    "DECAY_SHAPES",
    "AVERAGES",
    "ConfigError",
    "TrainConfig",
    "build_parser",
    "config_from_args",
    "flag",
    "library_error",
    "option",
]

SCHEDULES: tuple[str, ...] = ("constant", "cosine", "linear", "wsd", "wsd_s", "rex", "power",
                              "infinite", "uba", "inverse_sqrt", "refined")
"""Values of ``--schedule``: ``cosine`` is optax's warmup-cosine; the rest are optaxsched's."""

AUTOLRS = "autolrs"
"""``--schedule autolrs``: not a fixed schedule but a stage-wise search (``examples.autolrs_run``,
which replaces the trainer's loop)."""

OPTIMIZERS: tuple[str, ...] = ("adamw", "spam", "stable_spam", "sgd")
"""Values of ``--optimizer``."""

DECAY_SHAPES: tuple[str, ...] = ("1-sqrt", "linear", "cosine", "square", "exponential",
                                 "harmonic")
"""Values of ``--decay-shape`` (the decay of ``wsd`` and ``wsd_s``)."""

ADAM_LIKE = ("adamw", "spam", "stable_spam")

# Fields that do not change the training trajectory: they may differ when a run is resumed.
RESUME_FREE = ("out", "resume", "overwrite", "stop_at", "progress", "checkpoint_every",
               "eval_every", "eval_batches", "devices", "keep_checkpoints", "fsdp",
               "coordinator", "num_processes", "process_id")

AVERAGES: tuple[str, ...] = ("none", "ema", "tail")
"""Values of ``--average``: the parameter average ``optaxsched.average_params`` keeps."""


class ConfigError(ValueError):
    """An invalid trainer setting; ``flag`` is the command-line flag it concerns."""

    def __init__(self, flag_name: str, message: str):
        super().__init__(f"argument {flag_name}: {message}")
        self.flag = flag_name
        self.detail = message


def flag(field_name: str) -> str:
    """The command-line flag of a config field: ``d_model`` -> ``--d-model``."""
    return "--" + field_name.replace("_", "-")


# The library's arguments, by the trainer flag that sets them (the library's errors name them).
_LIBRARY_ARGUMENTS = {
    "peak_value": "--peak-lr", "end_value": "--end-lr", "warmup_steps": "--warmup-steps",
    "warmup_tokens": "--warmup-steps", "decay_fraction": "--decay-fraction",
    "decay_tokens": "--decay-fraction", "decay_shape": "--decay-shape",
    "decay_points": "--decay-points", "phi": "--uba-phi", "a": "--power-a", "b": "--power-b",
    "plateau_value": "--plateau-fraction", "smoothing": "--refine-smoothing", "b1": "--b1",
    "b2": "--b2", "weight_decay": "--weight-decay", "threshold": "--spam-threshold",
    "reset_interval": "--reset-interval",
}


def library_error(err: ValueError, fallback: str, context: str = "") -> ConfigError:
    """The :class:`ConfigError` of a library ``ValueError``.

    optaxsched's errors read ``"<function>: <argument> must ..."``; the flag is the one that sets
    that argument, else ``fallback`` (the error then says which setting the library refused).

    Args:
      err: the library's error.
      fallback: the flag to name when the error's argument is not one a flag sets directly.
      context: a prefix for the message when it names ``fallback`` (e.g. ``"cannot refine its
        norms: "``).
    """
    match = re.match(r"\s*[\w.]+: (\w+) must", str(err))
    name = _LIBRARY_ARGUMENTS.get(match.group(1)) if match else None
    return ConfigError(name, str(err)) if name else ConfigError(fallback, f"{context}{err}")


# ------------------------------------------------------------------------------------------------
# The declaration of a flag.
# ------------------------------------------------------------------------------------------------


def option(default: Any, help: str, *, low: float | None = None, high: float | None = None,  # noqa: A002
           above: float | None = None, choices: tuple[str, ...] | None = None,
           metavar: str | None = None, group: str | None = None) -> Any:
    """A :class:`TrainConfig` field that is a flag.

    Args:
      default: the default (``None``: resolved by :meth:`TrainConfig.resolve`, and optional).
      help: the flag's help text (``%%`` for a percent sign, as argparse wants).
      low: smallest allowed value (inclusive).
      high: largest allowed value (inclusive).
      above: the value must be strictly greater than this.
      choices: the allowed values of a string flag.
      metavar: argparse's metavar.
      group: starts a new section of ``--help`` with this title (the fields after it belong to
        it until the next ``group``).
    """
    return dataclasses.field(default=default, metadata={
        "help": help, "low": low, "high": high, "above": above, "choices": choices,
        "metavar": metavar, "group": group})


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run (see ``python -m examples.train --help``).

    Each field's ``help`` (in its declaration below) documents it.
    """

    data: str = option("stdlib", "stdlib: characters of the installed Python stdlib's *.py "
                       "files; bigram: a synthetic Zipfian bigram language", choices=CORPORA,
                       group="data")
    corpus_bytes: int | None = option(None, "use only the first N bytes of the stdlib corpus "
                                      "(default: all)", low=1000)
    bigram_vocab: int = option(64, "vocabulary size of the bigram language", low=2, high=256)
    data_seed: int = option(0, "seed of the bigram language (not of the data order)", low=0)

    model: str = option("transformer", "decoder-only transformer, or an MLP next-token "
                        "classifier", choices=MODELS, group="model")
    d_model: int = option(128, "residual/embedding width", low=1)
    layers: int = option(2, "transformer blocks / MLP hidden layers", low=1)
    heads: int = option(4, "attention heads", low=1)
    d_ff: int | None = option(None, "hidden width of the MLPs (default: 4 * d_model)", low=1)
    context: int = option(8, "past tokens the MLP model sees", low=1)

    steps: int = option(300, "number of updates", low=1, group="budget")
    batch_size: int = option(32, "sequences per update (split over the devices)", low=1)
    seq_len: int = option(128, "tokens per sequence", low=2)
    seed: int = option(0, "seed of the initialisation, the data order and the spikes", low=0)

    schedule: str = option("linear", "learning-rate schedule; refined needs --refine-from; "
                           "autolrs searches one LR per stage (python -m examples.autolrs_run "
                           "for its settings)", choices=(*SCHEDULES, AUTOLRS), group="schedule")
    peak_lr: float | None = option(None, "peak learning rate (default: 3e-3 for Adam-type, 0.3 "
                                   "for sgd)", above=0.0)
    warmup_steps: int | None = option(None, "linear warmup (default: 5%% of --steps; 0 for "
                                      "refined)", low=0)
    end_lr: float = option(0.0, "final learning rate of the decaying schedules", low=0.0)
    decay_fraction: float = option(0.2, "share of the run in the final decay (wsd, power, "
                                   "infinite)", above=0.0, high=1.0)
    decay_shape: str = option("1-sqrt", "decay shape of wsd and wsd_s", choices=DECAY_SHAPES)
    decay_points: tuple[int, ...] | None = option(None, "wsd_s budgets, e.g. 150,300 (default: "
                                                  "half-way and the end)")
    uba_phi: float = option(0.5, "phi of the uba schedule (2 = cosine, small = WSD-like)")
    plateau_fraction: float = option(0.25, "infinite: the plateau as a fraction of --peak-lr",
                                     above=0.0, high=1.0)
    power_a: float = option(4.0, "a of the power schedule")
    power_b: float = option(-0.51, "b of the power schedule")
    refine_from: str | None = option(None, "run directory whose recorded gradient norms define "
                                     "--schedule refined", metavar="RUN_DIR")
    refine_kind: str | None = option(None, "refinement variant: sgd (l2 norms, w=G^-2) or adam "
                                     "(l1 norms, w=G^-1); default: adam for Adam-type "
                                     "optimizers, sgd for sgd", choices=("sgd", "adam"))
    refine_smoothing: float = option(0.1, "relative median-filter width of the refinement")

    optimizer: str = option("adamw", "optimizer", choices=OPTIMIZERS, group="optimizer")
    b1: float = option(0.9, "Adam beta1", low=0.0, high=1.0)
    b2: float = option(0.95, "Adam beta2", low=0.0, high=1.0)
    weight_decay: float | None = option(None, "weight decay of the kernels (default: 0.1 "
                                        "decoupled for Adam-type, 0 for sgd)", low=0.0)
    momentum: float = option(0.9, "sgd momentum", low=0.0, high=1.0)
    clip_norm: float = option(0.0, "clip the global gradient norm to this value (0: off)",
                              low=0.0)
    spam_threshold: float = option(5000.0, "spam: a coordinate spikes when g^2 > threshold * v")
    reset_interval: int | None = option(None, "spam/stable_spam: momentum reset every N steps "
                                        "(default: the optimizer's, 500 for spam, 1000 for "
                                        "stable_spam)", low=1)
    nap: bool = option(False, "Normalize-and-Project: keep the norm of every kernel that feeds "
                       "a normalisation layer at its initial value")
    record_grad_norms: bool = option(False, "record per-step l2 and l1 gradient norms in the "
                                     "optimizer state (for --schedule refined in a later run)")
    average: str = option("none", "keep an average of the parameters in the optimizer state "
                          "(optaxsched.average_params, last in the chain): its validation loss "
                          "is val_loss_averaged in summary.json", choices=AVERAGES)
    inject_spikes: float = option(0.0, "multiply the gradients by --spike-factor on this random "
                                  "fraction of steps (spike benchmark)", low=0.0, high=1.0,
                                  metavar="RATE")
    spike_factor: float = option(1000.0, "gradient multiplier of an injected spike", above=0.0)

    eval_every: int | None = option(None, "validation loss every N steps and at the end "
                                    "(default: steps / 10)", low=1,
                                    group="evaluation, output, checkpoints")
    eval_batches: int = option(4, "validation batches (of --batch-size sequences) per "
                               "evaluation", low=1)
    checkpoint_every: int = option(0, "save an orbax checkpoint every N steps (0: only at the "
                                   "end)", low=0)
    keep_checkpoints: int = option(2, "checkpoints kept on disk", low=1)
    out: str | None = option(None, "run directory (config.json, metrics.jsonl, plots, "
                             "checkpoints); without it nothing is written", metavar="RUN_DIR")
    resume: bool = option(False, "continue the run in --out from its last checkpoint")
    overwrite: bool = option(False, "replace an existing run in --out")
    stop_at: int | None = option(None, "end this invocation after STEP updates (the schedule "
                                 "still spans --steps); continue with --resume", low=1,
                                 metavar="STEP")
    devices: int | None = option(None, "data-parallel over the first N devices (default: all)",
                                 low=1)

    fsdp: int = option(1, "shard the parameters and every optimizer-state leaf over a mesh axis "
                       "of N devices (FSDP); the devices form a (devices/N data, N fsdp) mesh "
                       "and the batch is split over all of them", low=1, metavar="N",
                       group="distribution (JAX's runtime; see examples/README.md)")
    coordinator: str | None = option(None, "multi-process run: jax.distributed.initialize's "
                                     "coordinator address (process 0's); default: "
                                     "$JAX_COORDINATOR_ADDRESS, else single-process unless a "
                                     "cluster (SLURM, TPU pod, ...) is detected",
                                     metavar="HOST:PORT")
    num_processes: int | None = option(None, "multi-process run: number of processes (default: "
                                       "$JAX_NUM_PROCESSES or the cluster's)", low=1)
    process_id: int | None = option(None, "multi-process run: this process's index (default: "
                                    "$JAX_PROCESS_ID or the cluster's)", low=0)
    progress: bool = option(True, "no progress bar")  # the flag is --no-progress

    # --------------------------------------------------------------------------------------------

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-serialisable dict."""
        out = dataclasses.asdict(self)
        if out["decay_points"] is not None:
            out["decay_points"] = list(out["decay_points"])
        return out

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """The config of a ``to_dict`` dict (unknown keys are an error)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"TrainConfig.from_dict: unknown fields {unknown}.")
        values = dict(values)
        if values.get("decay_points") is not None:
            values["decay_points"] = tuple(values["decay_points"])
        return cls(**values)

    @property
    def adam_like(self) -> bool:
        """Whether the optimizer's update is scale-free (Adam-type) rather than SGD."""
        return self.optimizer in ADAM_LIKE

    def resolve(self) -> TrainConfig:
        """Validates the fields and fills the ``None`` defaults.

        Defaults: ``peak_lr`` 3e-3 for Adam-type optimizers, 0.3 for SGD; ``warmup_steps`` 5% of
        the run (0 for ``refined``, whose shape makes its own warmup); ``d_ff`` 4·``d_model``;
        ``eval_every`` a tenth of the run; ``weight_decay`` 0.1 (decoupled) for Adam-type
        optimizers, 0 for SGD; ``refine_kind`` ``adam`` (ℓ1 norms) for Adam-type optimizers,
        ``sgd`` (ℓ2 norms) for SGD; ``decay_points`` for ``wsd_s``: half-way and the end.

        Returns:
          The resolved config (idempotent).

        Raises:
          ConfigError: a field is invalid; the error names its flag. (The settings only the
            library checks are checked when the run builds its schedule and optimizer.)
        """
        for field in dataclasses.fields(self):
            _check_declared(field, getattr(self, field.name))
        _check_combinations(self)
        changes: dict[str, Any] = {}
        if self.peak_lr is None:
            changes["peak_lr"] = 3e-3 if self.adam_like else 0.3
        if self.warmup_steps is None:
            changes["warmup_steps"] = 0 if self.schedule == "refined" else self.steps // 20
        if self.d_ff is None:
            changes["d_ff"] = 4 * self.d_model
        if self.eval_every is None:
            changes["eval_every"] = max(1, self.steps // 10)
        if self.weight_decay is None:
            changes["weight_decay"] = 0.1 if self.adam_like else 0.0
        if self.refine_kind is None and self.schedule == "refined":
            changes["refine_kind"] = "adam" if self.adam_like else "sgd"
        if self.decay_points is None and self.schedule == "wsd_s":
            half = max(1, self.steps // 2)
            changes["decay_points"] = (half, self.steps) if half < self.steps else (self.steps,)
        resolved = dataclasses.replace(self, **changes)
        _check_resolved(resolved)
        return resolved


# ------------------------------------------------------------------------------------------------
# Validation: the declared bounds, then what no single field can say.
# ------------------------------------------------------------------------------------------------


def _field_type(field: dataclasses.Field) -> type:
    """The field's value type: ``int | None`` -> ``int``; ``tuple[int, ...]`` -> ``tuple``."""
    hint = typing.get_type_hints(TrainConfig)[field.name]
    kinds = [typing.get_origin(t) or t for t in typing.get_args(hint)] or [hint]
    return next(t for t in kinds if t is not type(None))


def _check_declared(field: dataclasses.Field, value: Any) -> None:
    """Checks a value against its field's type, choices and bounds (``None`` is allowed where
    it is the default: it is resolved later)."""
    meta, name = field.metadata, flag(field.name)
    if value is None and field.default is None:
        return
    kind = _field_type(field)
    if meta["choices"] is not None:
        if value not in meta["choices"]:
            raise ConfigError(name, f"invalid choice: {value!r} (choose from "
                              f"{', '.join(repr(c) for c in meta['choices'])})")
        return
    if kind not in (int, float):
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            (kind is int and not isinstance(value, int)):
        raise ConfigError(name, f"must be {'an integer' if kind is int else 'a number'}, "
                          f"got {value!r}")
    if value != value or value in (float("inf"), float("-inf")):
        raise ConfigError(name, f"must be a finite number, got {value!r}")
    low, high, above = meta["low"], meta["high"], meta["above"]
    if (low is not None and value < low) or (high is not None and value > high) or \
            (above is not None and value <= above):
        bounds = [f">= {low:g}" if low is not None else "", f"> {above:g}" if above is not None
                  else "", f"<= {high:g}" if high is not None else ""]
        allowed = " and ".join(b for b in bounds if b)
        if kind is int and low is not None and high is not None:
            allowed = f"in [{low}, {high}]"
        raise ConfigError(name, f"must be {'an integer ' if kind is int else ''}{allowed}, got "
                          f"{value:g}")


def _check_combinations(cfg: TrainConfig) -> None:
    """The checks that involve several flags, or files (the library cannot make them)."""
    if cfg.process_id is not None and cfg.num_processes is not None and \
            cfg.process_id >= cfg.num_processes:
        raise ConfigError("--process-id", f"must be smaller than --num-processes "
                          f"({cfg.num_processes}), got {cfg.process_id}")
    if cfg.model == "transformer" and cfg.d_model % cfg.heads:
        raise ConfigError("--heads", f"must divide --d-model ({cfg.d_model}), got {cfg.heads}")
    # optax's cosine and constant schedules do not check their warmup; optaxsched's do.
    if cfg.warmup_steps is not None and cfg.warmup_steps >= cfg.steps:
        raise ConfigError("--warmup-steps", f"must be smaller than --steps ({cfg.steps}), "
                          f"got {cfg.warmup_steps}")
    if cfg.stop_at is not None and cfg.stop_at > cfg.steps:
        raise ConfigError("--stop-at", f"must be at most --steps ({cfg.steps}), got "
                          f"{cfg.stop_at}")
    if cfg.schedule == "refined" and not cfg.refine_from:
        raise ConfigError("--refine-from", "is required with --schedule refined (the run "
                          "directory of a run made with --record-grad-norms)")
    if cfg.refine_from and cfg.schedule != "refined":
        raise ConfigError("--refine-from", f"only applies to --schedule refined, got "
                          f"--schedule {cfg.schedule}")
    if (cfg.resume or cfg.checkpoint_every or cfg.stop_at) and not cfg.out:
        name = ("--resume" if cfg.resume else "--checkpoint-every" if cfg.checkpoint_every
                else "--stop-at")
        raise ConfigError(name, "needs --out RUN_DIR (checkpoints live there)")
    if cfg.resume and cfg.overwrite:
        raise ConfigError("--overwrite", "cannot be combined with --resume")
    if cfg.refine_from and cfg.out and \
            os.path.abspath(cfg.refine_from) == os.path.abspath(cfg.out):
        raise ConfigError("--refine-from", "must be another run's directory, not --out")


def _check_resolved(cfg: TrainConfig) -> None:
    """The checks of resolved defaults that the library cannot make."""
    # optax's cosine schedule would rise from --peak-lr to --end-lr.
    if cfg.end_lr > cfg.peak_lr:
        raise ConfigError("--end-lr", f"must be <= --peak-lr ({cfg.peak_lr:g}), got "
                          f"{cfg.end_lr:g}")
    # wsd_s's budgets end where its last decay point is; the run has --steps updates.
    if cfg.schedule == "wsd_s" and cfg.decay_points and cfg.decay_points[-1] > cfg.steps:
        raise ConfigError("--decay-points", f"must not exceed --steps ({cfg.steps}), got "
                          f"{cfg.decay_points[-1]}")


# ------------------------------------------------------------------------------------------------
# Command line: generated from the declarations.
# ------------------------------------------------------------------------------------------------


def _int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") \
            from None


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of ``python -m examples.train``, one flag per :class:`TrainConfig`
    field (a ``bool`` field that defaults to ``True`` is a ``--no-...`` flag)."""
    parser = argparse.ArgumentParser(
        prog="python -m examples.train",
        # One short usage line: an error is then two lines (usage, error), not a page of flags.
        usage="%(prog)s [flags]   (every flag: --help)",
        description="Train a small Flax (nnx) language model with optaxsched's schedules, "
                    "refined schedules, spike-aware optimizers and NaP. Writes RUN_DIR/"
                    "config.json, metrics.jsonl (one JSON object per step), PNG plots and "
                    "orbax checkpoints; --resume continues bit for bit.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    group = parser
    for field in dataclasses.fields(TrainConfig):
        meta, kind = field.metadata, _field_type(field)
        if meta["group"]:
            group = parser.add_argument_group(meta["group"])
        if kind is bool:
            name = flag(field.name) if not field.default else "--no-" + flag(field.name)[2:]
            group.add_argument(name, dest=field.name, help=meta["help"],
                               action="store_false" if field.default else "store_true")
            continue
        kwargs = {"default": field.default, "help": meta["help"], "metavar": meta["metavar"]}
        if meta["choices"] is not None:
            kwargs["choices"] = meta["choices"]
        elif kind in (int, float):
            kwargs["type"] = kind
        elif kind is tuple:
            kwargs["type"] = _int_list
        group.add_argument(flag(field.name), **kwargs)
    return parser


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The :class:`TrainConfig` of parsed arguments (not yet resolved)."""
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    return TrainConfig(**{k: v for k, v in vars(args).items() if k in names})
