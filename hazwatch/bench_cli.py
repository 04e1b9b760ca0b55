"""``hazwatch bench ...``: one command per benchmark, each in its own module."""

from __future__ import annotations

import typer

from hazwatch.bench import bench_command
from hazwatch.bench_crash import crash_command
from hazwatch.bench_ingest import ingest_command
from hazwatch.bench_mqtt import mqtt_command
from hazwatch.bench_history import history_command
from hazwatch.bench_pipeline_cli import pipeline_command
from hazwatch.bench_worker import worker_command

__all__ = ["bench_app"]

bench_app = typer.Typer(add_completion=False, no_args_is_help=True, help="Benchmarks.")
bench_app.command("rules")(bench_command)
bench_app.command("ingest")(ingest_command)
bench_app.command("mqtt")(mqtt_command)
bench_app.command("mqtt-crash")(crash_command)
bench_app.command("pipeline")(pipeline_command)
bench_app.command("history")(history_command)
bench_app.command("worker")(worker_command)
