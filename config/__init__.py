"""hazwatch configuration: typed models (:mod:`config.models`) and the loader (:mod:`config.loader`).

Imported by every other package; imports none of them.
"""

from __future__ import annotations

from config.loader import ConfigError, ConfigIssue, example_dir, load_config
from config.models import LEVELS, Config, Recipient, Sensor, Site, ThresholdRule, Zone, level_rank

__all__ = [
    "LEVELS",
    "Config",
    "ConfigError",
    "ConfigIssue",
    "Recipient",
    "Sensor",
    "Site",
    "ThresholdRule",
    "Zone",
    "example_dir",
    "level_rank",
    "load_config",
]
