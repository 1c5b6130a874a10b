"""Descriptors of the temperature plugin: plain data, no hardware imports."""

from reactorkit.plugin import (
    AutomationDescriptor,
    AutomationField,
    ChartDescriptor,
    CliOption,
    DatasetDescriptor,
    JobDescriptor,
    PublishedSetting,
    TableDescriptor,
    TimeSeries,
    TopicMapping,
)

_PKG = "reactorkit.builtin_plugins.temperature"
CELSIUS = "℃"

TEMPERATURE_AUTOMATION = JobDescriptor(
    job_name="temperature_automation",
    stop_priority=20,  # the heater off before the automations that depend on the vial
    display_name="Temperature automation",
    description="Start an automation to control the temperature of the vial (thermostat) or only record it.",
    subtext="automation_name",
    published_settings=(
        PublishedSetting(key="automation_name", type="string", label="Automation", editable=False),
        PublishedSetting(key="temperature", type="json", unit=CELSIUS, label="Temperature", editable=False,
                         description="Latest vial temperature {temperature, timestamp}."),
        PublishedSetting(key="heater_duty_cycle", type="numeric", unit="%", label="Heater duty cycle",
                         editable=False, display=False),
        PublishedSetting(key="latest_event", type="json", label="Latest event", editable=False, display=False),
        # and every field of the temperature automations (their AutomationField declarations, a plugin's too)
    ),
    cli_options=(
        CliOption(name="automation_name", type="string", required=True,
                  help="Which temperature automation to run, e.g. thermostat or only_record_temperature."),
    ),
    runner=f"{_PKG}.host:run_temperature_automation",
    accepts_extra_options=True,
)

AUTOMATIONS = (
    AutomationDescriptor(
        automation_type="temperature",
        automation_name="only_record_temperature",
        display_name="Only record temperature",
        description="Apply no heating, only record the temperature.",
        automation_class=f"{_PKG}.automations:OnlyRecordTemperature",
    ),
    AutomationDescriptor(
        automation_type="temperature",
        automation_name="thermostat",
        display_name="Thermostat",
        description="Vary the amount of applied heating to keep the culture near a target temperature, "
                    "using a control-loop.",
        fields=(
            AutomationField(key="target_temperature", label="Target temperature", unit=CELSIUS, default=30, min=0,
                            max=80, description="Thermostat only: the temperature the heater holds."),
        ),
        automation_class=f"{_PKG}.automations:Thermostat",
    ),
)

CHARTS = (
    ChartDescriptor(
        chart_key="temperature",
        data_source="temperature_readings",
        data_source_column="temperature_c",
        title="Temperature of vial",
        y_axis_label="Temperature, ℃",
        mqtt_topic="temperature_automation/temperature",
        payload_key="temperature",
        fixed_decimals=2,
        lookback=100000,
        y_axis_domain=(26.0, 38.0),
        interpolation="stepAfter",
    ),
)

DATASETS = (
    DatasetDescriptor(
        dataset_name="temperature_readings",
        display_name="Temperature readings",
        description="Vial temperature of each unit over time, recorded by the temperature automations.",
        table="temperature_readings",
        column_units={"temperature_c": CELSIUS},
        column_descriptions={"temperature_c": "Inferred vial temperature."},
    ),
    DatasetDescriptor(
        dataset_name="temperature_automation_settings",
        display_name="Temperature automation settings",
        description="One row per temperature automation run: its name, start and end times and its settings as JSON "
                    "(as they were when it ended, or latest while it runs).",
        query=("SELECT experiment, pioreactor_unit, automation_name, started_at, MAX(ended_at) AS ended_at, "
               "json_from_base64(settings) AS settings FROM temperature_automation_settings "
               "GROUP BY experiment, pioreactor_unit, automation_name, started_at"),  # runs are stored at start and end
        column_descriptions={"settings": "The automation's settings, a JSON object."},
        default_order_by="started_at",
        timestamp_columns=("started_at", "ended_at"),
    ),
    DatasetDescriptor(
        dataset_name="temperature_automation_events",
        display_name="Temperature automation events",
        description="What temperature automations did (heater updates, safety cut-offs), with messages and data.",
        table="temperature_automation_events",
    ),
)


def parse_temperature(topic: str, payload: bytes):
    """``{temperature, timestamp}`` → a ``temperature_readings`` row (``temperature_c``, °C).

    Raises:
        ValueError / KeyError: not a temperature payload.
    """
    import json

    from reactorkit.plugin import row_from_topic

    data = json.loads(payload)
    return row_from_topic(topic, timestamp=data["timestamp"], temperature_c=float(data["temperature"]))


def _table(name: str, columns: str, order: str = "timestamp", time_series: TimeSeries | None = None) -> TableDescriptor:
    return TableDescriptor(
        table=name,
        time_series=time_series,
        create_sql=f"""
            CREATE TABLE IF NOT EXISTS {name} (
                experiment TEXT NOT NULL REFERENCES experiments (experiment) ON DELETE CASCADE,
                pioreactor_unit TEXT NOT NULL,
                {columns}
            );
            CREATE INDEX IF NOT EXISTS {name}_ix ON {name} (experiment, pioreactor_unit, {order});
        """,
    )


STORAGE = (
    _table("temperature_readings", "timestamp TEXT NOT NULL, temperature_c REAL NOT NULL",
           time_series=TimeSeries(value_column="temperature_c", decimals=2)),
    _table("temperature_automation_settings", "started_at TEXT NOT NULL, ended_at TEXT, automation_name TEXT NOT NULL, "
                                              "settings BLOB NOT NULL", order="started_at"),
    _table("temperature_automation_events", "timestamp TEXT NOT NULL, event_name TEXT NOT NULL, message TEXT, data TEXT"),
    TopicMapping(topic="pioreactor/+/+/temperature_automation/temperature", table="temperature_readings",
                 parse=f"{_PKG}.descriptors:parse_temperature"),
    TopicMapping(topic="pioreactor/+/+/temperature_automation/temperature_automation_settings",
                 table="temperature_automation_settings",
                 parse="reactorkit.plugin:automation_settings_row"),
    TopicMapping(topic="pioreactor/+/+/temperature_automation/latest_event", table="temperature_automation_events",
                 parse="reactorkit.plugin:automation_event_row"),
)
