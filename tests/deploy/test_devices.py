"""``hazwatch devices add``: a site's device account in Mosquitto's password file, checked against
a real Mosquitto with deploy/mosquitto's configuration and ACL. The device publishes under its own
site; as another site it is refused, and ingest's account never sees that message."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.mosquitto import Account, deployed_mosquitto

pytestmark = pytest.mark.skipif(not (shutil.which("mosquitto") and shutil.which("mosquitto_passwd")),
                                reason="needs Mosquitto")


EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "example"


def hazwatch(*args: str) -> subprocess.CompletedProcess[str]:
    """``hazwatch ARGS --config <the example>`` (devices need the sites of a configuration)."""
    return subprocess.run([sys.executable, "-m", "hazwatch", *args, "--config", str(EXAMPLE)],
                          capture_output=True, text=True, check=False)


def test_a_device_account_publishes_under_its_own_site_only(tmp_path: Path) -> None:
    passwd = tmp_path / "passwd"
    added = hazwatch("devices", "add", "CH-001", "--password-file", str(passwd))
    assert added.returncode == 0, added.stderr
    password = dict(line.split(" ", 1) for line in added.stdout.splitlines())["password"]
    subprocess.run(["mosquitto_passwd", "-b", str(passwd), "hazwatch-ingest", "pw-hazwatch-ingest"],
                   check=True, capture_output=True)
    listed = hazwatch("devices", "list", "--password-file", str(passwd))
    assert listed.stdout.splitlines()[:3] == ["CH-001\taccount", "TD-001\tNO ACCOUNT", "RG-001\tNO ACCOUNT"]
    assert len(listed.stdout.splitlines()) == 16  # every site of the example city, in its order

    with deployed_mosquitto(tmp_path, passwd) as broker:
        port = broker.port
        assert Account(port, "CH-001", password="wrong").connack == "Not authorized"
        ingest, device = Account(port, "hazwatch-ingest"), Account(port, "CH-001", password=password)
        try:
            assert all(ingest.subscribe("hw/v1/#"))
            device.publish("hw/v1/TD-001/PZ-01/reading")  # as another site: refused
            device.publish("hw/v1/CH-001/GT-101/reading")
            ingest.subscribe("hazwatch-test/barrier")  # its SUBACK comes after what was delivered
            assert [t for t, _ in ingest.received] == ["hw/v1/CH-001/GT-101/reading"]
        finally:
            ingest.close()
            device.close()


@pytest.mark.parametrize("site", ["XX-404", "broadcast"])
def test_only_a_configured_site_gets_an_account(tmp_path: Path, site: str) -> None:
    done = hazwatch("devices", "add", site, "--password-file", str(tmp_path / "passwd"))
    assert done.returncode == 2 and "is not a site" in done.stderr
    assert not (tmp_path / "passwd").exists()
