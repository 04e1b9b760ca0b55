"""A real parser reads the compose files: Debian's docker-compose 1.29 (`docker-compose config`)
accepts both layouts with the sample environment file .env.example, and resolves them to what
tests/deploy/compose.py, which the other deploy tests use, makes of them.

`docker-compose config` parses, validates, merges and interpolates; it contacts no Docker engine,
which is pointed at nothing here (DOCKER_HOST) to keep it so. Without docker-compose these tests
are skipped, except under CI (`.ci/run` installs it), where they fail.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.compose import (
    COMPOSE_FILE,
    ENV_EXAMPLE,
    LAYOUTS,
    ROOT,
    SECRET_NAME,
    SINGLE_FILE,
    active,
    dotenv,
    env_of,
    interpolate,
    layout,
    variables,
)
from tests.deploy.conftest import allowed


@pytest.fixture(scope="module")
def docker_compose() -> str:
    exe = shutil.which("docker-compose")
    if exe is None:
        message = "docker-compose is not installed (Debian: apt-get install --no-install-recommends docker-compose)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return exe


def compose_config(exe: str, files: tuple[Path, ...], env_file: Path = ENV_EXAMPLE) -> subprocess.CompletedProcess[str]:
    argv = [exe, "--env-file", str(env_file)]
    for path in files:
        argv += ["-f", str(path.relative_to(ROOT))]
    # Nothing from this process's environment: .env.example alone must do. No engine either.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp"),
           "DOCKER_HOST": "unix:///nonexistent/docker.sock"}
    return subprocess.run([*argv, "config"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60, check=False)


@pytest.fixture(scope="module", params=list(LAYOUTS))
def resolved(request: pytest.FixtureRequest, docker_compose: str) -> tuple[str, dict[str, Any]]:
    name = request.param
    done = compose_config(docker_compose, LAYOUTS[name])
    assert done.returncode == 0, f"docker-compose config ({name}) failed:\n{done.stderr}"
    return name, yaml.safe_load(done.stdout)


def test_docker_compose_resolves_each_service_as_the_tests_read_it(resolved: tuple[str, dict[str, Any]]) -> None:
    name, config = resolved
    ours = layout(name)["services"]
    env = dotenv()
    assert set(config["services"]) == set(ours)
    for service, s in ours.items():
        theirs = config["services"][service]
        assert env_of(theirs) == {k: interpolate(v, env) for k, v in env_of(s).items()}, service
        assert bool(theirs.get("profiles")) == bool(s.get("profiles")), service
        assert set(theirs.get("depends_on") or {}) == set(s.get("depends_on") or {}), service


def test_the_three_node_layout_as_docker_compose_resolves_it(resolved: tuple[str, dict[str, Any]]) -> None:
    name, config = resolved
    services = active(config["services"])
    kafka = {n: env_of(s) for n, s in services.items() if n.startswith("kafka-") and n != "kafka-init"}
    init = env_of(services["kafka-init"])
    if name == "single":
        assert set(kafka) == {"kafka-1"}
        assert kafka["kafka-1"]["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@kafka-1:9093"
        assert kafka["kafka-1"]["KAFKA_DEFAULT_REPLICATION_FACTOR"] == "1"
        assert (init["HAZWATCH_KAFKA_REPLICATION_FACTOR"], init["HAZWATCH_KAFKA_MIN_INSYNC_REPLICAS"]) == ("1", "1")
        assert config["services"]["kafka-2"]["profiles"] == ["three-nodes"]
        bootstrap = "kafka-1:9092"
    else:
        assert set(kafka) == {"kafka-1", "kafka-2", "kafka-3"}
        for env in kafka.values():
            assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093"
            assert (env["KAFKA_DEFAULT_REPLICATION_FACTOR"], env["KAFKA_MIN_INSYNC_REPLICAS"]) == ("3", "2")
            assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "3"
            assert env["KAFKA_LOG_RETENTION_HOURS"] == "168"
        assert (init["HAZWATCH_KAFKA_REPLICATION_FACTOR"], init["HAZWATCH_KAFKA_MIN_INSYNC_REPLICAS"]) == ("3", "2")
        bootstrap = "kafka-1:9092,kafka-2:9092,kafka-3:9092"
    for service in ("kafka-init", "ingest", "rules", "alerts", "console", "history"):
        assert env_of(services[service])["HAZWATCH_KAFKA_BOOTSTRAP"] == bootstrap, service
    alerts = env_of(services["alerts"])
    assert alerts["HAZWATCH_ALERTS_PUBLIC_URL"] == dotenv()["HAZWATCH_PUBLIC_URL"]
    assert alerts["HAZWATCH_MQTT_PASSWORD"] == dotenv()["MQTT_ALERTS_PASSWORD"]


def test_a_missing_required_variable_stops_docker_compose(docker_compose: str, tmp_path: Path) -> None:
    lines = ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
    partial = tmp_path / "partial.env"
    partial.write_text("\n".join(line for line in lines if not line.startswith("HAZWATCH_PUBLIC_URL=")) + "\n")
    done = compose_config(docker_compose, LAYOUTS["three-nodes"], env_file=partial)
    assert done.returncode != 0
    assert "HAZWATCH_PUBLIC_URL" in done.stderr


# -- .env.example: no docker-compose needed ------------------------------------------------------
def test_env_example_sets_every_variable_of_the_compose_files_with_a_comment_each() -> None:
    def strings(node: Any) -> list[str]:  # every string of the YAML, where Compose interpolates
        if isinstance(node, dict):
            return [s for k, v in node.items() for s in (*strings(k), *strings(v))]
        if isinstance(node, list):
            return [s for v in node for s in strings(v)]
        return [node] if isinstance(node, str) else []

    used = {var for path in (COMPOSE_FILE, SINGLE_FILE)
            for text in strings(yaml.safe_load(path.read_text(encoding="utf-8"))) for var in variables(text)}
    sample = dotenv()
    assert set(sample) == used, f"missing: {sorted(used - set(sample))}, unused: {sorted(set(sample) - used)}"
    lines = ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if line and not line.startswith("#"):
            assert i > 0 and lines[i - 1].startswith("#"), f".env.example: {line.split('=')[0]} has no comment"
    for var, value in sample.items():
        if SECRET_NAME.search(var):  # placeholders, or empty (an optional channel's, unset), never a real secret
            assert value == "" or value.startswith("replace-with-") or set(value[2:]) == {"x"}, var
    for name in LAYOUTS:  # and every reference resolves with it
        for s in layout(name)["services"].values():
            for value in env_of(s).values():
                interpolate(value, sample)


def test_env_is_ignored_and_its_example_is_not() -> None:
    git = shutil.which("git")
    if git is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    check = [git, "-C", str(ROOT), "check-ignore", "-q"]
    assert subprocess.run([*check, ".env"], check=False).returncode == 0
    assert subprocess.run([*check, ".env.example"], check=False).returncode == 1


# -- the guard that keeps Docker out ----------------------------------------------------------
@pytest.mark.parametrize(("argv", "ok"), [
    (["docker-compose", "--env-file", ".env.example", "-f", "docker-compose.yml", "config"], True),
    (["/usr/bin/docker-compose", "config", "--services"], True),
    (["docker-compose", "-f", "config", "up", "-d"], False),  # a file named config: still `up`
    (["docker-compose", "up", "-d"], False),
    (["docker-compose", "run", "--rm", "ingest", "config"], False),
    (["docker", "compose", "config"], False),
    (["docker", "ps"], False),
    (["git", "status"], True),
])
def test_only_docker_compose_config_may_run(argv: list[str], ok: bool) -> None:
    assert allowed(argv) is ok


def test_the_guard_is_installed() -> None:
    with pytest.raises(AssertionError, match="must not need a Docker engine"):
        subprocess.run(["docker-compose", "up", "-d"], check=False)
