"""The old public module paths, kept importable with a DeprecationWarning until 0.2.0 (private).

Each method now lives in a private module (``optaxsched._nap``), and ``optaxsched`` is the one
public surface. An entry maps an old module path to its public names and their new homes (a bare
name is an attribute of ``optaxsched``; an :class:`~optaxsched._deprecation.Internal`, a value
with no public name, and the advice its warning gives instead). :mod:`optaxsched._deprecation`
turns each entry into a stand-in module; a module moved later adds its entry here.
"""

from __future__ import annotations

from optaxsched._deprecation import Internal


def _same(*names: str) -> dict[str, str | Internal]:
    return {name: name for name in names}


MOVED: dict[str, dict[str, str | Internal]] = {
    "optaxsched.nap": _same("ELR_KINDS", "SCALE_OFFSET_MODES", "ProjectToInitNormState",
                            "project_to_init_norm", "nap", "EffectiveLearningRate",
                            "effective_learning_rate", "nap_mask"),
    "optaxsched.averaging": _same("AVERAGE_KINDS", "AverageParamsState", "average_params",
                                  "averaged_params"),
    "optaxsched.hypergradient": _same("HYPERGRADIENT_MODES", "HypergradientState",
                                      "hypergradient"),
    "optaxsched.refinement": _same("NORM_NAMES", "REFINE_KINDS", "RecordGradNormsState",
                                   "record_grad_norms", "grad_norm_history", "latest_grad_norms",
                                   "smooth_norms", "refine", "refined_schedule",
                                   "load_grad_norms"),
    "optaxsched.schedules": _same("linear_decay", "rex", "uba", "wsd", "wsd_s",
                                  "wsd_s_checkpoints", "WsdSCheckpoint", "power", "infinite",
                                  "inverse_sqrt"),
    "optaxsched.schedules.anytime": _same("wsd", "wsd_s", "wsd_s_checkpoints", "WsdSCheckpoint",
                                          "power", "infinite", "inverse_sqrt"),
    "optaxsched.schedules.budgeted": _same("linear_decay", "rex", "uba"),
    "optaxsched.combinators": _same("tabulated", "with_warmup", "join", "multiply",
                                    "sample_every", "in_tokens", "token_schedule",
                                    "TokenSchedule", "TokenScheduleState", "rewarm"),
    "optaxsched.autolrs": _same("ExponentialFit", "fit_exponential", "forecast_loss",
                                "propose_learning_rates", "LRSearch", "AutoLRSStage",
                                "autolrs_stages"),
    "optaxsched.sweep": _same("vmap_hyperparams", "lr_sweep", "lr_sensitivity", "stack_params"),
    "optaxsched.forecast": {
        **_same("annealing_areas", "AnnealingLaw", "LossCurve", "PlanEntry", "plan_wsd",
                "load_loss_curve"),
        "fit": "fit_annealing_law",
        "plan": "plan_schedules",
        # The defaults are now values in the signatures; the constants stay private, and each
        # warning names the argument that takes the value.
        "DEFAULT_LAM": Internal(
            "optaxsched._forecast.law:DEFAULT_LAM",
            "it is the default (0.999) of the lam= argument of optaxsched.annealing_areas, "
            "optaxsched.fit_annealing_law and optaxsched.AnnealingLaw; pass lam= for another."),
        "LAM_GRID": Internal(
            "optaxsched._forecast.fit:LAM_GRID",
            "pass the candidate values to the lam= argument of optaxsched.fit_annealing_law "
            "instead (a profile search: one fit per value, the best fit wins), e.g. "
            "lam=(0.95, 0.98, 0.99, 0.995, 0.998, 0.999)."),
        "HUBER_DELTA": Internal(
            "optaxsched._forecast.fit:HUBER_DELTA",
            "it is the default (0.001) of the huber_delta= argument of "
            "optaxsched.fit_annealing_law; pass huber_delta= for another."),
        "WSD_FRACTIONS": Internal(
            "optaxsched._forecast.plan:WSD_FRACTIONS",
            "it is the default of the fractions= argument of optaxsched.plan_wsd; pass "
            "fractions= for others."),
        "WSD_SHAPES": Internal(
            "optaxsched._forecast.plan:WSD_SHAPES",
            "it is the default of the shapes= argument of optaxsched.plan_wsd; pass shapes= "
            "for others."),
    },
    "optaxsched.spikes": _same("SpamState", "scale_by_spam", "spam", "StableSpamState",
                               "scale_by_stable_spam", "stable_spam", "ClipSpikesState",
                               "clip_spikes", "AdaptiveSpikeClipState", "adaptive_spike_clip",
                               "AdaptiveGradNormState", "adaptive_grad_norm", "ResetEveryState",
                               "reset_every", "reset_warmup"),
    "optaxsched.registry": _same("ScheduleName", "OptimizerName", "get_schedule",
                                 "get_optimizer", "schedule_names", "optimizer_names"),
}
