"""``hazwatch episodes`` and ``report``: the warning lifecycle from the shell.

Mounted by :mod:`hazwatch.cli`::

    app.add_typer(episodes_app, name="episodes")
    app.command("report")(report_command)

Every command reads ``--config DIR`` (required) for the database URL
(``HAZWATCH_DATABASE_URL`` overrides it) and the local time zone (:mod:`hazwatch.cli_audit`).
Episode ids may be shortened to a unique prefix. Domain errors print ``error: ...`` and exit 1; a
bad or missing configuration exits 2 (:class:`config.exit_codes.ExitCode`). No command creates the
audit database: that is the alerts service's (:func:`hazwatch.cli_store.open_store`).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer

from alerts.episodes import DISPOSE_CATEGORIES, STATES, EpisodeService, as_dict
from alerts.report import render_report, report
from alerts.store import Episode, utcnow
from hazwatch.cli_audit import (
    By,
    Json,
    StoreCommand,
    console,
    print_json,
    store_command,
    table,
)
from hazwatch.cli_common import ConfigDir

__all__ = ["episodes_app", "report_command"]

episodes_app = typer.Typer(no_args_is_help=True, add_completion=False,
                           help="Warning episodes: list, show, acknowledge, dispose, close.")

EpisodeId = Annotated[str, typer.Argument(help="Episode id or a unique prefix (4+ characters).")]

_LEVEL = {"normal": ("正常", "green"), "blue": ("蓝", "blue"), "yellow": ("黄", "yellow"),
          "orange": ("橙", "dark_orange"), "red": ("红", "bold red")}
_STATE = {"active": "待确认", "acknowledged": "已确认", "cleared": "已解除", "closed": "已关闭"}


def _level(level: str) -> str:
    zh, style = _LEVEL.get(level, (level, "white"))
    return f"[{style}]{zh} {level}[/]"


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
    with store_command(config) as ctx:
        start = ctx.parse(since, "--since") if since else None
        rows = EpisodeService(ctx.store).list(state=state, site=site, since=start, limit=limit)
        if json:
            print_json([as_dict(e) for e in rows])
            return
        heads = ("编号 (id)", "站点 (site)", "类型 (kind)", "监测对象 (subject)", "规则 (rule)",
                 "级别 (level)", "峰值 (peak)", "状态 (state)", "发生 (raised)", "确认 (ack by)")
        console().print(table(f"预警事件 (episodes): {len(rows)}", heads, [
            (e.id[:8], e.site, e.kind, e.subject, e.rule, _level(e.level), _level(e.peak),
             _state(e.state) + (" 误报" if e.false_alarm else ""), ctx.time(e.raised_at),
             e.acknowledged_by or "")
            for e in rows]))


@episodes_app.command("show")
def show_episode(episode_id: EpisodeId, json: Json = False, config: ConfigDir = None) -> None:
    """One episode with its level history, actions and notifications."""
    with store_command(config) as ctx:
        service = EpisodeService(ctx.store)
        data = service.show(service.resolve(episode_id))
        if json:
            print_json(data)
            return
        out, ep = console(), data["episode"]
        out.print(f"[bold]{ep['id']}[/]  {ep['site']} {ep['subject']} {ep['rule']}  "
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
                out.print(f"  {label}: {ctx.time(ep[key])}{by}{why}")

        def num(value: float | None, unit: str = "") -> str:
            return "" if value is None else f"{value:g}{unit}"

        out.print(table("级别变化 (level history)", (
            "事件时间 (event time)", "类型 (kind)", "级别 (level)", "之前 (previous)", "值 (value)",
            "阈值 (threshold)"), [
            (ctx.time(dt.datetime.fromtimestamp(x["ts"] / 1000, dt.UTC)), x["kind"],
             _level(x["level"]), _level(x["previous"]), num(x["value"], f" {ep['unit']}"),
             num(x["threshold"]))
            for x in data["levels"]]))
        out.print(table("处置记录 (actions)", (
            "时间 (at)", "动作 (action)", "人员 (by)", "类别 (category)", "说明 (text)"), [
            (ctx.time(a["at"]), a["action"], a["actor"], a["category"] or "", a["text"] or "")
            for a in data["actions"]]))
        out.print(table("通知 (notifications)", (
            "创建 (created)", "渠道 (channel)", "接收方 (recipient)", "角色 (role)", "级别 (level)",
            "状态 (status)", "回执 (delivery)", "条数 (segments)"), [
            (ctx.time(n["created_at"]), n["channel"], f"{n['name']} {n['recipient']}".strip(),
             n["role"], _level(n["level"]), n["status"], n["delivery_status"] or "",
             "" if n["segments"] is None else str(n["segments"]))
            for n in data["notifications"]]))


def _done(ctx: StoreCommand, verb: str, ep: Episode, by: str) -> None:
    typer.echo(f"{verb} {ep.id} by {by.strip()} at {ctx.time(ep.updated_at)}; "
               f"状态 (state): {_state(ep.state)}")


@episodes_app.command("ack")
def ack_episode(episode_id: EpisodeId, by: By, config: ConfigDir = None) -> None:
    """Acknowledge (叫应): records who answered, and when."""
    with store_command(config) as ctx:
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
    with store_command(config) as ctx:
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
    with store_command(config) as ctx:
        service = EpisodeService(ctx.store)
        _done(ctx, "已关闭 (closed)", service.close(service.resolve(episode_id), by, reason), by)


@episodes_app.command("false-alarm")
def false_alarm_episode(
    episode_id: EpisodeId, by: By,
    reason: Annotated[str, typer.Option(help="Why it was a false alarm.")],
    config: ConfigDir = None,
) -> None:
    """Mark an episode as a false alarm (误报)."""
    with store_command(config) as ctx:
        service = EpisodeService(ctx.store)
        _done(ctx, "已标记误报 (marked false alarm)",
              service.mark_false_alarm(service.resolve(episode_id), by, reason), by)


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
    with store_command(config) as ctx:
        stop = ctx.parse(until, "--until", end_of_day=True) if until else utcnow()
        start = ctx.parse(since, "--since") if since else stop - dt.timedelta(days=7)
        ack_level = ctx.config.settings.notify.escalation.min_level
        data = report(ctx.store, start, stop, ack_level=ack_level, config=ctx.config)
        if json:
            print_json(data)
            return
        typer.echo(render_report(data, ctx.tz))
