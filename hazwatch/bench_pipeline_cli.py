"""``hazwatch bench pipeline``: the command, its table and its plot (the run: :mod:`hazwatch.bench_pipeline`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.table import Table

__all__ = ["limits_table", "pipeline_command", "plot", "table"]

SERVICES = ("ingest", "rules", "alerts")


def _rates(text: str) -> list[int]:
    try:
        return [int(x.replace("_", "")) for x in text.split(",") if x.strip()]
    except ValueError:
        raise typer.BadParameter(f"comma-separated readings/s, got {text!r}") from None


def table(result: dict[str, Any]) -> Table:
    t = Table(title=f"hazwatch bench pipeline (Kafka {result['kafka']}, {result['sites']:,} sites x "
                    f"{result['sensors_per_site']} sensors, {result['ingest_processes']} ingest)")
    for col in ("step", "published/s", "acked", "in Kafka", "lost", "dup", "broker held max / dropped",
                "rules lag max", "drained s",
                "sustained", "warning p50/p99/max ms", "SMS p50/p99/max ms", "hazwatch µs/rdg",
                "ingest/rules/alerts µs", "mqtt/kafka/load µs"):
        t.add_column(col, justify="left" if col == "step" else "right")
    for s in result["steps"]:
        cpu = s["cpu_us_per_reading"]

        def part(prefix: str, cpu: dict[str, float] = cpu) -> str:
            return f"{sum(v for n, v in cpu.items() if n.split('-')[0] == prefix):g}"

        lat = [f"{d['p50']}/{d['p99']}/{d['max']}" if d["n"] else "-" for d in (s["warning_ms"], s["sms_ms"])]
        t.add_row(s["step"], f"{s['published_per_s']:,}", f"{s['acknowledged']:,}", f"{s['in_kafka']:,}",
                  str(s["lost"]), str(s["duplicated"]),
                  f"{s.get('broker_stored_max', 0):,} / {s.get('broker_dropped')}", f"{s['max_rules_lag_records']:,}",
                  str(s["drained_after_s"]), "yes" if s["sustained"] else "no", *lat,
                  str(s["hazwatch_cpu_us_per_reading"]), "/".join(part(p) for p in SERVICES),
                  "/".join(part(p) for p in ("mqtt", "kafka", "load")))
    return t


def limits_table(limits: dict[str, Any]) -> Table:
    """The physical limits and the peers (:mod:`hazwatch.bench_limits`)."""
    t = Table(title="limits on this machine, and the rules stage against its peers")
    for col in ("what", "per s", "CPU µs per message or reading"):
        t.add_column(col, justify="left" if col == "what" else "right")
    for key, m in limits["mqtt"].items():
        t.add_row(f"Mosquitto -> one paho subscriber, {key.upper()} ({m['received']:,} of {m['acknowledged']:,})",
                  f"{m['messages_per_s']:,}", f"broker {m['broker_cpu_us_per_message']}")
    k = limits["kafka"]
    for step in ("produce", "consume"):
        t.add_row(f"Kafka {step}, kafka-python, {k['records']:,} single-reading records", f"{k[step]['per_s']:,}",
                  f"client {k[step]['client_cpu_us']}, broker {k[step]['broker_cpu_us']}")
    for shape, r in limits["peers"].items():
        for name, c in r["contenders"].items():
            t.add_row(f"rules stage, {shape}: {name}", f"{c['readings_per_s']:,}", f"{c['cpu_us_per_reading'][name]}")
        for pair, ratio in r["ratios"].items():
            t.add_row(f"rules stage, {shape}: {pair}", f"{ratio['readings_per_s']}x",
                      f"{ratio['cpu_us_per_reading']}x")
    return t


def plot(result: dict[str, Any], path: Path) -> None:
    """Throughput and probe latency against the offered rate, one panel per message shape."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shapes = [s for s in ("single", "batch") if any(x["shape"] == s for x in result["steps"])]
    fig, axes = plt.subplots(2, len(shapes), figsize=(6 * len(shapes), 7), squeeze=False)
    for col, shape in enumerate(shapes):
        steps = sorted((x for x in result["steps"] if x["shape"] == shape and not x["step"].startswith("overload")),
                       key=lambda x: x["offered_per_s"])
        offered = [x["offered_per_s"] for x in steps]
        top, bottom = axes[0][col], axes[1][col]
        top.plot(offered, offered, ":", color="grey", label="offered")
        top.plot(offered, [x["published_per_s"] for x in steps], "o-", label="published (acknowledged by Mosquitto)")
        for x in steps:
            if not x["sustained"]:
                top.annotate("not sustained", (x["offered_per_s"], x["published_per_s"]), fontsize=8)
        top.set(title=f"{shape} readings", xlabel="offered readings/s", ylabel="readings/s")
        top.legend()
        for key, label in (("warning_ms", "reading -> warning"), ("sms_ms", "reading -> SMS request")):
            for q, style in (("p50", "o-"), ("p99", "s--")):
                bottom.plot(offered, [x[key][q] for x in steps], style, label=f"{label} {q}")
        for x in result["steps"]:
            if x["shape"] == shape and x["step"].startswith("overload") and x["warning_ms"]["n"]:
                bottom.plot([x["offered_per_s"]], [x["warning_ms"]["p99"]], "kx", label="overload step, warning p99")
        bottom.set(xlabel="offered readings/s", ylabel="ms", yscale="log")
        bottom.legend(fontsize=8)
    fig.suptitle(f"hazwatch bench pipeline, Kafka {result['kafka']}, 2 cores")
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def pipeline_command(
    single_rates: Annotated[str, typer.Option(help="Single-reading steps, readings/s")] = "2000,5000,10000,20000",
    batch_rates: Annotated[str, typer.Option(help="Gateway-batch (50) steps, readings/s")] = "50000,100000,200000",
    step_s: Annotated[float, typer.Option(help="Seconds of load per step")] = 20.0,
    overload_s: Annotated[float, typer.Option(help="Seconds of the overload step (2x the best sustained single rate; 0: none)")] = 30.0,
    overload_rate: Annotated[int, typer.Option(help="The overload step's readings/s (0: 2x the best sustained single rate)")] = 0,
    sites: Annotated[int, typer.Option(help="Load sites (one device connection each)")] = 1000,
    sensors: Annotated[int, typer.Option(help="Sensors per load site")] = 10,
    ingest: Annotated[int, typer.Option(help="Ingest processes (more than one: an MQTT shared subscription)")] = 1,
    kafka: Annotated[str | None, typer.Option(help="apache or tansu (default: HAZWATCH_KAFKA, else tansu)")] = None,
    limits: Annotated[bool, typer.Option(help="Also measure raw MQTT, raw Kafka and the peers (faust, quixstreams)")] = True,
    plot_path: Annotated[Path | None, typer.Option("--plot", help="Write a PNG of throughput and latency")] = None,
    json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
) -> None:
    """MQTT -> ingest -> Kafka -> rules -> alerts -> SMS: sustained rates, losses, lag, latency, CPU."""
    from hazwatch.bench import machine_info
    from hazwatch.bench_pipeline import bench_pipeline

    err = Console(stderr=True)
    result = bench_pipeline(single_rates=_rates(single_rates), batch_rates=_rates(batch_rates), step_s=step_s,
                            overload_s=overload_s, overload_rate=overload_rate, sites=sites, sensors=sensors, ingest_processes=ingest,
                            kafka=kafka, log=lambda msg: err.print(f"[dim]{msg}[/]"))
    if limits:
        from hazwatch.bench_limits import bench_limits

        result["limits"] = bench_limits(kafka=kafka, log=lambda msg: err.print(f"[dim]{msg}[/]"))
    result["machine"] = machine_info()
    if plot_path is not None:
        plot(result, plot_path)
    if json:
        sys.stdout.write(orjson.dumps(result).decode() + "\n")
        return
    console = Console() if Console().is_terminal else Console(width=220)
    console.print(table(result))
    if "limits" in result:
        console.print(limits_table(result["limits"]))
