"""Ingest hears when the MQTT broker drops messages: deploy/mosquitto as written (its ACL lets
ingest's account read the broker's counts), with a queue of 5 messages and $SYS every second."""

from __future__ import annotations

import re
import subprocess
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
from prometheus_client import REGISTRY

from config.mqtt import MqttSettings
from hazwatch.runtime import wait_for
from ingest.broker_watch import BrokerWatch
from tests.deploy.mosquitto import Account, connack, deployed_conf, make_passwd, require_mosquitto

QUEUE = 5


def _ingest_session_away(port: int) -> None:
    """Ingest's persistent session subscribes, then its client goes away: the broker queues for it."""
    subscribed = threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="hazwatch-ingest-1", clean_session=False)
    client.username_pw_set("hazwatch-ingest", "pw-hazwatch-ingest")
    client.on_subscribe = lambda *_: subscribed.set()
    client.connect("127.0.0.1", port)
    client.loop_start()
    client.subscribe("hw/v1/#", qos=1)
    assert subscribed.wait(10)
    client.disconnect()
    client.loop_stop()


def test_the_broker_dropping_messages_is_a_metric_an_error_and_a_degraded_health(tmp_path: Path) -> None:
    require_mosquitto()
    conf, broker = deployed_conf(tmp_path, make_passwd(tmp_path / "passwd", ("hazwatch-ingest", "TD-001")))
    text, n = re.subn(r"(?m)^max_queued_messages .*$", f"max_queued_messages {QUEUE}", conf.read_text())
    text, m = re.subn(r"(?m)^sys_interval .*$", "sys_interval 1", text)
    assert n == m == 1, "deploy/mosquitto/mosquitto.conf sets max_queued_messages and sys_interval"
    conf.write_text(text)
    proc = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    watch = BrokerWatch(MqttSettings(url=f"mqtt://127.0.0.1:{broker.port}", username="hazwatch-ingest",
                                     password="pw-hazwatch-ingest"), client_id="hazwatch-ingest-1-watch")
    try:
        wait_for(lambda: connack(broker.port, None) == "Not authorized", 10, "mosquitto")
        watch.start()
        wait_for(lambda: watch.dropped is not None, 30, "the broker's count of dropped messages")
        assert watch.dropped == 0
        assert watch.check() is None

        _ingest_session_away(broker.port)
        device = Account(broker.port, "TD-001")
        try:
            for i in range(20):  # each has its PUBACK: the device is done with it
                device.publish(f"hw/v1/TD-001/PZ-{i:02d}/reading")
        finally:
            device.close()

        wait_for(lambda: watch.dropped == 20 - QUEUE, 30, "the broker's count to reach 15")
        assert REGISTRY.get_sample_value("hazwatch_mqtt_broker_dropped_messages") == 20 - QUEUE
        reason = watch.check()
        assert reason is not None and "max_queued_messages" in reason
        wait_for(lambda: (watch.stored or 0) >= QUEUE, 30, "the broker's count of the messages it holds")
    finally:
        watch.stop()
        proc.terminate()
        proc.wait(10)


def test_a_broker_that_restarted_counts_from_zero_and_every_drop_since_is_new() -> None:
    watch = BrokerWatch(MqttSettings(), client_id="unused", hold_s=600)
    watch.observe("$SYS/broker/publish/messages/dropped", b"0")
    assert watch.check() is None
    watch.observe("$SYS/broker/publish/messages/dropped", b"7")
    assert watch.check() is not None
    quiet = BrokerWatch(MqttSettings(), client_id="unused", hold_s=0)
    quiet.observe("$SYS/broker/publish/messages/dropped", b"7")
    quiet.observe("$SYS/broker/publish/messages/dropped", b"7")  # no news
    quiet.observe("$SYS/broker/publish/messages/dropped", b"2")  # a restarted broker: 2 new ones
    assert (quiet.dropped, quiet.drops_seen) == (2, 9)
    assert quiet.check() is None  # past its hold
    watch.observe("$SYS/broker/publish/messages/dropped", b"not a number")
    assert watch.dropped == 7
