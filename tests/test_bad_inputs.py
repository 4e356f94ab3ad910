"""A catalogue of invalid configurations: every one is refused when the object is built.

Library factories (schedules, combinators, transforms, refinement, forecasts) raise
``ValueError`` with the project's wording, ``"<function>: <argument> must be <allowed>, got
<value>."``: each entry below lists the fragments its message must contain (the function, the
argument, the allowed range). File loaders name the file and what is wrong with it. The console
script turns every one of these into a clean error with exit code 2 (no traceback) that names the
argument.

Classes covered (issue 12 added the last five): out-of-range and inconsistent values; values
finite in float64 but not in float32 (``1e39``) and positive values below float32's smallest
normal number; wrong types (complex, strings, ``None``, 0-d arrays where a sequence is meant),
which are ``TypeError``s that ``except ValueError`` also catches; derived quantities that leave
float32 (a harmonic decay's ``peak / end``); files that are empty, truncated, of the wrong kind or
with absurd steps; and the console script's outputs into missing directories. The hypothesis
tests at the end corrupt every numeric argument of every public schedule factory and require a
named error or finite values at every count up to 2**31 - 1.
"""

from __future__ import annotations

import inspect
import re

import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import optaxsched as oxs
from optaxsched import cli
from tests import _registry as reg

CONST = optax.constant_schedule(1.0)


def case(id_, call, *fragments):
    return pytest.param(call, fragments, id=id_)


# (call, fragments the message must contain). Fragments are plain text, matched literally.
FACTORIES = [
    # --- schedules ---------------------------------------------------------------------------
    case("linear_decay-peak-zero", lambda: oxs.linear_decay(0.0, 100),
         "linear_decay:", "peak_value must be", "positive finite number", "got 0.0"),
    case("linear_decay-peak-nan", lambda: oxs.linear_decay(float("nan"), 100),
         "linear_decay:", "peak_value", "positive finite number"),
    case("linear_decay-total-zero", lambda: oxs.linear_decay(1.0, 0),
         "linear_decay:", "total_steps must be", "a positive integer", "got 0"),
    case("linear_decay-total-fractional", lambda: oxs.linear_decay(1.0, 10.5),
         "linear_decay:", "total_steps", "a positive integer", "10.5"),
    case("linear_decay-total-bool", lambda: oxs.linear_decay(1.0, True),
         "linear_decay:", "total_steps", "a positive integer", "True"),
    case("linear_decay-warmup-too-long", lambda: oxs.linear_decay(1.0, 100, warmup_steps=100),
         "linear_decay:", "warmup_steps", "[0, 99]", "100"),
    case("linear_decay-end-above-peak", lambda: oxs.linear_decay(1.0, 100, end_value=2.0),
         "linear_decay:", "end_value", "[0, peak_value]", "2.0"),
    case("linear_decay-init-negative", lambda: oxs.linear_decay(1.0, 100, init_value=-0.1),
         "linear_decay:", "init_value", "non-negative", "-0.1"),
    case("wsd-decay-fraction-zero", lambda: oxs.wsd(1.0, 100, decay_fraction=0.0),
         "wsd:", "decay_fraction", "(0, 1]", "0.0"),
    case("wsd-decay-fraction-above-one", lambda: oxs.wsd(1.0, 100, decay_fraction=1.5),
         "wsd:", "decay_fraction", "(0, 1]", "1.5"),
    case("wsd-both-decay-lengths", lambda: oxs.wsd(1.0, 100, decay_fraction=0.1, cooldown_steps=10),
         "wsd:", "exactly one of decay_fraction and cooldown_steps"),
    case("wsd-cooldown-steps-too-long", lambda: oxs.wsd(1.0, 100, cooldown_steps=101),
         "wsd:", "cooldown_steps", "[1, 100]", "101"),
    case("wsd-unknown-shape", lambda: oxs.wsd(1.0, 100, decay_shape="quadratic"),
         "wsd:", "decay_shape", "'1-sqrt'", "'quadratic'"),
    case("wsd-exponential-to-zero", lambda: oxs.wsd(1.0, 100, decay_shape="exponential"),
         "wsd:", "end_value", "exponential"),
    case("wsd-warmup-into-decay", lambda: oxs.wsd(1.0, 100, warmup_steps=90),
         "wsd:", "warmup_steps", "[0, 80]", "90"),
    case("wsd_s-no-points", lambda: oxs.wsd_s(1.0, []),
         "wsd_s:", "decay_points", "at least 1"),
    case("wsd_s-points-decreasing", lambda: oxs.wsd_s(1.0, [100, 50]),
         "wsd_s:", "decay_points", "strictly increasing", "[100, 50]"),
    case("wsd_s-decay-longer-than-segment", lambda: oxs.wsd_s(1.0, [10, 100], cooldown_steps=20),
         "wsd_s:", "cooldown_steps", "[1, 10]", "20"),
    case("wsd_s_checkpoints-zero-point", lambda: oxs.wsd_s_checkpoints([0, 10]),
         "wsd_s_checkpoints:", "decay_points", "positive integers"),
    case("rex-negative-peak", lambda: oxs.rex(-1.0, 100),
         "rex:", "peak_value", "positive finite number", "-1.0"),
    case("uba-phi-zero", lambda: oxs.uba(1.0, 100, phi=0.0),
         "uba:", "phi", "positive finite number", "0.0"),
    case("uba-phi-inf", lambda: oxs.uba(1.0, 100, phi=float("inf")),
         "uba:", "phi", "positive finite number", "inf"),
    case("power-b-positive", lambda: oxs.power(0.02, 32, 1024, b=0.5),
         "power:", "b must be", "< 0", "0.5"),
    case("power-a-zero", lambda: oxs.power(0.02, 32, 1024, a=0.0),
         "power:", "a must be", "positive", "0.0"),
    case("power-batch-size-zero", lambda: oxs.power(0.02, 0, 1024),
         "power:", "batch_size", "positive", "0"),
    case("power-decay-without-total", lambda: oxs.power(0.02, 32, 1024, decay_tokens=1e6),
         "power:", "total_tokens", "decay_tokens > 0", "None"),
    case("power-total-below-phases",
         lambda: oxs.power(0.02, 32, 1024, warmup_tokens=1e6, decay_tokens=1e6,
                           total_tokens=1e6),
         "power:", "total_tokens", ">= warmup_tokens + decay_tokens", "1000000"),
    case("infinite-plateau-above-peak", lambda: oxs.infinite(1.0, 2.0, 10, 10),
         "infinite:", "constant_value", "[0, peak_value]", "2.0"),
    case("infinite-cooldown-zero", lambda: oxs.infinite(1.0, 0.1, 10, 0),
         "infinite:", "cooldown_steps", "a positive integer", "0"),
    case("infinite-anneal-without-end", lambda: oxs.infinite(1.0, 0.1, 10, 10, anneal_start=50,
                                                             anneal_steps=10),
         "infinite:", "end_value", "anneal_start is given", "None"),
    case("infinite-anneal-during-cooldown",
         lambda: oxs.infinite(1.0, 0.1, 10, 10, anneal_start=15, anneal_steps=5, end_value=0.01),
         "infinite:", "anneal_start", ">= warmup_steps + cooldown_steps", "= 20", "15"),
    case("infinite-unknown-cooldown-shape", lambda: oxs.infinite(1.0, 0.1, 10, 10,
                                                                 cooldown_shape="step"),
         "infinite:", "cooldown_shape", "'cosine'", "'step'"),
    case("infinite-anneal-steps-without-start", lambda: oxs.infinite(1.0, 0.1, 10, 10,
                                                                     anneal_steps=5),
         "infinite:", "anneal_steps", "0 when anneal_start is None", "5"),
    case("inverse_sqrt-negative-warmup", lambda: oxs.inverse_sqrt(1.0, -1),
         "inverse_sqrt:", "warmup_steps", "non-negative integer", "-1"),
    case("inverse_sqrt-timescale-zero", lambda: oxs.inverse_sqrt(1.0, 10, timescale=0.0),
         "inverse_sqrt:", "timescale", "positive finite number", "0.0"),
    case("reset_warmup-interval-zero", lambda: oxs.reset_warmup(0, 0),
         "reset_warmup:", "interval", "[1, 2147483647]", "0"),
    case("reset_warmup-warmup-longer", lambda: oxs.reset_warmup(10, 20),
         "reset_warmup:", "warmup_steps", "reset_interval", "20"),
    # --- combinators -------------------------------------------------------------------------
    case("tabulated-empty", lambda: oxs.tabulated([]),
         "tabulated:", "values", "at least 1 finite number"),
    case("tabulated-nan", lambda: oxs.tabulated([1.0, float("nan")]),
         "tabulated:", "values", "finite"),
    case("tabulated-2d", lambda: oxs.tabulated([[1.0, 2.0]]),
         "tabulated:", "values", "1-D"),
    case("tabulated-total-too-short", lambda: oxs.tabulated([1.0, 0.0], total_steps=1),
         "tabulated:", "total_steps", ">= 2", "1"),
    case("with_warmup-not-callable", lambda: oxs.with_warmup("cosine", 10),
         "with_warmup:", "schedule", "a schedule", "'cosine'"),
    case("with_warmup-negative-warmup", lambda: oxs.with_warmup(CONST, -5),
         "with_warmup:", "warmup_steps", "non-negative integer", "-5"),
    case("with_warmup-unknown-shape", lambda: oxs.with_warmup(CONST, 5, shape="quadratic"),
         "with_warmup:", "shape", "'linear'", "'quadratic'"),
    case("join-no-schedules", lambda: oxs.join([], []),
         "join:", "schedules", "non-empty sequence"),
    case("join-boundary-count", lambda: oxs.join([CONST, CONST], [10, 20]),
         "join:", "boundaries", "1 strictly increasing", "[10, 20]"),
    case("join-stateful", lambda: oxs.join([oxs.token_schedule(CONST)], []),
         "join:", "schedules[0]", "not a stateful schedule"),
    case("multiply-string-factor", lambda: oxs.multiply(CONST, "0.5"),
         "multiply:", "factors", "'0.5'"),
    case("sample_every-zero", lambda: oxs.sample_every(CONST, 0),
         "sample_every:", "interval", "positive integer", "0"),
    case("in_tokens-zero", lambda: oxs.in_tokens(CONST, 0),
         "in_tokens:", "tokens_per_step", "positive finite number", "0"),
    case("token_schedule-bad-name", lambda: oxs.token_schedule(CONST, extra_arg="n tokens"),
         "token_schedule:", "extra_arg", "Python identifier", "'n tokens'"),
    case("token_schedule-negative-start", lambda: oxs.token_schedule(CONST, initial_tokens=-1),
         "token_schedule:", "initial_tokens", "an integer in [0,", "-1"),
    case("rewarm-restart-zero", lambda: oxs.rewarm(CONST, [0], 5),
         "rewarm:", "restart_steps", "integers >= 1", "[0]"),
    case("rewarm-restarts-decreasing", lambda: oxs.rewarm(CONST, [10, 5], 5),
         "rewarm:", "restart_steps", "strictly increasing", "[10, 5]"),
    case("rewarm-unknown-shape", lambda: oxs.rewarm(CONST, 10, 5, shape="step"),
         "rewarm:", "shape", "'linear'", "'step'"),
    # --- refinement --------------------------------------------------------------------------
    case("record_grad_norms-zero", lambda: oxs.record_grad_norms(0),
         "record_grad_norms:", "num_steps", "[1, 2147483647]", "0"),
    case("record_grad_norms-unknown-norm", lambda: oxs.record_grad_norms(10, ("l3",)),
         "record_grad_norms:", "norms", "'l2'", "'l3'"),
    case("record_grad_norms-repeated-norm", lambda: oxs.record_grad_norms(10, ("l2", "l2")),
         "record_grad_norms:", "norms", "distinct"),
    case("refine-unknown-kind", lambda: oxs.refine(np.ones(10), kind="adamw"),
         "refine:", "kind", "'sgd', 'adam'", "'adamw'"),
    case("refine-smoothing-above-one",
         lambda: oxs.refine(np.ones(10), kind="sgd", smoothing=1.5),
         "refine:", "smoothing", "[0, 1]", "1.5"),
    case("refine-too-short", lambda: oxs.refine([1.0], kind="sgd", smoothing=0.0),
         "refine:", "grad_norms", "at least 2"),
    case("refine-nan-only", lambda: oxs.refine([float("nan")] * 5, kind="sgd"),
         "refine:", "grad_norms", "finite"),
    case("refine-negative", lambda: oxs.refine([1.0, -2.0, 3.0], kind="sgd", smoothing=0.0),
         "refine:", "grad_norms", "non-negative"),
    case("refine-array-without-kind", lambda: oxs.refine(np.ones(10)),
         "refine:", "kind is required", "kind='sgd'", "kind='adam'"),
    case("refine-both-norms-without-kind",
         lambda: oxs.refine({"l2": np.ones(10), "l1": np.ones(10)}),
         "refine:", "both ℓ2 and ℓ1", "kind='sgd'", "kind='adam'"),
    case("refine-kind-without-its-norm", lambda: oxs.refine({"l1": np.ones(10)}, kind="sgd"),
         "refine:", "kind='sgd'", "ℓ2 norms", "['l1']"),
    case("refined_schedule-peak-zero",
         lambda: oxs.refined_schedule(np.ones(10), 0.0, kind="sgd"),
         "refined_schedule:", "peak_value", "positive", "0.0"),
    case("refined_schedule-total-one",
         lambda: oxs.refined_schedule(np.ones(10), 1.0, 1, kind="sgd"),
         "refined_schedule:", "total_steps", ">= 2", "1"),
    case("refined_schedule-array-without-kind", lambda: oxs.refined_schedule(np.ones(40), 1.0),
         "refined_schedule:", "kind is required", "kind='sgd'", "kind='adam'"),
    # --- hypergradient -----------------------------------------------------------------------
    case("hypergradient-unknown-mode", lambda: oxs.hypergradient(0.1, 1e-3, mode="adaptive"),
         "hypergradient:", "mode", "'additive', 'multiplicative'", "'adaptive'"),
    case("hypergradient-negative-lr", lambda: oxs.hypergradient(-0.1, 1e-3),
         "hypergradient:", "learning_rate", "non-negative", "-0.1"),
    case("hypergradient-multiplicative-beta-one",
         lambda: oxs.hypergradient(0.1, 1.0, mode="multiplicative"),
         "hypergradient:", "hyper_lr", "[0, 1)", "1.0"),
    case("hypergradient-min-above-max", lambda: oxs.hypergradient(0.1, 1e-3, min_lr=0.5,
                                                                  max_lr=0.2),
         "hypergradient:", "min_lr", "max_lr", "0.5"),
    case("hypergradient-lr-above-max", lambda: oxs.hypergradient(0.5, 1e-3, max_lr=0.2),
         "hypergradient:", "learning_rate", "max_lr", "0.5"),
    case("hypergradient-base-not-a-transform", lambda: oxs.hypergradient(0.1, 1e-3, base="adam"),
         "hypergradient:", "base", "GradientTransformation", "'adam'"),
    # --- NaP ---------------------------------------------------------------------------------
    case("project_to_init_norm-every-zero", lambda: oxs.project_to_init_norm(every=0),
         "project_to_init_norm:", "every", "[1, 2147483647]", "0"),
    case("project_to_init_norm-axis-string", lambda: oxs.project_to_init_norm(axis="last"),
         "project_to_init_norm:", "axis", "integer", "'last'"),
    case("project_to_init_norm-mask-number", lambda: oxs.project_to_init_norm(mask={"w": 3}),
         "project_to_init_norm:", "mask", "booleans or non-empty string labels", "3"),
    case("project_to_init_norm-mask-structure",
         lambda: oxs.project_to_init_norm(mask={"x": True}).init({"w": jnp.ones(3)}),
         "project_to_init_norm:", "mask", "structure of the parameters"),
    case("nap-not-an-optimizer", lambda: oxs.nap(None),
         "nap:", "optimizer", "GradientTransformation", "None"),
    case("effective_learning_rate-kind", lambda: oxs.effective_learning_rate(
        0.1, {"w": jnp.ones(2)}, kind="lion"),
         "effective_learning_rate:", "kind", "'sgd', 'adam'", "'lion'"),
    case("effective_learning_rate-negative", lambda: oxs.effective_learning_rate(
        -0.1, {"w": jnp.ones(2)}),
         "effective_learning_rate:", "learning_rate", "non-negative", "-0.1"),
    case("nap_mask-scale-offset", lambda: oxs.nap_mask({}, scale_offset="both"),
         "nap_mask:", "scale_offset", "'exclude', 'joint'", "'both'"),
    case("nap_mask-not-a-model", lambda: oxs.nap_mask(42),
         "nap_mask:", "model_or_params", "nnx.Module", "int"),
    # --- averaging ---------------------------------------------------------------------------
    case("average_params-kind", lambda: oxs.average_params("swa"),
         "average_params:", "kind", "'ema', 'tail'", "'swa'"),
    case("average_params-decay-one", lambda: oxs.average_params("ema", decay=1.0),
         "average_params:", "decay", "[0, 1)", "1.0"),
    case("average_params-decay-for-tail", lambda: oxs.average_params("tail", decay=0.9),
         "average_params:", "decay", "None for kind='tail'", "0.9"),
    case("average_params-every-zero", lambda: oxs.average_params(every=0),
         "average_params:", "every", "[1, 2147483647]", "0"),
    case("average_params-int-dtype", lambda: oxs.average_params(dtype=jnp.int32),
         "average_params:", "dtype", "floating dtype"),
    case("average_params-debias-string", lambda: oxs.average_params(debias="yes"),
         "average_params:", "debias", "True or False", "'yes'"),
    # --- spikes ------------------------------------------------------------------------------
    case("scale_by_spam-b1-one", lambda: oxs.scale_by_spam(b1=1.0),
         "scale_by_spam:", "b1", "[0, 1)", "1.0"),
    case("scale_by_spam-eps-zero", lambda: oxs.scale_by_spam(eps=0.0),
         "scale_by_spam:", "eps", "positive finite number", "0.0"),
    case("scale_by_spam-threshold-negative", lambda: oxs.scale_by_spam(threshold=-1.0),
         "scale_by_spam:", "threshold", "non-negative", "-1.0"),
    case("scale_by_spam-clip-delay-past-reset", lambda: oxs.scale_by_spam(reset_interval=10,
                                                                          clip_delay=10),
         "scale_by_spam:", "clip_delay", "< reset_interval (10)", "10"),
    case("scale_by_spam-warmup-past-reset", lambda: oxs.scale_by_spam(reset_interval=10,
                                                                      warmup_steps=11,
                                                                      clip_delay=2),
         "scale_by_spam:", "warmup_steps", "<= reset_interval (10)", "11"),
    case("spam-negative-lr", lambda: oxs.spam(-1e-3),
         "spam:", "learning_rate", "non-negative", "-0.001"),
    case("spam-negative-weight-decay", lambda: oxs.spam(1e-3, weight_decay=-0.1),
         "spam:", "weight_decay", "non-negative", "-0.1"),
    case("spam-mask-of-numbers", lambda: oxs.spam(1e-3, mask={"w": 1}),
         "spam:", "mask", "pytree of bools"),
    case("stable_spam-gamma1-one", lambda: oxs.stable_spam(1e-3, gamma1=1.0),
         "stable_spam:", "gamma1", "[0, 1)", "1.0"),
    case("scale_by_stable_spam-t-max-zero", lambda: oxs.scale_by_stable_spam(t_max=0),
         "scale_by_stable_spam:", "t_max", "[1, 2147483646]", "0"),
    case("scale_by_stable_spam-eta-min", lambda: oxs.scale_by_stable_spam(eta_min=2.0),
         "scale_by_stable_spam:", "eta_min", "[0, 1]", "2.0"),
    case("clip_spikes-b2", lambda: oxs.clip_spikes(b2=1.5),
         "clip_spikes:", "b2", "[0, 1)", "1.5"),
    case("adaptive_spike_clip-theta-one", lambda: oxs.adaptive_spike_clip(theta=1.0),
         "adaptive_spike_clip:", "theta", "[0, 1)", "1.0"),
    case("adaptive_grad_norm-eps-zero", lambda: oxs.adaptive_grad_norm(eps=0.0),
         "adaptive_grad_norm:", "eps", "positive finite number", "0.0"),
    case("reset_every-not-a-transform", lambda: oxs.reset_every(None, 10),
         "reset_every:", "inner", "GradientTransformation", "None"),
    case("reset_every-interval-zero", lambda: oxs.reset_every(optax.scale_by_adam(), 0),
         "reset_every:", "interval", "[1, 2147483647]", "0"),
    case("reset_every-keep-numbers", lambda: oxs.reset_every(optax.scale_by_adam(), 5, keep=[1]),
         "reset_every:", "keep", "sequence of strings", "[1]"),
    # --- forecasts ---------------------------------------------------------------------------
    case("annealing_areas-lam-zero", lambda: oxs.annealing_areas(np.ones(10), lam=0.0),
         "annealing_areas:", "lam", "(0, 1", "0.0"),
    case("annealing_areas-schedule-without-length", lambda: oxs.annealing_areas(CONST),
         "annealing_areas:", "total_steps", "required"),
    case("fit-no-runs", lambda: oxs.fit_annealing_law([]),
         "fit_annealing_law:", "runs", "non-empty list of runs"),
    case("fit-starts-zero", lambda: oxs.fit_annealing_law((np.ones(50), np.ones(50)), starts=0),
         "fit_annealing_law:", "starts", "an integer in [1,", "0"),
    case("plan_schedules-empty", lambda: oxs.plan_schedules({}, _law()),
         "plan_schedules:", "candidates", "non-empty mapping"),
    case("plan_wsd-fraction-above-one", lambda: oxs.plan_wsd(_law(), 1e-3, 100,
                                                             fractions=[1.5]),
         "plan_wsd:", "fractions", "(0, 1]", "1.5"),
    case("plan_wsd-unknown-shape", lambda: oxs.plan_wsd(_law(), 1e-3, 100, shapes=["step"]),
         "plan_wsd:", "shapes", "'1-sqrt'", "'step'"),
    # --- issue 12: finite in float64, not in float32 (refused where the object is built) ------
    case("wsd-peak-1e39", lambda: oxs.wsd(1e39, 100),
         "wsd:", "peak_value", "representable in float32", "1e+39"),
    case("power-b-minus-1e39", lambda: oxs.power(0.02, 32, 1024, b=-1e39),
         "power:", "b must be", "representable in float32", "-1e+39"),
    case("infinite-timescale-1e308", lambda: oxs.infinite(1.0, 0.1, 10, 10,
                                                          cooldown_timescale=1e308),
         "infinite:", "cooldown_timescale", "representable in float32", "1e+308"),
    case("inverse_sqrt-timescale-1e39", lambda: oxs.inverse_sqrt(1.0, 10, timescale=1e39),
         "inverse_sqrt:", "timescale", "representable in float32"),
    case("inverse_sqrt-timescale-subnormal", lambda: oxs.inverse_sqrt(1.0, 10, timescale=1e-45),
         "inverse_sqrt:", "timescale", "smallest normal number", "1e-45"),
    case("with_warmup-init-1e308", lambda: oxs.with_warmup(CONST, 10, init_value=1e308),
         "with_warmup:", "init_value", "representable in float32", "1e+308"),
    case("in_tokens-1e39", lambda: oxs.in_tokens(CONST, 1e39),
         "in_tokens:", "tokens_per_step", "representable in float32"),
    case("spam-lr-1e39", lambda: oxs.spam(1e39),
         "spam:", "learning_rate", "representable in float32", "1e+39"),
    case("hypergradient-lr-1e39", lambda: oxs.hypergradient(1e39, 1e-3),
         "hypergradient:", "learning_rate", "representable in float32"),
    case("plan_wsd-peak-1e39", lambda: oxs.plan_wsd(_law(), 1e39, 100),
         "plan_wsd:", "peak_value", "representable in float32", "1e+39"),
    case("refined_schedule-peak-1e39",
         lambda: oxs.refined_schedule(np.ones(40), 1e39, kind="sgd"),
         "refined_schedule:", "peak_value", "representable in float32", "1e+39"),
    case("multiply-factor-1e39", lambda: oxs.multiply(CONST, 1e39),
         "multiply:", "factors[1]", "representable in float32"),
    # A nonzero factor float32 flushes to 0, and constants alone whose product it cannot hold.
    case("multiply-factor-1e-50", lambda: oxs.multiply(CONST, 1e-50),
         "multiply:", "factors[1]", "representable in float32", "smallest normal number",
         "1e-50"),
    case("multiply-constants-product-1e-40", lambda: oxs.multiply(1e-20, 1e-20),
         "multiply:", "factors must be", "product is within the float32 range", "(1e-20, 1e-20)"),
    # Derived quantities: power's phases in steps (token arguments / tokens_per_step).
    case("power-warmup-in-steps-beyond-float32",
         lambda: oxs.power(0.02, 32, 1e-30, warmup_tokens=1e10),
         "power:", "tokens_per_step must be", "warmup_tokens / tokens_per_step", "1e-30"),
    case("power-decay-in-steps-below-float32",
         lambda: oxs.power(0.02, 32, 1e10, decay_tokens=1e-30, total_tokens=1e10),
         "power:", "tokens_per_step must be", "decay_tokens / tokens_per_step", "1e-40",
         "10000000000.0"),
    case("wsd-harmonic-ratio-beyond-float32",
         lambda: oxs.wsd(3e38, 100, decay_shape="harmonic", end_value=1e-30),
         "wsd:", "end_value must be at least", "'harmonic'", "fit in float32", "1e-30"),
    case("linear_decay-total-beyond-2-53", lambda: oxs.linear_decay(1.0, 10**400),
         "linear_decay:", "total_steps", "at most 2**53"),
    # --- wrong types: complex, 0-d arrays where a sequence is expected -------------------------
    case("wsd-complex-peak", lambda: oxs.wsd(1 + 0j, 100),
         "wsd:", "peak_value", "(1+0j)", "complex"),
    case("multiply-imaginary", lambda: oxs.multiply(CONST, 1j),
         "multiply:", "factors[1]", "1j", "complex"),
    case("linear_decay-total-complex", lambda: oxs.linear_decay(1.0, 100 + 0j),
         "linear_decay:", "total_steps", "complex"),
    case("wsd-peak-string", lambda: oxs.wsd("1e-3", 100),
         "wsd:", "peak_value", "'1e-3'", "str"),
    case("wsd-peak-vector", lambda: oxs.wsd(np.ones(2), 100),
         "wsd:", "peak_value", "ndarray"),
    case("wsd_s-points-0d", lambda: oxs.wsd_s(1.0, np.array(50)),
         "wsd_s:", "decay_points", "a sequence", "array(50)"),
    case("join-boundaries-0d", lambda: oxs.join([CONST, CONST], np.array(5)),
         "join:", "boundaries", "array(5)"),
    case("fit-lam-0d", lambda: oxs.fit_annealing_law((np.ones(50), np.ones(50)),
                                                     lam=np.array(0.9)),
         "fit_annealing_law:", "lam", "a sequence", "array(0.9)"),
    case("plan_wsd-fractions-0d", lambda: oxs.plan_wsd(_law(), 1e-3, 100,
                                                       fractions=np.array(0.2)),
         "plan_wsd:", "fractions", "a sequence", "array(0.2)"),
    case("effective_learning_rate-negative-array", lambda: oxs.effective_learning_rate(
        np.array(-1.0), {"w": jnp.ones(2)}),
         "effective_learning_rate:", "learning_rate", "non-negative", "-1.0"),
    # --- host-side functions validate steps before using them ---------------------------------
    case("fit-schedule-step-inf", lambda: oxs.fit_annealing_law(
        (CONST, [float("inf")] * 1, [2.0])),
         "fit_annealing_law:", "runs.steps", "integers >= 0 (finite)", "inf"),
    case("fit-schedule-step-nan", lambda: oxs.fit_annealing_law(
        (CONST, [float("nan")], [2.0])),
         "fit_annealing_law:", "runs.steps", "integers >= 0 (finite)", "nan"),
    case("fit-schedule-step-1e12", lambda: oxs.fit_annealing_law(
        (CONST, [0, 10**12], [2.0, 1.9])),
         "fit_annealing_law:", "runs.steps", "at most 99999999", "1000000000000"),
    case("LossCurve-schedule-step-negative", lambda: oxs.LossCurve(CONST, [2.0], steps=[-1]),
         "LossCurve:", "steps must be", "integers >= 0 (finite)", "-1"),
    case("LossCurve-schedule-step-huge-int", lambda: oxs.LossCurve(CONST, [2.0],
                                                                   steps=[10**400]),
         "LossCurve:", "steps must be", "1-D array of integer steps"),
]


def _law():
    return oxs.AnnealingLaw(L0=2.0, A=1.0, alpha=0.5, C=0.1, lam=0.999, warmup_steps=0,
                                 n_points=10, n_runs=1)


@pytest.mark.parametrize("call, fragments", FACTORIES)
def test_invalid_configuration_is_refused_with_a_clear_message(call, fragments):
    with pytest.raises(ValueError) as info:
        call()
    message = str(info.value)
    assert re.match(r"^[\w.]+( [\w.]+)*: ", message), f"no '<function>: ' prefix: {message!r}"
    missing = [f for f in fragments if f not in message]
    assert not missing, f"message {message!r} lacks {missing}"


@pytest.mark.parametrize("call, name", [
    (lambda: oxs.wsd(1 + 0j, 100), "peak_value"),
    (lambda: oxs.multiply(CONST, 1j), "factors[1]"),
    (lambda: oxs.wsd_s(1.0, np.array(50)), "decay_points"),
    (lambda: oxs.join([CONST, CONST], np.array(5)), "boundaries"),
    (lambda: oxs.plan_wsd(_law(), 1e-3, 100, fractions=np.array(0.2)), "fractions"),
    (lambda: oxs.spam(None), "learning_rate"),
    (lambda: oxs.nap(optax.sgd(0.1), every="2"), "every"),
], ids=["wsd-complex", "multiply-1j", "wsd_s-0d", "join-0d", "plan_wsd-0d", "spam-None",
        "nap-every-str"])
def test_wrong_types_are_type_errors_naming_the_argument(call, name):
    """A wrong type is a TypeError (that ``except ValueError`` catches too), naming the argument
    instead of Python's bare ``float() argument must be ...`` or ``len() of unsized object``."""
    with pytest.raises(TypeError) as info:
        call()
    assert isinstance(info.value, ValueError)
    assert f": {name} must be" in str(info.value), str(info.value)


# ------------------------------------------------------------------------------------------------
# File inputs: the refine and forecast loaders.
# ------------------------------------------------------------------------------------------------

FILES = [
    # (loader, file name, contents, fragments); contents None: the file does not exist.
    ("grad_norms", "norms.csv", "", ("load_grad_norms:", "norms.csv", "empty")),
    ("grad_norms", "norms.csv", "step,loss,lr\n0,1.0,0.1\n",
     ("load_grad_norms:", "no column 'grad_norm_l2'", "['step', 'loss', 'lr']")),
    ("grad_norms", "norms.csv", "grad_norm_l2\n1.0\nabc\n",
     ("load_grad_norms:", "line 3", "must be a number, got 'abc'")),
    ("grad_norms", "norms.csv", "1.0,2.0\n3.0,4.0\n",
     ("load_grad_norms:", "2 columns and no header")),
    ("grad_norms", "metrics.jsonl", "{\"step\": 0, \"loss\": 1.0}\n",
     ("load_grad_norms:", "no records with the key 'grad_norm_l2'", "['loss', 'step']")),
    ("grad_norms", "metrics.jsonl", "{\"step\": 0, \"grad_norm_l2\": 1.0}\nnot json\n",
     ("load_grad_norms:", "line 2", "not valid JSON")),
    ("grad_norms", "metrics.jsonl", "", ("load_grad_norms:", "metrics.jsonl", "empty")),
    ("grad_norms", "metrics.jsonl", "\n\n", ("load_grad_norms:", "no JSON records")),
    ("grad_norms", "norms.parquet", "x", ("load_grad_norms:", "path", ".npy, .csv")),
    ("grad_norms", "missing.csv", None, ("load_grad_norms:", "no such file", "missing.csv")),
    ("grad_norms_refined", "norms.csv", "grad_norm_l2\nnan\nnan\nnan\n",
     ("refine:", "grad_norms", "finite")),
    ("loss_curve", "run.csv", "", ("load_loss_curve:", "run.csv", "empty")),
    ("loss_curve", "run.csv", "step,loss\n0,2.0\n", ("load_loss_curve:", "no column 'lr'")),
    ("loss_curve", "run.csv", "step,lr,loss\n0,0.1,nan\n1,0.1,nan\n",
     ("load_loss_curve:", "run.csv", "no finite losses")),
    ("loss_curve", "run.csv", "step,lr,loss\n0,0.1,2.0\n1,-0.1,1.9\n",
     ("load_loss_curve:", "the learning rate must be finite and")),
    ("loss_curve", "metrics.jsonl", "{\"step\": 0, \"lr\": 0.1, \"loss\": 2.0}\n[1, 2]\n",
     ("load_loss_curve:", "line 2", "expected a JSON object")),
    ("loss_curve", "run.txt", "1 2 3", ("load_loss_curve:", "path")),
    ("loss_curve", "missing.jsonl", None, ("load_loss_curve:", "no such file")),
    ("law", "law.json", "{\"L0\": 1.0}", ("AnnealingLaw", "data")),
    # --- binary files of the wrong kind, empty, truncated (issue 12) ---------------------------
    ("grad_norms", "norms.npy", b"", ("load_grad_norms:", "norms.npy", "empty")),
    ("grad_norms", "norms.npy", "NPZ", ("load_grad_norms:", "norms.npy", "is an .npz archive")),
    ("grad_norms", "norms.npy", "NPY_TRUNCATED",
     ("load_grad_norms:", "norms.npy", "not a readable .npy array", "truncated")),
    ("grad_norms", "norms.npy", "NPY_OBJECT",
     ("load_grad_norms:", "norms.npy", "not a readable .npy array")),
    ("grad_norms", "norms.npy", "plain text, not numpy",
     ("load_grad_norms:", "norms.npy", "not a readable .npy array")),
    ("grad_norms", "norms.csv", "DIR", ("load_grad_norms:", "norms.csv", "not a regular file")),
    ("grad_norms", "norms.csv", b"grad_norm_l2\n\xff\xfe1.0\n",
     ("load_grad_norms:", "norms.csv", "not a UTF-8 text file")),
    ("grad_norms", "metrics.jsonl", '{"step": 0, "grad_norm_l2": 1.0}\n{"step": 1, "grad_no',
     ("load_grad_norms:", "line 2", "not valid JSON")),
    ("grad_norms", "metrics.jsonl",
     '{"step": 0, "grad_norm_l2": 1.0}\n{"step": 1' + "0" * 400 + ', "grad_norm_l2": 1.0}\n',
     ("load_grad_norms:", "metrics.jsonl", "line 2", "'step'", "beyond", "2**53")),
    ("grad_norms", "metrics.jsonl",
     '{"step": 0, "grad_norm_l2": 1.0}\n{"step": 1e999, "grad_norm_l2": 1.0}\n',
     ("load_grad_norms:", "line 2", "'step' must be an integer >= 0", "inf")),
    ("grad_norms", "metrics.jsonl",
     '{"step": 0, "grad_norm_l2": 1.0}\n{"step": 1.5, "grad_norm_l2": 1.0}\n',
     ("load_grad_norms:", "line 2", "'step' must be an integer >= 0", "1.5")),
    ("grad_norms", "norms.csv", "step,grad_norm_l2\n0,1.0\n1000000000000,2.0\n",
     ("load_grad_norms:", "norms.csv", "span", "10^8")),
    ("loss_curve", "run.npz", b"", ("load_loss_curve:", "run.npz", "empty")),
    ("loss_curve", "run.npz", "NPY", ("load_loss_curve:", "run.npz", "plain .npy array")),
    ("loss_curve", "run.npz", "NPZ_TRUNCATED",
     ("load_loss_curve:", "run.npz", "not a readable .npz archive", "truncated")),
    ("loss_curve", "run.npz", "NPZ_OBJECT",
     ("load_loss_curve:", "run.npz", "not a readable .npz archive")),
    ("loss_curve", "run.npz", "step,lr,loss\n0,0.1,2.0\n",
     ("load_loss_curve:", "run.npz", "not an .npz archive")),
    ("loss_curve", "metrics.jsonl", b"",
     ("load_loss_curve:", "metrics.jsonl", "empty")),
    ("loss_curve", "metrics.jsonl",
     '{"step": 0, "lr": 0.1, "loss": 2.0}\n{"step": 1, "lr": 0.1, "lo',
     ("load_loss_curve:", "line 2", "not valid JSON")),
    ("loss_curve", "metrics.jsonl",
     '{"step": 0, "lr": 0.1, "loss": 2.0}\n{"step": 1e400, "lr": 0.1, "loss": 1.9}\n',
     ("load_loss_curve:", "line 2", "'step' must be an integer >= 0", "inf")),
    ("loss_curve", "metrics.jsonl",
     '{"step": 0, "lr": 0.1, "loss": 2.0}\n{"step": 1' + "0" * 400 + ', "lr": 0.1}\n',
     ("load_loss_curve:", "line 2", "beyond", "2**53")),
    ("loss_curve", "metrics.jsonl",
     '{"step": 0, "lr": 0.1, "loss": 2.0}\n{"step": 1000000000000, "lr": 0.1, "loss": 1.9}\n',
     ("load_loss_curve:", "metrics.jsonl", "span", "10^8")),
    ("loss_curve", "metrics.jsonl",
     '{"step": 0, "lr": 0.1, "loss": 2.0}\n{"step": 1, "lr": 1' + "0" * 400 + '}\n',
     ("load_loss_curve:", "line 2", "'lr' must be a number within the float range")),
    ("loss_curve", "run.csv", "step,lr,loss\n0,0.1,2.0\n1000000000000,0.1,1.9\n",
     ("load_loss_curve:", "run.csv", "span", "10^8")),
    ("loss_curve", "metrics.jsonl", '{"epoch": 1}\n',
     ("load_loss_curve:", "metrics.jsonl", "no records with the key 'lr' or 'loss'")),
    ("law", "law.json", b"", ("AnnealingLaw.load:", "law.json", "not a readable JSON law")),
    ("law", "law.json", '{"L0": 2.0, "A": 1.0, "alp',
     ("AnnealingLaw.load:", "law.json", "not a readable JSON law")),
    ("law", "law.json", '{"L0": 1e999, "A": 1.0, "alpha": 0.5, "C": 0.1}',
     ("AnnealingLaw.load:", "law.json", "L0 must be", "inf")),
    ("law", "law.json", '{"L0": 2.0, "A": 1.0, "alpha": 0.5, "C": 0.1, "n_points": 1'
     + "0" * 5000 + "}", ("AnnealingLaw.load:", "law.json", "not a readable JSON law")),
]


def _binary(kind: str, path) -> None:
    """Writes one of the named bad binary files (see FILES) to ``path``."""
    import io

    if kind == "NPZ":
        with open(path, "wb") as handle:
            np.savez(handle, grad_norm_l2=np.ones(5))
    elif kind == "NPY":
        with open(path, "wb") as handle:
            np.save(handle, np.ones(5))
    elif kind in ("NPY_TRUNCATED", "NPZ_TRUNCATED"):
        buffer = io.BytesIO()
        if kind == "NPY_TRUNCATED":
            np.save(buffer, np.ones(1000))
        else:
            np.savez(buffer, lr=np.ones(1000), loss=np.ones(1000))
        path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    elif kind == "NPY_OBJECT":
        with open(path, "wb") as handle:
            np.save(handle, np.array([1.0, "a"], dtype=object), allow_pickle=True)
    elif kind == "NPZ_OBJECT":
        with open(path, "wb") as handle:
            np.savez(handle, lr=np.array([0.1, None], dtype=object), loss=np.ones(2))
    elif kind == "DIR":
        path.mkdir()
    else:
        raise AssertionError(kind)


_BINARY = ("NPZ", "NPY", "NPY_TRUNCATED", "NPZ_TRUNCATED", "NPY_OBJECT", "NPZ_OBJECT", "DIR")


def _write(tmp_path, name, contents):
    path = tmp_path / name
    if isinstance(contents, bytes):
        path.write_bytes(contents)
    elif contents in _BINARY:
        _binary(contents, path)
    elif contents is not None:
        path.write_text(contents, encoding="utf-8")
    return path


def _load(loader, path):
    if loader == "grad_norms":
        return oxs.load_grad_norms(path)
    if loader == "grad_norms_refined":
        return oxs.refine(oxs.load_grad_norms(path), kind="sgd")  # the l2 norms
    if loader == "loss_curve":
        return oxs.load_loss_curve(path)
    return oxs.AnnealingLaw.load(path)


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("loader, name, contents, fragments", FILES,
                         ids=[f"{f[0]}-{i}" for i, f in enumerate(FILES)])
def test_bad_file_is_refused_with_a_clear_message(tmp_path, loader, name, contents, fragments):
    path = _write(tmp_path, name, contents)
    with pytest.raises(ValueError) as info:
        _load(loader, path)
    message = str(info.value)
    missing = [f for f in fragments if f not in message]
    assert not missing, f"message {message!r} lacks {missing}"


def test_npy_of_wrong_shape_is_refused(tmp_path):
    path = tmp_path / "norms.npy"
    np.save(path, np.ones((3, 2)))
    with pytest.raises(ValueError, match=r"load_grad_norms: .*1-D numeric array.*\(3, 2\)"):
        oxs.load_grad_norms(path)


# ------------------------------------------------------------------------------------------------
# The console script: exit code 2, a message naming the argument, no traceback.
# ------------------------------------------------------------------------------------------------

WSD = ["plot", "wsd", "--total-steps", "100", "-o", "{out}/x.png"]
REFINE = ["refine", "{norms}", "-o", "{out}/schedule.csv"]
CLI = [
    # (argv, fragments of stderr; "{out}" is a temporary directory, "{norms}" a valid norm log,
    # "{empty}" an empty file, "{nan}" a NaN-only log, "{law}" a valid law)
    (["plot", "wsd", "--peak-value", "-1", *WSD[2:]], ("peak_value", "positive finite number")),
    (["plot", "wsd", "--peak-value", "1", "--total-steps", "abc", "-o", "{out}/x.png"],
     ("--total-steps", "invalid int value: 'abc'")),
    (["plot", "wsd", "--total-steps", "100", "-o", "{out}/x.png"],
     ("--peak-value", "required")),
    (["plot", "wsd", "--peak-value", "1", "--decay-fraction", "2", *WSD[2:]],
     ("decay_fraction", "(0, 1]", "2.0")),
    (["plot", "wsd", "--peak-value", "1", "--decay-shape", "step", *WSD[2:]],
     ("decay_shape", "'1-sqrt'", "'step'")),
    (["plot", "linear_decay", "--peak-value", "1", "--total-steps", "10", "--warmup-steps",
      "10", "-o", "{out}/x.png"], ("warmup_steps", "[0, 9]")),
    (["plot", "cosine", "--peak-value", "1"], ("invalid choice: 'cosine'", "wsd")),
    (["plot", "wsd", "--peak-value", "1", "--plot-steps", "0", *WSD[2:]],
     ("--plot-steps", "positive integer")),
    (["plot", "power", "--peak-value", "0.02", "--batch-size", "32", "--tokens-per-step", "1024",
      "--b", "0.5", "-o", "{out}/x.png"], ("b must be", "< 0")),
    (["plot", "inverse_sqrt", "--peak-value", "1", "--warmup-steps", "-3", "-o", "{out}/x.png"],
     ("warmup_steps", "non-negative integer")),
    (["refine", "{norms}", "--smoothing", "2", "-o", "{out}/s.csv"], ("smoothing", "[0, 1]")),
    (["refine", "{norms}", "--kind", "lion", "-o", "{out}/s.csv"],
     ("--kind", "invalid choice: 'lion'")),
    (["refine", "{norms}", "--peak-value", "0", "-o", "{out}/s.csv"],
     ("--peak-value", "positive finite number")),
    (["refine", "{norms}", "--total-steps", "1", "-o", "{out}/s.csv"],
     ("--total-steps", "[2, 100000000]", "got 1")),
    (["refine", "{norms}", "-o", "{out}/s.png"], ("-o/--output", ".npy, .csv or .txt")),
    (["refine", "{out}/missing.csv", "-o", "{out}/s.csv"], ("no such file", "missing.csv")),
    (["refine", "{empty}", "-o", "{out}/s.csv"], ("empty.csv", "empty")),
    (["refine", "{nan}", "-o", "{out}/s.csv"], ("grad_norms", "finite")),
    (["refine", "{steps}", "--key", "grad_norm_l3", "--kind", "sgd", "-o", "{out}/s.csv"],
     ("no column 'grad_norm_l3'", "['step', 'grad_norm_l2']")),
    (["refine", "{both}", "-o", "{out}/s.csv"],
     ("both grad_norm_l2 and grad_norm_l1", "--kind sgd", "--kind adam")),
    (["refine", "{steps}", "--kind", "adam", "-o", "{out}/s.csv"],
     ("--kind adam", "holds only grad_norm_l2", "pass --kind sgd")),
    (["forecast", "fit", "{empty}", "-o", "{out}/law.json"], ("empty.csv", "empty")),
    (["forecast", "fit", "{norms}", "--starts", "0", "-o", "{out}/law.json"],
     ("load_loss_curve", "norms.csv")),
    (["forecast", "predict", "{law}", "--schedule", "wsd"],
     ("--schedule wsd", "--peak-value", "--total-steps")),
    (["forecast", "predict", "{law}", "--schedule", "cosine", "--peak-value", "-1",
      "--total-steps", "100"], ("--peak-value", "positive finite number")),
    (["forecast", "plan", "{law}", "--peak-value", "0", "--total-steps", "100"],
     ("peak_value", "positive finite number")),
    (["forecast", "plan", "{law}", "--peak-value", "1e-3", "--total-steps", "100",
      "--fractions", "1.5"], ("fractions", "(0, 1]", "1.5")),
    (["forecast", "plan", "{out}/missing.json", "--peak-value", "1e-3", "--total-steps", "100"],
     ("missing.json",)),
    # --- issue 12: absurd sizes are named, not a MemoryError; float32 range; files ------------
    (["refine", "{norms}", "--total-steps", "1000000000000", "-o", "{out}/s.csv"],
     ("--total-steps", "[2, 100000000]")),
    (["forecast", "predict", "{law}", "--schedule", "cosine", "--peak-value", "1e-3",
      "--total-steps", "1000000000000"], ("--total-steps", "[2, 100000000]")),
    (["forecast", "plan", "{law}", "--peak-value", "1e-3", "--total-steps", "1000000000000"],
     ("total_steps", "100000000")),
    (["plot", "wsd", "--peak-value", "1", "--total-steps", "1000000000000", "-o",
      "{out}/x.png"], ("--plot-steps", "at most 100000000")),
    (["plot", "wsd", "--peak-value", "1e39", *WSD[2:]],
     ("peak_value", "representable in float32")),
    (["plot", "uba", "--peak-value", "1", "--total-steps", "100", "--phi", "1e-45", "-o",
      "{out}/x.png"], ("phi", "smallest normal number")),
    (["refine", "{npz_as_npy}", "-o", "{out}/s.csv"], ("norms.npy", "is an .npz archive")),
    (["refine", "{norms}", "-o", "{blocker}/sub/s.csv"],
     ("-o/--output", "cannot create the directory")),
    (["forecast", "fit", "{truncated_npz}", "-o", "{out}/law.json"],
     ("run.npz", "not a readable .npz archive")),
    (["forecast", "predict", "{empty_law}", "--schedule", "cosine", "--peak-value", "1e-3",
      "--total-steps", "100"], ("law.json", "not a readable JSON law")),
]


@pytest.fixture
def cli_files(tmp_path):
    norms = tmp_path / "norms.csv"
    norms.write_text("grad_norm_l2\n" + "\n".join(str(1.0 + 0.1 * i) for i in range(20)))
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    nan = tmp_path / "nan.csv"
    nan.write_text("grad_norm_l2\nnan\nnan\nnan\n")
    steps = tmp_path / "steps.csv"
    steps.write_text("step,grad_norm_l2\n" + "\n".join(f"{i},{1.0 + i}" for i in range(5)))
    both = tmp_path / "both.csv"
    both.write_text("step,grad_norm_l2,grad_norm_l1\n"
                    + "\n".join(f"{i},{1.0 + i},{3.0 + i}" for i in range(20)))
    law = tmp_path / "law.json"
    _law().save(str(law))
    npz_as_npy = tmp_path / "norms.npy"
    _binary("NPZ", npz_as_npy)
    truncated_npz = tmp_path / "run.npz"
    _binary("NPZ_TRUNCATED", truncated_npz)
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a directory is needed")
    empty_law = tmp_path / "bad" / "law.json"
    empty_law.parent.mkdir()
    empty_law.write_text("")
    return {"out": str(tmp_path), "norms": str(norms), "empty": str(empty), "nan": str(nan),
            "steps": str(steps), "both": str(both), "law": str(law), "npz_as_npy": str(npz_as_npy),
            "truncated_npz": str(truncated_npz), "blocker": str(blocker),
            "empty_law": str(empty_law)}


@pytest.mark.parametrize("argv, fragments", CLI, ids=[" ".join(a[:2]) + f"-{i}"
                                                      for i, (a, _) in enumerate(CLI)])
def test_cli_rejects_bad_arguments_cleanly(argv, fragments, cli_files, capsys):
    argv = [a.format(**cli_files) for a in argv]
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2, f"exit code {info.value.code}"
    captured = capsys.readouterr()
    err = captured.err
    assert "Traceback" not in err + captured.out
    assert "error:" in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert sum("error:" in line for line in lines) == 1 and "error:" in lines[-1], err
    missing = [f for f in fragments if f not in err]
    assert not missing, f"stderr {err!r} lacks {missing}"


def test_catalogue_is_large_enough_and_covers_every_factory():
    assert len(FACTORIES) + len(FILES) + len(CLI) >= 60
    ids = [p.id for p in FACTORIES]
    public = reg.public_factories()
    uncovered = sorted(name for name in public["transform"] | public["schedule"]
                       if not any(i.startswith(f"{name}-") for i in ids))
    assert not uncovered, f"public factories without an invalid configuration here: {uncovered}"


# ------------------------------------------------------------------------------------------------
# Property: every numeric argument of every public schedule factory, given a bad value, is either
# refused naming the argument (ValueError or TypeError) or gives finite values at every count.
# ------------------------------------------------------------------------------------------------

_ZERO_D = object()  # stands for a 0-d array holding the argument's valid value
_TWO = object()  # stands for a 1-D array of two copies of the valid value

SCALAR_BAD = [
    float("nan"), float("inf"), -float("inf"), 1e39, -1e39, 1e308, -1e308, 3.4e38, -3.4e38,
    1e38, -1e38, 1e30, -1e30, 1e-30, 1e-38, 1e-39, 1e-45, -0.0, 0, -1, 0.5, 1j, 1 + 0j,
    np.complex64(2.0), _ZERO_D, _TWO, True, False, "1",
    None, b"1", 2**31, 2**31 - 1, 2**63, 10**400, -(10**400), np.float64(1e39), np.int64(2**40),
    np.float16(6e4), np.array(np.nan), np.array(1e39), [1.0],
]
SEQUENCE_BAD = [_ZERO_D, 5, "12", None, [], {1: 2}, np.float32(3.0), np.array([[1.0, 2.0]])]

# Counts at which an accepted schedule must be finite: every phase of the registry's
# configurations, then far beyond any horizon up to the int32 maximum.
FUZZ_COUNTS = np.array([0, 1, 2, 3, 4, 5, 7, 10, 15, 19, 20, 21, 25, 30, 35, 40, 45, 49, 50, 51,
                        99, 100, 1000, 10**5, 2**24 + 1, 2**30, 2**31 - 2, 2**31 - 1], np.int32)


def _numeric_arguments(case):
    """``(bound arguments, scalar names, sequence names)`` of a registry case."""
    args, kwargs = case.make()
    fn = getattr(oxs, case.factory)
    signature = inspect.signature(fn)
    bound = signature.bind(*args, **kwargs)
    bound.apply_defaults()
    scalars, sequences = [], []
    for name, parameter in signature.parameters.items():
        value = bound.arguments[name]
        annotation = str(parameter.annotation)
        if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
            sequences.append(name)
        elif isinstance(value, (list, tuple, np.ndarray)):
            if not any(callable(v) for v in value):
                sequences.append(name)
        elif callable(value) or isinstance(value, str):
            continue
        elif "int" in annotation or "float" in annotation or isinstance(value, (int, float)):
            scalars.append(name)
    return fn, bound, scalars, sequences


def _substitute(value, good):
    if value is _ZERO_D:
        return np.asarray(good if good is not None else 1)
    if value is _TWO:
        return np.asarray([good if good is not None else 1] * 2)
    return value


def _call(fn, bound, name, value):
    arguments = dict(bound.arguments)
    arguments[name] = value
    args, kwargs = [], {}
    for pname, parameter in inspect.signature(fn).parameters.items():
        if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
            args.extend(arguments[pname])
        elif parameter.kind is inspect.Parameter.KEYWORD_ONLY:
            kwargs[pname] = arguments[pname]
        else:
            args.append(arguments[pname])
    return fn(*args, **kwargs)


def _assert_finite_everywhere(schedule, case, what):
    if case.stateful:
        state = schedule.init()
        values = [schedule(state, **case.extra_args)]
        state = schedule.update(state, **case.extra_args)
        values.append(schedule(state, **case.extra_args))
    else:
        values = [schedule(jnp.asarray(FUZZ_COUNTS)), schedule(FUZZ_COUNTS.astype(np.float32))]
    for v in values:
        v = np.asarray(v)
        assert np.all(np.isfinite(v)), f"{what}: accepted, but not finite: {v}"


def _expect_named_error_or_finite(case, fn, bound, name, value):
    what = f"{case.factory}({name}={value!r})"
    try:
        schedule = _call(fn, bound, name, value)
    except (ValueError, TypeError) as err:
        message = str(err)
        assert message.startswith(f"{case.factory}:") or message.startswith(
            f"{case.factory} "), f"{what}: error not prefixed with the function: {message!r}"
        assert name in message, f"{what}: error does not name {name!r}: {message!r}"
        return
    except Exception as err:  # noqa: BLE001 - any other exception is the defect being hunted
        raise AssertionError(f"{what}: {type(err).__name__}: {err}") from None
    try:
        _assert_finite_everywhere(schedule, case, what)
    except AssertionError:
        raise
    except Exception as err:  # noqa: BLE001
        raise AssertionError(f"{what}: accepted, then {type(err).__name__}: {err}") from None


_FUZZ_CASES = sorted(reg.SCHEDULES)
# ``*factors``: the call itself spreads the sequence, so only its entries can be wrong.
_VAR_POSITIONAL = {"multiply": ("factors",)}


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("case_id", _FUZZ_CASES)
@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_bad_schedule_argument_is_named_or_harmless(case_id, data):
    case = reg.SCHEDULES[case_id]
    fn, bound, scalars, sequences = _numeric_arguments(case)
    name = data.draw(st.sampled_from(scalars + sequences), label="argument")
    if name in scalars:
        raw = data.draw(st.one_of(st.sampled_from(SCALAR_BAD),
                                  st.floats(allow_nan=True, allow_infinity=True),
                                  st.integers(-(2**70), 2**70)), label="value")
        value = _substitute(raw, bound.arguments[name])
    else:
        good = list(bound.arguments[name])
        whole = name not in _VAR_POSITIONAL.get(case.factory, ())
        if whole and data.draw(st.booleans(), label="whole sequence"):
            value = _substitute(data.draw(st.sampled_from(SEQUENCE_BAD), label="value"),
                                good[0])
        else:
            index = data.draw(st.integers(0, len(good) - 1), label="index")
            bad = data.draw(st.sampled_from(SCALAR_BAD), label="entry")
            good[index] = _substitute(bad, good[index])
            value = good if not isinstance(bound.arguments[name], tuple) else tuple(good)
    _expect_named_error_or_finite(case, fn, bound, name, value)


_EXTREME = st.one_of(
    st.sampled_from([1e38, 3.4e38, 1e30, 1e-30, 1e-38, 1.2e-38, 2**31 - 1, 2**40, 2**53, 1, 0]),
    st.floats(min_value=1e-38, max_value=3.4e38), st.integers(0, 2**53))


# Factories with scalar arguments (join and multiply take only schedules and sequences).
_SCALAR_CASES = [c for c in _FUZZ_CASES if _numeric_arguments(reg.SCHEDULES[c])[2]]


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("case_id", _SCALAR_CASES)
@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_extreme_valid_values_together_are_named_or_harmless(case_id, data):
    """Several scalar arguments at once at the edges of float32: derived quantities (ratios,
    products, token-to-step conversions) must not overflow into an inf or NaN schedule."""
    case = reg.SCHEDULES[case_id]
    fn, bound, scalars, _ = _numeric_arguments(case)
    names = data.draw(st.lists(st.sampled_from(scalars), min_size=1, max_size=3, unique=True),
                      label="arguments")
    arguments = dict(bound.arguments)
    for name in names:
        arguments[name] = data.draw(_EXTREME, label=name)
    what = f"{case.factory}({', '.join(f'{n}={arguments[n]!r}' for n in names)})"
    bound.arguments.update(arguments)
    try:
        schedule = _call(fn, bound, names[0], arguments[names[0]])
    except (ValueError, TypeError) as err:
        message = str(err)
        assert message.startswith(f"{case.factory}"), f"{what}: {message!r}"
        assert any(p in message for p in inspect.signature(fn).parameters), (
            f"{what}: the error names no argument: {message!r}")
        return
    _assert_finite_everywhere(schedule, case, what)


@pytest.mark.filterwarnings("ignore")
@settings(max_examples=40, deadline=None, derandomize=True)
@given(factory=st.sampled_from(["wsd", "wsd_s", "infinite-cooldown", "infinite-anneal"]),
       shape=st.sampled_from(["1-sqrt", "linear", "cosine", "square", "exponential",
                              "harmonic"]),
       peak=st.one_of(st.floats(1.2e-38, 3.4e38), st.sampled_from([3.4e38, 1e30, 1.0])),
       decades=st.integers(0, 80))
def test_every_decay_shape_between_extreme_peak_and_end_is_named_or_finite(
        factory, shape, peak, decades):
    """The ratio end / peak of two valid values can leave float32 (harmonic's peak / end
    overflowed: NaN where the decay starts); such a pair is refused naming the end value."""
    end = peak * 10.0 ** -decades
    if end < 1.2e-38:
        end = 0.0 if shape not in ("exponential", "harmonic") else 1.2e-38
    build = {
        "wsd": lambda: oxs.wsd(peak, 50, decay_shape=shape, end_value=end, warmup_steps=5),
        "wsd_s": lambda: oxs.wsd_s(peak, [20, 50], cooldown_steps=5, decay_shape=shape,
                                   end_value=end),
        "infinite-cooldown": lambda: oxs.infinite(peak, end, 5, 10, cooldown_shape=shape),
        "infinite-anneal": lambda: oxs.infinite(peak, peak, 5, 10, anneal_start=30,
                                                anneal_steps=10, end_value=end,
                                                anneal_shape=shape),
    }[factory]
    try:
        schedule = build()
    except ValueError as err:
        assert re.search(r"(end_value|constant_value) must be", str(err)), str(err)
        return
    values = np.asarray(schedule(jnp.asarray(FUZZ_COUNTS)))
    assert np.all(np.isfinite(values)), (factory, shape, peak, end, values)


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("case_id", _FUZZ_CASES)
def test_every_listed_bad_value_of_every_argument(case_id):
    """The deterministic sweep behind the property: every argument times every listed value."""
    case = reg.SCHEDULES[case_id]
    fn, bound, scalars, sequences = _numeric_arguments(case)
    failures = []
    for name in scalars:
        for raw in SCALAR_BAD:
            try:
                _expect_named_error_or_finite(case, fn, bound, name,
                                              _substitute(raw, bound.arguments[name]))
            except AssertionError as err:
                failures.append(str(err).splitlines()[0])
    for name in sequences:
        good = list(bound.arguments[name])
        for raw in SEQUENCE_BAD if name not in _VAR_POSITIONAL.get(case.factory, ()) else ():
            try:
                _expect_named_error_or_finite(case, fn, bound, name, _substitute(raw, good[0]))
            except AssertionError as err:
                failures.append(str(err).splitlines()[0])
        for raw in SCALAR_BAD:
            entries = list(good)
            entries[-1] = _substitute(raw, good[-1])
            try:
                _expect_named_error_or_finite(case, fn, bound, name, entries)
            except AssertionError as err:
                failures.append(str(err).splitlines()[0])
    assert not failures, "\n".join(failures)


def test_the_fuzz_covers_every_public_schedule_factory():
    fuzzed = {reg.SCHEDULES[c].factory for c in _FUZZ_CASES}
    missing = sorted(reg.public_factories()["schedule"] - fuzzed)
    assert not missing, f"public schedule factories the bad-input fuzz does not reach: {missing}"
    for case_id in _FUZZ_CASES:  # and each of them has arguments to corrupt
        _, _, scalars, sequences = _numeric_arguments(reg.SCHEDULES[case_id])
        assert scalars or sequences, case_id
