"""``hazwatch`` and ``python -m hazwatch``: a command of :mod:`hazwatch.cli_services` (a service,
the demo) runs without importing the rest of the command line; any other loads it all."""

from __future__ import annotations

import sys


def main() -> None:
    from hazwatch.cli_services import app

    core = {c.name or c.callback.__name__.replace("_", "-") for c in app.registered_commands if c.callback}
    if len(sys.argv) < 2 or sys.argv[1] not in core:
        import hazwatch.cli  # noqa: F401 - mounts the other commands on the same app
    app()


if __name__ == "__main__":
    main()
