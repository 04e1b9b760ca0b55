"""Plausible sensor signal models: pure numpy, no clock, no I/O.

Analog sensors (gas detectors, level gauges, piezometers, GNSS) read

    value(t) = mean(t) + N(0, noise^2),   mean(t) = baseline + drift * sin(2 pi t / 24 h)

clipped to the instrument's measuring range. ``t`` is event time in epoch milliseconds, so the
drift follows the time of day: the sinusoid peaks at 06:00 UTC = 14:00 China Standard Time, the
afternoon temperature peak that drives most slow instrument drift.

Rain gauges are tipping buckets: the rain that fell in each reporting interval fills a 0.2 mm
bucket that tips whenever full, and the gauge reports ``tips x 0.2 mm``. Water left in the bucket
carries over to the next interval, so the reported total never drifts from the true total by more
than one bucket. The data logger also reports the rolling 1-hour sum of the increments with each
increment (RAIN-1H alongside RAIN-5M).

Every function takes a seeded :class:`numpy.random.Generator` where it draws noise, so a scenario
replays identically for the same seed.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "BUCKET_MM",
    "DAY_MS",
    "HOUR_MS",
    "analog",
    "daily_drift",
    "rain_depths",
    "rain_gauge",
    "rolling_sum",
    "tipping_bucket",
]

DAY_MS = 86_400_000
"""One day in milliseconds: the drift period."""
HOUR_MS = 3_600_000
"""One hour in milliseconds: the window of the rolling rain sum."""
BUCKET_MM = 0.2
"""Tipping-bucket resolution, mm of rain per tip (the common 0.2 mm gauge, e.g. SL3-1)."""

Floats = NDArray[np.float64]


def daily_drift(ts_ms: ArrayLike, amplitude: float) -> Floats:
    """``amplitude * sin(2 pi ts / 24 h)`` for event timestamps ``ts_ms`` (epoch ms).

    ``amplitude`` is in the sensor's unit; the result is zero at 00:00 and 12:00 UTC.
    """
    t = np.asarray(ts_ms, dtype=np.int64) % DAY_MS
    return float(amplitude) * np.sin(2.0 * np.pi * t.astype(np.float64) / DAY_MS)


def analog(
    mean: ArrayLike,
    noise: float,
    rng: np.random.Generator,
    *,
    lo: float | None = None,
    hi: float | None = None,
) -> Floats:
    """One reading per element of ``mean``: ``mean + N(0, noise^2)``, clipped to [lo, hi].

    ``noise`` is the standard deviation in the sensor's unit; ``lo``/``hi`` the measuring range
    (a gas detector reads 0 %LEL, never a negative concentration).
    """
    m = np.asarray(mean, dtype=np.float64)
    values = m + float(noise) * rng.standard_normal(m.shape)
    if lo is not None or hi is not None:
        values = np.clip(values, lo, hi)
    return values


def rain_depths(mean_mm: ArrayLike, noise_mm: float, rng: np.random.Generator) -> Floats:
    """Rain that fell in each interval, mm: ``mean + N(0, noise^2)``, never below zero."""
    m = np.asarray(mean_mm, dtype=np.float64)
    return np.maximum(m + float(noise_mm) * rng.standard_normal(m.shape), 0.0)


def tipping_bucket(depth_mm: ArrayLike, bucket_mm: float = BUCKET_MM) -> NDArray[np.int64]:
    """Tips counted in each interval for the rain ``depth_mm`` that fell in it.

    Water below one bucket carries over to the next interval, so
    ``sum(tips) * bucket_mm`` is the true total rounded down to a whole bucket.
    """
    if bucket_mm <= 0:
        raise ValueError(f"bucket_mm must be positive, got {bucket_mm}")
    total = np.cumsum(np.asarray(depth_mm, dtype=np.float64))
    # The epsilon keeps an exact multiple (0.6 mm / 0.2 mm = 2.9999999999999996) a whole tip.
    tipped = np.floor(total / bucket_mm + 1e-9).astype(np.int64)
    return np.diff(tipped, prepend=np.int64(0))


def rolling_sum(
    ts_ms: ArrayLike, values: ArrayLike, window_ms: int = HOUR_MS
) -> NDArray[np.generic]:
    """For each reading, the sum of ``values`` stamped in ``(ts - window_ms, ts]``.

    ``ts_ms`` must be ascending (epoch ms). An increment stamped ``ts`` covers the interval
    ending at ``ts``, so 12 five-minute increments make exactly one hour. Integer input gives
    an exact integer result (use tip counts, then multiply by the bucket size).
    """
    ts = np.asarray(ts_ms, dtype=np.int64)
    vals = np.asarray(values)
    if ts.shape != vals.shape:
        raise ValueError(f"ts_ms and values differ in shape: {ts.shape} vs {vals.shape}")
    if ts.size and np.any(np.diff(ts) < 0):
        raise ValueError("ts_ms must be ascending")
    csum = np.concatenate((np.zeros(1, dtype=vals.dtype), np.cumsum(vals)))
    first = np.searchsorted(ts, ts - int(window_ms), side="right")
    sums: NDArray[np.generic] = csum[1:] - csum[first]
    return sums


def rain_gauge(
    ts_ms: ArrayLike,
    mean_mm: ArrayLike,
    noise_mm: float,
    rng: np.random.Generator,
    *,
    bucket_mm: float = BUCKET_MM,
    window_ms: int = HOUR_MS,
) -> tuple[Floats, Floats]:
    """A tipping-bucket gauge with its data logger: (increment mm, rolling window sum mm).

    ``mean_mm`` is the expected rain per reporting interval (mm per 5 min for a 5-minute gauge).
    Both results are multiples of ``bucket_mm``, rounded to 0.01 mm so that no float noise
    (12.600000000000001) reaches the wire. The window starts empty: it was dry before ``ts_ms[0]``.
    """
    tips = tipping_bucket(rain_depths(mean_mm, noise_mm, rng), bucket_mm)
    window_tips = np.asarray(rolling_sum(ts_ms, tips, window_ms), dtype=np.float64)
    increments = np.round(tips.astype(np.float64) * bucket_mm, 2)
    sums = np.round(window_tips * bucket_mm, 2)
    return increments, sums
