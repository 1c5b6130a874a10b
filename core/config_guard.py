"""Settings the API may not change: the unit's shell commands and the API's own security.

``[system] commands_enabled`` and every ``[system] *_command`` (reboot, shutdown,
repair, update, web-server restart, USB) are shell commands the unit runs; ``[api]``
``auth``, ``cors_origins`` and ``tls_*`` are the API's security. They are set only in the files the unit's owner
edits on the unit (``config.ini``, ``unit_config.ini``); a config saved through the
API (the leader's ``/api/config…`` routes, a worker's ``/unit_api/config…``) must
leave them as they are — adding, changing or removing one is refused.
"""

from __future__ import annotations

import configparser
import fnmatch

#: ``(section, key pattern)`` the API cannot change.
PROTECTED = (("system", "commands_enabled"), ("system", "*_command"), ("api", "auth"), ("api", "cors_origins"),
             ("api", "tls_*"))


class ProtectedSetting(PermissionError):
    """A config saved through the API changes a protected setting; ``keys`` names them (``[system] x``)."""

    def __init__(self, keys: list[str]) -> None:
        super().__init__(f"{', '.join(keys)} can only be changed in the unit's files, not through the API")
        self.keys = keys


def _protected(text: str) -> dict[tuple[str, str], str | None]:
    parser = configparser.ConfigParser(strict=False, allow_no_value=True, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        parser.read_string(text or "")
    except configparser.Error:
        return {}  # the caller's validation reports unreadable text
    out: dict[tuple[str, str], str | None] = {}
    for section in parser.sections():
        for key, value in parser.items(section, raw=True):
            if any(section == s and fnmatch.fnmatchcase(key, k) for s, k in PROTECTED):
                out[(section, key)] = value.strip() if isinstance(value, str) else value
    return out


def protected_changes(old_text: str, new_text: str) -> list[str]:
    """The protected settings (``[section] key``) whose value differs between two INI texts, sorted."""
    old, new = _protected(old_text), _protected(new_text)
    return sorted(f"[{s}] {k}" for (s, k) in set(old) | set(new) if old.get((s, k)) != new.get((s, k)))


def check_unchanged(old_text: str, new_text: str) -> None:
    """Raises: ProtectedSetting when ``new_text`` adds, changes or removes a protected setting of ``old_text``."""
    changed = protected_changes(old_text, new_text)
    if changed:
        raise ProtectedSetting(changed)
