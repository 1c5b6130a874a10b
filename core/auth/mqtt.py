"""MQTT credentials and access control of a cluster's broker (mosquitto).

Each unit connects with its own user (its name) and a random password kept in
its ``$DOT_PIOREACTOR/storage/mqtt_credentials.ini`` (mode 0600; read after
``unit_config.ini``, so every job, the task worker and the API use it, and never
shown by the config routes). The broker gets a password file (PBKDF2-SHA512
hashes in mosquitto's ``$7$`` format, written here, so ``mosquitto_passwd`` is not
needed) and an ACL file:

* the leader (ingestion, fan-outs, profiles): read and write every topic;
* a worker: read and write ``pioreactor/<worker>/#``; read ``pioreactor/$broadcast/#``
  and the leader's ``pioreactor/<leader>/#``; nothing else;
* ``ui_read`` (the web UI of a ``read`` token): read ``pioreactor/#``;
* ``ui_control`` (the web UI of a ``control`` or ``admin`` token): that, and write
  the settings' ``pioreactor/+/+/+/+/set`` topics.

The web UI's credentials (``storage/mqtt_ui_credentials.json`` on the leader) are
handed to a logged-in browser in the ``[mqtt]`` section of the merged config it
reads (``GET /api/config/units/{unit}``), chosen by its token's scope.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
from pathlib import Path

from reactorkit.core.paths import atomic_write

CREDENTIALS_FILE = Path("storage") / "mqtt_credentials.ini"
UI_CREDENTIALS_FILE = Path("storage") / "mqtt_ui_credentials.json"
UI_USERS = {"read": "ui_read", "control": "ui_control", "admin": "ui_control"}
PBKDF2_ITERATIONS = 101  # mosquitto_passwd's default for $7$ (PBKDF2-SHA512)


def hash_password(password: str, *, salt: bytes | None = None, iterations: int = PBKDF2_ITERATIONS) -> str:
    """A mosquitto password-file hash: ``$7$<iterations>$<base64 salt>$<base64 PBKDF2-SHA512>``
    (mosquitto 2.0, ``mosquitto_passwd``'s format; 12-byte salt, 64-byte key)."""
    salt = salt if salt is not None else secrets.token_bytes(12)
    key = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, dklen=64)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(key).decode()}"


def _write_private(path: Path, text: str) -> None:
    atomic_write(path, text)
    os.chmod(path, 0o600)


def read_unit_credentials(root: Path) -> tuple[str, str] | None:
    """``(username, password)`` of a unit's ``storage/mqtt_credentials.ini``, or None."""
    import configparser

    parser = configparser.ConfigParser(interpolation=None)
    if not parser.read(root / CREDENTIALS_FILE):
        return None
    return parser.get("mqtt", "username", fallback=""), parser.get("mqtt", "password", fallback="")


def ui_credentials(root: Path | None = None) -> dict[str, dict[str, str]]:
    """``{"read": {username, password}, "control": {…}}`` of the leader, or ``{}`` when the broker has none."""
    from reactorkit.core.paths import dot_pioreactor

    try:
        return json.loads(((root or dot_pioreactor()) / UI_CREDENTIALS_FILE).read_text())
    except (OSError, ValueError):
        return {}


def acl_text(leader: str, workers: list[str]) -> str:
    """The broker's ACL file (see the module docstring)."""
    lines = ["# mosquitto ACL written by reactorkit: each unit publishes only under its own topics", "",
             f"user {leader}", "topic readwrite #", ""]
    for worker in workers:
        lines += [f"user {worker}", f"topic readwrite pioreactor/{worker}/#", "topic read pioreactor/$broadcast/#",
                  f"topic read pioreactor/{leader}/#", ""]
    lines += ["user ui_read", "topic read pioreactor/#", "",
              "user ui_control", "topic read pioreactor/#", "topic write pioreactor/+/+/+/+/set", ""]
    return "\n".join(lines)


def provision_broker(broker_dir: Path, leader: tuple[str, Path], workers: list[tuple[str, Path]]) -> tuple[Path, Path]:
    """Create a user per unit (and the UI's two), write each unit's credentials file, the leader's UI credentials,
    and the broker's ``passwords`` and ``acl`` files under ``broker_dir``; returns their paths.

    Passwords already in a unit's credentials file are kept (a cluster started again keeps its users).

    Args:
        leader, workers: ``(unit name, $DOT_PIOREACTOR)``.
    """
    users: dict[str, str] = {}
    for name, root in [leader, *workers]:
        found = read_unit_credentials(root)
        password = found[1] if found and found[0] == name and found[1] else secrets.token_urlsafe(24)
        _write_private(root / CREDENTIALS_FILE, f"[mqtt]\nusername = {name}\npassword = {password}\n")
        users[name] = password
    ui = ui_credentials(leader[1])
    for scope, user in (("read", "ui_read"), ("control", "ui_control")):
        entry = ui.get(scope) or {"username": user, "password": secrets.token_urlsafe(24)}
        ui[scope] = entry
        users[entry["username"]] = entry["password"]
    _write_private(leader[1] / UI_CREDENTIALS_FILE, json.dumps(ui, indent=1))
    broker_dir.mkdir(parents=True, exist_ok=True)
    passwords = broker_dir / "passwords"
    _write_private(passwords, "".join(f"{user}:{hash_password(pw)}\n" for user, pw in users.items()))
    acl = broker_dir / "acl"
    _write_private(acl, acl_text(leader[0], [w for w, _ in workers]))
    return passwords, acl


def for_browser(config: dict[str, dict[str, str]], scope: str | None, root: Path | None = None) -> dict:
    """A merged config (``{section: {key: value}}``) as an API caller sees it: a unit's own broker password is
    never shown; where the broker has users, ``[mqtt] username/password`` are the web UI's for ``scope``
    (``read``: read-only; ``control``/``admin``: also the ``/set`` topics)."""
    ui = ui_credentials(root)
    if not ui:  # a broker without users (or one whose credentials the owner set in config.ini)
        return config
    chosen = ui.get("read" if scope in (None, "read") else "control") or {}
    mqtt = {**(config.get("mqtt") or {}), "username": chosen.get("username", ""),
            "password": chosen.get("password", "")}
    return {**config, "mqtt": mqtt}


def _mqtt_credential_lines(text: str) -> tuple[list[str], int | None, list[str]]:
    """``(lines without [mqtt] username/password, index after the [mqtt] header or None, the removed lines)``."""
    out: list[str] = []
    removed: list[str] = []
    section, header_at = None, None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("[") and stripped.endswith("]"):
            section = stripped[1:-1].strip()
            out.append(line)
            if section == "mqtt" and header_at is None:
                header_at = len(out)
            continue
        key = stripped.split("=", 1)[0].split(":", 1)[0].strip()
        if section == "mqtt" and key in ("username", "password"):
            removed.append(line)
            continue
        out.append(line)
    return out, header_at, removed


def with_ini_credentials(text: str, lines: list[str]) -> str:
    """``config.ini`` text whose ``[mqtt]`` ``username``/``password`` lines are ``lines`` (section added if absent)."""
    out, header_at, _ = _mqtt_credential_lines(text)
    if header_at is None:
        out += ["", "[mqtt]"]
        header_at = len(out)
    out[header_at:header_at] = lines
    return "\n".join(out) + "\n"


def shared_config_for(text: str, scope: str | None, root: Path | None = None) -> str:
    """The leader's ``config.ini`` as the web UI reads it (``GET /api/config/shared``): ``[mqtt] username`` and
    ``password`` are the UI's broker user for ``scope`` when the broker has users (the UI connects with them)."""
    ui = ui_credentials(root)
    if not ui:
        return text
    chosen = ui.get("read" if scope in (None, "read") else "control") or {}
    return with_ini_credentials(text, [f"username = {chosen.get('username', '')}",
                                       f"password = {chosen.get('password', '')}"])


def shared_config_to_save(new_text: str, current_text: str, root: Path | None = None) -> str:
    """Text to save as ``config.ini`` from the API: when the broker has users, the ``[mqtt]`` credentials the
    UI was shown are not written back; the file keeps its own."""
    if not ui_credentials(root):
        return new_text
    _, _, kept = _mqtt_credential_lines(current_text)
    return with_ini_credentials(new_text, kept)
