"""Bioreactor models (``GET /api/models``), from domain facts §1.4.

Built-in models plus YAML files in ``$DOT_PIOREACTOR/models/*.yaml`` (one
mapping, or a list of mappings, with the same fields); a file entry with the
same ``(model_name, model_version)`` overrides the built-in one and is marked
``is_contrib: true`` when new. Volumes are in mL, temperatures in °C.
"""

from __future__ import annotations

import logging
from typing import Any

import falcon

from reactorkit.core.paths import dot_pioreactor

logger = logging.getLogger("reactorkit.api.leader")

REACTOR_DIAMETER_MM = 27


def _model(name: str, version: str, display: str, capacity: int, max_fill: int, temps: tuple[int, int, int],
           legacy: bool) -> dict[str, Any]:
    reduce_c, disable_c, shutdown_c = temps
    return {
        "model_name": name,
        "model_version": version,
        "display_name": display,
        "reactor_capacity_ml": capacity,
        "reactor_diameter_mm": REACTOR_DIAMETER_MM,
        "reactor_max_fill_volume_ml": max_fill,
        "max_temp_to_reduce_heating": reduce_c,
        "max_temp_to_disable_heating": disable_c,
        "max_temp_to_shutdown": shutdown_c,
        "is_legacy": legacy,
        "is_contrib": False,
    }


BUILTIN_MODELS: tuple[dict[str, Any], ...] = (
    _model("pioreactor_20ml", "1.0", "Pioreactor 20ml, v1.0", 20, 18, (63, 65, 66), True),
    _model("pioreactor_20ml", "1.1", "Pioreactor 20ml, v1.1", 20, 18, (78, 80, 85), True),
    _model("pioreactor_40ml", "1.0", "Pioreactor 40ml, v1.0", 40, 36, (78, 80, 85), True),
    _model("pioreactor_20ml", "1.5", "Pioreactor 20ml, v1.5", 20, 18, (78, 80, 85), False),
    _model("pioreactor_20ml_XR", "1.5", "Pioreactor 20ml XR, v1.5", 20, 18, (78, 80, 85), False),
    _model("pioreactor_40ml", "1.5", "Pioreactor 40ml, v1.5", 40, 36, (78, 80, 85), False),
    _model("pioreactor_40ml_XR", "1.5", "Pioreactor 40ml XR, v1.5", 40, 36, (78, 80, 85), False),
)


def _yaml_models() -> list[dict[str, Any]]:
    import yaml

    folder = dot_pioreactor() / "models"
    out: list[dict[str, Any]] = []
    for path in sorted(folder.glob("*.yaml")) if folder.is_dir() else ():
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            logger.warning("model file %s ignored: %s", path.name, exc)
            continue
        for entry in data if isinstance(data, list) else [data]:
            if isinstance(entry, dict) and entry.get("model_name") and entry.get("model_version") is not None:
                out.append({**entry, "model_version": str(entry["model_version"])})
            else:
                logger.warning("model file %s: an entry lacks model_name/model_version", path.name)
    return out


def all_models() -> list[dict[str, Any]]:
    """Built-in models overridden/extended by ``$DOT_PIOREACTOR/models/*.yaml``."""
    models = {(m["model_name"], m["model_version"]): dict(m) for m in BUILTIN_MODELS}
    for entry in _yaml_models():
        key = (entry["model_name"], entry["model_version"])
        base = models.get(key, {"is_contrib": True, "is_legacy": False, "reactor_diameter_mm": REACTOR_DIAMETER_MM,
                                "display_name": f"{key[0]}, v{key[1]}"})
        models[key] = {**base, **entry}
    return list(models.values())


def find_model(name: str | None, version: str | None) -> dict[str, Any] | None:
    for model in all_models():
        if model["model_name"] == name and model["model_version"] == version:
            return model
    return None


def model_display_name(name: str | None, version: str | None) -> str | None:
    model = find_model(name, version)
    return model["display_name"] if model else None


class Models:
    """``GET /api/models`` → ``{"models": [...]}``."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"models": all_models()}
