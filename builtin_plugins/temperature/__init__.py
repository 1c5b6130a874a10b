"""Temperature: thermostat and temperature recording automations (built-in plugin)."""

from reactorkit.plugin import hookimpl

from .descriptors import AUTOMATIONS, CHARTS, DATASETS, STORAGE, TEMPERATURE_AUTOMATION


@hookimpl
def register_jobs():
    yield TEMPERATURE_AUTOMATION


@hookimpl
def register_automations():
    yield from AUTOMATIONS


@hookimpl
def register_charts():
    yield from CHARTS


@hookimpl
def register_datasets():
    yield from DATASETS


@hookimpl
def register_storage():
    yield from STORAGE
