"""The deploy tests hold on a machine without a Docker engine.

An autouse fixture fails any test here that runs `docker` or `docker-compose`, except
`docker-compose ... config`: it only parses and resolves the compose files, contacts no engine
(tests/deploy/test_compose_config.py runs it with DOCKER_HOST pointing at nothing).
"""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.compose import Services, layout

#: docker-compose's global options that take a value (the subcommand comes after them).
_COMPOSE_OPTIONS_WITH_VALUE = {"-f", "--file", "--env-file", "-p", "--project-name",
                               "--project-directory", "--profile", "-H", "--host", "--context", "-c"}


def compose_subcommand(argv: list[str]) -> str | None:
    """The subcommand of a docker-compose command line (``config``), or None."""
    args = iter(argv[1:])
    for arg in args:
        if arg in _COMPOSE_OPTIONS_WITH_VALUE:
            next(args, None)
        elif not arg.startswith("-"):
            return arg
    return None


def allowed(argv: list[str]) -> bool:
    """Whether the deploy tests may run this command line: anything but Docker, and of Docker
    only `docker-compose ... config`."""
    name = Path(str(argv[0])).name
    if name == "docker-compose":
        return compose_subcommand(argv) == "config"
    return name != "docker"


@pytest.fixture(autouse=True)
def _no_docker(monkeypatch: pytest.MonkeyPatch) -> None:
    """Never start docker, nor docker-compose but for `docker-compose ... config`."""
    real_popen = subprocess.Popen

    class Popen(real_popen):  # type: ignore[misc, valid-type]
        def __init__(self, args: Any, *a: Any, **kw: Any) -> None:
            argv = shlex.split(args) if isinstance(args, str) else [str(x) for x in args]
            assert allowed(argv), (
                f"the deploy tests must not need a Docker engine: {argv[:3]} (only `docker-compose config`)")
            super().__init__(args, *a, **kw)

    monkeypatch.setattr(subprocess, "Popen", Popen)


@pytest.fixture(scope="session")
def compose() -> dict[str, Any]:
    """docker-compose.yml: the three-node production layout."""
    return layout("three-nodes")


@pytest.fixture(scope="session")
def services(compose: dict[str, Any]) -> Services:
    return compose["services"]


@pytest.fixture(scope="session")
def single() -> Services:
    """The services of docker-compose.yml with docker-compose.single.yml over it."""
    return layout("single")["services"]
