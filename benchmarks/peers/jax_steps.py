"""Times oxs.spam, oxs.stable_spam and optax.adam at 16M float32 parameters, ms per step.

The JAX side of the peer comparison (see ``peers.py``); run with the project's venv::

    .venv/bin/python benchmarks/peers/jax_steps.py --rounds 5

Same problem as ``torch_steps.py``: four 2000×2000 float32 parameters, fixed random gradients;
one jitted step ``(params, state, grads) -> (params, state)`` with params and state donated,
candidates in a rotating order every round. The JSON on the last line holds every round's ms
per step.
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import jax.numpy as jnp
import optax

import optaxsched as oxs

SHAPE, LEAVES = (2000, 2000), 4
CANDIDATES = {
    "oxs.spam": lambda: oxs.spam(1e-3),
    "oxs.stable_spam": lambda: oxs.stable_spam(1e-3),
    "optax.adam": lambda: optax.adam(1e-3),
}


def make(name):
    tx = CANDIDATES[name]()
    keys = jax.random.split(jax.random.PRNGKey(0), 2 * LEAVES)
    params = {f"w{i}": jax.random.normal(keys[i], SHAPE, jnp.float32) for i in range(LEAVES)}
    grads = {f"w{i}": 1e-3 * jax.random.normal(keys[LEAVES + i], SHAPE, jnp.float32)
             for i in range(LEAVES)}

    def step(params, state, grads):
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    jitted = jax.jit(step, donate_argnums=(0, 1))
    carry = [params, tx.init(params)]

    def call():
        carry[0], carry[1] = jitted(carry[0], carry[1], grads)
        return carry[0]

    return call


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    names = list(CANDIDATES)
    calls = {name: make(name) for name in names}
    for name in names:
        for _ in range(3):
            jax.block_until_ready(calls[name]())
    times = {name: [] for name in names}
    for r in range(args.rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            start = time.perf_counter()
            for _ in range(args.steps):
                out = calls[name]()
            jax.block_until_ready(out)
            times[name].append(1e3 * (time.perf_counter() - start) / args.steps)
    print(json.dumps({"times_ms": times, "jax": jax.__version__, "optax": optax.__version__}))


if __name__ == "__main__":
    main()
