"""UI descriptors (§5): the union of what the installed plugins registered.

Served by ``/unit_api/{jobs,settings}/descriptors``,
``/unit_api/automations/descriptors/{type}`` and, on the leader, the same under
``/api/…`` plus ``/api/charts/descriptors``, ``/api/datasets/exportable`` and
the classic ``/api/contrib/…`` aliases.
"""

from __future__ import annotations

from typing import Any

import falcon

from reactorkit.api.errors import ApiError
from reactorkit.core.descriptors import AUTOMATION_TYPES

# ------------------------------------------------------------- serialization


def setting_to_dict(setting: Any) -> dict[str, Any]:
    """A setting field: ``key, type, display, description, default, unit, label, editable, min, max``."""
    out = setting.to_dict()
    out.setdefault("default", None)
    if out.get("description") == "":
        out["description"] = None
    return out


def job_to_dict(job: Any) -> dict[str, Any]:
    """``display_name, job_name, display, published_settings, source, description, subtext, is_testing``."""
    out = job.to_dict()
    out["published_settings"] = [setting_to_dict(s) for s in job.published_settings]
    out["is_testing"] = False
    return out


def automation_to_dict(automation: Any) -> dict[str, Any]:
    """``display_name, automation_name, description, source, fields`` (empty ``options`` → null)."""
    out = automation.to_dict()
    for f in out.get("fields", []):
        if not f.get("options"):
            f["options"] = None
    return out


def job_descriptors(registry: Any) -> list[dict[str, Any]]:
    return [job_to_dict(j) for j in registry.jobs.values()]


def automation_descriptors(registry: Any, automation_type: str) -> list[dict[str, Any]]:
    """Raises: ApiError 400 for a type other than dosing, led, temperature."""
    if automation_type not in AUTOMATION_TYPES:
        raise ApiError(falcon.HTTP_400, f"Unknown automation type {automation_type!r}.",
                       cause=f"automation_type must be one of {', '.join(AUTOMATION_TYPES)}; got {automation_type!r}.",
                       remediation="Use one of: dosing, led, temperature.")
    return [automation_to_dict(a) for a in registry.automations.get(automation_type, {}).values()]


def chart_descriptors(registry: Any) -> list[dict[str, Any]]:
    return [c.to_dict() for c in registry.charts.values()]


def dataset_descriptors(registry: Any) -> list[dict[str, Any]]:
    return [d.to_dict() for d in registry.datasets.values()]


def _bioreactor_setting(key: str, label: str, description: str, default: float, max_: float | None = None,
                        unit: str | None = "mL") -> dict[str, Any]:
    return {"key": key, "type": "numeric", "display": True, "description": description, "default": default,
            "unit": unit, "label": label, "editable": True, "min": 0.0, "max": max_}


def settings_descriptors(registry: Any = None, config: Any = None) -> list[dict[str, Any]]:
    """The built-in settings collections ``bioreactor`` (its six variables, defaults from
    ``[bioreactor]``), ``leds`` (``intensity``) and ``pwms`` (``dc``) — §5, §3.8."""
    from reactorkit.core.config import get_config

    config = config or get_config()

    def initial(key: str, fallback: float) -> float:
        try:
            return config.getfloat("bioreactor", key, fallback=fallback)
        except ValueError:
            return fallback

    bioreactor = [
        _bioreactor_setting("current_volume_ml", "Current volume", "Current estimated liquid volume in the vial.",
                            initial("initial_volume_ml", 14.0)),
        _bioreactor_setting("efflux_tube_volume_ml", "Efflux tube level",
                            "Liquid volume equivalent to the height of the waste/efflux tube.",
                            initial("efflux_tube_volume_ml", 14.0)),
        _bioreactor_setting("alt_media_fraction", "Alt media fraction",
                            "Fraction of the current volume estimated to be alt media.",
                            initial("initial_alt_media_fraction", 0.0), 1.0, unit=None),
        _bioreactor_setting("cumulative_media_added_ml", "Media added", "Total media added in this experiment.",
                            initial("initial_cumulative_media_added_ml", 0.0)),
        _bioreactor_setting("cumulative_alt_media_added_ml", "Alt media added",
                            "Total alt media added in this experiment.",
                            initial("initial_cumulative_alt_media_added_ml", 0.0)),
        _bioreactor_setting("cumulative_waste_removed_ml", "Waste removed", "Total waste removed in this experiment.",
                            initial("initial_cumulative_waste_removed_ml", 0.0)),
    ]

    def readonly(key: str, label: str) -> dict[str, Any]:
        return {"key": key, "type": "string", "display": True, "description": None, "default": None, "unit": None,
                "label": label, "editable": False, "min": None, "max": None}

    return [
        {"key": "bioreactor", "display_name": "Bioreactor", "display": True, "published_settings": bioreactor,
         "source": "app", "description": "Per-unit bioreactor settings.", "subtext": None},
        {"key": "leds", "display_name": "led intensity", "display": False,
         "published_settings": [readonly("intensity", "LED intensity")], "source": "app", "description": None,
         "subtext": None},
        {"key": "pwms", "display_name": "PWMs", "display": False,
         "published_settings": [readonly("dc", "PWM intensity")], "source": "app", "description": None,
         "subtext": None},
    ]


# ----------------------------------------------------------------- resources
class _Descriptors:
    def __init__(self, registry: Any) -> None:
        self.registry = registry


class JobDescriptors(_Descriptors):
    """``GET …/jobs/descriptors`` (also ``/api/contrib/jobs``)."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = job_descriptors(self.registry)


class AutomationDescriptors(_Descriptors):
    """``GET …/automations/descriptors/{automation_type}``; other types → 400."""

    def on_get(self, req: falcon.Request, resp: falcon.Response, automation_type: str) -> None:
        resp.media = automation_descriptors(self.registry, automation_type)


class ChartDescriptors(_Descriptors):
    """``GET /api/charts/descriptors`` (also ``/api/contrib/charts``)."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = chart_descriptors(self.registry)


class DatasetDescriptors(_Descriptors):
    """``GET /api/datasets/exportable`` (also ``/api/contrib/exportable_datasets``)."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = dataset_descriptors(self.registry)


class SettingsDescriptors(_Descriptors):
    """``GET …/settings/descriptors``."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = settings_descriptors(self.registry)
