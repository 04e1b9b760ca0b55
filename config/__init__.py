"""hazwatch configuration: typed models (:mod:`config.models`) and the loader (:mod:`config.loader`).

Imported by every other package; imports none of them.
"""

from __future__ import annotations

from config.loader import ConfigError, ConfigIssue, example_dir, load_config
from config.models import LEVELS, Config, Sensor, Site, ThresholdRule, level_rank
from config.notify import Recipient, Subscriber, Zone

__all__ = [
    "LEVELS",
    "Config",
    "ConfigError",
    "ConfigIssue",
    "Recipient",
    "Sensor",
    "Site",
    "Subscriber",
    "ThresholdRule",
    "Zone",
    "example_dir",
    "level_rank",
    "load_config",
]
