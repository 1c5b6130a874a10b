"""Descriptors of the growth_rate plugin: plain data, no numpy imports."""

from reactorkit.plugin import (
    ChartDescriptor,
    CliOption,
    DatasetDescriptor,
    JobDescriptor,
    PublishedSetting,
    TableDescriptor,
    TimeSeries,
    TopicMapping,
    unit_table,
)

GROWTH_RATE_CALCULATING = JobDescriptor(
    job_name="growth_rate_calculating",
    display_name="Growth rate",
    description="Transform optical density measurements into culture growth rate measurements. Start this after "
    "innoculation. Begins by sampling for a few minutes to gather a baseline.",
    published_settings=(
        PublishedSetting(key="growth_rate", type="json", unit="h⁻¹", label="Growth rate", display=False),
        PublishedSetting(key="od_filtered", type="json", label="Normalized OD", display=False),
        PublishedSetting(key="kalman_filter_outputs", type="json", label="Kalman filter outputs", display=False),
    ),
    cli_options=(
        CliOption(name="ignore_cache", type="flag",
                  help="Recompute the OD baselines of this experiment instead of reusing the cached ones."),
    ),
    job_class="reactorkit.builtin_plugins.growth_rate.job:GrowthRateCalculating",
)

CHARTS = (
    ChartDescriptor(
        chart_key="implied_growth_rate",
        data_source="growth_rates",
        title="Implied growth rate",
        y_axis_label="Growth rate, h⁻¹",
        fixed_decimals=2,
        mqtt_topic="growth_rate_calculating/growth_rate",
        lookback=100000,
        payload_key="growth_rate",
        y_transformation="(y) => y",
        y_axis_domain=(-0.02, 0.1),
    ),
    ChartDescriptor(
        chart_key="implied_daily_growth_rate",
        data_source="growth_rates",
        title="Implied daily growth rate",
        y_axis_label="Growth rate, d⁻¹",
        fixed_decimals=2,
        mqtt_topic="growth_rate_calculating/growth_rate",
        lookback=100000,
        payload_key="growth_rate",
        y_transformation="(y) => 24 * y",
        y_axis_domain=(-0.1, 1.0),
    ),
    ChartDescriptor(
        chart_key="normalized_optical_density",
        data_source="od_readings_filtered",
        data_source_column="normalized_od_reading",
        title="Normalized optical density",
        y_axis_label="Current OD / initial OD",
        fixed_decimals=3,
        mqtt_topic="growth_rate_calculating/od_filtered",
        payload_key="od_filtered",
        lookback="parseInt(config['ui.overview.settings']['filtered_od_lookback_minutes'] || 240) / 60",
        y_axis_domain=(0.98, 1.02),
        interpolation="stepAfter",
    ),
)

DATASETS = (
    DatasetDescriptor(
        dataset_name="growth_rates",
        display_name="Implied growth rate",
        description="The growth rate of each unit estimated from its optical density (h⁻¹).",
        table="growth_rates",
        column_descriptions={"rate": "instantaneous specific growth rate"},
        column_units={"rate": "h⁻¹"},
    ),
    DatasetDescriptor(
        dataset_name="od_readings_filtered",
        display_name="Normalized optical density",
        description="Optical density filtered by the growth-rate Kalman filter, relative to the baseline readings.",
        table="od_readings_filtered",
        column_descriptions={"normalized_od_reading": "filtered OD divided by the baseline OD"},
    ),
)


def _row(topic: str, payload: bytes, key: str, column: str):
    import json

    from reactorkit.plugin import row_from_topic

    data = json.loads(payload)
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")
    return row_from_topic(topic, timestamp=data["timestamp"], **{column: float(data[key])})


def parse_growth_rate(topic: str, payload: bytes):
    """``growth_rate_calculating/growth_rate`` ``{growth_rate, timestamp}`` → a ``growth_rates`` row."""
    return _row(topic, payload, "growth_rate", "rate")


def parse_od_filtered(topic: str, payload: bytes):
    """``growth_rate_calculating/od_filtered`` ``{od_filtered, timestamp}`` → an ``od_readings_filtered`` row."""
    return _row(topic, payload, "od_filtered", "normalized_od_reading")


def _table(name: str, column: str, decimals: int) -> TableDescriptor:
    return unit_table(name, f"timestamp TEXT NOT NULL, {column} REAL NOT NULL",
                      time_series=TimeSeries(value_column=column, decimals=decimals))


STORAGE = (
    _table("growth_rates", "rate", decimals=5),
    _table("od_readings_filtered", "normalized_od_reading", decimals=7),
    TopicMapping(topic="pioreactor/+/+/growth_rate_calculating/growth_rate", table="growth_rates",
                 parse=parse_growth_rate),
    TopicMapping(topic="pioreactor/+/+/growth_rate_calculating/od_filtered", table="od_readings_filtered",
                 parse=parse_od_filtered),
)
