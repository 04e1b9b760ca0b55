"""The compiled per-reading loops of the rule stages (numba, ``nopython``, cached on disk).

Each stage (:mod:`rules.quality`, :mod:`rules.threshold`, :mod:`rules.rain`, :mod:`rules.rate`,
:mod:`rules.trend`) keeps its tables and state in numpy arrays; its ``process`` hands a micro-batch
to one loop here, which walks the readings once, in arrival order, and updates the state arrays in
place. The loops need each row's readings in timestamp order, which the engine's late check
guarantees (a stage called with readings in any other order sorts them first: ``rules.rows.by_row_time``).
A reading not newer than its row's last one changes nothing (a duplicate).

The loops return *what changed* -- level transitions, health-relevant readings -- as small arrays;
the stages turn those few into events in Python. Floating-point work is done in the same order as
the per-reading baseline (``hazwatch.bench_baseline_stages``): the trend fit's sums follow numpy's
pairwise order (:func:`pairwise_sum`), the median sorts the window, no ``fastmath``; so the engine
and the baseline agree to the bit, and a replay is identical whatever the batch size.

Compilation happens on the first call of a process (about a second per loop; ``cache=True``
keeps the machine code in ``__pycache__``, ``~/.cache/numba`` or ``NUMBA_CACHE_DIR`` for the next
process). Where numba finds no writable cache location the loops are compiled in memory instead
(:func:`_jit`): every start then pays the compilation, but nothing fails.

This module holds the threshold, rate and trend loops; the rainfall loop is in
:mod:`rules.kernels_rain` and the data-quality loop in :mod:`rules.kernels_quality`.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["rate_loop", "threshold_loop", "trend_loop"]

N_RANKS = 4  # blue..red
EMPTY_TS = -(1 << 62)  # an empty ring slot (rules.rate.EMPTY_TS)
OFFLINE, STUCK, OUT_OF_RANGE = 1, 2, 4  # rules.quality fault bits (rules.kernels_quality)
NO_COUNTER = np.iinfo(np.int64).min  # rules.rain: no counter baseline yet (rules.kernels_rain)
RAIN_ABSENT = 1 << 62  # rules.rain: a rung that is not configured (rules.kernels_rain)
INT64_MAX = np.iinfo(np.int64).max


def _jit(**options):  # noqa: ANN202 - a decorator factory
    """``numba.njit(cache=True, **options)``, or without the disk cache where numba has no
    writable place for it (it refuses at decoration time: "no locator available")."""
    def wrap(func):  # noqa: ANN001, ANN202
        try:
            return njit(cache=True, **options)(func)
        except RuntimeError:
            return njit(**options)(func)
    return wrap


# -- threshold ladders --------------------------------------------------------------------------
@_jit(nogil=True)
def threshold_loop(sensor, ts, val, row_start, row_count, sign, enter, stay, min_dur, max_gap,
                   min_samples, use_counts, level, since, last_ts, episode_ts, peak, count):
    """Step the ladders of each reading's rule rows (``row_start[s] .. + row_count[s]``).

    Returns ``(n_stale, out)``: ``out`` is (k, 6) int64 rows ``[row, reading, old, new,
    episode_ts, peak]``, one per level change, in evaluation order.
    """
    cap = 0
    for i in range(sensor.shape[0]):
        cap += row_count[sensor[i]]
    out = np.empty((cap, 6), dtype=np.int64)
    n_out = 0
    stale = 0
    for i in range(sensor.shape[0]):
        s = sensor[i]
        t = ts[i]
        for r in range(row_start[s], row_start[s] + row_count[s]):
            last = last_ts[r]
            if t <= last:
                stale += 1
                continue
            if last >= 0 and t - last > max_gap[r]:  # no duration spans a data gap
                for k in range(N_RANKS):
                    since[r, k] = -1
            last_ts[r] = t
            v = val[i] * sign[r]
            old = np.int64(level[r])
            new = 0
            for k in range(N_RANKS):
                reached = old >= k + 1
                if v >= (stay[r, k] if reached else enter[r, k]):
                    held = since[r, k] >= 0
                    if not held:
                        since[r, k] = t
                    persisted = t - since[r, k] >= min_dur[r]
                    if use_counts:
                        count[r, k] = count[r, k] + 1 if held else 1
                        persisted = persisted and count[r, k] >= min_samples[r]
                    if reached or persisted:
                        new = k + 1
                else:
                    since[r, k] = -1
                    if use_counts:
                        count[r, k] = 0
            if new != old:
                if old == 0:
                    episode_ts[r] = t
                    peak[r] = 0
                if new > peak[r]:
                    peak[r] = new
                out[n_out, 0] = r
                out[n_out, 1] = i
                out[n_out, 2] = old
                out[n_out, 3] = new
                out[n_out, 4] = episode_ts[r]
                out[n_out, 5] = peak[r]
                n_out += 1
                level[r] = new
                if new == 0:
                    episode_ts[r] = -1
                    peak[r] = 0
    return stale, out[:n_out]


# -- rings of recent readings (rate, trend) -----------------------------------------------------
@_jit(inline="always")
def _ring_push(ring_ts, ring_v, head, r, t, v, spacing):
    """rules.rate.ring_push for one reading: overwrite the newest slot, or take a new one when the
    newest slot lies ``>= spacing`` after the one before it."""
    k = ring_ts.shape[1]
    h = np.int64(head[r])
    newest = ring_ts[r, h]
    if newest != EMPTY_TS and newest - ring_ts[r, (h - 1) % k] >= spacing:
        h = (h + 1) % k
    ring_ts[r, h] = t
    ring_v[r, h] = v
    head[r] = h


@_jit(inline="always")
def _ring_gap(ring_ts, head, last, t, max_gap, r):
    """A gap longer than ``max_gap`` since the row's last reading empties the ring."""
    if last >= 0 and t - last > max_gap:
        for j in range(ring_ts.shape[1]):
            ring_ts[r, j] = EMPTY_TS
        head[r] = 0


@_jit(nogil=True)
def rate_loop(sensor, ts, val, row_start, row_count, window_ms, spacing_ms, min_span_ms, per_s, max_gap,
              ring_ts, ring_v, head, last_ts):
    """Keep each reading in its rate rows' rings and take the rate over the window.

    Returns ``(n_stale, n_invalid, rows, ts, rates)``: the rates that are defined, in evaluation
    order (each row's in time order), for the rows' ladders.
    """
    cap = 0
    for i in range(sensor.shape[0]):
        cap += row_count[sensor[i]]
    o_row = np.empty(cap, dtype=np.int64)
    o_ts = np.empty(cap, dtype=np.int64)
    o_rate = np.empty(cap, dtype=np.float64)
    n_out = 0
    stale = 0
    invalid = 0
    for i in range(sensor.shape[0]):
        s = sensor[i]
        t = ts[i]
        x = val[i]
        for r in range(row_start[s], row_start[s] + row_count[s]):
            if not np.isfinite(x):
                invalid += 1
                continue
            if t <= last_ts[r]:
                stale += 1
                continue
            _ring_gap(ring_ts, head, last_ts[r], t, max_gap[r], r)
            last_ts[r] = t
            _ring_push(ring_ts, ring_v, head, r, t, x, spacing_ms[r])
            start = t - window_ms[r]
            oldest = -1
            best = INT64_MAX
            for j in range(ring_ts.shape[1]):
                rt = ring_ts[r, j]
                if rt >= start and rt < best:
                    best = rt
                    oldest = j
            span = t - best
            if span > 0 and span >= min_span_ms[r]:
                o_row[n_out] = r
                o_ts[n_out] = t
                o_rate[n_out] = (x - ring_v[r, oldest]) / (span / 1000.0) * per_s[r]
                n_out += 1
    return stale, invalid, o_row[:n_out], o_ts[:n_out], o_rate[:n_out]


@_jit(inline="always")
def pairwise_sum(a):
    """Sum in numpy's order for up to 128 float64 (eight interleaved partial sums, combined
    pairwise, then the rest): ``hazwatch.bench_baseline_stages.numpy_sum``."""
    n = a.shape[0]
    if n < 8:
        total = -0.0
        for j in range(n):
            total += a[j]
        return total
    r0, r1, r2, r3, r4, r5, r6, r7 = a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]
    i = 8
    while i < n - n % 8:
        r0 += a[i]
        r1 += a[i + 1]
        r2 += a[i + 2]
        r3 += a[i + 3]
        r4 += a[i + 4]
        r5 += a[i + 5]
        r6 += a[i + 6]
        r7 += a[i + 7]
        i += 8
    total = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        total += a[i]
        i += 1
    return total


@_jit(nogil=True)
def trend_loop(sensor, ts, val, row_of_sensor, sign, rungs, window_ms, spacing_ms, horizon_s, clear_s,
               min_points, fc_level, max_gap, ring_ts, ring_v, head, last_ts, level, episode_ts):
    """Keep each reading in its trend row's ring, fit a line over the window and raise or clear
    the forecast (rules.trend). Returns ``(n_stale, n_invalid, ints, floats)``, one row per change:
    ints ``[row, reading, old, new, episode_ts, target, points]``, floats ``[eta_s, slope_per_s]``."""
    k = ring_ts.shape[1]
    out_i = np.empty((sensor.shape[0], 7), dtype=np.int64)
    out_f = np.empty((sensor.shape[0], 2), dtype=np.float64)
    tt = np.empty(k, dtype=np.float64)
    dv = np.empty(k, dtype=np.float64)
    prod = np.empty(k, dtype=np.float64)
    inside = np.empty(k, dtype=np.bool_)
    n_out = 0
    stale = 0
    invalid = 0
    for i in range(sensor.shape[0]):
        r = row_of_sensor[sensor[i]]
        if r < 0:
            continue
        t = ts[i]
        x = val[i]
        if not np.isfinite(x):
            invalid += 1
            continue
        if t <= last_ts[r]:
            stale += 1
            continue
        _ring_gap(ring_ts, head, last_ts[r], t, max_gap[r], r)
        last_ts[r] = t
        _ring_push(ring_ts, ring_v, head, r, t, x, spacing_ms[r])
        # least squares over the kept readings inside the window, relative to this reading;
        # slots outside count as 0 in every sum, exactly as in the baseline
        start = t - window_ms[r]
        points = 0
        for j in range(k):
            rt = ring_ts[r, j]
            inside[j] = rt >= start
            if inside[j]:
                points += 1
                tt[j] = (rt - t) / 1000.0
                dv[j] = ring_v[r, j] - x
            else:
                tt[j] = 0.0
                dv[j] = 0.0
        n = float(max(points, 1))
        t_mean = pairwise_sum(tt) / n
        v_mean = pairwise_sum(dv) / n
        for j in range(k):
            if inside[j]:
                tt[j] = tt[j] - t_mean
                dv[j] = dv[j] - v_mean
            else:
                tt[j] = 0.0
                dv[j] = 0.0
            prod[j] = tt[j] * tt[j]
        sxx = pairwise_sum(prod)
        if points < min_points[r] or not sxx > 0:
            continue  # not evaluated: the forecast stays as it is
        for j in range(k):
            prod[j] = tt[j] * dv[j]
        slope = pairwise_sum(prod) / sxx
        sv = sign[r] * x
        ss = sign[r] * slope
        target = 0
        eta = np.inf
        for q in range(N_RANKS):
            rung = rungs[r, q]
            if np.isfinite(rung) and rung > sv:  # the next rung beyond the value
                target = q + 1
                if ss > 0:
                    eta = (rung - sv) / ss
                break
        active = level[r] > 0
        now_active = eta < clear_s[r] if active else eta < horizon_s[r]
        if now_active == active:
            continue
        old = np.int64(level[r])
        new = np.int64(fc_level[r]) if now_active else 0
        if old == 0:
            episode_ts[r] = t
        out_i[n_out, 0] = r
        out_i[n_out, 1] = i
        out_i[n_out, 2] = old
        out_i[n_out, 3] = new
        out_i[n_out, 4] = episode_ts[r]
        out_i[n_out, 5] = target
        out_i[n_out, 6] = points
        out_f[n_out, 0] = eta
        out_f[n_out, 1] = slope
        n_out += 1
        level[r] = new
        if new == 0:
            episode_ts[r] = -1
    return stale, invalid, out_i[:n_out], out_f[:n_out]
