"""The trainer's configuration: one dataclass, its command line, and its validation.

Every field of :class:`TrainConfig` is a flag of ``python -m examples.train`` (``d_model`` is
``--d-model``). Fields left at ``None`` are resolved by :meth:`TrainConfig.resolve` (for example
the peak learning rate depends on the optimizer); a run's ``config.json`` stores the resolved
values. Invalid values raise :class:`ConfigError`, which names the flag; the command line turns it
into an argparse error (exit code 2).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
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


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run (see ``python -m examples.train --help``).

    Attributes are documented by the flags' help texts in :func:`build_parser`.
    """

    # Data.
    data: str = "stdlib"
    corpus_bytes: int | None = None
    bigram_vocab: int = 64
    data_seed: int = 0
    # Model.
    model: str = "transformer"
    d_model: int = 128
    layers: int = 2
    heads: int = 4
    d_ff: int | None = None
    context: int = 8
    # Budget.
    steps: int = 300
    batch_size: int = 32
    seq_len: int = 128
    seed: int = 0
    # Schedule.
    schedule: str = "linear"
    peak_lr: float | None = None
    warmup_steps: int | None = None
    end_lr: float = 0.0
    decay_fraction: float = 0.2
    decay_shape: str = "1-sqrt"
    decay_points: tuple[int, ...] | None = None
    uba_phi: float = 0.5
    plateau_fraction: float = 0.25
    power_a: float = 4.0
    power_b: float = -0.51
    refine_from: str | None = None
    refine_kind: str | None = None
    refine_smoothing: float = 0.1
    # Optimizer.
    optimizer: str = "adamw"
    b1: float = 0.9
    b2: float = 0.95
    weight_decay: float | None = None
    momentum: float = 0.9
    clip_norm: float = 0.0
    spam_threshold: float = 5000.0
    reset_interval: int | None = None
    nap: bool = False
    record_grad_norms: bool = False
    average: str = "none"
    inject_spikes: float = 0.0
    spike_factor: float = 1000.0
    # Evaluation, logging, checkpoints.
    eval_every: int | None = None
    eval_batches: int = 4
    checkpoint_every: int = 0
    keep_checkpoints: int = 2
    out: str | None = None
    resume: bool = False
    overwrite: bool = False
    stop_at: int | None = None
    devices: int | None = None
    fsdp: int = 1
    coordinator: str | None = None
    num_processes: int | None = None
    process_id: int | None = None
    progress: bool = True

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
        """Validates every field and fills the ``None`` defaults.

        Defaults: ``peak_lr`` 3e-3 for Adam-type optimizers, 0.3 for SGD; ``warmup_steps`` 5% of
        the run (0 for ``refined``, whose shape makes its own warmup); ``d_ff`` 4·``d_model``;
        ``eval_every`` a tenth of the run; ``weight_decay`` 0.1 (decoupled) for Adam-type
        optimizers, 0 for SGD; ``refine_kind`` ``adam`` (ℓ1 norms) for Adam-type optimizers,
        ``sgd`` (ℓ2 norms) for SGD; ``decay_points`` for ``wsd_s``: half-way and the end.

        Returns:
          The resolved config (idempotent).

        Raises:
          ConfigError: a field is invalid; the error names its flag.
        """
        self._validate()
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
        resolved._validate_resolved()
        return resolved

    # --------------------------------------------------------------------------------------------

    def _validate(self) -> None:
        def choice(name, choices):
            value = getattr(self, name)
            if value not in choices:
                raise ConfigError(flag(name), f"invalid choice: {value!r} (choose from "
                                  f"{', '.join(repr(c) for c in choices)})")

        def integer(name, minimum, optional=False, maximum=None):
            value = getattr(self, name)
            if value is None and optional:
                return
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(flag(name), f"must be an integer, got {value!r}")
            if value < minimum or (maximum is not None and value > maximum):
                allowed = (f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]")
                raise ConfigError(flag(name), f"must be an integer {allowed}, got {value}")

        def number(name, minimum=None, maximum=None, strict_min=False, optional=False):
            value = getattr(self, name)
            if value is None and optional:
                return
            if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                    value != value or value in (float("inf"), float("-inf")):
                raise ConfigError(flag(name), f"must be a finite number, got {value!r}")
            low_bad = minimum is not None and (value <= minimum if strict_min else value < minimum)
            if low_bad or (maximum is not None and value > maximum):
                low = "" if minimum is None else (f"> {minimum:g}" if strict_min
                                                  else f">= {minimum:g}")
                high = "" if maximum is None else f"<= {maximum:g}"
                raise ConfigError(flag(name), f"must be {' and '.join(x for x in (low, high) if x)}"
                                  f", got {value:g}")

        choice("data", CORPORA)
        choice("model", MODELS)
        choice("schedule", (*SCHEDULES, AUTOLRS))
        choice("optimizer", OPTIMIZERS)
        choice("decay_shape", DECAY_SHAPES)
        choice("average", AVERAGES)
        integer("fsdp", 1)
        integer("num_processes", 1, optional=True)
        integer("process_id", 0, optional=True)
        if self.process_id is not None and self.num_processes is not None and \
                self.process_id >= self.num_processes:
            raise ConfigError("--process-id", f"must be smaller than --num-processes "
                              f"({self.num_processes}), got {self.process_id}")
        if self.refine_kind is not None:
            choice("refine_kind", ("sgd", "adam"))
        integer("corpus_bytes", 1000, optional=True)
        integer("bigram_vocab", 2, maximum=256)
        integer("data_seed", 0)
        integer("d_model", 1)
        integer("layers", 1)
        integer("heads", 1)
        integer("d_ff", 1, optional=True)
        integer("context", 1)
        integer("steps", 1)
        integer("batch_size", 1)
        integer("seq_len", 2)
        integer("seed", 0)
        if self.model == "transformer" and self.d_model % self.heads:
            raise ConfigError("--heads", f"must divide --d-model ({self.d_model}), got "
                              f"{self.heads}")
        number("peak_lr", 0.0, strict_min=True, optional=True)
        integer("warmup_steps", 0, optional=True)
        if self.warmup_steps is not None and self.warmup_steps >= self.steps:
            raise ConfigError("--warmup-steps", f"must be smaller than --steps ({self.steps}), "
                              f"got {self.warmup_steps}")
        number("end_lr", 0.0)
        number("decay_fraction", 0.0, 1.0, strict_min=True)
        number("uba_phi", 0.0, strict_min=True)
        number("plateau_fraction", 0.0, 1.0, strict_min=True)
        number("power_a", 0.0, strict_min=True)
        number("power_b", maximum=0.0)
        number("refine_smoothing", 0.0, 1.0)
        number("b1", 0.0, 1.0)
        number("b2", 0.0, 1.0)
        number("weight_decay", 0.0, optional=True)
        number("momentum", 0.0, 1.0)
        number("clip_norm", 0.0)
        number("spam_threshold", 0.0, strict_min=True)
        integer("reset_interval", 1, optional=True)
        number("inject_spikes", 0.0, 1.0)
        number("spike_factor", 0.0, strict_min=True)
        integer("eval_every", 1, optional=True)
        integer("eval_batches", 1)
        integer("checkpoint_every", 0)
        integer("keep_checkpoints", 1)
        integer("stop_at", 1, optional=True)
        integer("devices", 1, optional=True)
        if self.stop_at is not None and self.stop_at > self.steps:
            raise ConfigError("--stop-at", f"must be at most --steps ({self.steps}), got "
                              f"{self.stop_at}")
        if self.decay_points is not None:
            points = self.decay_points
            if (not points or any(isinstance(p, bool) or not isinstance(p, int) for p in points)
                    or any(b <= a for a, b in zip(points, points[1:], strict=False))
                    or points[0] < 1):
                raise ConfigError("--decay-points", f"must be strictly increasing positive "
                                  f"integers, got {','.join(map(str, points))}")
        if self.schedule == "refined" and not self.refine_from:
            raise ConfigError("--refine-from", "is required with --schedule refined (the run "
                              "directory of a run made with --record-grad-norms)")
        if self.refine_from and self.schedule != "refined":
            raise ConfigError("--refine-from", f"only applies to --schedule refined, got "
                              f"--schedule {self.schedule}")
        if (self.resume or self.checkpoint_every or self.stop_at) and not self.out:
            name = ("--resume" if self.resume else "--checkpoint-every" if self.checkpoint_every
                    else "--stop-at")
            raise ConfigError(name, "needs --out RUN_DIR (checkpoints live there)")
        if self.resume and self.overwrite:
            raise ConfigError("--overwrite", "cannot be combined with --resume")
        if self.refine_from and self.out and \
                os.path.abspath(self.refine_from) == os.path.abspath(self.out):
            raise ConfigError("--refine-from", "must be another run's directory, not --out")

    def _validate_resolved(self) -> None:
        if self.end_lr > self.peak_lr:
            raise ConfigError("--end-lr", f"must be <= --peak-lr ({self.peak_lr:g}), got "
                              f"{self.end_lr:g}")
        if self.schedule == "wsd":
            decay = max(1, int(self.decay_fraction * self.steps + 0.5))
            if self.warmup_steps > self.steps - decay:
                raise ConfigError("--warmup-steps", f"must leave room for the wsd decay "
                                  f"({decay} steps of {self.steps}), got {self.warmup_steps}")
        if self.schedule == "wsd_s" and self.decay_points[-1] > self.steps:
            raise ConfigError("--decay-points", f"must not exceed --steps ({self.steps}), got "
                              f"{self.decay_points[-1]}")
        if self.decay_shape in ("exponential", "harmonic") and self.end_lr <= 0 and \
                self.schedule in ("wsd", "wsd_s"):
            raise ConfigError("--end-lr", f"must be > 0 with --decay-shape {self.decay_shape}")


# ------------------------------------------------------------------------------------------------
# Command line.
# ------------------------------------------------------------------------------------------------


def _int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") \
            from None


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of ``python -m examples.train``."""
    d = TrainConfig()
    parser = argparse.ArgumentParser(
        prog="python -m examples.train",
        # One short usage line: an error is then two lines (usage, error), not a page of flags.
        usage="%(prog)s [flags]   (every flag: --help)",
        description="Train a small Flax (nnx) language model with optaxsched's schedules, "
                    "refined schedules, spike-aware optimizers and NaP. Writes RUN_DIR/"
                    "config.json, metrics.jsonl (one JSON object per step), PNG plots and "
                    "orbax checkpoints; --resume continues bit for bit.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)

    g = parser.add_argument_group("data")
    g.add_argument("--data", choices=CORPORA, default=d.data,
                   help="stdlib: characters of the installed Python stdlib's *.py files; "
                        "bigram: a synthetic Zipfian bigram language")
    g.add_argument("--corpus-bytes", type=int, default=d.corpus_bytes,
                   help="use only the first N bytes of the stdlib corpus (default: all)")
    g.add_argument("--bigram-vocab", type=int, default=d.bigram_vocab,
                   help="vocabulary size of the bigram language")
    g.add_argument("--data-seed", type=int, default=d.data_seed,
                   help="seed of the bigram language (not of the data order)")

    g = parser.add_argument_group("model")
    g.add_argument("--model", choices=MODELS, default=d.model,
                   help="decoder-only transformer, or an MLP next-token classifier")
    g.add_argument("--d-model", type=int, default=d.d_model, help="residual/embedding width")
    g.add_argument("--layers", type=int, default=d.layers,
                   help="transformer blocks / MLP hidden layers")
    g.add_argument("--heads", type=int, default=d.heads, help="attention heads")
    g.add_argument("--d-ff", type=int, default=d.d_ff,
                   help="hidden width of the MLPs (default: 4 * d_model)")
    g.add_argument("--context", type=int, default=d.context,
                   help="past tokens the MLP model sees")

    g = parser.add_argument_group("budget")
    g.add_argument("--steps", type=int, default=d.steps, help="number of updates")
    g.add_argument("--batch-size", type=int, default=d.batch_size,
                   help="sequences per update (split over the devices)")
    g.add_argument("--seq-len", type=int, default=d.seq_len, help="tokens per sequence")
    g.add_argument("--seed", type=int, default=d.seed,
                   help="seed of the initialisation, the data order and the spikes")

    g = parser.add_argument_group("schedule")
    g.add_argument("--schedule", choices=(*SCHEDULES, AUTOLRS), default=d.schedule,
                   help="learning-rate schedule; refined needs --refine-from; autolrs searches "
                        "one LR per stage (python -m examples.autolrs_run for its settings)")
    g.add_argument("--peak-lr", type=float, default=d.peak_lr,
                   help="peak learning rate (default: 3e-3 for Adam-type, 0.3 for sgd)")
    g.add_argument("--warmup-steps", type=int, default=d.warmup_steps,
                   help="linear warmup (default: 5%% of --steps; 0 for refined)")
    g.add_argument("--end-lr", type=float, default=d.end_lr,
                   help="final learning rate of the decaying schedules")
    g.add_argument("--decay-fraction", type=float, default=d.decay_fraction,
                   help="share of the run in the final decay (wsd, power, infinite)")
    g.add_argument("--decay-shape", choices=DECAY_SHAPES, default=d.decay_shape,
                   help="decay shape of wsd and wsd_s")
    g.add_argument("--decay-points", type=_int_list, default=d.decay_points,
                   help="wsd_s budgets, e.g. 150,300 (default: half-way and the end)")
    g.add_argument("--uba-phi", type=float, default=d.uba_phi,
                   help="phi of the uba schedule (2 = cosine, small = WSD-like)")
    g.add_argument("--plateau-fraction", type=float, default=d.plateau_fraction,
                   help="infinite: the plateau as a fraction of --peak-lr")
    g.add_argument("--power-a", type=float, default=d.power_a, help="a of the power schedule")
    g.add_argument("--power-b", type=float, default=d.power_b, help="b of the power schedule")
    g.add_argument("--refine-from", default=d.refine_from, metavar="RUN_DIR",
                   help="run directory whose recorded gradient norms define --schedule refined")
    g.add_argument("--refine-kind", choices=("sgd", "adam"), default=d.refine_kind,
                   help="refinement variant: sgd (l2 norms, w=G^-2) or adam (l1 norms, w=G^-1); "
                        "default: adam for Adam-type optimizers, sgd for sgd")
    g.add_argument("--refine-smoothing", type=float, default=d.refine_smoothing,
                   help="relative median-filter width of the refinement")

    g = parser.add_argument_group("optimizer")
    g.add_argument("--optimizer", choices=OPTIMIZERS, default=d.optimizer, help="optimizer")
    g.add_argument("--b1", type=float, default=d.b1, help="Adam beta1")
    g.add_argument("--b2", type=float, default=d.b2, help="Adam beta2")
    g.add_argument("--weight-decay", type=float, default=d.weight_decay,
                   help="weight decay of the kernels (default: 0.1 decoupled for Adam-type, 0 "
                        "for sgd)")
    g.add_argument("--momentum", type=float, default=d.momentum, help="sgd momentum")
    g.add_argument("--clip-norm", type=float, default=d.clip_norm,
                   help="clip the global gradient norm to this value (0: off)")
    g.add_argument("--spam-threshold", type=float, default=d.spam_threshold,
                   help="spam: a coordinate spikes when g^2 > threshold * v")
    g.add_argument("--reset-interval", type=int, default=d.reset_interval,
                   help="spam/stable_spam: momentum reset every N steps (default: the "
                        "optimizer's, 500 for spam, 1000 for stable_spam)")
    g.add_argument("--nap", action="store_true",
                   help="Normalize-and-Project: keep the norm of every kernel that feeds a "
                        "normalisation layer at its initial value")
    g.add_argument("--record-grad-norms", action="store_true",
                   help="record per-step l2 and l1 gradient norms in the optimizer state (for "
                        "--schedule refined in a later run)")
    g.add_argument("--average", choices=AVERAGES, default=d.average,
                   help="keep an average of the parameters in the optimizer state "
                        "(optaxsched.average_params, last in the chain): its validation loss is "
                        "val_loss_averaged in summary.json")
    g.add_argument("--inject-spikes", type=float, default=d.inject_spikes, metavar="RATE",
                   help="multiply the gradients by --spike-factor on this random fraction of "
                        "steps (spike benchmark)")
    g.add_argument("--spike-factor", type=float, default=d.spike_factor,
                   help="gradient multiplier of an injected spike")

    g = parser.add_argument_group("evaluation, output, checkpoints")
    g.add_argument("--eval-every", type=int, default=d.eval_every,
                   help="validation loss every N steps and at the end (default: steps / 10)")
    g.add_argument("--eval-batches", type=int, default=d.eval_batches,
                   help="validation batches (of --batch-size sequences) per evaluation")
    g.add_argument("--out", default=d.out, metavar="RUN_DIR",
                   help="run directory (config.json, metrics.jsonl, plots, checkpoints); "
                        "without it nothing is written")
    g.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every,
                   help="save an orbax checkpoint every N steps (0: only at the end)")
    g.add_argument("--keep-checkpoints", type=int, default=d.keep_checkpoints,
                   help="checkpoints kept on disk")
    g.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last checkpoint")
    g.add_argument("--overwrite", action="store_true",
                   help="replace an existing run in --out")
    g.add_argument("--stop-at", type=int, default=d.stop_at, metavar="STEP",
                   help="end this invocation after STEP updates (the schedule still spans "
                        "--steps); continue with --resume")
    g.add_argument("--devices", type=int, default=d.devices,
                   help="data-parallel over the first N devices (default: all)")

    g = parser.add_argument_group("distribution (JAX's runtime; see examples/README.md)")
    g.add_argument("--fsdp", type=int, default=d.fsdp, metavar="N",
                   help="shard the parameters and every optimizer-state leaf over a mesh axis "
                        "of N devices (FSDP); the devices form a (devices/N data, N fsdp) mesh "
                        "and the batch is split over all of them")
    g.add_argument("--coordinator", default=d.coordinator, metavar="HOST:PORT",
                   help="multi-process run: jax.distributed.initialize's coordinator address "
                        "(process 0's); default: $JAX_COORDINATOR_ADDRESS, else single-process "
                        "unless a cluster (SLURM, TPU pod, ...) is detected")
    g.add_argument("--num-processes", type=int, default=d.num_processes,
                   help="multi-process run: number of processes (default: "
                        "$JAX_NUM_PROCESSES or the cluster's)")
    g.add_argument("--process-id", type=int, default=d.process_id,
                   help="multi-process run: this process's index (default: $JAX_PROCESS_ID or "
                        "the cluster's)")
    g.add_argument("--no-progress", dest="progress", action="store_false",
                   help="no progress bar")
    return parser


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The :class:`TrainConfig` of parsed arguments (not yet resolved)."""
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    return TrainConfig(**{k: v for k, v in vars(args).items() if k in names})
