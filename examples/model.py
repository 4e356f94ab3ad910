"""Models of the example trainer, in ``flax.nnx``: a decoder-only transformer and an MLP.

Both map token ids ``[batch, time]`` to next-token logits ``[batch, time, vocab]`` and contain
projections that feed a normalisation layer, which is what NaP (Lyle et al., arXiv 2407.01800)
needs: such a kernel ``W`` is scale-invariant, ``Norm(c·W x) = Norm(W x)``, so its effective
learning rate is ``η/‖W‖²`` (SGD) or ``η/‖W‖`` (Adam) and NaP can pin ``‖W‖`` to its initial value.

* :class:`Transformer`: pre-norm blocks (RMSNorm) with causal self-attention and a "normalised
  MLP", ``fc2(gelu(RMSNorm(fc1 x)))``: the normalisation before the nonlinearity of NaP's recipe
  (as in NormFormer's extra MLP norm). The ``fc1`` kernels are the scale-invariant blocks; the
  attention and residual projections are not (they feed the residual stream).
* :class:`MLP`: a next-token classifier that sees the last ``context`` tokens (their embeddings
  concatenated), with ``Linear → LayerNorm → ReLU`` hidden layers; every hidden kernel is
  scale-invariant.

:func:`nap_pairs` states which kernel feeds which normalisation layer; the trainer passes it to
``optaxsched.nap_mask(model, pairs=...)``, so the attributes below keep their natural order.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

__all__ = ["MODELS", "Transformer", "MLP", "build_model", "nap_pairs", "scale_invariant_kernels",
           "generate"]

MODELS: tuple[str, ...] = ("transformer", "mlp")
"""Model names accepted by :func:`build_model` (the trainer's ``--model``)."""

_INIT_STD = 0.02


def _normal(std: float):
    return nnx.initializers.normal(stddev=std)


class NormalisedMLP(nnx.Module):
    """``fc2(gelu(RMSNorm(fc1 x)))`` without biases; ``fc1`` is scale-invariant."""

    def __init__(self, d_model: int, d_ff: int, out_std: float, *, rngs: nnx.Rngs):
        self.fc1 = nnx.Linear(d_model, d_ff, use_bias=False, kernel_init=_normal(_INIT_STD),
                              rngs=rngs)
        self.norm = nnx.RMSNorm(d_ff, rngs=rngs)
        self.fc2 = nnx.Linear(d_ff, d_model, use_bias=False, kernel_init=_normal(out_std),
                              rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.fc2(jax.nn.gelu(self.norm(self.fc1(x))))


class CausalSelfAttention(nnx.Module):
    """Multi-head causal self-attention with a fused QKV projection, without biases."""

    def __init__(self, d_model: int, num_heads: int, out_std: float, *, rngs: nnx.Rngs):
        if d_model % num_heads:
            raise ValueError(f"CausalSelfAttention: d_model ({d_model}) must be a multiple of "
                             f"num_heads ({num_heads}).")
        self.num_heads = num_heads
        # Created in this order so that the random keys, and so every recorded result, stay as
        # they were; assigned in reading order.
        out = nnx.Linear(d_model, d_model, use_bias=False, kernel_init=_normal(out_std), rngs=rngs)
        self.qkv = nnx.Linear(d_model, 3 * d_model, use_bias=False,
                              kernel_init=_normal(_INIT_STD), rngs=rngs)
        self.out = out

    def __call__(self, x: jax.Array) -> jax.Array:
        batch, time, width = x.shape
        head = width // self.num_heads
        q, k, v = jnp.split(self.qkv(x), 3, axis=-1)
        shape = (batch, time, self.num_heads, head)
        y = jax.nn.dot_product_attention(q.reshape(shape), k.reshape(shape), v.reshape(shape),
                                         is_causal=True)
        return self.out(y.reshape(batch, time, width))


class Block(nnx.Module):
    """Pre-norm transformer block: ``x + attn(norm(x))``, then ``x + mlp(norm(x))``."""

    def __init__(self, d_model: int, num_heads: int, d_ff: int, num_layers: int, *,
                 rngs: nnx.Rngs):
        # GPT-2's scaled initialisation of the projections that write to the residual stream.
        out_std = _INIT_STD / (2.0 * num_layers) ** 0.5
        # Created in the order of the recorded results' random keys; assigned in reading order.
        attn_norm = nnx.RMSNorm(d_model, rngs=rngs)
        mlp_norm = nnx.RMSNorm(d_model, rngs=rngs)
        mlp = NormalisedMLP(d_model, d_ff, out_std, rngs=rngs)
        self.attn_norm = attn_norm
        self.attn = CausalSelfAttention(d_model, num_heads, out_std, rngs=rngs)
        self.mlp_norm = mlp_norm
        self.mlp = mlp

    def __call__(self, x: jax.Array) -> jax.Array:
        x = x + self.attn(self.attn_norm(x))
        return x + self.mlp(self.mlp_norm(x))


class Transformer(nnx.Module):
    """A small decoder-only transformer language model (learned positions, untied head).

    Args:
      vocab_size: number of token ids.
      max_len: longest sequence (size of the position table).
      d_model: residual width.
      num_layers: number of blocks.
      num_heads: attention heads (must divide ``d_model``).
      d_ff: hidden width of the normalised MLPs.
      rngs: ``nnx.Rngs`` for the initialisation.
    """

    def __init__(self, vocab_size: int, max_len: int, d_model: int, num_layers: int,
                 num_heads: int, d_ff: int, *, rngs: nnx.Rngs):
        self.embed = nnx.Embed(vocab_size, d_model, embedding_init=_normal(_INIT_STD),
                               rngs=rngs)
        self.pos = nnx.Embed(max_len, d_model, embedding_init=_normal(_INIT_STD), rngs=rngs)
        self.blocks = nnx.List([Block(d_model, num_heads, d_ff, num_layers, rngs=rngs)
                                for _ in range(num_layers)])
        self.final_norm = nnx.RMSNorm(d_model, rngs=rngs)
        self.head = nnx.Linear(d_model, vocab_size, use_bias=False,
                               kernel_init=_normal(_INIT_STD), rngs=rngs)

    def __call__(self, tokens: jax.Array) -> jax.Array:
        x = self.embed(tokens) + self.pos(jnp.arange(tokens.shape[-1]))
        for block in self.blocks:
            x = block(x)
        return self.head(self.final_norm(x))


class MLP(nnx.Module):
    """Next-token classifier on the last ``context`` tokens: embeddings → (Linear, LayerNorm,
    ReLU) × ``num_layers`` → logits.

    Position ``t`` sees tokens ``t - context + 1 .. t`` (zero embeddings before the start), so it
    is causal like the transformer and trains on the same batches.

    Args:
      vocab_size: number of token ids.
      context: number of past tokens seen.
      d_model: embedding width.
      num_layers: number of hidden layers (at least 1).
      d_ff: hidden width.
      rngs: ``nnx.Rngs`` for the initialisation.
    """

    def __init__(self, vocab_size: int, context: int, d_model: int, num_layers: int, d_ff: int,
                 *, rngs: nnx.Rngs):
        self.context = context
        self.embed = nnx.Embed(vocab_size, d_model, embedding_init=_normal(_INIT_STD),
                               rngs=rngs)
        layers = []
        width = context * d_model
        for _ in range(num_layers):
            layers.append(nnx.Linear(width, d_ff, use_bias=False, rngs=rngs))
            layers.append(nnx.LayerNorm(d_ff, rngs=rngs))
            width = d_ff
        self.hidden = nnx.List(layers)
        self.head = nnx.Linear(width, vocab_size, kernel_init=_normal(_INIT_STD), rngs=rngs)

    def __call__(self, tokens: jax.Array) -> jax.Array:
        e = self.embed(tokens)
        time = tokens.shape[-1]
        padded = jnp.pad(e, ((0, 0), (self.context - 1, 0), (0, 0)))
        # Column j holds the embedding of token t - j.
        x = jnp.concatenate([padded[:, self.context - 1 - j: self.context - 1 - j + time]
                             for j in range(self.context)], axis=-1)
        for i in range(0, len(self.hidden), 2):
            x = jax.nn.relu(self.hidden[i + 1](self.hidden[i](x)))
        return self.head(x)


def build_model(name: str, vocab_size: int, *, seq_len: int, d_model: int, num_layers: int,
                num_heads: int, d_ff: int, context: int, seed: int) -> nnx.Module:
    """The model of the trainer's flags, initialised from ``seed``.

    Args:
      name: ``'transformer'`` or ``'mlp'``.
      vocab_size: number of token ids.
      seq_len: training sequence length (the transformer's position table size).
      d_model: residual / embedding width.
      num_layers: transformer blocks or MLP hidden layers.
      num_heads: attention heads (transformer only).
      d_ff: hidden width of the MLPs.
      context: tokens seen by the MLP model.
      seed: initialisation seed.

    Returns:
      The ``nnx.Module``.
    """
    rngs = nnx.Rngs(params=jax.random.fold_in(jax.random.key(seed), 0))
    if name == "transformer":
        return Transformer(vocab_size, seq_len, d_model, num_layers, num_heads, d_ff, rngs=rngs)
    if name == "mlp":
        return MLP(vocab_size, context, d_model, num_layers, d_ff, rngs=rngs)
    raise ValueError(f"build_model: name must be one of {MODELS}, got {name!r}.")


def nap_pairs(model: nnx.Module) -> list[tuple[str, str]]:
    """``(kernel, norm)`` layer paths: each kernel feeds that normalisation layer, by construction.

    The model's own statement of which blocks NaP may project, for
    ``optaxsched.nap_mask(model, pairs=nap_pairs(model))``.
    """
    if isinstance(model, Transformer):
        return [(f"blocks/{i}/mlp/fc1", f"blocks/{i}/mlp/norm") for i in range(len(model.blocks))]
    if isinstance(model, MLP):
        return [(f"hidden/{i}", f"hidden/{i + 1}") for i in range(0, len(model.hidden), 2)]
    raise TypeError(f"nap_pairs: unknown model {type(model).__name__}.")


def scale_invariant_kernels(model: nnx.Module) -> list[str]:
    """Paths (``'a/b/kernel'``) of the kernels that feed a normalisation layer, from
    :func:`nap_pairs`."""
    return [f"{kernel}/kernel" for kernel, _ in nap_pairs(model)]


def generate(model: nnx.Module, prompt: list[int], length: int, *, key: jax.Array,
             temperature: float = 1.0) -> list[int]:
    """Samples ``length`` tokens after ``prompt`` from a model (a sliding window of its context).

    Args:
      model: a :class:`Transformer` (window: its position table) or :class:`MLP` (its context).
      prompt: token ids to continue (only the last window is used; empty: start from id 0).
      length: number of tokens to sample.
      key: PRNG key.
      temperature: softmax temperature (> 0).

    Returns:
      The prompt's ids followed by the sampled ids.
    """
    window = model.pos.num_embeddings if isinstance(model, Transformer) else model.context
    graphdef, state = nnx.split(model)
    prompt = list(prompt)[-window:] or [0]
    buffer = jnp.zeros((window,), jnp.int32).at[:len(prompt)].set(jnp.asarray(prompt))

    @jax.jit
    def step(state, buffer, filled, key):
        logits = nnx.merge(graphdef, state)(buffer[None])[0, filled - 1] / temperature
        token = jax.random.categorical(key, logits).astype(jnp.int32)
        shifted = jnp.roll(buffer, -1).at[-1].set(token)
        appended = buffer.at[jnp.minimum(filled, window - 1)].set(token)
        buffer = jnp.where(filled == window, shifted, appended)
        return buffer, jnp.minimum(filled + 1, window), token

    filled = jnp.asarray(len(prompt), jnp.int32)
    tokens = []
    for i in range(length):
        buffer, filled, token = step(state, buffer, filled, jax.random.fold_in(key, i))
        tokens.append(token)
    return list(prompt) + [int(t) for t in jax.device_get(tokens)]
