"""The run directory of the example trainer: its files, written so that a kill leaves them usable.

``config.json``, ``summary.json``, the plots and a trimmed ``metrics.jsonl`` are replaced
atomically (:func:`replace_file`); ``metrics.jsonl`` is appended to, durably before each
checkpoint (:func:`append_metrics`); checkpoints are orbax's, committed by a rename
(:func:`save`); ``--resume`` restores the newest checkpoint that restores and that the metrics
cover (:func:`restore_newest`). A hidden hook (:data:`CRASH_HOOK_ENV`) kills the process at a
named point, for the tests that SIGKILL a run where a real preemption could.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import shutil
import signal
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from examples import plots
from examples.config import RESUME_FREE, ConfigError, TrainConfig, flag

# What a run writes into --out (a new run removes these, and only these, from the directory).
ARTIFACTS = ("config.json", "metrics.jsonl", "summary.json", "loss.png", "lr.png",
              "grad_norm.png", "checkpoints", "decayed")


# ------------------------------------------------------------------------------------------------
# Metrics file.
# ------------------------------------------------------------------------------------------------


# Order of the keys in a metrics record (after "step"; "tokens_per_s" comes last).
KEY_ORDER = ("loss", "val_loss", "lr", "grad_norm_l2", "grad_norm_l1", "effective_lr",
              "clipped", "spike")


def fmt(value: Any, spec: str) -> str:
    return "nan" if value is None else format(value, spec)


def json_value(value: Any) -> Any:
    value = np.asarray(value)
    if value.dtype.kind in "iub":
        return int(value)
    value = float(value)
    return value if math.isfinite(value) else None


def read_metrics(run_dir: str) -> list[dict[str, Any]]:
    """The records of ``RUN_DIR/metrics.jsonl`` (one dict per line).

    A torn last line (no newline at its end and not JSON: the process was killed while it
    appended) is left out; any other line that is not a JSON object raises ``ValueError`` naming
    the file and the line.
    """
    path = os.path.join(run_dir, "metrics.jsonl")
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    lines = text.split("\n")
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            if number == len(lines):  # the last line, without its newline: torn by a kill
                break
            raise ValueError(f"{path} line {number} is not JSON ({err})") from None
        if not isinstance(record, dict) or not isinstance(record.get("step"), int):
            raise ValueError(f"{path} line {number} is not a metrics record with an integer "
                             f"'step'")
        records.append(record)
    return records


def jsonl(records: Sequence[dict[str, Any]]) -> str:
    return "".join(json.dumps(record, allow_nan=False) + "\n" for record in records)


# ------------------------------------------------------------------------------------------------
# Crash safety: files are replaced atomically, and a hidden hook kills the process at a named
# point (for the tests that SIGKILL a run where a real preemption could).
# ------------------------------------------------------------------------------------------------

# The crash hook's variable, read at each named point: "update:K" (after update K, before its
# metrics are written), "append:K" (half way through the last line of the metrics append that
# ends with update K, leaving a torn line), "checkpoint:K" (checkpoint K written to orbax's
# temporary directory, before its commit), "replace:NAME" (NAME's new content in its temporary
# file, before os.replace). Only the tests set it.
CRASH_HOOK_ENV = "OPTAXSCHED_TRAIN_CRASH_AT"


def _crash_requested(point: str) -> bool:
    return os.environ.get(CRASH_HOOK_ENV) == point


def crash(point: str) -> None:
    """SIGKILLs this process if the crash hook names ``point``."""
    if _crash_requested(point):
        sys.stdout.flush()
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGKILL)


def replace_file(path: str, text: str) -> None:
    """Writes ``text`` to ``path`` atomically: into a temporary file in the same directory,
    flushed to disk, then swapped in with ``os.replace``. A kill or a full disk at any moment
    leaves either the old file or the new one, never a truncated one."""
    directory, name = os.path.split(os.path.abspath(path))
    tmp = os.path.join(directory, f".{name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        crash(f"replace:{name}")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    _fsync_directory(directory)


def _fsync_directory(directory: str) -> None:
    """Makes a rename in ``directory`` durable (POSIX; a no-op where directories cannot be
    opened)."""
    with contextlib.suppress(OSError, AttributeError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def append_metrics(path: str, records: Sequence[dict[str, Any]], durable: bool) -> None:
    """Appends records to ``metrics.jsonl`` (``durable``: flushed to disk, as before a
    checkpoint, so that the records always cover the steps of the checkpoints)."""
    text = jsonl(records)
    with open(path, "a", encoding="utf-8") as handle:
        if _crash_requested(f"append:{records[-1]['step'] + 1}"):
            cut = len(text) - len(json.dumps(records[-1])) // 2
            handle.write(text[:cut])
            handle.flush()
            crash(f"append:{records[-1]['step'] + 1}")
        handle.write(text)
        if durable:
            handle.flush()
            os.fsync(handle.fileno())


def remove_stale_temporaries(out: str) -> None:
    """Removes the temporary files of replacements a killed process left in ``out``."""
    for name in os.listdir(out):
        if name.startswith(".") and name.endswith(".tmp") and \
                name.split(".")[1] in ("config", "metrics", "summary", "plots"):
            target = os.path.join(out, name)
            if os.path.isdir(target):
                shutil.rmtree(target, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    os.remove(target)


# ------------------------------------------------------------------------------------------------
# Run directory: fresh, overwritten or resumed.
# ------------------------------------------------------------------------------------------------


def check_run_dir(cfg: TrainConfig) -> dict[str, Any] | None:
    """Checks ``--out`` against ``--resume``/``--overwrite`` (read-only); returns the saved
    config.json when resuming."""
    out = cfg.out
    if cfg.resume:
        path = os.path.join(out, "config.json")
        if not os.path.isfile(path):
            raise ConfigError("--resume", f"{out!r} holds no run to resume (no config.json)")
        with open(path, encoding="utf-8") as handle:
            saved = json.load(handle)
        try:
            old = TrainConfig.from_dict(saved["config"])
        except (KeyError, TypeError, ValueError) as err:
            raise ConfigError("--resume", f"{path} is not a config this trainer wrote ({err})") \
                from None
        for field in dataclasses.fields(TrainConfig):
            if field.name in RESUME_FREE:
                continue
            before, now = getattr(old, field.name), getattr(cfg, field.name)
            if before != now:
                raise ConfigError(flag(field.name), f"differs from the run being resumed "
                                  f"({path} has {before!r}, this command {now!r}); resume "
                                  f"with the original settings")
        return saved
    if os.path.exists(out) and not os.path.isdir(out):
        raise ConfigError("--out", f"{out!r} exists and is not a directory")
    existing = _existing_artifacts(out)
    if existing and not cfg.overwrite:
        raise ConfigError("--out", f"{out!r} already holds a run ({', '.join(existing)}); pass "
                          f"--resume to continue it, --overwrite to replace it, or choose "
                          f"another directory")
    return None


def _existing_artifacts(out: str) -> list[str]:
    return [name for name in ARTIFACTS if os.path.exists(os.path.join(out, name))]


def clear_run_dir(out: str) -> None:
    """Removes a previous run's files (only the trainer's own) from ``out``, creating it."""
    for name in _existing_artifacts(out):
        target = os.path.join(out, name)
        if os.path.isdir(target):
            shutil.rmtree(target)
        else:
            os.remove(target)
    os.makedirs(out, exist_ok=True)
    remove_stale_temporaries(out)


def checkpoint_manager(out: str, folder: str, max_to_keep: int | None):
    import orbax.checkpoint as ocp

    # cleanup_tmp_directories: a checkpoint whose write was killed before its commit is left
    # as a temporary directory; orbax never lists it as a step, and this removes it.
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                           enable_async_checkpointing=False,
                                           cleanup_tmp_directories=True)
    return ocp.CheckpointManager(os.path.abspath(os.path.join(out, folder)), options=options)


def save(manager, step: int, tree: dict) -> None:
    import orbax.checkpoint as ocp

    point = f"checkpoint:{step}"
    if _crash_requested(point):
        # Test hook: die once the checkpoint's data is written, before orbax commits it (the
        # rename of its temporary directory), as a preemption during the save would.
        from orbax.checkpoint._src.path import atomicity

        async def finalize(self):
            crash(point)

        atomicity.AtomicRenameTemporaryPath.finalize = finalize
    manager.save(step, args=ocp.args.StandardSave(tree))
    if _crash_requested(point):
        raise RuntimeError(f"{CRASH_HOOK_ENV}={point}: orbax committed the checkpoint without "
                           f"the hooked finalize (orbax changed)")


def _one_line(err: BaseException, limit: int = 240) -> str:
    """The innermost cause of an exception (orbax wraps tensorstore's error in messages that
    dump whole specs), as one line of at most ``limit`` characters."""
    while err.__cause__ is not None:
        err = err.__cause__
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _silence_closed_loop_callbacks() -> None:
    """Drops the "Event loop is closed" reports of a failed orbax restore.

    When one array fails to read, orbax ends its event loop while TensorStore still completes
    the other reads; their callbacks then fail to reach the closed loop, and Python reports each
    as an unraisable exception (hundreds of lines of traceback that hide the one real error).
    This filter (installed once, for the rest of the process: the callbacks may come late) drops
    exactly those reports and passes every other one to the previous hook.
    """
    previous = sys.unraisablehook
    if getattr(previous, "_drops_closed_loop_callbacks", False):
        return

    def hook(unraisable):
        value = unraisable.exc_value
        if isinstance(value, RuntimeError) and str(value) == "Event loop is closed":
            return
        previous(unraisable)

    hook._drops_closed_loop_callbacks = True
    sys.unraisablehook = hook


def restore_newest(manager, out: str, target: dict, covered: int) -> tuple[int, dict]:
    """Restores the newest checkpoint that restores and that the kept metrics cover.

    Checkpoints are tried newest first; one that fails to restore (a truncated or missing file)
    or lies beyond the first ``covered`` steps of ``metrics.jsonl`` is skipped, and one line on
    stderr says which and why. The checkpoints after the restored one are deleted (the resumed
    run writes them again).

    Returns:
      (step, restored tree).

    Raises:
      ConfigError: (``--resume``) no checkpoint, or none that restores, naming ``out``.
    """
    import orbax.checkpoint as ocp

    _silence_closed_loop_callbacks()  # before the first read: the reports can come at once
    steps = sorted(manager.all_steps(), reverse=True)
    if not steps:
        raise ConfigError("--resume", f"{out!r} has no checkpoint yet (it stopped before the "
                          f"first --checkpoint-every); start it again with --overwrite")
    skipped = []
    for step in steps:
        if step > covered:
            skipped.append((step, f"metrics.jsonl covers only steps 0-{covered - 1}"
                            if covered else "metrics.jsonl holds no step"))
            continue
        try:
            restored = manager.restore(step, args=ocp.args.StandardRestore(target))
        except Exception as err:  # noqa: BLE001 (any failure to read it means: try an older one)
            skipped.append((step, _one_line(err)))
            continue
        for newer, reason in skipped:
            print(f"resume: skipped checkpoint {newer} of {out} ({reason}); resuming from "
                  f"checkpoint {step}", file=sys.stderr)
            manager.delete(newer)
        return step, restored
    reasons = "; ".join(f"checkpoint {step}: {reason}" for step, reason in skipped)
    raise ConfigError("--resume", f"no checkpoint of {out!r} restores ({reasons}); start the "
                      f"run again with --overwrite")


def covered_steps(records: Sequence[dict[str, Any]]) -> int:
    """How many updates, from the first, the records cover without a gap."""
    count = 0
    for record in records:
        if record["step"] != count:
            break
        count += 1
    return count

def replace_plots(records: Sequence[dict[str, Any]], out: str, title: str) -> None:
    """Draws the plots into a temporary directory, then swaps each into ``out`` (os.replace)."""
    tmp = os.path.join(out, f".plots.{os.getpid()}.tmp")
    os.makedirs(tmp, exist_ok=True)
    try:
        for path in plots.plot_run(records, tmp, title=title):
            os.replace(path, os.path.join(out, os.path.basename(path)))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
