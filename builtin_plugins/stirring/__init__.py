"""Stirring: holds the stir bar at ``target_rpm`` (built-in plugin)."""

from reactorkit.plugin import hookimpl

from .descriptors import CHARTS, DATASETS, STIRRING, STORAGE


@hookimpl
def register_jobs():
    yield STIRRING


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
def register_calibration_protocols():
    from .calibration_protocols import protocol_descriptors

    yield from protocol_descriptors()
