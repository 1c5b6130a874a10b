"""Exports: preview and zip exports of the datasets other plugins declare (built-in plugin)."""

from reactorkit.plugin import yields

from .descriptors import DATASETS, ROUTES, TABLES

register_datasets = yields(*DATASETS)
register_storage = yields(*TABLES)
register_routes = yields(*ROUTES)
