"""Apache Kafka in KRaft mode on loopback: one node, or a cluster of three combined nodes.

Each node is broker and controller at once (``process.roles=broker,controller``), with a static
quorum of all nodes. Start: format every node's storage with one cluster id, start every JVM, then
ask the cluster until it names every broker. With three nodes, topics get replication factor 3 and
``min.insync.replicas=2``, so an ``acks=all`` write survives the loss of any one node.

Fault tests use :meth:`ApacheKafka.kill`, :meth:`~ApacheKafka.restart`, :meth:`~ApacheKafka.pause`
and :meth:`~ApacheKafka.resume` on a node, and :meth:`~ApacheKafka.leaders` to find the node that
leads a topic's partitions.
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import tempfile
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hazwatch.apache_kafka.jars import KAFKA_VERSION, cache_root, ensure_jars

if TYPE_CHECKING:
    from hazwatch.runtime import Process

__all__ = ["ApacheKafka", "KafkaNode", "Spawn"]

Spawn = Callable[[str, Sequence[str]], "Process"]
"""Starts a child process with a name and an argv and returns it (``EmbeddedStack.spawn``)."""

_LOG4J = """\
status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = warn
rootLogger.appenderRef.out.ref = OUT
logger.server.name = kafka.server.KafkaRaftServer
logger.server.level = info
logger.broker.name = kafka.server.BrokerServer
logger.broker.level = info
"""

_JVM_OPTS = ("-Xms128m", "-Xmx768m", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
             "-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true")


@dataclass
class KafkaNode:
    node_id: int
    port: int
    controller_port: int
    home: Path
    process: Process | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def properties(self) -> Path:
        return self.home / "server.properties"


class ApacheKafka:
    """A KRaft cluster of ``nodes`` (1 or 3) on free loopback ports under ``workdir``."""

    def __init__(self, workdir: Path, spawn: Spawn, free_port: Callable[[], int], *, nodes: int = 1) -> None:
        if nodes not in (1, 3):
            raise ValueError(f"an embedded Apache Kafka has 1 or 3 nodes, not {nodes}")
        self.workdir = workdir
        self._spawn = spawn
        self.nodes = [KafkaNode(i, free_port(), free_port(), workdir / f"kafka-{i}") for i in range(1, nodes + 1)]
        self.replication_factor = nodes
        self.min_insync_replicas = 2 if nodes == 3 else 1
        self._java = shutil.which("java")
        self._classpath = ""

    @property
    def bootstrap(self) -> str:
        return ",".join(n.address for n in self.nodes)

    # -- start --------------------------------------------------------------------------------
    def start(self, wait_ready: Callable[[Process, Callable[[], bool], str], None]) -> ApacheKafka:
        """Format, start every node, and wait (through ``wait_ready``) until all are brokers."""
        if self._java is None:
            raise FileNotFoundError("java is not installed: Apache Kafka needs Java 17 (Debian: openjdk-17-jre-headless)")
        self._classpath = str(ensure_jars() / "*")
        for node in self.nodes:
            self._write_config(node)
        self._formatted_storage()
        for node in self.nodes:
            self._start(node)
        first = self.nodes[0].process
        assert first is not None
        wait_ready(first, self.all_brokers_up, f"Apache Kafka {KAFKA_VERSION} ({len(self.nodes)} node(s))")
        return self

    def _write_config(self, node: KafkaNode) -> None:
        node.home.mkdir(parents=True, exist_ok=True)
        voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in self.nodes)
        rf, isr = self.replication_factor, self.min_insync_replicas
        node.properties.write_text(f"""\
process.roles=broker,controller
node.id={node.node_id}
controller.quorum.voters={voters}
listeners=PLAINTEXT://127.0.0.1:{node.port},CONTROLLER://127.0.0.1:{node.controller_port}
advertised.listeners=PLAINTEXT://127.0.0.1:{node.port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs={node.home / "data"}
num.partitions=1
auto.create.topics.enable=false
default.replication.factor={rf}
min.insync.replicas={isr}
unclean.leader.election.enable=false
offsets.topic.replication.factor={rf}
offsets.topic.num.partitions=12
transaction.state.log.replication.factor={rf}
transaction.state.log.min.isr={isr}
share.coordinator.state.topic.replication.factor={rf}
share.coordinator.state.topic.min.isr={isr}
group.initial.rebalance.delay.ms=0
replica.lag.time.max.ms=10000
""")
        (node.home / "log4j2.properties").write_text(_LOG4J)

    def _argv(self, node: KafkaNode, main: str, *args: str) -> list[str]:
        assert self._java is not None
        return [self._java, *_JVM_OPTS, f"-Dlog4j2.configurationFile={node.home / 'log4j2.properties'}",
                "-cp", self._classpath, main, *args]

    def _formatted_storage(self) -> None:
        """Give every node formatted storage: a copy of a cluster formatted once and kept in the
        cache (its files name the node and the cluster id, not the ports or paths), since the
        storage tool costs a JVM start (2-4 s) per node and stack."""
        template = cache_root() / "formatted" / f"kafka-{KAFKA_VERSION}-{len(self.nodes)}-nodes"
        if not template.exists():
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            for node in self.nodes:
                self._format(node, cluster_id)
            staging = Path(tempfile.mkdtemp(prefix="formatting-", dir=template.parent.parent))
            for node in self.nodes:
                shutil.copytree(node.home / "data", staging / f"node-{node.node_id}")
            template.parent.mkdir(parents=True, exist_ok=True)
            try:
                staging.rename(template)
            except OSError:  # another run made it meanwhile: theirs is as good
                shutil.rmtree(staging, ignore_errors=True)
            return
        for node in self.nodes:
            shutil.copytree(template / f"node-{node.node_id}", node.home / "data")

    def _format(self, node: KafkaNode, cluster_id: str) -> None:
        proc = self._spawn(f"kafka-{node.node_id}-format", self._argv(
            # "--cluster-id=": an id may start with "-", which the tool would take for an option
            node, "kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}", "--config", str(node.properties)))
        assert proc.popen is not None
        if proc.popen.wait(120) != 0:
            raise RuntimeError(f"formatting the storage of Kafka node {node.node_id} failed:\n{proc.log_tail()}")

    def _start(self, node: KafkaNode) -> None:
        node.process = self._spawn(f"kafka-{node.node_id}", self._argv(node, "kafka.Kafka", str(node.properties)))

    # -- readiness and leaders ----------------------------------------------------------------
    def all_brokers_up(self) -> bool:
        """True when the cluster's metadata names every node as a live broker (every node's port
        is tried first: ``hazwatch.kafka_admin.listening``)."""
        from kafka import KafkaAdminClient

        from hazwatch.kafka_admin import listening

        if not listening(",".join(n.address for n in self.nodes)):
            return False

        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=3000, client_id="hw-probe")
        try:
            return len(admin.describe_cluster()["brokers"]) == len(self.nodes)
        finally:
            admin.close()

    def leaders(self, topic: str) -> dict[int, int]:
        """Partition -> node id of its leader (-1 while it has none)."""
        from kafka import KafkaAdminClient

        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=5000, client_id="hw-probe")
        try:
            (described,) = admin.describe_topics([topic])
            return {p["partition_index"]: p["leader_id"] for p in described["partitions"]}
        finally:
            admin.close()

    def node(self, node_id: int) -> KafkaNode:
        return self.nodes[node_id - 1]

    # -- faults -------------------------------------------------------------------------------
    def kill(self, node_id: int) -> None:
        """SIGKILL a node, as a lost machine would."""
        process = self.node(node_id).process
        if process is not None:
            process.kill()

    def restart(self, node_id: int) -> None:
        """Start a stopped or killed node again on its own storage and ports."""
        node = self.node(node_id)
        if node.process is not None and node.process.alive():
            raise RuntimeError(f"Kafka node {node_id} is still running")
        self._start(node)

    def pause(self, node_id: int) -> None:
        """SIGSTOP: the node keeps its sockets but answers nothing, as a hung machine."""
        os.kill(self._pid(node_id), signal.SIGSTOP)

    def resume(self, node_id: int) -> None:
        os.kill(self._pid(node_id), signal.SIGCONT)

    def _pid(self, node_id: int) -> int:
        process = self.node(node_id).process
        if process is None or not process.alive():
            raise RuntimeError(f"Kafka node {node_id} is not running")
        return process.pid
