"""The automation base class and the host jobs that run automations.

An automation is a :class:`AutomationJob` subclass registered through the
``register_automations`` hook. A host job ``{type}_automation`` (one per
automation type a plugin declares) picks one by
``--automation-name``; other options arrive as strings (as in the Pioreactor
software) and are cast with the automation's field types.

Every ``duration`` minutes (simulated), :meth:`AutomationJob.execute` runs and
returns an :class:`AutomationEvent` (or None), published as ``latest_event``
``{"event_name", "message", "data"}``. The first run comes 2 s after start
unless ``skip_first_run``. Sleeping pauses the timer; ``/set`` on ``duration``
restarts it. Each change of a settable setting publishes
``{job}/{job}_settings`` (QoS 2, not retained) with the run's settings as base64 JSON: the settable
ones and those chosen at the start (a constructor keyword, editable or not), not readings.
"""

from __future__ import annotations

import base64
import json
from typing import Any, ClassVar

from reactorkit.core.clock import RepeatedTimer
from reactorkit.core.job import BackgroundJob
from reactorkit.core.records import Record, field


def _init_keywords(cls: type) -> frozenset[str]:
    """The keyword parameters of the constructors of ``cls`` and its bases (an automation's start options)."""
    import inspect

    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None or klass is object:
            continue
        try:
            parameters = inspect.signature(init).parameters.values()
        except (TypeError, ValueError):
            continue
        names.update(p.name for p in parameters if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD))
    return frozenset(names)


class AutomationEvent(Record, frozen=False, kw_only=False):
    """Something an automation did (or decided not to do).

    Attributes:
        message: Human-readable summary.
        data: JSON-serialisable details, e.g. ``{"volume_ml": 1.0}``.
    """

    message: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def event_name(self) -> str:
        return type(self).__name__

    def to_dict(self) -> dict[str, Any]:
        return {"event_name": self.event_name, "message": self.message, "data": self.data}


class NoEvent(AutomationEvent):
    """Nothing was done this cycle."""


class DilutionEvent(AutomationEvent):
    """Media was exchanged (media in, waste out)."""


class DosingStarted(AutomationEvent):
    pass


class DosingStopped(AutomationEvent):
    pass


class AddMediaEvent(AutomationEvent):
    pass


class AddAltMediaEvent(AutomationEvent):
    pass


class ChangedLedIntensity(AutomationEvent):
    pass


class ErrorOccurred(AutomationEvent):
    """The automation could not act (stale input, safety limit …)."""


class UpdatedHeaterDC(AutomationEvent):
    pass


class AutomationJob(BackgroundJob):
    """Base class of every automation.

    Subclasses set ``automation_type`` (class attribute of the family base, e.g.
    ``"dosing"``), ``automation_name``, their own ``published_settings`` and
    implement :meth:`execute`.

    Args:
        unit, experiment: As :class:`BackgroundJob`.
        duration: Minutes between ``execute`` runs (simulated); None or 0 for
            automations driven by events rather than a timer.
        skip_first_run: Wait a full ``duration`` before the first run.

    Raises:
        ValueError: ``duration`` is negative.
    """

    automation_type: ClassVar[str] = ""
    automation_name: ClassVar[str] = ""
    published_settings = {
        "automation_name": {"datatype": "string", "settable": False},
        "duration": {"datatype": "float", "settable": True, "unit": "min"},
        "latest_event": {"datatype": "json", "settable": False},
    }

    def __init__(self, unit: str, experiment: str, *, duration: float | None = None, skip_first_run: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(unit, experiment, **kwargs)
        if duration is not None and float(duration) < 0:
            raise ValueError(f"duration must be ≥ 0 minutes, got {duration}")
        self.automation_name = self.automation_name or type(self).__name__.lower()
        self.skip_first_run = bool(skip_first_run)
        self.latest_event = None
        self._timer: RepeatedTimer | None = None
        self.duration = float(duration) if duration else 0.0
        self._started_at = self.clock.utc_iso()

    # ----------------------------------------------------------------- timer
    def _start_timer(self, first_run_after: float | None = None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self.duration:
            return
        interval = self.duration * 60.0
        if first_run_after is None:
            first_run_after = interval if self.skip_first_run else 2.0
        self._timer = RepeatedTimer(interval, self.run, clock=self.clock, run_after=first_run_after,
                                    on_error=self._on_execute_error, name=f"{self.job_name}-timer").start()

    def _on_execute_error(self, exc: BaseException) -> None:
        self.logger.error("%s failed: %s", self.automation_name, exc, exc_info=exc)
        self.latest_event = ErrorOccurred(message=str(exc)).to_dict()

    def _post_init(self) -> None:
        super()._post_init()
        self._start_timer()
        self._publish_settings_record()

    def run(self) -> AutomationEvent | None:
        """Run :meth:`execute` once (if ready) and publish its event."""
        if self.state != "ready":
            return None
        event = self.execute()
        if event is not None:
            self.latest_event = event.to_dict()
            if not isinstance(event, NoEvent):
                self.logger.info("%s: %s", event.event_name, event.message)
        return event

    def execute(self) -> AutomationEvent | None:
        """Do one cycle of the automation. Subclasses implement this."""
        raise NotImplementedError

    # -------------------------------------------------------------- settings
    def set_duration(self, value: float) -> None:
        if value < 0:
            raise ValueError(f"duration must be ≥ 0 minutes, got {value}")
        self.duration = float(value)
        self._start_timer(first_run_after=self.duration * 60.0)

    def _apply_set(self, key: str, payload: str) -> None:
        super()._apply_set(key, payload)
        if key != "$state":
            self._publish_settings_record()

    def _publish_settings_record(self, ended_at: str | None = None) -> None:
        # the run's settings: what may be changed while it runs, and what was chosen at its start (a keyword
        # of the automation's constructor, e.g. the turbidostat's biomass_signal), not its readings
        chosen = _init_keywords(type(self))
        settable = {
            name: getattr(self, name, None)
            for name, spec in self._settings.items()
            if name != "state" and (spec.get("settable") or name in chosen)
        }
        record = {
            "pioreactor_unit": self.unit,
            "experiment": self.experiment,
            "started_at": self._started_at,
            "ended_at": ended_at,
            "automation_name": self.automation_name,
            "settings": base64.b64encode(json.dumps(settable, default=str).encode()).decode(),
        }
        self.mqtt.publish(f"{self._topic_base}/{self.job_name}_settings", json.dumps(record), qos=2, retain=False)

    # ------------------------------------------------------------- lifecycle
    def on_ready_to_sleeping(self) -> None:
        if self._timer is not None:
            self._timer.pause()

    def on_sleeping_to_ready(self) -> None:
        if self._timer is not None:
            self._timer.unpause()

    def on_disconnected(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._publish_settings_record(ended_at=self.clock.utc_iso())


def cast_automation_kwargs(descriptor: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Cast string CLI values with the automation's field types (numeric → float, boolean → bool).

    Raises:
        ValueError: a numeric field's value is not a number (names the field).
    """
    types = {f.key: f.type for f in descriptor.fields}
    out: dict[str, Any] = {}
    for key, value in kwargs.items():
        kind = types.get(key, "numeric" if key == "duration" else "string")
        if isinstance(value, str) and kind == "numeric":
            try:
                value = float(value)
            except ValueError as exc:
                raise ValueError(f"--{key.replace('_', '-')} must be a number, got {value!r}") from exc
        elif isinstance(value, str) and kind == "boolean":
            value = value.strip().lower() in ("1", "true", "yes", "on", "y", "t")
        out[key] = value
    return out


def _automations(automation_type: str) -> dict[str, Any]:
    """``name -> descriptor-like record`` of the installed automations of a type, from the CLI's
    cached index (no plugin is imported); the plugin registry when the index cannot be read."""
    from types import SimpleNamespace

    try:
        from reactorkit.core.cli.index import get_index

        named = get_index()["automations"].get(automation_type, {})
    except Exception:
        from reactorkit.core.plugins import Registry

        return dict(Registry.installed().automations[automation_type])
    return {name: SimpleNamespace(automation_name=name, automation_class=entry["automation_class"],
                                  source=entry["source"], fields=[SimpleNamespace(**f) for f in entry["fields"]])
            for name, entry in named.items()}


def run_automation(automation_type: str, *, unit: str, experiment: str, config: Any, automation_name: str,
                   **kwargs: Any) -> int:
    """Runner of the ``{automation_type}_automation`` host jobs (``pio run <type>_automation …``).

    Returns:
        Exit code: 0 after a clean stop, 2 for an unknown automation or bad option.
    """
    import sys

    from reactorkit.core.imports import resolve

    available = _automations(automation_type)
    descriptor = available.get(automation_name)
    if descriptor is not None and descriptor.automation_class is None:  # not importable by path
        from reactorkit.core.plugins import Registry

        descriptor = Registry.installed().automations[automation_type].get(automation_name)
    if descriptor is None:
        names = ", ".join(sorted(available)) or "none installed"
        print(f"Error: unknown {automation_type} automation {automation_name!r}; available: {names}", file=sys.stderr)
        return 2
    try:
        options = cast_automation_kwargs(descriptor, kwargs)
    except ValueError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    cls = resolve(descriptor.automation_class)
    job = cls(unit=unit, experiment=experiment, config=config, source=descriptor.source, **options)
    job.block_until_disconnected()
    return 0


def run_automation_host(automation_type: str, *, unit: str, experiment: str, config: Any, automation_name: str,
                        refusals: tuple[type[BaseException], ...] = (ValueError, TypeError), refusal_exit: int = 2,
                        **kwargs: Any) -> int:
    """The runner of a host job (``pio run {automation_type}_automation``): start the automation
    ``automation_name`` (:func:`run_automation`) and block until it disconnects.

    Other options arrive as strings and are cast with the automation's field types.

    Returns:
        0 after a clean stop; 1 when it could not start (another one runs, no broker); ``refusal_exit``
        for one of ``refusals`` (an unknown automation, a bad option …), with one line on stderr.
    """
    from reactorkit.core.start_errors import start_failure

    try:
        return run_automation(automation_type, unit=unit, experiment=experiment, config=config,
                              automation_name=automation_name, **kwargs)
    except Exception as exc:
        code = start_failure(f"{automation_type}_automation", exc, refusals=refusals, refusal_exit=refusal_exit)
        if code is None:
            raise
        return code
