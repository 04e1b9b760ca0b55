"""The ``hazwatch`` command line (docs/ARCHITECTURE.md §14.5): the commands that run the product
(:mod:`hazwatch.cli_services`) and, mounted here, the operator, console, benchmark and tool ones."""

from __future__ import annotations

from hazwatch.cli_services import app

__all__ = ["app"]


def _mount() -> None:
    from hazwatch.cli_check import check_config

    app.command("check-config")(check_config)
    from hazwatch.cli_episodes import episodes_app, report_command
    from hazwatch.cli_silences import silences_app

    app.add_typer(episodes_app, name="episodes",
                  help="Warning episodes: list, show, ack, dispose, close, false-alarm.")
    app.add_typer(silences_app, name="silences", help="Silences and maintenance windows.")
    app.command("report")(report_command)

    from hazwatch.bench_cli import bench_app
    from hazwatch.synth import synth_app
    from rules.replay import replay_command

    app.command("replay")(replay_command)

    from hazwatch.cli_console import console_command, users_app

    app.command("console")(console_command)
    app.add_typer(users_app, name="users", help="Console users: add, list.")

    from hazwatch.cli_devices import devices_app

    app.add_typer(devices_app, name="devices", help="MQTT accounts of the sites' devices: add, list.")
    app.add_typer(bench_app, name="bench", help="Benchmarks: rules, ingest, mqtt, mqtt-crash.")
    app.add_typer(synth_app, name="synth", help="Synthetic data for replays (hazwatch synth rain).")
    app.add_typer(__import__("hazwatch.cli_channels", fromlist=["_"]).channels_app, name="channels")
    app.command("boundaries")(__import__("hazwatch.cli_boundaries", fromlist=["_"]).boundaries_command)


_mount()
