"""Descriptors of the od_reading plugin: plain data, no hardware imports."""

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

OD_READING = JobDescriptor(
    job_name="od_reading",
    display_name="Optical density",
    description="Collect optical density measurements of the culture over time.",
    published_settings=(
        PublishedSetting(key="interval", type="numeric", unit="s", label="Interval between readings", editable=True,
                         display=False, min=0.5),
        PublishedSetting(key="ir_led_intensity", type="numeric", unit="%", label="IR LED intensity", editable=True,
                         display=False, min=0, max=100),
        PublishedSetting(key="first_od_obs_time", type="numeric", unit="s", label="First reading (epoch s)",
                         display=False),
        PublishedSetting(key="ods", type="json", label="Latest readings", display=False),
        PublishedSetting(key="relative_intensity_of_ir_led", type="json", label="Relative IR LED intensity",
                         display=False),
    ),
    cli_options=(
        CliOption(name="interval", type="float",
                  help="Seconds between readings (default 1 / [od_reading.config] samples_per_second = 5 s)."),
        CliOption(name="ir_led_intensity", type="string",
                  help="IR LED intensity in % (1-100) or auto (default [od_reading.config] ir_led_intensity, 80)."),
    ),
    job_class="reactorkit.builtin_plugins.od_reading.job:ODReader",
)

_LOOKBACK_RAW = "parseInt(config['ui.overview.settings']['raw_od_lookback_minutes'] || 240) / 60"

CHARTS = (
    ChartDescriptor(
        chart_key="optical_density",
        data_source="od_readings",
        data_source_column="od_reading",
        title="Optical density",
        y_axis_label="Reading",
        mqtt_topic=tuple(f"od_reading/od{n}" for n in (1, 2, 3, 4)),
        payload_key="od",
        fixed_decimals=3,
        lookback=_LOOKBACK_RAW,
        interpolation="stepAfter",
    ),
    ChartDescriptor(
        chart_key="raw_optical_density",
        data_source="raw_od_readings",
        data_source_column="od_reading",
        title="Raw optical density",
        y_axis_label="Voltage",
        mqtt_topic=tuple(f"od_reading/raw_od{n}" for n in (1, 2, 3, 4)),
        payload_key="od",
        fixed_decimals=3,
        lookback=_LOOKBACK_RAW,
    ),
    ChartDescriptor(
        chart_key="fused_optical_density",
        data_source="od_readings_fused",
        data_source_column="od_reading",
        title="Fused optical density",
        y_axis_label="OD600",
        mqtt_topic="od_reading/od_fused",
        payload_key="od_fused",
        fixed_decimals=3,
        lookback=_LOOKBACK_RAW,
    ),
)

DATASETS = (
    DatasetDescriptor(
        dataset_name="od_readings",
        display_name="Optical density",
        description="This dataset includes a time series of readings provided by the sensors (transformed via a "
        "calibration curve, if available), the inputs for growth calculations and normalized optical density.",
        table="od_readings",
        column_descriptions={"od_reading": "OD600 if the channel is calibrated, else the REF-normalised signal",
                             "angle": "photodiode angle (degrees)", "channel": "photodiode channel (1-4)"},
        column_units={"angle": "degrees"},
    ),
    DatasetDescriptor(
        dataset_name="raw_od_readings",
        display_name="Raw optical density",
        description="Photodiode signals before the calibration was applied (recorded only for calibrated channels).",
        table="raw_od_readings",
        column_units={"od_reading": "V"},
    ),
    DatasetDescriptor(
        dataset_name="od_readings_fused",
        display_name="Fused optical density",
        description="OD600 estimated from several photodiode angles by the active od_fused estimator.",
        table="od_readings_fused",
        column_units={"od_reading": "OD600"},
    ),
    DatasetDescriptor(
        dataset_name="ir_led_intensities",
        display_name="IR LED intensity",
        description="Output of the IR LED relative to the start of the experiment, as seen by the REF photodiode.",
        table="ir_led_intensities",
    ),
    DatasetDescriptor(
        dataset_name="od_blanks",
        display_name="OD blanks",
        description="Blank (media only) readings per photodiode channel.",
        table="od_blanks",
    ),
)


def _data_table(name: str, columns: str, index: str = "experiment, pioreactor_unit, timestamp",
                time_series: TimeSeries | None = None) -> TableDescriptor:
    return unit_table(name, f"timestamp TEXT NOT NULL, {columns}", index=index, time_series=time_series)


def _json(payload: bytes):
    import orjson  # the ingestion parses every reading: a few times quicker than json (ValueError alike)

    data = orjson.loads(payload)
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")
    return data


def _channel_of(topic: str) -> int:
    """``…/od_reading/od2`` or ``…/raw_od2`` → 2."""
    digits = topic.rsplit("/", 1)[-1].lstrip("abcdefghijklmnopqrstuvwxyz_")
    channel = int(digits)
    if channel not in (1, 2, 3, 4):
        raise ValueError(f"channel must be 1-4, got {channel}")
    return channel


def parse_od_reading(topic: str, payload: bytes):
    """``od_reading/od{n}`` ``{od, angle, channel, timestamp, …}`` → an ``od_readings`` row."""
    from reactorkit.plugin import row_from_topic

    data = _json(payload)
    return row_from_topic(topic, timestamp=data["timestamp"], od_reading=float(data["od"]),
                          angle=int(data["angle"]), channel=int(data.get("channel") or _channel_of(topic)))


def parse_raw_od_reading(topic: str, payload: bytes):
    """``od_reading/raw_od{n}`` → a ``raw_od_readings`` row (``od_reading`` in volts)."""
    from reactorkit.plugin import row_from_topic

    data = _json(payload)
    return row_from_topic(topic, timestamp=data["timestamp"], od_reading=float(data["od"]),
                          channel=int(data.get("channel") or _channel_of(topic)))


def parse_od_fused(topic: str, payload: bytes):
    """``od_reading/od_fused`` ``{od_fused, timestamp}`` → an ``od_readings_fused`` row."""
    from reactorkit.plugin import row_from_topic

    data = _json(payload)
    return row_from_topic(topic, timestamp=data["timestamp"], od_reading=float(data["od_fused"]))


def parse_relative_intensity(topic: str, payload: bytes):
    """``od_reading/relative_intensity_of_ir_led`` → an ``ir_led_intensities`` row."""
    from reactorkit.plugin import row_from_topic

    data = _json(payload)
    return row_from_topic(topic, timestamp=data["timestamp"],
                          relative_intensity=float(data["relative_intensity_of_ir_led"]))


def parse_od_blank(topic: str, payload: bytes):
    """``od_blank/mean/{channel}`` → an ``od_blanks`` row.

    The payload is ``{od_reading | od | od_reading_v, angle?, timestamp?}`` or a bare
    number; a missing timestamp is the receive time on the cluster clock.
    """
    import json

    from reactorkit.plugin import get_clock
    from reactorkit.plugin import row_from_topic

    data = json.loads(payload)
    if not isinstance(data, dict):
        data = {"od_reading": data}
    value = next((data[k] for k in ("od_reading", "od", "od_reading_v") if k in data), None)
    if value is None:
        raise ValueError("od_blank payload has no od_reading")
    angle = data.get("angle")
    return row_from_topic(topic, timestamp=data.get("timestamp") or get_clock().utc_iso(),
                          channel=str(topic.rsplit("/", 1)[-1]), angle=None if angle is None else int(angle),
                          od_reading=float(value))


STORAGE = (
    _data_table("od_readings", "od_reading REAL NOT NULL,\n                angle INTEGER,\n"
                "                channel INTEGER NOT NULL CHECK (channel BETWEEN 1 AND 4)",
                "experiment, pioreactor_unit, channel, timestamp",
                TimeSeries(value_column="od_reading", per_channel=True, decimals=7)),
    _data_table("raw_od_readings", "od_reading REAL NOT NULL,\n"
                "                channel INTEGER NOT NULL CHECK (channel BETWEEN 1 AND 4)",
                "experiment, pioreactor_unit, channel, timestamp",
                TimeSeries(value_column="od_reading", per_channel=True, decimals=7)),
    _data_table("od_readings_fused", "od_reading REAL NOT NULL",
                time_series=TimeSeries(value_column="od_reading", decimals=7)),
    _data_table("ir_led_intensities", "relative_intensity REAL NOT NULL"),
    _data_table("od_blanks", "channel TEXT NOT NULL,\n                angle INTEGER,\n                od_reading REAL NOT NULL",
                "experiment, pioreactor_unit, channel, timestamp"),
    *(TopicMapping(topic=f"pioreactor/+/+/od_reading/od{n}", table="od_readings", parse=parse_od_reading)
      for n in (1, 2, 3, 4)),
    *(TopicMapping(topic=f"pioreactor/+/+/od_reading/raw_od{n}", table="raw_od_readings", parse=parse_raw_od_reading)
      for n in (1, 2, 3, 4)),
    TopicMapping(topic="pioreactor/+/+/od_reading/od_fused", table="od_readings_fused", parse=parse_od_fused),
    TopicMapping(topic="pioreactor/+/+/od_reading/relative_intensity_of_ir_led", table="ir_led_intensities",
                 parse=parse_relative_intensity),
    TopicMapping(topic="pioreactor/+/+/od_blank/mean/+", table="od_blanks", parse=parse_od_blank),
)
