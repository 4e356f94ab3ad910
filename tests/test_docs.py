"""The API pages (docs/api/*.rst) list every public symbol, and only symbols that exist.

``make docs`` builds the pages with warnings as errors, so a listed name that does not import
fails there; this test catches the other direction, a public name that no page lists, without
building the site (as optax's ``coverage_check`` builder does).
"""

from __future__ import annotations

import importlib
import pathlib
import re

import pytest

import optaxsched

API = pathlib.Path(__file__).resolve().parents[1] / "docs" / "api"


def documented() -> dict[str, set[str]]:
    """``{module: {names listed in an autosummary under that currentmodule}}``."""
    found: dict[str, set[str]] = {}
    for page in sorted(API.glob("*.rst")):
        module = None
        in_summary = False
        for line in page.read_text(encoding="utf-8").splitlines():
            if match := re.match(r"\.\. currentmodule:: (\S+)", line):
                module, in_summary = match.group(1), False
            elif line.startswith(".. autosummary::"):
                in_summary = True
            elif in_summary and (match := re.match(r"^   ([A-Za-z_][\w.]*)\s*$", line)):
                assert module, f"{page.name}: autosummary before any currentmodule"
                found.setdefault(module, set()).add(match.group(1))
            elif in_summary and line and not line.startswith(" "):
                in_summary = False
    return found


def test_every_public_symbol_is_on_an_api_page():
    listed = documented().get("optaxsched", set())
    missing = sorted(set(optaxsched.__all__) - listed)
    assert not missing, f"public names missing from docs/api/*.rst: {missing}"


def test_every_listed_name_exists():
    for module_name, names in documented().items():
        module = importlib.import_module(module_name)
        public = set(getattr(module, "__all__", dir(module)))
        unknown = sorted(n for n in names if n not in public)
        assert not unknown, f"docs list names that {module_name} does not export: {unknown}"


def test_the_forecast_and_plot_modules_are_documented_in_full():
    docs = documented()
    from optaxsched import _curves, plot
    from optaxsched._forecast import fit, law, plan
    listed = docs.get("optaxsched", set())
    for module in (_curves, law, fit, plan):
        for name in set(module.__all__) - {"sample_schedule"}:  # the sampler is private
            assert name in listed, name
    assert set(plot.__all__) <= docs.get("optaxsched.plot", set())


def test_the_design_page_holds_every_section_the_docstrings_cite():
    design = (API.parent / "design.md").read_text(encoding="utf-8")
    labels = set(re.findall(r"^\((design-[\w-]+)\)=$", design, flags=re.M))
    cited = set()
    for path in pathlib.Path(optaxsched.__file__).parent.rglob("*.py"):
        cited |= set(re.findall(r":ref:`(design-[\w-]+)`", path.read_text(encoding="utf-8")))
    assert cited and cited <= labels, sorted(cited - labels)


_PENDING: set[str] = set()


def test_the_repository_stands_alone():
    import subprocess
    root = API.parents[1]
    try:
        files = subprocess.run(["git", "ls-files"], cwd=root, capture_output=True, text=True,
                               check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout (an unpacked sdist): no list of tracked files")
    outside = "../" + "shared"  # (spelt in two parts so that this file does not match itself)
    section = "spec " + "§"
    offenders = []
    for name in files:
        if name in _PENDING or not name.endswith((".py", ".md", ".rst", ".toml", ".txt", ".cff")):
            continue
        text = (root / name).read_text(encoding="utf-8", errors="replace")
        if outside in text or section in text:
            offenders.append(name)
    assert not offenders, f"files that refer outside the repository: {offenders}"
