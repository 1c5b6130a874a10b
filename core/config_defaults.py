"""Merge the default ``config.ini`` sections plugins ship into the unit's ``config.ini``.

Only what is missing is added: a new section is appended (with its comment), a missing
key of an existing section is written right after that section's header. A value the
user has set is never changed, and the file's comments and order are kept. The file is
replaced atomically (temporary file + rename).
"""

from __future__ import annotations

import configparser
import re
from pathlib import Path
from typing import Any, Iterable


def merge_config_sections(path: Path, sections: Iterable[Any]) -> list[str]:
    """Add the missing sections and keys of ``sections`` (``ConfigSection`` records) to the INI file ``path``.

    Returns:
        ``"section.key"`` of every value added (empty when nothing was missing).

    Raises:
        configparser.Error: ``path`` is not a valid INI file (it is left as it is).
    """
    from reactorkit.core.paths import atomic_write

    text = path.read_text(encoding="utf-8") if path.exists() else ""
    present = configparser.ConfigParser(interpolation=None, strict=False)
    present.optionxform = str  # type: ignore[assignment,method-assign]
    present.read_string(text)
    added: list[str] = []
    appended: list[str] = []
    for record in sections:
        values = {str(k): "" if v is None else str(v) for k, v in record.values.items()}
        if not present.has_section(record.section):
            present.add_section(record.section)
            lines = [f"[{record.section}]"] + ([f"# {record.comment}"] if record.comment else [])
            lines += [f"{key} = {value}" for key, value in values.items()]
            appended.append("\n".join(lines) + "\n")
            for key, value in values.items():
                present.set(record.section, key, value)
                added.append(f"{record.section}.{key}")
            continue
        missing = {k: v for k, v in values.items() if not present.has_option(record.section, k)}
        if not missing:
            continue
        header = re.compile(rf"^\[{re.escape(record.section)}\][ \t]*$", re.M).search(text)
        insert = "".join(f"{key} = {value}\n" for key, value in missing.items())
        if header is None:  # (only a DEFAULT-like oddity can get here) append as a new block
            appended.append(f"[{record.section}]\n{insert}")
        else:
            end = text.find("\n", header.end())
            end = len(text) if end < 0 else end + 1
            text = text[:end] + insert + text[end:]
        for key, value in missing.items():
            present.set(record.section, key, value)
            added.append(f"{record.section}.{key}")
    if not added:
        return []
    if appended:
        text = text.rstrip("\n") + ("\n\n" if text.strip() else "") + "\n".join(appended)
    atomic_write(path, text)
    return added


def merge_installed_config_sections(path: Path | None = None) -> list[str]:
    """:func:`merge_config_sections` of every installed plugin into this unit's shared ``config.ini``."""
    from reactorkit.core.config import set_config, shared_config_path
    from reactorkit.core.plugins import Registry

    added = merge_config_sections(path or shared_config_path(), Registry.installed().config_sections)
    if added:
        set_config(None)  # the next get_config() reads the merged file
    return added
