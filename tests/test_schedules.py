"""The schedule family against independent float64 references, plus the optax contract.

Every schedule is evaluated once per hypothesis example on a NumPy array of counts (one eager
call) and compared with ``tests/reference/schedules_np.py``; the same values then go through the
property checks (finite, bounds, monotone pieces, continuity at phase boundaries, terminal
value). jit, vmap, grad, dtypes and huge counts are checked on a few fixed configurations.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import optaxsched as oxs
from optaxsched import _shapes
from tests.reference import schedules_np as ref

COUNTS = np.arange(0, 2048, dtype=np.int32)  # every hypothesis config ends before 1800
FAR = np.asarray([2048, 3000, 10**5, 10**7, 2**31 - 1], dtype=np.int64)
SHAPES = ("1-sqrt", "linear", "cosine", "square", "exponential", "harmonic")
POSITIVE_END_SHAPES = ("exponential", "harmonic")


# ---------------------------------------------------------------------------------------------
# Checks shared by the property tests


def evaluate(schedule, counts=COUNTS) -> np.ndarray:
    values = schedule(counts)
    assert values.dtype == jnp.float32 and values.shape == np.shape(counts)
    values = np.asarray(values, dtype=np.float64)
    assert np.all(np.isfinite(values)), "non-finite value"
    return values


def assert_matches(got, want, scale):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6 * scale)


def assert_bounds(values, low, high):
    tol = 1e-6 * max(abs(high), 1e-30)
    assert values.min() >= low - tol, (values.min(), low)
    assert values.max() <= high + tol, (values.max(), high)


def assert_non_increasing(values, scale, tol=1e-6):
    steps = np.diff(values)
    assert np.all(steps <= tol * scale), f"rises by {steps.max()!r} at index {steps.argmax()}"


def assert_non_decreasing(values, scale, tol=1e-6):
    assert_non_increasing(-np.asarray(values), scale, tol)


def assert_continuous(schedule, boundaries, values, scale, eps=1e-3):
    """At each phase boundary b (where the piece defining the value changes), f(b) equals the
    left piece's value linearly extrapolated from two counts just below b, within ``eps`` times
    the largest single-step change of ``values`` (plus float32 noise): a jump of more than 0.1%
    of the largest step fails. One call on 48 counts."""
    points = [float(b) for b in boundaries if b >= 1]
    if not points:
        return
    b = np.asarray((points * 16)[:16], dtype=np.float32)
    left1, left2 = (b - np.float32(eps)), (b - np.float32(2 * eps))  # exact float32 offsets
    f = np.asarray(schedule(np.concatenate([b, left1, left2])), dtype=np.float64).reshape(3, 16)
    d1 = b.astype(np.float64) - left1
    d2 = b.astype(np.float64) - left2
    predicted = f[1] + (f[1] - f[2]) * d1 / (d2 - d1)
    jumps = np.abs(f[0] - predicted)
    limit = eps * np.abs(np.diff(values)).max() + 1e-5 * scale
    worst = jumps.argmax()
    assert jumps[worst] <= limit, f"jump {jumps[worst]!r} at count {b[worst]} > {limit!r}"


def assert_terminal(schedule, value):
    """Past the horizon: exactly the documented terminal value, for every count dtype."""
    far = schedule(FAR)
    np.testing.assert_array_equal(np.asarray(far), np.float32(value))
    for count in (np.int32(2**31 - 1), np.int64(2**31 - 1), 2**31 - 1, float(2**31 - 1),
                  2**40, np.int64(2**40)):
        assert np.float32(schedule(count)) == np.float32(value)


# ---------------------------------------------------------------------------------------------
# Configurations


def _warmup_part(draw, peak, room):
    warmup = draw(st.integers(0, room))
    init = peak * draw(st.sampled_from([0.0, 0.01, 0.5, 1.0]))
    return warmup, init


@st.composite
def budgeted_configs(draw):
    peak = draw(st.floats(1e-4, 10.0))
    total = draw(st.integers(1, 1800))
    warmup, init = _warmup_part(draw, peak, total - 1)
    end = peak * draw(st.sampled_from([0.0, 0.001, 0.1, 0.5, 1.0]))
    return dict(peak_value=peak, total_steps=total, warmup_steps=warmup, end_value=end,
                init_value=init)


@st.composite
def wsd_configs(draw, shapes=SHAPES):
    shape = draw(st.sampled_from(shapes))
    peak = draw(st.floats(1e-4, 10.0))
    total = draw(st.integers(1, 1800))
    config = dict(peak_value=peak, total_steps=total, decay_shape=shape)
    how = draw(st.sampled_from(["default", "fraction", "steps"]))
    if how == "fraction":
        config["decay_fraction"] = draw(st.floats(1e-4, 1.0))
    elif how == "steps":
        config["cooldown_steps"] = draw(st.integers(1, total))
    steps = ref.wsd_cooldown_steps(total, config.get("decay_fraction"),
                                   config.get("cooldown_steps"))
    config["warmup_steps"], config["init_value"] = _warmup_part(draw, peak, total - steps)
    low = 1e-3 if shape in POSITIVE_END_SHAPES else 0.0
    config["end_value"] = peak * draw(st.sampled_from([low, 0.01, 0.1, 0.5, 1.0]))
    return config


@st.composite
def wsd_s_configs(draw):
    peak = draw(st.floats(1e-4, 10.0))
    gaps = draw(st.lists(st.integers(1, 500), min_size=1, max_size=4))
    points = list(np.cumsum(gaps))
    config = dict(peak_value=peak, decay_points=points, decay_shape=draw(st.sampled_from(SHAPES)))
    if draw(st.booleans()):
        config["cooldown_steps"] = draw(st.integers(1, min(gaps)))
    else:
        config["decay_fraction"] = draw(st.floats(1e-4, 1.0))
    windows = ref.wsd_s_windows(points, config.get("cooldown_steps"), config.get("decay_fraction"))
    config["warmup_steps"], config["init_value"] = _warmup_part(draw, peak, windows[0][0])
    low = 1e-3 if config["decay_shape"] in POSITIVE_END_SHAPES else 0.0
    config["end_value"] = peak * draw(st.sampled_from([low, 0.1, 0.5]))
    return config


@st.composite
def power_configs(draw):
    """Drawn so that the curve meets the cap inside the evaluated counts."""
    batch = draw(st.sampled_from([1.0, 32.0, 1024.0]))
    per_step = draw(st.sampled_from([512.0, 4096.0, 4.0 * 2**20]))
    a = draw(st.floats(0.5, 8.0))
    b = draw(st.floats(-1.0, -0.2))
    cap_step = draw(st.floats(1.0, 1500.0))
    top = batch * a * (cap_step * per_step) ** b
    config = dict(peak_value=top, batch_size=batch, tokens_per_step=per_step, a=a, b=b)
    warm_steps = draw(st.integers(0, 600))
    config["warmup_tokens"] = warm_steps * per_step
    if draw(st.booleans()):
        total_steps = draw(st.integers(warm_steps + 1, 1800))
        cooldown_steps = draw(st.integers(1, total_steps - warm_steps))
        start_value = ref.power(total_steps - cooldown_steps, **config)
        config.update(total_tokens=total_steps * per_step, decay_tokens=cooldown_steps * per_step,
                      end_value=start_value * draw(st.sampled_from([0.0, 0.1, 1.0])))
    return config


@st.composite
def infinite_configs(draw):
    peak = draw(st.floats(1e-4, 10.0))
    config = dict(peak_value=peak, constant_value=peak * draw(st.sampled_from([0.05, 0.125, 1.0])),
                  warmup_steps=draw(st.integers(0, 300)), cooldown_steps=draw(st.integers(1, 600)),
                  cooldown_shape=draw(st.sampled_from(["cosine", "inverse_sqrt", "linear"])),
                  cooldown_timescale=draw(st.floats(0.5, 50.0)),
                  init_value=peak * draw(st.sampled_from([0.0, 0.1])))
    if draw(st.booleans()):
        config["anneal_start"] = config["warmup_steps"] + config["cooldown_steps"] + draw(
            st.integers(0, 300))
        config["anneal_steps"] = draw(st.integers(1, 500))
        config["end_value"] = config["constant_value"] * draw(st.sampled_from([1e-3, 0.1, 1.0]))
        config["anneal_shape"] = draw(st.sampled_from(["exponential", "exponential", "cosine"]))
    return config


@st.composite
def inverse_sqrt_configs(draw):
    peak = draw(st.floats(1e-4, 10.0))
    config = dict(peak_value=peak, warmup_steps=draw(st.integers(0, 1000)),
                  init_value=peak * draw(st.sampled_from([0.0, 0.1])))
    if draw(st.booleans()):
        config["timescale"] = draw(st.floats(1.0, 20_000.0))
    return config


# ---------------------------------------------------------------------------------------------
# Reference comparison + properties, one eager evaluation per example


@pytest.mark.parametrize("name", ["linear_decay", "rex"])
@given(config=budgeted_configs())
def test_budgeted_schedules_match_reference_and_properties(name, config):
    schedule = getattr(oxs, name)(**config)
    values = evaluate(schedule)
    peak, total, warm = config["peak_value"], config["total_steps"], config["warmup_steps"]
    end, init = config["end_value"], config["init_value"]
    assert_matches(values, ref.evaluate(getattr(ref, name), COUNTS, **config), peak)
    assert values[0] == pytest.approx(init if warm else peak, rel=1e-6)
    assert_bounds(values, min(init, end), peak)
    assert_non_decreasing(values[: warm + 1], peak)
    assert_non_increasing(values[warm:], peak)
    assert_continuous(schedule, [warm, total], values, peak)
    assert values[total] == np.float32(end)
    assert_terminal(schedule, end)


@given(config=budgeted_configs(), phi=st.floats(0.05, 20.0))
def test_uba_matches_reference_and_properties(config, phi):
    schedule = oxs.uba(phi=phi, **config)
    values = evaluate(schedule)
    peak, total, warm = config["peak_value"], config["total_steps"], config["warmup_steps"]
    end, init = config["end_value"], config["init_value"]
    assert_matches(values, ref.evaluate(ref.uba, COUNTS, phi=phi, **config), peak)
    assert_bounds(values, min(init, end), peak)
    assert_non_increasing(values[warm:], peak)
    assert_continuous(schedule, [warm, total], values, peak)
    assert_terminal(schedule, end)


@given(config=budgeted_configs())
def test_uba_with_phi_two_is_cosine_decay(config):
    values = evaluate(oxs.uba(phi=2.0, **config))
    assert_matches(values, ref.evaluate(ref.cosine_decay, COUNTS, **config), config["peak_value"])


@given(config=wsd_configs())
def test_wsd_matches_reference_and_properties(config):
    schedule = oxs.wsd(**config)
    values = evaluate(schedule)
    peak, total, warm = config["peak_value"], config["total_steps"], config["warmup_steps"]
    end, init = config["end_value"], config["init_value"]
    steps = ref.wsd_cooldown_steps(total, config.get("decay_fraction"),
                                   config.get("cooldown_steps"))
    assert_matches(values, ref.evaluate(ref.wsd, COUNTS, **config), peak)
    assert_bounds(values, min(init, end), peak)
    assert_non_decreasing(values[: warm + 1], peak)
    assert_non_increasing(values[warm:], peak)
    np.testing.assert_array_equal(values[warm: total - steps], np.float32(peak))
    assert_continuous(schedule, [warm, total - steps, total], values, peak)
    assert values[total] == np.float32(end)
    assert_terminal(schedule, end)


def wsd_floor_problems(values, total, end):
    """What is wrong with a WSD curve that should decay monotonically onto a floor."""
    problems = []
    if np.any(np.diff(values) > 0):
        problems.append(f"rises after warmup (by {np.diff(values).max():g})")
    if values[total] != np.float32(end):
        problems.append(f"ends at {values[total]!r}, not {end!r}")
    if values.min() < np.float32(end):
        problems.append(f"undershoots the floor ({values.min()!r} < {end!r})")
    return problems


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("end_value", [0.1, 0.37, 0.9])
def test_every_wsd_shape_decays_monotonically_onto_a_positive_floor(shape, end_value):
    """The pytorch-optimizer get_wsd_schedule defect: non-cosine shapes decay towards 0 and jump
    to the floor at the end. Every shape here must be non-increasing and end exactly on it."""
    total = 1000
    values = evaluate(oxs.wsd(1.0, total, cooldown_steps=300, decay_shape=shape,
                              end_value=end_value), np.arange(0, total + 50))
    assert wsd_floor_problems(values, total, end_value) == []
    assert values[total - 1] > end_value  # still decaying one step before the end


def test_floor_check_catches_decay_to_zero_then_jump_to_floor():
    """The check above fails on the pytorch-optimizer behaviour (so it can fail at all)."""
    total, steps, floor = 1000, 300, 0.37
    count = np.arange(0, total + 50)
    x = np.clip((count - (total - steps)) / steps, 0.0, 1.0)
    buggy = np.where(count >= total, floor, 1.0 - np.sqrt(x))  # decays to 0, floor at the end
    assert wsd_floor_problems(buggy.astype(np.float32), total, floor)
    clamped = np.maximum(floor, 1.0 - np.sqrt(x))  # clamping instead: flat tail, reaches floor
    assert not np.array_equal(clamped, ref.evaluate(ref.wsd, count, peak_value=1.0,
                                                    total_steps=total, cooldown_steps=steps,
                                                    end_value=floor))


def test_continuity_check_catches_a_jump():
    def jumpy(count):
        count = jnp.asarray(count, jnp.float32)
        return jnp.where(count >= 50, 0.5, 1.0 - count / 1000)

    counts = np.arange(200)
    values = np.asarray(jumpy(counts), dtype=np.float64)
    assert_continuous(jumpy, [20], values, 1.0)  # no jump there
    with pytest.raises(AssertionError, match="jump"):
        assert_continuous(jumpy, [50], values, 1.0)


@given(config=wsd_s_configs())
def test_wsd_s_matches_reference_and_properties(config):
    schedule = oxs.wsd_s(**config)
    values = evaluate(schedule)
    peak, warm = config["peak_value"], config["warmup_steps"]
    end, init = config["end_value"], config["init_value"]
    assert_matches(values, ref.evaluate(ref.wsd_s, COUNTS, **config), peak)
    assert_bounds(values, min(init, end), peak)
    assert_non_decreasing(values[: warm + 1], peak)
    windows = ref.wsd_s_windows(config["decay_points"], config.get("cooldown_steps"),
                                config.get("decay_fraction"))
    checkpoints = oxs.wsd_s_checkpoints(
        config["decay_points"], cooldown_steps=config.get("cooldown_steps"),
        decay_fraction=config.get("decay_fraction"), warmup_steps=warm)
    assert schedule.checkpoints == checkpoints
    assert [tuple(c) for c in checkpoints] == windows
    previous = warm
    for i, (start, point) in enumerate(windows):
        piece = values[previous:point]  # stable trunk then the decay window: non-increasing
        assert_non_increasing(piece, peak)
        assert values[start] == pytest.approx(peak, rel=1e-6)
        if end < peak and point - start > 1:
            assert values[point - 1] < peak  # the last decayed update
        if i < len(windows) - 1:
            assert values[point] == np.float32(peak)  # straight back to the peak, no re-warmup
        previous = point
    assert values[windows[-1][1]] == np.float32(end)
    points = {point for _, point in windows}  # the documented jumps back to the peak
    starts = [start for start, _ in windows if start not in points]
    assert_continuous(schedule, [warm, *starts, windows[-1][1]], values, peak)
    assert_terminal(schedule, end)


@given(config=power_configs())
def test_power_matches_reference_and_properties(config):
    schedule = oxs.power(**config)
    values = evaluate(schedule)
    top, per_step = config["peak_value"], config["tokens_per_step"]
    assert_matches(values, ref.evaluate(ref.power, COUNTS, **config), top)
    assert_bounds(values, 0.0, top)
    warm = int(round(config["warmup_tokens"] / per_step))
    assert values[0] == (0.0 if warm else np.float32(top))  # 0 tokens: 0 in warmup, else the cap
    assert_non_decreasing(values[: warm + 1], top)
    assert_non_increasing(values[warm:], top)
    boundaries = [warm]
    if config.get("decay_tokens"):
        total = int(round(config["total_tokens"] / per_step))
        boundaries += [total - int(round(config["decay_tokens"] / per_step)), total]
        assert values[total] == np.float32(config["end_value"])
        assert_terminal(schedule, config["end_value"])
    assert_continuous(schedule, boundaries, values, top)


@given(config=power_configs(), factor=st.sampled_from([2, 4, 8]))
def test_power_depends_on_tokens_not_steps(config, factor):
    """Same tokens seen, same learning rate: a batch `factor` times larger in tokens per step
    at count c equals the original at count factor * c."""
    big = dict(config, tokens_per_step=config["tokens_per_step"] * factor)
    counts = np.arange(0, 2048 // factor, dtype=np.int32)
    np.testing.assert_allclose(evaluate(oxs.power(**big), counts),
                               evaluate(oxs.power(**config), counts * factor),
                               rtol=2e-5, atol=1e-7 * config["peak_value"])


@given(config=infinite_configs())
def test_infinite_matches_reference_and_properties(config):
    schedule = oxs.infinite(**config)
    values = evaluate(schedule)
    peak, plateau = config["peak_value"], config["constant_value"]
    warm, cool = config["warmup_steps"], config["cooldown_steps"]
    assert_matches(values, ref.evaluate(ref.infinite, COUNTS, **config), peak)
    terminal = config.get("end_value", plateau)
    assert_bounds(values, min(config["init_value"], terminal), peak)
    assert_non_decreasing(values[: warm + 1], peak)
    assert_non_increasing(values[warm:], peak)
    boundaries = [warm, warm + cool]
    if "anneal_start" in config:
        start, steps = config["anneal_start"], config["anneal_steps"]
        np.testing.assert_array_equal(values[warm + cool: start], np.float32(plateau))
        boundaries += [start, start + steps]
    else:
        np.testing.assert_array_equal(values[warm + cool:], np.float32(plateau))
    assert_continuous(schedule, boundaries, values, peak)
    assert_terminal(schedule, terminal)


@given(config=inverse_sqrt_configs())
def test_inverse_sqrt_matches_reference_and_properties(config):
    schedule = oxs.inverse_sqrt(**config)
    values = evaluate(schedule)
    peak, warm = config["peak_value"], config["warmup_steps"]
    assert_matches(values, ref.evaluate(ref.inverse_sqrt, COUNTS, **config), peak)
    assert_bounds(values, 0.0, peak)
    assert np.all(values[warm:] > 0)
    assert_non_decreasing(values[: warm + 1], peak)
    assert_non_increasing(values[warm:], peak)
    assert_continuous(schedule, [warm], values, peak)
    far = evaluate(schedule, FAR)  # no horizon: the 1/sqrt curve continues, finite and positive
    assert_matches(far, ref.evaluate(ref.inverse_sqrt, FAR, **config), peak)
    assert np.all(far > 0) and np.all(np.diff(far) <= 0)


# ---------------------------------------------------------------------------------------------
# Specific behaviour


def test_wsd_defaults_decay_the_last_fifth_with_one_minus_sqrt():
    schedule = oxs.wsd(2.0, 1000, warmup_steps=10)
    values = evaluate(schedule, np.arange(1001))
    assert values[799] == 2.0 and values[800] == 2.0 and values[801] < 2.0
    x = 100 / 200
    assert values[900] == pytest.approx(2.0 * (1 - math.sqrt(x)), rel=1e-6)
    np.testing.assert_array_equal(values, evaluate(oxs.wsd(2.0, 1000, warmup_steps=10,
                                                           decay_fraction=0.2,
                                                           decay_shape="1-sqrt", end_value=0.0),
                                                   np.arange(1001)))


def test_wsd_exponential_is_minicpm_half_life():
    """peak * 0.5 ** (s / h) with h = D ln2 / ln(peak/end): halves every h steps."""
    peak, end, steps = 1.0, 1.0 / 1024, 200  # ten halvings over the decay
    values = evaluate(oxs.wsd(peak, 1000, cooldown_steps=steps, decay_shape="exponential",
                              end_value=end), np.arange(800, 1001, 20))
    np.testing.assert_allclose(values, 0.5 ** np.arange(11), rtol=2e-6)


def test_wsd_accepts_a_callable_shape():
    def phi(x):
        return (1.0 - x) ** 3

    values = evaluate(oxs.wsd(1.0, 100, cooldown_steps=50, decay_shape=phi, end_value=0.2),
                      np.arange(101))
    x = np.clip((np.arange(101) - 50) / 50, 0, 1)
    np.testing.assert_allclose(values, 0.2 + 0.8 * (1 - x) ** 3, rtol=1e-6, atol=1e-7)


def test_wsd_s_with_one_point_is_wsd():
    for shape in ("1-sqrt", "harmonic"):
        kwargs = dict(cooldown_steps=37, warmup_steps=13, decay_shape=shape, end_value=0.05,
                      init_value=0.1)
        counts = np.arange(0, 400)
        np.testing.assert_allclose(evaluate(oxs.wsd_s(1.0, [300], **kwargs), counts),
                                   evaluate(oxs.wsd(1.0, 300, **kwargs), counts), rtol=1e-6)


def test_wsd_s_beyond_float32_integers_has_finite_values_and_gradients():
    """Decay points beyond 2**24 with a 1-step cooldown: float32 rounds P_i and P_i - 1 to the
    same number, and the window's length of 0 made the gradient NaN at every count."""
    schedule = oxs.wsd_s(1e-3, [2**52, 2**53], cooldown_steps=1)
    counts = jnp.asarray([0.5, 1e10, 2.0**52, 2.0**53, 3e38], jnp.float32)
    values, grads = jax.vmap(jax.value_and_grad(schedule))(counts)
    assert np.isfinite(np.asarray(values)).all() and np.isfinite(np.asarray(grads)).all()


def test_wsd_s_checkpoints_in_update_counts():
    points = (1000, 3000, 6000)
    checkpoints = oxs.wsd_s_checkpoints(points)  # default: 10% of each segment
    assert checkpoints == ((900, 1000), (2800, 3000), (5700, 6000))
    assert [c.save_after for c in checkpoints] == list(points)
    schedule = oxs.wsd_s(1.0, points, decay_shape="linear")
    values = evaluate(schedule, np.arange(0, 6100))
    for start, point in checkpoints:
        assert values[start] == 1.0 and values[start + 1] < 1.0
        assert values[point - 1] == pytest.approx(1.0 / (point - start), rel=1e-5)
    assert values[1000] == 1.0 and values[3000] == 1.0 and values[6000] == 0.0


def test_infinite_anneal_added_later_leaves_the_past_unchanged():
    base = dict(peak_value=3e-4, constant_value=3e-5, warmup_steps=100, cooldown_steps=400)
    counts = np.arange(0, 3000)
    no_anneal = evaluate(oxs.infinite(**base), counts)
    annealed = evaluate(oxs.infinite(**base, anneal_start=2000, anneal_steps=500,
                                     end_value=3e-7), counts)
    np.testing.assert_array_equal(annealed[:2000], no_anneal[:2000])
    assert annealed[2500] == np.float32(3e-7)
    assert annealed[2250] == pytest.approx(3e-5 * (1e-2) ** 0.5, rel=1e-5)  # geometric midpoint


def test_inverse_sqrt_default_timescale_follows_transformers():
    with_warmup = evaluate(oxs.inverse_sqrt(1.0, 100), np.asarray([100, 400, 10_000]))
    np.testing.assert_allclose(with_warmup, [1.0, 0.5, 0.1], rtol=1e-6)
    no_warmup = evaluate(oxs.inverse_sqrt(1.0, 0), np.asarray([0, 5000, 30_000]))
    np.testing.assert_allclose(no_warmup, [1.0, 1 / math.sqrt(1.5), 0.5], rtol=1e-6)


# ---------------------------------------------------------------------------------------------
# jit, vmap, grad, dtypes on fixed configurations

FIXED = {
    "linear_decay": (oxs.linear_decay(1e-3, 500, warmup_steps=50, end_value=1e-5,
                                      init_value=1e-6), [0, 50, 500]),
    "rex": (oxs.rex(1.0, 300, warmup_steps=20, end_value=0.1), [0, 20, 300]),
    "uba": (oxs.uba(1.0, 300, phi=0.5, warmup_steps=20), [0, 20, 300]),
    "wsd_1-sqrt": (oxs.wsd(1.0, 400, warmup_steps=40, end_value=0.1), [0, 40, 320, 400]),
    "wsd_exponential": (oxs.wsd(1.0, 400, warmup_steps=40, decay_shape="exponential",
                                end_value=0.01), [0, 40, 320, 400]),
    "wsd_harmonic": (oxs.wsd(1.0, 400, cooldown_steps=100, decay_shape="harmonic",
                             end_value=0.01), [0, 300, 400]),
    "wsd_s": (oxs.wsd_s(1.0, [100, 250, 400], decay_fraction=0.2, warmup_steps=10,
                        end_value=0.05), [0, 10, 80, 100, 220, 250, 370, 400]),
    "power": (oxs.power(0.02, 1, 4096.0, warmup_tokens=4096 * 50, decay_tokens=4096 * 100,
                        total_tokens=4096 * 400, end_value=1e-4), [0, 8, 50, 300, 400]),
    "power_no_warmup": (oxs.power(0.02, 1, 4096.0), [0, 1, 8]),
    "infinite": (oxs.infinite(1.0, 0.1, 30, 100, cooldown_shape="inverse_sqrt",
                              anneal_start=300, anneal_steps=50, end_value=1e-3),
                 [0, 30, 130, 300, 350]),
    "inverse_sqrt": (oxs.inverse_sqrt(1.0, 100, timescale=3.0), [0, 100]),
}


def _probe_counts(boundaries):
    probes = {0, 1, 2**31 - 1, 2**24, 10**6}
    for b in boundaries:
        probes.update({b - 1, b, b + 1})
    return np.asarray(sorted(p for p in probes if p >= 0), dtype=np.int32)


@pytest.mark.parametrize("name", sorted(FIXED))
def test_jit_vmap_and_eager_agree(name):
    schedule, boundaries = FIXED[name]
    counts = _probe_counts(boundaries)
    eager = np.asarray(schedule(counts))
    close = dict(rtol=1e-6, atol=1e-7 * np.abs(eager).max())  # XLA may fuse differently
    np.testing.assert_allclose(np.asarray(jax.jit(schedule)(counts)), eager, **close)
    looped = np.asarray([np.float32(schedule(int(c))) for c in counts])
    np.testing.assert_allclose(np.asarray(jax.vmap(schedule)(counts)), looped, **close)
    np.testing.assert_allclose(eager, looped, **close)


@pytest.mark.parametrize("name", sorted(FIXED))
def test_count_dtypes_and_shapes(name):
    schedule, boundaries = FIXED[name]
    c = int(boundaries[-1]) + 3
    expected = np.float32(schedule(np.int32(c)))
    for count in (c, float(c), np.int32(c), np.int64(c), np.float64(c), jnp.asarray(c),
                  jnp.asarray(c, jnp.float32)):
        value = schedule(count)
        assert value.dtype == jnp.float32 and value.shape == ()
        assert np.float32(value) == pytest.approx(expected, rel=1e-6)
    grid = np.full((2, 3), c, dtype=np.int64)
    assert schedule(grid).shape == (2, 3)
    for huge in (np.int32(2**31 - 1), np.int64(2**31 - 1), 2**31 - 1, float(2**31 - 1), 2**40):
        assert np.isfinite(np.float32(schedule(huge)))


@pytest.mark.parametrize("name", sorted(FIXED))
def test_grad_wrt_float_count_is_finite_everywhere(name):
    schedule, boundaries = FIXED[name]
    counts = _probe_counts(boundaries).astype(np.float32)
    counts = np.concatenate([counts, counts + 0.5, np.maximum(counts - 0.5, 0.0),
                             np.asarray([1e-7, 1e-3], np.float32)])
    grads = np.asarray(jax.jit(jax.vmap(jax.grad(schedule)))(counts))
    assert np.all(np.isfinite(grads)), counts[~np.isfinite(grads)]


# ---------------------------------------------------------------------------------------------
# Inside optax


def test_sgd_uses_the_schedule_at_the_optax_count():
    schedule = oxs.wsd(0.5, 20, warmup_steps=4, cooldown_steps=5, end_value=0.05)
    opt = optax.sgd(schedule)
    params = jnp.zeros(())
    state = opt.init(params)
    update = jax.jit(opt.update)
    for count in range(25):
        step, state = update(jnp.ones(()), state, params)
        assert float(step) == pytest.approx(-float(schedule(count)), rel=1e-6)


def test_adamw_and_inject_hyperparams():
    schedule = oxs.wsd(1e-2, 30, warmup_steps=5, end_value=1e-4)
    params = {"w": jnp.ones((3,)), "b": jnp.zeros(())}

    def loss(p):
        return jnp.sum(p["w"] ** 2) + p["b"] ** 2

    for opt in (optax.adamw(learning_rate=schedule),
                optax.inject_hyperparams(optax.adamw)(learning_rate=schedule)):
        state = opt.init(params)

        @jax.jit
        def step(p, s, opt=opt):
            updates, s = opt.update(jax.grad(loss)(p), s, p)
            return optax.apply_updates(p, updates), s

        p = params
        for count in range(8):
            p, state = step(p, state)
            if hasattr(state, "hyperparams"):
                assert float(state.hyperparams["learning_rate"]) == pytest.approx(
                    float(schedule(count)), rel=1e-6)
        assert float(loss(p)) < float(loss(params))
        assert all(np.all(np.isfinite(np.asarray(leaf))) for leaf in jax.tree.leaves(p))


# ---------------------------------------------------------------------------------------------
# Bad inputs: every validated argument, named in the message


def _bad(factory, argument, **kwargs):
    return pytest.param(factory, kwargs, argument, id=f"{factory.__name__}-{argument}-"
                        + "-".join(f"{k}={v}" for k, v in kwargs.items())[:60])


_LIN = dict(peak_value=1.0, total_steps=100)
_WSD = dict(peak_value=1.0, total_steps=100)
_WSDS = dict(peak_value=1.0, decay_points=[100, 200])
_POW = dict(peak_value=0.02, batch_size=256, tokens_per_step=4096)
_INF = dict(peak_value=1.0, constant_value=0.1, warmup_steps=10, cooldown_steps=100)

BAD_INPUTS = [
    *[_bad(f, "peak_value", **dict(_LIN, peak_value=v)) for f in (oxs.linear_decay, oxs.rex)
      for v in (0.0, -1.0, float("nan"))],
    _bad(oxs.linear_decay, "total_steps", **dict(_LIN, total_steps=0)),
    _bad(oxs.linear_decay, "total_steps", **dict(_LIN, total_steps=10.5)),
    _bad(oxs.linear_decay, "warmup_steps", **_LIN, warmup_steps=-1),
    _bad(oxs.linear_decay, "warmup_steps", **_LIN, warmup_steps=100),  # no decay left
    _bad(oxs.linear_decay, "end_value", **_LIN, end_value=1.5),  # above the peak
    _bad(oxs.linear_decay, "end_value", **_LIN, end_value=-0.1),
    _bad(oxs.linear_decay, "init_value", **_LIN, init_value=2.0),
    _bad(oxs.rex, "total_steps", **dict(_LIN, total_steps=-5)),
    _bad(oxs.rex, "warmup_steps", **_LIN, warmup_steps=101),
    _bad(oxs.rex, "end_value", **_LIN, end_value=3.0),
    _bad(oxs.rex, "init_value", **_LIN, init_value=-1.0),
    _bad(oxs.uba, "phi", **_LIN, phi=0.0),
    _bad(oxs.uba, "phi", **_LIN, phi=-2.0),
    _bad(oxs.uba, "phi", **_LIN, phi=float("inf")),
    _bad(oxs.uba, "peak_value", **dict(_LIN, peak_value=0.0), phi=2.0),
    _bad(oxs.uba, "total_steps", **dict(_LIN, total_steps=0), phi=2.0),
    _bad(oxs.uba, "warmup_steps", **_LIN, phi=2.0, warmup_steps=200),
    _bad(oxs.uba, "end_value", **_LIN, phi=2.0, end_value=2.0),
    _bad(oxs.uba, "init_value", **_LIN, phi=2.0, init_value=2.0),
    _bad(oxs.wsd, "peak_value", **dict(_WSD, peak_value=-1.0)),
    _bad(oxs.wsd, "total_steps", **dict(_WSD, total_steps=0)),
    _bad(oxs.wsd, "warmup_steps", **_WSD, warmup_steps=81),  # overlaps the default 20% decay
    _bad(oxs.wsd, "warmup_steps", **_WSD, warmup_steps=-3),
    _bad(oxs.wsd, "decay_fraction", **_WSD, decay_fraction=1.5),
    _bad(oxs.wsd, "decay_fraction", **_WSD, decay_fraction=-0.1),
    _bad(oxs.wsd, "decay_fraction", **_WSD, decay_fraction=0.0),  # no decay: not a WSD
    _bad(oxs.wsd, "cooldown_steps", **_WSD, cooldown_steps=0),
    _bad(oxs.wsd, "cooldown_steps", **_WSD, cooldown_steps=101),
    _bad(oxs.wsd, "cooldown_steps", **_WSD, cooldown_steps=10, decay_fraction=0.1),  # both given
    _bad(oxs.wsd, "decay_shape", **_WSD, decay_shape="sqrt"),
    _bad(oxs.wsd, "decay_shape", **_WSD, decay_shape=lambda x: x),  # rises
    _bad(oxs.wsd, "decay_shape", **_WSD, decay_shape=lambda x: 1.0 - 0.5 * x),  # ends at 0.5
    _bad(oxs.wsd, "decay_shape", **_WSD, decay_shape=lambda x: 1.0 if x < 0.5 else 0.0),
    _bad(oxs.wsd, "end_value", **_WSD, end_value=2.0),
    _bad(oxs.wsd, "end_value", **_WSD, decay_shape="exponential"),  # needs a positive floor
    _bad(oxs.wsd, "end_value", **_WSD, decay_shape="harmonic", end_value=0.0),
    _bad(oxs.wsd, "init_value", **_WSD, init_value=1.5),
    _bad(oxs.wsd_s, "peak_value", **dict(_WSDS, peak_value=0.0)),
    _bad(oxs.wsd_s, "decay_points", **dict(_WSDS, decay_points=[])),
    _bad(oxs.wsd_s, "decay_points", **dict(_WSDS, decay_points=[200, 100])),
    _bad(oxs.wsd_s, "decay_points", **dict(_WSDS, decay_points=[100, 100])),
    _bad(oxs.wsd_s, "decay_points", **dict(_WSDS, decay_points=[0, 100])),
    _bad(oxs.wsd_s, "decay_points", **dict(_WSDS, decay_points=100)),
    _bad(oxs.wsd_s, "decay_points", **dict(_WSDS, decay_points=[10.5, 100])),
    _bad(oxs.wsd_s, "cooldown_steps", **_WSDS, cooldown_steps=101),  # longer than a segment
    _bad(oxs.wsd_s, "cooldown_steps", **_WSDS, cooldown_steps=0),
    _bad(oxs.wsd_s, "cooldown_steps", **_WSDS, cooldown_steps=10, decay_fraction=0.1),
    _bad(oxs.wsd_s, "decay_fraction", **_WSDS, decay_fraction=2.0),
    _bad(oxs.wsd_s, "decay_fraction", **_WSDS, decay_fraction=0.0),
    _bad(oxs.wsd_s, "warmup_steps", **_WSDS, warmup_steps=95),  # into the first decay window
    _bad(oxs.wsd_s, "warmup_steps", **_WSDS, warmup_steps=-1),
    _bad(oxs.wsd_s, "decay_shape", **_WSDS, decay_shape="cos"),
    _bad(oxs.wsd_s, "end_value", **_WSDS, end_value=1.1),
    _bad(oxs.wsd_s, "end_value", **_WSDS, decay_shape="harmonic"),
    _bad(oxs.wsd_s, "init_value", **_WSDS, init_value=-0.5),
    _bad(oxs.wsd_s_checkpoints, "decay_points", decay_points=[5, 3]),
    _bad(oxs.wsd_s_checkpoints, "warmup_steps", decay_points=[100], warmup_steps=100),
    _bad(oxs.power, "peak_value", **dict(_POW, peak_value=0.0)),
    _bad(oxs.power, "batch_size", **dict(_POW, batch_size=0)),
    _bad(oxs.power, "tokens_per_step", **dict(_POW, tokens_per_step=-1)),
    _bad(oxs.power, "a", **_POW, a=0.0),
    _bad(oxs.power, "b", **_POW, b=0.0),
    _bad(oxs.power, "b", **_POW, b=0.5),
    _bad(oxs.power, "warmup_tokens", **_POW, warmup_tokens=-1),
    _bad(oxs.power, "decay_tokens", **_POW, decay_tokens=-1),
    _bad(oxs.power, "total_tokens", **_POW, decay_tokens=1e6),  # decay needs a horizon
    _bad(oxs.power, "total_tokens", **_POW, total_tokens=0),
    _bad(oxs.power, "total_tokens", **_POW, warmup_tokens=1e6, decay_tokens=1e6,
         total_tokens=1.5e6),
    _bad(oxs.power, "end_value", **_POW, decay_tokens=1e6, total_tokens=1e8, end_value=1.0),
    _bad(oxs.power, "end_value", **_POW, end_value=-1.0),
    _bad(oxs.infinite, "peak_value", **dict(_INF, peak_value=0.0)),
    _bad(oxs.infinite, "constant_value", **dict(_INF, constant_value=2.0)),
    _bad(oxs.infinite, "constant_value", **dict(_INF, constant_value=-0.1)),
    _bad(oxs.infinite, "warmup_steps", **dict(_INF, warmup_steps=-1)),
    _bad(oxs.infinite, "cooldown_steps", **dict(_INF, cooldown_steps=0)),
    _bad(oxs.infinite, "cooldown_shape", **_INF, cooldown_shape="rsqrt"),
    _bad(oxs.infinite, "constant_value", **dict(_INF, constant_value=0.0),
         cooldown_shape="exponential"),
    _bad(oxs.infinite, "cooldown_timescale", **_INF, cooldown_timescale=0.0),
    _bad(oxs.infinite, "anneal_start", **_INF, anneal_start=100, anneal_steps=10,
         end_value=0.01),  # inside the cooldown
    _bad(oxs.infinite, "anneal_steps", **_INF, anneal_start=500, anneal_steps=0, end_value=0.01),
    _bad(oxs.infinite, "anneal_steps", **_INF, anneal_steps=10),  # without anneal_start
    _bad(oxs.infinite, "end_value", **_INF, end_value=0.01),  # without anneal_start
    _bad(oxs.infinite, "end_value", **_INF, anneal_start=500, anneal_steps=10),  # missing
    _bad(oxs.infinite, "end_value", **_INF, anneal_start=500, anneal_steps=10, end_value=0.5),
    _bad(oxs.infinite, "end_value", **_INF, anneal_start=500, anneal_steps=10, end_value=0.0),
    _bad(oxs.infinite, "anneal_shape", **_INF, anneal_start=500, anneal_steps=10,
         end_value=0.01, anneal_shape="step"),
    _bad(oxs.infinite, "anneal_shape", **_INF, anneal_shape="step"),  # checked even unused
    _bad(oxs.infinite, "init_value", **_INF, init_value=5.0),
    _bad(oxs.inverse_sqrt, "peak_value", peak_value=-1.0, warmup_steps=10),
    _bad(oxs.inverse_sqrt, "warmup_steps", peak_value=1.0, warmup_steps=-10),
    _bad(oxs.inverse_sqrt, "warmup_steps", peak_value=1.0, warmup_steps=2.5),
    _bad(oxs.inverse_sqrt, "timescale", peak_value=1.0, warmup_steps=10, timescale=0.0),
    _bad(oxs.inverse_sqrt, "init_value", peak_value=1.0, warmup_steps=10, init_value=2.0),
]


@pytest.mark.parametrize(("factory", "kwargs", "argument"), BAD_INPUTS)
def test_bad_input_names_the_argument(factory, kwargs, argument):
    with pytest.raises(ValueError, match=rf"^{factory.__name__}: .*\b{argument}\b") as info:
        factory(**kwargs)
    assert "got" in str(info.value)


def test_bad_shape_message_lists_the_valid_shapes():
    with pytest.raises(ValueError, match="'1-sqrt', 'linear', 'cosine', 'square'"):
        oxs.wsd(1.0, 100, decay_shape="sqrt")


def test_shapes_module_keeps_its_public_names():
    assert set(_shapes.DECAY_SHAPES) == set(SHAPES)
    assert _shapes.WARMUP_SHAPES == ("linear", "cosine")
    for name in ("as_float_count", "progress", "warmup", "decay", "validate_decay_shape"):
        assert callable(getattr(_shapes, name))


# Horizons beyond int32, as schedules written in token units have (e.g. 2e12 tokens).
TOKEN_SCALE = {
    "linear_decay": dict(peak_value=1.0, total_steps=2 * 10**12, warmup_steps=10**10),
    "wsd": dict(peak_value=1.0, total_steps=2 * 10**12, warmup_steps=10**11),
    "wsd_s": dict(peak_value=1.0, decay_points=[10**12, 2 * 10**12], warmup_steps=10**10),
    "rex": dict(peak_value=1.0, total_steps=2 * 10**12, warmup_steps=10**10),
    "uba": dict(peak_value=1.0, total_steps=2 * 10**12, phi=1.0, warmup_steps=10**10),
    "infinite": dict(peak_value=1.0, constant_value=0.5, warmup_steps=10**10,
                     cooldown_steps=10**11, anneal_start=10**12, anneal_steps=10**12,
                     end_value=0.1),
    "inverse_sqrt": dict(peak_value=1.0, warmup_steps=10**10),
}


@pytest.mark.parametrize("name", sorted(TOKEN_SCALE))
def test_step_arguments_beyond_int32_match_the_reference(name):
    config = TOKEN_SCALE[name]
    # Away from the jumps of wsd_s: a float32 count near 1e12 resolves only 65,536 steps.
    counts = np.asarray([0.0, 5e9, 1e10, 3e10, 9e11, 1.2e12, 1.5e12, 1.95e12, 2.5e12, 3e12])
    got = np.asarray(getattr(oxs, name)(**config)(jnp.asarray(counts, jnp.float32)))
    want = ref.evaluate(getattr(ref, name), counts.astype(np.float32).astype(np.float64), **config)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# Renamed arguments: the 0.1.0 names still work until 0.2.0, with a DeprecationWarning.

@pytest.mark.parametrize("old, new, build", [
    ("max_value", "peak_value",
     lambda **kw: oxs.power(batch_size=256, tokens_per_step=4096, **kw)),
    ("decay_steps", "cooldown_steps", lambda **kw: oxs.wsd(1.0, 100, **kw)),
    ("decay_steps", "cooldown_steps", lambda **kw: oxs.wsd_s(1.0, [50, 100], **kw)),
])
def test_renamed_argument_warns_and_gives_the_same_schedule(old, new, build):
    value = 0.02 if old == "max_value" else 10
    counts = np.arange(0, 120)
    with pytest.warns(DeprecationWarning, match=f"{old}= is deprecated.*use {new}="):
        deprecated = build(**{old: value})
    np.testing.assert_array_equal(np.asarray(deprecated(counts)),
                                  np.asarray(build(**{new: value})(counts)))
    with pytest.raises(TypeError, match=f"both {new}= and its deprecated name {old}="):
        build(**{old: value, new: value})


def test_wsd_s_checkpoints_accepts_the_old_decay_steps_name():
    with pytest.warns(DeprecationWarning, match="decay_steps="):
        old = oxs.wsd_s_checkpoints([100, 200], decay_steps=10)
    assert old == oxs.wsd_s_checkpoints([100, 200], cooldown_steps=10)


def test_renamed_arguments_keep_the_new_signature():
    import inspect
    assert "peak_value" in inspect.signature(oxs.power).parameters
    assert "max_value" not in inspect.signature(oxs.power).parameters
    assert "cooldown_steps" in inspect.signature(oxs.wsd).parameters
def _uba_float64(counts, peak, total, warm, end, phi):
    """UBA in float64 in the direct form of the spec (exact enough in float64 up to 1e12)."""
    z = np.clip((np.asarray(counts, np.float64) - warm) / (total - warm), 0.0, 1.0)
    u = 1.0 + np.cos(np.pi * z)
    return end + (peak - end) * 2.0 * u / (2.0 * phi + (2.0 - phi) * u)


@settings(max_examples=20, deadline=None)
@given(phi=st.one_of(st.floats(1e-30, 1e30), st.sampled_from([1e8, 1e12, 1e30, 3.4e38, 1.2e-38])),
       total=st.integers(2, 5000), end_fraction=st.sampled_from([0.0, 0.1]))
def test_uba_is_finite_and_monotone_for_every_phi(phi, total, end_fraction):
    """The docstring's promise: finite for every phi > 0 (the direct form 2 phi + (2 - phi) u
    cancels once phi >= 1e8 and returned inf at the start of the decay)."""
    peak, warm = 1e-3, total // 10
    end = end_fraction * peak
    schedule = oxs.uba(peak, total, phi=phi, warmup_steps=warm, end_value=end)
    # A fixed number of counts (sorted, repeats allowed): one compiled shape for every example.
    counts = np.sort(np.concatenate([np.linspace(0, total + 1, 1019).astype(np.int64),
                                     [warm, warm + 1, total - 1, total, 2**31 - 1]]))
    values = np.asarray(schedule(counts.astype(np.int32)), np.float64)
    assert np.all(np.isfinite(values)), (phi, values[~np.isfinite(values)])
    decay = values[counts >= warm]
    assert decay[0] == pytest.approx(peak, rel=1e-6)  # exactly the peak where the decay starts
    assert np.all(np.diff(decay) <= 1e-6 * peak)
    assert np.all((decay >= end * (1 - 1e-6)) & (decay <= peak * (1 + 1e-6)))
    if phi <= 1e12:  # where the float64 direct form is itself accurate
        expected = _uba_float64(counts[counts >= warm], peak, total, warm, end, phi)
        np.testing.assert_allclose(decay, expected, rtol=0, atol=2e-6 * peak)
    # The gradient with respect to the count is finite too (no Python branch, no 0 * inf).
    grads = jax.vmap(jax.grad(schedule))(jnp.asarray([warm, warm + 0.5, total], jnp.float32))
    assert np.all(np.isfinite(np.asarray(grads))), grads


@pytest.mark.parametrize("call, name", [
    (lambda: oxs.wsd(1e39, 100), "peak_value"),
    (lambda: oxs.power(0.02, 32, 1024, b=-1e39), "b"),
    (lambda: oxs.infinite(1.0, 0.1, 10, 10, cooldown_timescale=1e308), "cooldown_timescale"),
    (lambda: oxs.inverse_sqrt(1.0, 10, timescale=1e39), "timescale"),
    (lambda: oxs.linear_decay(1e-39, 100), "peak_value"),
    (lambda: oxs.uba(1.0, 100, phi=1e-45), "phi"),
])
def test_values_beyond_float32_are_refused_naming_the_argument(call, name):
    with pytest.raises(ValueError, match=rf"{name} must be .*representable in float32"):
        call()


@settings(deadline=None)
@given(alpha=st.one_of(st.floats(1.2e-38, 3.4e38),
                       st.sampled_from([1.2e-38, 1e-20, 1e-16, 1e-7, 1e-4, 9.99e-4, 1e-3,
                                        1.001e-3, 10.0, 1e38, 3.4e38])),
       cool=st.integers(1, 1000))
def test_infinite_inverse_sqrt_cooldown_for_every_timescale(alpha, cool):
    """The 'inverse_sqrt' cooldown 1 - h(x)/h(1), h(x) = 1/sqrt(1 + alpha x) - 1, was NaN for
    alpha below about 1e-16 (h(1) = 0 in float64) and flat, then a jump, for alpha below about
    1e-6 (1 + alpha x = 1 in float32). Every representable alpha matches the float64
    reference (written without the cancellation), monotone, with finite gradients; as alpha
    goes to 0 the cooldown tends to the linear one."""
    schedule = oxs.infinite(1.0, 0.1, 10, cool, cooldown_shape="inverse_sqrt",
                            cooldown_timescale=alpha)
    values = evaluate(schedule)
    config = dict(peak_value=1.0, constant_value=0.1, warmup_steps=10, cooldown_steps=cool,
                  cooldown_shape="inverse_sqrt", cooldown_timescale=alpha)
    assert_matches(values, ref.evaluate(ref.infinite, COUNTS, **config), 1.0)
    assert_non_increasing(values[10:], 1.0)
    assert values[10] == 1.0 and values[10 + cool] == np.float32(0.1)
    if alpha <= 1e-7:
        linear = 1.0 - 0.9 * np.clip((COUNTS[10:] - 10) / cool, 0.0, 1.0)
        np.testing.assert_allclose(values[10:], linear, rtol=0, atol=2e-6)
    grads = jax.vmap(jax.grad(schedule))(jnp.asarray([10.0, 10.5, 10 + cool / 2, 10.0 + cool]))
    assert np.all(np.isfinite(np.asarray(grads))), grads


# Token positions at the edges: each quotient by tokens_per_step may leave float32's range.
_TOKENS = st.one_of(st.sampled_from([0.0, 1e-30, 1.2e-38, 1.0, 1e10, 1e30, 3.4e38]),
                    st.floats(1.2e-38, 3.4e38))


@settings(deadline=None)
@given(per_step=st.one_of(st.sampled_from([1.2e-38, 1e-30, 1.0, 4.0 * 2**20, 1e30, 3.4e38]),
                          st.floats(1.2e-38, 3.4e38)),
       warm=_TOKENS, decay=_TOKENS, extra=_TOKENS)
def test_power_phases_in_steps_are_refused_or_finite_with_finite_gradients(per_step, warm, decay,
                                                                         extra):
    """power locates its phases in steps (token arguments / tokens_per_step), in float32: a
    quotient beyond float32's range (1e10 tokens / 1e-30) was inf, one below its normal range
    (1e-30 / 3e38) was 0, and either made the gradient NaN. Now such a quotient is refused,
    naming tokens_per_step and the token argument; every accepted configuration has finite
    values and gradients at every count."""
    total = warm + decay + extra
    if not math.isfinite(total) or total > 3.4e38:
        return  # refused by the token-budget checks, which other tests cover
    kwargs = dict(warmup_tokens=warm)
    if decay > 0:
        kwargs.update(decay_tokens=decay, total_tokens=total)
    quotients = [warm / per_step] + ([total / per_step, (total - decay) / per_step,
                                      decay / per_step] if decay > 0 else [])
    bad = any(q != 0 and not 1.1754943508222875e-38 <= q <= 3.4028234663852886e38
              for q in quotients)
    if bad:
        with pytest.raises(ValueError, match=r"^power: tokens_per_step must be such that "
                                             r"(\w+|\(total_tokens - decay_tokens\)) / "
                                             r"tokens_per_step, .*, got "):
            oxs.power(0.02, 32, per_step, **kwargs)
        return
    schedule = oxs.power(0.02, 32, per_step, **kwargs)
    counts = np.asarray([0, 1, 2, 100, 10**6, 2**31 - 1], np.float32)
    values = np.asarray(schedule(counts))
    assert np.all(np.isfinite(values)), values
    grads = np.asarray(jax.vmap(jax.grad(schedule))(jnp.asarray(counts)))
    assert np.all(np.isfinite(grads)), grads


def test_power_with_a_huge_exponent_is_finite():
    """b = -1e38 is representable in float32; b * log(count) is not, and must not become NaN."""
    schedule = oxs.power(0.02, 32, 1024, b=-1e38)
    values = np.asarray(schedule(np.array([0, 1, 2, 1000, 2**31 - 1], np.int32)))
    assert np.all(np.isfinite(values)), values
    assert values[0] == np.float32(0.02)
