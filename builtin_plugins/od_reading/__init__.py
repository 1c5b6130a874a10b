"""Optical density: reads the photodiodes with the IR LED on (built-in plugin)."""

from reactorkit.plugin import hookimpl

from .descriptors import CHARTS, DATASETS, OD_READING, STORAGE


@hookimpl
def register_jobs():
    yield OD_READING


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
