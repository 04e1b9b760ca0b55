"""The ``hazwatch`` command line (docs/ARCHITECTURE.md §14.5)."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated

import orjson
import typer

from config import ConfigError, example_dir, load_config
from hazwatch.cli_common import ConfigDir
from hazwatch.cli_common import load_config_or_exit as _config

app = typer.Typer(add_completion=False, no_args_is_help=True, help="hazwatch: hazard monitoring and early warning.")


def _logging(level: str = "INFO") -> None:
    logging.basicConfig(level=os.environ.get("HAZWATCH_LOG_LEVEL", level),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("kafka").setLevel(logging.WARNING)  # its INFO is connection chatter


def _mark_ready() -> None:
    """Tell a supervisor (the demo, the tests) that this service is ready."""
    path = os.environ.get("HAZWATCH_READY_FILE")
    if path:
        Path(path).write_text(str(os.getpid()))


def _stop_on_signals(stop: threading.Event) -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())


@app.command("check-config")
def check_config(directory: Annotated[Path, typer.Argument(help="Configuration directory")]) -> None:
    """Validate a configuration; each error names file, path and reason."""
    try:
        cfg = load_config(directory)
    except ConfigError as exc:
        for issue in exc.issues:
            typer.echo(f"{directory / issue.file}: {issue.path or '<root>'}: {issue.reason}", err=True)
        typer.echo(f"{len(exc.issues)} error(s)", err=True)
        raise typer.Exit(1) from None
    n_sensors = sum(len(s.sensors) for s in cfg.sites)
    n_rules = sum(len(x.thresholds) for s in cfg.sites for x in s.sensors)
    typer.echo(f"OK: {len(cfg.sites)} sites, {n_sensors} sensors, {n_rules} rules, "
               f"{len(cfg.zones)} zones, {len(cfg.recipients)} recipients")


@app.command()
def ingest(config: ConfigDir = None, client_id: str = "hazwatch-ingest-1") -> None:
    """MQTT -> validate -> Kafka hazwatch.readings (invalid input -> hazwatch.deadletter)."""
    from ingest.service import IngestService

    _logging()
    service = IngestService(_config(config), client_id=client_id)
    _stop_on_signals(service.stopping)
    service.on_subscribed = _mark_ready
    service.run()


@app.command()
def rules(config: ConfigDir = None, loglevel: str = "warn") -> None:
    """The rules worker: hazwatch.readings -> hazwatch.warnings."""
    from rules.worker import run_worker

    run_worker(_config(config), loglevel=loglevel, on_ready=_mark_ready)


@app.command()
def alerts(config: ConfigDir = None) -> None:
    """Warnings -> outbox -> SMS (twilio) and CAP broadcasts (MQTT)."""
    from alerts.service import AlertsService

    _logging()
    data = os.environ.get("HAZWATCH_DATA_DIR")
    audio = Path(data) / "audio" if data else None  # loudspeaker WAVs, when espeak-ng is installed
    if audio is not None:
        audio.mkdir(parents=True, exist_ok=True)
    service = AlertsService(_config(config), data_dir=audio)
    _stop_on_signals(service.stopping)
    service.on_assigned = _mark_ready
    service.run()


@app.command()
def simulate(
    config: ConfigDir = None,
    scenario: Annotated[str, typer.Option(help="Scenario name or YAML path")] = "all",
    seed: int = 0,
    fast: Annotated[bool, typer.Option(help="Publish as fast as possible, in order")] = False,
) -> None:
    """A sensor fleet publishing a scenario over MQTT."""
    from sensors.scenario import load_scenario
    from sensors.simulator import run

    _logging()
    cfg = _config(config)
    stop = threading.Event()
    _stop_on_signals(stop)
    # the embedded stack's device accounts (a JSON object, site id -> password)
    accounts = os.environ.get("HAZWATCH_MQTT_DEVICE_PASSWORDS")
    passwords = orjson.loads(Path(accounts).read_bytes()) if accounts else None
    n = run(cfg, load_scenario(scenario), cfg.settings.mqtt.url, seed=seed, fast=fast, stop=stop,
            passwords=passwords)
    typer.echo(f"published {n} readings", err=True)


@app.command("fake-twilio")
def fake_twilio(port: int = 8081, host: str = "127.0.0.1", config: ConfigDir = None) -> None:
    """The local fake of the Twilio Messages API used by the demo and the tests."""
    from alerts.fake_twilio import main as fake_main

    sms = _config(config).settings.sms
    fake_main(["--host", host, "--port", str(port), "--account-sid", sms.account_sid,
               "--auth-token", sms.auth_token.get_secret_value()])


@app.command()
def run(config: ConfigDir = None) -> None:
    """All services (ingest, rules, alerts, console) against the brokers the configuration names."""
    from hazwatch.runtime import Process, create_topics

    cfg = _config(config)
    create_topics(cfg.settings.kafka.bootstrap)
    args = ["--config", str(config or example_dir())]
    logs = Path(os.environ.get("HAZWATCH_LOG_DIR", "logs"))
    procs = [Process(name, [sys.executable, "-m", "hazwatch", name, *args], logs / f"{name}.log").start()
             for name in ("rules", "ingest", "alerts", "console")]
    stop = threading.Event()
    _stop_on_signals(stop)
    typer.echo(f"running {[p.name for p in procs]}; logs in {logs}/ (Ctrl-C stops)")
    while not stop.wait(1.0):
        for p in procs:
            if not p.alive():
                typer.echo(f"{p.name} exited; restarting (see {p.log_path})", err=True)
                p.start()
    for p in procs:
        p.stop()


@app.command()
def demo(
    duration: Annotated[float, typer.Option(help="Stop after S seconds (0: when the scenario is over)")] = 0,
    scenario: Annotated[str, typer.Option(help="Scenario name or YAML path")] = "all",
    json: Annotated[bool, typer.Option("--json", help="One JSON object per line")] = False,
    config: ConfigDir = None,
    console_port: Annotated[int, typer.Option(help="Port of the operator console (0: no console)")] = 8080,
    workdir: Annotated[Path | None, typer.Option(help="Where logs and the database go")] = None,
    kafka: Annotated[str | None, typer.Option(
        help="Embedded Kafka: tansu (memory only, no Java) or apache (Apache Kafka, needs Java 17 and "
             "Maven once); default HAZWATCH_KAFKA, else tansu")] = None,
) -> None:
    """The whole pipeline on the embedded stack, driven by a scenario, printed as it happens."""
    from hazwatch.demo import run_demo
    from hazwatch.runtime import KAFKA_KINDS

    _config(config)  # fail early, with file/path/reason, before starting anything
    if kafka is not None and kafka not in KAFKA_KINDS:
        raise typer.BadParameter(f"{kafka!r} is none of {', '.join(KAFKA_KINDS)}", param_hint="--kafka")
    code = run_demo(config_dir=config or example_dir(), duration_s=duration, scenario=scenario,
                    as_json=json, workdir=workdir, console_port=console_port, kafka=kafka)
    raise typer.Exit(code)


def _mount() -> None:
    from hazwatch.cli_episodes import episodes_app, report_command, silences_app

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


_mount()


def main() -> None:
    app()
