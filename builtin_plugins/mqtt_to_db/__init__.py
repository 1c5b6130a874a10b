"""MQTT to database: the leader's job that stores readings, events and logs (built-in plugin)."""

from reactorkit.plugin import yields

from .descriptors import DATASETS, MQTT_TO_DB, ROUTES, STORAGE

register_jobs = yields(MQTT_TO_DB)
register_storage = yields(*STORAGE)
register_datasets = yields(*DATASETS)
register_routes = yields(*ROUTES)
