"""The file layer shared by every loader (refinement's norm logs, forecast's loss curves).

Every problem with a file a user passes is a ``ValueError`` that names the loader, the file and
what is wrong with it: missing, unreadable, not UTF-8, empty, truncated, of the wrong kind (an
``.npz`` archive saved as ``.npy`` and the other way round), malformed lines, steps that are not
integers, beyond the float range or spanning more entries than a run could log. Loaders read
through these helpers so that a new loader gets the same checks.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

__all__ = [
    "MAX_STEP",
    "MAX_STEP_SPAN",
    "read_json_records",
    "read_errors",
    "load_npy",
    "load_npz",
    "parse_step",
    "check_step_span",
    "require_existing_file",
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
    with read_errors(where, os.fspath(path)), open(path, encoding="utf-8") as handle:
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
