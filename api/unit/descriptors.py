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


def settings_descriptors(registry: Any = None, config: Any = None) -> list[dict[str, Any]]:
    """The settings collections the installed plugins register (``bioreactor``, ``leds``, ``pwms`` …, §5, §3.8),
    each setting's ``default`` from the collection's ``defaults(config)``."""
    from reactorkit.core.config import get_config
    from reactorkit.core.descriptors import resolve

    config = config or get_config()
    out = []
    for collection in (getattr(registry, "settings_collections", None) or {}).values():
        defaults = resolve(collection.defaults)(config) if collection.defaults is not None else {}
        settings = []
        for setting in collection.published_settings:
            entry = setting_to_dict(setting)
            entry["default"] = defaults.get(setting.key)
            entry.pop("datatype", None)
            settings.append(entry)
        out.append({"key": collection.key, "display_name": collection.display_name, "display": collection.display,
                    "published_settings": settings, "source": collection.source,
                    "description": collection.description, "subtext": collection.subtext})
    return out


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
