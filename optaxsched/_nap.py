"""Normalize-and-Project (NaP) and effective learning rates (Lyle et al., 2024).

A block of weights ``w`` feeding a normalisation layer is *scale-invariant*: the loss satisfies
``f(c·w) = f(w)`` for every ``c > 0``. Its gradient is then orthogonal to ``w`` and shrinks like
``1/‖w‖``, so an optimizer step of fixed learning rate ``η`` turns the direction ``w/‖w‖`` by an
amount that decays as the norm grows: the *effective learning rate* is ``η/‖w‖²`` for SGD-type
updates and ``η/‖w‖`` for Adam-type (gradient-scale-free) updates. Training grows parameter norms,
so every normalised network runs an implicit, uncontrolled learning-rate decay.

NaP makes that schedule explicit: after each update, the scale-invariant blocks are projected
back to the norm they had at initialisation, so the effective learning rate is set by the
optimizer's learning rate (and its schedule) alone.

* :func:`project_to_init_norm` is the projection, a transform placed last in a chain.
* :func:`nap` wraps an optimizer with it (``optax.chain(optimizer, projection)``).
* :func:`effective_learning_rate` computes ``η/‖w‖²`` or ``η/‖w‖`` per block, for logging.
* :func:`nap_mask` selects the scale-invariant blocks of a Flax model (kernels that feed a
  normalisation layer, found by a rule or named by (kernel, norm) pairs or an nnx filter; never
  the output layer; norm scale/offset on request, jointly).

Masks. Every function here selects leaves with a *mask*: a pytree with the structure of the
parameters (or a prefix of it), or a callable ``params -> mask``, as for ``optax.masked``. Its
leaves are

* ``False``: the leaf is left alone;
* ``True``: the leaf is one block, projected (or measured) on its own;
* a string label: all leaves carrying the same label form one block, projected jointly (their
  concatenation is rescaled to its initial norm). Use it where only the group is scale-invariant,
  e.g. a kernel together with the bias that feeds the same normalisation layer, or the (scale,
  offset) pair of a normalisation layer.

References:
  Lyle et al., `Normalization and effective learning rates in reinforcement learning
  <https://arxiv.org/abs/2407.01800>`_, NeurIPS 2024.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple, get_args

import jax
import jax.numpy as jnp
import numpy as np
import optax

from optaxsched import _checks, _numerics
from optaxsched._types import ElrKind, ScaleOffsetMode

__all__ = [
    "ELR_KINDS",
    "SCALE_OFFSET_MODES",
    "ProjectToInitNormState",
    "project_to_init_norm",
    "nap",
    "EffectiveLearningRate",
    "effective_learning_rate",
    "nap_mask",
]

ELR_KINDS: tuple[ElrKind, ...] = get_args(ElrKind)
"""Update types for :func:`effective_learning_rate`: ``'sgd'`` (η/‖w‖²) and ``'adam'`` (η/‖w‖)."""

SCALE_OFFSET_MODES: tuple[ScaleOffsetMode, ...] = get_args(ScaleOffsetMode)
"""How :func:`nap_mask` treats normalisation scale/offset: left to the optimizer, or projected
jointly per normalisation layer."""

Mask = Any  # pytree of bool / str labels, or a callable params -> such a pytree


# ------------------------------------------------------------------------------------------------
# Masks, blocks and norms (shared by the projection and the effective learning rate).
# ------------------------------------------------------------------------------------------------


def _leaf_labels(where: str, mask: Mask, params: Any) -> list[Any]:
    """One entry per leaf of ``params`` (in ``jax.tree.leaves`` order): ``None`` (not selected),
    ``("leaf", i)`` (a block on its own) or ``("label", name)`` (a joint block).

    The mask is resolved from static Python values only, so this runs at trace time.
    """
    num_leaves = len(jax.tree.leaves(params))
    if mask is None:
        return [("leaf", i) for i in range(num_leaves)]
    if num_leaves == 0:  # e.g. the placeholder optax.tree.map_params initialises with
        return []
    mask_tree = mask(params) if callable(mask) else mask
    mask_def = jax.tree.structure(mask_tree)
    try:
        subtrees = mask_def.flatten_up_to(params)  # type: ignore[attr-defined]
    except (ValueError, TypeError) as err:
        subtrees = _subtrees_under_masked_nodes(mask_tree, params)
        if subtrees is None:
            raise ValueError(
                f"{where}: mask must be a pytree with the structure of the parameters (or a "
                f"prefix of it), got a mask with structure {mask_def} that does not match the "
                f"parameters ({jax.tree.structure(params)}): {err}") from None
    labels: list[Any] = []
    for value, subtree in zip(jax.tree.leaves(mask_tree), subtrees, strict=True):
        if isinstance(value, (bool, np.bool_)):
            entry: bool | str = bool(value)
        elif isinstance(value, str) and value:
            entry = value
        else:
            _checks.fail(where, "mask", "a pytree whose leaves are booleans or non-empty string "
                         "labels", value)
        for _ in jax.tree.leaves(subtree):
            i = len(labels)
            labels.append(None if entry is False else ("leaf", i) if entry is True
                          else ("label", entry))
    if len(labels) != num_leaves:  # pragma: no cover - flatten_up_to guarantees it
        raise ValueError(f"{where}: mask does not cover every parameter.")
    return labels


def _subtrees_under_masked_nodes(mask_tree: Any, params: Any) -> list[Any] | None:
    """The parameter subtree under each leaf of a full-tree mask, where ``params`` has
    ``optax.MaskedNode()`` in place of whole subtrees (``optax.partition`` and ``optax.masked``
    hand a transform its group that way); ``None`` if the mask does not fit otherwise.

    A masked-out subtree has no leaves, so the mask leaves below it select nothing.
    """
    is_masked = lambda x: isinstance(x, optax.MaskedNode)
    flat_params = jax.tree_util.tree_flatten_with_path(params, is_leaf=is_masked)[0]
    masked_paths = {tuple(path) for path, leaf in flat_params if is_masked(leaf)}
    if not masked_paths:
        return None
    mask_paths = [tuple(path) for path, _ in jax.tree_util.tree_flatten_with_path(mask_tree)[0]]
    mask_index = {path: k for k, path in enumerate(mask_paths)}
    per_mask_leaf: list[list[Any]] = [[] for _ in mask_paths]
    for path, leaf in flat_params:
        path = tuple(path)
        if is_masked(leaf):
            continue
        owner = next((mask_index[path[:k]] for k in range(len(path), -1, -1)
                      if path[:k] in mask_index), None)
        if owner is None:
            return None
        per_mask_leaf[owner].append(leaf)
    param_paths = [tuple(path) for path, _ in flat_params]
    for path in mask_paths:  # every mask leaf lies over parameters or a masked-out subtree
        if not any(p[:len(path)] == path or path[:len(p)] == p for p in param_paths):
            return None
    return per_mask_leaf


def _blocks(labels: Sequence[Any]) -> list[list[int]]:
    """Leaf indices grouped into blocks, in order of first appearance."""
    order: dict[Any, list[int]] = {}
    for i, label in enumerate(labels):
        if label is not None:
            order.setdefault(label, []).append(i)
    return list(order.values())


def _check_axis(where: str, axis: Any) -> tuple[int, ...] | None:
    """``axis`` as a tuple of ints (the kept, per-unit axes), or ``None`` for per-leaf norms."""
    if axis is None:
        return None
    items = (axis,) if not isinstance(axis, (tuple, list)) else tuple(axis)
    if not items:
        _checks.fail(where, "axis", "None, an integer or a non-empty tuple of integers", axis)
    out = []
    for item in items:
        if not isinstance(item, (int, np.integer)) or isinstance(item, (bool, np.bool_)):
            _checks.fail(where, "axis", "None, an integer or a non-empty tuple of integers", axis)
        out.append(int(item))
    return tuple(out)


def _reduced_axes(where: str, shape: tuple[int, ...], axis: tuple[int, ...] | None,
                  path: Callable[[], str]) -> tuple[int, ...]:
    """The axes a leaf's norm sums over: all of them, or all but the kept ``axis``."""
    ndim = len(shape)
    if axis is None:
        return tuple(range(ndim))
    kept = []
    for a in axis:
        if not -ndim <= a < ndim:
            raise ValueError(
                f"{where}: axis must be valid for every selected leaf, got axis={axis!r} for "
                f"the leaf {path()} of shape {shape}.")
        kept.append(a % ndim)
    if len(set(kept)) != len(kept):
        _checks.fail(where, "axis", "a tuple of distinct axes", axis)
    return tuple(i for i in range(ndim) if i not in kept)


def _sq_norm(x: jax.Array, reduced: tuple[int, ...]) -> jax.Array:
    """Sum of squares over ``reduced`` (kept axes remain, squeezed), in float32 or wider."""
    x = jnp.asarray(x)
    x = x.astype(_numerics.compute_dtype(x.dtype))
    return jnp.sum(x * x, axis=reduced)


def _leaf_paths(params: Any) -> list[str]:
    return [jax.tree_util.keystr(path) for path, _ in
            jax.tree_util.tree_flatten_with_path(params)[0]]


class _Layout(NamedTuple):
    """Static description of the selected blocks of a parameter tree."""

    labels: list[Any]
    blocks: list[list[int]]
    reduced: list[tuple[int, ...] | None]  # per leaf; None for unselected leaves
    kept_shapes: list[tuple[int, ...]]  # per block: () for one norm, the units' shape with axis


def _has_masked_nodes(params: Any) -> bool:
    is_masked = lambda x: isinstance(x, optax.MaskedNode)
    return any(is_masked(x) for x in jax.tree.leaves(params, is_leaf=is_masked))


def _layout(where: str, mask: Mask, axis: tuple[int, ...] | None, params: Any) -> _Layout:
    labels = _leaf_labels(where, mask, params)
    blocks = _blocks(labels)
    # No block is an error only where it must be a mistake: a tree without leaves (the
    # placeholder optax.tree.map_params initialises with) and a group of optax.partition or
    # optax.masked whose selected leaves all lie in other groups have nothing to project.
    if not blocks and labels and not _has_masked_nodes(params):
        raise ValueError(
            f"{where}: mask must select at least one parameter leaf, got a mask that selects "
            f"none.")
    leaves = jax.tree.leaves(params)
    path = lambda i: _leaf_paths(params)[i]  # only needed for error messages
    reduced: list[tuple[int, ...] | None] = [None] * len(leaves)
    kept_shapes: list[tuple[int, ...]] = []
    for block in blocks:
        kept_shape: tuple[int, ...] | None = None
        for i in block:
            shape = tuple(np.shape(leaves[i]))
            reduced[i] = _reduced_axes(where, shape, axis, lambda i=i: path(i))  # type: ignore[misc]
            this_kept = tuple(s for d, s in enumerate(shape) if d not in reduced[i])  # type: ignore[operator]
            if kept_shape is None:
                kept_shape = this_kept
            elif this_kept != kept_shape:
                raise ValueError(
                    f"{where}: the leaves of a joint block must have the same number of units "
                    f"along axis={axis!r}, got shapes {kept_shape} and {this_kept} (leaf "
                    f"{path(i)}) in the block labelled {labels[i][1]!r}.")
        assert kept_shape is not None  # every block has at least one leaf
        kept_shapes.append(kept_shape)
    return _Layout(labels, blocks, reduced, kept_shapes)


def _selected(layout: _Layout, num_leaves: int) -> list[bool]:
    """Whether each leaf belongs to a block (the leaves whose dtype matters)."""
    selected = [False] * num_leaves
    for block in layout.blocks:
        for i in block:
            selected[i] = True
    return selected


def _block_scaled_squares(layout: _Layout, block_index: int, leaves: Sequence[jax.Array]
                          ) -> tuple[jax.Array, jax.Array]:
    """``(c, s)`` of :func:`_numerics.scaled_sum_squares` for one block (``leaves`` already in
    the norm dtype): the block's norm is ``sqrt(s)/c``, per unit with ``axis``."""
    block = layout.blocks[block_index]
    axes = [layout.reduced[i] for i in block]
    assert all(a is not None for a in axes)  # a selected leaf always has its reduced axes
    return _numerics.scaled_sum_squares([leaves[i] for i in block],
                                        [a for a in axes if a is not None])


def _block_norm(layout: _Layout, block_index: int, leaves: Sequence[jax.Array]) -> jax.Array:
    """A block's norm (per unit with ``axis``); for finite leaves a norm beyond the float range
    saturates at the largest float (non-finite leaves give ``inf``/``nan``)."""
    c, s = _block_scaled_squares(layout, block_index, leaves)
    top = jnp.finfo(s.dtype).max
    return jnp.where(jnp.isfinite(s), jnp.minimum(jnp.sqrt(s) / c, top), jnp.sqrt(s))


# ------------------------------------------------------------------------------------------------
# The projection.
# ------------------------------------------------------------------------------------------------


class ProjectToInitNormState(NamedTuple):
    """State of :func:`project_to_init_norm`.

    Attributes:
      count: int32 scalar, the number of updates seen so far (saturating).
      init_norm: float32 vector (float64 if a selected leaf is float64) of the target norms
        ``‖w₀‖`` recorded by ``init``: one entry per block (the root sum of squares of all its
        leaves' entries), or with ``axis`` one per unit of each block (raveled), blocks in the
        order of their first leaf in ``jax.tree.leaves(params)``. A flat vector, not a tree
        like the parameters, so that ``optax.tree.map_params`` does not take the norms for
        parameters (it maps them with ``transform_non_params``, as it does ``count``).
    """

    count: jax.Array  # type: ignore[assignment]  # optax's field name; shadows tuple.count
    init_norm: jax.Array


def _replicated(x: jax.Array) -> jax.Array:
    """``x`` replicated where its sharding is in its type (Explicit mesh axes): the per-unit
    norms of differently sharded leaves are concatenated into one vector, which needs one
    sharding; elsewhere (no mesh, Auto axes) ``x`` itself, and XLA chooses."""
    sharding = getattr(jax.typeof(x), "sharding", None)
    mesh = getattr(sharding, "mesh", None)
    if sharding is None or mesh is None or all(s is None for s in sharding.spec):
        return x
    if jax.sharding.AxisType.Explicit not in getattr(mesh, "axis_types", ()):
        return x
    return jax.sharding.reshard(x, jax.sharding.PartitionSpec())


def project_to_init_norm(mask: Mask = None, *, every: int = 1, axis: int | Sequence[int] | None
                         = None) -> optax.GradientTransformationExtraArgs:
    r"""Projects the selected parameters back to the norm they had at initialisation.

    The *project* half of NaP, placed **last** in a chain, after any optimizer. For each block the
    mask selects (a leaf, or the leaves sharing a label), with the norm :math:`\|w_0\|` that
    ``init`` records, the incoming update :math:`u` becomes :math:`u'` so that
    ``optax.apply_updates`` lands on the sphere of the initial norm, the paper's :math:`W_l
    \leftarrow W_l \|W_l^{(0)}\| / \|W_l\|` (per layer, Frobenius). Leaves the mask does not select
    pass through bit for bit. With ``axis`` the norm is per unit (over every axis but ``axis``), an
    exact reparameterisation only for per-channel normalisers (BatchNorm); keep the per-block
    default for LayerNorm/RMSNorm.

    .. math::

      u' = \Pi(w + u) - w, \qquad \Pi(v) = v \, \frac{\|w_0\|}{\|v\|}

    Policies (:ref:`design-nap`): a block whose initial or new norm is zero is not rescaled; a
    non-finite update makes its block ``nan`` (wrap the chain in ``optax.apply_if_finite``); finite
    inputs of any size give finite outputs and state; norms accumulate in float32 (float64 for
    float64 leaves). ``every=k`` projects after updates ``k, 2k, …`` only, as the paper's recipe
    allows; on CPU it costs more per step than ``every=1`` (``benchmarks/RESULTS.md``).

    Args:
      mask: which leaves to project: a pytree of booleans / string labels with the structure of
        the parameters (or a prefix of it), or a callable ``params -> mask`` (as in
        ``optax.masked``). ``None`` projects every leaf on its own, which is only right if every
        leaf is scale-invariant (:func:`nap_mask` builds the mask of a Flax model).
      every: project after every ``every``-th update (a positive integer).
      axis: ``None`` for one norm per block, or the kept axis (an integer or a tuple) for one norm
        per unit along it.

    Returns:
      An ``optax.GradientTransformationExtraArgs`` whose state is a
      :class:`ProjectToInitNormState`; ``update`` requires ``params``.

    Example:
      >>> import jax.numpy as jnp, optax, optaxsched as oxs
      >>> params = {"hidden": jnp.array([[3.0, 4.0]]), "out": jnp.array([1.0, 1.0])}
      >>> tx = optax.chain(optax.sgd(0.5),
      ...                  oxs.project_to_init_norm(mask={"hidden": True, "out": False}))
      >>> state = tx.init(params)
      >>> grads = {"hidden": jnp.array([[-6.0, 0.0]]), "out": jnp.array([1.0, 1.0])}
      >>> updates, state = tx.update(grads, state, params)
      >>> new = optax.apply_updates(params, updates)
      >>> print(jnp.linalg.norm(new["hidden"]), new["out"])
      5.0 [0.5 0.5]

    References:
      Lyle et al., `Normalization and effective learning rates in reinforcement learning
      <https://arxiv.org/abs/2407.01800>`_, NeurIPS 2024 (Section 4).
    """
    where = "project_to_init_norm"
    every = _checks.check_int(where, "every", every, minimum=1, maximum=_numerics.INT32_MAX)
    kept = _check_axis(where, axis)
    if mask is not None and not callable(mask):
        _leaf_values_are_valid(where, mask)

    def init_fn(params):
        layout = _layout(where, mask, kept, params)
        _checks.require_float_leaves(where, params,
                                     selected=_selected(layout, len(jax.tree.leaves(params))))
        leaves = [jnp.asarray(x) for x in jax.tree.leaves(params)]
        leaves = [x.astype(_numerics.compute_dtype(x.dtype)) for x in leaves]
        norms = [jnp.ravel(_block_norm(layout, b, leaves)) for b in range(len(layout.blocks))]
        if not norms:  # nothing selected (e.g. map_params' placeholder): an empty vector
            return ProjectToInitNormState(count=jnp.zeros((), jnp.int32),
                                          init_norm=jnp.zeros((0,), jnp.float32))
        dtype = functools.reduce(jnp.promote_types, [n.dtype for n in norms])
        return ProjectToInitNormState(
            count=jnp.zeros((), jnp.int32),
            init_norm=jnp.concatenate([_replicated(n.astype(dtype)) for n in norms]))

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        _checks.require_params(where, params, "the projection needs the current parameters")
        layout = _layout(where, mask, kept, params)
        u_leaves, treedef = jax.tree.flatten(updates)
        p_leaves = treedef.flatten_up_to(params)
        selected = sorted(i for block in layout.blocks for i in block)
        targets, offset = [], 0
        for shape in layout.kept_shapes:
            size = math.prod(shape)
            targets.append(state.init_norm[offset:offset + size].reshape(shape))
            offset += size
        if offset != state.init_norm.shape[0]:
            raise ValueError(
                f"{where}: the state holds {state.init_norm.shape[0]} target norms but the "
                f"parameters' blocks need {offset}: pass the state init made for these "
                f"parameters.")

        def project(u_sel, p_sel):
            # h = (w + u)/2 for the selected leaves, in float32 or wider: halving first keeps
            # it finite for any finite w and u, and exactly half of w + u otherwise. Written
            # w·½ - u·(-½): XLA's algebraic simplifier factors w·½ + u·½ back into (w + u)·½,
            # which overflows (tests/test_overflow.py catches it). With every == 1 the update
            # is consumed only here, so XLA fuses the optimizer's direction into this one
            # temporary per leaf.
            half = [p.astype(dtype[i]) * 0.5 - u.astype(dtype[i]) * -0.5
                    for i, p, u in zip(selected, p_sel, u_sel, strict=True)]
            by_leaf = {i: half[position[i]] for i in selected}
            out = [None] * len(selected)
            for b, block in enumerate(layout.blocks):
                # ‖h‖ = sqrt(s)/c; c = 1 unless Σh² overflowed (then rescaled, rarely).
                c, s = _block_scaled_squares(layout, b, by_leaf)
                target = targets[b].astype(s.dtype)
                rescale = (s > 0) & (target > 0)
                # proj(w + u) = ‖w₀‖·(c·h)/sqrt(s); not rescaled: 2h = w + u (exactly).
                factor = jnp.where(rescale, target / jnp.sqrt(jnp.where(rescale, s, 1.0)), 2.0)
                c = jnp.where(rescale, c, 1.0)
                # A non-finite block becomes all-nan (policy above) instead of being "projected";
                # s is finite for every finite w and u.
                factor = jnp.where(jnp.isfinite(s), factor, jnp.nan)
                for i in block:
                    k = position[i]
                    cs = jnp.expand_dims(c, layout.reduced[i]).astype(dtype[i])
                    fs = jnp.expand_dims(factor, layout.reduced[i]).astype(dtype[i])
                    # proj(w + u) - w, not u + (s - 1)·(w + u): the latter cancels
                    # catastrophically when the update is much larger than the weights.
                    out[k] = ((half[k] * cs) * fs - p_sel[k].astype(dtype[i])).astype(
                        u_sel[k].dtype)
            return out

        dtype = {i: _numerics.compute_dtype(u_leaves[i].dtype) for i in selected}
        position = {i: k for k, i in enumerate(selected)}
        u_sel = [jnp.asarray(u_leaves[i]) for i in selected]
        p_sel = [jnp.asarray(p_leaves[i]) for i in selected]
        if not selected:
            projected = []
        elif every == 1:
            projected = project(u_sel, p_sel)
        else:
            # Between projections the update passes through bit for bit; the cond skips the
            # projection's reductions and its temporaries on those steps.
            projecting = (state.count % every) == every - 1
            projected = jax.lax.cond(projecting, project, lambda u, p: list(u), u_sel, p_sel)
        out = list(u_leaves)
        for i, value in zip(selected, projected, strict=True):
            out[i] = value
        new_state = ProjectToInitNormState(count=optax.safe_increment(state.count),
                                           init_norm=state.init_norm)
        return jax.tree.unflatten(treedef, out), new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def _leaf_values_are_valid(where: str, mask: Any) -> None:
    """Checks a mask pytree's leaves at construction (its structure is checked at ``init``)."""
    for value in jax.tree.leaves(mask):
        if not (isinstance(value, (bool, np.bool_)) or (isinstance(value, str) and value)):
            _checks.fail(where, "mask", "a pytree whose leaves are booleans or non-empty string "
                         "labels (or a callable returning one)", value)


def nap(optimizer: optax.GradientTransformation, mask: Mask = None, *, every: int = 1,
        axis: int | Sequence[int] | None = None) -> optax.GradientTransformationExtraArgs:
    r"""Normalize-and-Project (NaP): ``optimizer`` followed by :func:`project_to_init_norm`.

    NaP has two halves. *Normalise*: the network has a normalisation layer (LayerNorm, RMSNorm)
    before each nonlinearity, which makes the weights feeding it scale-invariant (the model's
    business). *Project*: after each update, each scale-invariant block is rescaled to its initial
    norm, so its effective learning rate (:math:`\eta/\|w_0\|^2` for SGD, :math:`\eta/\|w_0\|` for
    Adam) follows the optimizer's own schedule instead of decaying as the norm grows. The paper
    pairs it with an explicit schedule (e.g. a warmup-cosine restarted at every task change).

    .. math::

      W_l \leftarrow W_l \, \frac{\|W_l^{(0)}\|}{\|W_l\|}

    Args:
      optimizer: any optax transformation producing the updates (e.g. ``optax.adam(...)``).
      mask: which leaves to project, as in :func:`project_to_init_norm` (use :func:`nap_mask`
        for a Flax model). ``None`` projects every leaf.
      every: project after every ``every``-th update (a positive integer).
      axis: ``None`` (per-block norms) or the kept per-unit axis, see
        :func:`project_to_init_norm`.

    Returns:
      ``optax.chain(optimizer, project_to_init_norm(mask, every=every, axis=axis))``; the
      projection's state is the chain's second entry. ``update`` requires ``params``.

    Example:
      >>> import jax, jax.numpy as jnp, optax, optaxsched as oxs
      >>> params = {"hidden": jnp.ones((4, 8)), "out": jnp.ones((8, 2))}
      >>> tx = oxs.nap(optax.adam(1e-2), mask={"hidden": True, "out": False})
      >>> state = tx.init(params)
      >>> grads = jax.tree.map(jnp.ones_like, params)
      >>> updates, state = tx.update(grads, state, params)
      >>> params = optax.apply_updates(params, updates)
      >>> print(round(float(jnp.linalg.norm(params["hidden"])), 4))
      5.6569

    References:
      Lyle et al., `Normalization and effective learning rates in reinforcement learning
      <https://arxiv.org/abs/2407.01800>`_, NeurIPS 2024.
    """
    where = "nap"
    if not (hasattr(optimizer, "init") and hasattr(optimizer, "update")):
        _checks.fail(where, "optimizer", "an optax GradientTransformation", optimizer)
    every = _checks.check_int(where, "every", every, minimum=1, maximum=_numerics.INT32_MAX)
    _check_axis(where, axis)
    if mask is not None and not callable(mask):
        _leaf_values_are_valid(where, mask)
    return optax.chain(optimizer, project_to_init_norm(mask, every=every, axis=axis))


# ------------------------------------------------------------------------------------------------
# Effective learning rates.
# ------------------------------------------------------------------------------------------------


class EffectiveLearningRate(NamedTuple):
    """Result of :func:`effective_learning_rate`.

    Attributes:
      per_leaf: a pytree with the structure of the parameters: each selected leaf holds the
        effective learning rate of its block (a scalar, or one value per unit with ``axis``);
        leaves of one joint block hold the same value; unselected leaves are
        ``optax.MaskedNode()``.
      mean, min, max: float32 scalars over the blocks (each block, or each unit, counted once).
    """

    per_leaf: Any
    mean: jax.Array
    min: jax.Array
    max: jax.Array


def effective_learning_rate(learning_rate: Any, params: Any, mask: Mask = None,
                            kind: ElrKind = "sgd", *, axis: int | Sequence[int] | None = None
                            ) -> EffectiveLearningRate:
    r"""Effective learning rate of each scale-invariant block: η/‖w‖² (SGD) or η/‖w‖ (Adam).

    For a block with :math:`f(cw) = f(w)` the gradient is orthogonal to :math:`w` and scales as
    :math:`1/\|w\|`, so a step of learning rate :math:`\eta` on :math:`w` moves the direction
    :math:`w/\|w\|` like a step of :math:`\eta_{\mathrm{eff}}` on the unit sphere. Adam-type updates
    have a magnitude set by :math:`\eta` alone, hence the second form. Without NaP the effective
    learning rate decays as the norms grow; with NaP it stays at :math:`\eta/\|w_0\|^2` (or
    :math:`\eta/\|w_0\|`) up to the schedule. A zero-norm block gets ``inf`` (``0`` when η = 0);
    norms cannot overflow, so finite parameters give a finite result wherever it is representable.

    .. math::

      \eta_{\mathrm{eff}} = \frac{\eta}{\|w\|^2} \ \text{(SGD)}, \qquad
      \eta_{\mathrm{eff}} = \frac{\eta}{\|w\|} \ \text{(Adam)}

    Args:
      learning_rate: the current learning rate η: a non-negative number, or a scalar array
        (e.g. ``schedule(count)`` or a value read from ``optax.inject_hyperparams`` state).
      params: the parameters (any pytree of arrays).
      mask: which leaves form blocks, as in :func:`project_to_init_norm` (booleans / string
        labels, or a callable). ``None`` treats every leaf as a block.
      kind: ``'sgd'`` (η/‖w‖²) or ``'adam'`` (η/‖w‖), see :data:`ELR_KINDS`.
      axis: ``None`` for one value per block, or the kept axis for one value per unit.

    Returns:
      An :class:`EffectiveLearningRate` with the per-leaf values and their mean, min and max
      over the blocks.

    Example:
      >>> import jax.numpy as jnp, optaxsched as oxs
      >>> params = {"a": jnp.full((2, 2), 0.5), "b": jnp.full((2, 2), 1.0), "out": jnp.ones(3)}
      >>> elr = oxs.effective_learning_rate(0.1, params, {"a": True, "b": True, "out": False})
      >>> print(elr.per_leaf["a"], elr.per_leaf["b"], elr.max)
      0.1 0.025 0.1

    References:
      Lyle et al., `Normalization and effective learning rates in reinforcement learning
      <https://arxiv.org/abs/2407.01800>`_, NeurIPS 2024 (Section 3).

      van Laarhoven, `L2 Regularization versus Batch and Weight Normalization
      <https://arxiv.org/abs/1706.05350>`_, 2017.
    """
    where = "effective_learning_rate"
    kind = _checks.check_choice(where, "kind", kind, ELR_KINDS)
    if isinstance(learning_rate, (int, float, np.integer, np.floating)) and not isinstance(
            learning_rate, bool):
        learning_rate = _checks.check_float(where, "learning_rate", learning_rate, minimum=0.0)
    elif hasattr(learning_rate, "shape") and hasattr(learning_rate, "dtype"):
        if tuple(learning_rate.shape) != () or not jnp.issubdtype(learning_rate.dtype,
                                                                  jnp.number):
            _checks.fail(where, "learning_rate", "a non-negative number or a scalar array",
                         learning_rate)
        # A concrete 0-d array is checked like a number (a traced one passes through).
        _checks.check_float(where, "learning_rate", learning_rate, minimum=0.0)
    else:
        _checks.fail(where, "learning_rate", "a non-negative number or a scalar array",
                     learning_rate)
    kept = _check_axis(where, axis)
    if mask is not None and not callable(mask):
        _leaf_values_are_valid(where, mask)
    layout = _layout(where, mask, kept, params)
    leaves, treedef = jax.tree.flatten(params)
    if not layout.blocks:  # no leaves at all: jnp.concatenate below failed on no blocks
        _checks.fail(where, "params", "a pytree with at least one array", params)
    _checks.require_float_leaves(where, params, selected=_selected(layout, len(leaves)))
    lr = jnp.asarray(learning_rate, jnp.float32)
    out: list[Any] = [optax.MaskedNode()] * len(leaves)
    values = []
    wide = [jnp.asarray(x).astype(_numerics.compute_dtype(jnp.asarray(x).dtype)) for x in leaves]
    for b, block in enumerate(layout.blocks):
        # η/‖w‖ and (η/‖w‖)/‖w‖ from an overflow-safe norm: Σw² overflows float32 long before
        # the result stops being representable. η = 0 gives 0 (not 0/0 for a zero block).
        norm = _block_norm(layout, b, wide).astype(jnp.float32)
        elr = lr / norm
        if kind == "sgd":
            elr = elr / norm
        elr = jnp.where(lr == 0, 0.0, elr)
        values.append(jnp.ravel(elr))
        for i in block:
            out[i] = elr
    flat = jnp.concatenate(values)
    return EffectiveLearningRate(per_leaf=jax.tree.unflatten(treedef, out),
                                 mean=jnp.mean(flat), min=jnp.min(flat), max=jnp.max(flat))


# ------------------------------------------------------------------------------------------------
# Flax: which kernels feed a normalisation layer.
# ------------------------------------------------------------------------------------------------

_NNX_PROJECTIONS = ("Linear", "LinearGeneral", "Conv", "ConvTranspose", "Einsum")
_NNX_NORMS = ("LayerNorm", "RMSNorm", "BatchNorm", "GroupNorm", "InstanceNorm")
_PAIRS_ALLOWED = ("a non-empty sequence of (kernel, norm) pairs, each a path ('a/b/c' or a tuple "
                  "of keys)")
_SELECT_ALLOWED = ("an nnx filter over the parameters (a Variable type, nnx.PathContains, "
                   "nnx.All / nnx.Any / nnx.Not of filters, or a callable (path, value) -> bool)")


def nap_mask(model_or_params: Any, *, pairs: Sequence[tuple[Any, Any]] | None = None,
             select: Any = None, scale_offset: ScaleOffsetMode = "exclude") -> Any:
    r"""The NaP mask of a Flax model: the kernels that feed a normalisation layer.

    A kernel whose output is normalised is scale-invariant, :math:`\mathrm{Norm}(cWx) =
    \mathrm{Norm}(Wx)` for :math:`c > 0`, so :func:`nap` may pin its norm; a layer's kernel and bias
    are scale-invariant only jointly and form one block. Say which kernels with ``pairs`` (checked:
    a projection layer and a normalisation layer of the kernel's output width) or ``select`` (an nnx
    filter, unchecked); both ignore attribute order. Without either, the automatic rule reads the
    module structure (no forward pass): within one parent module, a projection layer
    (``nnx.Linear``, ``LinearGeneral``, ``Conv``, ``ConvTranspose``, ``Einsum``) is selected when
    its next sibling in **definition order** (parameter-free modules skipped) is a normalisation
    layer (``nnx.LayerNorm``, ``RMSNorm``, ``BatchNorm``, ``GroupNorm``, ``InstanceNorm``) of
    matching width; a residual projection at the end of a submodule is never paired with its
    parent's next norm, and ``nnx.MultiHeadAttention`` is read by its known data flow (with
    ``normalize_qk``, query and key feed ``query_ln`` and ``key_ln``). The rule cannot follow a call
    order that differs from the definition order within one module: use ``pairs`` or ``select``
    there (:ref:`design-nap`).

    .. math::

      \mathrm{Norm}(c\,(Wx + b)) = \mathrm{Norm}(Wx + b) \quad \text{for all } c > 0

    Args:
      model_or_params: an ``nnx.Module``, or a linen/plain nested dict of parameters (the same rules
        on its nesting and insertion order: a sub-dict with a ``kernel`` of rank >= 2 is a
        projection, one with a ``scale`` and no kernel a norm; ``select`` sees ``(path, array)``).
        An ``nnx.State`` is refused: it is sorted by name.
      pairs: ``(kernel, norm)`` layer paths (``'a/b'`` or ``('a', 'b')``; a kernel path may end in
        ``'kernel'``), e.g. ``[("mlp/fc1", "mlp/norm")]``.
      select: an nnx filter over the parameters, applied as ``nnx.state(model, select)`` would,
        e.g. ``nnx.All(nnx.Param, nnx.PathContains("fc1"))``; the leaves it selects in one layer
        form one joint block. ``pairs`` and ``select`` combine (their union).
      scale_offset: ``'exclude'`` (default) leaves the norms' scale and offset (γ, β), which are not
        scale-invariant, to the optimizer; ``'joint'`` projects the (γ, β) of each norm of ``pairs``
        or of the automatic rule jointly (label ``'<norm>:scale_offset'``), an exact
        reparameterisation for ReLU-type activations when the next layer is normalised.

    Returns:
      For a module, an ``nnx.State`` of booleans / labels with the structure of
      ``nnx.state(model, nnx.Param)`` (``nnx.Optimizer`` accepts it); for a dict, a dict with the
      same nesting.

    Example:
      >>> import jax, optax, optaxsched as oxs
      >>> from flax import nnx
      >>> class MLP(nnx.Module):
      ...   def __init__(self, rngs):
      ...     self.hidden = nnx.Linear(4, 16, use_bias=False, rngs=rngs)
      ...     self.out = nnx.Linear(16, 3, rngs=rngs)
      ...     self.norm = nnx.LayerNorm(16, rngs=rngs)
      ...   def __call__(self, x):
      ...     return self.out(jax.nn.relu(self.norm(self.hidden(x))))
      >>> model = MLP(nnx.Rngs(0))
      >>> mask = oxs.nap_mask(model, pairs=[("hidden", "norm")])
      >>> print(mask["hidden"]["kernel"], mask["out"]["kernel"], mask["norm"]["scale"])
      True False False
      >>> same = oxs.nap_mask(model, select=nnx.PathContains("hidden"))
      >>> optimizer = nnx.Optimizer(model, oxs.nap(optax.adam(1e-3), mask), wrt=nnx.Param)

    References:
      Lyle et al., `Normalization and effective learning rates in reinforcement learning
      <https://arxiv.org/abs/2407.01800>`_, NeurIPS 2024 (Section 4 and its discussion of scale and
      offset parameters).
    """
    where = "nap_mask"
    scale_offset = _checks.check_choice(where, "scale_offset", scale_offset, SCALE_OFFSET_MODES)
    from flax import nnx  # flax is a runtime dependency; imported lazily to keep import cheap

    if isinstance(model_or_params, nnx.State):
        _checks.fail(where, "model_or_params", "an nnx.Module or a linen/plain parameter dict "
                     "(an nnx.State is sorted by name, which loses the layer order: pass the "
                     "module)", type(model_or_params).__name__)
    if isinstance(model_or_params, nnx.Module):
        structure = _nnx_structure(model_or_params, nnx)
        hint = "Definition order is the order in which __init__ assigns the layers."
    elif isinstance(model_or_params, Mapping):
        structure = _dict_structure(model_or_params)
        hint = "For a dict the order is the dict's insertion order."
    else:
        _checks.fail(where, "model_or_params", "an nnx.Module or a linen/plain parameter dict",
                     type(model_or_params).__name__)
    if scale_offset == "joint" and pairs is None and select is not None:
        _checks.fail(where, "scale_offset", "'exclude' when only select is given (the norms of "
                     "'joint' are those of pairs or of the automatic rule; a filter may select "
                     "a norm's scale and bias itself, which are then projected jointly)",
                     scale_offset)
    labels: dict[tuple, Any] = {}
    if select is not None:
        labels.update(_filter_labels(where, structure, select, nnx))
    if pairs is not None:
        chosen = _explicit_pairs(where, structure, pairs)
    elif select is None:
        chosen = structure.known_pairs + _adjacent_pairs(structure.sequence)
        if not chosen:
            raise ValueError(
                f"{where}: model_or_params must contain a projection layer followed by a "
                f"normalisation layer (definition order), found none. {hint} Name the kernels "
                f"with pairs=[(kernel, norm), ...] or select=<an nnx filter>.")
    else:
        chosen = []
    for proj, norm in chosen:  # a kernel with its bias is one joint block, labelled by the layer
        has_bias = "bias" in proj.fields
        labels[proj.path + ("kernel",)] = _path_name(proj.path) if has_bias else True
        if has_bias:
            labels[proj.path + ("bias",)] = _path_name(proj.path)
        if scale_offset == "joint":
            for field in norm.fields:
                labels[norm.path + (field,)] = _path_name(norm.path) + ":scale_offset"
    if isinstance(model_or_params, nnx.Module):
        pure = nnx.as_pure(nnx.state(model_or_params, nnx.Param))
        return nnx.from_flat_state([(path, labels.get(tuple(path), False))
                                    for path, _ in nnx.to_flat_state(pure)])

    def build(node, path):
        return {k: (build(v, path + (k,)) if isinstance(v, Mapping)
                    else labels.get(path + (k,), False)) for k, v in node.items()}

    return build(model_or_params, ())


class _Layer(NamedTuple):
    """A module (or parameter sub-dict) that owns parameters, or a normalisation layer."""

    path: tuple  # keys as in the parameter tree (integers for list entries)
    kind: str  # 'proj', 'norm' or 'other'
    width: int | None  # proj: the kernel's last dimension; norm: its num_features (or None)
    fields: tuple[str, ...]  # names of the parameters it owns directly


class _Structure(NamedTuple):
    """What the mask rules read from a model or a parameter dict."""

    sequence: list[_Layer]  # definition order, depth first; an attention layer is one 'other'
    layers: dict[tuple[str, ...], _Layer]  # every layer, by its path as strings
    known_pairs: list[tuple[_Layer, _Layer]]  # from layers whose data flow is known (attention)
    leaves: list[tuple[tuple, Any]]  # (path, value) of every parameter, for filters


def _path_name(path: tuple) -> str:
    return "/".join(str(k) for k in path)


def _adjacent_pairs(sequence: list[_Layer]) -> list[tuple[_Layer, _Layer]]:
    """(projection, norm) neighbours in definition order that are siblings of matching width."""
    pairs = []
    for layer, following in zip(sequence[:-1], sequence[1:], strict=True):
        # Siblings only: a projection at the end of a submodule (attention's output, an MLP's
        # second layer) feeds a residual stream, not the norm that the parent defines next.
        if (layer.kind == "proj" and following.kind == "norm"
                and layer.path[:-1] == following.path[:-1]
                and following.width in (None, layer.width)):
            pairs.append((layer, following))
    return pairs


def _path_key(where: str, path: Any, entry: Any) -> tuple[str, ...]:
    """A user's path (``'a/b/0'`` or ``('a', 'b', 0)``) as a tuple of strings."""
    if isinstance(path, str):
        keys = tuple(k for k in path.split("/") if k)
    elif isinstance(path, (tuple, list)) and all(
            isinstance(k, (str, int, np.integer)) and not isinstance(k, bool) for k in path):
        keys = tuple(str(k) for k in path)
    else:
        keys = ()
    if not keys:
        _checks.fail(where, "pairs", _PAIRS_ALLOWED, entry)
    return keys


def _listing(layers: list[_Layer]) -> str:
    names = [repr(_path_name(layer.path)) for layer in layers]
    return ", ".join(names[:8]) + (f", ... ({len(names)} in all)" if len(names) > 8 else "")


def _explicit_pairs(where: str, structure: _Structure, pairs: Any
                    ) -> list[tuple[_Layer, _Layer]]:
    if isinstance(pairs, (str, bytes)) or not isinstance(pairs, Sequence) or not pairs:
        _checks.fail(where, "pairs", _PAIRS_ALLOWED, pairs)
    layers = structure.layers
    projections = [layer for layer in layers.values() if layer.kind == "proj"]
    norms = [layer for layer in layers.values() if layer.kind == "norm"]
    chosen: list[tuple[_Layer, _Layer]] = []
    for entry in pairs:
        if isinstance(entry, (str, bytes)) or not isinstance(entry, Sequence) or len(entry) != 2:
            _checks.fail(where, "pairs", _PAIRS_ALLOWED, entry)
        kernel_key, norm_key = _path_key(where, entry[0], entry), _path_key(where, entry[1], entry)
        if kernel_key not in layers and kernel_key[-1] == "kernel":
            kernel_key = kernel_key[:-1]
        proj, norm = layers.get(kernel_key), layers.get(norm_key)
        if proj is None or proj.kind != "proj":
            _checks.fail(where, "pairs", "(kernel, norm) pairs whose kernel is the path of a "
                         f"projection layer (here: {_listing(projections) or 'none'})", entry)
        if norm is None or norm.kind != "norm":
            _checks.fail(where, "pairs", "(kernel, norm) pairs whose norm is the path of a "
                         f"normalisation layer (here: {_listing(norms) or 'none'})", entry)
        if norm.width is not None and norm.width != proj.width:
            _checks.fail(where, "pairs", "(kernel, norm) pairs whose norm has the kernel's "
                         f"output width ({_path_name(proj.path)!r} has {proj.width} outputs, "
                         f"{_path_name(norm.path)!r} normalises {norm.width})", entry)
        if any(proj is p for p, _ in chosen):
            _checks.fail(where, "pairs", "(kernel, norm) pairs that name each kernel once", entry)
        chosen.append((proj, norm))
    return chosen


def _filter_labels(where: str, structure: _Structure, select: Any, nnx: Any) -> dict[tuple, Any]:
    """The leaves ``select`` chooses: each a block, or one joint block per layer (its path)."""
    try:
        predicate = nnx.filterlib.to_predicate(select)
    except (TypeError, ValueError):  # flax raises either for a value that is not a filter
        _checks.fail(where, "select", _SELECT_ALLOWED, select)
    chosen = []
    for path, value in structure.leaves:
        try:
            hit = predicate(path, value)
        except Exception as err:  # a user's predicate: report it against the argument
            raise ValueError(
                f"{where}: select must be {_SELECT_ALLOWED}, got {select!r}, which raised "
                f"{type(err).__name__}: {err} on the parameter {_path_name(path)!r}.") from None
        if hit:
            chosen.append(tuple(path))
    if not chosen:
        why = ("it selects no parameter (filters see each parameter as (path, value), "
               "as in nnx.state; a module type matches none: use nnx.PathContains or a "
               "path predicate)")
        _checks.fail(where, "select", f"{_SELECT_ALLOWED} that selects parameters; {why}",
                     select)
    by_layer: dict[tuple, list[tuple]] = {}
    for path in chosen:
        by_layer.setdefault(path[:-1], []).append(path)
    labels: dict[tuple, Any] = {}
    for layer_path, paths in by_layer.items():
        joint = len(paths) > 1 and layer_path
        for path in paths:
            labels[path] = _path_name(layer_path) if joint else True
    return labels


def _nnx_structure(model: Any, nnx: Any) -> _Structure:
    projections = tuple(getattr(nnx, n) for n in _NNX_PROJECTIONS if hasattr(nnx, n))
    norms = tuple(getattr(nnx, n) for n in _NNX_NORMS if hasattr(nnx, n))
    attention = getattr(nnx, "MultiHeadAttention", ())
    paths = {}
    for path, node in nnx.iter_graph(model):
        if isinstance(node, nnx.Module) and id(node) not in paths:
            paths[id(node)] = tuple(path)

    def own_params(module):
        return {k: v for k, v in vars(module).items()
                if not k.startswith("_pytree__") and isinstance(v, nnx.Param)}

    sequence: list[_Layer] = []
    by_id: dict[int, _Layer] = {}
    known_pairs: list[tuple[_Layer, _Layer]] = []

    def visit(obj, out):
        if isinstance(obj, nnx.Module):
            if id(obj) in by_id or id(obj) not in paths:
                return
            params = own_params(obj)
            path = paths[id(obj)]
            if isinstance(obj, norms):
                layer = _Layer(path, "norm", getattr(obj, "num_features", None), tuple(params))
            elif isinstance(obj, projections) and "kernel" in params:
                kernel = params["kernel"]
                value = kernel.get_value() if hasattr(kernel, "get_value") else kernel.value
                layer = _Layer(path, "proj", int(np.shape(value)[-1]), tuple(params))
            else:
                layer = _Layer(path, "other", None, tuple(params))
            by_id[id(obj)] = layer
            if layer.kind != "other" or params:
                out.append(layer)
            if attention and isinstance(obj, attention):
                # Known data flow: with normalize_qk the query and key projections feed
                # query_ln / key_ln; value and out feed no norm. Definition order (query, key,
                # value, query_ln, key_ln, out) would pair value with query_ln instead.
                inside: list[_Layer] = []
                for child in _children(obj, nnx):
                    visit(child, inside)
                out.append(_Layer(path, "other", None, ()))
                for proj_name, norm_name in (("query", "query_ln"), ("key", "key_ln")):
                    proj = by_id.get(id(getattr(obj, proj_name, None)))
                    norm = by_id.get(id(getattr(obj, norm_name, None)))
                    if proj is not None and norm is not None and proj.kind == "proj" \
                            and norm.kind == "norm":
                        known_pairs.append((proj, norm))
                return
        for child in _children(obj, nnx):
            visit(child, out)

    visit(model, sequence)
    layers = {tuple(str(k) for k in layer.path): layer for layer in by_id.values()}
    leaves = [(tuple(path), value) for path, value in
              nnx.to_flat_state(nnx.state(model, nnx.Param))]
    return _Structure(sequence, layers, known_pairs, leaves)


def _children(obj: Any, nnx: Any) -> list[Any]:
    """The attributes / entries of a module or container, in definition order."""
    if isinstance(obj, nnx.Module) or (hasattr(nnx, "Pytree") and isinstance(obj, nnx.Pytree)):
        return [v for k, v in vars(obj).items() if not k.startswith("_pytree__")]
    if isinstance(obj, (list, tuple)):
        return list(obj)
    if isinstance(obj, Mapping):
        return list(obj.values())
    return []


def _dict_structure(params: Mapping) -> _Structure:
    sequence: list[_Layer] = []
    layers: dict[tuple[str, ...], _Layer] = {}
    known_pairs: list[tuple[_Layer, _Layer]] = []

    def is_array(x):
        return hasattr(x, "shape") and hasattr(x, "dtype")

    def visit(node, path, out):
        arrays = {k: v for k, v in node.items() if is_array(v)}
        if arrays:
            kernel, scale = arrays.get("kernel"), arrays.get("scale")
            if kernel is not None and np.ndim(kernel) >= 2:
                layer = _Layer(path, "proj", int(np.shape(kernel)[-1]), tuple(arrays))
            elif scale is not None and kernel is None:
                width = int(np.shape(scale)[-1]) if np.ndim(scale) else None
                layer = _Layer(path, "norm", width, tuple(arrays))
            else:
                layer = _Layer(path, "other", None, tuple(arrays))
            layers[tuple(str(k) for k in path)] = layer
            out.append(layer)
        children = {k: v for k, v in node.items() if isinstance(v, Mapping)}
        if all(isinstance(children.get(k), Mapping) for k in ("query", "key", "value")):
            # An attention layer (linen's MultiHeadDotProductAttention): see _nnx_structure.
            for k, v in children.items():
                visit(v, path + (k,), [])
            out.append(_Layer(path, "other", None, ()))
            for proj_name, norm_name in (("query", "query_ln"), ("key", "key_ln")):
                proj = layers.get(tuple(str(k) for k in path + (proj_name,)))
                norm = layers.get(tuple(str(k) for k in path + (norm_name,)))
                if proj is not None and norm is not None and proj.kind == "proj" \
                        and norm.kind == "norm":
                    known_pairs.append((proj, norm))
            return
        for k, v in children.items():
            visit(v, path + (k,), out)

    visit(params, (), sequence)
    leaves = [(tuple(getattr(k, "key", k) for k in path), value) for path, value in
              jax.tree_util.tree_flatten_with_path(params)[0]]
    return _Structure(sequence, layers, known_pairs, leaves)
