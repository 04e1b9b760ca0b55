"""End-to-end fixtures: real brokers (Mosquitto or amqtt, Tansu), real service processes
(fake Twilio, faust rules worker, alerts, ingest), and probes that read what came out.

Every wait is on content, with a deadline; nothing sleeps a fixed time.
"""

from __future__ import annotations

import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson
import paho.mqtt.client as mqtt
import pytest
import yaml
from kafka import KafkaConsumer

from alerts.store import Store
from config import Config, example_dir, load_config
from hazwatch.demo import start_services
from hazwatch.kafka_admin import all_partitions
from hazwatch.runtime import EmbeddedStack, Process
from sensors.simulator import PlannedMessage

ROOT = Path(__file__).resolve().parents[2]
PACKAGED_XSD = ROOT / "alerts" / "standards" / "CAP-v1.2.xsd"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


def wait_until(check: Callable[[], object], timeout_s: float, what: str, poll_s: float = 0.1) -> object:
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(poll_s)


def expected_sequences(scenario_file: Path) -> dict[str, list[str]]:
    """The ``# expect SUBJECT: level level ...`` lines a scenario file documents."""
    out = {}
    for line in scenario_file.read_text(encoding="utf-8").splitlines():
        m = re.match(r"#\s*expect\s+(\S+):\s+(.+)$", line)
        if m:
            out[m.group(1)] = m.group(2).split()
    return out


class TopicReader:
    """Reads whole topics from the beginning (no consumer group), accumulating records."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                      auto_offset_reset="earliest")
        self.consumer.assign(all_partitions(self.consumer, [topic]))
        self.records: list[dict] = []

    def poll(self) -> list[dict]:
        for recs in self.consumer.poll(timeout_ms=200).values():
            self.records.extend(orjson.loads(r.value) for r in recs)
        return self.records

    def close(self) -> None:
        self.consumer.close()


def committed_offsets(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    """Partition -> the offset that consumer group ``group`` committed on ``topic`` (none: absent)."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="e2e-offsets")
    try:
        offsets = admin.list_group_offsets({group: None}).get(group, {})
    finally:
        admin.close()
    return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic and meta.offset >= 0}


class MqttRecorder:
    """Subscribes to a topic filter at QoS 1 and keeps (topic, payload) in arrival order."""

    def __init__(self, port: int, topic_filter: str, login: tuple[str, str] | None = None) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"e2e-rec-{id(self)}")
        if login is not None:
            self.client.username_pw_set(*login)
        self.client.on_connect = lambda c, *_: c.subscribe(topic_filter, qos=1)
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert subscribed.wait(10), "MQTT recorder could not subscribe"

    def _on_message(self, _c: mqtt.Client, _ud: object, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((msg.topic, bytes(msg.payload)))

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@dataclass
class Pipeline:
    stack: EmbeddedStack
    procs: dict[str, Process]
    config: Config
    config_dir: Path
    _publishers: dict[str, mqtt.Client] = field(default_factory=dict, repr=False)

    @property
    def twilio_url(self) -> str:
        return self.stack.extra_env["HAZWATCH_TWILIO_BASE_URL"]

    def store(self) -> Store:
        return Store(self.stack.extra_env["HAZWATCH_DATABASE_URL"], migrate=False)

    def sms(self) -> list[dict]:
        """Every message the fake Twilio server accepted, in order."""
        return httpx.get(f"{self.twilio_url}/_fake/messages").json()["messages"]

    def publisher(self, site: str) -> mqtt.Client:
        """The MQTT client of ``site``'s device, logged in with its account (the ACL lets it
        publish under its own site only)."""
        if site not in self._publishers:
            client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"e2e-publisher-{site}")
            client.username_pw_set(*self.stack.mqtt_login(site))
            client.connect("127.0.0.1", self.stack.mqtt_port)
            client.loop_start()
            self._publishers[site] = client
        return self._publishers[site]

    def publish(self, messages: list[PlannedMessage] | list[tuple[str, bytes]]) -> None:
        """Publish in order at QoS 1, each acknowledged before the next, each by the device of
        the site its topic names."""
        for m in messages:
            topic, payload = (m.topic, m.payload) if isinstance(m, PlannedMessage) else m
            info = self.publisher(topic.split("/")[2]).publish(topic, payload, qos=1)
            info.wait_for_publish(10)
            assert info.is_published(), f"no PUBACK for {topic}"

    def restart(self, name: str) -> Process:
        """SIGKILL the service ``name`` and start it again; return once the new one is ready."""
        self.procs[name].kill()
        return self.start(name, name.split("-")[0], log_name=f"{name}-restarted")

    def start(self, name: str, service: str, *args: str, env: dict[str, str] | None = None,
              log_name: str | None = None, wait: bool = True) -> Process:
        """Start one more ``hazwatch <service>`` process as ``name``; by default wait until ready."""
        ready = self.stack.workdir / f"{name}.ready"
        ready.unlink(missing_ok=True)
        proc = self.stack.hazwatch(log_name or name, service, "--config", str(self.config_dir), *args,
                                   env={**(env or {}), "HAZWATCH_READY_FILE": str(ready)})
        self.procs[name] = proc
        if wait:
            wait_until(lambda: ready.exists() or not proc.alive(), 120, f"{name} ready")
            assert proc.alive(), proc.log_tail()
        return proc

    def close(self) -> None:
        for client in self._publishers.values():
            client.loop_stop()
            client.disconnect()


def _merge(base: dict, patch: dict) -> dict:
    for k, v in patch.items():
        base[k] = _merge(base.get(k) or {}, v) if isinstance(v, dict) else v
    return base


E2E_SITES = ("CH-001", "TD-001", "RG-001")
"""The sites the scenarios drive (sensors/scenarios/all.yaml). The end-to-end tests run on them
alone: the rest of the example city (the demo's, scenario ``city``) would only add sensors that
never report, fall offline a minute into a test and text every operator about it."""


def config_dir_with(tmp_path: Path, settings_patch: dict, *, whole_city: bool = False) -> Path:
    """A copy of the example configuration with ``hazwatch.yaml`` deep-merged with a patch, and
    (unless ``whole_city``) only the sites :data:`E2E_SITES` in ``sites.yaml``."""
    out = tmp_path / "config"
    shutil.copytree(example_dir(), out)
    path = out / "hazwatch.yaml"
    path.write_text(yaml.safe_dump(_merge(yaml.safe_load(path.read_text()), settings_patch), allow_unicode=True))
    if not whole_city:
        city = load_config(out, env={})
        sites = [city.site(s) for s in E2E_SITES]
        zones = {z for s in E2E_SITES for z in city.affected_zones(s)}
        enterprises, regions = {s.enterprise for s in sites}, {s.region for s in sites}

        def kept(name: str, key: str, keep: Callable[[dict], bool]) -> None:
            path = out / name
            doc = yaml.safe_load(path.read_text(encoding="utf-8"))
            doc[key] = [x for x in doc[key] if keep(x)]
            path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
        kept("sites.yaml", "sites", lambda x: x["id"] in E2E_SITES)
        kept("zones.yaml", "zones", lambda x: x["id"] in zones)
        kept("recipients.yaml", "recipients", lambda x: (x["role"] != "officer" or x["enterprise"] in enterprises)
             and (x.get("tier") != "county" or x["region"] in regions))
    return out


UNCONFIGURED_SITE = "XX-404"
"""A device with an MQTT account whose site the configuration does not have."""

#: End-to-end runs use the example configuration with a short grouping window and no quiet
#: hours (the tests run at any hour; quiet hours are tested with an injected clock).
E2E_SETTINGS = {"routing": {"quiet_hours": None}, "notify": {"group_wait_s": 2, "http": {"port": 0}}}


@pytest.fixture
def settings_patch() -> dict:
    return E2E_SETTINGS


@pytest.fixture
def sites_edit() -> Callable[[dict], None] | None:
    """Override in a test module to change the example ``sites.yaml`` (parsed) before start."""
    return None


@pytest.fixture
def service_env() -> dict[str, str]:
    """Override (or parametrize) to give every service process extra environment variables."""
    return {}


@pytest.fixture
def postgres_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """Services on a fresh PostgreSQL database; use it as ``service_env`` where several alerts
    processes share one outbox."""
    from tests.alerts.db import fresh_database

    for url in fresh_database("postgresql", tmp_path):
        yield {"HAZWATCH_DATABASE_URL": url}


@pytest.fixture
def kafka_nodes() -> int | None:
    """Override in a test module for a three-node Apache Kafka cluster (default: one node)."""
    return None


@pytest.fixture
def pipeline(tmp_path: Path, settings_patch: dict, sites_edit: Callable[[dict], None] | None,
             service_env: dict[str, str], kafka_nodes: int | None) -> Iterator[Pipeline]:
    """A fresh embedded stack with every service running, for one test."""
    config_dir = config_dir_with(tmp_path, settings_patch)
    if sites_edit is not None:
        path = config_dir / "sites.yaml"
        sites = yaml.safe_load(path.read_text())
        sites_edit(sites)
        path.write_text(yaml.safe_dump(sites, allow_unicode=True))
    # every site's device has an account, and so has XX-404: a device whose site is not configured
    devices = [s.id for s in load_config(config_dir, env={}).sites] + [UNCONFIGURED_SITE]
    with EmbeddedStack(tmp_path, kafka_nodes=kafka_nodes, devices=devices, disposable=True) as stack:
        stack.extra_env.update(service_env)
        procs = start_services(stack, config_dir)
        p = Pipeline(stack, procs, load_config(config_dir), config_dir)
        try:
            yield p
        finally:
            p.close()
            for proc in procs.values():
                assert proc.alive(), f"{proc.name} died during the test:\n{proc.log_tail()}"
