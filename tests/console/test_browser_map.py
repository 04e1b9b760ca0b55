"""The 一张图 map in a real browser (Debian's chromium through Playwright), on an in-process console
over the example configuration (萍乡市: 16 sites in its five districts and counties) with
episodes recorded in its store: the city and county
outlines are drawn, every site is drawn inside its county with its level's colour, the buttons,
the mouse wheel and dragging change the view, picking a site still opens it, and an officer sees
only the sites of his enterprise (on the same outlines).

No pipeline: the map's data is the API's (levels from the store's open episodes); the live path
is tested by test_browser.py.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest

from config import example_dir, load_config
from console.app import create_app
from console.service import ConsoleServer
from tests.console.browser_fixtures import browser, login, screenshot  # noqa: F401 - browser is a fixture
from tests.console.conftest import PASSWORD, raise_warning

COUNTIES = {"360302", "360313", "360321", "360322", "360323"}
CITY = load_config(example_dir(), env={})
COUNTY_OF = {s.id: s.region for s in CITY.sites}  # 16 sites in the five districts and counties
LEVELS = {**{s.id: "normal" for s in CITY.sites}, "CH-001": "red", "TD-001": "orange"}
VIEWPORT = {"width": 1400, "height": 900}

#: The centre of a marker's dot, in page pixels.
CENTRE = """(id) => { const r = document.querySelector(`[data-testid="site-${id}"] .dot`).getBoundingClientRect();
  return [r.x + r.width / 2, r.y + r.height / 2]; }"""


@pytest.fixture
def map_url(console_config, console_store, users) -> Iterator[str]:
    raise_warning(console_store, console_config, "CH-001", "GT-101", "combustible_gas", level="red")
    raise_warning(console_store, console_config, "TD-001", "PZ-01", "phreatic_depth", level="orange",
                  value=4.3)
    app = create_app(console_config, console_store)
    with ConsoleServer(app) as server:
        yield server.url


def _open(browser, url: str, user: str):  # noqa: F811
    ctx = browser.new_context(viewport=VIEWPORT, locale="zh-CN")
    elsewhere: list[str] = []
    ctx.on("request", lambda r: elsewhere.append(r.url) if not r.url.startswith((url, "data:")) else None)
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    login(page, url, user, PASSWORD)
    page.wait_for_selector('[data-testid="map"][data-outlines="6"]')
    return ctx, page, elsewhere, errors


def _centre(page, site: str) -> tuple[float, float]:
    x, y = page.evaluate(CENTRE, site)
    return x, y


def _zoom(page) -> float:
    return float(page.get_by_test_id("map").get_attribute("data-zoom"))


def test_outlines_sites_levels_and_pan_zoom(browser, map_url: str) -> None:  # noqa: F811
    ctx, page, elsewhere, errors = _open(browser, map_url, "op")
    try:
        # outlines: the city and its five districts and counties, each a drawn path
        drawn = page.evaluate("""() => Object.fromEntries([...document.querySelectorAll('[data-testid^="outline-"]')]
            .map((p) => [p.dataset.testid.slice(8), p.getBBox().width * p.getBBox().height]))""")
        assert set(drawn) == COUNTIES | {"360300"} and all(area > 100 for area in drawn.values()), drawn
        # sites: the whole city's, each with its level, in its level's colour, inside its county's outline
        assert page.locator('a.marker').count() == len(CITY.sites) == 16
        assert {COUNTY_OF[s] for s in LEVELS} == COUNTIES  # a site in every county
        for site, level in LEVELS.items():
            page.wait_for_selector(f'[data-testid="site-{site}"][data-level="{level}"]')
            fill = page.evaluate(f"""() => [getComputedStyle(document.querySelector('[data-testid="site-{site}"] .dot')).fill,
                getComputedStyle(document.querySelector('.legend .dot.lv-{level}')).backgroundColor]""")
            assert fill[0] == fill[1], (site, level, fill)
            x, y = _centre(page, site)
            under = page.evaluate("([x, y]) => document.elementsFromPoint(x, y).map((e) => e.dataset.testid)", [x, y])
            assert f"outline-{COUNTY_OF[site]}" in under, (site, under)
        assert page.get_by_test_id("count-red").inner_text() == "1"
        assert page.get_by_test_id("count-orange").inner_text() == "1"
        screenshot(page, "map-pingxiang.png")

        # zoom in with the button: the view is magnified about its centre
        assert _zoom(page) == 1
        before = math.dist(_centre(page, "CH-001"), _centre(page, "RG-001"))
        page.get_by_test_id("map-zoom-in").click()
        page.wait_for_function("() => Number(document.querySelector('[data-testid=map]').dataset.zoom) > 1")
        after = math.dist(_centre(page, "CH-001"), _centre(page, "RG-001"))
        assert after == pytest.approx(before * _zoom(page), rel=0.02)
        # the mouse wheel zooms further, about the pointer: the site under it stays put
        page.get_by_test_id("map-zoom-reset").click()
        page.wait_for_function("() => document.querySelector('[data-testid=map]').dataset.zoom === '1.000'")
        x, y = _centre(page, "TD-001")
        page.mouse.move(x, y)
        page.mouse.wheel(0, -400)
        page.wait_for_function("() => Number(document.querySelector('[data-testid=map]').dataset.zoom) > 1.5")
        tx, ty = _centre(page, "TD-001")
        assert abs(tx - x) < 3 and abs(ty - y) < 3
        # dragging pans: every marker moves by the drag
        zoom = _zoom(page)
        start = _centre(page, "CH-001")
        page.mouse.move(x + 40, y + 40)
        page.mouse.down()
        page.mouse.move(x - 60, y + 10, steps=5)
        page.mouse.move(x - 110, y - 10, steps=5)
        page.mouse.up()
        moved = _centre(page, "CH-001")
        assert _zoom(page) == zoom
        assert moved[0] - start[0] == pytest.approx(-150, abs=4) and moved[1] - start[1] == pytest.approx(-50, abs=4)
        # zoom out and back to the whole map
        page.get_by_test_id("map-zoom-out").click()
        page.wait_for_function(f"() => Number(document.querySelector('[data-testid=map]').dataset.zoom) < {zoom}")
        page.get_by_test_id("map-zoom-reset").click()
        page.wait_for_function("() => document.querySelector('[data-testid=map]').dataset.zoom === '1.000'")
        assert math.dist(_centre(page, "CH-001"), _centre(page, "RG-001")) == pytest.approx(before, rel=0.01)

        # picking a site in the view select zooms to it and its zones; its marker opens its page
        page.get_by_test_id("map-area").select_option("CH-001")
        page.wait_for_function("() => Number(document.querySelector('[data-testid=map]').dataset.zoom) > 10")
        box = page.get_by_test_id("zone-Z-LINGANG-EAST").bounding_box()
        assert box is not None and box["width"] > 40, box
        page.get_by_test_id("site-CH-001").locator(".dot").click()
        page.wait_for_url(f"{map_url}/sites/CH-001")
        assert not elsewhere, f"the map fetched from elsewhere: {elsewhere}"
        assert not errors, errors
    finally:
        ctx.close()


def test_an_officer_sees_only_his_own_sites_on_the_same_outlines(browser, map_url: str) -> None:  # noqa: F811
    ctx, page, _, errors = _open(browser, map_url, "officer_td")
    try:
        page.wait_for_selector('[data-testid="site-TD-001"][data-level="orange"]')
        assert page.locator('a.marker').count() == 1
        for site in ("CH-001", "RG-001"):
            assert page.locator(f'[data-testid="site-{site}"]').count() == 0
            assert page.locator(f'[data-testid="site-row-{site}"]').count() == 0
        assert page.locator('[data-testid="zone-Z-XIAHE-VILLAGE"]').count() == 1
        assert page.locator('[data-testid="zone-Z-LINGANG-EAST"]').count() == 0
        assert page.locator('[data-testid^="outline-"]').count() == 6
        assert page.get_by_test_id("count-total").inner_text() == "1"
        assert page.get_by_test_id("count-red").inner_text() == "0"
        screenshot(page, "map-pingxiang-officer.png")
        assert not errors, errors
    finally:
        ctx.close()
