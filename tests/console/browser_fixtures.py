"""Fixtures and helpers of the console's browser tests: Debian's chromium driven by Playwright
(sync API, no pytest-playwright plugin), the console started on an end-to-end pipeline, users
created through ``hazwatch users add``, and a recorder of when elements first appear.

Nothing is downloaded: the browser is /usr/bin/chromium, and the tests are skipped, with the
reason, when it is missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from console.service import start_console
from hazwatch.runtime import Process
from tests.e2e.conftest import Pipeline

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Console:
    url: str
    process: Process
    pipeline: Pipeline

    def add_user(self, username: str, password: str, role: str, enterprise: str | None = None) -> None:
        """``hazwatch users add`` -- the real path, on the pipeline's database."""
        argv = [sys.executable, "-m", "hazwatch", "users", "add", username, "--role", role,
                "--password-stdin", "--config", str(self.pipeline.config_dir)]
        if enterprise:
            argv += ["--enterprise", enterprise]
        env = {**os.environ, **self.pipeline.stack.env(), **self.pipeline.stack.extra_env}
        done = subprocess.run(argv, check=False, input=password + "\n", text=True, capture_output=True, env=env,
                              timeout=60, cwd=ROOT)
        assert done.returncode == 0, f"hazwatch users add {username} failed:\n{done.stdout}{done.stderr}"


@pytest.fixture
def console(pipeline: Pipeline) -> Iterator[Console]:
    """``hazwatch console`` as a child process of the pipeline's stack, ready (``/api/health``)."""
    proc, url = start_console(pipeline.stack, pipeline.config_dir)
    try:
        yield Console(url, proc, pipeline)
    finally:
        alive = proc.alive()
        proc.stop()
        assert alive, f"the console died during the test:\n{proc.log_tail()}"


@pytest.fixture
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium); no browser is downloaded")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


class BrowserLog:
    """What the pages said (console errors, uncaught exceptions, failed requests), kept for the
    artifacts of a failed run."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def attach(self, page) -> None:
        say = self.lines.append
        page.on("console", lambda m: say(f"{time.strftime('%X')} {page.url} console.{m.type}: {m.text}")
                if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: say(f"{time.strftime('%X')} {page.url} uncaught: {e}"))
        page.on("requestfailed", lambda r: say(f"{time.strftime('%X')} {r.method} {r.url} failed: {r.failure}"))
        page.on("response", lambda r: say(f"{time.strftime('%X')} {r.request.method} {r.url} -> {r.status}")
                if r.status >= 400 or r.url.endswith("/api/events") else None)

    def save(self, console: Console) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / "browser.log").write_text("\n".join(self.lines) + "\n", encoding="utf-8")
        shutil.copyfile(console.process.log_path, ARTIFACTS / "console.log")


def login(page, base_url: str, username: str, password: str) -> None:
    """Log in through the form, the way a person does: open a page, get sent to /login, submit."""
    page.goto(base_url + "/")
    page.wait_for_url(f"{base_url}/login*")
    page.get_by_label("用户名").fill(username)  # the labels are the form's, in zh-CN (the default)
    page.get_by_label("密码").fill(password)
    page.get_by_role("button", name="登录").click()
    page.wait_for_url(base_url + "/")


def wait_live(page) -> None:
    """The page's event stream is open (the live indicator says so)."""
    page.wait_for_selector("[data-testid=live][data-state=connected]", timeout=15_000)


#: Records, in the page, the wall-clock time (epoch ms) at which each named selector first
#: matches: a MutationObserver sees the DOM change itself, not when the test next looks.
SEEN_RECORDER = """(selectors) => {
  window.__seen = window.__seen || {};
  const check = () => {
    for (const [name, sel] of Object.entries(selectors)) {
      if (!(name in window.__seen) && document.querySelector(sel)) window.__seen[name] = Date.now();
    }
  };
  check();
  new MutationObserver(check).observe(document.documentElement,
    {subtree: true, childList: true, attributes: true});
}"""


def watch(page, selectors: dict[str, str]) -> None:
    page.evaluate(SEEN_RECORDER, selectors)


def seen_at(page) -> dict[str, int]:
    return page.evaluate("() => window.__seen || {}")


def now_ms() -> int:
    return int(time.time() * 1000)


def screenshot(page, name: str, *, full_page: bool = False) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=full_page)
    return path
