"""Dosing: pumps (add_media, add_alt_media, remove_waste), vial bookkeeping and dosing automations (built-in plugin)."""

from reactorkit.plugin import hookimpl

from .descriptors import AUTOMATIONS, BIOREACTOR_SETTINGS, CHARTS, DATASETS, JOBS, ROUTES, STORAGE


@hookimpl
def register_jobs():
    yield from JOBS


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


@hookimpl
def register_routes():
    yield from ROUTES


@hookimpl
def register_settings_collections():
    yield BIOREACTOR_SETTINGS


@hookimpl
def register_calibration_protocols():
    from .calibration_protocols import protocol_descriptors

    yield from protocol_descriptors()
