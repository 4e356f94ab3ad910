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
