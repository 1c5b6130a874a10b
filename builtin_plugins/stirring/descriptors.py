"""Descriptors of the stirring plugin: plain data, no hardware imports."""

from reactorkit.plugin import (
    ChartDescriptor,
    CliOption,
    DatasetDescriptor,
    JobDescriptor,
    PublishedSetting,
    TableDescriptor,
    TopicMapping,
)

STIRRING = JobDescriptor(
    job_name="stirring",
    display_name="Stirring",
    description="Stirs the culture at a target RPM, measured by the tachometer and held by a PID loop.",
    published_settings=(
        PublishedSetting(key="target_rpm", type="numeric", unit="RPM", label="Target RPM", editable=True, min=0, max=5000),
        PublishedSetting(key="measured_rpm", type="json", unit="RPM", label="Measured RPM", editable=False, display=False),
        PublishedSetting(key="duty_cycle", type="numeric", unit="%", label="Duty cycle", editable=True, display=False, min=0, max=100),
        PublishedSetting(key="enable_dodging_od", type="boolean", label="Dodge OD readings", editable=True, display=False,
                         description="Slow or stop the stirrer around each OD reading (needs od_reading running)."),
        PublishedSetting(key="currently_dodging_od", type="boolean", label="Dodging OD readings", editable=False, display=False),
        PublishedSetting(key="target_rpm_during_od_reading", type="numeric", unit="RPM", label="Target RPM during OD readings",
                         editable=True, display=False, min=0, max=5000),
        PublishedSetting(key="target_rpm_outside_od_reading", type="numeric", unit="RPM", label="Target RPM between OD readings",
                         editable=True, display=False, min=0, max=5000),
    ),
    cli_options=(
        CliOption(name="target_rpm", type="float", help="Target stirring speed in RPM (default [stirring.config] initial_target_rpm, 500)."),
        CliOption(name="use_rpm", type="boolean", help="Hold RPM with the tachometer (false: fixed duty cycle)."),
        CliOption(name="duty_cycle", type="float", help="Starting duty cycle in % (the fixed one when not using RPM)."),
        CliOption(name="enable_dodging_od", type="boolean",
                  help="Slow/stop stirring around each OD reading (default [stirring.config] enable_dodging_od, false)."),
    ),
    job_class="reactorkit.builtin_plugins.stirring.job:Stirring",
)

CHARTS = (
    ChartDescriptor(
        chart_key="stirring_rates",
        data_source="stirring_rates",
        data_source_column="measured_rpm",
        title="Stirring rate",
        y_axis_label="Stirring rate (RPM)",
        mqtt_topic="stirring/measured_rpm",
        payload_key="measured_rpm",
        fixed_decimals=0,
        lookback=12,
    ),
)

DATASETS = (
    DatasetDescriptor(
        dataset_name="stirring_rates",
        display_name="Stirring rates",
        description="Measured stirring speed of each unit over time.",
        table="stirring_rates",
        column_units={"measured_rpm": "RPM"},
    ),
)


def parse_measured_rpm(topic: str, payload: bytes):
    """``{measured_rpm, timestamp}`` → a ``stirring_rates`` row (unit/experiment from the topic)."""
    import json

    from reactorkit.plugin import row_from_topic

    data = json.loads(payload)
    return row_from_topic(topic, timestamp=data["timestamp"], measured_rpm=float(data["measured_rpm"]))


STORAGE = (
    TableDescriptor(
        table="stirring_rates",
        create_sql="""
            CREATE TABLE IF NOT EXISTS stirring_rates (
                experiment TEXT NOT NULL,
                pioreactor_unit TEXT NOT NULL,
                timestamp TEXT NOT NULL,
                measured_rpm REAL NOT NULL
            );
            CREATE INDEX IF NOT EXISTS stirring_rates_ix ON stirring_rates (experiment, pioreactor_unit, timestamp);
        """,
    ),
    TopicMapping(topic="pioreactor/+/+/stirring/measured_rpm", table="stirring_rates", parse=parse_measured_rpm),
)
