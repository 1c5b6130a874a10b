"""Temperature: thermostat and temperature recording automations (built-in plugin)."""

from reactorkit.plugin import yields

from .descriptors import AUTOMATIONS, CHARTS, DATASETS, STORAGE, TEMPERATURE_AUTOMATION

register_jobs = yields(TEMPERATURE_AUTOMATION)
register_automations = yields(*AUTOMATIONS)
register_charts = yields(*CHARTS)
register_datasets = yields(*DATASETS)
register_storage = yields(*STORAGE)
