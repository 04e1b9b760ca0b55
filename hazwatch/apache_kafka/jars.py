"""The Apache Kafka broker's jars: resolved from Maven Central with Maven, once, into a cache folder.

The version is pinned in ``pom.xml`` beside this file. The cache folder is ``HAZWATCH_KAFKA_CACHE``
or ``.cache/kafka`` at the top of the source tree (``make kafka`` fills it; CI keeps it between
steps). A complete download holds a ``COMPLETE`` marker: Maven copies into a temporary folder that
is renamed only when it has finished, so an interrupted fetch never looks like a usable one.

Errors::

    JarsMissingError   the jars are not cached and Maven is missing or failed (its output attached)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

__all__ = ["KAFKA_VERSION", "POM", "JarsMissingError", "cache_root", "ensure_jars", "jars_dir"]

POM = Path(__file__).with_name("pom.xml")
_NS = {"m": "http://maven.apache.org/POM/4.0.0"}
KAFKA_VERSION: str = ET.parse(POM).getroot().findtext("m:properties/m:kafka.version", namespaces=_NS) or ""
_MARKER = "COMPLETE"


class JarsMissingError(RuntimeError):
    pass


def cache_root() -> Path:
    env = os.environ.get("HAZWATCH_KAFKA_CACHE")
    return Path(env) if env else Path(__file__).resolve().parents[2] / ".cache" / "kafka"


def jars_dir() -> Path:
    """Where the jars of the pinned version live (complete or not)."""
    return cache_root() / f"kafka-{KAFKA_VERSION}" / "libs"


def ensure_jars(*, quiet: bool = True) -> Path:
    """The folder of the broker's jars, fetched with Maven first if they are not cached yet."""
    libs = jars_dir()
    if (libs / _MARKER).exists():
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise JarsMissingError(
            f"Apache Kafka {KAFKA_VERSION} jars are not in {libs} and Maven (mvn) is not installed: "
            "install Java 17 and Maven (Debian: openjdk-17-jre-headless maven), then run `make kafka`")
    libs.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="libs-", dir=libs.parent))
    argv = [mvn, "-B", *(["-q"] if quiet else []), "-f", str(POM), "dependency:copy-dependencies",
            f"-DoutputDirectory={tmp}", "-DincludeScope=runtime"]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0 or not any(tmp.glob(f"kafka_2.13-{KAFKA_VERSION}.jar")):
        shutil.rmtree(tmp, ignore_errors=True)
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-20:])
        raise JarsMissingError(f"Maven could not fetch Apache Kafka {KAFKA_VERSION} (exit {done.returncode}):\n{tail}")
    (tmp / _MARKER).write_text(KAFKA_VERSION + "\n")
    shutil.rmtree(libs, ignore_errors=True)
    tmp.rename(libs)
    return libs
