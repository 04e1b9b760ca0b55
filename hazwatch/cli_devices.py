"""``hazwatch devices``: MQTT accounts of the sites' devices, in Mosquitto's password file.

A device or data-logger gateway logs in with its site id as user name; ``deploy/mosquitto/acl``
(a ``pattern`` on ``%u``) then lets it publish under ``hw/v1/{its site}/`` only, so adding a site
needs no ACL line, only its account. The password is random, hashed into the file by
``mosquitto_passwd`` and printed once: give it to the site's installer.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
from pathlib import Path
from typing import Annotated

import typer

from config.models_base import RESERVED_SITE_IDS
from hazwatch.cli_common import ConfigDir, ExitCode, load_config_or_exit

__all__ = ["devices_app"]

devices_app = typer.Typer(add_completion=False, no_args_is_help=True)
PasswordFile = Annotated[Path, typer.Option("--password-file", "-p", help="Mosquitto's password file.")]


@devices_app.command("add")
def add(site: Annotated[str, typer.Argument(help="The site id: the device's user name.")],
        password_file: PasswordFile = Path("deploy/mosquitto/passwd"), config: ConfigDir = None) -> None:
    """Create (or renew) the MQTT account of SITE's devices and print its new password once."""
    cfg = load_config_or_exit(config)
    if site in RESERVED_SITE_IDS or site not in {s.id for s in cfg.sites}:
        typer.echo(f"{site!r} is not a site of the configuration"
                   f"{' (a name reserved for hazwatch)' if site in RESERVED_SITE_IDS else ''}", err=True)
        raise typer.Exit(ExitCode.USAGE)
    if shutil.which("mosquitto_passwd") is None:
        typer.echo("mosquitto_passwd not found: install the mosquitto package", err=True)
        raise typer.Exit(ExitCode.FAILURE)
    password = secrets.token_urlsafe(18)
    create = [] if password_file.exists() else ["-c"]
    done = subprocess.run(["mosquitto_passwd", *create, "-b", str(password_file), site, password],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        typer.echo(f"{password_file}: mosquitto_passwd failed: {done.stderr.strip() or done.stdout.strip()}",
                   err=True)
        raise typer.Exit(ExitCode.FAILURE)
    password_file.chmod(0o600)
    typer.echo(f"user {site}\npassword {password}")
    typer.echo("Mosquitto reads the file again on SIGHUP (docker compose kill -s HUP mosquitto).", err=True)


@devices_app.command("list")
def list_devices(password_file: PasswordFile = Path("deploy/mosquitto/passwd"), config: ConfigDir = None) -> None:
    """The sites and whether each has an account; accounts that name no site are flagged."""
    cfg = load_config_or_exit(config)
    users = {line.split(":", 1)[0] for line in password_file.read_text().splitlines() if ":" in line} \
        if password_file.exists() else set()
    sites = [s.id for s in cfg.sites]
    for site in sites:
        typer.echo(f"{site}\t{'account' if site in users else 'NO ACCOUNT'}")
    for user in sorted(users - set(sites) - RESERVED_SITE_IDS):
        typer.echo(f"{user}\tnot a configured site")
