"""``hazwatch synth rain``: a season of synthetic rain-gauge readings, for replay and benchmarks.

A flood season (default 120 days from 1 May, China Standard Time) of 5-minute reports from N
tipping-bucket gauges scattered over ~30 km around the configuration's rain site:

- **background**: on ~30 % of days a few hours of light rain (0.2-2 mm/h) at every gauge, with
  gauge-to-gauge variation;
- **storms**: ``storms`` convective cells at seeded random times, each 2-10 h long with a bell-shaped
  intensity peaking at 30-110 mm/h at its centre and fading with distance (a Gaussian footprint of
  6-20 km radius), so some gauges cross the torrent ladder's rungs and the neighbours do not.

Each gauge reports what a logger sends (:func:`sensors.signals.rain_gauge`): the 0.2 mm bucket
tips of each 5 minutes as ``RAIN-5M`` (increment, mm) and the logger's rolling 1-hour sum as
``RAIN-1H`` -- for every sensor of the template rain site whose quantity is ``rain_increment`` or
``rain_1h``. Rows are written in time order (ts, gauge, sensor), as JSON lines or CSV, one day at a
time. With ``--config-out`` a configuration directory is written too: the template's files with
the template rain site replaced by the N gauges (``RG-001`` ... ``RG-NNN``), so that
``hazwatch replay --config DIR FILE`` evaluates every gauge. Deterministic for a given seed.
"""

from __future__ import annotations

import copy
import datetime as dt
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import orjson
import typer
import yaml
from rich.console import Console

from config import ConfigError, example_dir, load_config
from config.exit_codes import ExitCode
from config.models import Site
from config.notify import region_prefix
from sensors.signals import HOUR_MS, rain_gauge

__all__ = ["Storm", "plan_storms", "synth_app", "synth_rain", "synth_rain_command", "write_rain_config"]

STEP_MS = 300_000  # 5-minute reports
DAY_MS = 86_400_000
DEFAULT_START = "2024-05-01T00:00:00+08:00"  # flood season (汛期) start, China Standard Time
KM_PER_DEG = 111.32


@dataclass(frozen=True)
class Storm:
    """One convective cell: peak intensity ``peak_mm_h`` at (``lat``, ``lon``) at ``peak_ms``."""

    peak_ms: int
    duration_h: float
    peak_mm_h: float
    radius_km: float
    lat: float
    lon: float


def _gauge_positions(template: Site, gauges: int, rng: np.random.Generator) -> np.ndarray:
    """(gauges, 2) lat/lon: gauge 1 at the template site, the others within ~15 km of it."""
    pos = np.empty((gauges, 2))
    pos[0] = (template.lat, template.lon)
    off_km = rng.uniform(-15, 15, size=(gauges - 1, 2))
    pos[1:, 0] = template.lat + off_km[:, 0] / KM_PER_DEG
    pos[1:, 1] = template.lon + off_km[:, 1] / (KM_PER_DEG * np.cos(np.radians(template.lat)))
    return np.round(pos, 4)


def plan_storms(start_ms: int, days: float, storms: int, centre: tuple[float, float],
                rng: np.random.Generator) -> list[Storm]:
    """``storms`` cells spread over the season, each centred within ~10 km of ``centre``."""
    out = []
    span = int(days * DAY_MS)
    for k in range(storms):
        # one storm per equal slice of the season, at a random time inside it: never two at once
        lo, hi = start_ms + span * k // storms, start_ms + span * (k + 1) // storms
        peak = int(rng.integers(lo + 6 * HOUR_MS, max(lo + 6 * HOUR_MS + 1, hi - 6 * HOUR_MS)))
        d_km = rng.uniform(-10, 10, size=2)
        out.append(Storm(
            peak_ms=peak - peak % STEP_MS, duration_h=float(rng.uniform(2, 10)),
            peak_mm_h=float(rng.uniform(30, 110)), radius_km=float(rng.uniform(6, 20)),
            lat=round(centre[0] + d_km[0] / KM_PER_DEG, 4),
            lon=round(centre[1] + d_km[1] / (KM_PER_DEG * np.cos(np.radians(centre[0]))), 4)))
    return out


def _mean_rain(ts: np.ndarray, pos: np.ndarray, storms: list[Storm],
               rng: np.random.Generator) -> np.ndarray:
    """(gauges, steps) expected rain per 5-minute step, mm."""
    n, steps = len(pos), len(ts)
    day = (ts - ts[0]) // DAY_MS
    n_days = int(day[-1]) + 1
    # background: some days rain lightly for a few hours (same hours at every gauge)
    rainy = rng.random(n_days) < 0.3
    begin = rng.integers(0, 20, n_days) * 12  # step of the day it starts
    length = rng.integers(2, 8, n_days) * 12
    rate = rng.uniform(0.2, 2.0, n_days) / 12  # mm per 5 min
    step_of_day = ((ts - ts[0]) % DAY_MS) // STEP_MS
    on = rainy[day] & (step_of_day >= begin[day]) & (step_of_day < begin[day] + length[day])
    mean = np.where(on, rate[day], 0.0)[None, :] * rng.uniform(0.6, 1.4, size=(n, 1))
    for s in storms:
        sigma_ms = s.duration_h * HOUR_MS / 4  # +-2 sigma = the storm's duration
        shape = np.exp(-0.5 * ((ts - s.peak_ms) / sigma_ms) ** 2)
        dy = (pos[:, 0] - s.lat) * KM_PER_DEG
        dx = (pos[:, 1] - s.lon) * KM_PER_DEG * np.cos(np.radians(s.lat))
        footprint = np.exp(-0.5 * (dx**2 + dy**2) / s.radius_km**2)
        mean = mean + footprint[:, None] * shape[None, :] * s.peak_mm_h / 12
    # convective rain is gusty: +-30 % from one 5 minutes to the next
    return mean * rng.lognormal(0.0, 0.3, size=(n, steps))


def _template_site(config_sites: list[Site]) -> Site:
    for site in config_sites:
        if site.kind == "rain" and any(s.quantity == "rain_increment" for s in site.sensors):
            return site
    raise ValueError("the configuration has no rain site with a rain_increment sensor to copy")


def gauge_ids(template: Site, gauges: int) -> list[str]:
    """``RG-001`` ... for a template ``RG-001``; ``{id}-001`` ... for any other id."""
    prefix = template.id.rstrip("0123456789").rstrip("-") or template.id
    return [f"{prefix}-{g:03d}" for g in range(1, gauges + 1)]


def synth_rain(out: Path, *, gauges: int = 20, days: float = 120, storms: int = 6, seed: int = 0,
               start: str = DEFAULT_START, config_dir: Path | None = None) -> dict[str, Any]:
    """Write the readings to ``out`` (``.csv``: CSV, else JSON lines); return what was made."""
    if gauges < 1 or days <= 0 or storms < 0:
        raise ValueError("gauges must be >= 1, days > 0 and storms >= 0")
    cfg = load_config(config_dir or example_dir())
    template = _template_site(cfg.sites)
    rng = np.random.default_rng(seed)
    start_ms = int(dt.datetime.fromisoformat(start).timestamp() * 1000)
    start_ms -= start_ms % STEP_MS
    ts = start_ms + np.arange(int(days * DAY_MS) // STEP_MS, dtype=np.int64) * STEP_MS
    pos = _gauge_positions(template, gauges, rng)
    plan = plan_storms(start_ms, days, storms, (template.lat, template.lon), rng)
    ids = gauge_ids(template, gauges)
    mean = _mean_rain(ts, pos, plan, rng)
    inc, hour = np.empty_like(mean), np.empty_like(mean)
    for g in range(gauges):  # each gauge's bucket carries its own remainder
        inc[g], hour[g] = rain_gauge(ts, mean[g], 0.0, rng)
    series = [(s.id, inc if s.quantity == "rain_increment" else hour)
              for s in template.sensors if s.quantity in ("rain_increment", "rain_1h")]
    as_csv = out.suffix == ".csv"
    rows = 0
    with out.open("wb") as f:
        if as_csv:
            f.write(b"site,sensor,ts,v\n")
        per_day = DAY_MS // STEP_MS
        for a in range(0, len(ts), per_day):  # one day at a time: the file is never in memory
            lines = []
            for k in range(a, min(a + per_day, len(ts))):
                t = int(ts[k])
                for g, gid in enumerate(ids):
                    for sensor, values in series:
                        v = round(float(values[g, k]), 1) + 0.0
                        lines.append(f"{gid},{sensor},{t},{v}\n".encode() if as_csv else
                                     orjson.dumps({"site": gid, "sensor": sensor, "ts": t, "v": v}) + b"\n")
            f.write(b"".join(lines))
            rows += len(lines)
    max_1h = hour.max(axis=1)
    return {"file": str(out), "rows": rows, "bytes": out.stat().st_size, "gauges": ids,
            "start_ms": start_ms, "end_ms": int(ts[-1]), "storms": plan,
            "positions": pos.tolist(), "max_1h_mm": dict(zip(ids, np.round(max_1h, 1).tolist())),
            "season_mm": dict(zip(ids, np.round(inc.sum(axis=1), 1).tolist()))}


def write_rain_config(out_dir: Path, made: dict[str, Any], config_dir: Path | None = None) -> None:
    """A configuration directory with only the synthetic gauges: copies of the template rain site
    (ladders, rain rules, zone), the template's settings and zones, and the recipients that still
    have a site (operators, the gauges' officers and regulators)."""
    src = config_dir or example_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in ("hazwatch.yaml", "zones.yaml"):
        if (src / name).exists():
            shutil.copyfile(src / name, out_dir / name)
    template = _template_site(load_config(src).sites)
    sites = yaml.safe_load((src / "sites.yaml").read_text(encoding="utf-8"))["sites"]
    raw = next(s for s in sites if s["id"] == template.id)
    gauges = []
    for g, (gid, (lat, lon)) in enumerate(zip(made["gauges"], made["positions"]), start=1):
        site = copy.deepcopy(raw)
        site.update(id=gid, name=f"{raw['name']}{g:02d}", lat=lat, lon=lon)
        if site.get("name_en"):
            site["name_en"] = f"{raw['name_en']} {g:02d}"
        gauges.append(site)
    recipients = []
    if (src / "recipients.yaml").exists():
        for r in (yaml.safe_load((src / "recipients.yaml").read_text(encoding="utf-8")) or {}).get("recipients", []):
            if (r.get("role") == "operator" or r.get("enterprise") == template.enterprise
                    or (r.get("role") == "regulator" and r.get("tier") in ("county", "city", "province")
                        and template.region.startswith(region_prefix(str(r.get("region", "")), r["tier"])))):
                recipients.append(r)
    note = "# Written by `hazwatch synth rain --config-out`: synthetic rain gauges copied from {}.\n"
    for name, data in (("sites.yaml", {"sites": gauges}), ("recipients.yaml", {"recipients": recipients})):
        (out_dir / name).write_text(note.format(template.id) + yaml.safe_dump(data, allow_unicode=True, sort_keys=False),
                                    encoding="utf-8")
    load_config(out_dir)  # fail here, with file/path/reason, rather than in the replay


def synth_rain_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="Readings file: .csv for CSV, else JSON lines")],
    gauges: Annotated[int, typer.Option(min=1, help="Rain gauges")] = 20,
    days: Annotated[float, typer.Option(min=0.01, help="Days of 5-minute reports")] = 120,
    storms: Annotated[int, typer.Option(min=0, help="Storms in the season")] = 6,
    seed: Annotated[int, typer.Option(min=0, help="Random seed")] = 0,
    start: Annotated[str, typer.Option(help="First report, RFC 3339")] = DEFAULT_START,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="Template configuration (default: the example)")] = None,
    config_out: Annotated[Path | None, typer.Option(help="Also write a configuration with the gauges here")] = None,
) -> None:
    """A season of synthetic rain-gauge readings with a few storms (for replay and benchmarks)."""
    err = Console(stderr=True, soft_wrap=True)
    try:
        made = synth_rain(out, gauges=gauges, days=days, storms=storms, seed=seed, start=start,
                          config_dir=config)
        if config_out is not None:
            write_rain_config(config_out, made, config)
    except (ConfigError, ValueError) as exc:
        err.print(f"error: {exc}", markup=False, highlight=False)
        raise typer.Exit(ExitCode.USAGE) from None
    err.print(f"wrote {made['rows']:,} readings ({made['bytes'] / 1e6:.1f} MB) of {gauges} gauges to {out}"
              + (f"; configuration in {config_out}" if config_out else ""))
    for s in made["storms"]:
        when = dt.datetime.fromtimestamp(s.peak_ms / 1000, dt.timezone(dt.timedelta(hours=8)))
        err.print(f"  storm peaking {when:%Y-%m-%d %H:%M} +08:00: {s.peak_mm_h:.0f} mm/h at the centre, "
                  f"{s.duration_h:.1f} h, radius {s.radius_km:.0f} km")
    wettest = sorted(made["max_1h_mm"].items(), key=lambda kv: -kv[1])[:5]
    err.print("  highest 1-hour sums: " + ", ".join(f"{g} {mm} mm" for g, mm in wettest))


synth_app = typer.Typer(add_completion=False, no_args_is_help=True, help="Synthetic data sets.")
synth_app.command("rain")(synth_rain_command)
