"""The synthetic workload of ``hazwatch bench rules`` and the engine's tests: N sensors on copies
of the example's sites, and micro-batches of their readings made with numpy before any timing.

Each synthetic site copies one example site, its sensors replicated ~``sensors_per_site`` times, so
every rule kind the example configures is in the run. Every sensor reports 1-3 readings per
micro-batch (10 s apart, 30 s of event time per batch); most values are normal, a few sensors at a
time go on an excursion across their rungs, move and come back, so warnings are raised,
escalated, de-escalated and cleared.
"""

from __future__ import annotations

import numpy as np

from config import Config, example_dir, load_config
from config.models import Sensor, Site
from rules.batch import Batch

__all__ = ["BATCH_SPAN_MS", "START_MS", "bench_template", "synthetic_batches", "synthetic_config"]

BATCH_SPAN_MS = 30_000
"""Event time covered by one micro-batch; a sensor's 1-3 readings in it are 10 s apart."""
START_MS = 1_719_792_000_000  # 2024-07-01T00:00:00Z, a fixed epoch: the run reads no clock


TEMPLATE_SITES = ("CH-001", "TD-001", "RG-001")
"""The example's sites the synthetic workload copies: the three kinds, as every benchmark in
docs/BENCHMARKS.md has used them (the rest of the example city repeats the same kinds of rule)."""


def bench_template() -> Config:
    """The example configuration with only :data:`TEMPLATE_SITES`."""
    example = load_config(example_dir())
    return Config(settings=example.settings, sites=[example.site(s) for s in TEMPLATE_SITES],
                  zones=example.zones, recipients=example.recipients)


def synthetic_config(sensors: int, *, template: Config | None = None,
                     sensors_per_site: int = 100) -> Config:
    """``sensors`` sensors on copies of the template's sites (default: the example configuration).

    Site ``k`` copies template site ``k mod len(sites)``, with ids ``{site}-{k:05d}``; its sensors
    are the template site's sensors repeated, with ids ``{sensor}-{rep:03d}``. Models are copied,
    not re-validated: they were validated when the template was loaded.
    """
    if sensors < 1:
        raise ValueError(f"sensors must be >= 1, got {sensors}")
    tpl = template if template is not None else bench_template()
    sites: list[Site] = []
    left, k = sensors, 0
    while left > 0:
        base = tpl.sites[k % len(tpl.sites)]
        reps = max(1, sensors_per_site // len(base.sensors))
        copies: list[Sensor] = [s.model_copy(update={"id": f"{s.id}-{r:03d}"})
                                for r in range(reps) for s in base.sensors][:left]
        sites.append(base.model_copy(update={"id": f"{base.id}-{k:05d}", "sensors": copies}))
        left -= len(copies)
        k += 1
    return Config(settings=tpl.settings, sites=sites, zones=tpl.zones, recipients=tpl.recipients)


def _profiles(config: Config) -> dict[str, np.ndarray]:
    """Per sensor: normal value and noise, excursion range and noise, physical range."""
    cols: dict[str, list[float]] = {k: [] for k in ("normal", "sd", "lo_x", "hi_x", "sd_x", "lo", "hi")}
    for site in config.sites:
        for s in site.sensors:
            lo, hi = s.range if s.range is not None else (-1e12, 1e12)
            if s.thresholds:
                ladder = s.thresholds[0].ladder
                sign = 1.0 if s.thresholds[0].direction == "high" else -1.0
                first, last = ladder[0].value, ladder[-1].value
                span = max(abs(last - first), 1e-6 + abs(first) * 0.1)
                safe = (lo if sign > 0 else hi) if s.range is not None else first - sign * 2 * span
                normal = first + 0.5 * (safe - first)
                row = (normal, 0.1 * abs(normal - first), first - sign * 0.1 * span,
                       last + sign * 0.2 * span, 0.02 * span)
            else:  # a sensor without threshold rules (rain increments): small values, bursts
                width = (hi - lo) if s.range is not None else 1.0
                base = lo if s.range is not None else 0.0
                row = (base, 0.01 * width, base, base + 0.3 * width, 0.02 * width)
            for key, val in zip(("normal", "sd", "lo_x", "hi_x", "sd_x", "lo", "hi"), (*row, lo, hi)):
                cols[key].append(val)
    out = {k: np.asarray(v, dtype=np.float64) for k, v in cols.items()}
    swap = out["lo_x"] > out["hi_x"]  # low rules: the excursion runs downwards
    out["lo_x"], out["hi_x"] = np.where(swap, out["hi_x"], out["lo_x"]), np.where(swap, out["lo_x"], out["hi_x"])
    return out


def synthetic_batches(config: Config, batches: int, *, seed: int = 0, p_on: float = 0.002,
                      p_off: float = 0.05, p_move: float = 0.1, bad_quality: float = 0.001) -> list[Batch]:
    """``batches`` micro-batches; each sensor reports 1-3 readings per batch, in time order.

    A sensor starts an excursion with probability ``p_on`` per batch (target drawn across its
    rungs), moves its target with ``p_move`` (escalations, de-escalations) and ends it with
    ``p_off`` (~20 batches = 10 min of event time on average);
    ``bad_quality`` of the readings carry q = 1.
    """
    rng = np.random.default_rng(seed)
    prof = _profiles(config)
    site_of = np.asarray([s.id for s in config.sites for _ in s.sensors], dtype=object)
    sensor_of = np.asarray([x.id for s in config.sites for x in s.sensors], dtype=object)
    n = len(sensor_of)
    active = np.zeros(n, dtype=bool)
    target = prof["normal"].copy()
    out: list[Batch] = []
    for b in range(batches):
        flip = rng.random(n)
        started = ~active & (flip < p_on)
        active = (active & (flip >= p_off)) | started
        moved = started | (active & (rng.random(n) < p_move))
        target[moved] = rng.uniform(prof["lo_x"][moved], prof["hi_x"][moved])
        counts = rng.integers(1, 4, size=n)
        idx = np.repeat(np.arange(n), counts)
        occ = np.arange(len(idx)) - np.repeat(np.cumsum(counts) - counts, counts)
        order = np.lexsort((idx, occ))  # time order: every sensor's first reading, then second...
        idx, occ = idx[order], occ[order]
        ts = START_MS + b * BATCH_SPAN_MS + occ * (BATCH_SPAN_MS // 3)
        mean = np.where(active[idx], target[idx], prof["normal"][idx])
        sd = np.where(active[idx], prof["sd_x"][idx], prof["sd"][idx])
        v = np.clip(mean + sd * rng.standard_normal(len(idx)), prof["lo"][idx], prof["hi"][idx])
        q = (rng.random(len(idx)) < bad_quality).astype(np.int64)
        # with the dense indices and configuration fingerprint that ingest puts in every readings
        # message (the per-reading baseline looks sensors up by name, one dict lookup each)
        out.append(Batch(site_of[idx].tolist(), sensor_of[idx].tolist(), ts.astype(np.int64),
                         np.round(v, 3), q, idx=idx.astype(np.int64), cfg=config.sensor_fingerprint))
    return out
