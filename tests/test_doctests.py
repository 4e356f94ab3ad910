"""Every docstring example of the library runs as a doctest (as optax's ``make doctest`` does).

One test per module, so that ``make test``'s workers share them out and a failure names the
module. Modules are found by walking the package, so a new module is checked without being listed.
"""

from __future__ import annotations

import doctest
import importlib
import inspect
import pkgutil
import re
import sys

import pytest

import optaxsched


def _module_names() -> list[str]:
    names = [optaxsched.__name__]
    for info in pkgutil.walk_packages(optaxsched.__path__, prefix="optaxsched."):
        names.append(info.name)
    return sorted(names)


MODULES = _module_names()


class _Finder(doctest.DocTestFinder):
    """Also finds the examples of decorated functions (``functools.wraps`` wrappers live in the
    decorator's module, so the stock finder thinks they were imported and skips them)."""

    def _from_module(self, module, object):  # noqa: A002 - doctest's own signature
        return super()._from_module(module, inspect.unwrap(object))


def test_the_walk_finds_the_modules_with_examples():
    assert {"optaxsched._schedules.wsd", "optaxsched._nap", "optaxsched._refinement",
            "optaxsched._forecast.law", "optaxsched._forecast.fit", "optaxsched._forecast.plan",
            "optaxsched._io", "optaxsched._averaging", "optaxsched._hypergradient",
            "optaxsched._registry", "optaxsched._spam", "optaxsched._stable_spam",
            "optaxsched.plot"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    if name == "optaxsched.plot":
        pytest.importorskip("matplotlib")
    importlib.import_module(name)
    module = sys.modules[name]
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    failures: list[str] = []
    found = _Finder(exclude_empty=True).find(module, name)
    for test in found:
        runner.run(test, out=failures.append)
    assert runner.failures == 0, "\n".join(failures)
    # Every example written in the module was found and run (none hides in an object the finder
    # skips): one doctest example per ``>>>`` line of the source.
    written = len(re.findall(r"^\s*>>> ", inspect.getsource(module), flags=re.M))
    assert sum(len(test.examples) for test in found) == written
