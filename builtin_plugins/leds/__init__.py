"""LEDs: the led_intensity action and LED automations (light/dark cycle) (built-in plugin)."""

from reactorkit.plugin import hookimpl

from .descriptors import AUTOMATIONS, DATASETS, LED_AUTOMATION, LED_INTENSITY, SETTINGS_COLLECTIONS, STORAGE


@hookimpl
def register_jobs():
    yield LED_INTENSITY
    yield LED_AUTOMATION


@hookimpl
def register_automations():
    yield from AUTOMATIONS


@hookimpl
def register_datasets():
    yield from DATASETS


@hookimpl
def register_storage():
    yield from STORAGE


@hookimpl
def register_settings_collections():
    yield from SETTINGS_COLLECTIONS
