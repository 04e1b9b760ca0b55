"""docker-compose.yml and the Dockerfile agree with the code.

No Docker engine is needed, nor used (tests/deploy/conftest.py). The compose files are read with
PyYAML and interpolated with .env.example by tests/deploy/compose.py, and every claim they make
about hazwatch is checked against the code: the typer app for commands and options, the source tree
for the environment variables it reads, the configuration loader for their values, pyproject.toml
for the packages and pins. Kafka's two layouts: test_compose_kafka.py; Mosquitto: test_mosquitto.py;
Debian's docker-compose parsing the files for real: test_compose_config.py.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import tomllib
from dataclasses import dataclass
from typing import Any

import pytest
import typer

from tests.deploy.compose import (
    COMPOSE_FILE,
    DOCKERFILE,
    LAYOUTS,
    ROOT,
    SECRET_NAME,
    VAR_REF,
    Services,
    active,
    dotenv,
    env_of,
    hazwatch_services,
    interpolate,
    layout,
    long_running,
    variables,
    volumes_of,
)

#: Files made at install that hold secrets: never committed, and never bind-mounted one by one
#: (Docker would create a missing one as an empty directory; the folder around them is mounted).
INSTALL_TIME_FILES = {"deploy/mosquitto/passwd", "deploy/mosquitto/certs/server.key",
                      "deploy/mosquitto/certs/server.crt", "deploy/mosquitto/certs/ca.crt"}

#: What each long-running service cannot work without inside a container (the hazwatch.yaml
#: defaults point at 127.0.0.1, i.e. at the container itself).
REQUIRED_ENV = {
    "ingest": {"HAZWATCH_MQTT_URL", "HAZWATCH_MQTT_USERNAME", "HAZWATCH_MQTT_PASSWORD",
               "HAZWATCH_KAFKA_BOOTSTRAP"},
    "rules": {"HAZWATCH_KAFKA_BOOTSTRAP"},
    "alerts": {"HAZWATCH_MQTT_URL", "HAZWATCH_MQTT_USERNAME", "HAZWATCH_MQTT_PASSWORD",
               "HAZWATCH_KAFKA_BOOTSTRAP", "HAZWATCH_DATABASE_URL", "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN",
               "HAZWATCH_ALERTS_HTTP_HOST", "HAZWATCH_ALERTS_PUBLIC_URL"},
    "console": {"HAZWATCH_KAFKA_BOOTSTRAP", "HAZWATCH_DATABASE_URL"},
    "history": {"HAZWATCH_KAFKA_BOOTSTRAP", "HAZWATCH_HISTORY_URL", "HAZWATCH_HISTORY_TOKEN"},
}

#: The sample environment file's values, as an operator's .env gives them.
DOTENV = dotenv()

ENV_READ = re.compile(
    r"""(?:os\.environ\.get|os\.environ|os\.getenv|environ\.get)"""
    r"""\s*[\[(]\s*["']([A-Z][A-Z0-9_]*)["']""")


@pytest.fixture(scope="module")
def pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


@dataclass(frozen=True)
class Instruction:
    name: str
    args: str


@pytest.fixture(scope="module")
def dockerfile() -> dict[str, list[str]]:
    """Instruction name -> the arguments of each occurrence, continuation lines joined."""
    out: list[Instruction] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        name, _, args = (pending + line).partition(" ")
        pending = ""
        out.append(Instruction(name.upper(), args.strip()))
    by_name: dict[str, list[str]] = {}
    for i in out:
        by_name.setdefault(i.name, []).append(i.args)
    return by_name


# -- the hazwatch services against the CLI -----------------------------------------------------
@pytest.fixture(scope="module")
def cli_commands() -> dict[str, Any]:
    """Name -> click command of `hazwatch` (typer ships its own copy of click, hence Any)."""
    from hazwatch.cli import app

    commands = dict(getattr(typer.main.get_command(app), "commands", {}))
    assert {"ingest", "rules", "alerts", "create-topics"} <= set(commands)
    return commands


def test_the_hazwatch_services_share_one_image(services: Services, pyproject: dict[str, Any]) -> None:
    hazwatch = hazwatch_services(services)
    assert {"ingest", "rules", "alerts", "kafka-init"} <= set(hazwatch)
    tag = f"hazwatch:{pyproject['project']['version']}"
    for name, s in hazwatch.items():
        assert s.get("build") in (".", {"context": "."}), f"{name}: not built from ./Dockerfile"
        assert s.get("image") == tag, f"{name}: image is not {tag}"


def test_every_service_command_is_a_real_command_with_real_options(
    services: Services, cli_commands: dict[str, Any]
) -> None:
    with pytest.raises(Exception, match="--no-such-option"):  # the check below has teeth
        cli_commands["ingest"].make_context("ingest", ["--no-such-option"])
    hazwatch = hazwatch_services(services)
    assert set(long_running(services)) == set(REQUIRED_ENV) == set(hazwatch) - {"kafka-init"}
    for name, s in hazwatch.items():
        assert "entrypoint" not in s, f"{name}: the image's entrypoint is `hazwatch`"
        argv = s.get("command")
        assert isinstance(argv, list) and argv, f"{name}: command must be an exec-form list"
        command, args = str(argv[0]), [str(a) for a in argv[1:]]
        assert command in cli_commands, (
            f"{name}: `hazwatch {command}` does not exist (commands: {sorted(cli_commands)})")
        # Parsing is what click does before it calls the command: unknown options, missing
        # values and bad types fail here exactly as they would in the container.
        cli_commands[command].make_context(command, args)


def test_services_read_the_configuration_where_the_image_puts_it(
    services: Services, dockerfile: dict[str, list[str]]
) -> None:
    copies = [shlex.split(args) for args in dockerfile["COPY"]]
    dests = {c[-1].rstrip("/") for c in copies
             if "config/example" in {src.rstrip("/") for src in c[:-1]}}
    assert len(dests) == 1, "the Dockerfile must copy config/example to one place"
    (config_dir,) = dests
    for name, s in hazwatch_services(services).items():
        argv = [str(a) for a in s["command"]]
        assert "--config" in argv and argv[argv.index("--config") + 1] == config_dir, name
        # the site's own configuration is mounted over the baked example, read-only
        mounts = {target: (src, opts) for src, target, opts in volumes_of(s)}
        assert config_dir in mounts, f"{name}: no site configuration mounted at {config_dir}"
        src, opts = mounts[config_dir]
        assert opts.get("read_only") is True, name
        assert variables(src) == {"SITE_CONFIG_DIR"}, name


def test_environment_variables_are_ones_the_code_reads(
    services: Services, dockerfile: dict[str, list[str]]
) -> None:
    from config.channels import CHANNEL_ENV
    from config.loader import ENV_OVERRIDES

    # the loader applies both tables (a robot's variables are named by its id: deploy/alerts.env)
    applied = set(ENV_OVERRIDES) | set(CHANNEL_ENV)
    read: set[str] = applied | {f"{v}_FILE" for v in applied}
    for package in ("hazwatch", "config", "sensors", "ingest", "rules", "alerts", "console", "history"):
        for path in (ROOT / package).rglob("*.py"):
            read |= set(ENV_READ.findall(path.read_text(encoding="utf-8")))
    # the scan works: these are read with os.environ in hazwatch/cli.py and rules/worker.py
    assert {"HAZWATCH_DATA_DIR", "HAZWATCH_READY_FILE", "HAZWATCH_LOG_LEVEL"} <= read

    def ours(names: Any) -> set[str]:
        return {str(n) for n in names if str(n).startswith(("HAZWATCH_", "TWILIO_", "ALIBABA_CLOUD_", "TENCENTCLOUD_"))}

    for name, s in hazwatch_services(services).items():
        unknown = ours(env_of(s)) - read
        assert not unknown, f"{name} sets {sorted(unknown)}, which no hazwatch code reads"
    for args in dockerfile.get("ENV", []):
        unknown = ours(kv.split("=", 1)[0] for kv in shlex.split(args)) - read
        assert not unknown, f"Dockerfile sets {sorted(unknown)}, which no hazwatch code reads"
    for command, needed in REQUIRED_ENV.items():
        missing = needed - set(env_of(services[command]))
        assert not missing, f"{command} needs {sorted(missing)} inside a container"


@pytest.mark.parametrize("name", LAYOUTS)
def test_each_service_environment_is_a_valid_configuration(name: str) -> None:
    """What the compose file sets, with .env.example's values, loads: the example configuration
    (as the image bakes it) with each service's environment over it."""
    from config import example_dir, load_config

    for s in hazwatch_services(active(layout(name)["services"])).values():
        env = {k: interpolate(v, DOTENV) for k, v in env_of(s).items()}
        load_config(example_dir(), env=env)  # raises ConfigError naming each problem


def test_no_secret_is_committed(services: Services) -> None:
    for name, s in services.items():
        for var, value in env_of(s).items():
            if SECRET_NAME.search(var):
                m = VAR_REF.fullmatch(value)
                assert m and m.group(1) and m.group(2) in (None, ":?", "?"), (
                    f"{name}: {var} must come from the environment, without a default: {value!r}")
    alerts = env_of(services["alerts"])
    password = alerts["HAZWATCH_DATABASE_URL"].split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]
    assert VAR_REF.fullmatch(password), "the password in HAZWATCH_DATABASE_URL is a literal"
    assert alerts["TWILIO_AUTH_TOKEN"].startswith("${TWILIO_AUTH_TOKEN")
    for name in ("ingest", "alerts"):  # the MQTT account's password is not in the URL
        assert "@" not in env_of(services[name])["HAZWATCH_MQTT_URL"], name


def test_the_header_says_how_to_start() -> None:
    header = "\n".join(line for line in COMPOSE_FILE.read_text(encoding="utf-8").splitlines()
                       if line.startswith("#"))
    for needed in (".env.example", "docker-compose.single.yml", "deploy/mosquitto/passwd",
                   "deploy/mosquitto/certs", "HAZWATCH_PUBLIC_URL", "check-config"):
        assert needed in header, f"the header of docker-compose.yml does not mention {needed}"


# -- addresses: the services the URLs name exist and listen there -------------------------------
def test_mqtt_urls_name_the_broker_and_its_listener(services: Services) -> None:
    from config import example_dir, load_config
    from hazwatch.embedded_mqtt import SERVICE_ACCOUNTS
    from tests.deploy.mosquitto import parse_conf

    for name, s in hazwatch_services(services).items():
        env = {k: interpolate(v, DOTENV) for k, v in env_of(s).items()}
        if "HAZWATCH_MQTT_URL" not in env:
            continue
        mqtt = load_config(example_dir(), env=env).settings.mqtt
        host, port = re.fullmatch(r"mqtts?://([^:/@]+):(\d+)", mqtt.url).groups()  # type: ignore[union-attr]
        assert host in services, f"{name}: MQTT host {host!r} is not a service"
        broker = services[host]
        assert broker["image"].startswith("eclipse-mosquitto:2"), name
        (conf,) = [src for src, target, _ in volumes_of(broker) if target == "/mosquitto/config"]
        ports = {int(entry.split()[0]) for entry in parse_conf(ROOT / conf / "mosquitto.conf")["listener"]}
        assert int(port) in ports, f"{name}: no mosquitto listener on {port}"
        assert host in (s.get("depends_on") or {}), f"{name} does not wait for {host}"
        # each service logs in with the account the ACL gives its job, its password from .env
        assert mqtt.login() == (SERVICE_ACCOUNTS[name], DOTENV[f"MQTT_{name.upper()}_PASSWORD"]), name


def test_alerts_http_server_is_reachable_for_the_reverse_proxy(services: Services) -> None:
    """Twilio's callbacks reach alerts through the host's TLS proxy at the one public URL."""
    from alerts.http import status_callback_url
    from config import example_dir, load_config

    alerts = services["alerts"]
    env = {k: interpolate(v, DOTENV) for k, v in env_of(alerts).items()}
    config = load_config(example_dir(), env=env)
    http = config.settings.notify.http
    assert http.host == "0.0.0.0", "inside its container it must listen on every interface"
    assert alerts["ports"] == [f"127.0.0.1:{http.port}:{http.port}"], "published for the proxy only"
    assert env_of(alerts)["HAZWATCH_ALERTS_PUBLIC_URL"].startswith("${HAZWATCH_PUBLIC_URL:?")
    assert status_callback_url(config) == DOTENV["HAZWATCH_PUBLIC_URL"] + "/twilio/status"
    # Prometheus scrapes its /metrics on that port inside the network
    scrape = (ROOT / "deploy/prometheus/prometheus.yml").read_text(encoding="utf-8")
    assert f'"alerts:{http.port}"' in scrape


def test_database_url_names_the_postgres_service(services: Services) -> None:
    from sqlalchemy.engine import make_url

    url = make_url(interpolate(env_of(services["alerts"])["HAZWATCH_DATABASE_URL"], DOTENV))
    assert url.drivername == "postgresql+psycopg2"
    assert url.host in services and services[url.host]["image"].startswith("postgres:15")
    pg = env_of(services[url.host])
    assert (url.port or 5432) == 5432 and "PGPORT" not in pg
    assert (url.username, url.database) == (pg["POSTGRES_USER"], pg["POSTGRES_DB"])
    assert url.password == interpolate(pg["POSTGRES_PASSWORD"], DOTENV)
    assert "/var/lib/postgresql/data" in {t for _, t, _ in volumes_of(services[url.host])}, "data not on a volume"


# -- ordering, volumes, health -----------------------------------------------------------------
@pytest.mark.parametrize("name", LAYOUTS)
def test_depends_on_targets_exist_and_can_satisfy_their_condition(name: str) -> None:
    services = layout(name)["services"]
    running = active(services)
    for service, s in running.items():
        deps = s.get("depends_on") or {}
        if isinstance(deps, list):
            deps = {d: {"condition": "service_started"} for d in deps}
        for target, spec in deps.items():
            assert target in running, f"{name}: {service} depends on {target}, which does not run"
            condition = spec.get("condition", "service_started")
            if condition == "service_healthy":
                assert "healthcheck" in running[target], f"{target} has no healthcheck for {service}"
            elif condition == "service_completed_successfully":
                assert running[target].get("restart", "no") == "no", f"{target} is not a one-shot"
    for service in REQUIRED_ENV:
        init = running[service]["depends_on"]["kafka-init"]
        assert init["condition"] == "service_completed_successfully", service
        assert running[service].get("restart") == "unless-stopped", service


def test_mounts_exist_and_named_volumes_are_declared(compose: dict[str, Any]) -> None:
    declared = set(compose.get("volumes") or {})
    for name, s in compose["services"].items():
        for src, _target, _opts in volumes_of(s):
            if src.startswith((".", "/")):
                assert src.removeprefix("./") not in INSTALL_TIME_FILES, (
                    f"{name}: a missing {src} would be created as an empty directory: mount its folder")
                assert (ROOT / src).exists(), f"{name}: {src} is not in the repository"
            elif not src.startswith("$"):
                assert src in declared, f"{name}: volume {src} is not declared"
    for path in INSTALL_TIME_FILES:
        assert not _tracked(path), f"{path} holds secrets and must not be committed"


def _tracked(path: str) -> bool:
    git = shutil.which("git")
    if not git or not (ROOT / ".git").exists():
        return False
    res = subprocess.run([git, "-C", str(ROOT), "ls-files", "--error-unmatch", path],
                         capture_output=True, check=False)
    return res.returncode == 0


def test_healthchecks_use_the_ready_file(services: Services) -> None:
    for name in REQUIRED_ENV:
        s = services[name]
        ready = env_of(s)["HAZWATCH_READY_FILE"]
        assert ready in " ".join(s["healthcheck"]["test"]), name
        # a tmpfs is empty at each start: a file left by the previous run cannot pass
        assert ready.rsplit("/", 1)[0] in s.get("tmpfs", []), name


# -- the Dockerfile ----------------------------------------------------------------------------
def test_dockerfile_builds_the_one_hazwatch_image(
    dockerfile: dict[str, list[str]], pyproject: dict[str, Any]
) -> None:
    assert dockerfile["FROM"] == ["python:3.11-slim"]
    assert dockerfile["ENTRYPOINT"][-1].replace(" ", "") == '["hazwatch"]'
    assert "hazwatch" in pyproject["project"]["scripts"], "pip install must create `hazwatch`"
    assert dockerfile["USER"][-1].split(":")[0] not in ("root", "0"), "running as root"
    # pip installs the copied source: every package pyproject ships is copied, and exists
    copied = {src.rstrip("/") for args in dockerfile["COPY"] for src in shlex.split(args)[:-1]
              if not src.startswith("--")}
    for src in copied:
        assert (ROOT / src).exists(), f"COPY {src}: not in the repository"
    include = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {p.rstrip("*") for p in include} | {"pyproject.toml"}
    assert packages <= copied, f"not copied into the image: {sorted(packages - copied)}"
    install = " ".join(a for a in dockerfile["RUN"] if "pip install" in a)
    assert re.search(r"pip install \.(\s|$)", install), "the image must `pip install .`"
    # the PostgreSQL driver of the compose database URL, at the pin the tests use
    test_extra = pyproject["project"]["optional-dependencies"]["test"]
    (pin,) = [d for d in test_extra if d.startswith("psycopg2")]
    assert pin in install, f"the image must install {pin} (pyproject's pin)"
