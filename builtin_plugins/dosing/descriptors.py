"""Descriptors of the dosing plugin: plain data, nothing heavy imported."""

from reactorkit.plugin import (
    automation_host_job,
    AutomationDescriptor,
    AutomationField,
    ChartDescriptor,
    CliOption,
    DatasetDescriptor,
    JobDescriptor,
    PublishedSetting,
    RouteDescriptor,
    SettingsCollection,
    TopicMapping,
    automation_host_records,
    unit_table,
)

_PKG = "reactorkit.builtin_plugins.dosing"


def _pump_job(action: str, display_name: str, liquid: str, device: str) -> JobDescriptor:
    return JobDescriptor(
        job_name=action,
        display_name=display_name,
        description=(
            f"Runs the {liquid} pump for a volume (needs an active {device} calibration), a duration, or "
            f"continuously until stopped; publishes dosing events and updates the vial bookkeeping."
        ),
        display=False,
        cli_options=(
            CliOption(name="ml", type="float", help=f"Volume of {liquid} to move, in mL (needs a {device} calibration)."),
            CliOption(name="duration", type="float", help="Run the pump for this many seconds."),
            CliOption(name="continuously", type="flag", help="Run until stopped (pio kill, or $state/set disconnected)."),
            CliOption(name="source_of_event", type="string", default="CLI",
                      help="Recorded with each dosing event (CLI, UI, …)."),
        ),
        runner=f"{_PKG}.pumps:run_{action}",
        check_options=f"{_PKG}.limits:check_pump_options",  # [pump_limits] refused at the API, before queueing
        stop_priority=10,  # pumps stop first
    )


ADD_MEDIA = _pump_job("add_media", "Add media", "media", "media_pump")
ADD_ALT_MEDIA = _pump_job("add_alt_media", "Add alternative media", "alt media", "alt_media_pump")
REMOVE_WASTE = _pump_job("remove_waste", "Remove waste", "waste", "waste_pump")

DOSING_AUTOMATION = automation_host_job(
    "dosing",
    stop_priority=30,
    display_name="Dosing automation",
    description="Doses media, alternative media and waste automatically, by the chosen automation "
                "(turbidostat, chemostat, PID morbidostat, fed batch …).",
    settings=(
        PublishedSetting(key="duration", type="numeric", unit="min", label="Time between dosing", editable=True,
                         display=False, min=0),
        # and every field of the dosing automations (their AutomationField declarations, a plugin's too)
    ),
    automation_help="Which dosing automation: silent, turbidostat, chemostat, pid_morbidostat, fed_batch, or a plugin's.",
    runner=f"{_PKG}.runners:run_dosing_automation",
)

JOBS = (ADD_MEDIA, ADD_ALT_MEDIA, REMOVE_WASTE, DOSING_AUTOMATION)

_EXCHANGE = AutomationField(key="exchange_volume_ml", label="Exchange volume", unit="mL", default=1.0, min=0)

AUTOMATIONS = (
    AutomationDescriptor(
        automation_type="dosing",
        automation_name="silent",
        display_name="Silent",
        description="Never doses. The vial bookkeeping stays available.",
        automation_class=f"{_PKG}.automations.silent:Silent",
    ),
    AutomationDescriptor(
        automation_type="dosing",
        automation_name="turbidostat",
        display_name="Turbidostat",
        description="Exchanges media whenever the biomass signal reaches the target, holding the culture at a "
                    "constant density. Waits 30 s after each dilution.",
        fields=(
            AutomationField(key="target_biomass", label="Target biomass", default=None, min=0),
            _EXCHANGE,
            AutomationField(key="biomass_signal", label="Biomass signal", type="select", default="auto",
                            options=("auto", "normalized_od", "od", "od_fused"), editable=False),
        ),
        automation_class=f"{_PKG}.automations.turbidostat:Turbidostat",
    ),
    AutomationDescriptor(
        automation_type="dosing",
        automation_name="chemostat",
        display_name="Chemostat",
        description="Exchanges a fixed volume every set number of minutes: a constant dilution rate "
                    "(exchange volume / vial volume × 60 / minutes, per hour).",
        fields=(
            AutomationField(key="exchange_volume_ml", label="Exchange volume", unit="mL", default=0.5, min=0),
            AutomationField(key="duration", label="Time between dosing", unit="min", default=20),
        ),
        automation_class=f"{_PKG}.automations.chemostat:Chemostat",
    ),
    AutomationDescriptor(
        automation_type="dosing",
        automation_name="pid_morbidostat",
        display_name="PID morbidostat",
        description="Holds the growth rate at a target by dosing an inhibitory alternative media, with the "
                    "alt-media share of each dose set by a PID controller.",
        fields=(
            AutomationField(key="target_growth_rate", label="Target growth rate", unit="h⁻¹", default=0.1, min=0),
            AutomationField(key="target_normalized_od", label="Target normalized OD", unit="AU", default=1.5, min=0),
            AutomationField(key="duration", label="Time between dosing", unit="min", default=60),
        ),
        automation_class=f"{_PKG}.automations.pid_morbidostat:PIDMorbidostat",
    ),
    AutomationDescriptor(
        automation_type="dosing",
        automation_name="fed_batch",
        display_name="Fed batch",
        description="Adds media at regular intervals without removing any; pauses before the vial overflows.",
        fields=(
            AutomationField(key="dosing_volume_ml", label="Dosing volume", unit="mL", default=0.1, min=0),
            AutomationField(key="duration", label="Time between dosing", unit="min", default=720),
        ),
        automation_class=f"{_PKG}.automations.fed_batch:FedBatch",
    ),
)

CHARTS = (
    ChartDescriptor(
        chart_key="fraction_of_volume_that_is_alternative_media",
        data_source="alt_media_fractions",
        data_source_column="alt_media_fraction",
        title="Fraction of volume that is alternative media",
        y_axis_label="Fraction",
        mqtt_topic="bioreactor/alt_media_fraction",
        fixed_decimals=3,
        down_sample=False,
        lookback=100000,
        y_transformation="(y) => y",
        y_axis_domain=(0.0, 0.05),
    ),
    ChartDescriptor(
        chart_key="liquid_volume",
        data_source="liquid_volumes",
        data_source_column="liquid_volume",
        title="Liquid volume",
        y_axis_label="Volume, mL",
        mqtt_topic="bioreactor/current_volume_ml",
        fixed_decimals=2,
        down_sample=False,
        lookback=100000,
    ),
)

_DOSING_AUTOMATION_DATASETS, _DOSING_AUTOMATION_STORAGE = automation_host_records(
    "dosing", "dosing", "What dosing automations did (or decided not to do), with messages and data.")

DATASETS = (
    DatasetDescriptor(
        dataset_name="dosing_events",
        display_name="Dosing events",
        description="Every pump action: media and alternative media added, waste removed, with its source.",
        table="dosing_events",
        column_descriptions={"event": "add_media, add_alt_media or remove_waste",
                             "volume_change_ml": "Volume moved (positive for waste too)",
                             "source_of_event": "Who started it (CLI, UI, dosing_automation:<name> …)"},
        column_units={"volume_change_ml": "mL"},
    ),
    DatasetDescriptor(
        dataset_name="liquid_volumes",
        display_name="Liquid volumes",
        description="The vial's bookkept liquid volume over time.",
        table="liquid_volumes",
        column_units={"liquid_volume": "mL"},
    ),
    DatasetDescriptor(
        dataset_name="alt_media_fractions",
        display_name="Alternative media fractions",
        description="Fraction of the vial's volume that is alternative media, over time.",
        table="alt_media_fractions",
    ),
    *_DOSING_AUTOMATION_DATASETS,
)


_P = f"{_PKG}.storage"

STORAGE = (
    unit_table("dosing_events", "timestamp TEXT NOT NULL, event TEXT NOT NULL, volume_change_ml REAL NOT NULL, "
                                "source_of_event TEXT"),
    unit_table("liquid_volumes", "timestamp TEXT NOT NULL, liquid_volume REAL NOT NULL"),
    unit_table("alt_media_fractions", "timestamp TEXT NOT NULL, alt_media_fraction REAL NOT NULL"),
    TopicMapping(topic="pioreactor/+/+/dosing_events", table="dosing_events", parse=f"{_P}:parse_dosing_event"),
    TopicMapping(topic="pioreactor/+/+/bioreactor/current_volume_ml", table="liquid_volumes",
                 parse=f"{_P}:parse_current_volume"),
    TopicMapping(topic="pioreactor/+/+/bioreactor/alt_media_fraction", table="alt_media_fractions",
                 parse=f"{_P}:parse_alt_media_fraction"),
    *_DOSING_AUTOMATION_STORAGE,
)

ROUTES = (
    RouteDescriptor(path="/unit_api/bioreactor/experiments/{experiment}", resource=f"{_PKG}.api:BioreactorValues",
                    schemas=f"{_PKG}.api:OPENAPI"),
    RouteDescriptor(path="/api/workers/{pioreactor_unit}/bioreactor/update/experiments/{experiment}",
                    resource=f"{_PKG}.api:BioreactorUpdateOnWorkers", leader_only=True, schemas=f"{_PKG}.api:OPENAPI"),
    RouteDescriptor(path="/api/experiments/{experiment}/media_rates", resource=f"{_PKG}.api:MediaRates",
                    leader_only=True, schemas=f"{_PKG}.api:MEDIA_RATES_SCHEMAS"),
)


def _volume(key: str, label: str, description: str, max_: float | None = None, unit: str | None = "mL"):
    return PublishedSetting(key=key, type="numeric", unit=unit, label=label, description=description, editable=True,
                            min=0.0, max=max_)


def bioreactor_defaults(config) -> dict:
    """Defaults of the ``bioreactor`` settings from ``[bioreactor]`` (a malformed value keeps the fallback)."""
    fallbacks = {"current_volume_ml": ("initial_volume_ml", 14.0),
                 "efflux_tube_volume_ml": ("efflux_tube_volume_ml", 14.0),
                 "alt_media_fraction": ("initial_alt_media_fraction", 0.0),
                 "cumulative_media_added_ml": ("initial_cumulative_media_added_ml", 0.0),
                 "cumulative_alt_media_added_ml": ("initial_cumulative_alt_media_added_ml", 0.0),
                 "cumulative_waste_removed_ml": ("initial_cumulative_waste_removed_ml", 0.0)}
    out = {}
    for key, (option, fallback) in fallbacks.items():
        try:
            out[key] = config.getfloat("bioreactor", option, fallback=fallback)
        except ValueError:
            out[key] = fallback
    return out


BIOREACTOR_SETTINGS = SettingsCollection(
    key="bioreactor",
    display_name="Bioreactor",
    description="Per-unit bioreactor settings.",
    published_settings=(
        _volume("current_volume_ml", "Current volume", "Current estimated liquid volume in the vial."),
        _volume("efflux_tube_volume_ml", "Efflux tube level",
                "Liquid volume equivalent to the height of the waste/efflux tube."),
        _volume("alt_media_fraction", "Alt media fraction", "Fraction of the current volume estimated to be alt media.",
                1.0, unit=None),
        _volume("cumulative_media_added_ml", "Media added", "Total media added in this experiment."),
        _volume("cumulative_alt_media_added_ml", "Alt media added", "Total alt media added in this experiment."),
        _volume("cumulative_waste_removed_ml", "Waste removed", "Total waste removed in this experiment."),
    ),
    defaults=bioreactor_defaults,
)
