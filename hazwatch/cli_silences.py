"""``hazwatch silences``: silences and maintenance windows from the shell.

Mounted by :mod:`hazwatch.cli` as ``app.add_typer(silences_app, name="silences")``. A maintenance
window that names a site is also published to the rule engine (``alerts.maintenance_feed``), which
then neither raises nor clears anything from the readings inside it.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import orjson
import typer

from alerts.episodes import as_dict
from alerts.maintenance_feed import FeedError, FeedOutcome, engine_record, publish, tell_engine
from alerts.silences import SilenceService
from alerts.store import utcnow
from hazwatch.cli_audit import By, Json, console, fail, print_json, store_command, table
from hazwatch.cli_common import ConfigDir

__all__ = ["silences_app"]

silences_app = typer.Typer(no_args_is_help=True, add_completion=False,
                           help="Silences and maintenance windows.")


def _matcher(matcher: dict[str, str]) -> str:
    return " ".join(f"{k}={v}" for k, v in matcher.items())


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
    with store_command(config) as ctx:
        if (end is None) == (minutes is None):
            fail("give exactly one of --end and --minutes")
        now = utcnow()
        starts = ctx.parse(start, "--start") if start else now
        ends = ctx.parse(end, "--end") if end else starts + dt.timedelta(minutes=minutes or 0)
        matcher = {"site": site, "subject": subject, "rule": rule, "max_level": max_level}
        silence = SilenceService(ctx.store).create(
            {k: v for k, v in matcher.items() if v is not None}, starts, ends, by, reason,
            kind="maintenance" if maintenance else "silence", now=now)
        told = tell_engine(ctx.config, silence)  # stored first; the engine's copy may fail alone
        if json:
            print_json(as_dict(silence) | ({"engine": told[0].as_dict()} if told else {}))
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
    with store_command(config) as ctx:
        rows = SilenceService(ctx.store).list(include_ended=all_)
        if json:
            print_json([as_dict(x) for x in rows])
            return
        heads = ("编号 (id)", "类型 (kind)", "匹配 (matcher)", "开始 (start)", "结束 (end)",
                 "创建人 (by)", "原因 (reason)", "已结束 (ended)")
        console().print(table(f"静默 (silences): {len(rows)}", heads, [
            (str(x.id), x.kind, _matcher(x.matcher), ctx.time(x.starts_at), ctx.time(x.ends_at),
             x.created_by, x.reason,
             f"{ctx.time(x.ended_at)} by {x.ended_by}" if x.ended_at else "")
            for x in rows]))


@silences_app.command("end")
def end_silence(silence_id: Annotated[int, typer.Argument(help="Silence id.")], by: By,
                config: ConfigDir = None) -> None:
    """End a silence now."""
    with store_command(config) as ctx:
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
    with store_command(config) as ctx:
        now = utcnow()
        rows = [x for x in SilenceService(ctx.store).list(include_ended=True)
                if x.kind == "maintenance" and (x.id in ids if ids else all_ or x.ends_at > now)]
        missing = sorted(set(ids or []) - {x.id for x in rows})
        if missing:
            fail(f"no maintenance window {', '.join(map(str, missing))}")
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
            fail(f"rule engine NOT told: {exc}")
        typer.echo(f"published {len(records)} maintenance window(s) to the rule engine"
                   + (f": {' '.join(str(r['id']) for r in records)}" if records else ""))
