"""Learning-rate schedules and optimizers of the trainer, built from a resolved TrainConfig.

Everything comes from the public API: ``optax`` for cosine, AdamW and SGD, ``optaxsched`` (``oxs``)
for the other schedules, the refined schedule, the spike-aware optimizers, NaP and the gradient
norm recorder. The optimizer chain is

    record_grad_norms (optional)  →  nap( clip (optional) → AdamW | SPAM | Stable-SPAM | SGD )
        →  average_params (optional)

so the recorder logs the gradients as the loss produced them (spikes included), NaP's
projection runs after the optimizer's update, as the paper prescribes, and the average is taken
over the parameters the whole update produces.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

import optaxsched as oxs
from examples.config import ConfigError, TrainConfig, library_error
from examples.model import nap_pairs, scale_invariant_kernels

__all__ = ["Optimizer", "build_schedule", "build_optimizer", "load_refine_norms",
           "clipped_count"]


# ------------------------------------------------------------------------------------------------
# Schedules.
# ------------------------------------------------------------------------------------------------


def load_refine_norms(cfg: TrainConfig) -> tuple[np.ndarray, str]:
    """The gradient norms of the run in ``--refine-from`` that ``--schedule refined`` refines.

    Reads ``RUN_DIR/metrics.jsonl`` with ``optaxsched.load_grad_norms``: the key
    ``grad_norm_l1`` for ``--refine-kind adam``, ``grad_norm_l2`` for ``sgd``.

    Returns:
      (norms, key).

    Raises:
      ConfigError: (``--refine-from``) the directory, its metrics or the norms are missing or
        unusable, or the recorded run did not finish.
    """
    run_dir = cfg.refine_from
    key = "grad_norm_l1" if cfg.refine_kind == "adam" else "grad_norm_l2"
    if not os.path.isdir(run_dir):
        raise ConfigError("--refine-from", f"{run_dir!r} is not a directory")
    metrics = os.path.join(run_dir, "metrics.jsonl")
    if not os.path.isfile(metrics):
        raise ConfigError("--refine-from", f"{run_dir!r} holds no metrics.jsonl (give the "
                          f"directory of a run made with --record-grad-norms)")
    source_steps = None
    config_path = os.path.join(run_dir, "config.json")
    if os.path.isfile(config_path):
        with open(config_path, encoding="utf-8") as handle:
            source = json.load(handle).get("config", {})
        source_steps = source.get("steps")
        if not source.get("record_grad_norms", False):
            raise ConfigError("--refine-from", f"{run_dir!r} was trained without "
                              f"--record-grad-norms, so it has no {key} to refine (rerun it "
                              f"with --record-grad-norms)")
    try:
        norms = oxs.load_grad_norms(metrics, key=key)
    except ValueError as err:
        raise ConfigError("--refine-from", f"cannot read the gradient norms: {err}") from None
    if source_steps is not None and norms.size < source_steps:
        raise ConfigError("--refine-from", f"{run_dir!r} recorded {norms.size} of its "
                          f"{source_steps} steps; finish it with --resume first")
    return norms, key


def build_schedule(cfg: TrainConfig, refine_norms: np.ndarray | None = None
                   ) -> Callable[[Any], jax.Array]:
    """The learning-rate schedule of ``--schedule`` (a function of the optax count).

    * ``constant``: the peak after a linear warmup.
    * ``cosine``: ``optax.warmup_cosine_decay_schedule`` from 0 to the peak, then down to
      ``--end-lr`` at ``--steps``.
    * ``linear``, ``rex``, ``uba``: optaxsched's, from the peak to ``--end-lr`` at ``--steps``.
    * ``wsd``: decay over the last ``--decay-fraction`` of the run, shape ``--decay-shape``.
    * ``wsd_s``: a decay before every budget of ``--decay-points`` (``--decay-fraction`` of each
      segment), back to the peak after each.
    * ``power``: the Power scheduler in tokens (``batch_size * seq_len`` per step), with
      ``--power-a``/``--power-b``, warmup in tokens, and an exponential final decay over
      ``--decay-fraction`` of the tokens.
    * ``infinite``: warmup, cosine cooldown to ``--plateau-fraction`` × peak over half of the
      time before the anneal, the plateau, and a geometric anneal over the last
      ``--decay-fraction`` to ``--end-lr`` (or plateau / 100 when ``--end-lr`` is 0, since a
      geometric anneal cannot reach 0).
    * ``inverse_sqrt``: warmup then ``peak / sqrt(count / warmup)`` (no horizon).
    * ``refined``: ``oxs.refined_schedule`` of the norms of ``--refine-from`` resampled to the
      run, preceded by ``oxs.with_warmup`` when ``--warmup-steps`` > 0.

    Args:
      cfg: a resolved config.
      refine_norms: the recorded norms for ``refined`` (see :func:`load_refine_norms`).

    Returns:
      The schedule.

    Raises:
      ConfigError: the schedule's own validation refused the run's settings (named after
        ``--schedule`` unless a more specific flag applies).
    """
    try:
        return _schedule(cfg, refine_norms)
    except ConfigError:
        raise
    except ValueError as err:  # the library's own check: name the flag that set the argument
        raise library_error(err, "--schedule", f"{cfg.schedule} does not fit these settings: ") \
            from None


def _schedule(cfg: TrainConfig, refine_norms: np.ndarray | None) -> Callable[[Any], jax.Array]:
    """Builds the schedule (see :func:`build_schedule`)."""
    peak, warm, total, end = cfg.peak_lr, cfg.warmup_steps, cfg.steps, cfg.end_lr
    name = cfg.schedule
    if name == "constant":
        return oxs.with_warmup(optax.constant_schedule(peak), warm)
    if name == "cosine":
        return optax.warmup_cosine_decay_schedule(0.0, peak, warm, total, end_value=end)
    if name in ("linear", "rex"):  # by name, as a config would: oxs.schedule_names()
        return oxs.get_schedule("linear_decay" if name == "linear" else name, peak, total,
                                warmup_steps=warm, end_value=end)
    if name == "uba":
        return oxs.uba(peak, total, cfg.uba_phi, warmup_steps=warm, end_value=end)
    if name == "wsd":
        return oxs.wsd(peak, total, warmup_steps=warm, decay_fraction=cfg.decay_fraction,
                       decay_shape=cfg.decay_shape, end_value=end)
    if name == "wsd_s":
        try:
            return oxs.wsd_s(peak, list(cfg.decay_points), decay_fraction=cfg.decay_fraction,
                             warmup_steps=warm, decay_shape=cfg.decay_shape, end_value=end)
        except ValueError as err:
            raise library_error(err, "--decay-points") from None
    if name == "inverse_sqrt":
        return oxs.inverse_sqrt(peak, warm)
    if name == "power":
        tokens = cfg.batch_size * cfg.seq_len
        decay = max(1, round(cfg.decay_fraction * total))
        return oxs.power(peak, batch_size=cfg.batch_size, tokens_per_step=tokens, a=cfg.power_a,
                         b=cfg.power_b, warmup_tokens=warm * tokens, decay_tokens=decay * tokens,
                         total_tokens=total * tokens, end_value=end)
    if name == "infinite":
        plateau = cfg.plateau_fraction * peak
        anneal = max(1, round(cfg.decay_fraction * total))
        cooldown = max(1, (total - warm - anneal) // 2)
        start = max(total - anneal, warm + cooldown)
        floor = end if end > 0 else plateau / 100.0
        return oxs.infinite(peak, plateau, warmup_steps=warm, cooldown_steps=cooldown,
                            anneal_start=start, anneal_steps=anneal,
                            end_value=min(floor, plateau))
    if name == "refined":
        if refine_norms is None:
            raise ValueError("build_schedule: --schedule refined needs the recorded norms.")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("always")
                refined = oxs.refined_schedule(refine_norms, peak, total_steps=total - warm,
                                               kind=cfg.refine_kind,
                                               smoothing=cfg.refine_smoothing)
        except ValueError as err:
            raise library_error(err, "--refine-from", "cannot refine its norms: ") from None
        return oxs.with_warmup(refined, warm) if warm else refined
    raise ConfigError("--schedule", f"invalid choice: {name!r}")  # pragma: no cover


# ------------------------------------------------------------------------------------------------
# Optimizers.
# ------------------------------------------------------------------------------------------------


class Optimizer(NamedTuple):
    """The optimizer of a run and what the train step needs to log it.

    Attributes:
      tx: the optax transformation.
      scale_invariant: NaP mask (pure dict of booleans) of the kernels that feed a normalisation
        layer, used for NaP and for the effective-learning-rate metric.
      elr_kind: ``'adam'`` or ``'sgd'``: the effective learning rate is η/‖W‖ or η/‖W‖².
    """

    tx: optax.GradientTransformation
    scale_invariant: Any
    elr_kind: str


def _selected_paths(mask: Any) -> list[str]:
    flat = jax.tree_util.tree_flatten_with_path(mask)[0]
    return sorted("/".join(str(getattr(k, "key", k)) for k in path)
                  for path, value in flat if value is not False)


def nap_mask_of(model: nnx.Module) -> Any:
    """``optaxsched.nap_mask`` of the model's (kernel, norm) pairs as a pure dict, checked against
    the model's design."""
    mask = nnx.to_pure_dict(oxs.nap_mask(model, pairs=nap_pairs(model)))
    found, expected = _selected_paths(mask), sorted(scale_invariant_kernels(model))
    if found != expected:
        raise RuntimeError(f"nap_mask selected {found}, but the scale-invariant kernels of "
                           f"{type(model).__name__} are {expected}.")
    return mask


def _spike_optimizer(cfg: TrainConfig, schedule, decay_mask) -> optax.GradientTransformation:
    """``oxs.spam`` / ``oxs.stable_spam`` with the run's betas, weight decay and reset interval."""
    # track_clips: the trainer logs the clipped-coordinate count every step (opt-in in the library).
    kwargs = {"b1": cfg.b1, "b2": cfg.b2, "weight_decay": cfg.weight_decay, "mask": decay_mask,
              "track_clips": True}
    if cfg.reset_interval is not None:
        kwargs["reset_interval"] = cfg.reset_interval
    if cfg.optimizer == "spam":
        kwargs["threshold"] = cfg.spam_threshold
    return oxs.get_optimizer(cfg.optimizer, schedule, **kwargs)  # "spam" or "stable_spam"


def build_optimizer(cfg: TrainConfig, schedule, model: nnx.Module, params: Any) -> Optimizer:
    """The optimizer chain of a run (see the module docstring).

    Weight decay applies to the kernels and embeddings (arrays of rank >= 2), never to norm
    scales or biases: decoupled (AdamW's ``η·λ·w``) for the Adam-type optimizers, added to the
    gradient (L2) for SGD.

    Args:
      cfg: a resolved config.
      schedule: the learning-rate schedule.
      model: the model (for NaP's mask).
      params: its parameters (a pure dict).

    Returns:
      An :class:`Optimizer`.
    """
    decay_mask = jax.tree.map(lambda p: jnp.ndim(p) >= 2, params)
    if cfg.optimizer == "adamw":
        base = optax.adamw(schedule, b1=cfg.b1, b2=cfg.b2, weight_decay=cfg.weight_decay,
                           mask=decay_mask)
    elif cfg.optimizer == "sgd":
        parts = []
        if cfg.weight_decay:
            parts.append(optax.add_decayed_weights(cfg.weight_decay, decay_mask))
        parts.append(optax.sgd(schedule, momentum=cfg.momentum or None))
        base = optax.chain(*parts)
    else:
        try:
            base = _spike_optimizer(cfg, schedule, decay_mask)
        except ValueError as err:
            raise library_error(err, "--optimizer", f"{cfg.optimizer} refused these settings: ") \
                from None
    if cfg.clip_norm > 0:
        base = optax.chain(optax.clip_by_global_norm(cfg.clip_norm), base)
    mask = nap_mask_of(model)
    if cfg.nap:
        base = oxs.nap(base, mask)
    parts = [base]
    if cfg.record_grad_norms:
        parts.insert(0, oxs.record_grad_norms(cfg.steps, norms=("l2", "l1")))
    if cfg.average != "none":
        parts.append(oxs.average_params(cfg.average))
    tx = optax.chain(*parts) if len(parts) > 1 else optax.with_extra_args_support(base)
    return Optimizer(tx, mask, "adam" if cfg.adam_like else "sgd")


def clipped_count(opt_state: Any) -> jax.Array | None:
    """Coordinates clipped at the latest update by SPAM / Stable-SPAM (their ``clipped`` field).

    Returns ``None`` when the optimizer state has no ``clipped`` field (AdamW, SGD).
    """
    found = [value for _, value in optax.tree.get_all_with_path(opt_state, "clipped")]
    if len(found) > 1:
        return sum(jnp.asarray(c, jnp.int32) for c in found)
    return found[0] if found else None
