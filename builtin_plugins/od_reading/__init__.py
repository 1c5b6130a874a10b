"""Optical density: reads the photodiodes with the IR LED on (built-in plugin)."""

from reactorkit.plugin import yields

from .descriptors import CHARTS, DATASETS, OD_READING, STORAGE

register_jobs = yields(OD_READING)
register_charts = yields(*CHARTS)
register_datasets = yields(*DATASETS)
register_storage = yields(*STORAGE)
register_calibration_protocols = yields(f"{__name__}.calibration_protocols:protocol_descriptors")
