"""The old public module paths still import, with a DeprecationWarning, and resolve to the public
names; the package's own names (the function ``optaxsched.nap``) are never shadowed by them."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
import warnings

import pytest

import optaxsched as oxs
from optaxsched._deprecation import Internal, MovedModule
from optaxsched._moved import MOVED


@pytest.mark.parametrize("old", sorted(MOVED))
def test_every_old_name_warns_and_is_the_public_object(old):
    module = importlib.import_module(old)
    for name, new in MOVED[old].items():
        target = new.target if isinstance(new, Internal) else new
        target_module, _, attr = target.rpartition(":")
        expected = getattr(importlib.import_module(target_module or "optaxsched"), attr)
        with pytest.warns(DeprecationWarning, match=rf"{old}\.{name} is deprecated.*0\.2\.0"):
            assert getattr(module, name) is expected


@pytest.mark.parametrize("old", sorted(MOVED))
def test_no_warning_points_at_a_private_name(old):
    module = importlib.import_module(old)
    for name in MOVED[old]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            getattr(module, name)
        (message,) = [str(w.message) for w in caught]
        # Every dotted name in the message after the old one is public: no part starts with "_".
        advice = message.split(" is deprecated", 1)[1]
        private = [n for n in re.findall(r"[\w.]*\w", advice)
                   if any(part.startswith("_") for part in n.split("."))]
        assert not private, message


def test_the_lam_grid_points_at_fit_annealing_laws_lam_argument():
    from optaxsched._forecast.fit import LAM_GRID

    with pytest.warns(DeprecationWarning) as caught:
        from optaxsched.forecast import LAM_GRID as old
    assert old is LAM_GRID
    message = str(caught[0].message)
    assert "the lam= argument of optaxsched.fit_annealing_law" in message
    assert f"lam={LAM_GRID}" in message  # the example is the grid itself


def test_a_private_home_without_advice_is_refused():
    with pytest.raises(ValueError, match="private name 'optaxsched._forecast.fit:LAM_GRID'"):
        MovedModule("optaxsched.old", {"LAM_GRID": "optaxsched._forecast.fit:LAM_GRID"})
    MovedModule("optaxsched.old", {"forecast": "optaxsched.plot:forecast"})  # a public module


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
