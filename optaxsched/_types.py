"""The string choices of the public API as ``Literal`` types (re-exported by ``optaxsched``).

optax types its string options with ``Literal[...]`` so that a type checker catches a misspelt
choice before the run; the tuples the library validates against (``NORM_NAMES``, ...) are derived
from these with ``typing.get_args``, so the two can never disagree.
"""

from __future__ import annotations

from typing import Literal

__all__ = [
    "DecayShape",
    "WarmupShape",
    "CooldownShape",
    "NormName",
    "RefineKind",
    "ElrKind",
    "ScaleOffsetMode",
    "HypergradientMode",
    "AverageKind",
]

DecayShape = Literal["1-sqrt", "linear", "cosine", "square", "exponential", "harmonic"]
"""Named decay shapes of :func:`optaxsched.wsd`, :func:`optaxsched.wsd_s` and the anneals."""

WarmupShape = Literal["linear", "cosine"]
"""Warmup shapes of :func:`optaxsched.with_warmup` and :func:`optaxsched.rewarm`."""

CooldownShape = Literal["cosine", "inverse_sqrt", "1-sqrt", "linear", "square", "exponential",
                        "harmonic"]
"""Cooldown shapes of :func:`optaxsched.infinite`."""

NormName = Literal["l2", "l1", "linf"]
"""Norms :func:`optaxsched.record_grad_norms` can record."""

RefineKind = Literal["sgd", "adam"]
"""Refinement variants of :func:`optaxsched.refine`."""

ElrKind = Literal["sgd", "adam"]
"""Effective-learning-rate formulas of :func:`optaxsched.effective_learning_rate`."""

ScaleOffsetMode = Literal["exclude", "joint"]
"""How :func:`optaxsched.nap_mask` treats normalization scales and offsets."""

HypergradientMode = Literal["additive", "multiplicative"]
"""Update rules of :func:`optaxsched.hypergradient`."""

AverageKind = Literal["ema", "tail"]
"""Averages kept by :func:`optaxsched.average_params`."""
