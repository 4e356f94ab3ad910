"""Shared test configuration: deterministic hypothesis, float32 JAX on the CPU."""

import os
import sys

import pytest
from hypothesis import HealthCheck, settings

# CI must be deterministic: derandomize hypothesis and give JAX compilation time (no deadline).
settings.register_profile(
    "ci", derandomize=True, deadline=None, max_examples=40, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.differing_executors])
settings.register_profile(
    "dev", deadline=None, max_examples=40,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.differing_executors])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# Modules of a few long tests (subprocesses, whole runs of the example trainer), longest first,
# collected before all others. pytest-xdist (`make test`: -n 2 --dist worksteal) hands each
# worker a contiguous share of the collection, and a worker that runs out steals from the end
# of the other's share: a long test collected last ran alone at the end of the suite while the
# other worker sat idle (test_trainer_distributed's two, about a minute). Collected first, they
# run at the start of the first worker's share, beside the second worker's short tests.
LONG_MODULES_FIRST = ("test_benchmarks.py", "test_trainer_distributed.py", "test_sharding.py",
                      "test_trainer_crash.py")


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONG_MODULES_FIRST)}
    # A stable sort: each module's tests, and the other modules, keep their order.
    items.sort(key=lambda item: rank.get(item.path.name, len(LONG_MODULES_FIRST)))


@pytest.fixture(autouse=True)
def _close_figures():
    """Closes the figures a test's plotting left open (pyplot keeps every figure until closed,
    and a worker running many plot tests would otherwise hold them all)."""
    yield
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
        pyplot.close("all")


@pytest.fixture(scope="module")
def fast_compilation_module():
    """``_registry.fast_compilation`` for a whole module (active before its module-scoped
    fixtures compile), for modules that run the example trainer or a benchmark pipeline end to
    end: their cost is compiling train and eval steps (about a third less CPU with it), and what
    they check is the pipeline's records, files and runs against each other, not XLA's
    optimisations. Use it with ``pytestmark = pytest.mark.usefixtures(...)``."""
    from tests import _registry as reg

    with reg.fast_compilation():
        yield


@pytest.fixture
def fast_compilation():
    """The same for one test (``@pytest.mark.usefixtures("fast_compilation")``)."""
    from tests import _registry as reg

    with reg.fast_compilation():
        yield
