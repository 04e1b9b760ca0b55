"""docker-compose.yml gives the channels' variables (config/channels.py CHANNEL_ENV, the secrets
also as <VARIABLE>_FILE under the mounted deploy/secrets/) to the alerts container, and to it
only; a group robot's, named by its id, come from the alerts env file (deploy/alerts.env.example)."""

from __future__ import annotations

from pathlib import Path

import yaml

from config.channels import CHANNEL_ENV
from config.loader import load_config
from tests.deploy.compose import (
    ENV_EXAMPLE,
    LAYOUTS,
    ROOT,
    SECRET_NAME,
    dotenv,
    env_of,
    hazwatch_services,
    interpolate,
    layout,
    volumes_of,
)


def test_the_alerts_container_gets_every_channel_variable_and_the_others_none() -> None:
    for name in LAYOUTS:
        services = hazwatch_services(layout(name)["services"])
        alerts = env_of(services["alerts"])
        assert set(CHANNEL_ENV) <= set(alerts), name
        secrets = {v for v in CHANNEL_ENV if SECRET_NAME.search(v) and not v.endswith("_ID")}
        assert {f"{v}_FILE" for v in secrets} <= set(alerts), name
        for other, s in services.items():
            if other != "alerts":
                assert not set(env_of(s)) & set(CHANNEL_ENV), other
                assert not s.get("env_file"), other


def test_the_secret_files_folder_is_mounted_read_only_and_nothing_in_it_is_committed() -> None:
    alerts = layout("three-nodes")["services"]["alerts"]
    mounts = {target: (src, opts) for src, target, opts in volumes_of(alerts)}
    assert mounts["/run/secrets/hazwatch"][0] == "./deploy/secrets"
    assert mounts["/run/secrets/hazwatch"][1]["read_only"] is True
    assert "/etc/hazwatch" in mounts  # the site's configuration still mounted over the example
    ignored = (ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert {"deploy/alerts.env", "deploy/secrets/*", "!deploy/secrets/README.md"} <= set(ignored)


def test_the_alerts_env_file_defaults_to_an_example_that_sets_nothing() -> None:
    alerts = layout("three-nodes")["services"]["alerts"]
    [env_file] = alerts["env_file"]
    path = ROOT / interpolate(env_file, dotenv(ENV_EXAMPLE))
    assert path == ROOT / "deploy" / "alerts.env.example"
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert lines and all(line.startswith("#") for line in lines)


def test_the_channel_variables_of_the_env_file_fill_a_configured_section(tmp_path: Path) -> None:
    """.env.example's empty values leave a configured section alone; filled in, they set it."""
    directory = tmp_path / "config"
    example = ROOT / "config" / "example"
    directory.mkdir()
    for f in example.iterdir():
        if f.is_file():
            (directory / f.name).write_bytes(f.read_bytes())
    data = yaml.safe_load((directory / "hazwatch.yaml").read_text(encoding="utf-8"))
    data["notify"]["channels"] = {"sms_aliyun": {"sign_name": "应急管理", "templates": [
        {"code": "SMS_100000001", "params": {"site": "site"}}]}}
    (directory / "hazwatch.yaml").write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    alerts = layout("three-nodes")["services"]["alerts"]
    sample = dotenv(ENV_EXAMPLE)
    env = {k: interpolate(v, sample) for k, v in env_of(alerts).items()}
    aliyun = load_config(directory, env=env).settings.notify.channels.sms_aliyun
    assert aliyun is not None and aliyun.access_key_id is None and aliyun.endpoint == "dysmsapi.aliyuncs.com"
    secret = tmp_path / "aliyun_access_key_secret"
    secret.write_text("s3cret\n")
    filled = {**sample, "ALIBABA_CLOUD_ACCESS_KEY_ID": "LTAI5t", "ALIBABA_CLOUD_ACCESS_KEY_SECRET_FILE": str(secret)}
    env = {k: interpolate(v, filled) for k, v in env_of(alerts).items()}
    aliyun = load_config(directory, env=env).settings.notify.channels.sms_aliyun
    assert aliyun is not None and aliyun.access_key_id == "LTAI5t"
    assert aliyun.access_key_secret is not None and aliyun.access_key_secret.get_secret_value() == "s3cret"
