"""The console's other pages in a real browser on the real pipeline (Mosquitto -> ingest -> Tansu
-> faust rules -> alerts and console), driven over MQTT; Debian's chromium through Playwright.

One stack for the whole walk (the ``pipeline`` fixture is per test, and a start costs tens of
seconds): an operator watches the site page while readings of CH-001/GT-101 arrive and a red
warning is raised; the notifications it caused (one SMS made to fail by the fake Twilio) are on
the notifications page; a maintenance window is created and ended; GT-101, silent since, shows
offline on the data-quality page; the language switches to English and back; an admin adds a
user and reads the configuration page, and the operator is refused both admin pages.

Screenshots of every page go to ``tests/console/artifacts/`` (not committed).
"""

from __future__ import annotations

import httpx
import orjson
import pytest

from console.i18n import strings
from tests.console.browser_fixtures import (  # noqa: F401 - browser, console are fixtures
    BrowserLog,
    Console,
    browser,
    console,
    login,
    now_ms,
    screenshot,
    wait_live,
)

# the end-to-end fixtures (tests/e2e/conftest.py is not a conftest of this directory)
from tests.e2e.conftest import kafka_nodes, pipeline, service_env, settings_patch, sites_edit, wait_until  # noqa: F401

SITE, SENSOR = "CH-001", "GT-101"  # combustible gas, %LEL, every 5 s: red at 50 held 10 s; offline after 15 s
SENSORS = {"GT-101": "%LEL", "GT-102": "%OEL", "LT-201": "m"}  # CH-001's sensors and units (sites.yaml)
GT101_THRESHOLDS = [{"level": "yellow", "value": 10}, {"level": "orange", "value": 25}, {"level": "red", "value": 50}]
FAILING_PHONE, FAILING_NAME = "+8613800000002", "值班员陈静"  # an operator of recipients.yaml
OK_PHONE = "+8613800000001"  # the other operator: gets the red SMS
MAINTAINED = "TD-001"  # the maintenance window's site: not CH-001, whose offline sensor it would hide
PASSWORD = "correct horse battery"
ZH, EN = strings("zh-CN"), strings("en")
VIEWPORT = {"width": 1400, "height": 900}
#: Set on a page; still there later means the page was not reloaded in between.
MARK = "() => { window.__noReload = true; }"
NOT_RELOADED = "() => window.__noReload === true"


def gas(ts: int, v: float) -> tuple[str, bytes]:
    return f"hw/v1/{SITE}/{SENSOR}/reading", orjson.dumps({"ts": ts, "v": v})


@pytest.mark.e2e
def test_site_notifications_silences_quality_language_and_users_pages(browser, console: Console) -> None:  # noqa: F811
    pipe = console.pipeline
    base = console.url
    console.add_user("op-wang", PASSWORD, "operator")
    console.add_user("admin-zhao", PASSWORD, "admin")
    # the next SMS to one operator is refused as an invalid number (permanent: never resent)
    fail = httpx.post(f"{pipe.twilio_url}/_fake/fail", json={"mode": "21211", "count": 1, "to": FAILING_PHONE})
    assert fail.status_code < 300, fail.text
    log = BrowserLog()
    elsewhere: list[str] = []
    contexts, pages = [], []

    def new_context():
        ctx = browser.new_context(viewport=VIEWPORT, locale="zh-CN")
        ctx.on("page", log.attach)
        ctx.on("request", lambda r: elsewhere.append(r.url) if not r.url.startswith((base, "data:")) else None)
        contexts.append(ctx)
        return ctx

    def new_page(ctx):
        page = ctx.new_page()
        pages.append(page)
        return page

    try:
        ctx = new_context()
        page = new_page(ctx)
        login(page, base, "op-wang", PASSWORD)
        episode = _site_page(page, ctx, base, pipe)
        _notifications_page(page, base)
        _channel_banner(page, base, pipe)
        _silences_page(page, ctx, base)
        _quality_page(page, base, pipe)
        _language(page)
        admin = new_page(new_context())
        _users_page(admin, page, base)
        _config_page(admin, page, base, pipe.config_dir)
        _reload_from_the_config_page(admin, pipe.config_dir)
        assert not elsewhere, f"the console fetched from elsewhere: {elsewhere}"
        uncaught = [line for line in log.lines if "uncaught" in line]
        assert not uncaught, f"the pages threw: {uncaught}"
        print(f"red episode {episode}: site, notifications, silences, quality, language, users and "
              "configuration pages checked")
    except BaseException:
        for i, p in enumerate(pages):
            if not p.is_closed():
                screenshot(p, f"pages-failure-{i}.png", full_page=True)
        log.save(console)
        raise
    finally:
        for c in contexts:
            c.close()


# ------------------------------------------------------------------------------ 1. site detail
def _site_page(page, ctx, base: str, pipe) -> str:
    """Sensors with units, live values without a reload, a chart with its threshold lines per
    sensor; then a red warning from GT-101 readings shows in the warning history. The episode id."""
    start = now_ms() - 40_000  # GT-101 readings every 5 s of event time from here, the last one about now
    page.goto(f"{base}/sites/{SITE}")
    wait_live(page)
    for sensor_id, unit in SENSORS.items():
        row = page.get_by_test_id(f"sensor-{sensor_id}")
        row.wait_for()
        assert unit in row.inner_text(), f"{sensor_id}: no unit {unit} in {row.inner_text()!r}"
        chart = page.get_by_test_id(f"chart-{sensor_id}")
        chart.locator("canvas").first.wait_for()
        assert f"({unit})" in chart.locator("figcaption").inner_text()
        assert orjson.loads(chart.get_attribute("data-thresholds")), f"{sensor_id}: no threshold lines"
    chart = page.get_by_test_id(f"chart-{SENSOR}")
    assert orjson.loads(chart.get_attribute("data-thresholds")) == GT101_THRESHOLDS
    legend = chart.locator(".u-legend").inner_text()
    for th in GT101_THRESHOLDS:  # one dashed series per rung, labelled with its level and value
        assert f"{ZH['level.' + th['level']]} {th['value']}" in legend, legend

    # live values: readings over MQTT change the value on the open page, which is not reloaded
    assert chart.get_by_test_id("no-points").count() == 1  # a fresh stack: nothing heard from GT-101 yet
    page.evaluate(MARK)
    value = page.get_by_test_id(f"sensor-value-{SENSOR}")
    pipe.publish([gas(start, 2.1), gas(start + 5000, 2.4)])
    page.get_by_test_id(f"sensor-value-{SENSOR}").filter(has_text="2.4 %LEL").wait_for(timeout=20_000)
    pipe.publish([gas(start + 10_000, 3.7)])
    page.get_by_test_id(f"sensor-value-{SENSOR}").filter(has_text="3.7 %LEL").wait_for(timeout=20_000)
    assert value.inner_text() == "3.7 %LEL"
    # heard: the row says so (not "unknown"), and the chart has dropped its "no data" line
    page.locator(f'[data-testid="sensor-{SENSOR}"][data-status="ok"]').wait_for(timeout=10_000)
    assert ZH["sensor.ok"] in page.get_by_test_id(f"sensor-{SENSOR}").inner_text()
    chart.get_by_test_id("no-points").wait_for(state="detached", timeout=5_000)
    assert page.evaluate(NOT_RELOADED), "the page was reloaded to show the value"
    sensor = next(s for s in ctx.request.get(f"{base}/api/sites/{SITE}").json()["sensors"] if s["id"] == SENSOR)
    assert sensor["status"] == "ok", f"{SENSOR} while publishing: {sensor}"  # the quality page's "before"
    screenshot(page, "site.png", full_page=True)

    # red: 60+ %LEL held 10 s of event time; the history lists the episode, live
    pipe.publish([gas(start + 15_000 + 5000 * i, v) for i, v in enumerate((60.0, 61.0, 62.0, 63.0))])

    def red() -> list[dict]:
        return ctx.request.get(f"{base}/api/warnings?site={SITE}&level=red&state=all").json()

    episode = wait_until(red, 30, "the red warning of CH-001 in the API")[0]["id"]
    page.locator(f'[data-testid="history-row"][data-episode="{episode}"]').wait_for(timeout=15_000)
    page.locator('[data-testid="site-level"][data-level="red"]').wait_for(timeout=15_000)
    history = page.locator(f'[data-testid="history-row"][data-episode="{episode}"]').inner_text()
    assert ZH["level.red"] in history and f"{SITE}/{SENSOR}" in history, history
    page.get_by_test_id(f"sensor-value-{SENSOR}").filter(has_text="63 %LEL").wait_for(timeout=15_000)
    assert page.evaluate(NOT_RELOADED), "the page was reloaded to show the warning"
    screenshot(page, "site-red.png", full_page=True)
    return episode


# ------------------------------------------------------------------------------ 2. notifications
def _notifications_page(page, base: str) -> None:
    """The red warning's notifications with recipient, channel and status; the one failed SMS
    stands out and is what "failed only" shows."""
    page.goto(f"{base}/notifications")
    wait_live(page)
    failed = page.locator('[data-testid="notification-row"][data-failed="true"]')
    failed.first.wait_for(timeout=30_000)  # the page asks again every 5 s
    sent = page.locator('[data-testid="notification-row"][data-status="sent"]').filter(has_text=OK_PHONE)
    sent.first.wait_for(timeout=30_000)
    # the one refused SMS: a row per notice it carried (one, or several grouped into that SMS,
    # depending on how the warnings fell into the dispatcher's passes), all to that operator
    n_failed = failed.count()
    texts = [failed.nth(i).inner_text() for i in range(n_failed)]
    assert all(FAILING_PHONE in t and "21211" in t for t in texts), texts
    row = failed.first
    text = row.inner_text()
    for expected in (FAILING_NAME, FAILING_PHONE, ZH["channel.sms"], ZH["nstatus.failed"], "21211", SITE):
        assert expected in text, f"{expected!r} not in the failed row: {text!r}"
    ok_text = sent.first.inner_text()
    assert ZH["channel.sms"] in ok_text and ZH["nstatus.sent"] in ok_text, ok_text
    # it stands out: its own class, an icon, and another background than a sent row
    assert "failed" in (row.get_attribute("class") or "").split()
    assert row.get_by_test_id("failed-icon").is_visible()
    background = "(el) => getComputedStyle(el).backgroundColor"
    assert row.evaluate(background) != sent.first.evaluate(background)
    assert page.locator('[data-testid="notification-row"][data-failed="false"]').count() > 1
    screenshot(page, "notifications.png", full_page=True)

    page.get_by_test_id("failed-only").check()
    page.wait_for_function("""() => {
      const rows = [...document.querySelectorAll('[data-testid="notification-row"]')];
      return rows.length > 0 && rows.every((r) => r.dataset.failed === 'true');
    }""", timeout=15_000)
    assert "failed=true" in page.url
    assert failed.count() == n_failed and FAILING_PHONE in failed.first.inner_text()
    assert page.get_by_test_id("notification-count").inner_text() == str(n_failed)
    screenshot(page, "notifications-failed.png", full_page=True)


def _channel_banner(page, base: str, pipe) -> None:
    """A failing SMS channel (as the alerts service records it) shows on every page until it
    works again, when the banner goes by itself."""
    from alerts.channel_alarm import ChannelAlarms
    from alerts.store import utcnow

    store = pipe.store()
    try:
        alarms = ChannelAlarms(store, pipe.config, utcnow)
        for _ in range(pipe.config.settings.notify.channel_alarm.after_failures):
            alarms.failed("sms", "20503 HTTP 503: Service Unavailable")
        page.goto(f"{base}/warnings")
        banner = page.get_by_test_id("channel-banner")
        banner.wait_for(timeout=10_000)
        text = banner.inner_text()
        assert ZH["channel.failing"].format(channel=ZH["channel.sms"]) in text and "503" in text, text
        screenshot(page, "channel-banner.png")
        alarms.succeeded("sms")
        banner.wait_for(state="detached", timeout=30_000)  # the page asks every 15 s
    finally:
        store.engine.dispose()


# ------------------------------------------------------------------------------ 4. silences
def _silences_page(page, ctx, base: str) -> None:
    """A maintenance window created through the form is listed, ended through its button, shown
    ended, and both changes are in the audit under the operator's name."""
    reason = "坝体检修（浏览器测试）"
    page.goto(f"{base}/silences")
    wait_live(page)
    page.get_by_test_id("silence-kind").select_option("maintenance")
    page.get_by_test_id("silence-site").select_option(MAINTAINED)  # waits for the options to load
    page.get_by_test_id("silence-reason").fill(reason)
    page.get_by_test_id("silence-submit").click()
    row = page.locator('[data-testid="silence-row"]').filter(has_text=reason)
    row.wait_for(timeout=10_000)
    assert row.get_attribute("data-state") == "active"
    silence = int(row.get_attribute("data-silence"))
    text = row.inner_text()
    for expected in (ZH["silences.kind.maintenance"], f"site={MAINTAINED}", "op-wang", ZH["silences.active"]):
        assert expected in text, f"{expected!r} not in {text!r}"
    assert ZH["silences.created"].replace("{id}", str(silence)) in page.get_by_test_id("status").inner_text()
    screenshot(page, "silences.png", full_page=True)

    row.get_by_test_id("silence-end").click()
    page.get_by_test_id("status").filter(has_text=ZH["silences.ended_msg"].replace("{id}", str(silence))).wait_for()
    page.locator(f'[data-testid="silence-row"][data-silence="{silence}"]').wait_for(state="detached")
    page.get_by_test_id("include-ended").check()
    ended = page.locator(f'[data-testid="silence-row"][data-silence="{silence}"][data-state="ended"]')
    ended.wait_for(timeout=10_000)
    assert ZH["silences.ended"] in ended.inner_text()
    assert ended.get_by_test_id("silence-end").count() == 0
    screenshot(page, "silences-ended.png", full_page=True)

    audit = ctx.request.get(f"{base}/api/audit?limit=100").json()
    rows = sorted((a["action"], a["actor"]) for a in audit if a["silence_id"] == silence)
    assert rows == [("silence_create", "op-wang"), ("silence_end", "op-wang")], audit


# ------------------------------------------------------------------------------ 3. data quality
def _quality_page(page, base: str, pipe) -> None:
    """GT-101, ok while it published, is offline once silent for more than 15 s; the online-rate
    table has every enterprise of the configuration."""
    page.goto(f"{base}/quality")
    wait_live(page)
    row = page.locator(f'[data-testid="problem-row"][data-sensor="{SITE}/{SENSOR}"][data-status="offline"]')
    row.wait_for(timeout=45_000)  # 15 s of silence, the rules' tick, then the page's poll or health event
    assert ZH["sensor.offline"] in row.inner_text()
    enterprises = {s.enterprise for s in pipe.config.sites}
    rates = page.locator('[data-testid="rate-row"]')
    rates.first.wait_for()
    assert {rates.nth(i).get_attribute("data-enterprise") for i in range(rates.count())} == enterprises
    ours = page.locator(f'[data-testid="rate-row"][data-enterprise="{pipe.config.site(SITE).enterprise}"]')
    assert "%" in ours.inner_text(), ours.inner_text()
    screenshot(page, "quality.png", full_page=True)


# ------------------------------------------------------------------------------ 5. language
def _language(page) -> None:
    """The switch shows English labels (server-rendered and script-rendered), then zh-CN again."""
    switch = page.get_by_test_id("lang-switch")
    assert switch.inner_text() == ZH["lang.switch"]
    with page.expect_navigation():
        switch.click()
    page.wait_for_selector("html[lang=en]")
    wait_live(page)
    assert page.locator("h1").inner_text() == EN["quality.heading"]
    assert page.get_by_test_id("nav-quality").inner_text() == EN["nav.quality"]
    assert page.get_by_test_id("live").inner_text() == EN["live.connected"]
    row = page.locator(f'[data-testid="problem-row"][data-sensor="{SITE}/{SENSOR}"]')
    row.wait_for()
    assert EN["sensor.offline"] in row.inner_text()
    headers = page.locator('[data-testid="sensor-problems"] th').all_inner_texts()
    assert len(set(headers)) == len(headers), f"two columns with one name: {headers}"
    screenshot(page, "quality-en.png", full_page=True)
    with page.expect_navigation():
        page.get_by_test_id("lang-switch").click()
    page.wait_for_selector("html[lang=zh-CN]")
    assert page.locator("h1").inner_text() == ZH["quality.heading"]
    assert page.get_by_test_id("nav-quality").inner_text() == ZH["nav.quality"]


# ------------------------------------------------------------------------------ 6. users
def _users_page(admin_page, operator_page, base: str) -> None:
    """An admin adds a user through the form (who can then log in, in their language); an
    operator gets 403 and no link to the page."""
    login(admin_page, base, "admin-zhao", PASSWORD)
    admin_page.goto(f"{base}/admin/users")
    wait_live(admin_page)
    admin_page.locator('[data-testid="user-row"][data-username="op-wang"]').wait_for()
    admin_page.get_by_test_id("user-username").fill("op-zhou")
    admin_page.get_by_test_id("user-password").fill(PASSWORD)
    admin_page.get_by_test_id("user-role").select_option("operator")
    admin_page.get_by_test_id("user-language").select_option("en")
    admin_page.get_by_test_id("user-submit").click()
    row = admin_page.locator('[data-testid="user-row"][data-username="op-zhou"]')
    row.wait_for(timeout=10_000)
    text = row.inner_text()
    assert ZH["user.role.operator"] in text and "admin-zhao" in text, text
    assert ZH["users.created"].replace("{name}", "op-zhou") in admin_page.get_by_test_id("status").inner_text()
    users = admin_page.context.request.get(f"{base}/api/users").json()
    assert {"username": "op-zhou", "role": "operator", "language": "en", "created_by": "admin-zhao"}.items() \
        <= next(u for u in users if u["username"] == "op-zhou").items()
    screenshot(admin_page, "users.png", full_page=True)

    other = admin_page.context.browser.new_context(viewport=VIEWPORT, locale="zh-CN")
    try:
        newcomer = other.new_page()
        login(newcomer, base, "op-zhou", PASSWORD)
        assert newcomer.locator("html").get_attribute("lang") == "en"  # their own language
    finally:
        other.close()

    assert operator_page.get_by_test_id("nav-users").count() == 0
    response = operator_page.goto(f"{base}/admin/users")
    assert response is not None and response.status == 403
    operator_page.get_by_test_id("forbidden").wait_for()
    assert operator_page.get_by_test_id("forbidden").inner_text() == ZH["common.forbidden"]
    assert operator_page.get_by_test_id("users-table").count() == 0
    assert operator_page.context.request.get(f"{base}/api/users").status == 403
    screenshot(operator_page, "users-forbidden.png")


# ------------------------------------------------------------------------------ 7. configuration
def _config_page(admin_page, operator_page, base: str, config_dir) -> None:
    """An admin reads the configuration (read-only): the summary says the files on disk load and
    counts what is configured; CH-001's site, opened, shows GT-101's ladder in level colours. An
    operator gets 403 and no link to the page."""
    from config import load_config

    config = load_config(config_dir)
    admin_page.get_by_test_id("nav-config").click()
    admin_page.wait_for_url(f"{base}/admin/config")
    admin_page.locator("[data-testid=config-check] [data-valid=true]").wait_for()
    assert admin_page.get_by_test_id("config-readonly").inner_text() == ZH["config.readonly"]
    assert admin_page.get_by_test_id("count-sites").inner_text() == str(len(config.sites))
    assert admin_page.get_by_test_id("count-sensors").inner_text() == str(sum(len(s.sensors) for s in config.sites))
    assert admin_page.get_by_test_id("fingerprint").inner_text() == config.sensor_fingerprint
    assert admin_page.get_by_test_id("config-issues").count() == 0

    site = admin_page.locator('[data-testid="config-site"][data-site="CH-001"]')
    ladder = site.locator('[data-testid="ladder"][data-sensor="CH-001/GT-101"]')
    assert not ladder.is_visible()  # collapsed until opened
    site.locator("summary").click()
    row = ladder.locator('[data-testid="ladder-row"][data-rule="combustible_gas"]')
    row.wait_for()
    rungs = [(li.get_attribute("data-level"), li.inner_text().strip()) for li in row.locator("li").all()]
    assert rungs == [("yellow", f"{ZH['level.yellow']} ≥ 10 %LEL"), ("orange", f"{ZH['level.orange']} ≥ 25 %LEL"),
                     ("red", f"{ZH['level.red']} ≥ 50 %LEL")], rungs
    red = row.locator("li[data-level=red] .badge")
    assert red.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(214, 32, 42)"  # --red
    text = row.inner_text()
    assert "2 %LEL" in text and "GB/T 50493-2019 §5.5.2" in text, text  # deadband, source
    screenshot(admin_page, "config.png", full_page=True)

    assert operator_page.get_by_test_id("nav-config").count() == 0
    response = operator_page.goto(f"{base}/admin/config")
    assert response is not None and response.status == 403
    operator_page.get_by_test_id("forbidden").wait_for()
    assert operator_page.get_by_test_id("config-summary").count() == 0
    assert operator_page.context.request.get(f"{base}/api/config").status == 403


# ------------------------------------------------------------------------------ 8. reload
def _reload_from_the_config_page(admin_page, config_dir) -> None:
    """The admin lowers GT-101's orange rung in the files and presses "Reload": the page lists the
    change, every service answers "applied" below the button, and the ladder shows the new rung.
    A file that does not validate is refused with its reason, and nothing changes."""
    import yaml

    sites = config_dir / "sites.yaml"
    text = sites.read_text(encoding="utf-8")

    def with_orange(value: object) -> str:  # the files with GT-101's orange rung at value
        doc = yaml.safe_load(text)
        doc["sites"][0]["sensors"][0]["thresholds"][0]["ladder"][1]["value"] = value
        return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)
    sites.write_text(with_orange(20), encoding="utf-8")
    admin_page.get_by_test_id("reload-button").click()
    admin_page.locator("[data-testid=reload-result] [data-applied=true]").wait_for()
    change = admin_page.locator("[data-testid=reload-changes] li")
    assert change.get_attribute("data-change") == "sensor CH-001/GT-101 changed: thresholds.combustible_gas.ladder.orange.value 25 → 20"
    assert change.inner_text().strip() == "传感器 CH-001/GT-101 已修改：thresholds.combustible_gas.ladder.orange.value 25 → 20"  # in the page's language
    for service in ("console", "ingest", "rules", "alerts"):  # each answers on the control topic
        admin_page.locator(f'[data-testid=reload-outcome][data-service={service}][data-result=applied]').first.wait_for(
            timeout=60_000)
    site = admin_page.locator('[data-testid="config-site"][data-site="CH-001"]')
    site.locator("summary").click()
    orange = site.locator('[data-testid="ladder"][data-sensor="CH-001/GT-101"] li[data-level=orange]')
    assert orange.inner_text().strip() == f"{ZH['level.orange']} ≥ 20 %LEL"

    sites.write_text(with_orange("twenty"), encoding="utf-8")
    admin_page.get_by_test_id("reload-button").click()
    admin_page.locator("[data-testid=reload-result] [data-applied=false]").wait_for()
    issues = admin_page.get_by_test_id("reload-issues").inner_text()
    assert "sites.yaml" in issues and "ladder[1].value" in issues, issues
    assert orange.inner_text().strip() == f"{ZH['level.orange']} ≥ 20 %LEL"  # the one in force stays
    screenshot(admin_page, "config-reload.png", full_page=True)
