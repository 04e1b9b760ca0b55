"""``hazwatch episodes|silences|report`` through typer, against SQLite and PostgreSQL.

The sub-apps are mounted on a fresh typer app here, as hazwatch/cli.py mounts them.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson
import pytest
import typer
from typer.testing import CliRunner, Result

from alerts.episodes import apply_event
from alerts.store import Store, utcnow
from config import example_dir, load_config
from hazwatch.cli_episodes import episodes_app, report_command
from hazwatch.cli_silences import silences_app
from formats.warning import WarningEvent
from tests.alerts.db import backend_url_fixture, store_fixture  # noqa: F401  (pytest fixtures)

RED = "3f2a9c1e-aaaa-5000-8000-000000000001"
YELLOW = "7c0d5b2e-bbbb-5000-8000-000000000002"


def make_app() -> typer.Typer:
    app = typer.Typer()
    app.add_typer(episodes_app, name="episodes")
    app.add_typer(silences_app, name="silences")
    app.command("report")(report_command)
    return app


@pytest.fixture
def cli(store: Store, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("HAZWATCH_DATABASE_URL", store.url)
    return CliRunner()


def run(cli: CliRunner, *args: str) -> Result:
    """The command on the example configuration, unless ``args`` name one."""
    config = [] if "--config" in args else ["--config", str(example_dir())]
    return cli.invoke(make_app(), [*args, *config])


def ok(cli: CliRunner, *args: str) -> Result:
    result = run(cli, *args)
    assert result.exit_code == 0, (args, result.output)
    return result


def error(cli: CliRunner, code: int, *args: str) -> str:
    result = run(cli, *args)
    assert result.exit_code == code, (args, result.output)
    return result.stderr


def seed(store: Store) -> None:
    config = load_config(example_dir())
    now = utcnow()
    events = [
        WarningEvent(RED, "CH-001", "CH-001/GT-01", "combustible_gas", "raised", "red", "normal",
                     1_000, 1_005, 55.0, 50.0, "%LEL"),
        WarningEvent(YELLOW, "TD-001", "TD-001/PZ-03", "phreatic_depth", "raised", "yellow",
                     "normal",
                     2_000, 2_005, 2.4, 2.5, "m"),
    ]
    with store.session.begin() as s:
        for i, event in enumerate(events):
            apply_event(s, event, config, now - dt.timedelta(seconds=10 - i))


def test_episode_commands(cli: CliRunner, store: Store) -> None:
    seed(store)
    listed = orjson.loads(ok(cli, "episodes", "list", "--json").stdout)
    assert [e["id"] for e in listed] == [YELLOW, RED]
    table = ok(cli, "episodes", "list").stdout
    assert "3f2a9c1e" in table and "红 red" in table and "待确认 active" in table
    only = orjson.loads(ok(cli, "episodes", "list", "--site", "CH-001", "--state", "active",
                           "--json").stdout)
    assert [e["id"] for e in only] == [RED]

    acked = ok(cli, "episodes", "ack", "3f2a", "--by", "张安全员").stdout
    assert acked.startswith(f"已确认 (acknowledged) {RED} by 张安全员 at ")
    assert (f"error: cannot acknowledge episode {RED}: it is acknowledged; "
            "already acknowledged by 张安全员") in error(cli, 1, "episodes", "ack", RED,
                                                     "--by", "李值班")
    ok(cli, "episodes", "dispose", "3f2a", "--by", "张安全员", "--category", "repair",
       "--text", "关闭阀门")
    assert "unknown disposal category 'magic'" in error(
        cli, 1, "episodes", "dispose", "3f2a", "--by", "x", "--category", "magic", "--text", "t")
    assert "the warning has not cleared; closing it early needs a reason" in error(
        cli, 1, "episodes", "close", "3f2a", "--by", "李值班")
    ok(cli, "episodes", "close", "3f2a", "--by", "李值班", "--reason", "现场确认探头故障")
    assert "a closed episode is final" in error(
        cli, 1, "episodes", "false-alarm", "3f2a", "--by", "李值班", "--reason", "探头故障")
    ok(cli, "episodes", "false-alarm", YELLOW, "--by", "李值班", "--reason", "降雨误触发")

    shown = orjson.loads(ok(cli, "episodes", "show", "3f2a", "--json").stdout)
    assert shown["episode"]["state"] == "closed"
    assert shown["episode"]["close_reason"] == "现场确认探头故障"
    assert [(a["action"], a["actor"]) for a in shown["actions"]] == [
        ("acknowledge", "张安全员"), ("dispose", "张安全员"), ("close", "李值班")]
    text = ok(cli, "episodes", "show", RED).stdout
    assert "级别变化 (level history)" in text and "关闭阀门" in text and "by 张安全员" in text


def test_episode_errors(cli: CliRunner, store: Store) -> None:
    assert "error: no episode 'nope'" in error(cli, 1, "episodes", "show", "nope")
    assert "error: no episode 'abcd'" in error(cli, 1, "episodes", "ack", "abcd", "--by", "x")
    assert "unknown state 'open'" in error(cli, 1, "episodes", "list", "--state", "open")
    assert "--since: 'yesterday' is not an ISO date" in error(
        cli, 1, "episodes", "list", "--since", "yesterday")
    assert "Missing option '--by'" in error(cli, 2, "episodes", "ack", RED)


def test_silence_commands(cli: CliRunner, store: Store) -> None:
    made = orjson.loads(ok(cli, "silences", "add", "--site", "TD-001", "--max-level", "orange",
                           "--minutes", "90", "--by", "李值班", "--reason", "坝体检修",
                           "--maintenance", "--json").stdout)
    assert made["kind"] == "maintenance"
    assert made["matcher"] == {"site": "TD-001", "max_level": "orange"}
    start, end = (dt.datetime.fromisoformat(made[k]) for k in ("starts_at", "ends_at"))
    assert end - start == dt.timedelta(minutes=90)
    later = ok(cli, "silences", "add", "--rule", "rain_1h", "--start", "2999-01-01T08:00",
               "--end", "2999-01-01T10:00", "--by", "x", "--reason", "y").stdout
    assert "2999-01-01 08:00:00 — 2999-01-01 10:00:00" in later  # naive means local, shown local
    listed = orjson.loads(ok(cli, "silences", "list", "--json").stdout)
    assert [x["id"] for x in listed] == [made["id"], made["id"] + 1]
    assert "坝体检修" in ok(cli, "silences", "list").stdout

    assert "ended" in ok(cli, "silences", "end", str(made["id"]), "--by", "王主任").stdout
    assert "already ended by 王主任" in error(cli, 1, "silences", "end", str(made["id"]),
                                              "--by", "x")
    current = orjson.loads(ok(cli, "silences", "list", "--json").stdout)
    assert [x["id"] for x in current] == [made["id"] + 1]
    assert len(orjson.loads(ok(cli, "silences", "list", "--all", "--json").stdout)) == 2
    assert "no silence 999" in error(cli, 1, "silences", "end", "999", "--by", "x")


@pytest.mark.parametrize(("args", "message"), [
    (["--site", "CH-001", "--by", "x", "--reason", "y"], "give exactly one of --end and --minutes"),
    (["--site", "CH-001", "--minutes", "5", "--end", "2999-01-01", "--by", "x", "--reason", "y"],
     "give exactly one of --end and --minutes"),
    (["--minutes", "5", "--by", "x", "--reason", "y"], "at least one of site, subject, rule"),
    (["--site", "CH-001", "--start", "2999-01-02", "--end", "2999-01-01", "--by", "x",
      "--reason", "y"], "must be after the start"),
    (["--site", "CH-001", "--minutes", "5", "--by", "x", "--reason", " "],
     "reason must not be empty"),
    (["--site", "CH-001", "--max-level", "normal", "--minutes", "5", "--by", "x", "--reason", "y"],
     "max_level must be one of"),
])
def test_silence_add_errors(cli: CliRunner, store: Store, args: list[str], message: str) -> None:
    assert message in error(cli, 1, "silences", "add", *args)


def test_report_command(cli: CliRunner, store: Store) -> None:
    seed(store)
    today = dt.datetime.now(ZoneInfo("Asia/Shanghai")).date()
    since = (today - dt.timedelta(days=1)).isoformat()
    data = orjson.loads(ok(cli, "report", "--since", since, "--until", today.isoformat(),
                           "--json").stdout)
    assert (data["episodes"], data["by_level"]["red"], data["by_kind"]["tailings"]) == (2, 1, 1)
    # dates are local (Asia/Shanghai) midnights; --until's date is included whole
    tomorrow = today + dt.timedelta(days=1)
    assert data["since"] == f"{since}T00:00:00+08:00"
    assert data["until"] == f"{tomorrow}T00:00:00+08:00"
    # the regional plans' indicators: the red episode's coverage, every enterprise's index
    (red,) = data["coverage"]["episodes"]
    assert red["episode"] == RED and red["zones"]
    enterprises = {s.enterprise for s in load_config(example_dir()).sites}
    assert {r["enterprise"] for r in data["safety_index"]["enterprises"]} == enterprises
    text = ok(cli, "report", "--since", since).stdout
    assert "处置率 (disposal rate): 0/2 = 0.0%" in text
    assert "预警信息公众覆盖率 (public warning coverage, red warnings): 目标 (target) ≥ 90.0%" in text
    assert "未送达，请电话跟进 (not reached: follow up by phone)" in text
    assert "危化企业安全管理动态指数 (enterprise safety index)" in text
    assert "must be after since" in error(cli, 1, "report", "--since", today.isoformat(),
                                          "--until", since)


def test_bad_config_and_database(cli: CliRunner, tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    missing = str(tmp_path / "none")
    assert "not a directory" in error(cli, 2, "episodes", "list", "--config", missing)
    monkeypatch.setenv("HAZWATCH_DATABASE_URL", "postgresql+psycopg2://postgres:secret@127.0.0.1:1/x")
    message = error(cli, 1, "episodes", "list")
    assert "error: database postgresql+psycopg2://postgres:***@127.0.0.1:1/x" in message
    assert "secret" not in message
