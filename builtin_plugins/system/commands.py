"""System tasks the unit's rq worker runs: reboot, shutdown, repair, update, web-server restart.

Each runs a configured command (``[system] <kind>_command``). System commands
are enabled by default only on a Raspberry Pi; elsewhere (the simulated
hardware) they are disabled and the task fails saying so, unless
``[system] commands_enabled = 1``. Defaults on a Pi:

=====================  ===============================================
reboot                 ``sudo reboot``
shutdown               ``sudo shutdown -h now``
repair                 ``sudo chown -R {user}: {dot_pioreactor}``
update                 ``{python} -m pip install --upgrade {spec}``
web_server_restart     (none: the ``pio serve`` master is sent SIGHUP)
usb_mount              ``udisksctl mount --no-user-interaction --block-device {device}``
usb_unmount            ``udisksctl unmount --no-user-interaction --block-device {device}``
usb_power_off          ``udisksctl power-off --no-user-interaction --block-device {disk}``
=====================  ===============================================

Templates may use ``{python}``, ``{dot_pioreactor}``, ``{user}`` and, for
updates, ``{spec}`` (what pip installs); the USB ones ``{device}`` (``/dev/sda1``),
``{disk}`` (``/dev/sda``) and, for unmounting, ``{mount_point}``. The web server is restarted by
sending SIGHUP to the gunicorn master of ``pio serve`` (its pid file is
``$DOT_PIOREACTOR/storage/gunicorn.pid``): gunicorn starts fresh workers, which
load the plugins anew.
"""

from __future__ import annotations

import getpass
import shlex
import subprocess
import sys
from typing import Any

from reactorkit.plugin import fail_task as fail
from reactorkit.plugin import gunicorn_pid, reload_web_server

DEFAULT_COMMANDS = {
    "reboot": "sudo reboot",
    "shutdown": "sudo shutdown -h now",
    "repair": "sudo chown -R {user}: {dot_pioreactor}",
    "update": "{python} -m pip install --upgrade {spec}",
    "web_server_restart": "",
    "usb_mount": "udisksctl mount --no-user-interaction --block-device {device}",
    "usb_unmount": "udisksctl unmount --no-user-interaction --block-device {device}",
    "usb_power_off": "udisksctl power-off --no-user-interaction --block-device {disk}",
}
COMMAND_TIMEOUT_S = 1800


def commands_enabled(config: Any = None) -> bool:
    """``[system] commands_enabled`` (default: true on a Raspberry Pi, false elsewhere)."""
    from reactorkit.plugin import get_config
    from reactorkit.plugin import backend_name

    config = config or get_config()
    raw = config.get("system", "commands_enabled", fallback="")
    if raw.strip() == "":
        return backend_name() == "pi"
    return raw.strip().lower() in ("1", "true", "yes", "on")


def _disabled(kind: str) -> Exception:
    from reactorkit.plugin import backend_name

    return fail(f"{kind.replace('_', ' ').capitalize()} is disabled on this unit.",
                cause=f"System commands are disabled: this unit uses the {backend_name()} hardware backend, not a "
                      "Raspberry Pi.",
                remediation="To allow it, set [system] commands_enabled = 1 (and the command, e.g. "
                            f"[system] {kind}_command) in config.ini.")


def command_for(kind: str, **values: str) -> list[str]:
    """The configured command of ``kind`` with its placeholders filled."""
    from reactorkit.plugin import get_config
    from reactorkit.plugin import dot_pioreactor

    template = get_config().get("system", f"{kind}_command", fallback=DEFAULT_COMMANDS.get(kind, ""))
    fills = {"python": sys.executable, "dot_pioreactor": str(dot_pioreactor()), "user": getpass.getuser(), **values}
    return [part.format(**fills) for part in shlex.split(template)]


def run_command(kind: str, **values: str) -> dict[str, Any]:
    """Run the ``kind`` command; returns ``{kind, command, returncode, output}``.

    Raises:
        TaskFailed: commands disabled, no command configured, or it failed (cause: its last output line).
    """
    if not commands_enabled():
        raise _disabled(kind)
    command = command_for(kind, **values)
    if not command:
        raise fail(f"No {kind} command is configured.", remediation=f"Set [system] {kind}_command in config.ini.")
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise fail(f"{kind} could not run.", cause=f"{type(exc).__name__}: {exc}",
                   remediation=f"Check [system] {kind}_command.") from None
    output = (done.stdout + done.stderr).strip().splitlines()
    if done.returncode != 0:
        raise fail(f"{kind} failed with exit code {done.returncode}.", cause=output[-1] if output else "no output",
                   remediation=f"Run `{shlex.join(command)}` on the unit to see the full output.")
    return {"kind": kind, "command": command, "returncode": 0, "output": output[-20:]}


def reboot() -> dict[str, Any]:
    return run_command("reboot")


def shutdown() -> dict[str, Any]:
    return run_command("shutdown")


def repair() -> dict[str, Any]:
    return run_command("repair")


def update_app(source: str | None = None, version: str | None = None) -> dict[str, Any]:
    """Update reactorkit: from ``source`` (an archive path inside ``$DOT_PIOREACTOR`` or a URL), a ``version``,
    or the newest release."""
    if source:
        spec = source
    elif version:
        spec = f"reactorkit=={version}"
    else:
        spec = "reactorkit"
    return run_command("update", spec=spec)


def restart_web_server() -> dict[str, Any]:
    """Run ``[system] web_server_restart_command`` when commands are enabled and one is set, else HUP ``pio serve``."""
    from reactorkit.plugin import get_config

    if commands_enabled() and get_config().get("system", "web_server_restart_command", fallback="").strip():
        return run_command("web_server_restart")
    if reload_web_server():
        return {"kind": "web_server_restart", "method": "SIGHUP", "pid": gunicorn_pid()}
    raise fail("The web server is not running under pio serve.",
               cause="No live gunicorn master in $DOT_PIOREACTOR/storage/gunicorn.pid.",
               remediation="Start it with `pio serve`, or set [system] web_server_restart_command.")


def remove_file(filepath: str) -> dict[str, Any]:
    """Delete one file under ``$DOT_PIOREACTOR`` (checked again here).

    Raises:
        TaskFailed: the path is unsafe, missing or not a file.
    """
    from reactorkit.plugin import UnsafePath

    from .files import inside_dot_pioreactor

    try:
        path = inside_dot_pioreactor(filepath)
    except UnsafePath as exc:
        raise fail("Unsafe path.", cause=str(exc), remediation="Give a path inside $DOT_PIOREACTOR.") from None
    if not path.is_file():
        raise fail(f"{filepath} is not a file.", remediation="List the folder with GET /unit_api/system/path/.")
    path.unlink()
    return {"removed": filepath}
