"""Quickstart: WSD + SPAM on a small nnx model, then a second run on the refined schedule.

Run 1 trains a next-token MLP on a synthetic bigram language with ``oxs.spam`` driven by an
``oxs.wsd`` schedule, while ``oxs.record_grad_norms`` stores every step's gradient norm inside
the optimizer state. ``oxs.refined_schedule`` turns those norms into a schedule fitted to this
problem (Defazio et al., arXiv 2310.07831), and run 2 trains the same model again with it.

    python -m examples.quickstart

No download: ``examples.data.bigram_corpus`` samples the data at start-up. About 20 s of CPU time.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

import optaxsched as oxs
from examples.data import bigram_corpus, eval_windows, sample_batch

STEPS = 400  # updates per run
BATCH = 128  # windows per batch
CONTEXT = 4  # tokens the model sees before predicting the next one
PEAK_LR = 1e-2


class CharMLP(nnx.Module):
    """Next-token logits from the embeddings of the last ``CONTEXT`` tokens."""

    def __init__(self, vocab: int, embed: int = 32, hidden: int = 128, *, rngs: nnx.Rngs):
        self.embed = nnx.Embed(vocab, embed, rngs=rngs)
        self.hidden = nnx.Linear(CONTEXT * embed, hidden, rngs=rngs)
        self.out = nnx.Linear(hidden, vocab, rngs=rngs)

    def __call__(self, tokens: jax.Array) -> jax.Array:  # [batch, CONTEXT] -> [batch, vocab]
        x = self.embed(tokens).reshape(tokens.shape[0], -1)
        return self.out(jax.nn.gelu(self.hidden(x)))


def loss_fn(model: CharMLP, windows: jax.Array) -> jax.Array:
    logits = model(windows[:, :-1])
    return optax.softmax_cross_entropy_with_integer_labels(logits, windows[:, -1]).mean()


@nnx.jit
def train_step(model: CharMLP, optimizer: nnx.Optimizer, tokens: jax.Array, key: jax.Array):
    windows = sample_batch(tokens, key, BATCH, CONTEXT)
    loss, grads = nnx.value_and_grad(loss_fn)(model, windows)
    optimizer.update(model, grads)  # passes the params too, which spam's weight decay uses
    return loss


@nnx.jit
def eval_step(model: CharMLP, windows: jax.Array) -> jax.Array:
    return loss_fn(model, windows)


def make_optimizer(schedule: optax.Schedule, steps: int) -> optax.GradientTransformation:
    # Record first, so the norms are those of the raw gradients: l1 norms are what the Adam
    # variant of the refinement uses (refine's kind="adam"). SPAM's reset period is scaled down
    # from its default of 500 steps (meant for long LLM runs) to this short run.
    return optax.chain(
        oxs.record_grad_norms(steps, norms="l1"),
        oxs.spam(schedule, reset_interval=200, warmup_steps=50, weight_decay=0.01),
    )


def train(schedule: optax.Schedule, corpus, steps: int = STEPS, seed: int = 0) -> dict:
    """One run: its per-step losses and learning rates, val loss, gradient norms and model."""
    model = CharMLP(corpus.vocab_size, rngs=nnx.Rngs(seed))
    optimizer = nnx.Optimizer(model, make_optimizer(schedule, steps), wrt=nnx.Param)
    tokens, key = jnp.asarray(corpus.train), jax.random.key(seed)
    losses = [train_step(model, optimizer, tokens, jax.random.fold_in(key, step))
              for step in range(steps)]
    val_loss = float(eval_step(model, jnp.asarray(eval_windows(corpus.val, 4096, CONTEXT))))
    norms = oxs.grad_norm_history(optimizer.opt_state, norm="l1")  # finds the recorder's state
    lrs = jax.vmap(schedule)(jnp.arange(steps))  # the rate spam applied at each optax count
    return {"losses": np.asarray(jax.device_get(losses)), "lrs": np.asarray(lrs),
            "val_loss": val_loss, "norms": norms, "model": model}


def main(steps: int = STEPS) -> dict:
    start = time.perf_counter()
    corpus = bigram_corpus(vocab_size=32, length=1 << 17, seed=0)
    wsd = oxs.wsd(PEAK_LR, total_steps=steps, warmup_steps=steps // 10)  # decays the last 20%
    run1 = train(wsd, corpus, steps)
    refined = oxs.refined_schedule(run1["norms"], PEAK_LR, kind="adam")  # from run 1's norms
    run2 = train(refined, corpus, steps)
    runs = {"wsd": run1, "refined": run2}

    print(f"{steps} steps per run, batch {BATCH}, peak lr {PEAK_LR:g}. Loss at init ~ ln 32 = "
          f"{np.log(32):.3f}; lowest possible (entropy rate) {corpus.info['entropy_nats']:.3f}.")
    print(f"{'schedule':<9} {'lr at 0, 25, 50, 75, 99% of the run':<36}{'train, last 20':>15}"
          f"{'val loss':>9}")
    for name, run in runs.items():
        at = run["lrs"][[int(f * (steps - 1)) for f in (0, 0.25, 0.5, 0.75, 0.99)]]
        lrs = ", ".join(f"{lr:.1e}" for lr in at)
        print(f"{name:<9} {lrs:<36}{run['losses'][-20:].mean():>15.3f}{run['val_loss']:>9.3f}")
    print(f"done in {time.perf_counter() - start:.1f} s")
    return runs


if __name__ == "__main__":
    main()
