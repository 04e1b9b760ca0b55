"""The operator console in a real browser on the real pipeline: Mosquitto -> ingest -> Tansu ->
faust rules -> console (and alerts), driven over MQTT; Debian's chromium through Playwright.

The acceptance bound of the live console: a site's marker turns red on the map, and the warning
shows (red banner, row on the warnings page) within 2 s of the publish of the reading that
caused it.

Screenshots go to ``tests/console/artifacts/`` (not committed). The README's picture,
``docs/console.png``, is taken during ``hazwatch demo``, not here.
"""

from __future__ import annotations

import json
import threading

import orjson
import pytest

from config.topics import WARNINGS
from console.i18n import LANGS, strings
from tests.console.browser_fixtures import (  # noqa: F401 - browser, console are fixtures
    ARTIFACTS,
    ROOT,
    BrowserLog,
    Console,
    browser,
    console,
    login,
    now_ms,
    screenshot,
    seen_at,
    wait_live,
    watch,
)

# the end-to-end fixtures (tests/e2e/conftest.py is not a conftest of this directory)
from tests.e2e.conftest import TopicReader, kafka_nodes, pipeline, service_env, settings_patch, sites_edit, wait_until  # noqa: F401

SITE, SENSOR = "CH-001", "GT-101"  # combustible gas, %LEL: red at 50 held 10 s (sites.yaml)
OTHER_ENTERPRISE = "夏河矿业有限公司"  # TD-001's
PASSWORD = "correct horse battery"
BOUND_MS = 2000
#: Counts the oscillators the page starts (the red warning's tone is generated with WebAudio).
COUNT_TONES = """() => {
  window.__tones = 0;
  const create = AudioContext.prototype.createOscillator;
  AudioContext.prototype.createOscillator = function () { window.__tones += 1; return create.call(this); };
}"""
STATIC = ROOT / "console" / "static"


def readings(end_ms: int) -> list[tuple[int, float]]:
    """(ts, value) for GT-101 every 5 s (its period) ending at ``end_ms``: three normal, then
    three at 60 %LEL. Red needs the 50 %LEL rung held 10 s of event time, so the last reading
    is the one that raises it (straight from normal: every rung is reached at once)."""
    values = [2.1, 2.4, 2.2, 60.0, 61.0, 62.0]
    return [(end_ms - 5000 * (len(values) - 1 - i), v) for i, v in enumerate(values)]


def mqtt(ts: int, v: float) -> tuple[str, bytes]:
    return f"hw/v1/{SITE}/{SENSOR}/reading", orjson.dumps({"ts": ts, "v": v})


class KeepAlive:
    """A site's devices reporting a normal value (the bottom of each sensor's range) every 3 s,
    in a thread, until :meth:`stop`. The timestamps start at ``back_ms`` and go up by 1 ms a
    report: arrival keeps a sensor online, and the test's own later readings stay the newest."""

    def __init__(self, pipe, site, back_ms: int) -> None:  # noqa: ANN001 - a Pipeline and a Site
        self.pipe, self.site, self.ts = pipe, site, back_ms
        self.released: set[str] = set()
        self.lock, self.stopping = threading.Lock(), threading.Event()
        self._report()  # the first report before the test looks, from this thread
        self.thread = threading.Thread(target=self._run, name="keep-alive", daemon=True)
        self.thread.start()

    def _report(self) -> None:
        with self.lock:
            self.ts += 1
            self.pipe.publish([(f"hw/v1/{self.site.id}/{x.id}/reading",
                                orjson.dumps({"ts": self.ts, "v": x.range[0] if x.range else 0.0}))
                               for x in self.site.sensors if x.id not in self.released])

    def _run(self) -> None:
        while not self.stopping.wait(3.0):
            self._report()

    def release(self, sensor: str) -> None:
        """``sensor`` reports no more from here on (no report of it is in flight once this returns)."""
        with self.lock:
            self.released.add(sensor)

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(15)


@pytest.mark.e2e
def test_red_warning_live_acknowledged_and_hidden_from_another_enterprise(browser, console: Console) -> None:  # noqa: F811
    pipe = console.pipeline
    base = console.url
    # the site's sensors keep reporting normal values, as devices do, so that none of them falls
    # offline -- a yellow equipment fault, 15 s after its last reading arrived -- however slowly
    # the browser comes up on a loaded machine; GT-101 is left to the test from step 2 on
    alive = KeepAlive(pipe, next(s for s in pipe.config.sites if s.id == SITE), now_ms() - 60_000)
    console.add_user("op-wang", PASSWORD, "operator")
    console.add_user("officer-li", PASSWORD, "officer", OTHER_ENTERPRISE)
    log = BrowserLog()
    warnings_topic = TopicReader(pipe.stack.kafka_bootstrap, WARNINGS)
    ctx = browser.new_context(viewport={"width": 1400, "height": 900}, locale="zh-CN")
    ctx.on("page", log.attach)
    elsewhere: list[str] = []  # no CDN, no tiles, no fonts: every request goes to the console
    ctx.on("request", lambda r: elsewhere.append(r.url) if not r.url.startswith((base, "data:")) else None)
    pages = []
    try:
        # 1. an operator logs in through the form; the map and the warnings page are open and live
        map_page = ctx.new_page()
        pages.append(map_page)
        login(map_page, base, "op-wang", PASSWORD)
        list_page = ctx.new_page()
        pages.append(list_page)
        list_page.goto(base + "/warnings")
        for page in (map_page, list_page):
            wait_live(page)
        marker = map_page.locator(f'[data-testid="site-{SITE}"]')
        assert marker.get_attribute("data-level") == "normal"
        # sound on (the click is the gesture browsers want before audio); count the tones played
        map_page.evaluate(COUNT_TONES)
        map_page.get_by_test_id("sound-toggle").click()
        assert map_page.get_by_test_id("sound-toggle").get_attribute("aria-pressed") == "true"
        tones_before = map_page.evaluate("() => window.__tones")
        watch(map_page, {"marker": f'[data-testid="site-{SITE}"][data-level="red"]',
                         "banner": f'[data-testid="red-banner"][data-site="{SITE}"]'})
        watch(list_page, {"row": f'[data-testid="warning-row"][data-site="{SITE}"][data-level="red"]'})

        # 2. readings over MQTT: the first five reach the console (its live value shows the
        #    fifth), then the sixth -- the one that raises red -- is published and timed
        alive.release(SENSOR)
        plan = readings(now_ms())
        published: dict[int, int] = {}
        for ts, v in plan[:-1]:
            published[ts] = now_ms()
            pipe.publish([mqtt(ts, v)])
        wait_until(lambda: _sensor(ctx, base)["ts_ms"] == plan[-2][0], 30, "the fifth reading in the console")
        assert map_page.locator(f'[data-testid="red-banner"][data-site="{SITE}"]').count() == 0
        ts, v = plan[-1]
        published[ts] = now_ms()
        pipe.publish([mqtt(ts, v)])

        # 3. the marker turns red, the banner and the row show: within 2 s of that publish
        map_page.wait_for_selector(f'[data-testid="site-{SITE}"][data-level="red"]', timeout=15_000)
        map_page.wait_for_selector(f'[data-testid="red-banner"][data-site="{SITE}"]', timeout=15_000)
        list_page.wait_for_selector(f'[data-testid="warning-row"][data-site="{SITE}"][data-level="red"]',
                                    timeout=15_000)
        red = wait_until(lambda: [e for e in warnings_topic.poll() if e["site"] == SITE and e["level"] == "red"],
                         15, "the red warning event")[0]
        assert red["ts"] in published, f"the red warning came from a reading the test did not publish: {red}"
        cause = published[red["ts"]]
        seen = {**seen_at(map_page), **seen_at(list_page)}
        latency = {k: seen[k] - cause for k in ("marker", "banner", "row")}
        print(f"publish -> seen (ms): {latency}; red from the reading at ts {red['ts']}"
              f" ({'the timed last one' if red['ts'] == ts else 'an earlier one'})")
        (ARTIFACTS / "latency.json").write_text(json.dumps({"latency_ms": latency, "bound_ms": BOUND_MS}))
        slow = {k: ms for k, ms in latency.items() if ms > BOUND_MS}
        assert not slow, (f"acceptance bound: a red warning must show on the console within {BOUND_MS} ms of"
                          f" the publish of the reading that caused it; took {slow} ms")
        episode = red["episode"]
        assert "红色预警" in map_page.locator(f'[data-testid="red-banner"][data-site="{SITE}"]').inner_text()
        assert marker.get_attribute("data-level") == "red"
        assert map_page.locator('[data-testid="count-red"]').inner_text() == "1"
        assert map_page.evaluate("() => window.__tones") > tones_before, "the red warning played no sound"
        screenshot(map_page, "map-red.png")
        row = list_page.locator(f'[data-testid="warning-row"][data-episode="{episode}"]')
        list_page.locator(f'[data-testid="warning-row"][data-episode="{episode}"][data-provisional="false"]').wait_for(
            timeout=10_000)  # the store's row has replaced the one drawn from the event
        assert row.get_attribute("data-state") == "active"
        screenshot(list_page, "warnings-red.png", full_page=True)

        # 4. acknowledge through the button
        row.get_by_role("button", name="确认").click()

        # 5. the state changes on the page (and the banner goes), and the audit has the row
        list_page.locator(f'[data-testid="warning-row"][data-episode="{episode}"][data-state="acknowledged"]').wait_for(
            timeout=10_000)
        assert "op-wang" in row.inner_text()
        map_page.locator(f'[data-testid="red-banner"][data-site="{SITE}"]').wait_for(state="detached", timeout=10_000)
        audit = ctx.request.get(f"{base}/api/audit?limit=100").json()
        acks = [a for a in audit if a["episode_id"] == episode and a["actor"] == "op-wang"
                and a["action"].startswith("ack")]
        assert len(acks) == 1, f"one acknowledgement in the audit, got {audit}"
        screenshot(list_page, "warnings-acknowledged.png", full_page=True)

        # 6. an officer of another enterprise sees neither the site nor the warning
        other = browser.new_context(viewport={"width": 1400, "height": 900}, locale="zh-CN")
        other.on("page", log.attach)
        other.on("request", lambda r: elsewhere.append(r.url) if not r.url.startswith((base, "data:")) else None)
        officer = other.new_page()
        pages.append(officer)
        login(officer, base, "officer-li", PASSWORD)
        wait_live(officer)
        officer.locator('[data-testid="site-TD-001"]').wait_for()
        assert officer.locator(f'[data-testid="site-{SITE}"]').count() == 0
        assert officer.locator(f'[data-testid="site-row-{SITE}"]').count() == 0
        assert officer.locator('[data-testid="count-red"]').inner_text() == "0"
        assert officer.locator('[data-testid="red-banner"]').count() == 0
        screenshot(officer, "map-officer.png")
        officer.goto(base + "/warnings")
        wait_live(officer)
        officer.locator('[data-testid="warning-count"]').filter(has_text="共").wait_for()
        assert officer.locator(f'[data-testid="warning-row"][data-site="{SITE}"]').count() == 0
        assert officer.locator(f'[data-episode="{episode}"]').count() == 0
        assert other.request.get(f"{base}/api/sites/{SITE}").status == 404
        assert other.request.get(f"{base}/api/warnings/{episode}").status == 404
        listed = other.request.get(f"{base}/api/warnings").json()
        assert not [w for w in listed if w["site"] == SITE or w["id"] == episode], listed
        officer.goto(f"{base}/sites/{SITE}")
        officer.locator('[data-testid="not-found"]').wait_for()
        other.close()
        assert not elsewhere, f"the console fetched from elsewhere: {elsewhere}"
    except BaseException:
        for i, page in enumerate(pages):
            if not page.is_closed():
                screenshot(page, f"failure-{i}.png", full_page=True)
        log.save(console)
        raise
    finally:
        alive.stop()
        warnings_topic.close()
        ctx.close()


def _sensor(ctx, base: str) -> dict:
    detail = ctx.request.get(f"{base}/api/sites/{SITE}").json()
    return next(s for s in detail["sensors"] if s["id"] == SENSOR)


# ------------------------------------------------------------------------------ strings (fast)
def test_every_string_exists_in_both_languages() -> None:
    zh, en = (set(strings(lang)) for lang in LANGS)
    assert zh == en, f"only zh-CN: {sorted(zh - en)}; only en: {sorted(en - zh)}"
    assert all(strings("en").values()) and all(strings("zh-CN").values())


def test_every_key_the_pages_use_is_translated() -> None:
    import re

    keys = set(strings("zh-CN"))
    used: set[str] = set()
    for path in [*STATIC.glob("*.js"), *STATIC.glob("pages/*.js"), *(ROOT / "console" / "templates").glob("*.html")]:
        used |= set(re.findall(r"""\bt\(\s*['"]([\w.-]+)['"]""", path.read_text(encoding="utf-8")))
    assert used, "no t('...') calls found"
    prefixes = {k for k in used if k.endswith(".")}  # t('level.' ~ level) in a template
    assert used - prefixes <= keys, f"untranslated keys: {sorted(used - prefixes - keys)}"
    assert all(any(k.startswith(p) for k in keys) for p in prefixes), prefixes


def test_nothing_is_fetched_from_another_origin() -> None:
    import re

    for path in [*STATIC.rglob("*.js"), *STATIC.rglob("*.css"), *(ROOT / "console" / "templates").glob("*.html")]:
        if "vendor" in path.parts:
            continue
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"""(src|href)=["']https?://|url\(\s*['"]?https?://|@import\s+['"]?https?://""", text), path
