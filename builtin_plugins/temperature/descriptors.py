"""Descriptors of the temperature plugin: plain data, no hardware imports."""

from reactorkit.plugin import (
    automation_host_job,
    AutomationDescriptor,
    AutomationField,
    ChartDescriptor,
    DatasetDescriptor,
    PublishedSetting,
    TimeSeries,
    TopicMapping,
    automation_host_records,
    unit_table,
)

_PKG = "reactorkit.builtin_plugins.temperature"
CELSIUS = "℃"

TEMPERATURE_AUTOMATION = automation_host_job(
    "temperature",
    stop_priority=20,  # the heater off before the automations that depend on the vial
    display_name="Temperature automation",
    description="Start an automation to control the temperature of the vial (thermostat) or only record it.",
    settings=(
        PublishedSetting(key="temperature", type="json", unit=CELSIUS, label="Temperature", editable=False,
                         description="Latest vial temperature {temperature, timestamp}."),
        PublishedSetting(key="heater_duty_cycle", type="numeric", unit="%", label="Heater duty cycle",
                         editable=False, display=False),
        # and every field of the temperature automations (their AutomationField declarations, a plugin's too)
    ),
    automation_help="Which temperature automation to run, e.g. thermostat or only_record_temperature.",
    runner=f"{_PKG}.host:run_temperature_automation",
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

_TEMPERATURE_AUTOMATION_DATASETS, _TEMPERATURE_AUTOMATION_STORAGE = automation_host_records(
    "temperature", "temperature",
    "What temperature automations did (heater updates, safety cut-offs), with messages and data.")

DATASETS = (
    DatasetDescriptor(
        dataset_name="temperature_readings",
        display_name="Temperature readings",
        description="Vial temperature of each unit over time, recorded by the temperature automations.",
        table="temperature_readings",
        column_units={"temperature_c": CELSIUS},
        column_descriptions={"temperature_c": "Inferred vial temperature."},
    ),
    *_TEMPERATURE_AUTOMATION_DATASETS,
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


STORAGE = (
    unit_table("temperature_readings", "timestamp TEXT NOT NULL, temperature_c REAL NOT NULL",
               time_series=TimeSeries(value_column="temperature_c", decimals=2)),
    TopicMapping(topic="pioreactor/+/+/temperature_automation/temperature", table="temperature_readings",
                 parse=f"{_PKG}.descriptors:parse_temperature"),
    *_TEMPERATURE_AUTOMATION_STORAGE,
)
