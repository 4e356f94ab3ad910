"""Every Python block of README.md runs as written, in order, in one namespace.

A reader copies them top to bottom, so later blocks may use names earlier ones defined
(``schedule``, ``params``); nothing is provided by the test itself.
"""

from __future__ import annotations

import pathlib
import re

import pytest

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[tuple[int, str]]:
    """``(line number, source)`` of each fenced ``python`` block."""
    text = README.read_text(encoding="utf-8")
    blocks = []
    for match in re.finditer(r"^```python\n(.*?)^```", text, flags=re.M | re.S):
        blocks.append((text.count("\n", 0, match.start()) + 1, match.group(1)))
    return blocks


def test_readme_has_python_blocks():
    assert len(python_blocks()) >= 5


def test_every_readme_python_block_runs():
    namespace: dict = {"__name__": "readme"}
    for line, source in python_blocks():
        try:
            exec(compile(source, f"README.md:{line}", "exec"), namespace)
        except Exception as err:  # report which block failed
            pytest.fail(f"README.md block at line {line} failed: {type(err).__name__}: {err}")
    # What the blocks claim they produce.
    import numpy as np
    assert namespace["norms"].shape == (300,)
    assert np.isfinite(namespace["curve"][75:]).all()
    assert namespace["best"].name.startswith("wsd")
    law, truth = namespace["law"], namespace["truth"]
    assert abs(law.alpha - truth.alpha) < 0.05 and abs(law.C - truth.C) < 0.05
