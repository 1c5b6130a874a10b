"""Exports: preview and zip exports of the datasets other plugins declare (built-in plugin)."""

from reactorkit.plugin import hookimpl

from .descriptors import DATASETS, ROUTES, TABLES


@hookimpl
def register_datasets():
    yield from DATASETS


@hookimpl
def register_storage():
    yield from TABLES


@hookimpl
def register_routes():
    yield from ROUTES
