"""Calibration observers: bounded state, exact merge, and the range each one picks."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

from qcore.errors import CalibrationError, NonFiniteError, QuantParamError, ShapeError
from qcore.reference.observers import (
    NUM_BUCKETS,
    EntropyObserver,
    MinMaxObserver,
    MovingAverageMinMaxObserver,
    MSEObserver,
    PercentileObserver,
    bucket_edges,
    bucket_index,
)
from qcore.reference.params import choose_qparams

FACTORIES = {
    "minmax": lambda: MinMaxObserver(),
    "minmax_axis": lambda: MinMaxObserver(axis=1),
    "moving_average": lambda: MovingAverageMinMaxObserver(0.1),
    "moving_average_axis": lambda: MovingAverageMinMaxObserver(0.1, axis=1),
    "percentile": lambda: PercentileObserver(99.0),
    "percentile_asym": lambda: PercentileObserver(99.0, symmetric=False),
    "mse": lambda: MSEObserver("int8", symmetric=False, num_candidates=20),
    "entropy": lambda: EntropyObserver(num_bins=256, num_quantized_bins=32),
}
EXACT_MERGE = [name for name in FACTORIES if not name.startswith("moving_average")]


def state_nbytes(obs) -> int:
    """Bytes held in the observer's arrays and scalars."""
    total = 0
    for value in vars(obs).values():
        total += value.nbytes if isinstance(value, np.ndarray | np.generic) else 8
    return total


def batches(seed: int, n: int, shape=(16, 4)):
    rng = np.random.default_rng(seed)
    for i in range(n):
        yield (rng.standard_normal(shape) * (1 + i % 7) + rng.uniform(-1, 1)).astype(np.float32)


def assert_same_state(a, b):
    assert vars(a).keys() == vars(b).keys()
    for key, va in vars(a).items():
        vb = vars(b)[key]
        if isinstance(va, np.ndarray | np.generic):
            np.testing.assert_array_equal(va, vb, strict=True, err_msg=key)
        else:
            assert va == vb, key


@pytest.mark.parametrize("name", FACTORIES)
def test_state_is_bounded_over_1000_batches(name):
    obs = FACTORIES[name]()
    for i, batch in enumerate(batches(1, 1000), 1):
        obs.update(batch)
        if i == 10:
            size_10 = state_nbytes(obs)
            pickled_10 = len(pickle.dumps(obs))
    assert state_nbytes(obs) == size_10
    # everything reachable from the observer, serialised: only the counters may grow
    assert len(pickle.dumps(obs)) <= pickled_10 + 16
    assert obs.count == 1000 * 64


@pytest.mark.parametrize("name", EXACT_MERGE)
def test_merge_equals_concatenation(name):
    data = list(batches(2, 30))
    whole = FACTORIES[name]()
    shards = [FACTORIES[name]() for _ in range(3)]
    for i, batch in enumerate(data):
        whole.update(batch)
        shards[i * 3 // len(data)].update(batch)
    before = copy.deepcopy(shards[0])
    merged = shards[0].merge(shards[1]).merge(shards[2])
    assert_same_state(shards[0], before)  # merge does not modify its operands
    assert_same_state(merged, whole)
    for got, expected in zip(merged.compute_range(), whole.compute_range()):
        np.testing.assert_array_equal(got, expected, strict=True)
    other_order = shards[2].merge(shards[0]).merge(shards[1])
    assert_same_state(other_order, whole)
    assert_same_state(merged.merge(FACTORIES[name]()), whole)  # an empty shard changes nothing
    assert_same_state(FACTORIES[name]().merge(merged), whole)


@pytest.mark.parametrize("axis", [None, 1])
def test_moving_average_merge_is_sequential_continuation(axis):
    data = list(batches(3, 40))
    c = 0.1
    sequential = MovingAverageMinMaxObserver(c, axis=axis)
    a, b = MovingAverageMinMaxObserver(c, axis=axis), MovingAverageMinMaxObserver(c, axis=axis)
    for i, batch in enumerate(data):
        sequential.update(batch)
        (a if i < 15 else b).update(batch)
    merged = a.merge(b)
    np.testing.assert_allclose(merged.min_val, sequential.min_val, rtol=1e-12)
    np.testing.assert_allclose(merged.max_val, sequential.max_val, rtol=1e-12)
    assert merged.count == sequential.count and merged.batches == sequential.batches
    # the hand-written recurrence for the first channel / the tensor
    m = None
    for batch in data:
        lo = float(batch.min() if axis is None else batch[:, 0].min())
        m = lo if m is None else m + c * (lo - m)
    assert np.ravel(sequential.min_val)[0] == pytest.approx(m, rel=1e-15)
    # order matters: b then a is a different stream
    swapped = b.merge(a)
    assert not np.allclose(swapped.min_val, merged.min_val, rtol=1e-6)
    assert_same_state(a.merge(MovingAverageMinMaxObserver(c, axis=axis)), a)
    with pytest.raises(QuantParamError):
        a.merge(MovingAverageMinMaxObserver(0.2, axis=axis))


def test_per_channel_minmax_equals_per_tensor_per_channel():
    data = list(batches(4, 12, shape=(5, 3, 7)))
    per_channel = MinMaxObserver(axis=-1)
    singles = [MinMaxObserver() for _ in range(7)]
    for batch in data:
        per_channel.update(batch)
        for c, obs in enumerate(singles):
            obs.update(batch[..., c])
    lo, hi = per_channel.compute_range()
    assert lo.shape == (7,)
    np.testing.assert_array_equal(lo, np.float32([o.compute_range()[0] for o in singles]))
    np.testing.assert_array_equal(hi, np.float32([o.compute_range()[1] for o in singles]))


@pytest.mark.parametrize("name", FACTORIES)
def test_bad_batches(name):
    obs = FACTORIES[name]()
    with pytest.raises(CalibrationError):
        obs.compute_range()
    with pytest.raises(NonFiniteError):
        obs.update(np.array([[1.0, np.nan, 0, 0]] * 2))
    with pytest.raises(NonFiniteError):
        obs.update(np.array([[1.0, np.inf, 0, 0]] * 2))
    with pytest.raises(ShapeError):
        obs.update(np.zeros((0, 4), np.float32))
    with pytest.raises(QuantParamError):
        obs.update(np.array([["a", "b"]]))
    assert obs.count == 0
    with pytest.raises(QuantParamError):
        obs.merge(MinMaxObserver(axis=0) if name != "minmax_axis" else MinMaxObserver())


def test_per_channel_shape_errors():
    obs = MinMaxObserver(axis=1)
    obs.update(np.zeros((2, 3), np.float32))
    with pytest.raises(ShapeError):
        obs.update(np.zeros((2, 4), np.float32))
    with pytest.raises(ShapeError):
        obs.update(np.float32(1.0))
    other = MinMaxObserver(axis=1)
    other.update(np.zeros((2, 5), np.float32))
    with pytest.raises(ShapeError):
        obs.merge(other)


def test_bucket_grid():
    low, high = bucket_edges()
    assert low.shape == high.shape == (NUM_BUCKETS,)
    finite = np.isfinite(low) & np.isfinite(high)
    assert np.all(low[finite] < high[finite])
    rng = np.random.default_rng(5)
    values = np.concatenate(
        [rng.standard_normal(10_000) * 10.0 ** rng.integers(-40, 38, 10_000), [0.0, -0.0, 1e-45, -1e-45, 3.4e38, -3.4e38]]
    ).astype(np.float32)
    idx = bucket_index(values)
    v = values.astype(np.float64)
    inside = np.where(v >= 0, (low[idx] <= v) & (v < high[idx]), (low[idx] < v) & (v <= high[idx]))
    assert inside.all()
    order = np.argsort(values, kind="stable")
    assert np.all(np.diff(idx[order]) >= 0)  # monotone in the value
    assert bucket_index(np.float32([-0.0]))[0] == bucket_index(np.float32([0.0]))[0]


def test_percentile_within_one_bucket_of_the_exact_percentile():
    rng = np.random.default_rng(6)
    x = rng.standard_normal(200_000).astype(np.float32)
    obs = PercentileObserver(99.9)
    for chunk in np.split(x, 20):
        obs.update(chunk)
    lo, hi = obs.compute_range()
    exact = np.sort(np.abs(x))[int(np.ceil(0.999 * x.size)) - 1]
    assert lo == -hi
    assert exact <= hi <= exact * (1 + 2**-7)
    asym = PercentileObserver(99.0, symmetric=False)
    asym.update(x + 5)
    lo, hi = asym.compute_range()
    srt = np.sort(x + 5)
    k = int(np.ceil(x.size * (1 - 0.005)))
    assert srt[k - 1] <= hi <= srt[k - 1] * (1 + 2**-7)
    assert srt[x.size - k] * (1 - 2**-7) <= lo <= srt[x.size - k]
    full = PercentileObserver(100.0)
    full.update(x)
    assert full.compute_range() == (float(x.min()), float(x.max()))  # clipped to the observed range


def _mse(x, lo, hi):
    scale, zp = choose_qparams(lo, hi, "int8", symmetric=False)
    q = np.clip(np.rint(x.astype(np.float64) / scale) + zp, -128, 127)
    return float(np.mean((x - (q - zp) * np.float64(scale)) ** 2))


@pytest.mark.parametrize("kind", ["outliers", "laplace", "uniform"])
def test_mse_observer_matches_brute_force_on_the_raw_data(kind):
    rng = np.random.default_rng(7)
    if kind == "outliers":
        x = np.concatenate([rng.standard_normal(50_000), rng.uniform(-40, 60, 100)])
    elif kind == "laplace":
        x = rng.laplace(size=50_000)
    else:
        x = rng.uniform(-1, 2, 50_000)
    x = x.astype(np.float32)
    obs = MSEObserver("int8", symmetric=False, num_candidates=50)
    for chunk in np.array_split(x, 7):
        obs.update(chunk)
    lo, hi = obs.compute_range()
    errors = [_mse(x, np.float32(a / 50 * x.min()), np.float32(a / 50 * x.max())) for a in range(1, 51)]
    assert _mse(x, lo, hi) <= min(errors) * 1.02
    if kind == "uniform":
        assert (lo, hi) == (float(x.min()), float(x.max()))


def test_entropy_observer_threshold():
    rng = np.random.default_rng(8)
    x = rng.standard_normal(200_000).astype(np.float32)
    obs = EntropyObserver()
    obs.update(x)
    lo, hi = obs.compute_range()
    assert lo == -hi and 2.5 < hi < float(np.abs(x).max())
    hist, absmax = obs.linear_histogram()
    assert hist.sum() == pytest.approx(x.size) and absmax == float(np.abs(x).max())
    outliers = EntropyObserver()
    outliers.update(np.concatenate([x, np.float32([1000.0])]))
    assert outliers.compute_range()[1] < 100
    zeros = EntropyObserver()
    zeros.update(np.zeros(10, np.float32))
    assert zeros.compute_range() == (0.0, 0.0)


def test_observer_parameters_validated():
    with pytest.raises(QuantParamError):
        PercentileObserver(0)
    with pytest.raises(QuantParamError):
        PercentileObserver(100.5)
    with pytest.raises(QuantParamError):
        MovingAverageMinMaxObserver(0)
    with pytest.raises(QuantParamError):
        MSEObserver("uint8", symmetric=True, convention="tflite")
    with pytest.raises(QuantParamError):
        MSEObserver(num_candidates=0)
    with pytest.raises(QuantParamError):
        EntropyObserver(num_bins=64, num_quantized_bins=128)
