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
