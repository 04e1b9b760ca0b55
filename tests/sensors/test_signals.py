"""Signal models: drift, noise, tipping bucket and the rolling window sum."""

from __future__ import annotations

import numpy as np
import pytest

from sensors.signals import (
    BUCKET_MM,
    DAY_MS,
    HOUR_MS,
    analog,
    daily_drift,
    rain_gauge,
    rolling_sum,
    tipping_bucket,
)


def test_daily_drift_follows_the_time_of_day() -> None:
    ts = np.array([0, DAY_MS // 4, DAY_MS // 2, 3 * DAY_MS // 4, 20 * DAY_MS + DAY_MS // 4])
    np.testing.assert_allclose(daily_drift(ts, 2.0), [0, 2, 0, -2, 2], atol=1e-12)


def test_analog_noise_and_range() -> None:
    rng = np.random.default_rng(0)
    v = analog(np.full(20_000, 5.0), 0.5, rng)
    assert abs(v.mean() - 5.0) < 0.02 and abs(v.std() - 0.5) < 0.02
    clipped = analog(np.zeros(1000), 1.0, np.random.default_rng(1), lo=0.0, hi=100.0)
    assert clipped.min() == 0.0


def test_tipping_bucket_carries_water_over() -> None:
    depth = np.array([0.1, 0.1, 0.1, 0.6, 0.05, 0.0, 0.35])
    tips = tipping_bucket(depth)
    assert tips.tolist() == [0, 1, 0, 3, 0, 0, 2]
    assert tips.sum() * BUCKET_MM == pytest.approx(1.2)  # 1.3 mm fell; 0.1 mm still in the bucket


def test_rolling_sum_matches_brute_force() -> None:
    rng = np.random.default_rng(3)
    ts = np.cumsum(rng.integers(1, 600_000, 300))
    vals = rng.integers(0, 20, 300)
    got = rolling_sum(ts, vals, HOUR_MS)
    want = [vals[(ts > t - HOUR_MS) & (ts <= t)].sum() for t in ts]
    assert got.tolist() == want
    with pytest.raises(ValueError, match="ascending"):
        rolling_sum(ts[::-1], vals)


def test_rain_gauge_hour_sum_of_five_minute_increments() -> None:
    ts = np.arange(24) * 300_000
    increments, hour = rain_gauge(ts, np.full(24, 2.5), 0.0, np.random.default_rng(0))
    assert set(increments.tolist()) <= {2.4, 2.6}  # quantised to whole 0.2 mm buckets
    assert hour[11] == pytest.approx(30.0) and hour[-1] == pytest.approx(30.0)  # 12 x 2.5 mm
    assert hour[0] == increments[0]  # the window starts empty
