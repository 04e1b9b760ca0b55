"""The data-quality stage's compiled loop (:mod:`rules.quality`); the conventions are
:mod:`rules.kernels`'s."""

from __future__ import annotations

import numpy as np

from rules.kernels import OFFLINE, OUT_OF_RANGE, STUCK, _jit

__all__ = ["quality_loop"]


# -- data quality -------------------------------------------------------------------------------
@_jit(inline="always")
def _median_sorted(buf, w):
    """Sort ``buf[:w]`` in place (insertion sort: w <= 32) and return its median."""
    for a in range(1, w):
        x = buf[a]
        b = a - 1
        while b >= 0 and buf[b] > x:
            buf[b + 1] = buf[b]
            b -= 1
        buf[b + 1] = x
    return 0.5 * (buf[(w - 1) // 2] + buf[w // 2])


@_jit(nogil=True)
def quality_loop(sensor, ts, val, now, lo, hi, stuck_samples, spike_row, spike_window, spike_mad, mad_floor,
                 faults, run, last_ts, last_seen, last_v, outlier, win_count, win_head, window, quarantined):
    """Out of range, stuck and spike checks per reading (rules.quality). Sets ``quarantined[i]``
    and the fault bits; returns ``(n_stale, ints, floats)`` for the readings whose faults changed or
    that are spikes: ints ``[reading, before, after, spike]``, floats ``[median, MAD, limit]``."""
    per_reading_now = now.shape[0] > 1
    out_i = np.empty((sensor.shape[0], 4), dtype=np.int64)
    out_f = np.empty((sensor.shape[0], 3), dtype=np.float64)
    buf = np.empty(max(window.shape[1], 1), dtype=np.float64)
    n_out = 0
    stale = 0
    for i in range(sensor.shape[0]):
        r = sensor[i]
        t = ts[i]
        x = val[i]
        if t <= last_ts[r]:
            stale += 1
            quarantined[i] = True
            continue
        last_ts[r] = t
        last_seen[r] = now[i] if per_reading_now else now[0]
        before = np.int64(faults[r])
        after = before & ~OFFLINE  # any reading ends offline
        bad = not np.isfinite(x) or x < lo[r] or x > hi[r]
        after = after | OUT_OF_RANGE if bad else after & ~OUT_OF_RANGE
        n_stuck = np.int64(stuck_samples[r])
        run[r] = min(run[r] + 1, max(n_stuck, 1)) if x == last_v[r] else 1
        last_v[r] = x
        after = after | STUCK if n_stuck > 0 and run[r] >= n_stuck else after & ~STUCK
        spike = False
        med = np.nan
        mad = np.nan
        limit = np.nan
        row = spike_row[r]
        if row >= 0 and not bad:  # Hampel test against the window of accepted readings
            w = np.int64(spike_window[r])
            for j in range(w):
                buf[j] = window[row, j]
            med = _median_sorted(buf, w)
            for j in range(w):
                buf[j] = abs(window[row, j] - med)
            mad = _median_sorted(buf, w)
            floor = mad_floor[r] if mad_floor[r] > 0 else 1e-3 * max(1.0, abs(med))
            limit = spike_mad[r] * max(mad, floor)
            dev = x - med
            side = 0
            if win_count[r] >= w and abs(dev) > limit:
                side = 1 if dev > 0 else -1
            spike = side != 0 and side != outlier[r]  # isolated: the previous one was not
            outlier[r] = side
            if not spike:
                window[row, win_head[r]] = x
                win_head[r] = (win_head[r] + 1) % w
                win_count[r] = min(win_count[r] + 1, w)
        quarantined[i] = after != 0 or spike
        if after != before or spike:
            out_i[n_out, 0] = i
            out_i[n_out, 1] = before
            out_i[n_out, 2] = after
            out_i[n_out, 3] = spike
            out_f[n_out, 0] = med
            out_f[n_out, 1] = mad
            out_f[n_out, 2] = limit
            n_out += 1
        faults[r] = after
    return stale, out_i[:n_out], out_f[:n_out]
