"""Golden trajectories: oxs.spam / oxs.stable_spam against pytorch-optimizer 4.1.0.

The fixtures in ``tests/fixtures/golden_*.npz`` were recorded with pytorch-optimizer 4.1.0 on
torch 2.13.0 (CPU, float32) by ``tests/fixtures/make_golden.py``, which says how to set up its
separate venv; torch is not needed here. Each fixture holds the gradient every step received
(300 steps, three parameter tensors of 1, 2 and 3 dimensions, spikes, momentum resets every 100
steps, clipping active) and torch's parameters after every step. The test feeds the *recorded*
gradients to the optax transformation, step by step, and compares the parameters.

Tolerance, per step t (1-based) and leaf: |p_oxs − p_torch| ≤ 5e-6 · max(1, max|p_torch|)
+ t · δ · max|p_torch|, where δ = |fl32(1 − lr·wd) − (1 − lr·wd)| is the rounding error of
torch's decoupled-decay factor: it multiplies the float32 parameters by 1 − lr·wd rounded to
float32 every step, a bias of the same sign each step, where optaxsched subtracts lr·wd·p.
With lr = wd = 1e-2, δ = 1.66e-8, so that term is 1.1e-5 at step 300 for parameters of size 2
(it is 0 without weight decay), and it is most of the measured deviation of the two cases with
decay. The first term: both sides run in float32 (ulp at 1: 1.2e-7) but order their arithmetic
differently (torch folds the bias corrections into a float64 step size, XLA computes them in
float32), so each update differs by a few ulp of its size (≈ lr = 1e-2): measured without
decay, ~5e-9 per step, 4.8e-7 after 100 steps; 5e-6 leaves room for 300 steps and another
CPU's rounding. Measured worst case: 0.5–0.7 of this tolerance (printed with ``-s``). A changed
rule (a clip threshold, a reset interval, the AdaClip or AdaGN constants, the clip delay) moves
the parameters by more than 20x the tolerance, which each fixture checks with a deliberately
wrong configuration.

Known difference, pinned exactly rather than hidden: pytorch-optimizer's SPAM reads its
post-reset cosine warmup one step late. With D(j) = 0.99 (1 + cos(π j / (N + 1))) / 2 and c the
steps since the reset (c = 0 at the reset step), the reference SPAM and optaxsched scale the
step by 1 − D(c) for c < N, pytorch-optimizer by 1 − D(c + 1) for c < N (1 afterwards in both):
at the reset step 1 − D(1) = 0.0125 instead of 0.01 for N = 30, and at c = N − 1 0.9975
instead of 1 − D(N − 1). Since the gradients are replayed, the moments of both implementations
are identical and only that factor differs, so for the case with warmup each torch update equals
optaxsched's update times the ratio of the two factors; the test checks the recorded torch
factor against that closed form and the updates against the rescaled ones, to 1e-5 of the
step plus 4 ulp of the parameters (the updates are differences of float32 parameters of size
~2, so a step of 1e-4, the first one after a reset, carries ~2e-7 of rounding). With
``warmup_epoch = 0`` (no warmup in either) the trajectories agree whole.
"""

from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import optaxsched as oxs

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
ATOL = 5e-6
NAMES = ("b", "w", "x")


def _load(case: str):
    with np.load(os.path.join(FIXTURES, f"golden_{case}.npz")) as data:
        out = {key: data[key] for key in data.files}
    config = json.loads(str(out.pop("config")))
    init = {n: out[f"init/{n}"] for n in NAMES}
    grads = {n: out[f"grad/{n}"] for n in NAMES}
    params = {n: out[f"params/{n}"] for n in NAMES}
    return config, init, grads, params, out.get("torch_warmup_scale")


def _tx(config, **override):
    kw = dict(config["kwargs"])
    kw.update(override)
    b1, b2 = kw["betas"]
    if config["optimizer"] == "SPAM":
        return oxs.spam(kw["lr"], b1=b1, b2=b2, eps=kw["eps"], threshold=kw["threshold"],
                        reset_interval=kw["update_proj_gap"], warmup_steps=kw["warmup_epoch"],
                        clip_delay=kw["grad_accu_steps"], weight_decay=kw["weight_decay"])
    return oxs.stable_spam(kw["lr"], b1=b1, b2=b2, eps=kw["eps"], gamma1=kw["gamma1"],
                           gamma2=kw["gamma2"], theta=kw["theta"],
                           reset_interval=kw["update_proj_gap"], t_max=kw["t_max"],
                           eta_min=kw["eta_min"], weight_decay=kw["weight_decay"])


def _replay(tx, init, grads):
    """Parameters after every step, [steps, ...] per leaf, from the recorded gradients."""
    params = {n: jnp.asarray(v, jnp.float32) for n, v in init.items()}

    def step(carry, g):
        p, state = carry
        u, state = tx.update(g, state, p)
        p = jax.tree.map(lambda a, b: a + b, p, u)
        return (p, state), p

    xs = {n: jnp.asarray(v, jnp.float32) for n, v in grads.items()}
    _, traj = jax.jit(lambda p, s, xs: jax.lax.scan(step, (p, s), xs))(params, tx.init(params),
                                                                       xs)
    return {n: np.asarray(v, np.float64) for n, v in traj.items()}


def _worst(a, b, config=None):
    """Largest |a − b| over steps and leaves divided by the tolerance of that step (module
    docstring); <= 1 passes."""
    decay = 0.0
    if config is not None:
        kw = config["kwargs"]
        exact = 1.0 - kw["lr"] * kw["weight_decay"]
        decay = abs(float(np.float32(exact)) - exact)
    out = 0.0
    for n in NAMES:
        steps = len(b[n])
        diff = np.abs(a[n] - b[n]).reshape(steps, -1).max(1)
        size = np.abs(b[n]).reshape(steps, -1).max(1)
        tol = ATOL * np.maximum(1.0, size) + np.arange(1, steps + 1) * decay * size
        out = max(out, float((diff / tol).max()))
    return out


@pytest.mark.parametrize("case", ["spam_nowarmup", "stable_spam"])
def test_trajectory_matches_pytorch_optimizer(case):
    config, init, grads, torch_params, _ = _load(case)
    assert config["pytorch_optimizer"] == "4.1.0"
    ours = _replay(_tx(config), init, grads)
    worst = _worst(ours, torch_params, config)
    assert worst <= 1.0, f"{case}: deviation {worst:.3g}x the tolerance"
    print(f"{case}: max deviation {worst:.3g} of the tolerance")


@pytest.mark.parametrize("case,override", [
    ("spam_nowarmup", {"threshold": 1e12}),  # no clipping
    ("spam_nowarmup", {"update_proj_gap": 10_000}),  # no resets
    ("spam_nowarmup", {"grad_accu_steps": 16}),  # the spike at step 15 unclipped
    ("stable_spam", {"update_proj_gap": 10_000}),  # no resets
    ("stable_spam", {"theta": 0.99}),  # another AdaClip threshold
    ("stable_spam", {"gamma1": 0.9}),  # another AdaGN mean
])
def test_fixture_detects_a_changed_rule(case, override):
    """The fixtures exercise clipping and resets: changing either moves the trajectory far
    outside the tolerance (so the comparison above can fail)."""
    config, init, grads, torch_params, _ = _load(case)
    worst = _worst(_replay(_tx(config, **override), init, grads), torch_params, config)
    assert worst > 20, f"{case} with {override}: only {worst:.3g} away"


def _d(j, n):
    """The cosine of SPAM's post-reset warmup, D(j) = 0.99 (1 + cos(π j / (N + 1))) / 2."""
    return 0.99 * (1.0 + np.cos(np.pi * j / (n + 1))) / 2.0


def test_spam_warmup_differs_only_by_the_late_warmup_factor():
    config, init, grads, torch_params, torch_scale = _load("spam_warmup")
    kw = config["kwargs"]
    n, gap, steps = kw["warmup_epoch"], kw["update_proj_gap"], config["steps"]
    k = np.arange(1, steps + 1)  # 1-based step
    # Steps since the last reset; before the first reset the warmup is over (factor 1).
    c = np.where(k >= gap, k % gap, n + 1)
    ours_scale = np.where(c < n, 1.0 - _d(c, n), 1.0)
    # pytorch-optimizer's factor: the same cosine one step later, over the same N steps.
    np.testing.assert_allclose(torch_scale, np.where(c < n, 1.0 - _d(c + 1, n), 1.0),
                               rtol=1e-6, atol=1e-7)
    assert torch_scale[gap - 1] > 1.2 * ours_scale[gap - 1]  # at a reset: 1 − D(1) vs 0.01

    ours = _replay(_tx(config), init, grads)
    first_reset = gap - 1  # 0-based index of step k = gap
    before = {m: ours[m][:first_reset] for m in NAMES}
    assert _worst(before, {m: torch_params[m][:first_reset] for m in NAMES}, config) <= 1.0
    # After it: the trajectories drift apart (by the warmup's effect) ...
    assert _worst(ours, torch_params, config) > 20
    # ... but every update is ours times the ratio of the two factors.
    ratio = (torch_scale / ours_scale)[:, None]
    for m in NAMES:
        start = np.concatenate([init[m][None].astype(np.float64), ours[m][:-1]])
        torch_start = np.concatenate([init[m][None].astype(np.float64), torch_params[m][:-1]])
        ours_step = (ours[m] - start).reshape(steps, -1)
        torch_step = (torch_params[m] - torch_start).reshape(steps, -1)
        # Steps are differences of float32 parameters: allow 1e-5 of the step plus 4 ulp of
        # the parameters' size (the rounding of the two parameters the step is taken from).
        size = np.abs(torch_params[m]).reshape(steps, -1).max(1, keepdims=True)
        tol = 1e-5 * np.abs(torch_step).max(1, keepdims=True) + 4 * np.spacing(
            size.astype(np.float32)).astype(np.float64)
        err = np.abs(ours_step * ratio - torch_step) / tol
        assert err.max() <= 1.0, f"{m}: update mismatch {err.max():.3g} of the tolerance"
        print(f"spam_warmup {m}: rescaled updates within {err.max():.3g} of the tolerance")
