"""The exit codes of every ``hazwatch`` command, defined once (README "Exit codes").

They follow click, which typer runs on: click exits 2 for a usage error (an unknown option, a bad
or missing value) and 1 when a command aborts.

====  =====================================================================================
code  meaning
====  =====================================================================================
0     done (``check-config``: the configuration is valid; warnings do not count unless ``--strict``)
1     a failure while running: a broker, database or file that is unreachable or missing, a
      refused action (an unknown episode, a user who exists), a service that failed
2     the command cannot work as given: a usage error, an invalid configuration (every issue
      printed), no ``--config`` where one is required, ``check-config --strict`` with warnings
====  =====================================================================================
"""

from __future__ import annotations

from enum import IntEnum

__all__ = ["ExitCode"]


class ExitCode(IntEnum):
    OK = 0
    FAILURE = 1
    USAGE = 2
    """Usage or configuration error (click's own code for usage errors)."""
