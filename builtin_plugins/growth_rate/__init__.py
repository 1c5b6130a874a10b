"""Growth rate: a Kalman filter turns OD readings into a growth rate (built-in plugin)."""

from reactorkit.plugin import hookimpl

from .descriptors import CHARTS, DATASETS, GROWTH_RATE_CALCULATING, STORAGE


@hookimpl
def register_jobs():
    yield GROWTH_RATE_CALCULATING


@hookimpl
def register_charts():
    yield from CHARTS


@hookimpl
def register_datasets():
    yield from DATASETS


@hookimpl
def register_storage():
    yield from STORAGE
