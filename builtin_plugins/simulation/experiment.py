"""The main job: a local simulated cluster running a real experiment through the leader's REST API.

Steps (each one an HTTP call a user or the UI would make):

1. start a leader and simulated workers (``pio cluster up`` machinery: gunicorn,
   rq workers and mqtt_to_db under supervisord);
2. create an experiment and assign the workers to it;
3. calibrate each worker's media and waste pumps with the ``duration_based``
   calibration session, answering the "how many mL?" prompts with what a scale
   under the simulated beaker reads (the vessel's ``pumped_ml``), then each worker's
   90° photodiode with the od_reading ``standards`` session (OD600 standards
   3.0 … 0.1 and a blank placed in the simulated vessel, the culture put back
   afterwards), so that od_reading publishes OD600 and the growth rate is that of
   biomass, not of the photodiode's saturating signal;
4. upload and start an experiment profile: stirring, od_reading and
   growth_rate_calculating on every worker, a turbidostat on the first worker and
   a chemostat on the second, for ``hours`` simulated hours;
5. show progress (simulated hours, OD, growth rate, volume, doses per unit) in place;
6. at the end export the experiment's datasets as a zip and draw its figure from
   that zip (:mod:`.figure`: OD, growth rate, volume, dilution
   rate and doses per unit against hours since the start).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import httpx

from reactorkit.plugin import ClusterLayout

TURBIDOSTAT_TARGET_NOD = 10.0  # normalised OD: 10× the OD of the first readings, at most
TURBIDOSTAT_HOLD_OD = 1.0  # OD600 the turbidostat should hold at least within reach of: about half the vessel's capacity
CHEMOSTAT_EXCHANGE_ML = 0.5
CHEMOSTAT_EVERY_MIN = 20.0
GROWTH_RATE_WINDOW_S = 3600.0  # the progress shows the growth rate's mean over this much simulated time (3 chemostat cycles)
OD_STANDARDS = (3.0, 2.0, 1.5, 1.0, 0.5, 0.25, 0.1)  # OD600 of the standards the demo "places"; the blank is 0
CULTURE_FIELDS = ("od", "substrate", "alt_media_fraction", "volume_ml")  # what the culture vial carries


def progress_legend(replayed: list[str] = ()) -> str:
    """The line printed once before the progress, explaining its fields (``replayed``: units fed a recording,
    whose od_reading is not calibrated)."""
    od = "OD = od_reading's OD600, from the calibration with standards above"
    if replayed:
        od += f" ({', '.join(replayed)}: the recording's photodiode signal)"
    return (f"Progress, per unit: {od}; true = the simulated vessel's actual OD600; growth rate = "
            "growth_rate_calculating's estimate (h⁻¹), its mean over the last simulated hour, then its latest value "
            "(a chemostat's culture grows faster after each dose and slower before the next, around the dilution "
            "rate); volume = liquid in the vessel (mL); doses = media additions so far.")


class DemoError(RuntimeError):
    """A step of the scripted experiment failed (names the step and the API's answer)."""


def profile_yaml(turbidostat_unit: str, chemostat_unit: str | None, hours: float,
                 turbidostat_target: float = TURBIDOSTAT_TARGET_NOD, biomass_signal: str = "normalized_od") -> str:
    """The experiment profile the demo runs (Pioreactor profile schema, version "1.0").

    ``turbidostat_target`` is in the unit of the turbidostat's ``biomass_signal``: normalised OD (the first
    readings' OD is 1) for ``normalized_od``, OD600 for ``od`` (an active OD calibration).
    """
    end = f"{hours:g}h"
    text = f"""\
version: "1.0"
experiment_profile_name: reactorkit demo
metadata:
  author: reactorkit
  description: Turbidostat and chemostat side by side on simulated vessels.
common:
  jobs:
    stirring:
      actions:
        - {{type: start, t: 0, options: {{target_rpm: 500}}}}
        - {{type: stop, t: {end}}}
    od_reading:
      actions:
        - {{type: start, t: 0, config_overrides: {{samples_per_second: 0.05}}}}
        - {{type: stop, t: {end}}}
    growth_rate_calculating:
      actions:
        - {{type: start, t: 2m}}
        - {{type: stop, t: {end}}}
pioreactors:
  {turbidostat_unit}:
    jobs:
      dosing_automation:
        actions:
          - type: start
            t: 30m
            options: {{automation_name: turbidostat, target_biomass: {turbidostat_target:g}, biomass_signal: {biomass_signal}, exchange_volume_ml: 1.0}}
          - {{type: stop, t: {end}}}
"""
    if chemostat_unit:
        text += f"""\
  {chemostat_unit}:
    jobs:
      dosing_automation:
        actions:
          - type: start
            t: 30m
            options: {{automation_name: chemostat, exchange_volume_ml: {CHEMOSTAT_EXCHANGE_ML}, duration: {CHEMOSTAT_EVERY_MIN}}}
          - {{type: stop, t: {end}}}
"""
    return text


@dataclass
class Api:
    """A small client of the leader's API that turns errors into :class:`DemoError`."""

    base: str
    timeout: float = 30.0
    token: str = ""
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        self.client = httpx.Client(base_url=self.base, timeout=self.timeout, headers=headers)

    def call(self, method: str, path: str, step: str, *, ok: tuple[int, ...] = (200, 201, 202), **kwargs: Any) -> Any:
        response = self.client.request(method, path, **kwargs)
        if response.status_code not in ok:
            raise DemoError(f"{step}: {method} {path} answered {response.status_code}: {response.text[:500]}")
        if response.headers.get("content-type", "").startswith("application/json"):
            return response.json()
        return response.content

    def wait_task(self, accepted: dict[str, Any], step: str, timeout_s: float = 120.0) -> Any:
        """Poll an async task's ``result_url_path`` until it ends; returns the finished record."""
        path = accepted["result_url_path"]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            record = self.call("GET", path, step)
            if record.get("status") in ("succeeded", "complete"):
                return record
            if record.get("status") in ("failed", "partial"):
                raise DemoError(f"{step}: task failed: {record.get('error')} {record.get('cause', '')}")
            time.sleep(0.25)
        raise DemoError(f"{step}: task {path} did not finish within {timeout_s:.0f} s")


def turbidostat_target_for(od_now: float | None) -> float:
    """The turbidostat's target in normalised OD for a culture now at OD600 ``od_now``: enough to hold
    about :data:`TURBIDOSTAT_HOLD_OD`, between 1.5× and :data:`TURBIDOSTAT_TARGET_NOD`× the first readings."""
    if not od_now or od_now <= 0:
        return TURBIDOSTAT_TARGET_NOD
    return round(min(TURBIDOSTAT_TARGET_NOD, max(1.5, TURBIDOSTAT_HOLD_OD / od_now)), 2)


def read_vessel(layout: ClusterLayout, unit: str) -> dict[str, Any]:
    """The simulated vessel's state file of ``unit`` (what the demo's "scale" reads)."""
    path = layout.unit_dir(unit) / "storage" / f"simulated_vessel_{unit}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def experiment_name(simulated_now: float) -> str:
    """``demo-YYYYmmdd-HHMMSS`` of the cluster's simulated time (UTC) when the experiment is created: the clock
    of its data and of the export's file name (the manifest names it), so that names and rows agree."""
    from datetime import datetime, timezone

    return f"demo-{datetime.fromtimestamp(simulated_now, tz=timezone.utc):%Y%m%d-%H%M%S}"


def calibration_name(experiment: str, device: str) -> str:
    """The name the demo gives its calibration of ``device``: the experiment's name and the device's, so that a
    second demo in the same state folder makes new calibrations instead of colliding with the first one's
    (a calibration protocol refuses a name that exists for its device)."""
    return f"{experiment}-{device}"


def calibrate_pump(api: Api, layout: ClusterLayout, unit: str, device: str, log: Callable[[str], None],
                   name: str | None = None) -> dict:
    """Run the ``duration_based`` session of ``device`` on ``unit`` through the leader; returns its result.

    ``name``: the calibration's name (default ``demo-<device>``; the demo passes :func:`calibration_name`)."""
    pump = device.removesuffix("_pump")
    base = f"/api/workers/{unit}/calibrations/sessions"
    reply = api.call("POST", base, f"start {device} calibration on {unit}",
                     json={"target_device": device, "protocol_name": "duration_based"})
    session_id = reply["session"]["session_id"]
    before = 0.0
    for _ in range(100):
        step = reply["step"]
        step_id = step["step_id"]
        if reply["session"]["status"] != "in_progress":
            break
        if step_id in ("tracer", "timed_run"):
            before = read_vessel(layout, unit).get("pumped_ml", {}).get(pump, 0.0)
            inputs: dict[str, Any] = {}
        elif step_id in ("tracer_volume", "timed_volume"):
            weighed = read_vessel(layout, unit).get("pumped_ml", {}).get(pump, 0.0) - before
            inputs = {"volume_ml": round(weighed, 3)}
        else:
            inputs = {
                "name": {"calibration_name": name or f"demo-{device}"},
                "volumes": {"mls_to_calibrate_for": [0.5, 1.5]},
                "pwm": {"hz": 250, "dc": 100},
                "prime": {"prime_duration_s": 0.5},
            }.get(step_id, {})
        reply = api.call("POST", f"{base}/{session_id}/inputs", f"{device} calibration on {unit} ({step_id})",
                         json={"inputs": inputs}, timeout=300)
    session = reply["session"]
    if session["status"] != "complete":
        raise DemoError(f"{device} calibration on {unit} ended {session['status']}: {session.get('error')}")
    slope = session["result"]["calibration"]["curve_data_"]["coefficients"][0]
    log(f"  {unit}: {device} calibrated, {slope:.3f} mL/s")
    return session["result"]


def calibrate_od(api: Api, layout: ClusterLayout, unit: str, log: Callable[[str], None], device: str = "od90",
                 name: str | None = None) -> dict:
    """Run the od_reading ``standards`` session of ``device`` on ``unit`` through the leader; returns its result.

    ``name``: the calibration's name (default ``demo-<device>``; the demo passes :func:`calibration_name`).

    Each standard of :data:`OD_STANDARDS` and then a blank (OD600 0) is placed in the simulated vessel by the
    protocol's ``place_standard_vial`` action, which replaces the culture: the caller puts it back
    (:func:`put_culture_back`). The IR LED intensity is the protocol's default, i.e. ``[od_reading.config]
    ir_led_intensity``, so that od_reading applies the calibration. stirring and od_reading must not run.

    Raises:
        DemoError: the session did not complete.
    """
    base = f"/api/workers/{unit}/calibrations/sessions"
    reply = api.call("POST", base, f"start {device} calibration on {unit}",
                     json={"target_device": device, "protocol_name": "standards"})
    session_id = reply["session"]["session_id"]
    queue = list(OD_STANDARDS)
    for _ in range(4 * len(OD_STANDARDS) + 10):
        if reply["session"]["status"] != "in_progress":
            break
        step = reply["step"]
        step_id = step["step_id"]
        if step_id == "settings":
            defaults = {f.get("name"): f.get("default") for f in step.get("fields") or []}
            inputs: dict[str, Any] = {"calibration_name": name or f"demo-{device}",
                                      "ir_led_intensity": float(defaults.get("ir_led_intensity") or 80.0)}
        elif step_id == "place_standard":
            inputs = {"od600": queue.pop(0)}
        elif step_id == "next":
            inputs = {"next": "another_standard" if queue else "blank"}
        elif step_id == "place_blank":
            inputs = {"blank_od600": 0.0}
        else:
            inputs = {}
        reply = api.call("POST", f"{base}/{session_id}/inputs", f"{device} calibration on {unit} ({step_id})",
                         json={"inputs": inputs}, timeout=300)
    session = reply["session"]
    if session["status"] != "complete":
        raise DemoError(f"{device} calibration on {unit} ended {session['status']}: {session.get('error')}")
    log(f"  {unit}: {device} calibrated with {len(OD_STANDARDS)} standards and a blank")
    return session["result"]


def fresh_culture(layout: ClusterLayout, unit: str) -> dict[str, Any]:
    """The culture a new experiment starts with (the vessel's own, fresh state): ``[simulation] initial_od``
    (0.05), the rest of ``substrate_in`` as substrate, ``[bioreactor] initial_volume_ml`` (14 mL)."""
    import configparser

    from reactorkit.plugin import simulated_vessel_parameters as parameters_from_config

    config = configparser.ConfigParser(strict=False, interpolation=None)
    config.read([layout.unit_dir(unit) / "config.ini", layout.unit_dir(unit) / "unit_config.ini"])
    od = config.getfloat("simulation", "initial_od", fallback=0.05)
    substrate = max(parameters_from_config(config).substrate_in - od, 0.0)  # type: ignore[arg-type]
    return {"od": od, "substrate": substrate, "alt_media_fraction": 0.0,
            "volume_ml": config.getfloat("bioreactor", "initial_volume_ml", fallback=14.0)}


def put_culture_back(layout: ClusterLayout, unit: str, culture: dict[str, Any]) -> None:
    """The person puts the culture vial back after a calibration: the simulated vessel's culture fields
    (:data:`CULTURE_FIELDS`) return to ``culture`` (a :func:`read_vessel` state); its clock, pumps and LEDs stay."""
    from filelock import FileLock

    from reactorkit.plugin import atomic_write

    path = layout.unit_dir(unit) / "storage" / f"simulated_vessel_{unit}.json"
    with FileLock(str(path) + ".lock"):
        state = json.loads(path.read_text())
        state.update({k: culture[k] for k in CULTURE_FIELDS if k in culture})
        atomic_write(path, json.dumps(state), durable=False)


class LatestValues:
    """Latest readings per unit, from the messages of the cluster's MQTT stream (no connection of its own).

    A dosing event the unit's outbox sends again (unacknowledged for a while on a busy machine: the README's
    "Readings: nothing published is lost") arrives twice with the same payload; it is counted once.

    The growth rate of a pulse-fed culture follows each dose (a chemostat adding 0.5 mL to 14 mL every 20 min:
    about 0.155 h⁻¹ just after a dose, 0.066 h⁻¹ before the next, 0.107 h⁻¹ on average, its dilution rate), so one
    value says little about the culture; ``growth_rate_mean`` is the mean of the values whose timestamps lie within
    :data:`GROWTH_RATE_WINDOW_S` of the latest one (an hour: whole 20-minute cycles).

    Attributes:
        latest: ``unit -> {"od", "growth_rate", "growth_rate_mean", "volume_ml", "doses"}`` (``growth_rate``: the
            latest value, h⁻¹; ``growth_rate_mean``: h⁻¹; ``doses``: media additions seen).
    """

    def __init__(self, units: list[str]) -> None:
        self.latest: dict[str, dict[str, Any]] = {
            u: {"od": None, "growth_rate": None, "growth_rate_mean": None, "volume_ml": None, "doses": 0} for u in units}
        self._doses_seen: set[tuple[str, str]] = set()
        self._rates: dict[str, list[tuple[float, float]]] = {u: [] for u in units}  # (simulated epoch s, h⁻¹)

    def update(self, topic: str, payload: bytes) -> None:
        """Take one message (``…/pioreactor/<unit>/<experiment>/<job>/<attribute>``); others are ignored."""
        parts = topic.split("/")
        try:
            unit, rest = parts[parts.index("pioreactor") + 1], parts[parts.index("pioreactor") + 3:]
        except (ValueError, IndexError):
            return
        values = self.latest.get(unit)
        if values is None or not payload:
            return
        try:
            if rest == ["od_reading", "ods"]:
                ods = json.loads(payload)["ods"]
                values["od"] = next(iter(ods.values()))["od"]
            elif rest == ["growth_rate_calculating", "growth_rate"]:
                reading = json.loads(payload)
                values["growth_rate"] = reading["growth_rate"]
                self._add_rate(unit, reading)
            elif rest == ["bioreactor", "current_volume_ml"]:
                values["volume_ml"] = float(payload)
            elif rest == ["dosing_events"]:
                event = json.loads(payload)
                key = (unit, f"{event.get('timestamp')}|{event.get('volume_change')}")
                if event.get("event") == "add_media" and key not in self._doses_seen:
                    self._doses_seen.add(key)
                    values["doses"] += 1
        except (ValueError, KeyError, TypeError, StopIteration, AttributeError):
            pass

    def _add_rate(self, unit: str, reading: dict[str, Any]) -> None:
        """Keep a growth rate with its timestamp and update the unit's ``growth_rate_mean``.

        Raises:
            ValueError, KeyError, TypeError: a reading without a number or an ISO-8601 ``timestamp`` (ignored by
                :meth:`update`).
        """
        from reactorkit.plugin import parse_iso

        at, rate = parse_iso(reading["timestamp"]), float(reading["growth_rate"])
        rates = self._rates[unit]
        rates.append((at, rate))
        newest = max(t for t, _ in rates)
        rates[:] = [(t, r) for t, r in rates if t > newest - GROWTH_RATE_WINDOW_S]
        self.latest[unit]["growth_rate_mean"] = sum(r for _, r in rates) / len(rates)


class Progress:
    """Latest readings per unit (:class:`LatestValues`), subscribed to the cluster's MQTT stream.

    Attributes:
        latest: ``unit -> {"od", "growth_rate", "growth_rate_mean", "volume_ml", "doses"}``.
    """

    def __init__(self, layout: ClusterLayout, experiment: str, units: list[str]) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.layout = layout
        self.experiment = experiment
        self.values = LatestValues(units)
        self.latest = self.values.latest
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2)
        root = f"{layout.prefix}pioreactor"

        def on_connect(client: Any, *_: Any) -> None:
            client.subscribe(f"{root}/+/{experiment}/#", qos=1)

        self.client.on_connect = on_connect
        self.client.on_message = lambda client, userdata, message: self.values.update(message.topic, message.payload)
        credentials = layout.mqtt_credentials()
        if credentials:
            self.client.username_pw_set(*credentials)
        self.client.connect("127.0.0.1", layout.mqtt_port)
        self.client.loop_start()

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()

    def render(self, hours: float, total_hours: float) -> list[str]:
        lines = [f"simulated {hours:5.1f} h of {total_hours:g} h"]
        for unit, v in self.latest.items():
            truth = read_vessel(self.layout, unit)
            fmt = lambda x, spec: "   …  " if x is None else format(x, spec)  # noqa: E731
            lines.append(
                f"  {unit:<9} OD {fmt(v['od'], '7.4f')} (true {fmt(truth.get('od'), '6.3f')})  "
                f"growth rate {fmt(v['growth_rate_mean'], '6.3f')} h⁻¹ (now {fmt(v['growth_rate'], '5.3f')})  "
                f"volume {fmt(truth.get('volume_ml'), '5.2f')} mL  "
                f"doses {v['doses']:4d}"
            )
        return lines


def od_calibrated(api: Api, units: list[str]) -> bool:
    """Whether every unit in ``units`` has an active OD calibration (then od_readings are calibrated OD600)."""
    try:
        accepted = api.call("GET", "/api/workers/$broadcast/active_calibrations", "read active calibrations")
        record = api.wait_task(accepted, "read active calibrations", timeout_s=60)
    except DemoError:
        return False
    result = record.get("result") or {}
    for unit in units:
        active = (result.get(unit) or {}).get("value") or {}
        if not any(device.startswith("od") for device in active):
            return False
    return True


def export_zip(api: Api, experiment: str, out_dir: Path) -> Path:
    """Export every exportable dataset of ``experiment`` and download the zip into ``out_dir``."""
    datasets = [d["dataset_name"] for d in api.call("GET", "/api/datasets/exportable", "list datasets")]
    accepted = api.call("POST", "/api/datasets/exportable/export", "export datasets",
                        json={"datasets": datasets, "experiment": experiment, "partition_by_unit": True,
                              "partition_by_experiment": True})
    record = api.wait_task(accepted, "export datasets", timeout_s=300)
    filename = record["result"]["filename"]
    content = api.call("GET", record["result"].get("download_url_path") or f"/api/exports/{filename}", "download export")
    path = out_dir / filename
    path.write_bytes(content)
    return path


@dataclass
class DemoResult:
    """What a finished demo produced (``turbidostat``/``chemostat``: the units running them)."""

    experiment: str
    api_url: str
    turbidostat: str
    chemostat: str | None
    export_path: Path | None
    plot_path: Path | None
    latest: dict[str, dict[str, Any]]


def run_experiment(
    root: Path,
    *,
    hours: float = 24.0,
    minutes: float = 4.0,
    workers: int = 2,
    out_dir: Path | None = None,
    replay: Path | None = None,
    echo: Callable[[str], None] = print,
    live: bool = True,
    keep_running: Callable[["DemoResult"], None] | None = None,
    turbidostat_target: float | None = None,
    ui: bool = False,
) -> DemoResult:
    """Run the scripted experiment end to end; every process is stopped before returning.

    Args:
        root: Folder of the cluster's state.
        hours: Simulated length of the experiment (h).
        minutes: Wall-clock length wanted (min): the speed-up is hours·60/minutes.
        workers: Simulated workers (≥ 1; the first runs the turbidostat, the second the chemostat).
        out_dir: Where the export zip and the plot go (default ``root``).
        replay: A recorded OD file (CSV, optionally gzipped) fed through the last worker's
            od_reading instead of the simulated vessel.
        echo: Where progress lines go.
        live: Redraw the progress block in place (a terminal) instead of printing lines.
        keep_running: Called with the :class:`DemoResult` after the results are written, before the
            cluster stops (e.g. wait for Ctrl-C so a person can explore the API).
        turbidostat_target: The turbidostat's target in normalised OD. Default: OD600
            :data:`TURBIDOSTAT_HOLD_OD` on the calibrated OD (``biomass_signal: od``) of a unit whose od90 the
            demo calibrated — a multiple of the first readings is not: a busy machine that delays them at
            480× lets the culture grow meanwhile, and 5× a baseline of OD 0.4 lies beyond the vessel's capacity
            (OD 2), so the turbidostat never doses; else :func:`turbidostat_target_for` of the culture when the
            profile starts.
        ui: Install the web UI build when missing (the leader serves it at its address).

    Raises:
        DemoError: a step failed; the message names the step and the API's answer.
    """
    from reactorkit.plugin import Clock
    from reactorkit.plugin import echo_addresses, start_cluster, stop_cluster

    out_dir = out_dir or root
    out_dir.mkdir(parents=True, exist_ok=True)
    speedup = hours * 60.0 / minutes
    echo(f"Starting a local cluster (leader + {workers} simulated worker(s)) at {speedup:g}× simulated time …")
    replays = {f"worker{workers}": str(replay.resolve())} if replay else {}
    layout = start_cluster(root, workers=workers, speedup=speedup, replay=replays, ui=ui, echo=echo)
    progress: Progress | None = None
    try:
        api = Api(layout.url(), token=layout.admin_token())
        echo_addresses(layout, echo)
        created = Clock(layout.speedup, layout.clock_origin).now()
        experiment = experiment_name(created)
        api.call("POST", "/api/experiments", "create the experiment",
                 json={"experiment": experiment, "description": "reactorkit demo: turbidostat and chemostat"})
        for worker in layout.workers:
            api.call("PUT", f"/api/experiments/{experiment}/workers", f"assign {worker}",
                     json={"pioreactor_unit": worker})
        echo(f"Experiment {experiment!r} created; assigned {', '.join(layout.workers)}.")
        echo("Calibrating pumps through calibration sessions …")
        vessel_workers = [w for w in layout.workers if w not in replays]
        # the culture vials are set aside while the pumps and photodiodes are calibrated (into a beaker, with
        # standards) and put back as they were before the profile starts, whatever the speed-up
        # a new experiment starts from a fresh culture, also where an earlier demo left its vessels grown
        cultures = {worker: fresh_culture(layout, worker) for worker in vessel_workers}
        for worker in vessel_workers:
            for device in ("media_pump", "waste_pump"):
                calibrate_pump(api, layout, worker, device, echo, name=calibration_name(experiment, device))
        echo("Calibrating OD (90° photodiode) with standards of known OD600 …")
        try:
            for worker in vessel_workers:
                calibrate_od(api, layout, worker, echo, name=calibration_name(experiment, "od90"))
        finally:
            for worker, culture in cultures.items():
                if culture:
                    put_culture_back(layout, worker, culture)

        turbidostat = vessel_workers[0] if vessel_workers else layout.workers[0]
        chemostat = vessel_workers[1] if len(vessel_workers) > 1 else None
        biomass_signal = "normalized_od"
        if turbidostat_target is None and turbidostat in vessel_workers:  # its od90 is calibrated: OD600
            turbidostat_target, biomass_signal = TURBIDOSTAT_HOLD_OD, "od"
        elif turbidostat_target is None:
            turbidostat_target = turbidostat_target_for(read_vessel(layout, turbidostat).get("od"))
        api.call("POST", "/api/experiment_profiles", "upload the profile",
                 json={"filename": f"{experiment}.yaml",
                       "body": profile_yaml(turbidostat, chemostat, hours, turbidostat_target, biomass_signal)})
        fullpath = next(p["fullpath"] for p in api.call("GET", "/api/experiment_profiles", "list profiles")
                        if p["file"].startswith(experiment))
        progress = Progress(layout, experiment, layout.workers)
        clock = Clock(layout.speedup, layout.clock_origin)
        accepted = api.call("POST", "/unit_api/jobs/run/job_name/experiment_profile", "start the profile",
                            json={"args": ["execute", fullpath, experiment]})
        api.wait_task(accepted, "start the profile")
        started = clock.now()
        roles = f"turbidostat on {turbidostat}" + (f", chemostat on {chemostat}" if chemostat else "")
        echo(f"Profile started: stirring, od_reading, growth_rate_calculating on every worker; {roles}.")
        echo(progress_legend(sorted(replays)))
        _watch(progress, clock, started, hours, echo, live)
        echo("Experiment finished; writing results …")
        export_path = export_zip(api, experiment, out_dir)
        from .figure import plot_export

        roles_title = f"turbidostat on {turbidostat}" + (f", chemostat on {chemostat}" if chemostat else "")
        plot_path = plot_export(export_path, out_dir / f"{experiment}.png",
                                title=f"{experiment}: {roles_title} ({hours:g} h, simulated vessels)",
                                od_calibrated=od_calibrated(api, [w for w in layout.workers if w not in replays]),
                                start_h=max(0.0, (started - created) / 3600.0))
        echo(f"Export: {export_path}")
        echo(f"Plot:   {plot_path}")
        echo(f"Explore the API at {layout.url()}/api/experiments/{experiment}/time_series/od_readings")
        result = DemoResult(experiment, layout.url(), turbidostat, chemostat, export_path, plot_path, progress.latest)
        if keep_running is not None:
            keep_running(result)
        return result
    finally:
        if progress is not None:
            progress.close()
        echo("Stopping every job and process …")
        with _uninterrupted():
            stop_cluster(layout)
        echo("Stopped.")


class _uninterrupted:
    """Ignore Ctrl-C and SIGTERM while the cluster stops (a second Ctrl-C must not leave processes behind)."""

    def __enter__(self) -> None:
        import signal
        import threading

        self.saved: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.saved[sig] = signal.signal(sig, signal.SIG_IGN)

    def __exit__(self, *exc: object) -> None:
        import signal

        for sig, handler in self.saved.items():
            signal.signal(sig, handler)


def _watch(progress: Progress, clock: Any, started: float, hours: float, echo: Callable[[str], None], live: bool) -> None:
    drawn = 0
    last_printed = -1.0
    import sys

    while True:
        elapsed_h = (clock.now() - started) / 3600.0
        lines = progress.render(min(elapsed_h, hours), hours)
        if live:
            if drawn:
                sys.stdout.write(f"\x1b[{drawn}F")
            sys.stdout.write("".join(f"\x1b[2K{line}\n" for line in lines))
            sys.stdout.flush()
            drawn = len(lines)
        elif elapsed_h - last_printed >= max(hours / 8, 0.5) or (elapsed_h >= hours > last_printed):
            for line in lines:
                echo(line)
            last_printed = elapsed_h
        if elapsed_h >= hours + 0.05:
            return
        time.sleep(0.5)
