"""Stirring: holds the stir bar at ``target_rpm`` (built-in plugin)."""

from reactorkit.plugin import yields

from .descriptors import CHARTS, DATASETS, STIRRING, STORAGE

register_jobs = yields(STIRRING)
register_charts = yields(*CHARTS)
register_datasets = yields(*DATASETS)
register_storage = yields(*STORAGE)
register_calibration_protocols = yields(f"{__name__}.calibration_protocols:protocol_descriptors")
