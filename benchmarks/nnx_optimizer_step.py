"""Step time of the example trainer's update path against ``nnx.Optimizer`` + ``nnx.jit``.

The trainer splits the model once (``nnx.split``), keeps the parameters as a pure dict and jits
``(params, opt_state, tokens, step) -> (params, opt_state, loss)`` with ``jax.jit`` (params and
state donated). The Flax-idiomatic alternative keeps the model and an ``nnx.Optimizer`` as
objects and jits ``(model, optimizer, tokens, step) -> loss`` with ``nnx.jit``, which walks the
object graph on every call. Both steps compute the same thing (the batch drawn from (seed,
step) inside the step, cross-entropy, clip + AdamW on a warmup-stable-decay schedule) on the
demo's model (``examples/demo.py``: transformer, width 128, 2 blocks, 4 heads, 32 x 64
tokens; ``--size quick``: the demo's ``--quick`` model, width 32, 1 block, 16 x 32 tokens).
A third variant donates the model and optimizer to ``nnx.jit``, as the trainer donates its
params and state.

Timing: both are compiled and warmed up, then timed alternately in rounds of ``--steps`` steps
(each round ends with a ``block_until_ready``); the ratio of a round is nnx time / jax.jit
time (the rounds rotate the order), reported as median and range over rounds, with the
machine's load average.

Run: ``GLIBC_TUNABLES=glibc.malloc.hugetlb=1 .venv/bin/python benchmarks/nnx_optimizer_step.py``
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from flax import nnx  # noqa: E402

import optaxsched as oxs  # noqa: E402
from examples import data as data_lib  # noqa: E402
from examples import model as model_lib  # noqa: E402

SEED = 0
# The demo's model (examples/demo.py) and its --quick one (where per-call overhead shows more).
SIZES = {"demo": dict(d_model=128, num_layers=2, num_heads=4, d_ff=512, batch=32, seq=64),
         "quick": dict(d_model=32, num_layers=1, num_heads=2, d_ff=128, batch=16, seq=32)}
SIZE = dict(SIZES["demo"])


def _tx():
    schedule = oxs.wsd(3e-3, 10_000, warmup_steps=100, decay_fraction=0.2)
    return optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(schedule, weight_decay=0.1))


def _model(vocab):
    return model_lib.build_model("transformer", vocab, seq_len=SIZE["seq"],
                                 d_model=SIZE["d_model"], num_layers=SIZE["num_layers"],
                                 num_heads=SIZE["num_heads"], d_ff=SIZE["d_ff"], context=8,
                                 seed=SEED)


def _loss(model, batch):
    logits = model(batch[:, :-1])
    return optax.softmax_cross_entropy_with_integer_labels(
        logits.astype(jnp.float32), batch[:, 1:]).mean()


def jax_jit_step(vocab, tokens):
    """The trainer's path: split once, pure-dict params, jax.jit with donation."""
    graphdef, state = nnx.split(_model(vocab))
    params = nnx.to_pure_dict(state)
    tx = _tx()
    opt_state = tx.init(params)

    def step_fn(p, s, tokens, step):
        batch = data_lib.sample_batch(tokens, data_lib.batch_key(SEED, step), SIZE["batch"],
                                      SIZE["seq"])
        loss, grads = jax.value_and_grad(
            lambda q: _loss(nnx.merge(graphdef, q), batch))(p)
        updates, s = tx.update(grads, s, p)
        return optax.apply_updates(p, updates), s, loss

    fn = jax.jit(step_fn, donate_argnums=(0, 1))
    box = [params, opt_state]

    def step(k):
        box[0], box[1], loss = fn(box[0], box[1], tokens, jnp.asarray(k, jnp.int32))
        return loss

    return step


def nnx_optimizer_step(vocab, tokens, donate=False):
    """The Flax-idiomatic path: nnx.Optimizer, nnx.jit on the objects (``donate``: the model
    and the optimizer donated, as the trainer donates params and state)."""
    model = _model(vocab)
    optimizer = nnx.Optimizer(model, _tx(), wrt=nnx.Param)

    @nnx.jit(donate_argnums=(0, 1) if donate else ())
    def step_fn(model, optimizer, tokens, step):
        batch = data_lib.sample_batch(tokens, data_lib.batch_key(SEED, step), SIZE["batch"],
                                      SIZE["seq"])
        loss, grads = nnx.value_and_grad(_loss)(model, batch)
        optimizer.update(model, grads)
        return loss

    def step(k):
        return step_fn(model, optimizer, tokens, jnp.asarray(k, jnp.int32))

    return step


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=20, help="steps per timed round")
    parser.add_argument("--size", choices=SIZES, default="demo")
    args = parser.parse_args(argv)
    SIZE.update(SIZES[args.size])
    corpus = data_lib.stdlib_corpus(max_bytes=2_000_000)
    tokens = jnp.asarray(corpus.train)
    paths = {"jax.jit": jax_jit_step(corpus.vocab_size, tokens),
             "nnx.Optimizer": nnx_optimizer_step(corpus.vocab_size, tokens),
             "nnx donated": nnx_optimizer_step(corpus.vocab_size, tokens, donate=True)}
    counters = {name: 0 for name in paths}
    for name, step in paths.items():  # compile + warm up
        for _ in range(3):
            step(counters[name]).block_until_ready()
            counters[name] += 1
    times = {name: [] for name in paths}
    loads = []
    for r in range(args.rounds):
        order = list(paths)[r % len(paths):] + list(paths)[:r % len(paths)]  # rotate
        for name in order:
            start = time.perf_counter()
            for _ in range(args.steps):
                loss = paths[name](counters[name])
                counters[name] += 1
            loss.block_until_ready()
            times[name].append((time.perf_counter() - start) / args.steps)
        loads.append(os.getloadavg()[0])
    print(f"size {args.size} {SIZES[args.size]}: {args.rounds} rounds x {args.steps} steps, "
          f"interleaved")
    for name, t in times.items():
        t = np.asarray(t) * 1e3
        print(f"{name:14s} ms/step median {np.median(t):.2f}  range {t.min():.2f}-{t.max():.2f}")
    for name in list(paths)[1:]:
        ratios = np.asarray(times[name]) / np.asarray(times["jax.jit"])
        print(f"ratio {name}/jax.jit  median {np.median(ratios):.3f}  range "
              f"{ratios.min():.3f}-{ratios.max():.3f}")
    print(f"load average over rounds {min(loads):.1f}-{max(loads):.1f} on {os.cpu_count()} "
          f"CPUs; jax {jax.__version__}, "
          f"flax {__import__('flax').__version__}, {jax.devices()[0].platform}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
