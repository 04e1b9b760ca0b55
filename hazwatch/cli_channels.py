"""``hazwatch channels``: the channel registry (name, kind, what it needs configured), and the
local fake servers of the providers (``hazwatch channels fake sms-aliyun --port 8083``)."""

from __future__ import annotations

from typing import Annotated

import orjson
import typer

from alerts.channels.registry import ALIASES, REGISTRY

__all__ = ["channels_app"]

channels_app = typer.Typer(add_completion=False, invoke_without_command=True,
                           help="Notification channels: list them; run a provider's fake server.")

_FAKES = {
    "sms-aliyun": "alerts.fakes.aliyun_sms",
    "sms-tencent": "alerts.fakes.tencent_sms",
    "wecom-robot": "alerts.fakes.wecom_robot",
    "dingtalk-robot": "alerts.fakes.dingtalk_robot",
}


@channels_app.callback()
def channels(ctx: typer.Context,
             json: Annotated[bool, typer.Option("--json", help="One JSON object per channel.")] = False) -> None:
    """Every channel a routing rule may name: name, kind, what it needs configured."""
    if ctx.invoked_subcommand is not None:
        return
    aliases = {target: [a for a, t in ALIASES.items() if t == target] for target in ALIASES.values()}
    for spec in REGISTRY:
        also = aliases.get(spec.name, [])
        if json:
            typer.echo(orjson.dumps({"name": spec.name, "aliases": also, "kind": spec.kind,
                                     "needs": list(spec.needs), "summary": spec.summary}).decode())
            continue
        alias = f" (also: {', '.join(also)})" if also else ""
        typer.echo(f"{spec.name}{alias}\n  kind   {spec.kind}: {spec.summary}")
        for i, need in enumerate(spec.needs):
            typer.echo(f"  {'needs' if i == 0 else '':6} {need}")


@channels_app.command("fake")
def fake(channel: Annotated[str, typer.Argument(help=f"One of {', '.join(_FAKES)}.")],
         host: str = "127.0.0.1", port: Annotated[int, typer.Option(help="0 picks a free port.")] = 0) -> None:
    """A local fake of the channel's provider, with failure injection (POST /_fake/fail)."""
    import importlib

    if channel not in _FAKES:
        raise typer.BadParameter(f"no fake for {channel!r}; fakes: {', '.join(_FAKES)} "
                                 "(Twilio's: hazwatch fake-twilio)")
    module = importlib.import_module(_FAKES[channel])
    raise typer.Exit(module.main(["--host", host, "--port", str(port)]))
