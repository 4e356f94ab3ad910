"""Tests of optaxsched.autolrs: the exponential forecast, the GP proposal, stage bookkeeping."""

import sys

import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import given

import optaxsched as oxs

# ------------------------------------------------------------------------------------------------
# Exponential fit and forecast.
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("a, b, c, n, t0", [
    (2.0, -0.1, 1.0, 50, 0),
    (0.5, -0.02, 3.0, 100, 0),
    (1.5, -0.3, 0.2, 20, 0),
    (-0.4, -0.05, 2.0, 60, 0),       # an increasing, saturating curve
    (1.0, -0.05, 1.0, 40, 30),       # observed from step 30 on (the caller's origin)
])
def test_fit_exponential_recovers_known_parameters(a, b, c, n, t0):
    t = t0 + np.arange(n, dtype=np.float64)
    fit = oxs.fit_exponential(a * np.exp(b * t) + c, steps=t)
    assert fit.b == pytest.approx(b, rel=1e-4)
    assert fit.c == pytest.approx(c, rel=1e-4, abs=1e-6)
    assert fit.predict(t0) == pytest.approx(a * np.exp(b * t0) + c, rel=1e-6)
    assert fit.residual < 1e-6


@given(st.floats(0.1, 5.0), st.floats(-0.2, -0.02), st.floats(0.5, 5.0), st.integers(0, 2**31))
def test_fit_exponential_with_noise_forecasts_close_to_truth(a, b, c, seed):
    rng = np.random.default_rng(seed)
    t = np.arange(100.0)
    noisy = a * np.exp(b * t) + c + rng.normal(scale=0.01, size=t.size)
    forecast = oxs.forecast_loss(noisy, 1000)
    truth = a * np.exp(b * 1000) + c
    # Noise of 0.01 on 100 points: the asymptote is pinned to a few hundredths.
    assert abs(forecast - truth) < 0.1


def test_fit_exponential_of_a_line_is_a_slow_exponential():
    t = np.arange(30.0)
    fit = oxs.fit_exponential(3.0 - 0.01 * t, min_rate=0.01 / 29)
    np.testing.assert_allclose(fit.predict(t), 3.0 - 0.01 * t, atol=1e-3)
    # Even a slow rate keeps the forecast of a line finite: it levels off at the asymptote c.
    assert fit.b < 0 and fit.predict(1e6) == pytest.approx(fit.c)


def test_default_rate_bound_keeps_a_straight_trial_from_extrapolating_linearly():
    # A 10-step trial still falling in a straight line, forecast 100 steps ahead: the unbounded
    # (line-like) fit goes far below anything a cross-entropy can reach; the default bound
    # (time constant <= the trial) stops within the fitted amplitude's 1/e of the last loss.
    t = np.arange(10.0)
    curve = 4.0 - 0.3 * t
    loose = oxs.forecast_loss(curve, 100, min_rate=1e-4)
    bounded = oxs.forecast_loss(curve, 100)
    assert loose < -20
    fit = oxs.fit_exponential(curve)
    assert fit.b == pytest.approx(-1 / 9)
    assert bounded == pytest.approx(fit.c, abs=1e-3) and bounded > curve[-1] - 0.6 * 2.7


@pytest.mark.parametrize("min_rate", [0.0, -1.0, np.nan, 10.0, "0.1", True])
def test_fit_exponential_bad_min_rate(min_rate):
    with pytest.raises(ValueError, match="fit_exponential: min_rate must be"):
        oxs.fit_exponential([3.0, 2.0, 1.5, 1.2], min_rate=min_rate)


def test_forecast_of_a_diverged_trial_is_inf():
    assert oxs.forecast_loss([3.0, 2.0, np.nan, 1.0], 100) == np.inf
    assert oxs.forecast_loss([3.0, 2.0, np.inf, 1.0], 100) == np.inf


@pytest.mark.parametrize("losses, steps, argument", [
    ([1.0, 2.0], None, "losses"),
    ([1.0, np.nan, 2.0], None, "losses"),
    (np.ones((3, 3)), None, "losses"),
    ([1 + 1j, 2.0, 3.0], None, "losses"),
    (["a", "b", "c"], None, "losses"),
    ([3.0, 2.0, 1.0], [0, 1], "steps"),
    ([3.0, 2.0, 1.0], [0, 2, 1], "steps"),
    ([3.0, 2.0, 1.0], [0, 1, np.inf], "steps"),
])
def test_fit_exponential_bad_inputs(losses, steps, argument):
    with pytest.raises(ValueError, match=f"fit_exponential: {argument} must be"):
        oxs.fit_exponential(losses, steps)


@pytest.mark.parametrize("horizon", [np.nan, np.inf, "10", True])
def test_forecast_loss_bad_horizon(horizon):
    with pytest.raises(ValueError, match="forecast_loss: horizon must be"):
        oxs.forecast_loss([3.0, 2.0, 1.5], horizon)


# ------------------------------------------------------------------------------------------------
# The GP proposal.
# ------------------------------------------------------------------------------------------------


def _objective(lr):
    """A synthetic forecast: a parabola in log10(lr) with its minimum at lr = 10^-2.5."""
    return 2.0 + (np.log10(lr) + 2.5) ** 2


def test_gp_proposal_exploits_near_the_minimum_with_small_kappa():
    tried = 10.0 ** np.array([-4.0, -3.4, -2.8, -2.2, -1.6, -1.0])
    proposed = oxs.propose_learning_rates(tried, _objective(tried), 1e-4, 1e-1, kappa=0.0)
    assert abs(np.log10(proposed[0]) + 2.5) < 0.15


def test_gp_proposal_explores_the_widest_gap_with_the_authors_kappa():
    tried = np.array([1e-4, 2e-4, 4e-4, 1e-1])
    proposed = oxs.propose_learning_rates(tried, _objective(tried), 1e-4, 1e-1)
    # The largest hole of log10 lr is (-3.4, -1); maximal uncertainty lies inside it.
    assert -3.3 < np.log10(proposed[0]) < -1.1


def test_gp_search_finds_the_minimum_of_a_synthetic_objective():
    search = oxs.LRSearch(1e-5, 1e-1, num_candidates=8, horizon=100, kappa=1.0)
    t = np.arange(10.0)
    while not search.done:
        lrs = search.ask(1)
        # A trial whose exponential forecast at the horizon is _objective(lr).
        curves = [_objective(lr) + np.exp(-0.5 * t) for lr in lrs]
        forecasts = search.tell(lrs, curves)
        np.testing.assert_allclose(forecasts, _objective(lrs), atol=1e-3)
    assert abs(np.log10(search.best_lr) + 2.5) < 0.3


def test_gp_batch_proposal_is_distinct_and_space_filling():
    empty = oxs.propose_learning_rates([], [], 1e-4, 1e-1, 3)
    np.testing.assert_allclose(np.log10(empty), [-3.5, -2.5, -1.5])
    tried = np.array([1e-4, 1e-1])
    batch = oxs.propose_learning_rates(tried, _objective(tried), 1e-4, 1e-1, 4)
    assert len(set(np.round(np.log10(batch), 3))) == 4
    assert np.all((batch > 1e-4) & (batch < 1e-1))


def test_missing_scikit_learn_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.gaussian_process", None)
    with pytest.raises(ImportError, match=r"optaxsched\[autolrs\]"):
        oxs.propose_learning_rates([1e-3], [1.0], 1e-4, 1e-1)


@pytest.mark.parametrize("kwargs, argument", [
    (dict(min_lr=0.0), "min_lr"),
    (dict(max_lr=np.inf), "max_lr"),
    (dict(min_lr=1e-1, max_lr=1e-2), "max_lr"),
    (dict(num=0), "num"),
    (dict(kappa=-1.0), "kappa"),
    (dict(kappa=np.nan), "kappa"),
    (dict(values=[1.0, 2.0]), "values"),
    (dict(values=[np.nan]), "values"),
    (dict(learning_rates=[1.0]), "learning_rates"),
    # scikit-learn's own InvalidParameterError (-1), or accepted silently (1.5, True).
    (dict(seed=-1), "seed"),
    (dict(seed=1.5), "seed"),
    (dict(seed=True), "seed"),
    (dict(seed=2**32), "seed"),
])
def test_propose_bad_arguments(kwargs, argument):
    args = dict(learning_rates=[1e-3], values=[1.0], min_lr=1e-4, max_lr=1e-1)
    args.update(kwargs)
    with pytest.raises(ValueError, match=f"propose_learning_rates: {argument} must be"):
        oxs.propose_learning_rates(**args)


TRIED = np.array([1e-4, 1e-3, 3e-3, 2e-2, 1e-1])
SHAPE = np.array([3.0, -1.0, 0.5, 2.0, -2.5])  # values of both signs, as the GP sees them


@pytest.mark.parametrize("scale", [2.0**1000, 2.0**-1000, 1e300, 1e-300, 1e-310])
def test_gp_proposal_does_not_depend_on_the_scale_of_the_values(scale):
    # scikit-learn's target normalisation overflowed at 1e300 (NaN: every proposal was min_lr,
    # with only a RuntimeWarning) and underflowed at 1e-300 (a flat posterior).
    for kappa in (0.0, 1.0):
        expected = oxs.propose_learning_rates(TRIED, SHAPE, 1e-4, 1e-1, 2, kappa=kappa)
        proposed = oxs.propose_learning_rates(TRIED, SHAPE * scale, 1e-4, 1e-1, 2, kappa=kappa)
        assert np.all(np.isfinite(proposed)) and np.all((proposed >= 1e-4) & (proposed <= 1e-1))
        np.testing.assert_allclose(proposed, expected, rtol=1e-6)
    huge = oxs.propose_learning_rates([1e-3, 1e-2], [1e300, -1e300], 1e-4, 1e-1)
    np.testing.assert_array_equal(huge, oxs.propose_learning_rates([1e-3, 1e-2], [1.0, -1.0],
                                                                   1e-4, 1e-1))


@pytest.mark.parametrize("scale", [1e308 / 3, 2.0**-1000])
def test_lrsearch_penalty_does_not_overflow_with_huge_forecasts(scale):
    # max - min of forecasts near float64's largest overflowed the diverged trials' penalty to
    # inf, which ask then refused as a non-finite value.
    told = dict(learning_rates=[1e-3, 1e-2, 3e-2], forecasts=[3.0, -3.0, np.inf])
    expected = oxs.LRSearch(1e-4, 1e-1, num_candidates=5, horizon=10, **told).ask(1)
    told["forecasts"] = [3.0 * scale, -3.0 * scale, np.inf]
    search = oxs.LRSearch(1e-4, 1e-1, num_candidates=5, horizon=10, **told)
    targets = search._gp_targets()
    assert np.all(np.isfinite(targets)) and targets[2] > max(targets[:2])
    np.testing.assert_allclose(search.ask(1), expected, rtol=1e-6)


# ------------------------------------------------------------------------------------------------
# LRSearch bookkeeping.
# ------------------------------------------------------------------------------------------------


def test_lrsearch_parallel_and_diverged_trials():
    search = oxs.LRSearch(1e-4, 1e-1, num_candidates=3, horizon=50)
    lrs = search.ask(3)
    curves = np.stack([3.0 - 0.1 * np.arange(5.0), 3.0 - 0.2 * np.arange(5.0),
                       np.array([3.0, 5.0, np.nan, np.nan, np.nan])])
    forecasts = search.tell(lrs, curves)
    assert np.isinf(forecasts[2]) and np.all(np.isfinite(forecasts[:2]))
    assert search.done and search.remaining == 0
    assert search.best_lr == lrs[int(np.argmin(forecasts[:2]))]
    # The diverged trial reaches the GP as a finite penalty worse than every forecast (the
    # targets are the forecasts times a power of two).
    targets = search._gp_targets()
    assert np.all(np.isfinite(targets)) and targets[2] > max(targets[:2])
    np.testing.assert_array_equal(targets[:2] / targets[0], forecasts[:2] / forecasts[0])
    with pytest.raises(ValueError, match=r"LRSearch.ask: num must be an integer in \[1, 0\]"):
        search.ask(1)


def test_lrsearch_all_diverged_keeps_the_smallest_rate():
    search = oxs.LRSearch(1e-4, 1e-1, num_candidates=2, horizon=50)
    lrs = search.ask(2)
    search.tell(lrs, np.full((2, 4), np.nan))
    assert search.best_lr == min(lrs)


@pytest.mark.parametrize("lrs, curves, argument", [
    ([1e-3], np.ones((2, 5)), "loss_curves"),
    ([1e-3], np.ones((1, 2)), "loss_curves"),
    ([1e-3], np.ones(5), "loss_curves"),
    ([1e-3, 1e-2, 1e-2], np.ones((3, 5)), "learning_rates"),
    ([1.0], np.ones((1, 5)), "learning_rates"),
])
def test_lrsearch_tell_bad_arguments(lrs, curves, argument):
    search = oxs.LRSearch(1e-4, 1e-1, num_candidates=2, horizon=50)
    with pytest.raises(ValueError, match=f"LRSearch.tell: {argument} must be"):
        search.tell(lrs, curves)


def test_lrsearch_best_before_tell_and_bad_construction():
    with pytest.raises(ValueError, match="no candidate was told yet"):
        _ = oxs.LRSearch(1e-4, 1e-1).best_lr
    with pytest.raises(ValueError, match="LRSearch: num_candidates must be"):
        oxs.LRSearch(1e-4, 1e-1, num_candidates=0)
    with pytest.raises(ValueError, match="LRSearch: horizon must be"):
        oxs.LRSearch(1e-4, 1e-1, horizon=np.nan)
    # It used to fail only at the first ask() after a tell(), in scikit-learn's words.
    with pytest.raises(ValueError, match=r"LRSearch: seed must be an integer in \[0, 2\*\*32"):
        oxs.LRSearch(1e-4, 1e-1, seed=-1)


# ------------------------------------------------------------------------------------------------
# Stage plan.
# ------------------------------------------------------------------------------------------------


@given(st.integers(150, 20_000), st.integers(30, 300), st.integers(1, 4), st.integers(1, 12))
def test_stages_spend_exactly_the_budget(total, first, doublings, k):
    first_cost = k * round(0.1 * first) + first
    if total < first_cost:
        with pytest.raises(ValueError, match="autolrs_stages: total_steps must be"):
            oxs.autolrs_stages(total, first_stage_steps=first,
                               max_stage_steps=first * 2**doublings, num_candidates=k)
        return
    stages = oxs.autolrs_stages(total, first_stage_steps=first,
                                max_stage_steps=first * 2**doublings, num_candidates=k)
    assert sum(s.cost for s in stages) == total
    assert [s.index for s in stages] == list(range(len(stages)))
    assert all(s.start == sum(p.cost for p in stages[:s.index]) for s in stages)
    # Doubling up to tau_max, on every stage but the (shrunk) last.
    for before, after in zip(stages[:-2], stages[1:-1], strict=True):
        assert after.train_steps == min(2 * before.train_steps, first * 2**doublings)
    for s in stages:
        assert s.num_candidates in (0, k)
        assert s.num_candidates == 0 or s.trial_steps >= 3


def test_stages_paper_setting_and_a_last_stage_without_search():
    stages = oxs.autolrs_stages(8000, first_stage_steps=1000, max_stage_steps=8000)
    assert [(s.trial_steps, s.train_steps) for s in stages[:2]] == [(100, 1000), (200, 2000)]
    tail = oxs.autolrs_stages(160, first_stage_steps=50, max_stage_steps=50, num_candidates=5)
    assert tail[-1].num_candidates == 0 and tail[-1].train_steps == 10


@pytest.mark.parametrize("kwargs, argument", [
    (dict(total_steps=0), "total_steps"),
    (dict(total_steps=10), "total_steps"),
    (dict(first_stage_steps=20), "first_stage_steps"),
    (dict(max_stage_steps=50), "max_stage_steps"),
    (dict(trial_fraction=0.0), "trial_fraction"),
    (dict(trial_fraction=1.5), "trial_fraction"),
    (dict(num_candidates=2.5), "num_candidates"),
    (dict(min_trial_steps=2), "min_trial_steps"),
])
def test_stages_bad_arguments(kwargs, argument):
    args = dict(total_steps=1000, first_stage_steps=100, max_stage_steps=400)
    args.update(kwargs)
    with pytest.raises(ValueError, match=f"autolrs_stages: {argument} must be"):
        oxs.autolrs_stages(**args)


# ------------------------------------------------------------------------------------------------
# The trainer mode (examples/autolrs_run.py), quick.
# ------------------------------------------------------------------------------------------------

# These run the example trainer's programs: compiling them is most of their time
# (conftest.fast_compilation); what is checked is the stages, records and trials, not XLA's
# optimisations.


@pytest.mark.usefixtures("fast_compilation")
def test_trainer_mode_autolrs_quick(tmp_path):
    import json

    from examples import train
    from examples.sweep import QUICK

    out = tmp_path / "run"
    flags = ["--schedule", "autolrs", "--steps", "60", "--d-model", "16", "--layers", "1",
             "--heads", "2", "--seq-len", "16", "--batch-size", "8", "--eval-batches", "1",
             "--corpus-bytes", str(QUICK.corpus_bytes), "--no-progress", "--out", str(out)]
    result = train.train(flags)
    stages = json.loads((out / "autolrs.json").read_text())["stages"]
    metrics = train.read_metrics(str(out))
    # Default settings at 60 steps: one stage, the paper's 10 trials of 3 steps, 30 kept steps.
    assert [(len(s["candidates"]), s["trial_steps"], s["train_steps"]) for s in stages] == \
        [(10, 3, 30)]
    assert len(metrics) == result.summary["steps_done"] == 30
    assert result.summary["trial_steps"] + result.summary["steps_done"] == 60
    # The stage trains at its best candidate, the one with the lowest forecast.
    (stage,) = stages
    forecasts = [np.inf if f is None else f for f in stage["forecasts"]]
    assert stage["lr"] == stage["candidates"][int(np.argmin(forecasts))]
    assert all(m["lr"] == pytest.approx(stage["lr"]) for m in metrics)
    assert np.isfinite(result.summary["val_loss"])


@pytest.mark.usefixtures("fast_compilation")
def test_vmapped_trials_start_from_the_same_state_as_sequential_ones():
    import jax

    from examples import autolrs_run
    from examples.sweep import QUICK, Setup

    setup = Setup(QUICK.replace(steps=8))
    tx = oxs.vmap_hyperparams(setup.factory(setup.cfg), learning_rate=[1e-3])
    program = autolrs_run._step_program(setup, tx)
    params = oxs.stack_params(setup.params, 1)
    state = tx.init(params)
    params, state, _ = autolrs_run._train(program, params, state, 0, 3)  # a stage's state
    lrs = np.array([1e-3, 1e-2, 1e-1])
    _, _, together = autolrs_run._train(
        program, autolrs_run._repeat(params, 3),
        autolrs_run._set_lr(autolrs_run._repeat(state, 3), lrs), 3, 4)
    for i, lr in enumerate(lrs):
        _, _, alone = autolrs_run._train(program, params,
                                         autolrs_run._set_lr(state, [lr]), 3, 4)
        np.testing.assert_allclose(together[:, i], alone[:, 0], rtol=1e-4)
    # The stage's state itself is untouched by the trials (JAX arrays are immutable).
    assert jax.tree.leaves(state)[0].shape[0] == 1


@pytest.mark.usefixtures("fast_compilation")
def test_autolrs_run_parallel_quick(tmp_path, capsys):
    from examples import autolrs_run

    assert autolrs_run.main(["--quick", "--parallel", "--no-progress",
                             "--out", str(tmp_path / "p")]) == 0
    assert "AutoLRS: val loss" in capsys.readouterr().out


def test_trainer_mode_autolrs_refuses_what_it_does_not_support(tmp_path):
    from examples import train

    with pytest.raises(SystemExit) as exit_info:
        train.train(["--schedule", "autolrs", "--resume", "--out", str(tmp_path)])
    assert exit_info.value.code == 2


def test_docstring_examples():
    import doctest

    from optaxsched import _autolrs as autolrs

    result = doctest.testmod(autolrs, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
