"""``hazwatch demo``: the whole pipeline as separate processes on the embedded stack.

Order: brokers -> topics -> fake Twilio -> rules, alerts, ingest (each waits until ready) ->
the operator console (``--console-port``, 0 for none; user ``demo`` with a printed one-time
password) -> simulator. The demo then follows ``hazwatch.warnings`` and ``hazwatch.deliveries`` and prints each
warning, SMS and broadcast as it happens, until the duration is over (or, with duration 0, until
the scenario has finished and the pipeline has gone quiet).
"""

from __future__ import annotations

import shutil
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import yaml
from kafka import KafkaConsumer
from rich.console import Console
from rich.markup import escape

from alerts.episodes import EpisodeError, EpisodeService
from alerts.store import Store
from config import load_config
from config.topics import DELIVERIES, WARNINGS
from formats.warning import WarningEvent
from hazwatch.kafka_admin import all_partitions
from hazwatch.runtime import EmbeddedStack, Process, RuntimeStartError, free_port, wait_for

__all__ = ["run_demo", "start_services"]

LEVEL_STYLE = {"normal": "green", "blue": "blue", "yellow": "yellow", "orange": "dark_orange", "red": "bold red"}
QUIET_S = 8.0


def start_services(stack: EmbeddedStack, config_dir: Path, *, ready_timeout_s: float = 60) -> dict[str, Process]:
    """Start fake Twilio, rules, alerts and ingest against ``stack``; wait until each is ready. Ingest
    and rules serve ``/metrics`` and ``/healthz`` on the port in their ``env["HAZWATCH_OPS_PORT"]``,
    alerts on ``HAZWATCH_ALERTS_HTTP_PORT``."""
    twilio_port = free_port()
    procs: dict[str, Process] = {}
    procs["fake-twilio"] = stack.hazwatch("fake-twilio", "fake-twilio", "--port", str(twilio_port),
                                          "--config", str(config_dir))
    env = {"HAZWATCH_TWILIO_BASE_URL": f"http://127.0.0.1:{twilio_port}",
           "HAZWATCH_DATABASE_URL": f"sqlite:///{stack.workdir / 'hazwatch.db'}",
           "HAZWATCH_ALERTS_HTTP_PORT": str(free_port())}
    stack.extra_env = {**env, **stack.extra_env}  # what the caller set there wins
    for name in ("rules", "alerts", "ingest"):
        ready = stack.workdir / f"{name}.ready"
        ready.unlink(missing_ok=True)
        ops = {} if name == "alerts" else {"HAZWATCH_OPS_PORT": str(free_port())}  # alerts: its own HTTP port
        procs[name] = stack.hazwatch(name, name, "--config", str(config_dir),
                                     env={"HAZWATCH_READY_FILE": str(ready), **ops})
    for name in ("rules", "alerts", "ingest"):
        ready = stack.workdir / f"{name}.ready"
        proc = procs[name]

        def check(proc: Process = proc, ready: Path = ready) -> bool:
            if not proc.alive():
                raise RuntimeStartError(f"{proc.name} exited:\n{proc.log_tail()}")
            return ready.exists()

        try:
            wait_for(check, ready_timeout_s, f"service {name}")
        except RuntimeStartError as exc:
            raise RuntimeStartError(f"{exc}\n--- {proc.log_path} ---\n{proc.log_tail()}") from None
    return procs


def start_history(stack: EmbeddedStack, config_dir: Path, out: _Printer) -> None:
    """VictoriaMetrics and the history writer, when victoria-metrics is installed (.ci/run installs it)."""
    from hazwatch.embedded_history import history_ready, victoria_metrics

    port = free_port()
    try:
        store = victoria_metrics(stack.workdir, port).start()
    except FileNotFoundError as exc:
        out.info(f"no history: {exc}")
        return
    stack.processes.append(store)
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: history_ready(url), 60, "VictoriaMetrics")
    # the console, started next, reads trends beyond 24 h from it
    stack.extra_env.update({"HAZWATCH_HISTORY_URL": url, "HAZWATCH_HISTORY_STORE": "victoriametrics"})
    stack.hazwatch("history", "history", "--config", str(config_dir), env={"HAZWATCH_OPS_PORT": str(free_port())})
    out.info(f"history: VictoriaMetrics {url} (readings as reading_v{{site=...,sensor=...}}: {url}/vmui)")


class _Answers:
    """Plays the safety officers of ``DEMO_ANSWERS``: they acknowledge a red warning 2 s after it."""

    def __init__(self, store: Store, out: _Printer) -> None:
        self.service = EpisodeService(store)
        self.out = out
        self.pending: dict[str, tuple[float, str, str]] = {}
        self.done: set[str] = set()

    def seen(self, event: dict[str, Any]) -> None:
        who = DEMO_ANSWERS.get(event["site"])
        if who and event["level"] == "red" and event["episode"] not in self.done:
            self.pending.setdefault(event["episode"], (time.monotonic() + 2.0, who, event["subject"]))

    def due(self) -> None:
        for episode, (at, who, subject) in list(self.pending.items()):
            if time.monotonic() < at:
                continue
            del self.pending[episode]
            self.done.add(episode)
            try:
                self.service.acknowledge(episode, by=who)
            except EpisodeError as exc:
                self.out.info(f"acknowledgement of {subject} not recorded: {exc}")
                continue
            self.out.emit({"type": "ack", "episode": episode, "subject": subject, "by": who})


class _Printer:
    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.console = Console(highlight=False, soft_wrap=True)
        self.counts: Counter[str] = Counter()
        self.messages: set[str | None] = set()

    def emit(self, obj: dict[str, Any]) -> None:
        kind = obj["type"]
        if kind == "sms" and obj.get("status") == "sent":
            # one grouped SMS covers several notices (one deliveries record each): show it once
            if obj.get("provider_id") in self.messages:
                return
            self.messages.add(obj.get("provider_id"))
        if kind in ("sms", "broadcast") and obj.get("status") != "sent":
            self.counts[f"{kind}:{obj.get('status')}"] += 1
        else:
            self.counts[kind if kind != "warning" else f"warning:{obj['level']}"] += 1
        if self.as_json:
            sys.stdout.write(orjson.dumps(obj).decode() + "\n")
            sys.stdout.flush()
            return
        t = time.strftime("%H:%M:%S")
        if kind == "warning":
            style = LEVEL_STYLE.get(obj["level"], "")
            self.console.print(
                f"{t} [{style}]WARNING {obj['kind']:<11} {obj['previous']:>6} -> {obj['level']:<6}[/] "
                f"{obj['subject']} {obj['rule']} = {obj['value']:g} {escape(obj['unit'])}"
                f" (threshold {obj['threshold']})")
        elif kind == "sms" and obj["status"] != "sent":
            self.console.print(f"{t} [cyan]SMS[/] {obj['kind']} to {obj['to']} ({obj['role']}) not sent: "
                               f"{escape(obj.get('suppressed_reason') or obj.get('error') or obj['status'])}")
        elif kind == "sms":
            self.console.print(f"{t} [cyan]SMS[/] {obj['status']} -> {obj['to']} ({obj['role']}, {obj['kind']}, "
                               f"{obj['segments']} seg): {escape(obj['body'] or '')}")
        elif kind == "ack":
            self.console.print(f"{t} [green]ACK[/] {obj['subject']} acknowledged by {obj['by']} (叫应: the chain stops)")
        elif kind == "broadcast" and obj["status"] != "sent":
            self.console.print(f"{t} [magenta]BROADCAST[/] {obj['kind']} to {obj['zone']} not sent: "
                               f"{escape(obj.get('suppressed_reason') or obj.get('error') or obj['status'])}")
        elif kind == "broadcast":
            self.console.print(f"{t} [magenta]BROADCAST[/] CAP {obj['status']} -> hw/v1/broadcast/{obj['zone']}/cap "
                               f"({obj['kind']}, {obj['level']}, {len(obj.get('cap') or '')} bytes)")
        else:
            self.console.print(f"{t} [dim]{escape(obj.get('message', str(obj)))}[/]")

    def info(self, message: str, **extra: Any) -> None:
        self.emit({"type": "info", "message": message, **extra})


def _follow(bootstrap: str) -> KafkaConsumer:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest")
    consumer.assign(all_partitions(consumer, (WARNINGS, DELIVERIES)))
    return consumer


#: The demo replays hours of sensor data in about a minute, so its 叫应 timers run in seconds
#: instead of minutes: county after 6 s, city 12 s, province 18 s, red reminders every 6 s.
DEMO_SETTINGS: dict[str, Any] = {
    "routing": {"quiet_hours": None},
    "notify": {"group_wait_s": 3, "escalation": {
        "steps": [{"tier": "county", "after_min": 0.1}, {"tier": "city", "after_min": 0.2},
                  {"tier": "province", "after_min": 0.3}],
        "red_reminder_every_min": 0.1}},
}
#: The chemical site's officer answers (叫应) its red warnings; the tailings dam's does not, so
#: its warnings climb county -> city -> province.
DEMO_ANSWERS = {"CH-001": "安全员刘强（临港石化）"}


def demo_config(config_dir: Path, workdir: Path) -> Path:
    """A copy of ``config_dir`` with the demo's timings (``DEMO_SETTINGS``)."""
    out = workdir / "config"
    shutil.copytree(config_dir, out, dirs_exist_ok=True)
    path = out / "hazwatch.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    for key, value in DEMO_SETTINGS.items():
        data[key] = {**(data.get(key) or {}), **value} if isinstance(value, dict) else value
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return out


#: Console users the demo adds beside the operator ``demo``: safety officers, who see only their
#: own enterprise's sites (username -> enterprise of the example configuration).
DEMO_OFFICERS = {"officer-lingang": "临港石化有限公司", "officer-xiahe": "夏河矿业有限公司"}


def start_demo_console(stack: EmbeddedStack, config_dir: Path, port: int, out: _Printer) -> Process | None:
    """The operator console on ``port`` with a user ``demo`` (operator) and the officers of
    :data:`DEMO_OFFICERS`, whose one-time passwords are random and printed: there is no default
    password."""
    import secrets

    from console.service import start_console
    from console.users import InvalidUser, UserService

    def add(name: str, role: str, enterprise: str | None = None) -> tuple[str, str]:
        password = secrets.token_urlsafe(12)
        try:
            UserService(store).add(name, password, role, enterprise=enterprise, by="demo")
        except InvalidUser:  # a --workdir reused from an earlier demo: a fresh name, never its password
            name = f"{name}-{secrets.token_hex(3)}"
            UserService(store).add(name, password, role, enterprise=enterprise, by="demo")
        return name, password

    store = Store(stack.extra_env["HAZWATCH_DATABASE_URL"])
    try:
        username, password = add("demo", "operator")
        officers = [(*add(name, "officer", enterprise), enterprise) for name, enterprise in DEMO_OFFICERS.items()]
    finally:
        store.engine.dispose()
    try:
        proc, url = start_console(stack, config_dir, port=port)
    except RuntimeStartError as exc:
        out.info(f"console not started (is port {port} taken? use --console-port): {exc}")
        return None
    out.info(f"console: {url}/  user {username}, one-time password {password}",
             console={"url": url, "username": username, "password": password,
                      "officers": [{"username": n, "password": p, "enterprise": e} for n, p, e in officers]})
    for name, secret, enterprise in officers:  # each sees only the sites of the enterprise
        out.info(f"console: officer {name} ({enterprise}), one-time password {secret}")
    return proc


def run_demo(*, config_dir: Path, duration_s: float, scenario: str, as_json: bool,
             workdir: Path | None = None, console_port: int = 8080, kafka: str | None = None) -> int:
    out = _Printer(as_json)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    workdir = Path(workdir or tempfile.mkdtemp(prefix="hazwatch-demo-"))
    started = time.monotonic()
    config_dir = demo_config(config_dir, workdir)
    sites = [s.id for s in load_config(config_dir).sites]
    with EmbeddedStack(workdir, kafka=kafka, devices=sites) as stack:
        out.info(f"brokers up: MQTT {stack.mqtt_kind} {stack.mqtt_url}, Kafka {stack.kafka_kind} "
                 f"{stack.kafka_bootstrap}; logs in {workdir / 'logs'}")
        if stack.mqtt_passwords:
            out.info(f"MQTT accounts (anonymous clients are refused): one per site ({', '.join(sites)}) and "
                     f"one per service; passwords in {workdir / 'mqtt-passwd'} (hashed), the devices' in "
                     f"{workdir / 'mqtt-devices.json'}")
        out.info("demo timing: 叫应 escalation after 6/12/18 s instead of 10/20/30 min, red reminders every 6 s")
        start_services(stack, config_dir)
        start_history(stack, config_dir, out)
        if console_port:
            start_demo_console(stack, config_dir, console_port, out)
        answers = _Answers(Store(stack.extra_env["HAZWATCH_DATABASE_URL"], migrate=False), out)
        out.info(f"services ready after {time.monotonic() - started:.1f} s; starting scenario {scenario!r}")
        sim = stack.hazwatch("simulator", "simulate", "--config", str(config_dir), "--scenario", scenario)
        consumer = _follow(stack.kafka_bootstrap)
        last_activity = time.monotonic()
        try:
            while not stop.is_set():
                for records in consumer.poll(timeout_ms=200).values():
                    for rec in records:
                        if rec.topic == WARNINGS:
                            obj = {"type": "warning", **WarningEvent.from_json(rec.value).as_dict()}
                            answers.seen(obj)
                        else:  # a delivery record (alerts/deliveries.py)
                            obj = orjson.loads(rec.value)
                        out.emit(obj)
                        last_activity = time.monotonic()
                answers.due()
                elapsed = time.monotonic() - started
                if duration_s and elapsed >= duration_s:
                    break
                if not duration_s and not sim.alive() and time.monotonic() - last_activity > QUIET_S:
                    break
        finally:
            consumer.close()
    c = out.counts
    levels = {k.split(":")[1]: v for k, v in c.items() if k.startswith("warning:")}
    out.info(f"demo over after {time.monotonic() - started:.0f} s: warnings {dict(levels)}, "
             f"SMS sent {c['sms']}, CAP broadcasts sent {c['broadcast']} ({c['broadcast:suppressed']} covered "
             f"by an alert already sounding), acknowledgements {c['ack']}",
             summary={"warnings": levels, "sms": c["sms"], "broadcasts": c["broadcast"], "acks": c["ack"]})
    return 0
