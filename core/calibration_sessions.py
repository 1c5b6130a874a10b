"""Calibration sessions: protocols as step machines (domain facts §6.5).

A *protocol* (subclass of :class:`CalibrationProtocol`) renders the step a
session is on from the session's ``step_id`` and ``data``, and says what
happens when the user submits that step. The engine (:class:`SessionEngine`)
keeps sessions in the persistent cache ``calibration_sessions``, so a session
survives API worker restarts, and drives the same protocols for the HTTP API
and for ``pio calibrations run`` in a terminal.

Session: ``{session_id (uuid4), protocol_name, target_device, status
(in_progress|complete|failed|aborted), step_id, data, created_at, updated_at,
result, error}``.

Step: ``{step_id, step_type (info|confirm|form|action|result), title, body,
fields[], metadata}``; a field: ``{name, label, field_type
(string|float|int|bool|float_list|choice), required, default, options, minimum,
maximum, min_error_msg, max_error_msg, help_text}``.

Advancing re-renders the current step, parses and checks its fields, runs the
step's transition (which may run hardware actions through the session's
runner (the calibrations plugin's ``ActionRunner``)) and
stores the new state. Any error leaves the stored session unchanged.
A step may offer extra ``metadata.actions`` (``[{label, inputs}]``); posting
one of those ``inputs`` (e.g. ``{"action": "redo_last"}``) skips field
validation and calls the step's ``on_action``.

This module imports only the standard library and reactorkit's core.
"""

from __future__ import annotations

import copy
import math
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Mapping

FIELD_TYPES = ("string", "float", "int", "bool", "float_list", "choice")
STEP_TYPES = ("info", "confirm", "form", "action", "result")


def _one_of(name: str, value: str, allowed: tuple[str, ...]) -> None:
    """Raises ValueError unless ``value`` is one of ``allowed`` (a record's ``field_type``/``step_type``)."""
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
STATUSES = ("in_progress", "complete", "failed", "aborted")
COMPLETE = "complete"
ABORTED_ERROR = "Calibration aborted by user."
SESSIONS_CACHE = "calibration_sessions"


class CalibrationError(Exception):
    """Base of the engine's errors; ``status`` is the HTTP status the API answers with.

    Attributes:
        status: 400 or 404.
        error: One sentence.
        cause: Why (which field, which value).
        remediation: What to do.
    """

    status = 400

    def __init__(self, error: str, cause: str | None = None, remediation: str | None = None) -> None:
        super().__init__(error)
        self.error = error
        self.cause = cause or error
        self.remediation = remediation


class InputError(CalibrationError):
    """A submitted value is missing, of the wrong type or out of bounds (names the field)."""

    def __init__(self, field_name: str | None, message: str, remediation: str | None = None) -> None:
        self.field = field_name
        super().__init__(
            f"Invalid input for {field_name!r}: {message}" if field_name else message,
            cause=message,
            remediation=remediation,
        )


class SessionNotFound(CalibrationError):
    """No session with that id (404)."""

    status = 404

    def __init__(self, session_id: str) -> None:
        super().__init__(
            f"Calibration session {session_id!r} not found.",
            remediation="Start a new calibration session; sessions end when their unit restarts.",
        )


class UnknownProtocol(CalibrationError):
    """No protocol ``protocol_name`` for ``target_device`` on this unit (400)."""

    def __init__(self, target_device: str, protocol_name: str, available: list[str]) -> None:
        super().__init__(
            f"Unknown calibration protocol {protocol_name!r} for device {target_device!r}.",
            remediation="Use one of: " + (", ".join(sorted(available)) or "none (no protocols installed)") + ".",
        )


class SessionNotInProgress(CalibrationError):
    """The session already ended (complete, failed or aborted)."""

    def __init__(self, session_id: str, status: str) -> None:
        super().__init__(
            f"Calibration session {session_id!r} is not in progress (status {status}).",
            remediation="Start a new session.",
        )


class ActionFailed(CalibrationError):
    """A hardware action of a step failed (e.g. no PWM channel for the pump)."""


# ------------------------------------------------------------------------- steps


@dataclass
class Field:
    """One input of a form step.

    Attributes:
        name: Key in ``inputs``. label: Shown to the user.
        field_type: string | float | int | bool | float_list | choice.
        required: Missing → error. default: Used when missing and not required
            (and shown as the pre-filled value).
        options: Allowed values of a ``choice``.
        minimum, maximum: Inclusive bounds of numbers (each element of a float_list).
        min_error_msg, max_error_msg: Messages for bound violations.
        help_text: One line of help.
    """

    name: str
    label: str
    field_type: str = "float"
    required: bool = True
    default: Any = None
    options: list[Any] | None = None
    minimum: float | None = None
    maximum: float | None = None
    min_error_msg: str | None = None
    max_error_msg: str | None = None
    help_text: str | None = None

    def __post_init__(self) -> None:
        _one_of("field_type", self.field_type, FIELD_TYPES)

    def to_dict(self) -> dict[str, Any]:
        """Every attribute, by name (a copy)."""
        return asdict(self)

    def _number(self, raw: Any, kind: type) -> float | int:
        if isinstance(raw, bool):
            raise InputError(self.name, f"expected a number, got {raw!r}")
        try:
            value = kind(float(raw)) if kind is int and not isinstance(raw, str) else kind(raw)
        except (TypeError, ValueError):
            raise InputError(self.name, f"expected {'an integer' if kind is int else 'a number'}, got {raw!r}") from None
        if kind is int and isinstance(raw, float) and not raw.is_integer():
            raise InputError(self.name, f"expected an integer, got {raw!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise InputError(self.name, f"expected a finite number, got {raw!r}")
        self._check_bounds(value)
        return value

    def _check_bounds(self, value: float) -> None:
        if self.minimum is not None and value < self.minimum:
            raise InputError(self.name, self.min_error_msg or f"must be at least {self.minimum:g}, got {value:g}")
        if self.maximum is not None and value > self.maximum:
            raise InputError(self.name, self.max_error_msg or f"must be at most {self.maximum:g}, got {value:g}")

    def parse(self, raw: Any) -> Any:
        """Cast and check a submitted value.

        Raises:
            InputError: wrong type, not an option, or out of bounds (names the field).
        """
        kind = self.field_type
        if kind == "float":
            return float(self._number(raw, float))
        if kind == "int":
            return int(self._number(raw, int))
        if kind == "bool":
            if isinstance(raw, bool):
                return raw
            if isinstance(raw, (int, float)) and raw in (0, 1):
                return bool(raw)
            if isinstance(raw, str) and raw.strip().lower() in ("1", "true", "yes", "y", "on", "0", "false", "no", "n", "off"):
                return raw.strip().lower() in ("1", "true", "yes", "y", "on")
            raise InputError(self.name, f"expected true or false, got {raw!r}")
        if kind == "float_list":
            items = raw
            if isinstance(raw, str):
                items = [p for p in raw.replace(";", ",").split(",") if p.strip()]
            if not isinstance(items, (list, tuple)) or not items:
                raise InputError(self.name, f"expected a non-empty list of numbers, got {raw!r}")
            return [float(self._number(v, float)) for v in items]
        if kind == "choice":
            options = self.options or []
            if raw not in options:
                text = str(raw)
                matches = [o for o in options if str(o) == text]
                if not matches:
                    raise InputError(self.name, f"must be one of {', '.join(map(str, options))}; got {raw!r}")
                raw = matches[0]
            return raw
        if not isinstance(raw, (str, int, float)) or isinstance(raw, bool):
            raise InputError(self.name, f"expected text, got {raw!r}")
        text = str(raw).strip()
        if self.required and not text:
            raise InputError(self.name, "must not be empty")
        return text


@dataclass
class Step:
    """What the user sees now and what submitting it does.

    Attributes:
        step_id: Key of the step within its protocol.
        step_type: info | confirm | form | action | result.
        title, body: Text shown to the user.
        fields: Inputs of a form.
        metadata: Extra UI data (``image``, ``chart``, ``table``, ``actions`` …).
        next_step: Where a plain submit goes when there is no ``on_submit``.
        on_submit: ``(ctx, values) -> next step_id`` (may run actions, may call
            ``ctx.complete(...)``). Never serialized.
        on_action: ``(ctx, action_inputs) -> next step_id`` for ``metadata.actions``.
    """

    step_id: str
    step_type: str
    title: str
    body: str = ""
    fields: list[Field] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    next_step: str | None = None
    on_submit: Callable[["SessionContext", dict[str, Any]], str | None] | None = None
    on_action: Callable[["SessionContext", dict[str, Any]], str | None] | None = None

    def __post_init__(self) -> None:
        _one_of("step_type", self.step_type, STEP_TYPES)

    def to_dict(self) -> dict[str, Any]:
        return {
            "step_id": self.step_id,
            "step_type": self.step_type,
            "title": self.title,
            "body": self.body,
            "fields": [f.to_dict() for f in self.fields],
            "metadata": copy.deepcopy(self.metadata),
        }

    def parse_inputs(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """Values of this step's fields from ``inputs`` (defaults for missing optional ones).

        Raises:
            InputError: a required field is missing or a value is invalid.
        """
        values: dict[str, Any] = {}
        for f in self.fields:
            raw = inputs.get(f.name)
            if raw is None or (isinstance(raw, str) and not raw.strip() and f.field_type != "string"):
                if f.required and f.default is None:
                    raise InputError(f.name, "is required")
                values[f.name] = f.parse(f.default) if f.default is not None else None
                continue
            values[f.name] = f.parse(raw)
        return values

    def matching_action(self, inputs: Mapping[str, Any]) -> dict[str, Any] | None:
        """The declared ``metadata.actions`` entry whose ``inputs`` are contained in ``inputs``."""
        for action in self.metadata.get("actions") or ():
            wanted = action.get("inputs") or {}
            if wanted and all(inputs.get(k) == v for k, v in wanted.items()):
                return dict(wanted)
        return None


# ---------------------------------------------------------------------- context


def utc_now_iso() -> str:
    """Now as ISO-8601 UTC with microseconds and ``Z``."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class SessionContext:
    """What a protocol's steps may use.

    Attributes:
        session: The session dict being advanced (a copy; stored only on success).
        data: ``session["data"]``, the protocol's scratch space (JSON-serializable).
        unit: This unit's name. config: Merged config.
        runner: Runs hardware/saving actions (``run_action``).
    """

    def __init__(self, session: dict[str, Any], *, unit: str, config: Any, runner: Any) -> None:
        self.session = session
        self.unit = unit
        self.config = config
        self.runner = runner
        self._result: dict[str, Any] | None = None

    @property
    def data(self) -> dict[str, Any]:
        return self.session["data"]

    @property
    def target_device(self) -> str:
        return self.session["target_device"]

    def calibration_record(self, calibration_type: str, curve: Any, x: tuple[str, Any], y: tuple[str, Any],
                           **extra: Any) -> dict[str, Any]:
        """A calibration made by this session, as the calibration store keeps it (domain facts §6).

        Args:
            calibration_type: e.g. ``"od600"``, ``"simple_stirring"``.
            curve: The fitted curve (``curve_data_``).
            x, y: Each axis's name and recorded values, e.g. ``("DC %", [20, 40])``.
            extra: What the device was run with (``hz``, ``dc``, ``voltage``, ``angle`` …).

        Returns:
            ``{calibration_type, calibration_name (the session's), calibrated_on_pioreactor_unit, created_at (now),
            curve_data_, x, y, recorded_data: {x, y}, **extra}``.
        """
        (x_name, xs), (y_name, ys) = x, y
        return {"calibration_type": calibration_type, "calibration_name": self.data["calibration_name"],
                "calibrated_on_pioreactor_unit": self.unit, "created_at": utc_now_iso(), "curve_data_": curve,
                "x": x_name, "y": y_name, "recorded_data": {"x": list(xs), "y": list(ys)}, **extra}

    def run_action(self, name: str, **payload: Any) -> Any:
        """Run a named action (``pump``, ``od_standards_measure`` …) and return its result.

        Raises:
            ActionFailed: the action raised (its message is kept).
        """
        try:
            return self.runner.run(name, payload)
        except CalibrationError:
            raise
        except Exception as exc:
            raise ActionFailed(
                f"Action {name!r} failed: {exc}",
                cause=f"{type(exc).__name__}: {exc}",
                remediation="Check the unit's hardware and config, then submit the step again.",
            ) from exc

    def complete(self, result: dict[str, Any]) -> str:
        """Finish the session successfully with ``result``; returns ``"complete"``."""
        self._result = result
        return COMPLETE

    @property
    def completed_result(self) -> dict[str, Any] | None:
        return self._result


# ---------------------------------------------------------------------- protocol


class CalibrationProtocol:
    """Base class of protocol step machines.

    Subclasses set ``protocol_name`` and ``first_step`` and define one method
    ``step_<step_id>(self, ctx) -> Step`` per step. ``target_device`` is
    given at construction (one class may serve several devices, e.g. all pumps).
    """

    protocol_name: str = ""
    first_step: str = "intro"

    def __init__(self, target_device: str) -> None:
        self.target_device = target_device

    def initial_data(self, ctx: SessionContext) -> dict[str, Any]:
        """Initial ``session.data`` (override to seed defaults)."""
        return {}

    def render(self, step_id: str, ctx: SessionContext) -> Step:
        """The :class:`Step` for ``step_id``.

        Raises:
            CalibrationError: the protocol has no such step.
        """
        method = getattr(self, f"step_{step_id}", None)
        if method is None:
            raise CalibrationError(f"Protocol {self.protocol_name!r} has no step {step_id!r}.")
        step = method(ctx)
        step.step_id = step_id
        return step


def result_step(session: Mapping[str, Any]) -> dict[str, Any]:
    """The rendered step of a session that ended (§6.5)."""
    if session["status"] == "complete":
        result = session.get("result") or {}
        return Step(
            step_id=COMPLETE,
            step_type="result",
            title=str(result.get("title") or "Calibration complete!"),
            body="",
            metadata={"result": result},
        ).to_dict()
    return Step(
        step_id=session["status"],
        step_type="result",
        title="Protocol ended",
        body=session.get("error") or "",
        metadata={"result": session.get("result")},
    ).to_dict()


# ----------------------------------------------------------------------- engine

ProtocolFactory = Callable[[str], CalibrationProtocol]


class SessionEngine:
    """Start, read, advance and abort sessions stored in the persistent cache.

    Args:
        protocols: ``{(target_device, protocol_name): factory}``; a factory is
            called with the device and returns a :class:`CalibrationProtocol`.
        runner: Action runner for hardware/saving actions.
        unit: This unit's name. config: Merged config.
        cache: Where sessions live (default: persistent cache ``calibration_sessions``).
    """

    def __init__(self, protocols: Mapping[tuple[str, str], ProtocolFactory], *, runner: Any,
                 unit: str, config: Any, cache: Any = None) -> None:
        from reactorkit.core.calibration_store import PersistentCache

        self.protocols = dict(protocols)
        self.runner = runner
        self.unit = unit
        self.config = config
        self.cache = cache or PersistentCache(SESSIONS_CACHE)

    # -------------------------------------------------------------- helpers
    def _lock(self) -> Any:
        from filelock import FileLock

        path = self.cache.path.with_name(self.cache.path.name + f".{SESSIONS_CACHE}.lock")
        return FileLock(str(path), timeout=600)

    def _protocol(self, target_device: str, protocol_name: str) -> CalibrationProtocol:
        factory = self.protocols.get((target_device, protocol_name))
        if factory is None:
            available = [f"{d}/{p}" for d, p in self.protocols]
            raise UnknownProtocol(target_device, protocol_name, available)
        return factory(target_device)

    def _context(self, session: dict[str, Any]) -> SessionContext:
        return SessionContext(session, unit=self.unit, config=self.config, runner=self.runner)

    def _load(self, session_id: str) -> dict[str, Any]:
        if not isinstance(session_id, str) or not session_id:
            raise SessionNotFound(str(session_id))
        session = self.cache.get(session_id)
        if session is None:
            raise SessionNotFound(session_id)
        return session

    def render(self, session: dict[str, Any]) -> dict[str, Any]:
        """The current step of ``session`` as a dict (a result step when it ended)."""
        if session["status"] != "in_progress":
            return result_step(session)
        protocol = self._protocol(session["target_device"], session["protocol_name"])
        ctx = self._context(copy.deepcopy(session))
        return protocol.render(session["step_id"], ctx).to_dict()

    # ----------------------------------------------------------------- API
    def start(self, target_device: str, protocol_name: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """Create a session on the protocol's first step.

        Returns:
            ``(session, step)``.

        Raises:
            InputError: missing names. UnknownProtocol: no such protocol here.
        """
        for name, value in (("target_device", target_device), ("protocol_name", protocol_name)):
            if not isinstance(value, str) or not value:
                raise InputError(name, "is required (a string)")
        protocol = self._protocol(target_device, protocol_name)
        now = utc_now_iso()
        session = {
            "session_id": str(uuid.uuid4()),
            "protocol_name": protocol_name,
            "target_device": target_device,
            "status": "in_progress",
            "step_id": protocol.first_step,
            "data": {},
            "created_at": now,
            "updated_at": now,
            "result": None,
            "error": None,
        }
        ctx = self._context(session)
        session["data"] = protocol.initial_data(ctx) or {}
        step = protocol.render(session["step_id"], ctx).to_dict()
        self.cache.set(session["session_id"], session)
        return session, step

    def get(self, session_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """``(session, step)`` of a stored session.

        Raises:
            SessionNotFound: unknown id.
        """
        session = self._load(session_id)
        return session, self.render(session)

    def advance(self, session_id: str, inputs: Mapping[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any]]:
        """Submit ``inputs`` to the current step and move on.

        Returns:
            ``(session, step)`` after the transition.

        Raises:
            SessionNotFound, SessionNotInProgress, InputError, ActionFailed,
            CalibrationError: the stored session is left unchanged.
        """
        if inputs is None:
            inputs = {}
        if not isinstance(inputs, Mapping):
            raise InputError("inputs", f"must be an object of field values, got {type(inputs).__name__}")
        with self._lock():
            stored = self._load(session_id)
            if stored["status"] != "in_progress":
                raise SessionNotInProgress(session_id, stored["status"])
            session = copy.deepcopy(stored)
            protocol = self._protocol(session["target_device"], session["protocol_name"])
            ctx = self._context(session)
            step = protocol.render(session["step_id"], ctx)
            action = step.matching_action(inputs)
            if action is not None and step.on_action is not None:
                next_step = step.on_action(ctx, action)
            else:
                values = step.parse_inputs(inputs)
                next_step = step.on_submit(ctx, values) if step.on_submit else step.next_step
            if ctx.completed_result is not None or next_step == COMPLETE:
                session["status"] = "complete"
                session["step_id"] = COMPLETE
                session["result"] = ctx.completed_result or {}
            elif next_step is None:
                raise CalibrationError(f"Step {step.step_id!r} of {protocol.protocol_name!r} has no next step.")
            else:
                protocol.render(next_step, ctx)  # fail now, not on the next GET
                session["step_id"] = next_step
            session["updated_at"] = utc_now_iso()
            self.cache.set(session_id, session)
        return session, self.render(session)

    def abort(self, session_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """Mark a session ``aborted`` with error "Calibration aborted by user.".

        Raises:
            SessionNotFound: unknown id.
        """
        session = self._end(session_id, "aborted", ABORTED_ERROR)
        return session, self.render(session)

    def fail(self, session_id: str, error: str) -> dict[str, Any]:
        """Mark a session ``failed`` (e.g. the terminal user gave up after an error)."""
        return self._end(session_id, "failed", error)

    def _end(self, session_id: str, status: str, error: str) -> dict[str, Any]:
        """Give a session in progress its final ``status`` and ``error``; a session already ended stays as it is."""
        with self._lock():
            session = self._load(session_id)
            if session["status"] == "in_progress":
                session.update(status=status, error=error, updated_at=utc_now_iso())
                self.cache.set(session_id, session)
        return session
