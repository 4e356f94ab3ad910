"""The one file layer: the log reader behind :func:`load_grad_norms` and :func:`load_loss_curve`.

Both loaders read the same formats through the same code, with the same rules and the same
errors:

* **Formats.** ``.jsonl`` (one JSON object per line, as the trainer writes ``metrics.jsonl``),
  ``.csv`` (a header row naming the columns; a single column of numbers may go without one),
  ``.npz`` (named 1-D arrays), ``.npy`` (one 1-D array, or a structured array with named fields);
  ``load_grad_norms`` also reads ``.txt`` (``np.savetxt``'s columns) and ``load_loss_curve`` a run
  directory (its ``metrics.jsonl``).
* **Records.** A record is a JSON line that has one of the wanted keys, a non-blank CSV row or an
  array entry. A value that is absent, JSON ``null``, an empty CSV cell or NaN in an array is
  *not logged*; any other value must be a number (``nan`` and ``inf`` written as numbers are
  logged values, which the loader then judges).
* **Steps.** When the records carry a step (``step_key``), each is placed at its step and a record
  without one (a header, a summary line) is skipped; when none does, record ``i`` is step ``i``.
  A step must be an integer in [0, 2**53], and a log may span at most 10^8 steps.
* **Duplicate steps: the last logged value wins, per key.** A resumed run logs the steps after
  its checkpoint again; the later values belong to the run that continued, so they replace the
  earlier ones. A later record that does not log a key (an evaluation line for the same step, a
  ``null``) never erases a value logged before it, so nothing a log holds for a step is dropped
  for a record that holds nothing.
* **Gaps.** A step between logged steps that no record logs (logging every ``k`` steps) is filled
  by linear interpolation between the logged finite values around it. Norm logs start at their
  first logged step; a loss curve's learning rates start at count 0 (the areas accumulate from
  there), the first logged rate standing for the steps before it. Losses are observations and are
  never filled: a loss curve keeps the steps they were logged at.

Every problem with a file is a ``ValueError`` that names the loader, the file, and the line or
entry: missing, unreadable, not UTF-8, empty, truncated, of the wrong kind (an ``.npz`` archive
saved as ``.npy`` and the other way round), malformed lines, a missing column, a value that is not
a number, steps that are not integers, beyond 2**53 or spanning more than 10^8 entries.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import math
import os
import warnings
import zipfile
import zlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from optaxsched import _checks
from optaxsched._curves import LossCurve

__all__ = [
    "load_grad_norms",
    "load_loss_curve",
    "MAX_STEP",
    "MAX_STEP_SPAN",
    "read_json_records",
    "read_errors",
    "load_npy",
    "load_npz",
    "parse_step",
    "check_step_span",
    "require_existing_file",
    "read_table",
    "Table",
]

# The most entries a log's steps may span (last - first + 1). A run is read into one array per
# step, so a step in the trillions (tokens logged as steps, a corrupt line) would otherwise ask
# for terabytes; 10**8 steps (800 MB of float64) is more than any training run logs.
MAX_STEP_SPAN = 100_000_000
# The largest step value at all (exact in float64).
MAX_STEP = 2**53


@contextlib.contextmanager
def read_errors(where: str, path: str) -> Iterator[None]:
    """Turns the OS's and the decoders' exceptions while reading ``path`` into named errors."""
    try:
        yield
    except FileNotFoundError:
        raise ValueError(f"{where}: no such file: {path!r}.") from None
    except IsADirectoryError:
        raise ValueError(f"{where}: {path} is a directory, not a file.") from None
    except OSError as err:
        raise ValueError(f"{where}: cannot read {path}: {err.strerror or err}.") from None
    except UnicodeDecodeError:
        raise ValueError(f"{where}: {path} is not a UTF-8 text file.") from None
    except csv.Error as err:  # not a ValueError: a cell beyond the csv module's field limit
        raise ValueError(f"{where}: {path} is not a readable CSV file ({err}).") from None


def require_existing_file(where: str, path: str) -> None:
    """A named error when ``path`` does not exist or is not a regular file."""
    if not os.path.exists(path):
        raise ValueError(f"{where}: no such file: {path!r}.")
    if not os.path.isfile(path):
        raise ValueError(f"{where}: {path} is not a regular file.")
    if os.path.getsize(path) == 0:
        raise ValueError(f"{where}: {path} is empty (0 bytes).")


def read_json_records(where: str, path: str | os.PathLike) -> list[tuple[int, Mapping]]:
    """``(line number, record)`` for every non-blank line of a JSON-lines file.

    Args:
      where: the public function reading the file, for error messages.
      path: the file.

    Returns:
      The records in file order, each with its 1-based line number.

    Raises:
      ValueError: a line that is not valid JSON or not a JSON object (a truncated last line
        included), naming the file and line; an unreadable or non-UTF-8 file.
    """
    records = []
    # utf-8-sig: a byte-order mark (Excel, PowerShell) would make line 1 invalid JSON.
    with read_errors(where, os.fspath(path)), open(path, encoding="utf-8-sig") as handle:
        for line_number, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                record = json.loads(text)
            except json.JSONDecodeError as err:
                raise ValueError(f"{where}: {path}, line {line_number}: not valid JSON "
                                 f"({err.msg}).") from None
            except RecursionError:
                raise ValueError(f"{where}: {path}, line {line_number}: JSON nested too "
                                 f"deeply.") from None
            except ValueError as err:  # an integer of more digits than Python converts
                raise ValueError(f"{where}: {path}, line {line_number}: not readable JSON "
                                 f"({err}).") from None
            if not isinstance(record, Mapping):
                raise ValueError(f"{where}: {path}, line {line_number}: expected a JSON object, "
                                 f"got {type(record).__name__}.")
            records.append((line_number, record))
    return records


def _is_zip(path: str) -> bool:
    with open(path, "rb") as handle:
        return handle.read(4) == b"PK\x03\x04"


def load_npy(where: str, path: str) -> np.ndarray:
    """The array of a ``.npy`` file (no pickles), or a named error.

    Refused: a missing or empty file, an ``.npz`` archive under a ``.npy`` name, a file that is
    not in NumPy's format, a truncated file, an object (pickled) array.
    """
    with read_errors(where, path):
        require_existing_file(where, path)
        if _is_zip(path):
            raise ValueError(f"{where}: {path} is an .npz archive, not a .npy array: save one "
                             f"array with np.save, or name the file .npz.")
        try:
            values = np.load(path, allow_pickle=False)
        except (ValueError, EOFError, zipfile.BadZipFile) as err:
            raise ValueError(f"{where}: {path} is not a readable .npy array (truncated, "
                             f"pickled or not in NumPy's format: {err}).") from None
        except MemoryError as err:  # a corrupt header declaring terabytes: not a traceback
            raise ValueError(f"{where}: {path} is not a readable .npy array (its header "
                             f"declares more data than fits in memory: {err}).") from None
    if not isinstance(values, np.ndarray):  # pragma: no cover - np.load returns arrays here
        raise ValueError(f"{where}: {path} is not a .npy array.")
    return values


def load_npz(where: str, path: str) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` archive by name (no pickles), or a named error.

    Refused: a missing or empty file, a plain ``.npy`` array under an ``.npz`` name, a file that
    is not a zip archive, a truncated or corrupt archive, object (pickled) arrays.
    """
    with read_errors(where, path):
        require_existing_file(where, path)
        if not _is_zip(path):
            with open(path, "rb") as handle:
                is_npy = handle.read(6) == b"\x93NUMPY"
            what = ("a plain .npy array, not an .npz archive of named arrays" if is_npy
                    else "not an .npz archive (not a zip file)")
            raise ValueError(f"{where}: {path} is {what}.")
        try:
            with np.load(path, allow_pickle=False) as data:
                return {key: np.asarray(data[key]) for key in data.files}
        except (ValueError, EOFError, zipfile.BadZipFile, zlib.error, KeyError) as err:
            raise ValueError(f"{where}: {path} is not a readable .npz archive (truncated or "
                             f"corrupt: {err}).") from None
        except MemoryError as err:  # an array header declaring terabytes
            raise ValueError(f"{where}: {path} is not a readable .npz archive (an array's "
                             f"header declares more data than fits in memory: {err}).") from None


def parse_step(where: str, path: str, at: str, key: str, value: Any) -> int:
    """A logged step as a Python int: a finite, non-negative integer, or a named error.

    ``at`` says where in the file (``"line 12"``). A JSON number beyond the float range (which
    Python reads as a huge int or as inf) is refused here rather than overflowing later.
    """
    if isinstance(value, bool) or value is None:
        raise ValueError(f"{where}: {path}, {at}: every {key!r} must be an integer >= 0, got "
                         f"{value!r}.")
    if isinstance(value, str):
        text = value.strip()
        try:
            value = int(text)
        except ValueError:
            try:
                value = float(text)
            except ValueError:
                raise ValueError(f"{where}: {path}, {at}: every {key!r} must be an integer "
                                 f">= 0, got {value!r}.") from None
    if isinstance(value, (np.integer, np.floating)):
        value = value.item()
    if isinstance(value, float):
        if not math.isfinite(value) or value != math.floor(value):
            raise ValueError(f"{where}: {path}, {at}: every {key!r} must be an integer >= 0, "
                             f"got {value!r}.")
        value = int(value)
    if not isinstance(value, int):
        raise ValueError(f"{where}: {path}, {at}: every {key!r} must be an integer >= 0, got "
                         f"{value!r}.")
    if value < 0:
        raise ValueError(f"{where}: {path}, {at}: every {key!r} must be an integer >= 0, got "
                         f"{value!r}.")
    if value > MAX_STEP:
        digits = str(value)
        shown = digits if len(digits) <= 20 else f"{digits[:6]}... ({len(digits)} digits)"
        raise ValueError(f"{where}: {path}, {at}: {key!r} = {shown} is beyond the largest "
                         f"step a log may hold (2**53).")
    return value


def check_step_span(where: str, path: str, first: int, last: int) -> None:
    """A named error when steps ``first..last`` span more than :data:`MAX_STEP_SPAN` entries."""
    if last - first + 1 > MAX_STEP_SPAN:
        raise ValueError(f"{where}: {path}: its steps span {last - first + 1} entries, more "
                         f"than 10^8.")


# ---------------------------------------------------------------------------------------------
# Every format read into one table of records.


@dataclasses.dataclass(frozen=True)
class Table:
    """A log read into columns, one row per record, after the rule on steps.

    Attributes:
      steps: int64 step of every row.
      values: float64 value of every wanted key in every row (NaN where not logged).
      logged: for every wanted key, whether the row logged a value.
      places: where each row is in the file (a line number, or an index into the arrays).
      unit: ``"line"`` or ``"entry"``.
    """

    steps: np.ndarray
    values: dict[str, np.ndarray]
    logged: dict[str, np.ndarray]
    places: np.ndarray
    unit: str

    def at(self, row: int) -> str:
        """Where row ``row`` is in the file, for messages: ``"line 12"``."""
        return f"{self.unit} {int(self.places[row])}"

    def last_logged(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """The steps that logged ``key`` (ascending) and, for each, the last value logged there.

        The duplicate rule: a later record replaces an earlier one's value of the same step, and
        a record that does not log ``key`` replaces nothing.
        """
        logged = self.logged[key]
        rows: slice | np.ndarray = slice(None) if logged.all() else np.flatnonzero(logged)
        if np.all(np.diff(self.steps[rows]) > 0):  # the usual log: no step twice, in order
            return self.steps[rows], self.values[key][rows]
        rows = np.flatnonzero(logged)[::-1]  # latest first: np.unique keeps the first occurrence
        steps, first = np.unique(self.steps[rows], return_index=True)
        return steps, self.values[key][rows[first]]


def _number(where: str, path: str, at: str, key: str, value: Any) -> float | None:
    """A logged value as a float (possibly NaN or inf); ``None`` when not logged (absent,
    ``null``, an empty cell)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str, np.number)):
        raise ValueError(f"{where}: {path}, {at}: {key!r} must be a number, got "
                         f"{_shown(value)!r}.")
    try:
        return float(value)
    except OverflowError:  # a JSON integer beyond the float range
        raise ValueError(f"{where}: {path}, {at}: {key!r} must be a number within the float "
                         f"range, got {_shown(value)!r}.") from None
    except ValueError:
        raise ValueError(f"{where}: {path}, {at}: {key!r} must be a number, got "
                         f"{_shown(value)!r}.") from None


def _shown(value: Any) -> Any:
    """A value fit for a message: a number of hundreds of digits is cut short."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**20:
        digits = str(value)
        return f"{digits[:6]}... ({len(digits)} digits)"
    return value


def _is_number(cell: str) -> bool:
    text = cell.strip()
    if not text:
        return True  # an empty cell: a number that was not logged
    try:
        float(text)
    except ValueError:
        return False
    return True


def _missing_column(where: str, path: str, key: str, columns: Sequence[str]) -> ValueError:
    return ValueError(f"{where}: {path} has no column {key!r}; its columns are {list(columns)}.")


def _table(where, path, unit, places, raw_steps, has_step, columns) -> Table:
    """Applies the rule on steps: with steps, rows without one are skipped; without, row i is i.

    ``columns`` maps each key to its values, one per row: a list of floats with ``None`` where
    not logged (text formats), or a float64 array with NaN where not logged (arrays).
    """
    places = np.asarray(places, dtype=np.int64)
    if not places.size:
        raise ValueError(f"{where}: {path} holds no values.")
    keep: slice | np.ndarray = slice(None)
    if raw_steps is not None and has_step.any():
        keep = np.flatnonzero(has_step) if not has_step.all() else keep
        steps = np.asarray(raw_steps, dtype=np.int64)[keep]
    else:
        steps = np.arange(places.size, dtype=np.int64)
    values, logged = {}, {}
    for key, column in columns.items():
        if isinstance(column, np.ndarray):
            logged[key] = ~np.isnan(column[keep])
            values[key] = column[keep]
        else:
            logged[key] = np.array([v is not None for v in column], dtype=bool)[keep]
            values[key] = np.array([math.nan if v is None else v for v in column],
                                   dtype=np.float64)[keep]
    table = Table(steps, values, logged, places[keep], unit)
    if steps.size:
        check_step_span(where, path, int(steps.min()), int(steps.max()))
    return table


def _jsonl_table(where: str, path: str, keys: Sequence[str], step_key: str) -> Table:
    records = read_json_records(where, path)
    if not records:
        raise ValueError(f"{where}: {path} has no JSON records.")
    kept = [(line, record) for line, record in records if any(k in record for k in keys)]
    if not kept:
        seen = sorted({key for _, record in records for key in record})
        raise ValueError(f"{where}: {path} has no records with the key "
                         f"{' or '.join(map(repr, keys))}; keys seen: {seen}.")
    has_step = np.array([record.get(step_key) is not None for _, record in kept])
    steps = [parse_step(where, path, f"line {line}", step_key, record[step_key]) if has else 0
             for (line, record), has in zip(kept, has_step, strict=True)]
    columns = {key: [_number(where, path, f"line {line}", key, record.get(key))
                     for line, record in kept] for key in keys}
    return _table(where, path, "line", [line for line, _ in kept], steps, has_step, columns)


def _csv_table(where: str, path: str, keys: Sequence[str], step_key: str) -> Table:
    # utf-8-sig: with "utf-8", a byte-order mark (Excel's "CSV UTF-8") stayed in the first
    # cell, so a header "step,..." lost its step column (steps silently ignored) and a
    # header-less column's first number was taken for a header (silently dropped).
    with open(path, newline="", encoding="utf-8-sig") as handle:
        rows = [(line, [cell.strip() for cell in row])
                for line, row in enumerate(csv.reader(handle), start=1)
                if any(cell.strip() for cell in row)]
    if not rows:
        raise ValueError(f"{where}: {path} is empty.")
    header: list[str] | None = rows[0][1]
    if all(_is_number(cell) for cell in rows[0][1]):  # no header: one column of numbers
        if len(rows[0][1]) != 1:
            raise ValueError(
                f"{where}: {path} has {len(rows[0][1])} columns and no header: write one column "
                f"of numbers, or a header row naming the columns (e.g. {step_key},{keys[0]}).")
        header = None
    else:
        rows = rows[1:]
        if not rows:
            raise ValueError(f"{where}: {path} has a header but no rows.")
    width = 1 if header is None else len(header)
    if header is None or (len(keys) == 1 and keys[0] not in header and len(header) == 1):
        if len(keys) != 1:
            raise ValueError(f"{where}: {path} has no header row naming its columns; it needs "
                             f"the columns {list(keys)}.")
        index = {keys[0]: 0}  # a single column is the one wanted, whatever its name
    else:
        for key in keys:
            if key not in header:
                raise _missing_column(where, path, key, header)
        index = {key: header.index(key) for key in keys}
    step_index = header.index(step_key) if header and step_key in header else None
    for line, cells in rows:
        if len(cells) != width:
            raise ValueError(f"{where}: {path}, line {line}: expected {width} cells, got "
                             f"{len(cells)}.")
    columns = {key: [_number(where, path, f"line {line}", key, cells[i]) for line, cells in rows]
               for key, i in index.items()}
    places = [line for line, _ in rows]
    if step_index is None:
        return _table(where, path, "line", places, None, np.zeros(len(rows), bool), columns)
    has_step = np.array([bool(cells[step_index]) for _, cells in rows])
    steps = [parse_step(where, path, f"line {line}", step_key, cells[step_index]) if has else 0
             for (line, cells), has in zip(rows, has_step, strict=True)]
    return _table(where, path, "line", places, steps, has_step, columns)


def _array_steps(where: str, path: str, step_key: str, raw: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Integer steps and whether each entry has one (NaN: none), checked without a Python loop."""
    values = raw.astype(np.float64)
    has_step = ~np.isnan(values)
    bad = has_step & ((values < 0) | (values > MAX_STEP) | (values != np.floor(values)))
    if np.issubdtype(raw.dtype, np.integer):  # exact: float64 rounds integers beyond 2**53
        bad = (raw < 0) | (raw > MAX_STEP)
    if bad.any():
        i = int(np.argmax(bad))
        parse_step(where, path, f"entry {i}", step_key, raw[i].item())  # raises its message
    return np.where(has_step, values, 0).astype(np.int64), has_step


def _array_table(where: str, path: str, keys: Sequence[str], step_key: str) -> Table:
    if path.lower().endswith(".npz"):
        arrays = load_npz(where, path)
    else:
        array = load_npy(where, path)
        if array.dtype.names:  # a structured array: its fields are the columns
            arrays = {name: array[name] for name in array.dtype.names}
        elif len(keys) == 1:  # one plain array: the column wanted (an (n, 1) array too)
            arrays = {keys[0]: array[:, 0] if array.ndim == 2 and array.shape[1] == 1 else array}
        else:
            raise ValueError(f"{where}: {path} holds one unnamed array; it needs the named "
                             f"columns {list(keys)} (an .npz file or a structured array).")
    for key in keys:
        if key not in arrays:
            raise _missing_column(where, path, key, sorted(arrays))
    for key in (*keys, step_key):
        if key not in arrays:
            continue
        array = arrays[key]
        if (array.ndim != 1 or not np.issubdtype(array.dtype, np.number)
                or np.issubdtype(array.dtype, np.complexfloating)):
            raise ValueError(f"{where}: {path}: {key!r} must be a 1-D numeric array of real "
                             f"numbers, got shape {array.shape} and dtype {array.dtype}.")
    n = arrays[keys[0]].size
    for key in (*keys, step_key):
        if key in arrays and arrays[key].size != n:
            raise ValueError(f"{where}: {path}: {key!r} must have the length of {keys[0]!r} "
                             f"({n}), got {arrays[key].size}.")
    raw_steps, has_step = None, np.zeros(n, dtype=bool)
    if step_key in arrays:
        raw_steps, has_step = _array_steps(where, path, step_key, arrays[step_key])
    columns = {key: arrays[key].astype(np.float64) for key in keys}
    return _table(where, path, "entry", np.arange(n), raw_steps, has_step, columns)


_READERS = {".jsonl": _jsonl_table, ".csv": _csv_table, ".txt": _csv_table, ".npy": _array_table,
            ".npz": _array_table}


def read_table(where: str, path: str, keys: Sequence[str], step_key: str) -> Table:
    """Reads the columns ``keys`` of a log (format by extension), under the module's rules.

    Args:
      where: the public function reading the file, for error messages.
      path: the file (``.jsonl``, ``.csv``, ``.txt``, ``.npy`` or ``.npz``).
      keys: the wanted columns or JSON keys.
      step_key: the column or key of the step.

    Returns:
      A :class:`Table` with at least one row.

    Raises:
      ValueError: any problem with the file (see the module docstring), naming it.
    """
    reader = _READERS[os.path.splitext(path)[1].lower()]
    with read_errors(where, path):
        require_existing_file(where, path)
        return reader(where, path, keys, step_key)


def _fill_gaps(steps: np.ndarray, values: np.ndarray, first: int, last: int) -> np.ndarray:
    """Values at every step ``first..last``: logged ones as logged, the others interpolated
    linearly between the logged finite values (held at the nearest one beyond them)."""
    if steps.size == last - first + 1:  # every step logged: nothing to fill
        return values.copy()
    grid = np.arange(first, last + 1)
    finite = np.isfinite(values)
    out = (np.interp(grid, steps[finite], values[finite]) if finite.any()
           else np.full(grid.size, np.nan))
    out[steps[~finite] - first] = values[~finite]
    return out


def _check_path_arguments(where: str, path: Any, allowed: str, keys: Mapping[str, Any]) -> str:
    if not isinstance(path, (str, os.PathLike)):
        _checks.fail(where, "path", allowed, path)
    for name, key in keys.items():
        if not isinstance(key, str) or not key:
            _checks.fail(where, name, "a non-empty string", key)
    return os.fspath(path)


# ---------------------------------------------------------------------------------------------
# The two loaders.

_NORM_EXTENSIONS = (".npy", ".csv", ".txt", ".jsonl", ".npz")
_CURVE_EXTENSIONS = (".jsonl", ".csv", ".npz", ".npy")
_METRICS_FILE = "metrics.jsonl"


def load_grad_norms(path: str | os.PathLike, key: str = "grad_norm_l2",
                    step_key: str = "step") -> np.ndarray:
    """Reads a gradient-norm log from a file, one entry per step.

    Formats, by extension (the rules are those of :func:`load_loss_curve`, one reader for both):

    * ``.jsonl``: one JSON object per line, as the trainer writes ``metrics.jsonl``, e.g.
      ``{"step": 12, "loss": 2.31, "grad_norm_l2": 1.7, "grad_norm_l1": 5400.0}``. Records
      without ``key`` (evaluation lines, ...) are skipped.
    * ``.csv`` / ``.txt``: one column of numbers without a header, or a header row naming the
      columns; then the column ``key`` is read (a single named column is read whatever its
      name), placed by its ``step`` column if there is one.
    * ``.npy``: a 1-D numeric array (an ``(n, 1)`` array is accepted), or a structured array
      with the fields ``key`` (and ``step``); ``.npz``: the arrays ``key`` (and ``step``).

    Steps: entry ``i`` of the result is step ``first_step + i``. A step logged twice (a resumed
    run) keeps its last logged value; steps that were not logged (logging every k steps) are
    filled by linear interpolation; a step logged only as empty (``null``, an empty cell, NaN)
    is NaN, which :func:`optaxsched.refine` reports and fills with a warning. Without steps,
    records are taken in file order.

    Args:
      path: the file.
      key: the column or JSON key: ``'grad_norm_l2'`` (default) or ``'grad_norm_l1'`` for logs
        written by the trainer.
      step_key: the step column or key.

    Returns:
      A float64 array.

    Raises:
      ValueError: the file is missing, empty, unreadable, of an unknown type, malformed,
        truncated or of the wrong kind (an ``.npz`` archive named ``.npy``, a pickled or complex
        array), a value that is not a number, a step that is not an integer in [0, 2**53],
        steps spanning more than 10^8 entries, or no such column/key (the message names the
        file, and the line where it applies).

    Example:
      >>> import json, os, tempfile, optaxsched as oxs
      >>> path = os.path.join(tempfile.mkdtemp(), "metrics.jsonl")
      >>> with open(path, "w") as f:
      ...     for step, (l2, l1) in enumerate([(2.0, 9.0), (1.5, 7.0), (1.0, 4.0)]):
      ...         print(json.dumps({"step": step, "grad_norm_l2": l2, "grad_norm_l1": l1}), file=f)
      >>> oxs.load_grad_norms(path, key="grad_norm_l1")
      array([9., 7., 4.])
    """
    where = "load_grad_norms"
    path = _check_path_arguments(where, path, "a file path", {"key": key, "step_key": step_key})
    if os.path.splitext(path)[1].lower() not in _NORM_EXTENSIONS:
        _checks.fail(where, "path", "a file ending in " + ", ".join(_NORM_EXTENSIONS), path)
    table = read_table(where, path, [key], step_key)
    first, last = int(table.steps.min()), int(table.steps.max())
    steps, values = table.last_logged(key)
    out = _fill_gaps(steps, values, first, last)
    if not table.logged[key].all():
        empty = np.zeros(out.size, dtype=bool)  # steps that records name, but only as empty
        empty[table.steps - first] = True
        empty[steps - first] = False
        out[empty] = np.nan
    return out


def norm_log_columns(where: str, path: str) -> list[str] | None:
    """The names of the columns a norm log holds (its JSON keys, CSV header, arrays or fields),
    or ``None`` for an unnamed column (a header-less ``.csv``/``.txt``, a plain ``.npy`` array).

    For the command line, which chooses the refinement's norm by the columns a log holds before
    reading one. Problems with the file are the loader's errors, named ``where``; a CSV's rows
    are checked when the column is read.
    """
    extension = os.path.splitext(path)[1].lower()
    if extension not in _NORM_EXTENSIONS:
        _checks.fail(where, "path", "a file ending in " + ", ".join(_NORM_EXTENSIONS), path)
    if extension == ".npy":
        return list(names) if (names := load_npy(where, path).dtype.names) else None
    if extension == ".npz":
        return sorted(load_npz(where, path))
    with read_errors(where, path):
        require_existing_file(where, path)
        if extension == ".jsonl":
            return sorted({key for _, record in read_json_records(where, path) for key in record})
        with open(path, newline="", encoding="utf-8-sig") as handle:  # as _csv_table
            first = next((row for row in csv.reader(handle) if any(c.strip() for c in row)), [])
    header = [cell.strip() for cell in first]
    return None if all(_is_number(cell) for cell in header) else header


def load_loss_curve(path: str | os.PathLike, loss_key: str = "loss", lr_key: str = "lr",
                    step_key: str = "step") -> LossCurve:
    """Reads a run (learning rates and losses) from a trainer's log or a table.

    Formats (the rules are those of :func:`load_grad_norms`, one reader for both):

    * a directory: its ``metrics.jsonl``;
    * ``.jsonl``: one JSON object per line, as the trainer writes ``metrics.jsonl``, e.g.
      ``{"step": 120, "loss": 2.31, "lr": 0.0003}``. Lines without ``step`` are skipped when
      other lines have it (headers, summaries); without any ``step``, records count from 0.
    * ``.csv``: a header naming the columns ``lr`` and ``loss`` (and optionally ``step``);
      without a ``step`` column, row ``i`` is step ``i``.
    * ``.npz`` (or a structured ``.npy``): 1-D arrays ``lr``, ``loss`` (and optionally
      ``step``) of one length; NaN entries are "not logged".

    The learning rate is needed at every step: between logged steps it is interpolated
    linearly, before the first logged step it is the first logged value, and the run ends at
    the last step that logged a rate or a loss. A step logged twice (a resumed run) keeps its
    last logged values. Missing entries (JSON ``null`` or absent keys, empty CSV cells) are not
    observations. Non-finite logged losses (a diverged stretch) are dropped with a warning;
    a non-finite or negative learning rate and a non-positive loss are errors.

    Args:
      path: the file or run directory.
      loss_key: the loss column or key (e.g. ``'eval_loss'``).
      lr_key: the learning-rate column or key.
      step_key: the step column or key.

    Returns:
      A :class:`optaxsched.LossCurve` named after the file (or the run directory).

    Raises:
      ValueError: missing, empty or unreadable file, unknown extension, malformed or truncated
        content, a file of the wrong kind (a plain ``.npy`` array named ``.npz``), a step that
        is not an integer in [0, 2**53] or beyond 10^8 (the learning rate is needed at every
        step up to it), missing columns, or no learning rates / losses (the message names the
        file and the line).

    Example:
      >>> curve = oxs.load_loss_curve("runs/cosine")  # doctest: +SKIP
    """
    where = "load_loss_curve"
    path = _check_path_arguments(where, path, "a file or directory path",
                                 {"loss_key": loss_key, "lr_key": lr_key, "step_key": step_key})
    label = os.path.basename(os.path.normpath(path))
    if os.path.isdir(path):
        path = os.path.join(path, _METRICS_FILE)
        if not os.path.isfile(path):
            raise ValueError(f"{where}: the run directory has no {_METRICS_FILE}: {path!r}.")
    elif not os.path.exists(path):
        raise ValueError(f"{where}: no such file or directory: {path!r}.")
    else:
        label = os.path.splitext(label)[0]
    if os.path.splitext(path)[1].lower() not in _CURVE_EXTENSIONS:
        _checks.fail(where, "path", "a run directory or a file ending in "
                     + ", ".join(_CURVE_EXTENSIONS), path)
    table = read_table(where, path, [lr_key, loss_key], step_key)
    for key, allowed, bad in (
            (lr_key, "the learning rate must be finite and non-negative",
             lambda v: ~np.isfinite(v) | (v < 0)),
            (loss_key, "the loss must be positive", lambda v: np.isfinite(v) & (v <= 0))):
        rows = np.flatnonzero(table.logged[key] & bad(table.values[key]))
        if rows.size:
            raise ValueError(f"{where}: {path}, {table.at(rows[0])}: {allowed}, got "
                             f"{float(table.values[key][rows[0]])!r}.")
    lr_steps, lrs = table.last_logged(lr_key)
    if not lr_steps.size:
        raise ValueError(f"{where}: {path} holds no learning rates.")
    loss_steps, losses = table.last_logged(loss_key)
    finite = np.isfinite(losses)
    if not finite.all():
        warnings.warn(f"{where}: {path}: dropped {int((~finite).sum())} non-finite losses (first "
                      f"at step {int(loss_steps[~finite][0])}).", stacklevel=2)
    if not finite.any():
        raise ValueError(f"{where}: {path} holds no finite losses.")
    last = int(max(lr_steps[-1], loss_steps[-1]))
    check_step_span(where, path, 0, last)  # the learning rates are needed at 0 .. last
    return LossCurve(_fill_gaps(lr_steps, lrs, 0, last), losses[finite], loss_steps[finite],
                     name=label)
