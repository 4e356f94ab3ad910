"""optax's own shared optimizer tests, run over every transform of tests/_registry.py.

optax 0.2.8 ships the checks it applies to every contributed optimizer in its wheel
(``optax/contrib/_common_test.py``): extra arguments and no recompilation, convergence on four
targets after ``optax.tree.map_params``, ``optax.inject_hyperparams``, dtype preservation,
``optax.MultiSteps``, state stability under ``lax.cond`` in float16/bfloat16/float32, and
learning-rate schedules where the signature says ``ScalarOrSchedule``. They are run here
unchanged: the test functions are taken from optax's module and called with optax's own
arguments, and only the lookup of an optimizer by name (``_get_opt_factory``) is redirected to
the registry.

Each registry entry becomes a complete optimizer the way the registry chains it (an optimizer
alone; a ``first`` transform before ``optax.adam(1e-2)``; a direction before
``optax.scale(-1e-2)``; a ``last`` transform after ``optax.adam(1e-2)``), exposed as a factory
whose keyword arguments are the entry's injectable hyperparameters (plus ``learning_rate``
where the transform has one), with their real annotations. The few entries or targets where a
check cannot apply are listed in ``NOT_APPLICABLE`` with the reason.
"""

from __future__ import annotations

import functools
import inspect

import jax
import optax
import pytest

from tests import _registry as reg

common = pytest.importorskip("optax.contrib._common_test")

# Keyword arguments that differ from the registry's for this suite, whose convergence check
# runs 30,000 steps on the Rosenbrock function: the registry's reset intervals of 3-4 steps
# (chosen so that resets happen within a few test steps) keep SPAM and reset_every(adam) from
# converging there, so they get realistic intervals; SGD-HD at the registry's 0.05 diverges
# (curvature ~1000 in the valley), as SGD does, so it starts at 2e-3 and is capped at 4e-3;
# NaP projects every leaf (the registry's rank >= 2 mask selects nothing of a 1-D target,
# which is an error by design).
OVERRIDES = {
    "hypergradient_sgd": dict(learning_rate=2e-3, hyper_lr=1e-4, max_lr=4e-3),
    "spam": dict(reset_interval=500, warmup_steps=150),
    "scale_by_spam": dict(reset_interval=500, warmup_steps=150),
    "stable_spam": dict(reset_interval=500),
    "scale_by_stable_spam": dict(reset_interval=500),
    "reset_every_adam": dict(interval=1000),
    "reset_every_all": dict(interval=1000),
    "nap_adam": dict(mask=None),
    "project_to_init_norm": dict(mask=None),
    "project_to_init_norm_every2_axis": dict(mask=None),
}

# (entry, check, target) combinations that cannot pass by design.
NORM_PROJECTIONS = ("nap_adam", "project_to_init_norm", "project_to_init_norm_every2_axis")
NOT_APPLICABLE = {
    # NaP keeps each block at its initial norm: from [-1, 10, 1] (norm 10.1) it cannot reach
    # [1, -1, 1] (norm 1.7). The other targets start at zero, a norm NaP leaves alone.
    **{(c, "test_optimizers", "_setup_parabola"): "NaP fixes the norm; the target has another"
       for c in NORM_PROJECTIONS},
}

CHECKS = [
    "test_optimizers_accept_extra_args",
    "test_optimizers",
    "test_optimizers_can_be_wrapped_in_inject_hyperparams",
    "test_preserve_dtype",
    "test_gradient_accumulation",
    "test_state_shape_dtype_shard_stability",
    "test_optimizers_accept_learning_rate_schedule_if_type_annotated_as_such",
]


def _raw_check(name: str):
    """optax's test function itself (absl's parameterized copies wrap it)."""
    return getattr(common.ContribTest, f"{name}0").__wrapped__


def _kwargs(case: reg.TransformCase) -> dict:
    return {**case.kwargs, **OVERRIDES.get(case.id, {})}


def _injectable(case: reg.TransformCase) -> tuple[str, ...]:
    names = list(case.hyperparams)
    if "learning_rate" in case.kwargs and "learning_rate" not in names:
        names.insert(0, "learning_rate")
    return tuple(names)


def _complete(case: reg.TransformCase, tx: optax.GradientTransformation):
    """A complete optimizer: the entry alone, or in the registry's chain for its role."""
    return tx if case.role == "optimizer" else case.chained(tx)


@functools.cache
def _factory(case_id: str):
    """``factory(**hyperparameters) -> complete optimizer`` with the real annotations."""
    case = reg.TRANSFORMS[case_id]
    fixed = _kwargs(case)
    names = _injectable(case)
    real = inspect.signature(case.fn, eval_str=True).parameters

    def factory(**hyperparameters):
        return _complete(case, case.fn(**{**fixed, **hyperparameters}))

    factory.__signature__ = inspect.Signature([
        inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=fixed[n],
                          annotation=real[n].annotation) for n in names])
    factory.__name__ = case_id
    return factory


def _cases():
    out = []
    for case_id in sorted(reg.TRANSFORMS):
        for check in CHECKS:
            raw = inspect.signature(_raw_check(check)).parameters
            grid = [{}]
            if "wrap" in raw:
                grid = [{"wrap": w} for w in (True, False)]
            if check == "test_optimizers":
                # optax's convergence check runs 30,000 steps per target: the primary entry of
                # each factory runs it (the variants differ in settings the other checks cover),
                # which keeps this file at about a third of the suite's CPU budget.
                if not reg.TRANSFORMS[case_id].primary:
                    continue
                grid = [{"target": t, "dtype": "float32"} for t in (
                    "_setup_parabola", "_setup_rosenbrock", "_setup_matrix_parabola",
                    "_setup_mixed_tensor_target")]
            elif check in ("test_preserve_dtype", "test_gradient_accumulation"):
                grid = [{"dtype": d} for d in ("bfloat16", "float32")]
            elif check == "test_state_shape_dtype_shard_stability":
                grid = [{"dtype": d} for d in ("float16", "bfloat16", "float32")]
            for extra in grid:
                key = (case_id, check, extra.get("target"))
                marks = ([pytest.mark.skip(reason=NOT_APPLICABLE[key])]
                         if key in NOT_APPLICABLE else [])
                label = "-".join(str(v) for v in extra.values()).replace("_setup_", "")
                out.append(pytest.param(case_id, check, extra, marks=marks,
                                        id=f"{case_id}-{check[5:]}{'-' if label else ''}{label}"))
    return out


@pytest.fixture(autouse=True)
def _registry_as_optax_contrib(monkeypatch):
    original = common._get_opt_factory

    def get(opt_name):
        if opt_name in reg.TRANSFORMS:
            return _factory(opt_name)
        return original(opt_name)

    monkeypatch.setattr(common, "_get_opt_factory", get)


# Checks whose cost is running a compiled program, not compiling it: optax's convergence check
# runs 30,000 steps per target, so it keeps XLA's full optimisation.
RUN_BOUND = ("test_optimizers",)


@pytest.fixture(autouse=True)
def _fast_compilation(request):
    """Less XLA optimisation (``reg.fast_compilation``) for the checks that compile many small
    programs and run each a few steps (extra arguments, inject_hyperparams, dtypes, MultiSteps,
    state stability, schedules): what they check is types, structure, recompilation and
    agreement to optax's tolerances, not XLA's optimisations. Their compilation was most of
    this file's CPU time."""
    if request.node.callspec.params["check"] in RUN_BOUND:
        yield
        return
    with reg.fast_compilation():
        yield


@pytest.mark.parametrize(("case_id", "check", "extra"), _cases())
def test_optax_common_checks(case_id, check, extra):
    case = reg.TRANSFORMS[case_id]
    arguments = dict(extra)
    if "target" in arguments:
        arguments["target"] = getattr(common, arguments["target"])
    hyper = {n: _kwargs(case)[n] for n in _injectable(case)}
    params = inspect.signature(_raw_check(check)).parameters
    if "wrapper_name" in params:
        arguments.update(wrapper_name=None, wrapper_kwargs=None)
    test = common.ContribTest(f"{check}0")
    with jax.default_matmul_precision("float32"):
        _raw_check(check)(test, opt_name=case_id, opt_kwargs=hyper, **arguments)
