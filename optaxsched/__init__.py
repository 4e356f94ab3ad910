"""optaxsched: learning-rate schedules and adaptive refinements for JAX/Optax.

The public API is re-exported here, one name per object; the implementation lives in private
modules (one per paper or concern). The old public module paths (``optaxsched.spikes``,
``optaxsched.nap``, ...) still import, with a DeprecationWarning, until 0.2.0.
"""

from optaxsched._autolrs import (
    AutoLRSStage,
    ExponentialFit,
    LRSearch,
    autolrs_stages,
    fit_exponential,
    forecast_loss,
    propose_learning_rates,
)
from optaxsched._averaging import AVERAGE_KINDS, AverageParamsState, average_params, averaged_params
from optaxsched._combinators import join, multiply, rewarm, sample_every, with_warmup
from optaxsched._curves import LossCurve
from optaxsched._deprecation import REMOVED_IN as _REMOVED_IN
from optaxsched._deprecation import register_moved_modules as _register_moved_modules
from optaxsched._forecast.fit import fit_annealing_law
from optaxsched._forecast.law import AnnealingLaw, annealing_areas
from optaxsched._forecast.plan import PlanEntry, plan_schedules, plan_wsd
from optaxsched._hypergradient import HYPERGRADIENT_MODES, HypergradientState, hypergradient
from optaxsched._io import load_grad_norms, load_loss_curve
from optaxsched._moved import MOVED as _MOVED
from optaxsched._nap import (
    ELR_KINDS,
    SCALE_OFFSET_MODES,
    EffectiveLearningRate,
    ProjectToInitNormState,
    effective_learning_rate,
    nap,
    nap_mask,
    project_to_init_norm,
)
from optaxsched._refinement import (
    NORM_NAMES,
    REFINE_KINDS,
    RecordGradNormsState,
    grad_norm_history,
    latest_grad_norms,
    record_grad_norms,
    refine,
    refined_schedule,
    smooth_norms,
)
from optaxsched._registry import (
    OptimizerName,
    ScheduleName,
    get_optimizer,
    get_schedule,
    optimizer_names,
    schedule_names,
)
from optaxsched._schedules.infinite import infinite
from optaxsched._schedules.inverse_sqrt import inverse_sqrt
from optaxsched._schedules.linear_decay import linear_decay
from optaxsched._schedules.power import power
from optaxsched._schedules.rex import rex
from optaxsched._schedules.tabulated import tabulated
from optaxsched._schedules.uba import uba
from optaxsched._schedules.wsd import WsdSCheckpoint, wsd, wsd_s, wsd_s_checkpoints
from optaxsched._spam import (
    ClipSpikesState,
    ResetEveryState,
    SpamState,
    clip_spikes,
    reset_every,
    reset_warmup,
    scale_by_spam,
    spam,
)
from optaxsched._stable_spam import (
    AdaptiveGradNormState,
    AdaptiveSpikeClipState,
    StableSpamState,
    adaptive_grad_norm,
    adaptive_spike_clip,
    scale_by_stable_spam,
    stable_spam,
)
from optaxsched._sweep import lr_sensitivity, lr_sweep, stack_params, vmap_hyperparams
from optaxsched._tokens import TokenSchedule, TokenScheduleState, in_tokens, token_schedule
from optaxsched._types import (
    AverageKind,
    CooldownShape,
    DecayShape,
    ElrKind,
    HypergradientMode,
    NormName,
    RefineKind,
    ScaleOffsetMode,
    WarmupShape,
)

_MOVED_MODULES = _register_moved_modules(_MOVED)


def __getattr__(name: str) -> object:
    # ``optaxsched.spikes`` as an attribute (``import optaxsched.spikes`` binds only the package).
    stand_in = _MOVED_MODULES.get(f"{__name__}.{name}")
    if stand_in is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import warnings

    warnings.warn(f"the module optaxsched.{name} is deprecated and will be removed in optaxsched "
                  f"{_REMOVED_IN}; its public names are attributes of optaxsched.",
                  DeprecationWarning, stacklevel=2)
    return stand_in


# The one place the version is written: pyproject.toml reads it (setuptools dynamic version).
__version__ = "0.1.0"

__all__: list[str] = [
    "linear_decay",
    "wsd",
    "wsd_s",
    "wsd_s_checkpoints",
    "WsdSCheckpoint",
    "rex",
    "power",
    "infinite",
    "uba",
    "inverse_sqrt",
    "tabulated",
    "with_warmup",
    "join",
    "multiply",
    "sample_every",
    "in_tokens",
    "token_schedule",
    "TokenSchedule",
    "TokenScheduleState",
    "rewarm",
    "record_grad_norms",
    "RecordGradNormsState",
    "grad_norm_history",
    "latest_grad_norms",
    "smooth_norms",
    "refine",
    "refined_schedule",
    "load_grad_norms",
    "NORM_NAMES",
    "REFINE_KINDS",
    "hypergradient",
    "HypergradientState",
    "HYPERGRADIENT_MODES",
    "project_to_init_norm",
    "ProjectToInitNormState",
    "nap",
    "nap_mask",
    "SCALE_OFFSET_MODES",
    "effective_learning_rate",
    "EffectiveLearningRate",
    "ELR_KINDS",
    "average_params",
    "averaged_params",
    "AverageParamsState",
    "AVERAGE_KINDS",
    "annealing_areas",
    "AnnealingLaw",
    "LossCurve",
    "PlanEntry",
    "fit_annealing_law",
    "plan_schedules",
    "plan_wsd",
    "load_loss_curve",
    "scale_by_spam",
    "spam",
    "SpamState",
    "scale_by_stable_spam",
    "stable_spam",
    "StableSpamState",
    "clip_spikes",
    "ClipSpikesState",
    "adaptive_spike_clip",
    "AdaptiveSpikeClipState",
    "adaptive_grad_norm",
    "AdaptiveGradNormState",
    "reset_every",
    "ResetEveryState",
    "reset_warmup",
    "get_schedule",
    "get_optimizer",
    "schedule_names",
    "optimizer_names",
    "ScheduleName",
    "OptimizerName",
    "DecayShape",
    "WarmupShape",
    "CooldownShape",
    "NormName",
    "RefineKind",
    "ElrKind",
    "ScaleOffsetMode",
    "HypergradientMode",
    "AverageKind",
    "vmap_hyperparams",
    "lr_sweep",
    "stack_params",
    "lr_sensitivity",
    "fit_exponential",
    "ExponentialFit",
    "forecast_loss",
    "propose_learning_rates",
    "LRSearch",
    "AutoLRSStage",
    "autolrs_stages",
]
