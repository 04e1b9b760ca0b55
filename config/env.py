"""One setting's value from the environment: ``VARIABLE``, or the file ``VARIABLE_FILE`` names.

The Docker secrets convention: ``<VARIABLE>_FILE`` is the path of a file whose content, stripped
of surrounding white space, is the value. A file that is missing, unreadable or empty, or a
variable set both ways, is an :class:`EnvValueError` naming the variable, the file and why. The
configuration loader (``config.loader``) turns it into a configuration error; it is the one
reader of every setting's variable, ``config.loader.ENV_OVERRIDES`` and the channels'
(``config.channels.channel_env``) alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

__all__ = ["EnvValueError", "env_value"]


class EnvValueError(Exception):
    def __init__(self, variable: str, file: str, reason: str, *, both_set: bool = False) -> None:
        super().__init__(variable, file, reason)
        self.variable = variable
        """The variable at fault: ``<VARIABLE>_FILE``."""
        self.file = file
        """The file it names, absolute."""
        self.reason = reason
        self.both_set = both_set
        """``VARIABLE`` and ``VARIABLE_FILE`` are both set."""

    def __str__(self) -> str:
        return f"{self.file}: {self.variable}: {self.reason}"


def env_value(env: Mapping[str, str], var: str) -> str | None:
    """``var``'s value, or the content of the file that ``<var>_FILE`` names; None: not set (an
    empty variable is not set). Raises :class:`EnvValueError`."""
    path = env.get(f"{var}_FILE")
    if not path:
        return env.get(var) or None
    where = str(Path(path).absolute())
    if env.get(var):
        raise EnvValueError(f"{var}_FILE", where, f"{var} is set too: set one of them", both_set=True)
    try:
        value = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise EnvValueError(f"{var}_FILE", where, f"cannot read the file: {reason}") from exc
    if not value:
        raise EnvValueError(f"{var}_FILE", where, "the file is empty")
    return value
