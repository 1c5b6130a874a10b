"""Typed records that plugins return from hooks.

Every hook in :mod:`reactorkit.core.hooks.specs` returns instances of the frozen,
keyword-only records below (:class:`reactorkit.core.records.Record`: declared and used as
``@dataclass(frozen=True, kw_only=True)`` classes, and ``dataclasses.fields``, ``replace`` and
``asdict`` work on them, without the cost of generating their methods at import). Field names follow the Pioreactor contract (the JSON that
``/api/jobs/descriptors`` and friends serve), and ``to_dict()`` produces that
JSON. Validation happens in ``__post_init__``: a record that is not valid raises
``ValueError`` with the offending field, and the plugin manager reports that
error together with the plugin's name.

This module is imported by every plugin's ``__init__`` and therefore imports
nothing heavy: not :mod:`dataclasses` either.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Iterable, Literal

from reactorkit.core.imports import resolve  # noqa: F401  (re-exported for plugins and tests)
from reactorkit.core.records import Record, field, replace

SNAKE_CASE = re.compile(r"[a-z][a-z0-9_]*")
SETTING_TYPES = ("numeric", "boolean", "string", "json")
DATATYPES = ("string", "float", "integer", "json", "boolean")
AUTOMATION_TYPES = ("dosing", "led", "temperature")
AUTOMATION_FIELD_TYPES = ("numeric", "string", "select", "boolean")
CLI_OPTION_TYPES = ("string", "float", "integer", "boolean", "flag")
RESERVED_JOB_NAMES = frozenset(
    {"run", "dosing_events", "leds", "led_change_events", "unit_label", "pwm", "assignment"}
)


class SettingOutOfRange(ValueError):
    """A value outside a setting's or option's declared ``min``/``max``.

    Attributes:
        name: The setting or option name, e.g. ``"target_rpm"``.
        value: The value given.
        min, max: The declared bounds (either may be None).
        unit: The physical unit (e.g. ``"RPM"``), or None.
    """

    def __init__(self, name: str, value: Any, min: float | None, max: float | None, unit: str | None = None):
        self.name, self.value, self.min, self.max, self.unit = name, value, min, max, unit
        super().__init__(f"{name} must be {describe_bounds(min, max, unit)}, got {value!r}")


def describe_bounds(min: float | None, max: float | None, unit: str | None = None) -> str:
    """``"between 0 and 5000 RPM"``, ``"at least 0 °C"``, ``"at most 100 %"``."""
    suffix = f" {unit}" if unit else ""
    if min is not None and max is not None:
        return f"between {min:g} and {max:g}{suffix}"
    if min is not None:
        return f"at least {min:g}{suffix}"
    return f"at most {max:g}{suffix}"


def check_bounds(name: str, value: Any, min: float | None, max: float | None, unit: str | None = None) -> Any:
    """``value`` unchanged when it is a number inside ``[min, max]`` (or not a number, or no bounds).

    Raises:
        SettingOutOfRange: a number below ``min`` or above ``max``.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    if (min is not None and value < min) or (max is not None and value > max):
        raise SettingOutOfRange(name, value, min, max, unit)
    return value


def _with_setting_bounds(options: tuple[Any, ...], settings: tuple[Any, ...]) -> tuple[Any, ...]:
    """CLI options named like a published setting take the setting's bounds and unit (declared once)."""
    by_key = {s.key: s for s in settings}
    out = []
    for option in options:
        setting = by_key.get(option.name)
        if (setting is not None and option.type in ("float", "integer") and option.min is None and option.max is None
                and (setting.min is not None or setting.max is not None)):
            option = replace(option, min=setting.min, max=setting.max, unit=option.unit or setting.unit)
        out.append(option)
    return tuple(out)


def _check_snake(kind: str, value: str) -> None:
    if not isinstance(value, str) or not SNAKE_CASE.fullmatch(value):
        raise ValueError(f"{kind} must be snake_case (lowercase letters, digits, _), got {value!r}")


def _check_choice(kind: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{kind} must be one of {', '.join(allowed)}; got {value!r}")


class _Record(Record):
    """Shared ``to_dict``: contract fields only (``repr=False`` fields are internal)."""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in self.__record_fields__:
            if not f.repr:
                continue
            value = getattr(self, f.name)
            if isinstance(value, tuple):
                value = [v.to_dict() if isinstance(v, _Record) else v for v in value]
            elif isinstance(value, _Record):
                value = value.to_dict()
            out[f.name] = value
        return out


class PublishedSetting(_Record):
    """One setting a running job publishes on ``pioreactor/{unit}/{experiment}/{job}/{key}``.

    Attributes:
        key: The setting's topic segment, e.g. ``"target_rpm"``.
        type: UI type: ``numeric | boolean | string | json``.
        datatype: Wire type used to cast ``/set`` payloads: ``string | float |
            integer | json | boolean``. Defaults from ``type``.
        unit: Physical unit shown next to the value, e.g. ``"RPM"``, ``"°C"``, ``"h⁻¹"``.
        label: Human label; required when ``display`` is true.
        editable: Settable through ``…/{key}/set`` and the UI.
        display: Shown in the UI's job card.
        persist: Kept (not emptied) when the job disconnects.
        min, max: Optional bounds for numeric settings, enforced for ``…/set`` (the job
            ignores a value outside them), ``pio run`` (a CLI option of the same name
            inherits them) and the API (400 naming the setting).
    """

    key: str
    type: str = "numeric"
    datatype: str = ""
    unit: str | None = None
    label: str | None = None
    description: str = ""
    editable: bool = False
    display: bool = True
    persist: bool = field(default=False, repr=False)
    min: float | None = None
    max: float | None = None

    def __post_init__(self) -> None:
        if not self.key.startswith("$"):
            _check_snake("published setting key", self.key)
        _check_choice(f"setting {self.key!r} type", self.type, SETTING_TYPES)
        if not self.datatype:
            default = {"numeric": "float", "boolean": "boolean", "string": "string", "json": "json"}[self.type]
            object.__setattr__(self, "datatype", default)
        _check_choice(f"setting {self.key!r} datatype", self.datatype, DATATYPES)
        if self.display and not self.label:
            object.__setattr__(self, "label", self.key.replace("_", " ").capitalize())
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"setting {self.key!r}: min {self.min} is greater than max {self.max}")

    def check(self, value: Any) -> Any:
        """``value`` unchanged when inside this setting's bounds.

        Raises:
            SettingOutOfRange: a number outside ``min``/``max``.
        """
        return check_bounds(self.key, value, self.min, self.max, self.unit)

    def as_spec(self) -> dict[str, Any]:
        """The form :class:`reactorkit.core.job.BackgroundJob` keeps: ``{datatype, settable, unit, persist, min, max}``."""
        return {"datatype": self.datatype, "settable": self.editable, "unit": self.unit, "persist": self.persist,
                "min": self.min, "max": self.max}


class CliOption(_Record):
    """A ``pio run <job>`` option, turned into a click option and a job keyword argument.

    Attributes:
        name: snake_case keyword argument; the flag is ``--name-with-dashes``.
        type: ``string | float | integer | boolean | flag``.
        default: Default value (None: not passed to the job).
        help: One line for ``--help``; give the unit (mL, RPM, °C, seconds).
        required: The job refuses to start without it.
        choices: Allowed string values, if any.
        min, max: Bounds of a number option (``pio run`` refuses a value outside them). An
            option named like a published setting of its job inherits the setting's bounds
            and unit, so they are declared once, on the setting.
        unit: Physical unit of a number option (inherited like the bounds).
    """

    name: str
    type: str = "string"
    default: Any = None
    help: str = ""
    required: bool = False
    choices: tuple[str, ...] = ()
    min: float | None = None
    max: float | None = None
    unit: str | None = None

    def __post_init__(self) -> None:
        _check_snake("CLI option name", self.name)
        _check_choice(f"CLI option {self.name!r} type", self.type, CLI_OPTION_TYPES)

    def check(self, value: Any) -> Any:
        """``value`` unchanged when inside this option's bounds.

        Raises:
            SettingOutOfRange: a number outside ``min``/``max``.
        """
        return check_bounds(self.name, value, self.min, self.max, self.unit)


class JobDescriptor(_Record):
    """A background job or action, as ``/unit_api/jobs/descriptors`` lists it.

    Attributes:
        job_name: snake_case key used by ``pio run <job_name>`` and the MQTT topics,
            e.g. ``"ph_reading"``.
        display_name: Title in the UI.
        description: One paragraph for users.
        published_settings: What the running job publishes/accepts, each with its unit.
        subtext: Key of the setting shown as subtitle in the UI, if any.
        display: Shown as a card in the UI.
        job_class: The class (or ``"module:Class"`` path) that runs the job; never
            serialized. Its constructor takes ``unit``, ``experiment`` and the CLI
            options as keyword arguments.
        cli_options: Options for ``pio run <job_name>``.
        is_long_running: Survives ``stop all`` and runs outside experiments
            (e.g. the leader's ingestion job).
        autostart: Started with every unit by what supervises the unit's processes (``pio cluster``'s
            supervisord; a systemd unit on a Raspberry Pi) and started again when it exits. Only for
            long-running jobs that take no required option.
        runner: Optional callable (or import path) ``runner(**kwargs) -> int``
            for actions that are not background jobs (e.g. one pump run). When
            set, ``pio run`` calls it instead of instantiating ``job_class``.
        accepts_extra_options: ``pio run`` passes unknown ``--key value`` options
            as string keyword arguments (automation parameters).
        cli_arguments: Names of required positional arguments of ``pio run
            <job_name>``, passed (as strings) to ``job_class``/``runner`` as keyword
            arguments of those names, e.g. ``("command", "path")`` for ``pio run my_job execute <path>``.
        stop_priority: Order in "stop all" and ``pio kill``: lower stops first (the built-ins:
            pumps 10, heating 20, dosing 30, LEDs 40, everything else the default 50).
        check_options: Optional callable (or ``"module:function"`` path)
            ``check_options(job_name, options: dict[str, Any], config) -> None`` that the API runs before
            a run is queued, for bounds that depend on the unit's config or state (a pump's
            mL per call and per hour). It raises ``ValueError`` whose message names the option,
            the value and what is allowed; the API answers 400 with it. The job checks again
            when it runs (the CLI path, and the state may change in between).
        source: Set by the host: ``"app"`` for built-ins, else the plugin name.
    """

    job_name: str
    display_name: str
    description: str = ""
    published_settings: tuple[PublishedSetting, ...] = ()
    subtext: str | None = None
    display: bool = True
    job_class: Any = field(default=None, repr=False)
    cli_options: tuple[CliOption, ...] = field(default=(), repr=False)
    is_long_running: bool = field(default=False, repr=False)
    autostart: bool = field(default=False, repr=False)
    runner: Any = field(default=None, repr=False)
    accepts_extra_options: bool = field(default=False, repr=False)
    cli_arguments: tuple[str, ...] = field(default=(), repr=False)
    stop_priority: int = field(default=50, repr=False)
    check_options: Any = field(default=None, repr=False)
    source: str = "app"

    def __post_init__(self) -> None:
        _check_snake("job_name", self.job_name)
        if self.job_name in RESERVED_JOB_NAMES:
            raise ValueError(f"job_name {self.job_name!r} is reserved by the contract")
        if not self.display_name:
            raise ValueError(f"job {self.job_name!r}: display_name must not be empty")
        if self.job_class is None and self.runner is None:
            raise ValueError(f"job {self.job_name!r}: give job_class or runner")
        if self.autostart and not self.is_long_running:
            raise ValueError(f"job {self.job_name!r}: autostart needs is_long_running=True")
        _unique(f"job {self.job_name!r} published_settings", (s.key for s in self.published_settings))
        _unique(f"job {self.job_name!r} cli_options", (o.name for o in self.cli_options))
        _check_types(f"job {self.job_name!r} published_settings", self.published_settings, PublishedSetting)
        _check_types(f"job {self.job_name!r} cli_options", self.cli_options, CliOption)
        object.__setattr__(self, "cli_options", _with_setting_bounds(self.cli_options, self.published_settings))

    @property
    def key(self) -> str:
        return self.job_name


class AutomationField(_Record):
    """One parameter of an automation, as the UI form shows it.

    Attributes:
        key: snake_case keyword argument of the automation, e.g. ``"target_biomass"``.
        label: Form label.
        type: ``numeric | string | select | boolean``.
        unit: Physical unit, e.g. ``"mL"``, ``"min"``, ``"°C"``.
        default: Default value (None: required from the user when ``required``).
        required, disabled: Form flags.
        options: Choices for ``select`` fields.
        min, max: Bounds of a numeric field, enforced like a published setting's (the field is
            published as a setting of its host job, ``{type}_automation``).
        editable: The running automation takes a new value (``…/{key}/set``, the UI's job card);
            False for a choice made once at start (e.g. the turbidostat's biomass signal).
        description: One line for the UI's setting, e.g. ``"Thermostat only: the temperature the heater holds."``.

    The fields are the one declaration of an automation's settings: the host job's descriptor
    lists each as a :class:`PublishedSetting` (:meth:`as_setting`), built-in or plugin alike.
    """

    key: str
    label: str
    type: str = "numeric"
    unit: str | None = None
    default: Any = None
    required: bool = True
    disabled: bool = False
    options: tuple[str, ...] = ()
    min: float | None = field(default=None, repr=False)
    max: float | None = field(default=None, repr=False)
    editable: bool = field(default=True, repr=False)
    description: str = field(default="", repr=False)

    def as_setting(self) -> "PublishedSetting":
        """This field as a setting of its host job, shown in the UI's job card (editable unless declared not)."""
        kind = {"numeric": "numeric", "boolean": "boolean"}.get(self.type, "string")
        return PublishedSetting(key=self.key, type=kind, unit=self.unit, label=self.label, editable=self.editable,
                                description=self.description, min=self.min, max=self.max)

    def __post_init__(self) -> None:
        _check_snake("automation field key", self.key)
        _check_choice(f"automation field {self.key!r} type", self.type, AUTOMATION_FIELD_TYPES)
        if self.type == "select" and not self.options:
            raise ValueError(f"automation field {self.key!r}: select fields need options")


class AutomationDescriptor(_Record):
    """An automation that a host job (``{type}_automation``) can run.

    Attributes:
        automation_type: ``dosing | led | temperature``.
        automation_name: snake_case key given as ``--automation-name``.
        fields: Parameters, passed to the class as keyword arguments.
        automation_class: Class or ``"module:Class"``; never serialized.
    """

    automation_type: str = field(repr=False)
    automation_name: str
    display_name: str
    description: str = ""
    fields: tuple[AutomationField, ...] = ()
    automation_class: Any = field(default=None, repr=False)
    source: str = "app"

    def __post_init__(self) -> None:
        _check_choice("automation_type", self.automation_type, AUTOMATION_TYPES)
        _check_snake("automation_name", self.automation_name)
        if self.automation_class is None:
            raise ValueError(f"automation {self.automation_name!r}: automation_class is required")
        _check_types(f"automation {self.automation_name!r} fields", self.fields, AutomationField)
        _unique(f"automation {self.automation_name!r} fields", (f.key for f in self.fields))

    @property
    def key(self) -> str:
        return f"{self.automation_type}/{self.automation_name}"

    def settings(self) -> tuple["PublishedSetting", ...]:
        """The automation's fields as the settings its job publishes and accepts (type, unit, editability and
        bounds declared once, on the fields): an automation class sets ``published_settings`` from them."""
        return tuple(f.as_setting() for f in self.fields)


def automation_host_job(automation_type: str, *, display_name: str, description: str, runner: Any,
                        stop_priority: int, automation_help: str,
                        settings: Iterable[PublishedSetting] = ()) -> JobDescriptor:
    """The host job ``{automation_type}_automation``: runs the one automation of that type that
    ``--automation-name`` picks (its other options arrive as strings, cast by the automation's fields).

    It publishes what every host does — ``automation_name`` (its card's subtext) first, then the host's
    own ``settings``, then ``latest_event`` — and the automations' fields become its settings too when
    the registry is built (:attr:`reactorkit.core.plugins.Registry.jobs`).

    Args:
        automation_type: ``"dosing"``, ``"led"``, ``"temperature"`` or a plugin's type.
        runner: ``runner(**kwargs) -> int`` (or its import path), see :class:`JobDescriptor`.
        stop_priority: Its place in "stop all" (see :class:`JobDescriptor`).
        automation_help: Help of ``--automation-name`` (which automations there are).

    Raises:
        ValueError: as :class:`JobDescriptor` (a bad name, a setting declared twice …).
    """
    return JobDescriptor(
        job_name=f"{automation_type}_automation",
        stop_priority=stop_priority,
        display_name=display_name,
        description=description,
        subtext="automation_name",
        published_settings=(
            PublishedSetting(key="automation_name", type="string", label="Automation", editable=False),
            *settings,
            PublishedSetting(key="latest_event", type="json", label="Latest event", editable=False, display=False),
        ),
        cli_options=(CliOption(name="automation_name", type="string", required=True, help=automation_help),),
        runner=runner,
        accepts_extra_options=True,
    )


def automation_settings(automations: Iterable[AutomationDescriptor],
                        automation_name: str) -> tuple[PublishedSetting, ...]:
    """:meth:`AutomationDescriptor.settings` of the one named ``automation_name`` among ``automations``.

    Raises:
        KeyError: none has that name.
    """
    for automation in automations:
        if automation.automation_name == automation_name:
            return automation.settings()
    raise KeyError(automation_name)


class ChartDescriptor(_Record):
    """A chart of the UI's overview page.

    Attributes:
        chart_key: snake_case key, e.g. ``"implied_growth_rate"``.
        data_source: Leader table the history comes from, e.g. ``"ph_readings"``.
        title, y_axis_label: Labels (give the unit in the axis label).
        mqtt_topic: Live topic(s) relative to ``pioreactor/{unit}/{experiment}/``.
        payload_key: Key of the value inside the JSON payload, if any.
        data_source_column: Column of ``data_source`` to plot, if not the default.
        lookback: Hours shown (number or a JS expression string).
        fixed_decimals: Decimals shown.
        y_axis_domain: Optional ``(low, high)``.
        interpolation: d3 curve name.
    """

    chart_key: str
    data_source: str
    title: str
    y_axis_label: str = ""
    mqtt_topic: str | tuple[str, ...] = ""
    payload_key: str | None = None
    data_source_column: str | None = None
    lookback: float | str = 4.0
    fixed_decimals: int = 2
    down_sample: bool = True
    y_transformation: str | None = None
    y_axis_domain: tuple[float, float] | None = None
    interpolation: str = "stepAfter"
    source: str = "app"

    def __post_init__(self) -> None:
        _check_snake("chart_key", self.chart_key)
        _check_snake(f"chart {self.chart_key!r} data_source", self.data_source)
        if not self.title:
            raise ValueError(f"chart {self.chart_key!r}: title must not be empty")

    @property
    def key(self) -> str:
        return self.chart_key


class DatasetDescriptor(_Record):
    """An exportable dataset (``/api/datasets/exportable``).

    Exactly one of ``table`` and ``query`` is given. ``default_order_by`` is the
    timestamp column used for time windows and ordering.
    """

    dataset_name: str
    display_name: str
    description: str = ""
    table: str | None = None
    query: str | None = None
    has_experiment: bool = True
    has_unit: bool = True
    default_order_by: str = "timestamp"
    timestamp_columns: tuple[str, ...] = ("timestamp",)
    always_partition_by_unit: bool = False
    column_descriptions: dict[str, str] = field(default_factory=dict)
    column_units: dict[str, str] = field(default_factory=dict)
    source: str = "app"

    def __post_init__(self) -> None:
        _check_snake("dataset_name", self.dataset_name)
        if (self.table is None) == (self.query is None):
            raise ValueError(f"dataset {self.dataset_name!r}: give exactly one of table and query")

    @property
    def key(self) -> str:
        return self.dataset_name


class CalibrationProtocolDescriptor(_Record):
    """A calibration protocol (listed and run by the calibrations plugin's routes).

    Attributes:
        target_device: e.g. ``"media_pump"``, ``"od90"``, ``"ph_probe"``.
        protocol_name: e.g. ``"duration_based"``.
        priority: Lower is listed first (default 99).
        requirements: Human-readable checklist.
        session_class: Step machine class (or ``"module:Class"``); never serialized.
    """

    target_device: str
    protocol_name: str
    title: str
    description: str = ""
    priority: int = 99
    requirements: tuple[str, ...] = ()
    session_class: Any = field(default=None, repr=False)
    source: str = "app"

    def __post_init__(self) -> None:
        _check_snake("target_device", self.target_device)
        _check_snake("protocol_name", self.protocol_name)

    @property
    def id(self) -> str:
        return f"{self.target_device}_{self.protocol_name}"

    @property
    def key(self) -> str:
        return self.id

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, **super().to_dict()}


class TimeSeries(_Record):
    """How a table's rows form time series (one per unit, or per unit and channel).

    A table that declares one gets an ``(experiment, pioreactor_unit[, channel], timestamp)``
    index, a down-sampled rollup kept at insert time, the named series
    ``GET /api/experiments/{experiment}/time_series/{table}`` (and the per-worker variant)
    and their OpenAPI entries. The table needs ``experiment``, ``pioreactor_unit``,
    ``timestamp`` (and ``channel`` when ``per_channel``) columns.

    Attributes:
        value_column: The column plotted, e.g. ``"ph"``, ``"rate"``.
        per_channel: Series split by ``channel`` (named ``unit-channel``).
        decimals: Digits the series' values are rounded to.
        rollup: Keep the down-sampled copy (charts cost the points they return).
    """

    value_column: str
    per_channel: bool = False
    decimals: int = 7
    rollup: bool = True

    def __post_init__(self) -> None:
        _check_snake("time series value_column", self.value_column)
        if not 0 <= self.decimals <= 15:
            raise ValueError(f"time series decimals must be 0 to 15, got {self.decimals}")

    @property
    def index_columns(self) -> tuple[str, ...]:
        return ("experiment", "pioreactor_unit", *(("channel",) if self.per_channel else ()), "timestamp")


class TableDescriptor(_Record):
    """A leader-database table a plugin needs (``register_storage``).

    Attributes:
        table: snake_case table name.
        create_sql: ``CREATE TABLE IF NOT EXISTS …`` (and indexes), idempotent.
        version: Bumped when ``migrations`` grows.
        migrations: SQL statements applied in order when upgrading from an older version.
        time_series: A :class:`TimeSeries` when the rows are readings over time (index, rollup,
            named series and its API entries follow from it).
    """

    table: str
    create_sql: str
    version: int = 1
    migrations: tuple[str, ...] = ()
    source: str = "app"
    time_series: TimeSeries | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        _check_snake("table", self.table)
        if "create" not in self.create_sql.lower():
            raise ValueError(f"table {self.table!r}: create_sql must create the table")
        if self.time_series is not None and not isinstance(self.time_series, TimeSeries):
            raise ValueError(f"table {self.table!r}: time_series must be a TimeSeries, got {self.time_series!r}")

    @property
    def key(self) -> str:
        return self.table


class TopicMapping(_Record):
    """Stores messages of an MQTT topic into a leader table (``register_storage``).

    Attributes:
        topic: Pattern relative to the broker root, with MQTT wildcards, e.g.
            ``"pioreactor/+/+/ph_reading/ph"``.
        table: Destination table (declared by some plugin).
        parse: Callable (or ``"module:function"``) ``parse(topic, payload: bytes)
            -> dict | list[dict] | None`` returning the row(s) to insert; ``None`` skips.
    """

    topic: str
    table: str
    parse: Any = field(repr=False)
    source: str = "app"

    def __post_init__(self) -> None:
        _check_snake(f"topic mapping {self.topic!r} table", self.table)
        if not self.topic or self.topic.startswith("/"):
            raise ValueError(f"topic mapping topic must be a relative MQTT topic, got {self.topic!r}")
        if self.parse is None:
            raise ValueError(f"topic mapping {self.topic!r}: parse is required")

    @property
    def key(self) -> str:
        return f"{self.topic}->{self.table}"


class RouteDescriptor(_Record):
    """An extra Falcon route (``register_routes``).

    Attributes:
        path: URI template, must start with ``/api/`` or ``/unit_api/``.
        resource: Falcon resource instance or class (or ``"module:Class"``),
            instantiated without arguments when it is a class.
        leader_only: Mounted only on the leader.
        schemas: Optional OpenAPI description of the route's operations, keyed by
            HTTP method: ``{"POST": {"summary", "body", "query", "responses", "async"}}``,
            or ``"module:attr"`` naming such a mapping or a table of the plugin's routes
            keyed by ``(METHOD, uri template)`` (the route's own entries are used); see
            :mod:`reactorkit.api.openapi.schemas.common` (``reactorkit.plugin.openapi``).
            Request bodies are validated against ``body``. Routes without one get a
            generic description.
    """

    path: str
    resource: Any = field(repr=False)
    leader_only: bool = False
    source: str = "app"
    schemas: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not (self.path.startswith("/api/") or self.path.startswith("/unit_api/")):
            raise ValueError(f"route path must start with /api/ or /unit_api/, got {self.path!r}")

    @property
    def key(self) -> str:
        return self.path


class CliCommandDescriptor(_Record):
    """A ``pio`` subcommand (``register_cli_commands``).

    Attributes:
        name: Command name, e.g. ``"calibrations"``.
        help: One line for ``pio --help``.
        command: A ``click.Command`` (or ``"module:attr"``), loaded only when invoked.
    """

    name: str
    help: str = ""
    command: Any = field(repr=False)
    source: str = "app"

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z][a-z0-9-]*", self.name or ""):
            raise ValueError(f"CLI command name must be lowercase with dashes, got {self.name!r}")

    @property
    def key(self) -> str:
        return self.name


def _unique(kind: str, keys: Any) -> None:
    seen: set[str] = set()
    for key in keys:
        if key in seen:
            raise ValueError(f"{kind}: {key!r} is given twice")
        seen.add(key)


def _check_types(kind: str, values: tuple, cls: type) -> None:
    for value in values:
        if not isinstance(value, cls):
            raise ValueError(f"{kind}: expected {cls.__name__}, got {type(value).__name__}")


class SettingsCollection(_Record):
    """A collection of per-unit settings the UI edits outside any job (``register_settings_collections``),
    e.g. ``bioreactor`` (the vial's volumes), as ``/unit_api/settings/descriptors`` lists it.

    Attributes:
        key: snake_case key, e.g. ``"bioreactor"``.
        display_name: Title in the UI.
        published_settings: The settings (type, unit, editability, bounds).
        display: Shown in the UI.
        description, subtext: As for a job.
        defaults: Optional ``defaults(config) -> {setting key: default}`` (or ``"module:function"``),
            e.g. the bioreactor's initial volume from ``[bioreactor]``; settings it does not name
            default to None.
    """

    key: str
    display_name: str
    published_settings: tuple[PublishedSetting, ...] = ()
    display: bool = True
    description: str | None = None
    subtext: str | None = None
    source: str = "app"
    defaults: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        _check_snake("settings collection key", self.key)
        _check_types(f"settings collection {self.key!r} published_settings", self.published_settings,
                     PublishedSetting)
        _unique(f"settings collection {self.key!r} published_settings", (s.key for s in self.published_settings))


class ConfigSection(_Record):
    """Default ``config.ini`` values a plugin ships (``register_config_sections``), as Pioreactor
    plugins ship ``additional_config.ini``. They are merged into the unit's ``config.ini``
    (:func:`reactorkit.core.config_defaults.merge_config_sections`) without overwriting a value
    the user has set: only missing sections and keys are added.

    Attributes:
        section: The section name, e.g. ``"ph_reading.config"``.
        values: ``{key: value}`` (values are written as text).
        comment: One line written above the keys of a new section.
    """

    section: str
    values: Any = field(default_factory=dict)
    comment: str = ""
    source: str = "app"

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_.\-]+", self.section or ""):
            raise ValueError(f"config section name must be letters, digits, '_', '.', '-', got {self.section!r}")
        if not isinstance(self.values, dict) or not all(isinstance(k, str) and k for k in self.values):
            raise ValueError(f"config section {self.section!r}: values must be a dict with string keys")

    @property
    def key(self) -> str:
        return self.section


DESCRIPTOR_TYPES: dict[str, type] = {
    "jobs": JobDescriptor,
    "automations": AutomationDescriptor,
    "charts": ChartDescriptor,
    "datasets": DatasetDescriptor,
    "calibration_protocols": CalibrationProtocolDescriptor,
    "storage": (TableDescriptor, TopicMapping),  # type: ignore[dict-item]
    "routes": RouteDescriptor,
    "cli_commands": CliCommandDescriptor,
    "settings_collections": SettingsCollection,
    "config_sections": ConfigSection,
}

Loader = Callable[[], Any]
Kind = Literal["jobs", "automations", "charts", "datasets", "calibration_protocols", "storage", "routes", "cli_commands",
               "settings_collections", "config_sections"]
