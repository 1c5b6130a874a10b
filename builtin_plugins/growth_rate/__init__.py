"""Growth rate: a Kalman filter turns OD readings into a growth rate (built-in plugin)."""

from reactorkit.plugin import yields

from .descriptors import CHARTS, DATASETS, GROWTH_RATE_CALCULATING, STORAGE

register_jobs = yields(GROWTH_RATE_CALCULATING)
register_charts = yields(*CHARTS)
register_datasets = yields(*DATASETS)
register_storage = yields(*STORAGE)
