"""Calibrations and estimators on disk, and which one is active per device.

Layout (domain facts §6.1), everything under ``$DOT_PIOREACTOR``:

- ``storage/calibrations/<device>/<calibration_name>.yaml``
- ``storage/estimators/<device>/<estimator_name>.yaml``
- active pointers ``device → name`` in the persistent cache (SQLite file
  ``[storage] persistent_cache``), caches ``active_calibrations`` and
  ``active_estimators``.

Files are written atomically (:func:`reactorkit.core.paths.atomic_write`). A
record is validated before it is written, so a bad record never replaces a good
file. Activating requires the file; deleting a file clears its pointer.

Device conventions (§6.1): OD devices ``od``, ``od45``, ``od90``, ``od135``:
x = OD600, y = voltage (records carry ``ir_led_intensity``, ``angle``,
``pd_channel``); pumps ``media_pump``, ``alt_media_pump``, ``waste_pump``:
x = duration (s), y = volume (mL), zero-intercept line ``[slope, 0]``;
``stirring``: x = duty cycle (%), y = RPM.

This module imports yaml and sqlite3 but never scipy; curve maths is numpy
only (:mod:`reactorkit.core.curves`), so jobs can import it cheaply.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any, Iterator

from reactorkit.core import curves
from reactorkit.core.curves import OutOfCalibratedRange
from reactorkit.core.paths import UnsafePath, atomic_write, dot_pioreactor, safe_join
from reactorkit.core.records import Record
from reactorkit.core.sqlite import open_sqlite

__all__ = [
    "Calibration",
    "Estimator",
    "CalibrationNotFound",
    "InvalidCalibration",
    "OutOfCalibratedRange",
    "PersistentCache",
    "save_calibration",
    "save_calibration_yaml",
    "load_calibration",
    "list_calibrations",
    "list_devices",
    "set_active",
    "clear_active",
    "delete_calibration",
    "active_calibration",
    "active_calibrations",
    "active_curve_inverse",
    "calibration_path",
    "validate_calibration",
    "save_estimator",
    "save_estimator_yaml",
    "load_estimator",
    "list_estimators",
    "set_active_estimator",
    "clear_active_estimator",
    "delete_estimator",
    "active_estimator",
    "active_estimators",
    "estimator_path",
    "validate_estimator",
]

logger = logging.getLogger("reactorkit.calibrations")

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")
DEVICE = re.compile(r"[a-z][a-z0-9_]{0,63}")
OD_DEVICES = ("od", "od45", "od90", "od135")
PUMP_DEVICES = ("media_pump", "alt_media_pump", "waste_pump")
CALIBRATION_TYPES = {
    "od": OD_DEVICES,
    "od600": OD_DEVICES,
    "simple_peristaltic_pump": PUMP_DEVICES,
    "simple_stirring": ("stirring",),
}


class CalibrationNotFound(LookupError):
    """No such calibration/estimator file, or no such device."""


class InvalidCalibration(ValueError):
    """A record (or YAML text) that does not satisfy the calibration contract.

    Attributes:
        field: The offending field (e.g. ``"recorded_data"``), or ``None``.
    """

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


# ------------------------------------------------------------------ persistent cache


def _cache_path() -> Path:
    from reactorkit.core.config import get_config

    try:
        return get_config().path("storage", "persistent_cache")
    except Exception:  # no [storage] section in an odd config
        return dot_pioreactor() / "storage" / "local_persistent_pioreactor_metadata.sqlite"


class PersistentCache:
    """A named key → JSON value map in the unit's persistent SQLite cache.

    One table per cache name (``active_calibrations``, ``active_estimators``,
    ``calibration_sessions`` …) in ``[storage] persistent_cache``. Each write is
    one SQLite transaction, so readers see the old or the new value.

    Args:
        name: snake_case cache name.
        path: SQLite file; default ``[storage] persistent_cache`` under ``$DOT_PIOREACTOR``.
    """

    def __init__(self, name: str, path: Path | None = None) -> None:
        if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
            raise ValueError(f"cache name must be snake_case, got {name!r}")
        self.name = name
        self.path = path or _cache_path()

    def _connect(self) -> sqlite3.Connection:
        # synchronous left at SQLite's default (FULL), as it always was here: the writes are few (a calibration
        # made active, a step of a calibration session)
        conn = open_sqlite(self.path, synchronous=None)
        conn.execute(f'CREATE TABLE IF NOT EXISTS "{self.name}" (key TEXT PRIMARY KEY, value TEXT NOT NULL)')
        return conn

    def get(self, key: str, default: Any = None) -> Any:
        """The stored value for ``key`` (decoded from JSON), else ``default``."""
        with closing(self._connect()) as conn:
            row = conn.execute(f'SELECT value FROM "{self.name}" WHERE key = ?', (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    def set(self, key: str, value: Any) -> None:
        """Store ``value`` (JSON-serializable) under ``key``."""
        with closing(self._connect()) as conn:
            conn.execute(
                f'INSERT INTO "{self.name}" (key, value) VALUES (?, ?) '
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, json.dumps(value)),
            )

    def delete(self, key: str) -> bool:
        """Remove ``key``; True when it existed."""
        with closing(self._connect()) as conn:
            cur = conn.execute(f'DELETE FROM "{self.name}" WHERE key = ?', (key,))
            return cur.rowcount > 0

    def items(self) -> dict[str, Any]:
        """All entries as ``{key: value}``, sorted by key."""
        with closing(self._connect()) as conn:
            rows = conn.execute(f'SELECT key, value FROM "{self.name}" ORDER BY key').fetchall()
        return {k: json.loads(v) for k, v in rows}

    def __contains__(self, key: str) -> bool:
        return self.get(key, _MISSING) is not _MISSING


_MISSING = object()


# ------------------------------------------------------------------------- records


def _check_device(device: str) -> str:
    if not isinstance(device, str) or not DEVICE.fullmatch(device):
        raise InvalidCalibration(
            f"device must be snake_case (e.g. 'od90', 'media_pump'), got {device!r}", "device"
        )
    return device


def _check_name(name: Any, field: str) -> str:
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise InvalidCalibration(
            f"{field} must be 1-128 letters, digits, '.', '_' or '-' (not starting with '.'), got {name!r}",
            field,
        )
    return name


def _check_common(record: Any, name_field: str) -> None:
    if not isinstance(record, dict):
        raise InvalidCalibration("a calibration must be a YAML mapping", None)
    _check_name(record.get(name_field), name_field)
    for field in ("calibrated_on_pioreactor_unit",):
        if field in record and not isinstance(record[field], str):
            raise InvalidCalibration(f"{field} must be a string", field)
    if "created_at" in record and not isinstance(record["created_at"], str):
        # YAML turns unquoted timestamps into datetimes: accept and keep ISO text
        import datetime as _dt

        if isinstance(record["created_at"], (_dt.datetime, _dt.date)):
            record["created_at"] = record["created_at"].isoformat()
        else:
            raise InvalidCalibration("created_at must be an ISO-8601 timestamp string", "created_at")
    recorded = record.get("recorded_data")
    if recorded is None:
        return
    if not isinstance(recorded, dict):
        raise InvalidCalibration("recorded_data must be a mapping {x: [...], y: [...]}", "recorded_data")
    if name_field == "estimator_name" and "x" not in recorded and isinstance(recorded.get("by_angle"), dict):
        for angle, pairs in recorded["by_angle"].items():
            _check_xy(pairs, f"recorded_data.by_angle.{angle}")
        return
    _check_xy(recorded, "recorded_data")


def _check_xy(recorded: Any, where: str) -> None:
    if not isinstance(recorded, dict) or not isinstance(recorded.get("x"), list) or not isinstance(
        recorded.get("y"), list
    ):
        raise InvalidCalibration(f"{where} must be a mapping {{x: [...], y: [...]}}", "recorded_data")
    if len(recorded["x"]) != len(recorded["y"]):
        raise InvalidCalibration(
            f"{where}.x and {where}.y must have equal lengths ({len(recorded['x'])} ≠ {len(recorded['y'])})",
            "recorded_data",
        )
    for axis in ("x", "y"):
        for i, v in enumerate(recorded[axis]):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise InvalidCalibration(f"{where}.{axis}[{i}] must be a number, got {v!r}", "recorded_data")


def validate_calibration(record: Any, device: str | None = None) -> dict[str, Any]:
    """Check a calibration record against the contract (§6.1); returns it.

    Required: ``calibration_type`` (string), ``calibration_name`` (file-safe),
    ``curve_data_`` (valid poly/spline/akima), ``x`` and ``y`` labels (strings),
    ``recorded_data {x, y}`` with equal lengths. Known types must target a
    matching device (e.g. ``simple_peristaltic_pump`` → a pump).

    Raises:
        InvalidCalibration: naming the field.
    """
    _check_common(record, "calibration_name")
    ctype = record.get("calibration_type")
    if not isinstance(ctype, str) or not ctype:
        raise InvalidCalibration("calibration_type is required (e.g. 'od600')", "calibration_type")
    if device is not None and ctype in CALIBRATION_TYPES and device not in CALIBRATION_TYPES[ctype]:
        raise InvalidCalibration(
            f"calibration_type {ctype!r} is for devices {', '.join(CALIBRATION_TYPES[ctype])}, not {device!r}",
            "calibration_type",
        )
    for label in ("x", "y"):
        if not isinstance(record.get(label), str):
            raise InvalidCalibration(f"{label} must be a label string (e.g. 'OD600', 'Voltage')", label)
    if "recorded_data" not in record:
        raise InvalidCalibration("recorded_data {x: [...], y: [...]} is required", "recorded_data")
    try:
        curves.validate_curve(record.get("curve_data_"))
    except curves.InvalidCurve as exc:
        raise InvalidCalibration(str(exc), "curve_data_") from None
    return record


def validate_estimator(record: Any, device: str | None = None) -> dict[str, Any]:
    """Check an estimator record (§6.1): ``estimator_type``, ``estimator_name``.

    ``recorded_data`` is ``{x, y}`` or ``{by_angle: {angle: {x, y}}}``. For
    ``od_fused_estimator`` (device ``od_fused``) also ``angles`` (list), ``mu_splines`` (angle → akima curve),
    ``min_logc < max_logc``.

    Raises:
        InvalidCalibration: naming the field.
    """
    _check_common(record, "estimator_name")
    etype = record.get("estimator_type")
    if not isinstance(etype, str) or not etype:
        raise InvalidCalibration("estimator_type is required (e.g. 'od_fused_estimator')", "estimator_type")
    if etype in ("od_fused", "od_fused_estimator") or device == "od_fused":
        angles = record.get("angles")
        if not isinstance(angles, list) or not angles:
            raise InvalidCalibration("angles must be a non-empty list (e.g. ['45', '90', '135'])", "angles")
        for field in ("mu_splines", "sigma_splines_log"):
            splines = record.get(field)
            if not isinstance(splines, dict):
                raise InvalidCalibration(f"{field} must map each angle to a curve", field)
            for angle in angles:
                try:
                    curves.validate_curve(splines.get(str(angle)))
                except curves.InvalidCurve as exc:
                    raise InvalidCalibration(f"{field}[{angle}]: {exc}", field) from None
        for field in ("min_logc", "max_logc"):
            v = record.get(field)
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise InvalidCalibration(f"{field} must be a number (log10 OD)", field)
        if record["min_logc"] >= record["max_logc"]:
            raise InvalidCalibration("min_logc must be below max_logc", "min_logc")
    return record


def _parse_yaml(text: str) -> Any:
    import yaml

    if not isinstance(text, str) or not text.strip():
        raise InvalidCalibration("calibration_data must be non-empty YAML text", "calibration_data")
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidCalibration(f"calibration_data is not valid YAML: {exc}", "calibration_data") from None


def _dump_yaml(record: dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(record, sort_keys=False, default_flow_style=None, allow_unicode=True)


# --------------------------------------------------------------------- the two stores


class _Kind(Record, kw_only=False):
    """One of the two stores: its folder, its active-pointer cache, the field naming a record, its validator."""

    folder: str  # under storage/
    cache: str  # active pointer cache
    name_field: str
    validate: Any


_CAL = _Kind("calibrations", "active_calibrations", "calibration_name", validate_calibration)
_EST = _Kind("estimators", "active_estimators", "estimator_name", validate_estimator)


def _root(kind: _Kind) -> Path:
    return dot_pioreactor() / "storage" / kind.folder


def _path(kind: _Kind, device: str, name: str) -> Path:
    _check_device(device)
    _check_name(name, kind.name_field)
    root = _root(kind)
    root.mkdir(parents=True, exist_ok=True)
    try:
        return safe_join(root, device, f"{name}.yaml")
    except UnsafePath as exc:
        raise InvalidCalibration(str(exc), kind.name_field) from None


def _save_record(kind: _Kind, device: str, record: dict[str, Any], set_active: bool, text: str | None) -> Path:
    _check_device(device)
    kind.validate(record, device)
    path = _path(kind, device, record[kind.name_field])
    atomic_write(path, text if text is not None else _dump_yaml(record))
    if set_active:
        PersistentCache(kind.cache).set(device, record[kind.name_field])
    return path


def _load(kind: _Kind, device: str, name: str) -> dict[str, Any]:
    path = _path(kind, device, name)
    if not path.is_file():
        raise CalibrationNotFound(f"no {kind.folder[:-1]} {name!r} for device {device!r}")
    record = _parse_yaml(path.read_text(encoding="utf-8"))
    if not isinstance(record, dict):
        raise InvalidCalibration(f"{path.name} does not hold a mapping", None)
    return record


def _devices(kind: _Kind) -> list[str]:
    root = _root(kind)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and DEVICE.fullmatch(p.name))


def _iter_records(kind: _Kind, device: str) -> Iterator[dict[str, Any]]:
    _check_device(device)
    folder = _root(kind) / device
    if not folder.is_dir():
        return
    for path in sorted(folder.glob("*.yaml")):
        try:
            record = _parse_yaml(path.read_text(encoding="utf-8"))
            if isinstance(record, dict):
                yield record
            else:
                logger.warning("Skipping %s: not a YAML mapping", path)
        except (InvalidCalibration, OSError) as exc:
            logger.warning("Skipping unreadable %s: %s", path, exc)


def _list(kind: _Kind, device: str | None) -> Any:
    if device is not None:
        return list(_iter_records(kind, device))
    return {d: list(_iter_records(kind, d)) for d in _devices(kind)}


def _set_active(kind: _Kind, device: str, name: str) -> None:
    if not _path(kind, device, name).is_file():
        raise CalibrationNotFound(f"no {kind.folder[:-1]} {name!r} for device {device!r}")
    PersistentCache(kind.cache).set(device, name)


def _clear_active(kind: _Kind, device: str) -> bool:
    _check_device(device)
    return PersistentCache(kind.cache).delete(device)


def _delete(kind: _Kind, device: str, name: str) -> None:
    path = _path(kind, device, name)
    if not path.is_file():
        raise CalibrationNotFound(f"no {kind.folder[:-1]} {name!r} for device {device!r}")
    cache = PersistentCache(kind.cache)
    if cache.get(device) == name:
        cache.delete(device)
    path.unlink()


def _active_names(kind: _Kind) -> dict[str, str]:
    return PersistentCache(kind.cache).items()


def _active_record(kind: _Kind, device: str) -> tuple[str, dict[str, Any]] | None:
    _check_device(device)
    name = PersistentCache(kind.cache).get(device)
    if not name:
        return None
    try:
        return name, _load(kind, device, name)
    except CalibrationNotFound:
        logger.warning("Active %s %r for %s is missing on disk", kind.folder[:-1], name, device)
        return None


# --------------------------------------------------------------------- calibrations


class Calibration(Record, kw_only=False):
    """A loaded calibration with its curve, ready for run-time use.

    Attributes:
        name: ``calibration_name``.
        device: e.g. ``"od90"``, ``"media_pump"``, ``"stirring"``.
        record: The YAML record (contract fields, §6.1).
    """

    name: str
    device: str
    record: dict[str, Any]

    @property
    def curve_data(self) -> dict[str, Any]:
        return self.record["curve_data_"]

    @property
    def x_range(self) -> tuple[float, float] | None:
        """(min, max) of ``recorded_data.x``; else the curve's knot span; else None."""
        xs = (self.record.get("recorded_data") or {}).get("x") or []
        if xs:
            return float(min(xs)), float(max(xs))
        return curves.curve_x_range(self.curve_data)

    @property
    def y_range(self) -> tuple[float, float] | None:
        """(min, max) of ``recorded_data.y``; else the curve at the ends of ``x_range``."""
        ys = (self.record.get("recorded_data") or {}).get("y") or []
        if ys:
            return float(min(ys)), float(max(ys))
        xr = self.x_range
        if xr is None:
            return None
        a, b = curves.evaluate(self.curve_data, xr[0]), curves.evaluate(self.curve_data, xr[1])
        return min(a, b), max(a, b)

    def x_to_y(self, x: float) -> float:
        """Forward: OD600 → volts, seconds → mL, duty cycle % → RPM."""
        return curves.evaluate(self.curve_data, x)

    def y_to_x(self, y: float, enforce_bounds: bool = True) -> float:
        """Inverse: volts → OD600, mL → seconds, RPM → duty cycle %.

        Raises:
            OutOfCalibratedRange: no solution inside ``x_range`` (bounds enforced)
                or no real solution at all; ``.side``/``.nearest`` say which end.
        """
        return curves.invert(self.curve_data, y, x_range=self.x_range, enforce_bounds=enforce_bounds)


def calibration_path(device: str, name: str) -> Path:
    """``$DOT_PIOREACTOR/storage/calibrations/<device>/<name>.yaml`` (may not exist).

    Raises:
        InvalidCalibration: device or name not file-safe.
    """
    return _path(_CAL, device, name)


def save_calibration(device: str, record: dict[str, Any], set_active: bool = False) -> Path:
    """Validate and write a calibration record atomically; optionally make it active.

    Args:
        device: e.g. ``"od90"``.
        record: Contract fields (``calibration_type``, ``calibration_name``,
            ``calibrated_on_pioreactor_unit``, ``created_at``, ``curve_data_``,
            ``x``, ``y``, ``recorded_data`` and device-specific fields).
        set_active: Also point ``device`` at this calibration.

    Returns:
        The written path.

    Raises:
        InvalidCalibration: the record or device is invalid; nothing is written.
    """
    return _save_record(_CAL, device, record, set_active, None)


def save_calibration_yaml(device: str, text: str, set_active: bool = False) -> Path:
    """Validate YAML text and store it verbatim (what the calibrations plugin's upload route calls).

    Raises:
        InvalidCalibration: unparsable YAML or an invalid record; nothing is written.
    """
    record = _parse_yaml(text)
    return _save_record(_CAL, device, record, set_active, text)


def load_calibration(device: str, name: str) -> dict[str, Any]:
    """The record stored for ``device``/``name``.

    Raises:
        CalibrationNotFound: no such file. InvalidCalibration: bad name or YAML.
    """
    return _load(_CAL, device, name)


def list_devices() -> list[str]:
    """Devices that have a calibration folder, sorted."""
    return _devices(_CAL)


def list_calibrations(device: str | None = None) -> Any:
    """Stored calibration records.

    Returns:
        For a device: ``[record, …]`` sorted by file name. Without one:
        ``{device: [record, …]}``. Unreadable files are skipped with a warning.
    """
    return _list(_CAL, device)


def set_active(device: str, name: str) -> None:
    """Make ``name`` the active calibration of ``device``.

    Raises:
        CalibrationNotFound: the file does not exist.
    """
    _set_active(_CAL, device, name)


def clear_active(device: str) -> bool:
    """Remove the active pointer of ``device``; True when there was one."""
    return _clear_active(_CAL, device)


def delete_calibration(device: str, name: str) -> None:
    """Delete the file and, if it was active, the device's pointer.

    Raises:
        CalibrationNotFound: the file does not exist.
    """
    _delete(_CAL, device, name)


def active_calibrations() -> dict[str, str]:
    """``{device: calibration_name}`` of every active pointer."""
    return _active_names(_CAL)


def active_calibration(device: str) -> Calibration | None:
    """The active calibration of ``device``, or None (none set, or its file is gone)."""
    found = _active_record(_CAL, device)
    if found is None:
        return None
    return Calibration(name=found[0], device=device, record=found[1])


def active_curve_inverse(device: str, y: float, enforce_bounds: bool = False) -> float | None:
    """``x`` for ``y`` on ``device``'s active curve, or None without an active calibration.

    Stirring uses it for the duty cycle (%) of a target RPM. Outside the
    calibrated range the curve is extrapolated unless ``enforce_bounds``.

    Raises:
        OutOfCalibratedRange: no real solution, or outside the range with ``enforce_bounds``.
    """
    cal = active_calibration(device)
    if cal is None:
        return None
    return cal.y_to_x(y, enforce_bounds=enforce_bounds)


# ----------------------------------------------------------------------- estimators


class Estimator(Record, kw_only=False):
    """A loaded estimator (e.g. ``od_fused``); ``record`` holds the YAML fields."""

    name: str
    device: str
    record: dict[str, Any]


def estimator_path(device: str, name: str) -> Path:
    """``$DOT_PIOREACTOR/storage/estimators/<device>/<name>.yaml`` (may not exist)."""
    return _path(_EST, device, name)


def save_estimator(device: str, record: dict[str, Any], set_active: bool = False) -> Path:
    """Validate and write an estimator atomically; optionally make it active.

    Raises:
        InvalidCalibration: invalid record; nothing is written.
    """
    return _save_record(_EST, device, record, set_active, None)


def save_estimator_yaml(device: str, text: str, set_active: bool = False) -> Path:
    """Validate YAML text and store it verbatim.

    Raises:
        InvalidCalibration: unparsable YAML or invalid record; nothing is written.
    """
    record = _parse_yaml(text)
    return _save_record(_EST, device, record, set_active, text)


def load_estimator(device: str, name: str) -> dict[str, Any]:
    """The estimator record. Raises CalibrationNotFound / InvalidCalibration."""
    return _load(_EST, device, name)


def list_estimators(device: str | None = None) -> Any:
    """Like :func:`list_calibrations`, for estimators."""
    return _list(_EST, device)


def set_active_estimator(device: str, name: str) -> None:
    """Activate an estimator. Raises CalibrationNotFound without the file."""
    _set_active(_EST, device, name)


def clear_active_estimator(device: str) -> bool:
    """Remove the estimator pointer of ``device``; True when there was one."""
    return _clear_active(_EST, device)


def delete_estimator(device: str, name: str) -> None:
    """Delete an estimator file and its pointer if active. Raises CalibrationNotFound."""
    _delete(_EST, device, name)


def active_estimators() -> dict[str, str]:
    """``{device: estimator_name}`` of every active estimator pointer."""
    return _active_names(_EST)


def active_estimator(device: str) -> Estimator | None:
    """The active estimator of ``device`` (e.g. ``"od_fused"``), or None."""
    found = _active_record(_EST, device)
    if found is None:
        return None
    return Estimator(name=found[0], device=device, record=found[1])
