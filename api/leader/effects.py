"""Side effects of inventory and assignment changes: stopping jobs on workers, the retained ``assignment`` topic.

The database is the source of truth and is changed first; these effects are
best-effort and never fail the request that caused them:

* stopping jobs goes through the leader's task queue (:func:`reactorkit.api.fanout.enqueue_fan_out`);
  when Redis cannot be reached the fan-out runs in a background thread instead;
* ``pioreactor/{unit}/$experiment/assignment`` is published retained
  ``{pioreactor_unit, experiment | null, assigned_at, updated_at}`` (domain facts §2.6)
  so that a worker's jobs know their experiment.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any, Iterable

from reactorkit.api import fanout

logger = logging.getLogger("reactorkit.api.leader")


def fan_out_in_background(method: str, units: Iterable[str], path: str, body: Any = None) -> dict[str, Any] | None:
    """Queue a fan-out (or run it in a thread when the queue is down). Returns the task envelope, if queued."""
    units = sorted(dict.fromkeys(units))
    if not units:
        return None
    try:
        return fanout.enqueue_fan_out(method, units, path, body)
    except Exception as exc:  # Redis down: do it here, without blocking the request
        logger.warning("task queue unavailable (%s); calling %s on %s directly", exc, path, ", ".join(units))
        threading.Thread(target=_safe_fan_out, args=(method, units, path, body), daemon=True).start()
        return None


def _safe_fan_out(method: str, units: list[str], path: str, body: Any) -> None:
    try:
        fanout.fan_out(method, units, path, body)
    except Exception as exc:
        logger.error("fan-out %s %s failed: %s", method, path, exc)


def stop_experiment_jobs(units: Iterable[str], experiment: str) -> dict[str, Any] | None:
    """Stop ``experiment``'s jobs on ``units`` (``POST /unit_api/jobs/stop {experiment}``)."""
    return fan_out_in_background("POST", units, "/unit_api/jobs/stop", {"experiment": experiment})


def stop_all_jobs(units: Iterable[str]) -> dict[str, Any] | None:
    """Stop every (not long-running) job on ``units`` (``POST /unit_api/jobs/stop/all``)."""
    return fan_out_in_background("POST", units, "/unit_api/jobs/stop/all")


def publish_assignment(unit: str, experiment: str | None, assigned_at: str | None, updated_at: str,
                       config: Any = None) -> bool:
    """Publish the retained assignment of ``unit``; False (logged) when the broker is unreachable."""
    from reactorkit.core.mqtt import publish_messages, root_topic

    topic = f"{root_topic(config)}/{unit}/$experiment/assignment"
    payload = json.dumps({"pioreactor_unit": unit, "experiment": experiment, "assigned_at": assigned_at,
                          "updated_at": updated_at})
    try:
        publish_messages([(topic, payload)], qos=1, retain=True, config=config)
        return True
    except Exception as exc:
        logger.warning("could not publish %s: %s", topic, exc)
        return False
