"""MQTT to database: the leader's job that stores readings, events and logs (built-in plugin)."""

from reactorkit.plugin import hookimpl

from .descriptors import DATASETS, MQTT_TO_DB, ROUTES, STORAGE


@hookimpl
def register_jobs():
    yield MQTT_TO_DB


@hookimpl
def register_storage():
    yield from STORAGE


@hookimpl
def register_datasets():
    yield from DATASETS


@hookimpl
def register_routes():
    yield from ROUTES
