"""deploy/mosquitto against docker-compose.yml and the code: what the compose file mounts is what
mosquitto.conf reads; the listeners are the ones the services and the published ports name; and,
run by a real Mosquitto, the configuration and ACL let each account do its job and no more."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy.compose import MOSQUITTO_DIR, ROOT, Services, host_path, volumes_of
from tests.deploy.mosquitto import (
    Account,
    connack,
    deployed_conf,
    deployed_mosquitto,
    make_passwd,
    parse_conf,
    require_mosquitto,
)

CONF = MOSQUITTO_DIR / "mosquitto.conf"


def _listeners() -> dict[int, list[str]]:
    """Port -> the lines that follow its `listener` line up to the next listener or blank line."""
    out: dict[int, list[str]] = {}
    current: list[str] | None = None
    for line in CONF.read_text(encoding="utf-8").splitlines():
        if line.startswith("listener "):
            current = out.setdefault(int(line.split()[1]), [])
        elif not line.strip():
            current = None
        elif current is not None and not line.startswith("#"):
            current.append(line)
    return out


def test_mosquitto_conf_requires_authentication(services: Services) -> None:
    conf = parse_conf(CONF)
    mosquitto = services["mosquitto"]
    assert conf["allow_anonymous"] == ["false"]
    assert conf.get("per_listener_settings", ["false"]) == ["false"], "accounts and ACL must hold on every listener"
    for key, source in (("password_file", "./deploy/mosquitto/passwd"), ("acl_file", "./deploy/mosquitto/acl")):
        (path,) = conf[key]
        assert host_path(mosquitto, path) == source, f"{key} {path} is not mounted from {source}"
    assert (ROOT / "deploy/mosquitto/acl").is_file()
    assert conf["persistence"] == ["true"]
    (location,) = conf["persistence_location"]
    volume = host_path(mosquitto, location.rstrip("/")) or ""
    assert volume and not volume.startswith((".", "/")), "persistence is not on a named volume"
    for _source, _target, opts in volumes_of(mosquitto):
        if _target.startswith(("/mosquitto/config", "/mosquitto/certs")):
            assert opts.get("read_only") is True, f"{_target} must be read-only"
    text = CONF.read_text(encoding="utf-8")
    assert "mosquitto_passwd" in text and "not in the repository" in text.lower()


def test_tls_listener_reads_the_mounted_certificates_and_is_the_one_published(services: Services) -> None:
    mosquitto = services["mosquitto"]
    blocks = _listeners()
    assert set(blocks) == {1883, 8883}
    assert blocks[1883] == [], "the plain listener has no TLS settings"
    tls = dict(line.split(" ", 1) for line in blocks[8883])
    assert (tls["require_certificate"], tls["tls_version"]) == ("false", "tlsv1.2")
    for key, name in (("cafile", "ca.crt"), ("certfile", "server.crt"), ("keyfile", "server.key")):
        assert tls[key] == f"/mosquitto/certs/{name}"
        assert host_path(mosquitto, tls[key]) == f"./deploy/mosquitto/certs/{name}", key
    # only TLS reaches the host; 1883 serves the hazwatch services on Compose's network
    assert mosquitto["ports"] == ["8883:8883"]
    certs = ROOT / "deploy/mosquitto/certs"
    assert (certs / "README.md").is_file(), "the mounted folder exists in a checkout, with how to fill it"
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        return
    for name in ("ca.crt", "server.crt", "server.key", "ca.key", "passwd"):
        folder = MOSQUITTO_DIR if name == "passwd" else certs
        ignored = subprocess.run(["git", "-C", str(ROOT), "check-ignore", "-q", str(folder / name)], check=False)
        assert ignored.returncode == 0, f"{folder / name} must be ignored by git"


def test_no_todo_is_left_in_the_deployment() -> None:
    for path in [ROOT / "docker-compose.yml", ROOT / "docker-compose.single.yml", ROOT / ".env.example",
                 *(p for p in (ROOT / "deploy").rglob("*") if p.is_file())]:
        assert "TODO" not in path.read_text(encoding="utf-8"), path


ACCOUNTS = ("hazwatch-ingest", "hazwatch-alerts", "TD-001", "loudspeaker")


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[int]:
    """deploy/mosquitto as written, on a free local port, with a password file for ACCOUNTS."""
    require_mosquitto()
    with deployed_mosquitto(tmp_path, make_passwd(tmp_path / "passwd", ACCOUNTS)) as deployed:
        yield deployed.port


def test_mosquitto_acl_lets_each_account_do_its_job_and_no_more(broker: int) -> None:
    from config import example_dir, load_config
    from ingest.service import SUBSCRIPTIONS

    assert connack(broker, None) == "Not authorized"  # anonymous
    assert connack(broker, "TD-001") == "Success"
    assert load_config(example_dir()).settings.ingest.shared_group is None  # a plain subscription
    ingest, alerts = Account(broker, "hazwatch-ingest"), Account(broker, "hazwatch-alerts")
    device, speaker = Account(broker, "TD-001"), Account(broker, "loudspeaker")
    try:
        assert all(ingest.subscribe(*SUBSCRIPTIONS))
        # Mosquitto grants these and then withholds what the ACL does not let them read.
        assert all(speaker.subscribe("hw/v1/#"))
        assert all(device.subscribe("hw/v1/#"))

        for topic in ("hw/v1/TD-002/PZ-01/reading", "hw/v1/broadcast/Z-1/cap",  # denied
                      "hw/v1/TD-001/PZ-01/reading", "hw/v1/TD-001/batch", "hw/v1/TD-001/status"):
            device.publish(topic)
        alerts.publish("hw/v1/TD-001/PZ-01/reading")  # denied
        alerts.publish("hw/v1/broadcast/Z-1/cap")
        # Every publish has its PUBACK, so the broker has queued all it will deliver; a SUBACK
        # asked for now arrives behind those deliveries on each connection. No sleeping.
        for account in (ingest, speaker, device):
            account.subscribe("hazwatch-test/barrier")

        assert sorted(t for t, _ in ingest.received) == [
            "hw/v1/TD-001/PZ-01/reading", "hw/v1/TD-001/batch", "hw/v1/TD-001/status"]
        assert speaker.received == [("hw/v1/broadcast/Z-1/cap", b"hw/v1/broadcast/Z-1/cap")]
        assert device.received == [], "a device may not listen to other sites or the broadcasts"
    finally:
        for account in (ingest, speaker, device, alerts):
            account.close()


def test_mosquitto_does_not_start_without_its_password_file(tmp_path: Path) -> None:
    """docker-compose.yml mounts deploy/mosquitto as a folder: a passwd missing there stops the broker
    at its start (rather than Docker creating an empty directory in its place)."""
    require_mosquitto()
    conf, _ = deployed_conf(tmp_path, tmp_path / "passwd")
    done = subprocess.run(["mosquitto", "-c", str(conf)], capture_output=True, timeout=10, check=False)
    assert done.returncode != 0
