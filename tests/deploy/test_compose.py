"""docker-compose.yml, the Dockerfile and deploy/mosquitto agree with the code.

No Docker engine is needed, nor used: `docker compose config` is not run (an autouse fixture
fails any test here that starts `docker`). The compose file is read with PyYAML, its `${VAR}`
interpolation is done here, and every claim it makes about hazwatch is checked against the code:
the typer app for commands and options, the source tree for the environment variables it reads,
config/topics.py for the topics, pyproject.toml for the packages and pins. When mosquitto is on
PATH, the Mosquitto configuration and ACL are also run for real against the topics ingest and
alerts use.
"""

from __future__ import annotations

import ast
import base64
import contextlib
import getpass
import inspect
import re
import shlex
import shutil
import subprocess
import threading
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
MOSQUITTO_DIR = ROOT / "deploy" / "mosquitto"

Services = dict[str, dict[str, Any]]

#: Bind-mount sources that are created at install and never committed (secrets).
INSTALL_TIME_FILES = {"./deploy/mosquitto/passwd"}

#: What each long-running service cannot work without inside a container (the hazwatch.yaml
#: defaults point at 127.0.0.1, i.e. at the container itself).
REQUIRED_ENV = {
    "ingest": {"HAZWATCH_MQTT_URL", "HAZWATCH_KAFKA_BOOTSTRAP"},
    "rules": {"HAZWATCH_KAFKA_BOOTSTRAP"},
    "alerts": {"HAZWATCH_MQTT_URL", "HAZWATCH_KAFKA_BOOTSTRAP", "HAZWATCH_DATABASE_URL",
               "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"},
    "console": {"HAZWATCH_KAFKA_BOOTSTRAP", "HAZWATCH_DATABASE_URL"},
}

#: Values for the variables the compose file requires, as an operator's .env would give them.
DOTENV = {"SITE_CONFIG_DIR": "/srv/hazwatch/config", "TWILIO_ACCOUNT_SID": "ACtest",
          "TWILIO_AUTH_TOKEN": "test-token", "POSTGRES_PASSWORD": "pw", "MQTT_INGEST_PASSWORD": "pw-ingest",
          "MQTT_ALERTS_PASSWORD": "pw-alerts"}

SECRET_NAME = re.compile(r"TOKEN|PASSWORD|SECRET|_SID$|_KEY$")
_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
VAR_REF = re.compile(rf"\$\$|\$\{{({_NAME})(?:(:?[-?+])([^}}]*))?\}}|\$({_NAME})")
ENV_READ = re.compile(
    r"""(?:os\.environ\.get|os\.environ|os\.getenv|environ\.get)"""
    r"""\s*[\[(]\s*["']([A-Z][A-Z0-9_]*)["']""")


# -- loading -----------------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def _no_docker(monkeypatch: pytest.MonkeyPatch) -> None:
    """These checks hold on a machine without a Docker engine: never shell out to docker."""
    real_popen = subprocess.Popen

    class Popen(real_popen):  # type: ignore[misc, valid-type]
        def __init__(self, args: Any, *a: Any, **kw: Any) -> None:
            argv = shlex.split(args) if isinstance(args, str) else list(args)
            assert Path(str(argv[0])).name not in ("docker", "docker-compose"), (
                "the deploy tests must not need a Docker engine (no `docker compose config`)")
            super().__init__(args, *a, **kw)

    monkeypatch.setattr(subprocess, "Popen", Popen)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict) and isinstance(data.get("services"), dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> Services:
    return compose["services"]


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


def _hazwatch_services(services: Services) -> Services:
    """Services that run the image built from this repository's Dockerfile."""
    return {name: s for name, s in services.items()
            if "build" in s or str(s.get("image", "")).split(":")[0] == "hazwatch"}


def _long_running(services: Services) -> Services:
    """The hazwatch services started as `hazwatch <command>` (not the one-shot kafka-init)."""
    return {n: s for n, s in _hazwatch_services(services).items() if "entrypoint" not in s}


def _env(service: Mapping[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """Compose's `${VAR}`, `${VAR:-default}`, `${VAR:?error}`, `$$` rules (enough for this file)."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name, op, arg = m.group(1) or m.group(4), m.group(2), m.group(3) or ""
        val = env.get(name)
        missing = not val if op and op.startswith(":") else val is None
        if op in (":-", "-"):
            return arg if missing else str(val)
        if op in (":?", "?"):
            if missing:
                raise KeyError(f"{name}: {arg}")
            return str(val)
        if op in (":+", "+"):
            return "" if missing else arg
        return val or ""

    return VAR_REF.sub(sub, value)


def _variables(text: str) -> set[str]:
    return {m.group(1) or m.group(4) for m in VAR_REF.finditer(text) if m.group(0) != "$$"}


def _volumes(service: Mapping[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(source, target, long-syntax options) of each mount."""
    out = []
    for v in service.get("volumes") or []:
        if isinstance(v, str):
            parts = v.split(":")
            out.append((parts[0], parts[1], {"read_only": parts[2:] == ["ro"]}))
        else:
            out.append((str(v["source"]), str(v["target"]), v))
    return out


def _targets(service: Mapping[str, Any]) -> set[str]:
    return {target for _, target, _ in _volumes(service)}


# -- the hazwatch services against the CLI -----------------------------------------------------
@pytest.fixture(scope="module")
def cli_commands() -> dict[str, Any]:
    """Name -> click command of `hazwatch` (typer ships its own copy of click, hence Any)."""
    from hazwatch.cli import app

    commands = dict(getattr(typer.main.get_command(app), "commands", {}))
    assert {"ingest", "rules", "alerts"} <= set(commands)
    return commands


def test_the_hazwatch_services_share_one_image(
    services: Services, pyproject: dict[str, Any]
) -> None:
    hazwatch = _hazwatch_services(services)
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
    long_running = _long_running(services)
    assert {"ingest", "rules", "alerts"} <= set(long_running)
    for name, s in long_running.items():
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
    for name, s in _long_running(services).items():
        argv = [str(a) for a in s["command"]]
        assert "--config" in argv and argv[argv.index("--config") + 1] == config_dir, name
        # the site's own configuration is mounted over the baked example, read-only
        mounts = {target: (src, opts) for src, target, opts in _volumes(s)}
        assert config_dir in mounts, f"{name}: no site configuration mounted at {config_dir}"
        src, opts = mounts[config_dir]
        assert opts.get("read_only") is True, name
        assert _variables(src) == {"SITE_CONFIG_DIR"}, name


def test_environment_variables_are_ones_the_code_reads(
    services: Services, dockerfile: dict[str, list[str]]
) -> None:
    from config.loader import ENV_OVERRIDES

    read: set[str] = set(ENV_OVERRIDES)
    for package in ("hazwatch", "config", "sensors", "ingest", "rules", "alerts", "console"):
        for path in (ROOT / package).rglob("*.py"):
            read |= set(ENV_READ.findall(path.read_text(encoding="utf-8")))
    # the scan works: these are read with os.environ in hazwatch/cli.py and rules/worker.py
    assert {"HAZWATCH_DATA_DIR", "HAZWATCH_READY_FILE", "HAZWATCH_LOG_LEVEL"} <= read

    def ours(names: Any) -> set[str]:
        return {str(n) for n in names if str(n).startswith(("HAZWATCH_", "TWILIO_"))}

    for name, s in _hazwatch_services(services).items():
        unknown = ours(_env(s)) - read
        assert not unknown, f"{name} sets {sorted(unknown)}, which no hazwatch code reads"
    for args in dockerfile.get("ENV", []):
        unknown = ours(kv.split("=", 1)[0] for kv in shlex.split(args)) - read
        assert not unknown, f"Dockerfile sets {sorted(unknown)}, which no hazwatch code reads"
    for command, needed in REQUIRED_ENV.items():
        missing = needed - set(_env(services[command]))
        assert not missing, f"{command} needs {sorted(missing)} inside a container"


def test_no_secret_is_committed(services: Services) -> None:
    for name, s in services.items():
        for var, value in _env(s).items():
            if SECRET_NAME.search(var):
                m = VAR_REF.fullmatch(value)
                assert m and m.group(1) and m.group(2) in (None, ":?", "?"), (
                    f"{name}: {var} must come from the environment, without a default: {value!r}")
    alerts = _env(services["alerts"])
    password = alerts["HAZWATCH_DATABASE_URL"].split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]
    assert VAR_REF.fullmatch(password), "the password in HAZWATCH_DATABASE_URL is a literal"
    assert alerts["TWILIO_AUTH_TOKEN"].startswith("${TWILIO_AUTH_TOKEN")


def test_every_variable_is_documented_in_the_header() -> None:
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    header = "\n".join(line for line in text.splitlines()[:40] if line.startswith("#"))
    for var in sorted(_variables(text)):
        assert var in header, f"${{{var}}} is used, but the header does not say how to set it"
    interpolate(text, DOTENV)  # with those set, every reference resolves


# -- addresses: the services the URLs name exist and listen there -------------------------------
def _mosquitto_ports(service: Mapping[str, Any]) -> set[int]:
    (conf,) = [src for src, target, _ in _volumes(service)
               if target == "/mosquitto/config/mosquitto.conf"]
    return {int(entry.split()[0]) for entry in _conf(ROOT / conf).get("listener", [])}


def _listeners(value: str) -> dict[str, tuple[str, int]]:
    """`NAME://host:port,...` -> {NAME: (host, port)}."""
    out = {}
    for item in value.split(","):
        name, _, address = item.strip().partition("://")
        host, _, port = address.rpartition(":")
        out[name] = (host, int(port))
    return out


def test_mqtt_urls_name_the_broker_and_its_listener(services: Services) -> None:
    from config.urls import mqtt_host_port, mqtt_login
    from hazwatch.embedded_mqtt import SERVICE_ACCOUNTS

    for name, s in _hazwatch_services(services).items():
        url = _env(s).get("HAZWATCH_MQTT_URL")
        if url is None:
            continue
        host, port = mqtt_host_port(interpolate(url, DOTENV))
        assert host in services, f"{name}: MQTT host {host!r} is not a service"
        assert services[host]["image"].startswith("eclipse-mosquitto:2"), name
        assert port in _mosquitto_ports(services[host]), f"{name}: no mosquitto listener on {port}"
        assert host in (s.get("depends_on") or {}), f"{name} does not wait for {host}"
        # each service logs in with the account the ACL gives its job
        assert mqtt_login(interpolate(url, DOTENV)) == (SERVICE_ACCOUNTS[name], f"pw-{name}"), name


def test_kafka_bootstrap_names_the_broker_and_its_listener(services: Services) -> None:
    env = _env(services["kafka"])
    listeners = _listeners(env["KAFKA_LISTENERS"])
    advertised = _listeners(env["KAFKA_ADVERTISED_LISTENERS"])
    controllers = set(env["KAFKA_CONTROLLER_LISTENER_NAMES"].split(","))
    for name, s in _hazwatch_services(services).items():
        bootstrap = interpolate(_env(s)["HAZWATCH_KAFKA_BOOTSTRAP"], DOTENV)
        host, _, port = bootstrap.rpartition(":")
        assert host == "kafka", f"{name}: bootstrap {bootstrap} is not the kafka service"
        # clients go on to the advertised address: it must be this one, on a broker listener
        names = [ln for ln, address in advertised.items() if address == (host, int(port))]
        assert names and not set(names) & controllers, (
            f"{name}: {bootstrap} is not an advertised broker listener")
        assert all(listeners[ln][1] == int(port) for ln in names), f"kafka not listening on {port}"
        assert "kafka" in s["depends_on"], f"{name} does not wait for kafka"


def test_database_url_names_the_postgres_service(services: Services) -> None:
    from sqlalchemy.engine import make_url

    url = make_url(interpolate(_env(services["alerts"])["HAZWATCH_DATABASE_URL"], DOTENV))
    assert url.drivername == "postgresql+psycopg2"
    assert url.host in services and services[url.host]["image"].startswith("postgres:15")
    pg = _env(services[url.host])
    assert (url.port or 5432) == 5432 and "PGPORT" not in pg
    assert (url.username, url.database) == (pg["POSTGRES_USER"], pg["POSTGRES_DB"])
    assert url.password == interpolate(pg["POSTGRES_PASSWORD"], DOTENV)
    assert "/var/lib/postgresql/data" in _targets(services[url.host]), "data not on a volume"


# -- Kafka -------------------------------------------------------------------------------------
def test_kafka_runs_kraft_on_one_node(services: Services) -> None:
    kafka = services["kafka"]
    assert re.fullmatch(r"apache/kafka:[34]\.\d+\.\d+", kafka["image"]), "pin a 3.x/4.x tag"
    env = _env(kafka)
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert not any("zookeeper" in n.lower() for n in services)
    assert not any("ZOOKEEPER" in v for v in env)
    (controller,) = env["KAFKA_CONTROLLER_LISTENER_NAMES"].split(",")
    controller_port = _listeners(env["KAFKA_LISTENERS"])[controller][1]
    voters = f"{env['KAFKA_NODE_ID']}@kafka:{controller_port}"
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == voters
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    factors = {k: v for k, v in env.items()
               if k.endswith(("REPLICATION_FACTOR", "MIN_ISR", "MIN_INSYNC_REPLICAS"))}
    assert "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR" in factors, "the default 3 stalls groups"
    assert set(factors.values()) == {"1"}, factors
    # a cluster id is a UUID in URL-safe base64 without padding
    raw = base64.urlsafe_b64decode(env["CLUSTER_ID"] + "==")
    assert len(raw) == 16
    assert base64.urlsafe_b64encode(raw).decode().rstrip("=") == env["CLUSTER_ID"]
    assert env["KAFKA_LOG_DIRS"] in _targets(kafka), "kafka data not on a volume"
    assert "healthcheck" in kafka


def test_kafka_init_creates_every_topic(services: Services) -> None:
    import config.topics as topics
    import hazwatch.runtime as runtime

    init = services["kafka-init"]
    assert init["entrypoint"][:2] == ["python", "-c"] and len(init["command"]) == 1
    tree = ast.parse(init["command"][0])
    imported = {(n.module, a.name) for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
                for a in n.names}
    assert ("hazwatch.runtime", "create_topics") in imported
    (call,) = [n for n in ast.walk(tree) if isinstance(n, ast.Call)
               and isinstance(n.func, ast.Name) and n.func.id == "create_topics"]
    # the bootstrap only: the partitions then default to config/topics.py
    assert len(call.args) == 1 and not call.keywords
    partitions = inspect.signature(runtime.create_topics).parameters["partitions"]
    assert partitions.default is topics.PARTITIONS
    names = {v for k, v in vars(topics).items() if k.isupper() and isinstance(v, str)}
    assert names and names <= set(topics.PARTITIONS), "a topic in config/topics.py lacks partitions"
    assert init.get("restart") == "no"


# -- ordering, volumes, health -----------------------------------------------------------------
def test_depends_on_targets_exist_and_can_satisfy_their_condition(services: Services) -> None:
    for name, s in services.items():
        deps = s.get("depends_on") or {}
        if isinstance(deps, list):
            deps = {d: {"condition": "service_started"} for d in deps}
        for target, spec in deps.items():
            assert target in services, f"{name} depends on unknown service {target}"
            condition = spec.get("condition", "service_started")
            if condition == "service_healthy":
                assert "healthcheck" in services[target], f"{target} has no healthcheck for {name}"
            elif condition == "service_completed_successfully":
                assert services[target].get("restart", "no") == "no", f"{target} is not a one-shot"
    for name in REQUIRED_ENV:
        init = services[name]["depends_on"]["kafka-init"]
        assert init["condition"] == "service_completed_successfully", name
        assert services[name].get("restart") == "unless-stopped", name


def test_mounts_exist_and_named_volumes_are_declared(compose: dict[str, Any]) -> None:
    declared = set(compose.get("volumes") or {})
    for name, s in compose["services"].items():
        for src, _target, opts in _volumes(s):
            if src in INSTALL_TIME_FILES:
                assert opts.get("bind", {}).get("create_host_path") is False, (
                    f"{name}: Docker must not create a missing {src} as an empty directory")
            elif src.startswith((".", "/")):
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
        ready = _env(s)["HAZWATCH_READY_FILE"]
        assert ready in " ".join(s["healthcheck"]["test"]), name
        # a tmpfs is empty at each start: a file left by the previous run cannot pass
        assert str(Path(ready).parent) in s.get("tmpfs", []), name


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


# -- Mosquitto ---------------------------------------------------------------------------------
def _conf(path: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        key, _, value = line.split("#", 1)[0].strip().partition(" ")
        if key:
            out.setdefault(key, []).append(value.strip())
    return out


def test_mosquitto_conf_requires_authentication(services: Services) -> None:
    conf = _conf(MOSQUITTO_DIR / "mosquitto.conf")
    assert conf["allow_anonymous"] == ["false"]
    mounts = {target: src for src, target, _ in _volumes(services["mosquitto"])}
    for key, source in (("password_file", "./deploy/mosquitto/passwd"),
                        ("acl_file", "./deploy/mosquitto/acl")):
        (path,) = conf[key]
        assert mounts.get(path) == source, f"{key} {path} is not mounted from {source}"
    assert conf["persistence"] == ["true"]
    (location,) = conf["persistence_location"]
    volume = mounts.get(location.rstrip("/"), "")
    assert volume and not volume.startswith((".", "/")), "persistence is not on a named volume"
    text = (MOSQUITTO_DIR / "mosquitto.conf").read_text(encoding="utf-8")
    assert "mosquitto_passwd" in text and "not in the repository" in text.lower()


ACCOUNTS = ("hazwatch-ingest", "hazwatch-alerts", "TD-001", "loudspeaker")


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[int]:
    """deploy/mosquitto as written, on a free local port, with a password file for ACCOUNTS."""
    if not (shutil.which("mosquitto") and shutil.which("mosquitto_passwd")):
        pytest.skip("mosquitto is not on PATH")
    passwd = tmp_path / "passwd"
    passwd.touch(mode=0o600)
    for user in ACCOUNTS:
        subprocess.run(["mosquitto_passwd", "-b", str(passwd), user, f"pw-{user}"],
                       check=True, capture_output=True)
    with deployed_mosquitto(tmp_path, passwd) as port:
        yield port


@contextlib.contextmanager
def deployed_mosquitto(tmp_path: Path, passwd: Path) -> Iterator[int]:
    """deploy/mosquitto as written, with ``passwd``, on a free local port."""
    from hazwatch.runtime import free_port, wait_for

    port = free_port()
    (tmp_path / "data").mkdir()
    conf = (MOSQUITTO_DIR / "mosquitto.conf").read_text(encoding="utf-8")
    conf = re.sub(r"(?m)^listener 1883$", f"listener {port} 127.0.0.1", conf)
    for container_path, local in (("/mosquitto/config/passwd", str(passwd)),
                                  ("/mosquitto/config/acl", str(MOSQUITTO_DIR / "acl")),
                                  ("/mosquitto/data/", f"{tmp_path}/data/")):
        conf = conf.replace(container_path, local)
    conf += f"\nuser {getpass.getuser()}\n"  # as root, stay root: the test's files are private
    (tmp_path / "mosquitto.conf").write_text(conf)
    proc = subprocess.Popen(["mosquitto", "-c", str(tmp_path / "mosquitto.conf")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: proc.poll() is not None or _connack(port, None) == "Not authorized",
                 5, "mosquitto")
        assert proc.poll() is None, proc.communicate()[0].decode(errors="replace")
        yield port
    finally:
        proc.terminate()
        proc.wait(5)


@dataclass
class Account:
    """One MQTT connection as `user`, recording what it receives."""

    port: int
    user: str | None
    password: str | None = None
    """Default: ``pw-<user>``, as the ``broker`` fixture creates the accounts."""
    received: list[tuple[str, bytes]] = field(default_factory=list)
    connack: str | None = None
    client: Any = field(init=False, repr=False)

    def __post_init__(self) -> None:
        import paho.mqtt.client as mqtt

        connected = threading.Event()

        def on_connect(_c: Any, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
            self.connack = str(rc)
            connected.set()

        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-{self.user}")
        if self.user:
            self.client.username_pw_set(self.user, self.password or f"pw-{self.user}")
        self.client.on_connect = on_connect
        self.client.on_message = lambda _c, _u, m: self.received.append((m.topic, m.payload))
        self.client.connect("127.0.0.1", self.port, keepalive=10)
        self.client.loop_start()
        assert connected.wait(5)

    def subscribe(self, *topics: str) -> list[bool]:
        done = threading.Event()
        codes: list[Any] = []
        self.client.on_subscribe = lambda _c, _u, _m, rcs, _p: (codes.extend(rcs), done.set())
        self.client.subscribe([(t, 1) for t in topics])
        assert done.wait(5)
        return [not rc.is_failure for rc in codes]

    def publish(self, topic: str) -> None:
        self.client.publish(topic, topic.encode(), qos=1).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()  # first: it wakes the network thread, which loop_stop() joins
        self.client.loop_stop()


def _connack(port: int, user: str | None) -> str | None:
    try:
        account = Account(port, user)
    except OSError:  # not listening yet
        return None
    account.close()
    return account.connack


def test_mosquitto_acl_lets_each_account_do_its_job_and_no_more(broker: int) -> None:
    from config import example_dir, load_config
    from ingest.service import SUBSCRIPTIONS

    assert _connack(broker, None) == "Not authorized"  # anonymous
    assert _connack(broker, "TD-001") == "Success"
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
