"""Dosing: pumps (add_media, add_alt_media, remove_waste), vial bookkeeping and dosing automations (built-in plugin)."""

from reactorkit.plugin import yields

from .descriptors import AUTOMATIONS, BIOREACTOR_SETTINGS, CHARTS, DATASETS, JOBS, ROUTES, STORAGE

register_jobs = yields(*JOBS)
register_automations = yields(*AUTOMATIONS)
register_charts = yields(*CHARTS)
register_datasets = yields(*DATASETS)
register_storage = yields(*STORAGE)
register_routes = yields(*ROUTES)
register_settings_collections = yields(BIOREACTOR_SETTINGS)
register_calibration_protocols = yields(f"{__name__}.calibration_protocols:protocol_descriptors")
