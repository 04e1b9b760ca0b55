"""The ``hazwatch`` commands that run the product: the services (``ingest``, ``rules``, ``history``,
``alerts``), ``simulate``, ``fake-twilio``, ``create-topics``, ``run`` and ``demo``.

:mod:`hazwatch.cli` adds the operator, console, benchmark and tool commands to the same ``app``.
A service process does not import those (``hazwatch.__main__``): they cost about a second of CPU
at every start and restart of a service (the benchmarks' numba, SQLAlchemy for the audit store).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated

import orjson
import typer

from config import Config, example_dir
from hazwatch.cli_common import ConfigDir, ExampleConfigDir, ExitCode
from hazwatch.cli_common import load_config_or_exit as _config

app = typer.Typer(add_completion=False, no_args_is_help=True, help="hazwatch: hazard monitoring and early warning.")


def _logging(level: str = "INFO") -> None:
    from hazwatch.logs import configure_logging

    configure_logging(level)


def _mark_ready() -> None:
    """Tell a supervisor (the demo, the tests) that this service is ready."""
    path = os.environ.get("HAZWATCH_READY_FILE")
    if path:
        Path(path).write_text(str(os.getpid()))


def _stop_on_signals(stop: threading.Event) -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())


@app.command()
def ingest(config: ConfigDir = None, client_id: str = "hazwatch-ingest-1") -> None:
    """MQTT -> validate -> Kafka hazwatch.readings (invalid input -> hazwatch.deadletter). SIGHUP
    reloads the configuration (sites and sensors, limits)."""
    from ingest.service import IngestService

    _logging()
    service = IngestService(_config(config), client_id=client_id, config_dir=config)
    _stop_on_signals(service.stopping)
    signal.signal(signal.SIGHUP, lambda *_: service.request_reload())
    service.on_subscribed = _mark_ready
    service.run()


@app.command()
def rules(config: ConfigDir = None, loglevel: str = "warn") -> None:
    """The rules worker: hazwatch.readings -> hazwatch.warnings. SIGHUP reloads the configuration."""
    from rules.worker import run_worker

    run_worker(_config(config, warn=True), loglevel=loglevel, on_ready=_mark_ready, config_dir=config)


@app.command()
def history(config: ConfigDir = None) -> None:
    """Readings, warnings and health events -> the history store (InfluxDB's v2 write API)."""
    from history.service import HistoryWriter

    _logging()
    try:
        writer = HistoryWriter(_config(config))
    except ValueError as exc:
        typer.echo(f"hazwatch history: {exc}", err=True)
        raise typer.Exit(ExitCode.USAGE) from None
    _stop_on_signals(writer.stopping)
    writer.on_assigned = _mark_ready
    writer.run()


@app.command()
def alerts(config: ConfigDir = None) -> None:
    """Warnings -> outbox -> SMS and the other channels, CAP broadcasts (MQTT). SIGHUP reloads the
    configuration (recipients, zones, routing, escalation, inhibition, limits)."""
    from alerts.service import AlertsService

    _logging()
    data = os.environ.get("HAZWATCH_DATA_DIR")
    audio = Path(data) / "audio" if data else None  # loudspeaker WAVs, when espeak-ng is installed
    if audio is not None:
        audio.mkdir(parents=True, exist_ok=True)
    service = AlertsService(_config(config, warn=True), data_dir=audio, config_dir=config)
    _stop_on_signals(service.stopping)
    signal.signal(signal.SIGHUP, lambda *_: service.request_reload())
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
    n = run(cfg, load_scenario(scenario), cfg.settings.mqtt, seed=seed, fast=fast, stop=stop,
            passwords=passwords)
    typer.echo(f"published {n} readings", err=True)


@app.command("fake-twilio")
def fake_twilio(port: int = 8081, host: str = "127.0.0.1", config: ExampleConfigDir = None) -> None:
    """The local fake of the Twilio Messages API used by the demo and the tests."""
    from alerts.fakes.twilio import main as fake_main

    sms = _config(config, example_default=True).settings.sms
    fake_main(["--host", host, "--port", str(port), "--account-sid", sms.account_sid,
               "--auth-token", sms.auth_token.get_secret_value()])


def _create_topics(cfg: Config) -> None:
    from hazwatch.kafka_admin import create_topics
    from hazwatch.runtime import RuntimeStartError

    kafka = cfg.settings.kafka
    try:
        create_topics(kafka.bootstrap, kafka.partitions, kafka.replication_factor, kafka.min_insync_replicas)
    except RuntimeStartError as exc:
        typer.echo(f"hazwatch: {exc}", err=True)
        raise typer.Exit(ExitCode.FAILURE) from None


@app.command("create-topics")
def create_topics_command(config: ConfigDir = None) -> None:
    """Create the missing hazwatch topics: kafka.partitions, replication_factor and
    min_insync_replicas of the configuration (docker-compose's kafka-init runs this)."""
    cfg = _config(config)
    _create_topics(cfg)
    kafka = cfg.settings.kafka
    typer.echo(f"topics ready on {kafka.bootstrap} (replication factor {kafka.replication_factor}, "
               f"min.insync.replicas {kafka.min_insync_replicas})")


@app.command()
def run(config: ConfigDir = None) -> None:
    """All services (ingest, rules, alerts, console) against the brokers the configuration names."""
    from hazwatch.runtime import Process

    cfg = _config(config, warn=True)
    _create_topics(cfg)
    args = ["--config", str(config)]
    logs = Path(os.environ.get("HAZWATCH_LOG_DIR", "logs"))
    ops = {"ingest": {"HAZWATCH_OPS_PORT": os.environ.get("HAZWATCH_OPS_PORT_INGEST", "9101")},
           "rules": {"HAZWATCH_OPS_PORT": os.environ.get("HAZWATCH_OPS_PORT_RULES", "9102")}}
    procs = [Process(name, [sys.executable, "-m", "hazwatch", name, *args], logs / f"{name}.log",
                     ops.get(name, {})).start()
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
    scenario: Annotated[str, typer.Option(
        help="Scenario name or YAML path (city: the whole example city; all: its three busy sites alone)")] = "city",
    json: Annotated[bool, typer.Option("--json", help="One JSON object per line")] = False,
    config: ExampleConfigDir = None,
    console_port: Annotated[int, typer.Option(help="Port of the operator console (0: no console)")] = 8080,
    workdir: Annotated[Path | None, typer.Option(help="Where logs and the database go")] = None,
    kafka: Annotated[str | None, typer.Option(
        help="Embedded Kafka: tansu (memory only, no Java) or apache (Apache Kafka, needs Java 17 and "
             "Maven once); default HAZWATCH_KAFKA, else tansu")] = None,
) -> None:
    """The whole pipeline on the embedded stack, driven by a scenario, printed as it happens."""
    from hazwatch.demo import run_demo
    from hazwatch.runtime import KAFKA_KINDS

    _config(config, example_default=True)  # fail early, with file/path/reason, before starting anything
    if kafka is not None and kafka not in KAFKA_KINDS:
        raise typer.BadParameter(f"{kafka!r} is none of {', '.join(KAFKA_KINDS)}", param_hint="--kafka")
    code = run_demo(config_dir=config or example_dir(), duration_s=duration, scenario=scenario,
                    as_json=json, workdir=workdir, console_port=console_port, kafka=kafka)
    raise typer.Exit(code)
