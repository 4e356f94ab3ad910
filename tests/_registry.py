"""One registry of every public transform and schedule factory of optaxsched, for the matrix tests.

``tests/test_compat.py``, ``tests/test_sharding.py`` (and its worker), ``tests/test_checkpoint.py``
and ``tests/test_numerics.py`` are driven by it: each :class:`TransformCase` says how to build a
transform with small valid arguments, which of its hyperparameters ``optax.inject_hyperparams``
must be able to inject, where it sits in a chain, which extra arguments ``update`` needs, which
state fields are documented to keep float32 whatever the parameters' dtype, and its documented
policy for non-finite gradients. Each :class:`ScheduleCase` builds one schedule.

The registry is built from what exists in ``optaxsched`` at import time: a case whose factory is
not (yet) public is left out. ``public_factories()`` classifies ``optaxsched.__all__`` by what each
function returns, and ``tests/test_compat.py::test_registry_covers_every_public_factory`` fails
when a transform or schedule factory is missing here, so that a new transform cannot silently
escape the matrix.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import logging
import re
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

import optaxsched as oxs

# ------------------------------------------------------------------------------------------------
# Parameters shared by the matrix: distinct shapes, so that a state leaf can be matched to the
# parameter it shadows by its shape alone.
# ------------------------------------------------------------------------------------------------

PARAM_SHAPES: dict[str, tuple[int, ...]] = {"w": (2, 3, 4), "b": (5,)}


def make_params(dtype=jnp.float32, seed: int = 0) -> dict[str, jax.Array]:
    rng = np.random.default_rng(seed)
    return {k: jnp.asarray(rng.normal(size=s), dtype) for k, s in PARAM_SHAPES.items()}


def make_grads(step: int, dtype=jnp.float32, seed: int = 1) -> dict[str, jax.Array]:
    """Deterministic pseudo-gradients for update number ``step`` (scale varies with the step)."""
    rng = np.random.default_rng(1000 * seed + step)
    scale = 1.0 + 0.5 * np.sin(step)
    return {k: jnp.asarray(scale * rng.normal(size=s), dtype) for k, s in PARAM_SHAPES.items()}


def matrices(params: Any) -> Any:
    """A callable mask selecting the leaves of rank >= 2 (works on dicts, nnx.State, MaskedNode)."""
    return jax.tree.map(lambda x: jnp.ndim(x) >= 2, params)


# ------------------------------------------------------------------------------------------------
# Transforms.
# ------------------------------------------------------------------------------------------------

# Where a transform goes in a chain:
#   "first"      acts on raw gradients, followed by an optimizer (recorders, clippers),
#   "direction"  a scale_by_* direction without the learning rate (followed by scale(-lr)),
#   "optimizer"  a complete optimizer (its updates include -lr),
#   "last"       acts on the updates of an optimizer placed before it (projection, averaging).
ROLES = ("first", "direction", "optimizer", "last")

# Documented non-finite-gradient policies (see each factory's docstring):
#   "record"      updates pass through untouched; the non-finite value is recorded in the state,
#                 later finite steps record finite values.
#   "keep_lr"     (hypergradient) the adapted learning rate is left unchanged on a non-finite
#                 hypergradient; updates are not sanitised.
#   "block_nan"   (project_to_init_norm) a non-finite block's output is NaN on projecting steps;
#                 other blocks and the state are unaffected.
#   "propagate"   non-finite values propagate into the state (documented; use apply_if_finite).
#   "drop"        (SPAM / Stable-SPAM, fused and parts) a NaN/Inf gradient entry is a spike
#                 dropped to zero: the step is applied as with a 0 there, state and updates stay
#                 finite, the count advances (issue 13: no global pass; the whole-step skip is
#                 ``optax.apply_if_finite`` around the transform).
NAN_POLICIES = ("record", "keep_lr", "block_nan", "propagate", "drop")


@dataclasses.dataclass(frozen=True)
class TransformCase:
    """One configuration of one public transform factory."""

    id: str
    factory: str
    kwargs: Mapping[str, Any]
    role: str
    nan_policy: str
    # Numeric hyperparameters that optax.inject_hyperparams must be able to inject (the learning
    # rate and the main thresholds); every other argument is passed as a static argument.
    hyperparams: tuple[str, ...] = ()
    # Extra keyword arguments update() needs (besides an unknown one the tests always pass).
    extra_args: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    # Parameter-shaped state fields documented to be float32 whatever the parameters' dtype.
    float32_fields: tuple[str, ...] = ()
    # (argument, state field) when an argument sets the dtype of a parameter-shaped state field
    # (``mu_dtype`` -> ``mu``).
    state_dtype_arg: tuple[str, str] | None = None
    # Fields (besides "count") that hold saturating int32 step counters.
    counter_fields: tuple[str, ...] = ()
    # Parameter-sized temporaries the compiled, donated step of ``chained()`` may allocate,
    # in units of the parameters' bytes (tests/test_footprint.py): 0 for a fused transform.
    temporaries: float = 0.0
    # False for a second configuration of a factory: it runs the per-configuration checks (chain,
    # inject_hyperparams, numerics, checkpoints, sharding) but not the wrapper checks (MultiSteps,
    # partition, nnx), which depend on the state's structure, shared with the primary case.
    primary: bool = True

    def __post_init__(self):
        assert self.role in ROLES, self.role
        assert self.nan_policy in NAN_POLICIES, self.nan_policy
        unknown = set(self.hyperparams) - set(self.kwargs)
        assert not unknown, f"{self.id}: hyperparams {unknown} need a value in kwargs"

    @property
    def fn(self) -> Callable:
        return getattr(oxs, self.factory)

    def build(self, **overrides) -> optax.GradientTransformationExtraArgs:
        return self.fn(**{**self.kwargs, **overrides})

    def static_args(self) -> tuple[str, ...]:
        names = inspect.signature(self.fn).parameters
        return tuple(n for n in names if n not in self.hyperparams)

    def injected(self, **overrides) -> optax.GradientTransformationExtraArgs:
        """``optax.inject_hyperparams(factory)`` with the case's hyperparameters injected."""
        factory = optax.inject_hyperparams(self.fn, static_args=self.static_args())
        return factory(**{**self.kwargs, **overrides})

    def chained(self, tx: optax.GradientTransformation | None = None
                ) -> optax.GradientTransformationExtraArgs:
        """The transform in an ``optax.chain`` with the optax pieces its role calls for."""
        tx = self.build() if tx is None else tx
        if self.role == "first":
            return optax.chain(tx, optax.adam(1e-2))
        if self.role == "direction":
            return optax.chain(tx, optax.scale(-1e-2))
        if self.role == "optimizer":
            return optax.chain(optax.clip_by_global_norm(100.0), tx)
        return optax.chain(optax.adam(1e-2), tx)


def _hypergradient_cases() -> list[TransformCase]:
    return [
        TransformCase("hypergradient_sgd", "hypergradient",
                      dict(learning_rate=0.05, hyper_lr=1e-3, max_lr=1.0),
                      role="optimizer", nan_policy="keep_lr",
                      hyperparams=("hyper_lr", "max_lr")),
        TransformCase("hypergradient_adam_mult", "hypergradient",
                      dict(learning_rate=1e-2, hyper_lr=0.02, mode="multiplicative",
                           base=optax.scale_by_adam()),
                      role="optimizer", nan_policy="keep_lr", hyperparams=("hyper_lr",),
                      primary=False),
    ]


def _transform_cases() -> list[TransformCase]:
    cases = [
        TransformCase("record_grad_norms", "record_grad_norms",
                      dict(num_steps=8, norms=("l2", "l1", "linf")),
                      role="first", nan_policy="record"),
        *_hypergradient_cases(),
        # w + u for the projected leaves; with every > 1 also the update, the cond's operand.
        TransformCase("project_to_init_norm", "project_to_init_norm", dict(mask=matrices),
                      role="last", nan_policy="block_nan", temporaries=1),
        TransformCase("project_to_init_norm_every2_axis", "project_to_init_norm",
                      dict(mask=matrices, every=2, axis=-1), role="last",
                      nan_policy="block_nan", primary=False, temporaries=2),
        TransformCase("nap_adam", "nap", dict(optimizer=optax.adam(1e-2), mask=matrices),
                      role="optimizer", nan_policy="block_nan", temporaries=1),
        TransformCase("average_params_ema", "average_params", dict(kind="ema", decay=0.9),
                      role="last", nan_policy="propagate", hyperparams=("decay",),
                      state_dtype_arg=("dtype", "average"), counter_fields=("num_averaged",)),
        TransformCase("average_params_tail_f32", "average_params",
                      dict(kind="tail", start_step=1, every=2, dtype=jnp.float32),
                      role="last", nan_policy="propagate", state_dtype_arg=("dtype", "average"),
                      float32_fields=("average",), counter_fields=("num_averaged",),
                      primary=False),
        *_spike_cases(),
    ]
    return [c for c in cases if hasattr(oxs, c.factory)]


def _spike_cases() -> list[TransformCase]:
    # Small thresholds and reset intervals, so that clipping, resets and the post-reset warmup all
    # happen within the few steps a test runs.
    spam_args = dict(threshold=50.0, reset_interval=4, warmup_steps=2, clip_delay=2)
    # The clip counters are opt-in (track_clips=True); the optimizer cases turn them on, the
    # direction cases keep the default (the counters then hold -1, "not tracked").
    counters = ("clipped_total",)
    # Stable-SPAM, AdaClip and AdaGN reserve buffers for their non-finite branch (a gradient with
    # NaN/Inf entries or an overflowing sum); the clipping step needs none since its masked sum
    # of squares is one fused reduction (_lowering.sum_squares_under).
    branch_buffers = 2
    return [
        TransformCase("scale_by_spam", "scale_by_spam", dict(b1=0.9, **spam_args), role="direction",
                      nan_policy="drop", hyperparams=("threshold", "b1"),
                      state_dtype_arg=("mu_dtype", "mu")),
        TransformCase("spam", "spam",
                      dict(learning_rate=1e-2, weight_decay=0.01, mask=matrices, track_clips=True,
                           **spam_args),
                      role="optimizer", nan_policy="drop",
                      hyperparams=("learning_rate", "threshold", "weight_decay"),
                      state_dtype_arg=("mu_dtype", "mu"), counter_fields=counters),
        TransformCase("scale_by_stable_spam", "scale_by_stable_spam",
                      dict(theta=0.9, gamma1=0.7, reset_interval=4), role="direction",
                      nan_policy="drop",
                      hyperparams=("theta", "gamma1"), state_dtype_arg=("mu_dtype", "mu"),
                      temporaries=branch_buffers),
        TransformCase("stable_spam", "stable_spam",
                      dict(learning_rate=1e-2, theta=0.9, reset_interval=4, t_max=10,
                           weight_decay=0.01, mask=matrices, mu_dtype=jnp.float32,
                           track_clips=True),
                      role="optimizer", nan_policy="drop",
                      hyperparams=("learning_rate", "theta", "weight_decay"),
                      state_dtype_arg=("mu_dtype", "mu"), float32_fields=("mu",),
                      counter_fields=counters, temporaries=branch_buffers),
        # A part before Adam hands it a clipped gradient, which Adam's two moment passes read:
        # one temporary (the fused optimizers recompute it instead).
        TransformCase("clip_spikes", "clip_spikes",
                      dict(threshold=50.0, b2=0.99, clip_delay=2, reset_interval=4,
                           track_clips=True), role="first",
                      nan_policy="drop", hyperparams=("threshold", "b2"),
                      state_dtype_arg=("nu_dtype", "nu"), counter_fields=counters, temporaries=1),
        TransformCase("adaptive_spike_clip", "adaptive_spike_clip", dict(theta=0.9),
                      role="first", nan_policy="drop", hyperparams=("theta",),
                      temporaries=1 + branch_buffers / 2),
        TransformCase("adaptive_grad_norm", "adaptive_grad_norm", dict(gamma1=0.7, gamma2=0.9),
                      role="first", nan_policy="drop", hyperparams=("gamma1", "gamma2"),
                      temporaries=1 + branch_buffers / 2),
        TransformCase("reset_every_adam", "reset_every",
                      dict(inner=optax.scale_by_adam(), interval=3), role="direction",
                      nan_policy="propagate"),
        TransformCase("reset_every_all", "reset_every",
                      dict(inner=optax.adam(1e-2), interval=2, keep=()), role="optimizer",
                      nan_policy="propagate", primary=False),
    ]


TRANSFORMS: dict[str, TransformCase] = {c.id: c for c in _transform_cases()}


# ------------------------------------------------------------------------------------------------
# Schedules.
# ------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ScheduleCase:
    """One configuration of one public schedule factory (built lazily: inner schedules)."""

    id: str
    factory: str
    make: Callable[[], tuple[tuple, dict]]  # () -> (args, kwargs)
    stateful: bool = False  # an optax StatefulSchedule (driven by update's extra arguments)
    extra_args: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def build(self):
        args, kwargs = self.make()
        return getattr(oxs, self.factory)(*args, **kwargs)


TOKENS_PER_STEP = 16_384


def _schedule_cases() -> list[ScheduleCase]:
    lin = lambda: oxs.linear_decay(1e-2, total_steps=30)
    norms = np.linspace(3.0, 1.0, 20)
    s = ScheduleCase
    cases = [
        s("linear_decay", "linear_decay", lambda: ((1e-2, 50), dict(warmup_steps=5))),
        s("wsd", "wsd", lambda: ((1e-2, 50), dict(warmup_steps=5, end_value=1e-4))),
        s("wsd_s", "wsd_s", lambda: ((1e-2, [20, 50]), dict(cooldown_steps=5))),
        s("rex", "rex", lambda: ((1e-2, 50), dict(warmup_steps=3))),
        s("power", "power", lambda: ((0.02,), dict(
            batch_size=32, tokens_per_step=TOKENS_PER_STEP, warmup_tokens=5 * TOKENS_PER_STEP,
            decay_tokens=10 * TOKENS_PER_STEP, total_tokens=50 * TOKENS_PER_STEP))),
        s("infinite", "infinite", lambda: ((1e-2, 1e-3), dict(
            warmup_steps=5, cooldown_steps=10, anneal_start=30, anneal_steps=10,
            end_value=1e-4))),
        s("uba", "uba", lambda: ((1e-2, 50), dict(phi=0.5, warmup_steps=5))),
        s("inverse_sqrt", "inverse_sqrt", lambda: ((1e-2,), dict(warmup_steps=5))),
        s("tabulated", "tabulated", lambda: (([1e-2, 5e-3, 0.0],), dict(total_steps=50))),
        s("with_warmup", "with_warmup",
          lambda: ((optax.cosine_decay_schedule(1e-2, 40),), dict(warmup_steps=5))),
        s("join", "join", lambda: (([optax.constant_schedule(1e-2), lin()],),
                                   dict(boundaries=[20]))),
        s("multiply", "multiply", lambda: ((lin(), optax.cosine_decay_schedule(1.0, 50), 0.5),
                                           {})),
        s("sample_every", "sample_every", lambda: ((lin(),), dict(interval=4))),
        s("in_tokens", "in_tokens", lambda: (
            (optax.linear_schedule(1e-2, 0.0, transition_steps=40.0 * TOKENS_PER_STEP),),
            dict(tokens_per_step=TOKENS_PER_STEP))),
        s("rewarm", "rewarm", lambda: ((lin(),), dict(restart_steps=[20, 35], warmup_steps=3))),
        s("reset_warmup", "reset_warmup", lambda: ((), dict(interval=4, warmup_steps=2))),
        s("refined_schedule", "refined_schedule",
          lambda: ((norms, 1e-2), dict(total_steps=50, kind="sgd"))),
        s("token_schedule", "token_schedule", lambda: (
            (optax.linear_schedule(1e-2, 0.0, transition_steps=40.0 * TOKENS_PER_STEP),), {}),
          stateful=True, extra_args={"tokens": TOKENS_PER_STEP}),
    ]
    return [c for c in cases if hasattr(oxs, c.factory)]


SCHEDULES: dict[str, ScheduleCase] = {c.id: c for c in _schedule_cases()}


# ------------------------------------------------------------------------------------------------
# What optaxsched exports.
# ------------------------------------------------------------------------------------------------


def _returns(fn: Callable) -> str:
    """The return annotation and the ``Returns:`` section of the docstring, as one string."""
    annotation = inspect.signature(fn).return_annotation
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__",
                                                                  str(annotation))
    doc = inspect.getdoc(fn) or ""
    match = re.search(r"^Returns:\n(.*?)(?:^\S|\Z)", doc, flags=re.M | re.S)
    return f"{text} || {match.group(1) if match else ''}"


# Public factories that return a transformation the matrix cannot drive: the sweep wrappers act
# on pytrees stacked along a leading run axis (one slice per swept value), not on the matrix's
# parameters; tests/test_sweep.py checks them against the unswept optimizer run by run.
OUTSIDE_MATRIX = frozenset({"vmap_hyperparams", "lr_sweep"})


def public_factories() -> dict[str, set[str]]:
    """``{"transform": {...}, "schedule": {...}}``: the public factories, classified by return."""
    found: dict[str, set[str]] = {"transform": set(), "schedule": set()}
    for name in oxs.__all__:
        fn = getattr(oxs, name)
        if not inspect.isfunction(fn) or name in OUTSIDE_MATRIX:
            continue
        returns = _returns(fn)
        head = returns.split("||")[0]
        if "GradientTransformation" in returns:
            found["transform"].add(name)
        elif "Schedule" in head or re.search(r"\|\|\s*An? (optax )?schedule", returns):
            found["schedule"].add(name)
    return found


def registered_factories() -> dict[str, set[str]]:
    return {"transform": {c.factory for c in TRANSFORMS.values()},
            "schedule": {c.factory for c in SCHEDULES.values()}}


# ------------------------------------------------------------------------------------------------
# Shared compiled steps: test files that run the same chained transform on the same parameter
# types reuse one executable (compilation dominates the matrix's run time).
# ------------------------------------------------------------------------------------------------

UNKNOWN_EXTRA = {"an_extra_argument_nobody_expects": 1.0}


def extra_args(case: TransformCase) -> dict[str, Any]:
    """What update() receives in the matrix: the case's extra arguments plus an unknown one."""
    return {**case.extra_args, **UNKNOWN_EXTRA}


@functools.cache
def chained_tx(case_id: str) -> optax.GradientTransformationExtraArgs:
    return TRANSFORMS[case_id].chained()


def make_step(tx, extra: Mapping[str, Any]):
    """``jit(step)(params, state, grads) -> (new params, new state, updates)``."""
    extra = dict(extra)

    @jax.jit
    def step(params, state, grads):
        updates, state = tx.update(grads, state, params, **extra)
        return optax.apply_updates(params, updates), state, updates

    return step


@functools.cache
def chained_step(case_id: str):
    """The jitted step of ``chained_tx(case_id)``, shared by every test file."""
    case = TRANSFORMS[case_id]
    return make_step(chained_tx(case_id), extra_args(case))


@contextlib.contextmanager
def fast_compilation():
    """Less XLA optimisation while a test compiles: about a third less compile time on CPU for
    the tiny programs of the matrix (what is tested is types, structure and numerics to float32
    tolerance, not XLA's optimisations). Restored afterwards, so other test modules are not
    affected."""
    old = jax.config.read("jax_disable_most_optimizations")
    jax.config.update("jax_disable_most_optimizations", True)
    try:
        yield
    finally:
        jax.config.update("jax_disable_most_optimizations", old)


# ------------------------------------------------------------------------------------------------
# Compilations and types.
# ------------------------------------------------------------------------------------------------


class _CompileLog(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.records: list[str] = []

    def emit(self, record):
        message = record.getMessage()
        if "Finished" in message and "compilation" in message:
            self.records.append(message)


@contextlib.contextmanager
def count_compilations():
    """Yields a list that receives one entry per XLA compilation inside the block."""
    handler = _CompileLog()
    logger = logging.getLogger("jax")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        with jax.log_compiles():
            yield handler.records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


def types(tree):
    """Structure, and per leaf jax.typeof (shape, dtype, weak type) and sharding."""
    def one(x):
        assert isinstance(x, jax.Array), f"state leaf is a {type(x).__name__}, not a jax.Array"
        return (jax.typeof(x), x.sharding)
    return jax.tree.structure(tree), jax.tree.leaves(jax.tree.map(one, tree))


def assert_same_types(before, after, what=""):
    s0, t0 = types(before)
    s1, t1 = types(after)
    assert s0 == s1, f"{what}: state structure changed:\n{s0}\n{s1}"
    for i, (a, b) in enumerate(zip(t0, t1, strict=True)):
        assert a == b, f"{what}: state leaf {i} changed type from {a} to {b}"


# ------------------------------------------------------------------------------------------------
# Tree helpers shared by the test files.
# ------------------------------------------------------------------------------------------------


def field_name(path) -> str:
    """The name of the innermost NamedTuple field on a pytree path ('' if none): for
    ``[1].average['w']`` it is ``'average'``; dict keys (parameter names) never count."""
    for key in reversed(path):
        if isinstance(key, jax.tree_util.GetAttrKey):
            return key.name
    return ""


def set_counters(state: Any, value: int, extra_fields: tuple[str, ...] = ()) -> Any:
    """Sets every int32 scalar step counter (fields named ``*count*`` or in ``extra_fields``)."""

    def visit(path, leaf):
        name = field_name(path)
        if (hasattr(leaf, "dtype") and leaf.dtype == jnp.int32 and jnp.ndim(leaf) == 0
                and ("count" in name or name in extra_fields)):
            return jnp.asarray(value, jnp.int32)
        return leaf

    return jax.tree_util.tree_map_with_path(visit, state)


def counters(state: Any, extra_fields: tuple[str, ...] = ()) -> dict[str, int]:
    out = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]:
        name = field_name(path)
        if (hasattr(leaf, "dtype") and leaf.dtype == jnp.int32 and jnp.ndim(leaf) == 0
                and ("count" in name or name in extra_fields)):
            out[jax.tree_util.keystr(path)] = int(leaf)
    return out
