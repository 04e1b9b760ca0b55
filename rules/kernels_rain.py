"""The rainfall stage's compiled loop (:mod:`rules.rain`); the conventions are
:mod:`rules.kernels`'s."""

from __future__ import annotations

import numpy as np

from rules.kernels import N_RANKS, NO_COUNTER, RAIN_ABSENT, _jit

__all__ = ["rain_loop"]


# -- rainfall windows ---------------------------------------------------------------------------
@_jit(nogil=True)
def rain_loop(sensor, ts, val, row_of_sensor, is_counter, rungs_cmm, deadband_cmm, window_bins, bin_ms,
              max_cmm, bin_cap, bins, sums, last_ts, counter, level, episode_ts, peak):
    """Add each reading's rain to its row's 5-minute bins, update the window sums and step the
    any-window ladder (rules.rain). Returns ``(n_stale, n_invalid, out)``: ``out`` is (k, 12)
    int64 rows ``[row, reading, old, new, episode_ts, peak, window, sum x5]``, one per change."""
    n_bins = bins.shape[1]
    n_win = window_bins.shape[0]
    out = np.empty((sensor.shape[0], 7 + n_win), dtype=np.int64)
    ring = np.empty(n_bins, dtype=np.int64)
    n_out = 0
    stale = 0
    invalid = 0
    for i in range(sensor.shape[0]):
        r = row_of_sensor[sensor[i]]
        if r < 0:
            continue
        x = val[i]
        if not np.isfinite(x):
            invalid += 1
            continue
        t = ts[i]
        last = last_ts[r]
        if t <= last:
            stale += 1
            continue
        cmm = np.int64(np.rint(min(max(x, 0.0), max_cmm / 100) * 100.0))  # 0.01 mm
        head = t // bin_ms
        advance = head - max(last, 0) // bin_ms if last >= 0 else n_bins
        rain = cmm
        if is_counter[r]:  # the counter's delta; a drop is a reset; a first reading is the baseline
            base = counter[r]
            if base == NO_COUNTER or advance >= n_bins:
                base = cmm
            rain = cmm - base if cmm >= base else cmm
            counter[r] = cmm
        slot = head % n_bins
        if advance <= 1:  # the newest bin or the next: the sums lose the bins leaving each window
            if advance == 1:
                for w in range(n_win):
                    sums[r, w] -= bins[r, (head - window_bins[w]) % n_bins]
                bins[r, slot] = 0  # the slot held the bin 24 h before the new one
            old = np.int64(bins[r, slot])
            new = min(old + rain, bin_cap)
            bins[r, slot] = new
            for w in range(n_win):
                sums[r, w] += new - old
        elif advance >= n_bins:  # a first reading, or a gap of 24 h or more: an empty ring
            for j in range(n_bins):
                bins[r, j] = 0
            first = min(rain, bin_cap)
            bins[r, slot] = first
            for w in range(n_win):
                sums[r, w] = first
        else:  # bins skipped: empty them and re-sum the ring
            for age in range(n_bins):
                ring[age] = 0 if age < advance else bins[r, (head - age) % n_bins]
            ring[0] = min(ring[0] + rain, bin_cap)
            total = 0
            w = 0
            for age in range(n_bins):
                bins[r, (head - age) % n_bins] = ring[age]
                total += ring[age]
                while w < n_win and window_bins[w] - 1 == age:
                    sums[r, w] = total
                    w += 1
        last_ts[r] = t
        # levels: rung q of window w holds at its sum, or at sum - deadband once reached
        old_level = np.int64(level[r])
        new_level = 0
        for q in range(N_RANKS):
            cut = deadband_cmm[r] if old_level >= q + 1 else 0
            for w in range(n_win):
                if sums[r, w] >= rungs_cmm[r, w, q] - cut:
                    new_level = q + 1
                    break
        if new_level == old_level:
            continue
        if old_level == 0:
            episode_ts[r] = t
        pk = np.int64(peak[r]) if old_level else 0
        peak[r] = max(pk, new_level)
        # the deciding window: the new level's by the largest sum / rung (on a clear, the one
        # closest to keeping the old level); ties go to the shorter window
        rank = new_level if new_level else old_level
        cut = deadband_cmm[r] if old_level >= new_level else 0
        best = -np.inf
        window = 0
        for w in range(n_win):
            rung = rungs_cmm[r, w, rank - 1]
            ratio = sums[r, w] / max(rung, 1) if rung < RAIN_ABSENT else -np.inf
            if new_level and not sums[r, w] >= rung - cut:
                ratio = -np.inf
            if ratio > best:
                best = ratio
                window = w
        out[n_out, 0] = r
        out[n_out, 1] = i
        out[n_out, 2] = old_level
        out[n_out, 3] = new_level
        out[n_out, 4] = episode_ts[r]
        out[n_out, 5] = peak[r]
        out[n_out, 6] = window
        for w in range(n_win):
            out[n_out, 7 + w] = sums[r, w]
        n_out += 1
        level[r] = new_level
        if new_level == 0:
            episode_ts[r] = -1
            peak[r] = 0
    return stale, invalid, out[:n_out]
