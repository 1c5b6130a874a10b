"""The real cluster as the profile runner sees it: HTTP to the leader and workers, retained MQTT values.

* start → ``POST {worker}/unit_api/jobs/run/job_name/{job}`` with
  ``JOB_SOURCE=experiment_profile/<id>``, ``EXPERIMENT``, ``HOSTNAME``,
  ``ACTIVE``, ``TESTING`` and the worker's model, awaiting the task (§7.2);
* stop → the leader's ``/api/workers/{u}/jobs/stop/job_name/{job}/experiments/{exp}``;
* pause/resume/update → the leader's ``PATCH /api/workers/{u}/jobs/update/…``
  (one setting per call);
* log → the leader's ``POST /api/workers/{u}/experiments/{exp}/logs``, or straight
  onto the log topic when the leader does not offer that route;
* live values and job states → retained MQTT messages;
* assignments → the leader database (the profile runs on the leader).
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import httpx

from reactorkit.plugin import fanout
from reactorkit.plugin import mqtt as mq
from reactorkit.plugin import Config, get_leader_hostname
from reactorkit.plugin import cluster_headers

from . import expressions as ex
from .runner import ActionFailed

READ_TIMEOUT_S = 1.5
RUN_RETRIES = 3  # /unit_api/jobs/run answers 429 to the same job within 1 s


class RetainedReader:
    """Reads retained MQTT values: subscribe, take the first message, unsubscribe.

    Args:
        config: Broker settings.
        timeout_s: Wall seconds to wait for a retained message before answering None.
    """

    def __init__(self, config: Config, timeout_s: float = READ_TIMEOUT_S) -> None:
        self.timeout_s = timeout_s
        self._waiters: dict[str, list[dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self.client = mq.create_client(on_message=self._on_message, config=config)

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        with self._lock:
            waiters = self._waiters.get(message.topic, [])
            for waiter in waiters:
                if not waiter["event"].is_set():
                    waiter["value"] = message.payload.decode("utf-8", errors="replace")
                    waiter["event"].set()

    def read(self, topic: str) -> str | None:
        """The retained payload on ``topic`` (``""`` counts as none), or None after the timeout."""
        waiter = {"event": threading.Event(), "value": None}
        with self._lock:
            first = topic not in self._waiters
            self._waiters.setdefault(topic, []).append(waiter)
        try:
            if first:
                self.client.subscribe(topic, qos=1)
            else:  # a second reader of the same topic: ask the broker to resend the retained value
                self.client.unsubscribe(topic)
                self.client.subscribe(topic, qos=1)
            waiter["event"].wait(self.timeout_s)
        finally:
            with self._lock:
                self._waiters[topic].remove(waiter)
                last = not self._waiters[topic]
                if last:
                    del self._waiters[topic]
            if last:
                self.client.unsubscribe(topic)
        value = waiter["value"]
        return value if value else None

    def close(self) -> None:
        try:
            self.client.disconnect()
        finally:
            self.client.loop_stop()


class HttpCluster:
    """:class:`~.runner.Cluster` over the real API.

    Args:
        experiment: The profile's experiment.
        job_source: ``experiment_profile/<job_id>``, given to every job it starts.
        config: This (leader) unit's config: addresses, broker.
        db: The leader database (``LeaderDB``).
        reader: A :class:`RetainedReader` (or anything with ``read(topic)``).
        publish: ``publish(topic, payload)`` used when the leader has no log route.
        clock: For log timestamps.
    """

    def __init__(self, experiment: str, job_source: str, config: Config, db: Any, reader: Any,
                 publish: Any = None, clock: Any = None) -> None:
        self.experiment = experiment
        self.job_source = job_source
        self.config = config
        self.db = db
        self.reader = reader
        self.publish = publish
        self.clock = clock
        self.leader = get_leader_hostname(config)
        self.http = httpx.Client(headers=cluster_headers())
        self._assigned_at_start: list[str] | None = None

    def close(self) -> None:
        self.http.close()

    # ------------------------------------------------------------ inventory
    def assigned_units(self) -> list[str]:
        if self._assigned_at_start is None:
            self._assigned_at_start = list(self.db.assigned_workers(self.experiment, active_only=True))
        return list(self._assigned_at_start)

    def is_assigned(self, unit: str) -> bool:
        return self.db.assignment_of(unit) == self.experiment

    def _call(self, method: str, unit: str, path: str, body: Any = None, timeout: float | None = None) -> Any:
        envelope = fanout.call_unit(self.http, method, unit, path, json=body, timeout=timeout, config=self.config)
        if envelope["ok"]:
            return envelope["value"]
        error = envelope["error"]
        detail = f" ({error['cause']})" if error.get("cause") and error.get("cause") != error["message"] else ""
        raise ActionFailed(f"{error['message']}{detail}", envelope.get("status_code"))

    # -------------------------------------------------------------- actions
    def start_job(self, unit: str, job: str, options: dict[str, Any], args: list[str],
                  config_overrides: dict[str, Any]) -> None:
        worker = self.db.worker(unit) or {}
        env = {"JOB_SOURCE": self.job_source, "EXPERIMENT": self.experiment, "HOSTNAME": unit, "ACTIVE": "1"}
        if self.experiment.startswith("_testing"):
            env["TESTING"] = "1"
        if worker.get("model_name"):
            env["MODEL_NAME"] = worker["model_name"]
        if worker.get("model_version"):
            env["MODEL_VERSION"] = worker["model_version"]
        body = {"options": {k: _plain(v) for k, v in options.items()}, "args": [str(a) for a in args], "env": env,
                "config_overrides": [[f"{job}.config", str(k), str(_plain(v))] for k, v in config_overrides.items()]}
        for attempt in range(RUN_RETRIES):
            try:
                self._call("POST", unit, f"/unit_api/jobs/run/job_name/{job}", body, timeout=10.0)
                return
            except ActionFailed as exc:
                if exc.status_code != 429 or attempt == RUN_RETRIES - 1:
                    raise
                time.sleep(1.0)

    def stop_job(self, unit: str, job: str) -> None:
        self._call("POST", self.leader, f"/api/workers/{unit}/jobs/stop/job_name/{job}/experiments/{self.experiment}")

    def update_job(self, unit: str, job: str, settings: dict[str, Any]) -> None:
        self._call("PATCH", self.leader, f"/api/workers/{unit}/jobs/update/job_name/{job}/experiments/{self.experiment}",
                   {"settings": {k: _plain(v) for k, v in settings.items()}})

    def log(self, unit: str, message: str, level: str) -> None:
        timestamp = self.clock.utc_iso() if self.clock is not None else None
        body = {"message": message, "level": level.upper(), "source": "experiment_profile",
                "source_": "experiment_profile", "task": "experiment_profile", "timestamp": timestamp}
        envelope = fanout.call_unit(self.http, "POST", self.leader,
                                    f"/api/workers/{unit}/experiments/{self.experiment}/logs", json=body,
                                    config=self.config)
        if envelope["ok"]:
            return
        if envelope.get("status_code") in (404, 405) and self.publish is not None:
            topic = mq.job_topic(unit, self.experiment, "logs", "experiment_profile", level.lower(), config=self.config)
            payload = {"message": message, "level": level.upper(), "task": "experiment_profile",
                       "timestamp": timestamp, "source": "experiment_profile"}
            self.publish(topic, json.dumps(payload))
            return
        raise ActionFailed(envelope["error"]["message"])

    def push_label(self, unit: str, label: str) -> None:
        self._call("PUT", self.leader, f"/api/experiments/{self.experiment}/unit_labels",
                   {"unit": unit, "label": label})

    def stop_profile_jobs(self, units: list[str]) -> dict[str, Any]:
        """Stop, on each unit, the jobs this profile started (by ``job_source``); envelopes by unit."""
        return fanout.fan_out("POST", units, "/unit_api/jobs/stop", {"job_source": self.job_source},
                              config=self.config, client=self.http)

    # ---------------------------------------------------------------- reads
    def job_state(self, unit: str, job: str) -> str | None:
        return self.reader.read(mq.job_topic(unit, self.experiment, job, "$state", config=self.config))

    def read_setting(self, unit: str, job: str, setting: str) -> str | None:
        worker = self.db.worker(unit)
        if worker is None and unit != self.leader:
            raise ex.ExpressionError(f"{unit} is not a unit of this cluster")
        if worker is not None and not worker.get("is_active"):
            raise ex.ExpressionError(f"{unit} is inactive")
        return self.reader.read(mq.job_topic(unit, self.experiment, job, setting, config=self.config))


def _plain(value: Any) -> Any:
    """JSON-friendly scalars (profile values may be ints, floats, bools or strings)."""
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return value
