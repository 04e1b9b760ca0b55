"""``hazwatch episodes``, ``silences`` and ``report``: the warning lifecycle from the shell.

Mounted by :mod:`hazwatch.cli`::

    app.add_typer(episodes_app, name="episodes")
    app.add_typer(silences_app, name="silences")
    app.command("report")(report_command)

Every command reads ``--config DIR`` (required) for the database URL
(``HAZWATCH_DATABASE_URL`` overrides it), the Kafka bootstrap (maintenance windows are published
to the rule engine, ``alerts.maintenance_feed``) and the local time zone. Times are shown and read in that
zone; an ISO time without an offset is local. Episode ids may be shortened to a unique prefix.
Domain errors print ``error: ...`` and exit 1; a bad or missing configuration exits 2
(:class:`config.exit_codes.ExitCode`). No command creates the audit database: that is the alerts
service's (:func:`hazwatch.cli_store.open_store`).
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn
from zoneinfo import ZoneInfo

import orjson
import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from alerts.episodes import DISPOSE_CATEGORIES, STATES, EpisodeError, EpisodeService, as_dict
from alerts.maintenance_feed import FeedError, FeedOutcome, engine_record, publish, tell_engine
from alerts.report import render_report, report
from alerts.silences import SilenceError, SilenceService
from alerts.store import Episode, Store, utcnow
from config.models import Config
from hazwatch.cli_common import ConfigDir, ExitCode, load_config_or_exit
from hazwatch.cli_store import open_store

__all__ = ["episodes_app", "report_command", "silences_app"]

episodes_app = typer.Typer(no_args_is_help=True, add_completion=False,
                           help="Warning episodes: list, show, acknowledge, dispose, close.")
silences_app = typer.Typer(no_args_is_help=True, add_completion=False,
                           help="Silences and maintenance windows.")

By = Annotated[str, typer.Option(
    "--by", help="Who does it (name or staff id); recorded in the audit log.")]
Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
EpisodeId = Annotated[str, typer.Argument(help="Episode id or a unique prefix (4+ characters).")]

_LEVEL = {"normal": ("正常", "green"), "blue": ("蓝", "blue"), "yellow": ("黄", "yellow"),
          "orange": ("橙", "dark_orange"), "red": ("红", "bold red")}
_STATE = {"active": "待确认", "acknowledged": "已确认", "cleared": "已解除", "closed": "已关闭"}


class _Ctx:
    """What a command needs: the configuration, its time zone and the store (opened lazily)."""

    def __init__(self, directory: Path | None) -> None:
        self.config: Config = load_config_or_exit(directory)
        self.tz = ZoneInfo(self.config.settings.timezone)
        self._store: Store | None = None

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = open_store(self.config.settings.database.url)  # never a new database
        return self._store

    def time(self, value: dt.datetime | None) -> str:
        return "" if value is None else value.astimezone(self.tz).strftime("%Y-%m-%d %H:%M:%S")

    def parse(self, text: str, option: str, *, end_of_day: bool = False) -> dt.datetime:
        """An ISO date or datetime; naive means local. A date is its midnight (or the next one)."""
        try:
            if len(text) == 10:
                day = dt.date.fromisoformat(text)
                t = dt.datetime.combine(day, dt.time(), self.tz)
                return t + dt.timedelta(days=1) if end_of_day else t
            t = dt.datetime.fromisoformat(text)
        except ValueError:
            _fail(f"{option}: {text!r} is not an ISO date (2025-06-01) "
                  "or datetime (2025-06-01T08:30)")
        return t.replace(tzinfo=self.tz) if t.tzinfo is None else t


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(ExitCode.FAILURE)


@contextmanager
def _command(directory: Path | None) -> Iterator[_Ctx]:
    """Load the configuration; turn lifecycle and database errors into a message and exit 1."""
    ctx = _Ctx(directory)
    try:
        yield ctx
    except (EpisodeError, SilenceError, ValueError) as exc:
        _fail(str(exc))
    except SQLAlchemyError as exc:
        url = make_url(ctx.config.settings.database.url).render_as_string(hide_password=True)
        _fail(f"database {url}: {exc.__class__.__name__}: {str(exc).splitlines()[0]}")
    finally:
        if ctx._store is not None:
            ctx._store.engine.dispose()


def _console() -> Console:
    # Piped or captured output gets a wide fixed width, so that ids are never folded.
    return Console(width=None if sys.stdout.isatty() else 200, highlight=False)


def _table(title: str, heads: tuple[str, ...], rows: list[tuple[str, ...]]) -> Table | str:
    """A rich table, or a one-line note when there is nothing to show."""
    if not rows:
        return f"{title}: 无 (none)"
    table = Table(title=title)
    for head in heads:
        table.add_column(head, no_wrap=True)
    for row in rows:
        table.add_row(*row)
    return table


def _json(data: Any) -> None:
    typer.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode())


def _level(level: str) -> str:
    zh, style = _LEVEL.get(level, (level, "white"))
    return f"[{style}]{zh} {level}[/]"


def _matcher(matcher: dict[str, str]) -> str:
    return " ".join(f"{k}={v}" for k, v in matcher.items())


def _state(state: str) -> str:
    return f"{_STATE.get(state, state)} {state}"


# --- episodes ---------------------------------------------------------------------------------


@episodes_app.command("list")
def list_episodes(
    state: Annotated[str | None, typer.Option(help=f"One of: {', '.join(STATES)}.")] = None,
    site: Annotated[str | None, typer.Option(help="Site id.")] = None,
    since: Annotated[str | None, typer.Option(
        help="Raised at or after (ISO date or datetime).")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, newest first.")] = 50,
    json: Json = False, config: ConfigDir = None,
) -> None:
    """Episodes, newest first."""
    with _command(config) as ctx:
        start = ctx.parse(since, "--since") if since else None
        rows = EpisodeService(ctx.store).list(state=state, site=site, since=start, limit=limit)
        if json:
            _json([as_dict(e) for e in rows])
            return
        heads = ("编号 (id)", "站点 (site)", "类型 (kind)", "监测对象 (subject)", "规则 (rule)",
                 "级别 (level)", "峰值 (peak)", "状态 (state)", "发生 (raised)", "确认 (ack by)")
        _console().print(_table(f"预警事件 (episodes): {len(rows)}", heads, [
            (e.id[:8], e.site, e.kind, e.subject, e.rule, _level(e.level), _level(e.peak),
             _state(e.state) + (" 误报" if e.false_alarm else ""), ctx.time(e.raised_at),
             e.acknowledged_by or "")
            for e in rows]))


@episodes_app.command("show")
def show_episode(episode_id: EpisodeId, json: Json = False, config: ConfigDir = None) -> None:
    """One episode with its level history, actions and notifications."""
    with _command(config) as ctx:
        service = EpisodeService(ctx.store)
        data = service.show(service.resolve(episode_id))
        if json:
            _json(data)
            return
        console, ep = _console(), data["episode"]
        console.print(f"[bold]{ep['id']}[/]  {ep['site']} {ep['subject']} {ep['rule']}  "
                      f"{_level(ep['level'])} (峰值 peak {_level(ep['peak'])})  "
                      f"{_state(ep['state'])}"
                      + ("  [bold]误报 false alarm[/]" if ep["false_alarm"] else ""))
        who = {"acknowledged_at": ep["acknowledged_by"], "closed_at": ep["closed_by"]}
        for label, key in (("发生 (raised)", "raised_at"),
                           ("叫应计时 (escalation since)", "escalation_since"),
                           ("红色 (red since)", "red_since"),
                           ("确认 (acknowledged)", "acknowledged_at"),
                           ("解除 (cleared)", "cleared_at"), ("关闭 (closed)", "closed_at")):
            if ep[key] is not None:
                by = f" by {who[key]}" if who.get(key) else ""
                why = ep["close_reason"] if key == "closed_at" and ep["close_reason"] else ""
                why = f" — {why}" if why else ""
                console.print(f"  {label}: {ctx.time(ep[key])}{by}{why}")

        def num(value: float | None, unit: str = "") -> str:
            return "" if value is None else f"{value:g}{unit}"

        console.print(_table("级别变化 (level history)", (
            "事件时间 (event time)", "类型 (kind)", "级别 (level)", "之前 (previous)", "值 (value)",
            "阈值 (threshold)"), [
            (ctx.time(dt.datetime.fromtimestamp(x["ts"] / 1000, dt.UTC)), x["kind"],
             _level(x["level"]), _level(x["previous"]), num(x["value"], f" {ep['unit']}"),
             num(x["threshold"]))
            for x in data["levels"]]))
        console.print(_table("处置记录 (actions)", (
            "时间 (at)", "动作 (action)", "人员 (by)", "类别 (category)", "说明 (text)"), [
            (ctx.time(a["at"]), a["action"], a["actor"], a["category"] or "", a["text"] or "")
            for a in data["actions"]]))
        console.print(_table("通知 (notifications)", (
            "创建 (created)", "渠道 (channel)", "接收方 (recipient)", "角色 (role)", "级别 (level)",
            "状态 (status)", "回执 (delivery)", "条数 (segments)"), [
            (ctx.time(n["created_at"]), n["channel"], f"{n['name']} {n['recipient']}".strip(),
             n["role"], _level(n["level"]), n["status"], n["delivery_status"] or "",
             "" if n["segments"] is None else str(n["segments"]))
            for n in data["notifications"]]))


def _done(ctx: _Ctx, verb: str, ep: Episode, by: str) -> None:
    typer.echo(f"{verb} {ep.id} by {by.strip()} at {ctx.time(ep.updated_at)}; "
               f"状态 (state): {_state(ep.state)}")


@episodes_app.command("ack")
def ack_episode(episode_id: EpisodeId, by: By, config: ConfigDir = None) -> None:
    """Acknowledge (叫应): records who answered, and when."""
    with _command(config) as ctx:
        service = EpisodeService(ctx.store)
        episode = service.acknowledge(service.resolve(episode_id), by)
        _done(ctx, "已确认 (acknowledged)", episode, by)


@episodes_app.command("dispose")
def dispose_episode(
    episode_id: EpisodeId, by: By,
    category: Annotated[str, typer.Option(help="One of: " + ", ".join(
        f"{k} ({v})" for k, v in DISPOSE_CATEGORIES.items()))],
    text: Annotated[str, typer.Option(help="What was done (处置反馈).")],
    config: ConfigDir = None,
) -> None:
    """Disposition feedback (处置反馈): a category and free text."""
    with _command(config) as ctx:
        service = EpisodeService(ctx.store)
        _done(ctx, "已记录处置 (disposal recorded)",
              service.dispose(service.resolve(episode_id), by, category, text), by)


@episodes_app.command("close")
def close_episode(
    episode_id: EpisodeId, by: By,
    reason: Annotated[str | None, typer.Option(
        help="Required when the warning has not cleared.")] = None,
    config: ConfigDir = None,
) -> None:
    """Close an episode: once cleared, or earlier with a reason. Closed is final."""
    with _command(config) as ctx:
        service = EpisodeService(ctx.store)
        _done(ctx, "已关闭 (closed)", service.close(service.resolve(episode_id), by, reason), by)


@episodes_app.command("false-alarm")
def false_alarm_episode(
    episode_id: EpisodeId, by: By,
    reason: Annotated[str, typer.Option(help="Why it was a false alarm.")],
    config: ConfigDir = None,
) -> None:
    """Mark an episode as a false alarm (误报)."""
    with _command(config) as ctx:
        service = EpisodeService(ctx.store)
        _done(ctx, "已标记误报 (marked false alarm)",
              service.mark_false_alarm(service.resolve(episode_id), by, reason), by)


# --- silences ---------------------------------------------------------------------------------


@silences_app.command("add")
def add_silence(
    by: By,
    reason: Annotated[str, typer.Option(help="Why (recorded in the audit log).")],
    site: Annotated[str | None, typer.Option(help="Site id.")] = None,
    subject: Annotated[str | None, typer.Option(help="Subject, e.g. TD-001/PZ-03.")] = None,
    rule: Annotated[str | None, typer.Option(help="Rule name.")] = None,
    max_level: Annotated[str | None, typer.Option(
        help="Silence levels up to this one (blue..red; default orange: red goes out).")] = None,
    start: Annotated[str | None, typer.Option(help="Start (ISO; default now).")] = None,
    end: Annotated[str | None, typer.Option(help="End (ISO, exclusive).")] = None,
    minutes: Annotated[float | None, typer.Option(
        min=0, help="Or: duration from the start.")] = None,
    maintenance: Annotated[bool, typer.Option(
        "--maintenance", help="A maintenance window; one that names a site also goes to the rule "
                              "engine (readings inside raise and clear nothing).")] = False,
    json: Json = False, config: ConfigDir = None,
) -> None:
    """Silence matching warnings between start and end."""
    with _command(config) as ctx:
        if (end is None) == (minutes is None):
            _fail("give exactly one of --end and --minutes")
        now = utcnow()
        starts = ctx.parse(start, "--start") if start else now
        ends = ctx.parse(end, "--end") if end else starts + dt.timedelta(minutes=minutes or 0)
        matcher = {"site": site, "subject": subject, "rule": rule, "max_level": max_level}
        silence = SilenceService(ctx.store).create(
            {k: v for k, v in matcher.items() if v is not None}, starts, ends, by, reason,
            kind="maintenance" if maintenance else "silence", now=now)
        told = tell_engine(ctx.config, silence)  # stored first; the engine's copy may fail alone
        if json:
            _json(as_dict(silence) | ({"engine": told[0].as_dict()} if told else {}))
        else:
            typer.echo(f"silence {silence.id} ({silence.kind}) {ctx.time(silence.starts_at)} — "
                       f"{ctx.time(silence.ends_at)}: {_matcher(silence.matcher)}")
        _engine_notes(told, json)


@silences_app.command("list")
def list_silences(
    all_: Annotated[bool, typer.Option("--all", help="Include ended and expired.")] = False,
    json: Json = False, config: ConfigDir = None,
) -> None:
    """Current and future silences."""
    with _command(config) as ctx:
        rows = SilenceService(ctx.store).list(include_ended=all_)
        if json:
            _json([as_dict(x) for x in rows])
            return
        heads = ("编号 (id)", "类型 (kind)", "匹配 (matcher)", "开始 (start)", "结束 (end)",
                 "创建人 (by)", "原因 (reason)", "已结束 (ended)")
        _console().print(_table(f"静默 (silences): {len(rows)}", heads, [
            (str(x.id), x.kind, _matcher(x.matcher), ctx.time(x.starts_at), ctx.time(x.ends_at),
             x.created_by, x.reason,
             f"{ctx.time(x.ended_at)} by {x.ended_by}" if x.ended_at else "")
            for x in rows]))


@silences_app.command("end")
def end_silence(silence_id: Annotated[int, typer.Argument(help="Silence id.")], by: By,
                config: ConfigDir = None) -> None:
    """End a silence now."""
    with _command(config) as ctx:
        silence = SilenceService(ctx.store).end(silence_id, by)
        typer.echo(f"silence {silence.id} ended at {ctx.time(silence.ended_at)} "
                   f"by {silence.ended_by}")
        _engine_notes(tell_engine(ctx.config, silence), False)


def _engine_notes(outcomes: list[FeedOutcome], json: bool) -> None:
    """What the rule engine was told: on stdout, or on stderr as a warning when Kafka failed (and
    always on stderr with ``--json``, whose stdout is the JSON document)."""
    for o in outcomes:
        typer.echo(f"warning: {o.note}" if o.failed else o.note, err=json or o.failed)


@silences_app.command("publish")
def publish_windows(
    ids: Annotated[list[int] | None, typer.Argument(help="Silence ids (default: every maintenance window "
                                                          "not over yet, ended ones included).")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Also windows whose end is past.")] = False,
    print_: Annotated[bool, typer.Option(
        "--print", help="Print the records as JSON lines (for hazwatch replay --maintenance) "
                        "instead of publishing them.")] = False,
    config: ConfigDir = None,
) -> None:
    """Publish maintenance windows to the rule engine (hazwatch.maintenance) again, e.g. after
    Kafka was down when they were created or ended. Publishing twice changes nothing."""
    with _command(config) as ctx:
        now = utcnow()
        rows = [x for x in SilenceService(ctx.store).list(include_ended=True)
                if x.kind == "maintenance" and (x.id in ids if ids else all_ or x.ends_at > now)]
        missing = sorted(set(ids or []) - {x.id for x in rows})
        if missing:
            _fail(f"no maintenance window {', '.join(map(str, missing))}")
        records = []
        for x in rows:
            rec = engine_record(x, ctx.config)
            if isinstance(rec, str):
                typer.echo(f"silence {x.id}: not for the rule engine: {rec}", err=True)
            else:
                records.append(rec)
        if print_:
            for rec in records:
                typer.echo(orjson.dumps(rec).decode())
            return
        try:
            publish(ctx.config.settings.kafka.bootstrap, records)
        except FeedError as exc:
            _fail(f"rule engine NOT told: {exc}")
        typer.echo(f"published {len(records)} maintenance window(s) to the rule engine"
                   + (f": {' '.join(str(r['id']) for r in records)}" if records else ""))


# --- report -----------------------------------------------------------------------------------


def report_command(
    since: Annotated[str | None, typer.Option(
        help="Start (ISO date or datetime, local time; default 7 days before --until).")] = None,
    until: Annotated[str | None, typer.Option(
        help="End, exclusive (a date includes that whole day; default now).")] = None,
    json: Json = False, config: ConfigDir = None,
) -> None:
    """Statistics: warnings by level and kind, time to acknowledge, disposal rate, SMS outcomes,
    public warning coverage of red warnings and the enterprise safety index (docs/INDICATORS.md)."""
    with _command(config) as ctx:
        stop = ctx.parse(until, "--until", end_of_day=True) if until else utcnow()
        start = ctx.parse(since, "--since") if since else stop - dt.timedelta(days=7)
        ack_level = ctx.config.settings.notify.escalation.min_level
        data = report(ctx.store, start, stop, ack_level=ack_level, config=ctx.config)
        if json:
            _json(data)
            return
        typer.echo(render_report(data, ctx.tz))
