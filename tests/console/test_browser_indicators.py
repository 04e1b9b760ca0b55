"""The indicators page in a real browser (Debian's chromium through Playwright), on an in-process
console over the example configuration with a red episode and its outbox rows in the store: the
coverage of each zone against the target, the loudspeakers' state, the people to phone, the safety
index's ranking with its trend; an officer of another enterprise sees none of it.

No pipeline: the page's data is the API's, computed from the store.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest

from alerts.store import utcnow
from console.app import create_app
from console.service import ConsoleServer
from tests.console.browser_fixtures import browser, login, screenshot  # noqa: F401 - browser is a fixture
from tests.console.conftest import CH_ENTERPRISE, PASSWORD, TD_ENTERPRISE, raise_warning
from tests.console.test_indicators import record, subscribers

VIEWPORT = {"width": 1400, "height": 1000}


@pytest.fixture
def site(console_config, console_store, users) -> Iterator[tuple[str, dict[str, list[str]]]]:
    """The console's URL and the zones of CH-001: a red episode an hour ago, all subscribers of the
    first zone but one delivered, the last failed; the CAP Alert sent to that zone only."""
    eid = raise_warning(console_store, console_config, "CH-001", "GT-101", "combustible_gas", level="red",
                        now=utcnow() - dt.timedelta(hours=1))
    zones = subscribers(console_config, "CH-001")
    first, phones = next((z, p) for z, p in zones.items() if len(p) >= 2)
    for phone in phones[:-1]:
        record(console_store, eid, "CH-001", phone, delivery="delivered", provider_id=f"SM{phone}")
    record(console_store, eid, "CH-001", phones[-1], status="failed", error="21211 invalid number")
    record(console_store, eid, "CH-001", first, channel="cap", kind="cap-alert", provider_id="CAP-1")
    with ConsoleServer(create_app(console_config, console_store)) as server:
        yield server.url, zones


def _open(browser, url: str, user: str):  # noqa: F811
    ctx = browser.new_context(viewport=VIEWPORT, locale="zh-CN")
    elsewhere: list[str] = []
    ctx.on("request", lambda r: elsewhere.append(r.url) if not r.url.startswith((url, "data:")) else None)
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    login(page, url, user, PASSWORD)
    page.get_by_test_id("nav-indicators").click()
    page.wait_for_url(f"{url}/indicators*")
    return ctx, page, elsewhere, errors


def test_coverage_view(browser, site) -> None:  # noqa: F811
    url, zones = site
    first, *others = zones
    phones = zones[first]
    ctx, page, elsewhere, errors = _open(browser, url, "op")
    try:
        row = page.wait_for_selector(f'[data-testid="coverage-zone"][data-zone="{first}"]')
        share = round((len(phones) - 1) / len(phones) * 100, 1)
        assert row.get_attribute("data-met") == "false"
        assert f"{share:g}%" in row.inner_text() and "未达标" in row.inner_text()
        assert row.query_selector('[data-testid="loudspeakers"]').get_attribute("data-state") == "sent"
        assert page.get_by_test_id("coverage-target").inner_text() == "目标 ≥ 90%"
        for zone in others:
            other = page.wait_for_selector(f'[data-testid="coverage-zone"][data-zone="{zone}"]')
            assert other.query_selector('[data-testid="loudspeakers"]').get_attribute("data-state") == "none"
        # the people to phone: the failed one, and everyone of the zones nothing was sent to
        follow = page.eval_on_selector_all('[data-testid="follow-up-row"]',
                                           "rows => rows.map(r => [r.dataset.phone, r.dataset.outcome])")
        expected = [[phones[-1], "failed"]] + [[p, "not_sent"] for z in others for p in zones[z]]
        assert follow == expected
        failed = page.locator(f'[data-testid="follow-up-row"][data-phone="{phones[-1]}"]')
        assert "发送失败" in failed.inner_text() and "21211 invalid number" in failed.inner_text()
        assert failed.locator(f'a[href="tel:{phones[-1]}"]').count() == 1
        # the ranking: every enterprise, lowest mean first, each with its trend line
        page.wait_for_selector('[data-testid="safety-row"]')
        ranked = page.eval_on_selector_all('[data-testid="safety-row"]',
                                           "rows => rows.map(r => [r.dataset.enterprise, Number(r.dataset.mean)])")
        assert ranked[0][0] == CH_ENTERPRISE and [m for _, m in ranked] == sorted(m for _, m in ranked)
        assert page.locator('[data-testid="safety-row"] [data-testid="trend"]').count() == len(ranked)
        screenshot(page, "indicators.png", full_page=True)
        # English
        page.get_by_test_id("lang-switch").click()
        page.wait_for_selector(f'[data-testid="coverage-zone"][data-zone="{first}"]')
        page.wait_for_function("() => document.documentElement.lang === 'en'")
        assert "not met" in page.locator(f'[data-testid="coverage-zone"][data-zone="{first}"]').inner_text()
        assert errors == [] and elsewhere == []
    finally:
        ctx.close()


def test_an_officer_sees_only_his_enterprise(browser, site) -> None:  # noqa: F811
    url, _ = site
    ctx, page, elsewhere, errors = _open(browser, url, "officer_td")
    try:
        page.wait_for_selector('[data-testid="safety-row"]')
        assert page.get_by_test_id("no-red").is_visible()
        assert page.locator('[data-testid="coverage-episode"]').count() == 0
        assert page.locator('[data-testid="follow-up-row"]').count() == 0
        enterprises = page.eval_on_selector_all('[data-testid="safety-row"]', "rows => rows.map(r => r.dataset.enterprise)")
        assert enterprises == [TD_ENTERPRISE]
        assert errors == [] and elsewhere == []
    finally:
        ctx.close()
