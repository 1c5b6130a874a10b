"""Validation of INI text before it is saved as ``config.ini`` or ``unit_config.ini``.

The shared file must name the leader (``[cluster.topology] leader_hostname``,
``leader_address``) and have an ``[mqtt]`` section; addresses are host names,
never URLs. Duplicate sections or keys are refused (the running parser is
lenient, so a duplicate would silently win). En and em dashes typed by some
editors become ``-``.
"""

from __future__ import annotations

import configparser

SHARED = "config.ini"
DASHES = {"\u2013": "-", "\u2014": "-"}


class InvalidConfig(ValueError):
    """The INI text cannot be saved; the message says where and why."""


def normalise(code: str) -> str:
    """En and em dashes become ``-`` (as typed by some editors)."""
    for dash, plain in DASHES.items():
        code = code.replace(dash, plain)
    return code


def parse_strict(code: str, name: str) -> configparser.ConfigParser:
    """Parse INI text, refusing duplicate sections/keys.

    Raises:
        InvalidConfig: with the parser's message (line numbers included).
    """
    parser = configparser.ConfigParser(strict=True, allow_no_value=True, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        parser.read_string(code, source=name)
    except configparser.Error as exc:
        raise InvalidConfig(f"{name}: {exc}".replace("\n", " ")) from None
    return parser


def validate_shared(code: str) -> configparser.ConfigParser:
    """Raises: InvalidConfig (syntax, missing ``[cluster.topology]``/``[mqtt]``, ``http`` addresses)."""
    parser = parse_strict(code, SHARED)
    for key in ("leader_hostname", "leader_address"):
        if not parser.has_option("cluster.topology", key) or not (parser.get("cluster.topology", key) or "").strip():
            raise InvalidConfig(f"{SHARED}: [cluster.topology] {key} is required")
    if not parser.has_section("mqtt"):
        raise InvalidConfig(f"{SHARED}: the [mqtt] section is required")
    for section, key in (("cluster.topology", "leader_address"), ("mqtt", "broker_address")):
        value = (parser.get(section, key, fallback="") or "").strip().lower()
        if value.startswith("http://") or value.startswith("https://"):
            raise InvalidConfig(f"{SHARED}: [{section}] {key} must be a host name or address, without http://")
    return parser


def validate_specific(code: str, unit: str, shared_text: str) -> None:
    """The unit file alone (strict) and merged after the shared file.

    Raises:
        InvalidConfig.
    """
    parse_strict(code, f"unit_config.ini of {unit}")
    merged = configparser.ConfigParser(strict=False, allow_no_value=True, interpolation=None)
    merged.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        merged.read_string(shared_text, source=SHARED)
        merged.read_string(code, source=f"unit_config.ini of {unit}")
    except configparser.Error as exc:
        raise InvalidConfig(str(exc).replace("\n", " ")) from None
