"""LEDs: the led_intensity action and LED automations (light/dark cycle) (built-in plugin)."""

from reactorkit.plugin import yields

from .descriptors import AUTOMATIONS, DATASETS, LED_AUTOMATION, LED_INTENSITY, SETTINGS_COLLECTIONS, STORAGE

register_jobs = yields(LED_INTENSITY, LED_AUTOMATION)
register_automations = yields(*AUTOMATIONS)
register_datasets = yields(*DATASETS)
register_storage = yields(*STORAGE)
register_settings_collections = yields(*SETTINGS_COLLECTIONS)
