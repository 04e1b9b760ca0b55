"""config/reload.py and what each service refuses to change while it runs."""

from __future__ import annotations

import shutil
from pathlib import Path

from prometheus_client import REGISTRY

from config import Config, example_dir, load_config
from config.reload import reload_config
from ingest.service import _fixed as ingest_fixed
from rules.reload import unreloadable


def _with_kafka_partitions(config: Config, n: int) -> Config:
    kafka = config.settings.kafka.model_copy(update={"partitions": {**config.settings.kafka.partitions,
                                                                    "hazwatch.readings": n,
                                                                    "hazwatch.maintenance": n}})
    return config.model_copy(update={"settings": config.settings.model_copy(update={"kafka": kafka})})


def test_a_change_of_the_kafka_settings_needs_a_restart() -> None:
    config = load_config(example_dir())
    other = _with_kafka_partitions(config, 24)
    assert unreloadable(config, config) is None and ingest_fixed(config, config) is None
    assert "restart" in (unreloadable(config, other) or "")
    assert "restart" in (ingest_fixed(config, other) or "")


def _refused() -> float:
    return REGISTRY.get_sample_value("hazwatch_config_reloads_total", {"result": "refused"}) or 0.0


def test_an_invalid_directory_is_refused_and_a_valid_one_returned(tmp_path: Path) -> None:
    directory = tmp_path / "config"
    shutil.copytree(example_dir(), directory)
    config = load_config(directory)
    assert reload_config(directory, config, service="test", fixed=lambda _a, _b: None) == config
    before = _refused()
    (directory / "sites.yaml").write_text("sites: [", encoding="utf-8")
    assert reload_config(directory, config, service="test", fixed=lambda _a, _b: None) is None
    assert reload_config(None, config, service="test", fixed=lambda _a, _b: None) is None
    assert _refused() == before + 2
