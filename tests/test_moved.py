"""The old public module paths still import, with a DeprecationWarning, and resolve to the public
names; the package's own names (the function ``optaxsched.nap``) are never shadowed by them."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import optaxsched as oxs
from optaxsched._moved import MOVED


@pytest.mark.parametrize("old", sorted(MOVED))
def test_every_old_name_warns_and_is_the_public_object(old):
    module = importlib.import_module(old)
    for name, new in MOVED[old].items():
        target_module, _, attr = new.rpartition(":")
        expected = getattr(importlib.import_module(target_module or "optaxsched"), attr)
        with pytest.warns(DeprecationWarning, match=rf"{old}\.{name} is deprecated.*0\.2\.0"):
            assert getattr(module, name) is expected


def test_from_import_warns_and_names_the_new_home():
    with pytest.warns(DeprecationWarning, match="use optaxsched.nap_mask instead"):
        from optaxsched.nap import nap_mask
    assert nap_mask is oxs.nap_mask


def test_the_function_nap_is_not_shadowed_by_its_old_module():
    importlib.import_module("optaxsched.nap")
    assert callable(oxs.nap) and oxs.nap.__name__ == "nap"
    # The same in a fresh interpreter, with the old path imported before anything else.
    code = ("import optaxsched.nap, optaxsched as o, types; "
            "assert not isinstance(o.nap, types.ModuleType), o.nap")
    subprocess.run([sys.executable, "-W", "ignore", "-c", code], check=True)


def test_an_old_module_as_a_package_attribute_warns():
    with pytest.warns(DeprecationWarning, match="the module optaxsched.refinement is deprecated"):
        module = oxs.refinement
    with pytest.warns(DeprecationWarning):
        assert module.refine is oxs.refine


def test_unknown_names_are_attribute_errors():
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        oxs.nonexistent  # noqa: B018
    module = importlib.import_module("optaxsched.sweep")
    with pytest.raises(AttributeError, match="no attribute '_private'"):
        module._private  # noqa: B018


def test_the_old_schedule_submodules_import_and_warn():
    with pytest.warns(DeprecationWarning, match="use optaxsched.wsd instead"):
        from optaxsched.schedules.anytime import wsd
    assert wsd is oxs.wsd
    with pytest.warns(DeprecationWarning, match="use optaxsched.rex instead"):
        from optaxsched.schedules.budgeted import rex
    assert rex is oxs.rex


def test_each_schedule_module_is_not_shadowed_by_its_function():
    import types

    import optaxsched._schedules as package
    for name in ("linear_decay", "rex", "uba", "wsd", "power", "infinite", "inverse_sqrt",
                 "tabulated"):
        module = importlib.import_module(f"optaxsched._schedules.{name}")
        assert isinstance(module, types.ModuleType) and getattr(package, name) is module
        assert getattr(module, name) is getattr(oxs, name)
