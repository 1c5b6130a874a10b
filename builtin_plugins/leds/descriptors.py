"""Descriptors of the LEDs plugin: plain data, no hardware imports."""

from reactorkit.plugin import (
    automation_host_job,
    AutomationDescriptor,
    AutomationField,
    CliOption,
    DatasetDescriptor,
    JobDescriptor,
    PublishedSetting,
    SettingsCollection,
    TopicMapping,
    automation_host_records,
    unit_table,
)

_PKG = "reactorkit.builtin_plugins.leds"

LED_INTENSITY = JobDescriptor(
    job_name="led_intensity",
    display_name="LED intensity",
    description="Set the intensity (%) of LED channels A–D, e.g. pio run led_intensity --A 50 --B 0. "
                "Publishes leds/intensity and one led_change_events message per changed channel.",
    display=False,
    cli_options=(
        CliOption(name="source_of_event", type="string", help="Who asked for the change (default CLI)."),
        CliOption(name="no_log", type="flag", help="Do not log each change."),
    ),
    runner=f"{_PKG}.intensity:run_led_intensity",
    accepts_extra_options=True,
)

LED_AUTOMATION = automation_host_job(
    "led",
    stop_priority=40,
    display_name="LED automation",
    description="Start an automation that controls the LEDs, e.g. a light/dark cycle for photosynthetic cultures.",
    settings=(
        PublishedSetting(key="light_active", type="boolean", label="Lights on", editable=False, display=False),
        # and every field of the LED automations (their AutomationField declarations, a plugin's too)
    ),
    automation_help="Which LED automation to run, e.g. light_dark_cycle or silent.",
    runner=f"{_PKG}.host:run_led_automation",
)

AUTOMATIONS = (
    AutomationDescriptor(
        automation_type="led",
        automation_name="silent",
        display_name="Silent",
        description="Nothing happens: the LEDs are left as they are.",
        automation_class=f"{_PKG}.automations:Silent",
    ),
    AutomationDescriptor(
        automation_type="led",
        automation_name="light_dark_cycle",
        display_name="Light/Dark cycle",
        description="Alternate light and dark phases on LED channels D and C, starting lit. "
                    "The LEDs are turned off when the automation stops.",
        fields=(
            AutomationField(key="light_intensity", label="Light intensity", unit="%", default=50, min=0, max=100,
                            description="light_dark_cycle: intensity of channels D and C when lit."),
            AutomationField(key="light_duration_minutes", label="Light duration", unit="min", default=960, min=0),
            AutomationField(key="dark_duration_minutes", label="Dark duration", unit="min", default=480, min=0),
        ),
        automation_class=f"{_PKG}.automations:LightDarkCycle",
    ),
)

_LED_AUTOMATION_DATASETS, _LED_AUTOMATION_STORAGE = automation_host_records(
    "led", "LED", "What LED automations did (phase changes …), with messages and data.")

DATASETS = (
    DatasetDescriptor(
        dataset_name="led_change_events",
        display_name="LED change events",
        description="Every change of an LED channel's intensity, with who made it.",
        table="led_change_events",
        column_units={"intensity": "%"},
        column_descriptions={"channel": "LED channel A–D.", "source_of_event": "CLI, UI, an automation …"},
    ),
    *_LED_AUTOMATION_DATASETS,
)


def parse_led_change_event(topic: str, payload: bytes):
    """``{channel, intensity, source_of_event, timestamp}`` → a ``led_change_events`` row (intensity in %).

    Raises:
        ValueError / KeyError: not an LED change event.
    """
    import json

    from reactorkit.plugin import row_from_topic

    data = json.loads(payload)
    return row_from_topic(topic, timestamp=data["timestamp"], channel=str(data["channel"]),
                          intensity=float(data["intensity"]), source_of_event=data.get("source_of_event"))


STORAGE = (
    unit_table("led_change_events", "timestamp TEXT NOT NULL, channel TEXT NOT NULL, intensity REAL NOT NULL, "
                                    "source_of_event TEXT"),
    TopicMapping(topic="pioreactor/+/+/led_change_events", table="led_change_events",
                 parse=f"{_PKG}.descriptors:parse_led_change_event"),
    *_LED_AUTOMATION_STORAGE,
)


SETTINGS_COLLECTIONS = (
    SettingsCollection(key="leds", display_name="led intensity", display=False, published_settings=(
        PublishedSetting(key="intensity", type="string", label="LED intensity", editable=False),)),
    SettingsCollection(key="pwms", display_name="PWMs", display=False, published_settings=(
        PublishedSetting(key="dc", type="string", label="PWM intensity", editable=False),)),
)
