"""Independent float64 NumPy implementations of SPAM and Stable-SPAM, step by step.

Written from the papers and the decisions in the design notes (docs/design.md: SPAM,
Stable-SPAM), with the
structure of the papers' PyTorch code rather than of optaxsched's closed forms: a 1-based
``total_step`` counter, SPAM's post-reset warmup as a counter that is zeroed at the end of the
step before each reset (started at ``warmup_steps + 1``), Stable-SPAM's per-tensor Adam counter
that is set to 1 on reset steps. Parameters are dicts of float64 arrays.

optaxsched additions, implemented the same way here:

* ``reset_interval = 0`` never resets (the reference would divide by zero);
* a NaN/Inf gradient entry is a spike dropped to zero (per coordinate; the step itself is
  applied), counted with the clipped coordinates;
* Stable-SPAM's ``reset_order="authors"``: at a reset step the update uses the old moments
  (continued with this step's gradient) and the bias corrections of step 1, and the moments
  are zeroed after the step, as the authors' ``stablespam.py`` does;
* Stable-SPAM's optional cosine scaling is held at ``eta_min`` after ``t_max + 1`` steps;
* ``clipped`` counts clipped coordinates of the last step, ``clipped_total`` all of them.
"""

from __future__ import annotations

import math

import numpy as np


def _drop_non_finite(g: np.ndarray) -> tuple[np.ndarray, int]:
    """(g with NaN/Inf entries set to 0, how many there were)."""
    g = np.array(g, dtype=np.float64)
    bad = ~np.isfinite(g)
    g[bad] = 0.0
    return g, int(bad.sum())


class Spam:
    """SPAM (arXiv 2501.06842) as in the reference ``AdamW`` with density 1.

    ``step(grads, lr)`` applies one update in place to ``self.params`` and returns it.
    """

    def __init__(self, params: dict, b1=0.9, b2=0.999, eps=1e-6, weight_decay=0.0,
                 threshold=5000.0, reset_interval=500, warmup_steps=150, clip_delay=20):
        self.params = {k: np.array(v, dtype=np.float64) for k, v in params.items()}
        self.b1, self.b2, self.eps, self.wd = b1, b2, eps, weight_decay
        self.threshold, self.delta_t = threshold, reset_interval
        self.warmup_steps, self.clip_delay = warmup_steps, clip_delay
        self.m = {k: np.zeros_like(v) for k, v in self.params.items()}
        self.v = {k: np.zeros_like(v) for k, v in self.params.items()}
        self.step_count = {k: 0 for k in self.params}  # per-parameter, never reset
        self.total_step = 0
        self.current_step = warmup_steps + 1  # steps since the warmup was restarted
        self.clipped = 0
        self.clipped_total = 0
        self.last_scale = 1.0

    def _decay(self, c: int) -> float:
        """0.99 (1 + cos(pi c / (N + 1))) / 2 for c < N, else 0 (cosine annealing, T = N + 1)."""
        n = self.warmup_steps
        if c >= n:
            return 0.0
        return 0.99 * (1.0 + math.cos(math.pi * c / (n + 1))) / 2.0

    def step(self, grads: dict, lr: float) -> dict:
        scale = 1.0 - self._decay(self.current_step)
        self.last_scale = scale
        clipped = 0
        k = self.total_step + 1
        for name, p in self.params.items():
            g, dropped = _drop_non_finite(grads[name])
            clipped += dropped
            if self.delta_t != 0 and k % self.delta_t == 0:
                self.m[name] = np.zeros_like(p)
                self.v[name] = np.zeros_like(p)
            m, v = self.m[name], self.v[name]
            self.step_count[name] += 1
            t = self.step_count[name]
            if self.threshold != 0 and k >= self.clip_delay:
                if self.delta_t == 0 or k % self.delta_t >= self.clip_delay:
                    mask = g ** 2 > self.threshold * v
                    g[mask] = np.sign(g[mask]) * np.sqrt(self.threshold * v[mask])
                    clipped += int(mask.sum())
            m[...] = self.b1 * m + (1.0 - self.b1) * g
            v[...] = self.b2 * v + (1.0 - self.b2) * g * g
            step_size = lr * math.sqrt(1.0 - self.b2 ** t) / (1.0 - self.b1 ** t)
            p -= step_size * scale * m / (np.sqrt(v) + self.eps)
            if self.wd > 0:
                p -= lr * self.wd * p
        self.total_step += 1
        self.current_step += 1
        if self.delta_t != 0 and (self.total_step + 1) % self.delta_t == 0:
            self.current_step = 0
        self.clipped = clipped
        self.clipped_total += clipped
        return self.params


class StableSpam:
    """Stable-SPAM (arXiv 2502.17055) with the §13 decision on the bias corrections.

    AdaClip and AdaGN use the global 1-based step for their bias corrections; Adam uses the
    per-tensor counter that restarts at 1 on reset steps.
    """

    def __init__(self, params: dict, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0, gamma1=0.7,
                 gamma2=0.9, theta=0.999, reset_interval=1000, t_max=None, eta_min=0.5,
                 reset_order="zero_first"):
        self.reset_order = reset_order
        self.params = {k: np.array(v, dtype=np.float64) for k, v in params.items()}
        self.b1, self.b2, self.eps, self.wd = b1, b2, eps, weight_decay
        self.gamma1, self.gamma2, self.theta = gamma1, gamma2, theta
        self.delta_t, self.t_max, self.eta_min = reset_interval, t_max, eta_min
        self.m = {k: np.zeros_like(v) for k, v in self.params.items()}
        self.v = {k: np.zeros_like(v) for k, v in self.params.items()}
        self.n = {k: 0 for k in self.params}  # Adam bias-correction counter (reset to 1)
        self.max_ema = {k: 0.0 for k in self.params}
        self.norm_mean = {k: 0.0 for k in self.params}
        self.norm_sq_mean = {k: 0.0 for k in self.params}
        self.total_steps = 0
        self.clipped = 0
        self.clipped_total = 0

    def _scale(self, k: int) -> float:
        if self.t_max is None:
            return 1.0
        horizon = self.t_max + 1
        x = min(k, horizon) / horizon
        return self.eta_min + (1.0 - self.eta_min) * (1.0 + math.cos(math.pi * x)) / 2.0

    def step(self, grads: dict, lr: float) -> dict:
        self.total_steps += 1
        k = self.total_steps
        scale = self._scale(k)
        gamma1 = self.gamma1 * scale
        beta1 = self.b1 * scale
        clipped = 0
        for name, p in self.params.items():
            p *= 1.0 - lr * self.wd
            g, dropped = _drop_non_finite(grads[name])
            clipped += dropped
            self.n[name] += 1
            # AdaClip.
            g_max = float(np.max(np.abs(g)))
            self.max_ema[name] = self.theta * self.max_ema[name] + (1 - self.theta) * g_max
            limit = self.max_ema[name] / (1.0 - self.theta ** k)
            # At k = 1, M̂ = max|g| in exact arithmetic: nothing is clipped (float64 rounding
            # of M / (1 - θ) would otherwise decide).
            mask = (np.abs(g) > limit) & (k > 1)
            if mask.any():
                g[mask] = g[mask] / g_max * limit
            clipped += int(mask.sum())
            # AdaGN.
            norm = float(np.linalg.norm(g))
            self.norm_mean[name] = gamma1 * self.norm_mean[name] + (1 - gamma1) * norm
            self.norm_sq_mean[name] = (self.gamma2 * self.norm_sq_mean[name]
                                       + (1 - self.gamma2) * norm ** 2)
            mean_hat = self.norm_mean[name] / (1.0 - gamma1 ** k)
            sq_hat = self.norm_sq_mean[name] / (1.0 - self.gamma2 ** k)
            if norm > 0:
                g = g / norm * (mean_hat / (math.sqrt(sq_hat) + self.eps))
            # Momentum reset.
            reset = self.delta_t != 0 and k % self.delta_t == 0
            m, v = self.m[name], self.v[name]  # the authors bind these before the reset
            if reset:
                self.m[name] = np.zeros_like(p)
                self.v[name] = np.zeros_like(p)
                self.n[name] = 1
                if self.reset_order == "zero_first":
                    m, v = self.m[name], self.v[name]
            n = self.n[name]
            m[...] = beta1 * m + (1 - beta1) * g
            v[...] = self.b2 * v + (1 - self.b2) * g * g
            bc1 = 1.0 - beta1 ** n
            bc2 = 1.0 - self.b2 ** n
            p -= lr / bc1 * m / (np.sqrt(v) / math.sqrt(bc2) + self.eps)
        self.clipped = clipped
        self.clipped_total += clipped
        return self.params


def clip_spikes(grads: np.ndarray, threshold=5000.0, b2=0.999, clip_delay=20,
                reset_interval=0) -> tuple[np.ndarray, np.ndarray]:
    """SPAM's clipping rule alone over a sequence ``grads[t]`` (1-D each).

    Returns the clipped sequence and the second-moment estimate after each step.
    """
    v = np.zeros_like(grads[0], dtype=np.float64)
    out, vs = [], []
    for t, g in enumerate(np.asarray(grads, np.float64)):
        k = t + 1
        g = g.copy()
        if reset_interval and k % reset_interval == 0:
            v = np.zeros_like(v)
        phase = k % reset_interval if reset_interval else k
        if threshold != 0 and k >= clip_delay and phase >= clip_delay:
            mask = g * g > threshold * v
            g[mask] = np.sign(g[mask]) * np.sqrt(threshold * v[mask])
        v = b2 * v + (1 - b2) * g * g
        out.append(g)
        vs.append(v.copy())
    return np.array(out), np.array(vs)


def post_reset_factor(counts: np.ndarray, interval: int, warmup_steps: int) -> np.ndarray:
    """SPAM's warmup factor at optax counts, by simulating the reference's counter."""
    counts = np.asarray(counts)
    last = int(counts.max()) + 1
    factors = np.empty(last)
    current = warmup_steps + 1
    for total_step in range(last):  # total_step = count of the update being made
        c = current
        factors[total_step] = 1.0 - (0.99 * (1 + math.cos(math.pi * c / (warmup_steps + 1))) / 2
                                     if c < warmup_steps else 0.0)
        current += 1
        if (total_step + 2) % interval == 0:
            current = 0
    return factors[counts]
