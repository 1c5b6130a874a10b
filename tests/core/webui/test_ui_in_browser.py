"""The Pioreactor web UI in a real browser against a local cluster: every page, live job states, control.

One cluster for the module (``pio cluster up``, which installs the UI build from the
package index and runs its own mosquitto with a WebSocket listener), an experiment
with stirring, od_reading and growth_rate_calculating running on both workers, and
one headless chromium (Debian's, driven by the ``playwright`` package).

* every route of the build's router opens with no API call answering ≥ 400, no
  console error and no page error (requests to other hosts, e.g. the UI's release
  check on GitHub, are blocked and not counted);
* running jobs read "On", and a chart draws one line per running worker;
* clicking through the UI changes the cluster: config edit, dataset export, target
  RPM, stopping and starting stirring and od_reading, a dosing automation, a profile
  run, a new experiment and a worker assignment, each checked through the API and MQTT.

Without chromium or the package index the module is skipped (it fails in CI, where
``run-tests`` installs chromium).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from unittest import mock
from urllib.parse import urlparse

import httpx
import pytest

from reactorkit.core.localcluster.layout import ClusterLayout
from reactorkit.core.testing import pio_command

pytestmark = pytest.mark.integration

CHROMIUM = Path(os.environ.get("REACTORKIT_CHROMIUM", "/usr/bin/chromium"))
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync"]
EXPERIMENT = "ui-browser"
WORKERS = ("worker1", "worker2")
JOBS = ("stirring", "od_reading", "growth_rate_calculating")
CALIBRATION = "ui-media"
ESTIMATOR = "ui-fused"
PROFILE_FILE = "ui-profile.yaml"
PROFILE = f"""\
version: "1.0"
experiment_profile_name: UI profile
metadata:
  author: reactorkit tests
common:
  jobs:
    temperature_automation:
      actions:
        - {{type: start, t: 0, options: {{automation_name: only_record_temperature}}}}
"""
SPEEDUP = 20  # simulated seconds per wall second: data for the charts within seconds, the machine not swamped
WAIT_S = 60.0  # upper bound for a state to appear (events are polled; a busy machine only makes it slower)


def unavailable(reason: str) -> None:
    """Skip, or fail in CI (where everything the test needs is installed)."""
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def wait_for(what: str, check: Callable[[], Any], timeout: float = WAIT_S) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except (httpx.HTTPError, KeyError, ValueError, IndexError, TypeError):
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.2)


# ------------------------------------------------------------------------------------------- cluster
@dataclass
class Cluster:
    layout: ClusterLayout
    base: str
    api: httpx.Client
    up_output: str
    mqtt: "Retained"

    def unit_api(self, unit: str) -> httpx.Client:
        return httpx.Client(base_url=self.layout.url(unit), timeout=20, headers=self.layout.headers())

    def running(self, unit: str) -> set[str]:
        with self.unit_api(unit) as client:
            return {row["job_name"] for row in client.get("/unit_api/jobs/running").json()}

    def wait_task(self, response: httpx.Response) -> Any:
        response.raise_for_status()
        body = response.json()
        if "task_id" not in body:
            return body
        return wait_for("a task", lambda: (lambda r: r.json() if r.status_code == 200 else None)(
            self.api.get(body["result_url_path"])))


class Retained:
    """The latest payload of every topic under ``pioreactor/#`` on the cluster's broker (no prefix)."""

    def __init__(self, port: int, credentials: tuple[str, str] | None = None) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.latest: dict[str, str] = {}
        self.lock = threading.Lock()
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2)
        self.client.on_connect = lambda c, *_: c.subscribe("pioreactor/#", qos=1)
        self.client.on_message = self._on_message
        if credentials:
            self.client.username_pw_set(*credentials)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        with self.lock:
            self.latest[message.topic] = message.payload.decode(errors="replace")

    def get(self, topic: str) -> str | None:
        with self.lock:
            return self.latest.get(topic)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def pump_calibration_yaml(unit: str) -> str:
    import yaml

    return yaml.safe_dump({
        "calibration_type": "simple_peristaltic_pump", "calibration_name": CALIBRATION,
        "calibrated_on_pioreactor_unit": unit, "created_at": "2026-01-02T03:04:05.000000Z",
        "curve_data_": {"type": "poly", "coefficients": [0.5, 0.0]}, "x": "Duration", "y": "Volume",
        "recorded_data": {"x": [1.0, 2.0], "y": [0.5, 1.0]}, "hz": 250.0, "dc": 100.0, "voltage": -1.0,
    }, sort_keys=False)


def save_estimator(unit_dir: Path, unit: str) -> None:
    """An od_fused estimator on the unit (written as the unit's own store would)."""
    from reactorkit.core import calibration_store as store
    from reactorkit.core.curves import fit_akima

    logc = [-2.0, -1.0, 0.0, 0.5]
    mu = {a: fit_akima(logc, [g + v for v in (-6.0, -4.0, -2.5, -2.0)]) for a, g in (("45", 0.1), ("90", 0.0))}
    sigma = {a: fit_akima(logc, [-3.0] * 4) for a in ("45", "90")}
    record = {"estimator_type": "od_fused_estimator", "estimator_name": ESTIMATOR, "calibrated_on_pioreactor_unit": unit,
              "created_at": "2026-01-01T00:00:00Z", "ir_led_intensity": 80.0, "angles": ["45", "90"],
              "mu_splines": mu, "sigma_splines_log": sigma, "min_logc": -2.0, "max_logc": 0.5, "sigma_floor": 0.05,
              "recorded_data": {"by_angle": {"45": {"x": logc, "y": [-6, -4, -2.5, -2]}}}, "low_conc_scales": {},
              "y": "log(Voltage)"}
    with mock.patch.dict(os.environ, {"DOT_PIOREACTOR": str(unit_dir)}):
        store.save_estimator("od_fused", record)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        unavailable("the playwright package is not installed (pip install -e '.[test]')")
    if not CHROMIUM.exists():
        unavailable(f"no chromium at {CHROMIUM} (apt-get install -y chromium)")
    state = tmp_path_factory.mktemp("webui")
    root = state / "cluster"
    env = {**os.environ, "DOT_PIOREACTOR": str(state), "REACTORKIT_UI_INSTALL": "1"}
    up = subprocess.run(pio_command("cluster", "up", "--workers", str(len(WORKERS)), "--speedup", str(SPEEDUP),
                                    "--root", str(root)),
                        env=env, capture_output=True, text=True, timeout=600)
    mqtt = None
    try:
        assert up.returncode == 0, up.stderr
        if "Web UI:     not installed" in up.stdout:
            unavailable(f"the web UI could not be installed:\n{up.stdout}")
        layout = ClusterLayout.load(root)
        base = layout.url()
        mqtt = Retained(layout.mqtt_port, layout.mqtt_credentials())
        api = httpx.Client(base_url=base, timeout=30, headers=layout.headers())
        cl = Cluster(layout, base, api, up.stdout, mqtt)
        prepare_experiment(cl, state)
        yield cl
    finally:
        if mqtt is not None:
            mqtt.close()
        subprocess.run(pio_command("cluster", "down", "--root", str(root)), env=env, capture_output=True, timeout=180)


def prepare_experiment(cl: Cluster, state: Path) -> None:
    """An experiment with both workers, their jobs running and data in the charts; a calibration, an
    estimator and a profile, so every route of the UI has something to show."""
    api = cl.api
    assert api.post("/api/experiments", json={"experiment": EXPERIMENT}).status_code in (200, 201)
    for worker in WORKERS:
        assert api.put(f"/api/experiments/{EXPERIMENT}/workers", json={"pioreactor_unit": worker}).status_code < 300
        for job in JOBS:
            accepted = api.post(f"/api/workers/{worker}/jobs/run/job_name/{job}/experiments/{EXPERIMENT}",
                                json={"options": {}})
            assert accepted.status_code == 202, accepted.text
    for worker in WORKERS:
        wait_for(f"{JOBS} on {worker}", lambda w=worker: set(JOBS) <= cl.running(w))
    for worker in WORKERS:  # calibrated pumps, as dosing needs
        for device in ("media_pump", "waste_pump"):
            cl.wait_task(api.post(f"/api/workers/{worker}/calibrations/{device}",
                                  json={"calibration_data": pump_calibration_yaml(worker), "set_as_active": True}))
    save_estimator(cl.layout.unit_dir("worker1"), "worker1")
    assert api.post("/api/experiment_profiles", json={"filename": PROFILE_FILE, "body": PROFILE}).status_code < 300

    def growth_rates_of_every_worker() -> bool:
        series = api.get(f"/api/experiments/{EXPERIMENT}/time_series/growth_rates",
                         params={"lookback": 10000}).json()
        units = {s: len(d) for s, d in zip(series["series"], series["data"])}
        return all(units.get(w, 0) >= 3 for w in WORKERS)

    wait_for("growth rates of every worker", growth_rates_of_every_worker)


# ------------------------------------------------------------------------------------------- browser
@dataclass
class Monitor:
    """What a page did: API calls, those that failed, console and page errors."""

    base: str
    calls: list[tuple[str, str, int]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    blocked: set[str] = field(default_factory=set)
    where: str = ""
    pages: int = 0
    mark: tuple[int, int] = (0, 0)
    mqtt_frames: int = 0
    retried: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (f"web UI: {self.pages} pages opened, {len(self.calls)} API calls, {len(self.failures)} failed calls, "
                f"{len(self.errors)} console/page errors, {len(self.retried)} pages reloaded after the UI's MQTT "
                f"connect timeout {self.retried}; blocked hosts: {sorted(self.blocked)}")

    def ours(self, url: str) -> bool:
        return url.startswith(self.base) or url.startswith("ws://127.0.0.1")

    def attach(self, page: Any) -> None:
        page.on("websocket", self._websocket)
        page.on("response", self._response)
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.errors.append(f"{self.where}: page error: {error}"))
        page.route("**/*", self._route)

    def _websocket(self, socket: Any) -> None:
        if socket.url.endswith("/mqtt"):
            socket.on("framereceived", self._frame)

    def _frame(self, payload: Any) -> None:
        self.mqtt_frames += 1

    def _route(self, route: Any) -> None:
        if self.ours(route.request.url):
            route.continue_()
        else:  # the UI's checks of GitHub releases, plugin lists …: not ours, and no network in tests
            self.blocked.add(urlparse(route.request.url).netloc)
            route.abort()

    def _response(self, response: Any) -> None:
        path = response.url[len(self.base):] if response.url.startswith(self.base) else response.url
        if path.startswith(("/api/", "/unit_api/")):
            self.calls.append((response.request.method, path, response.status))
            if response.status >= 400:
                try:
                    body = response.text()[:300]
                except Exception:
                    body = ""
                self.failures.append(f"{self.where}: {response.request.method} {path} → {response.status} {body}")

    def _console(self, message: Any) -> None:
        if message.type != "error":
            return
        url = (message.location or {}).get("url", "")
        if "Failed to load resource" in message.text and url and not self.ours(url):
            return  # a blocked request to another host
        if "Failed to load resource: the server responded with a status" in message.text and self.ours(url):
            return  # already counted as a failed API call
        self.errors.append(f"{self.where}: console: {message.text[:500]}")


@pytest.fixture(scope="module")
def browser(cluster):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        try:
            yield instance
        finally:
            instance.close()


@pytest.fixture(scope="module")
def monitor(cluster):
    return Monitor(cluster.base)


@pytest.fixture(scope="module")
def page(browser, monitor, cluster):
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(f"{monitor.base}/login#token={cluster.layout.admin_token()}")  # the link `pio cluster up` prints
    page.wait_for_url(f"{monitor.base}/")
    monitor.attach(page)
    yield page
    context.close()
    print(f"\n{monitor.summary()}")
    for line in monitor.failures + monitor.errors:
        print(f"  {line}")


MQTT_UNREACHABLE = "Unable to reach any MQTT broker"


def visit(page: Any, monitor: Monitor, cluster: Cluster, route: str) -> None:
    """Open ``route`` and wait until the page is idle and its MQTT-over-WebSocket connection delivers.

    The UI gives the broker three 1-s attempts to connect; on a machine whose load is many times its cores
    that can pass, so a page that logged it is reloaded once (as a person would), and the reload is listed.
    """
    monitor.where = route
    monitor.pages += 1
    for attempt in (1, 2):
        errors, frames = len(monitor.errors), monitor.mqtt_frames
        if attempt == 1:
            page.goto(cluster.base + route)
        else:
            page.reload()
        try:
            page.wait_for_load_state("networkidle", timeout=15_000)
        except Exception:  # a page that keeps polling is still checked for failures
            pass
        deadline = time.monotonic() + 15
        while monitor.mqtt_frames == frames and time.monotonic() < deadline and not any(
                MQTT_UNREACHABLE in e for e in monitor.errors[errors:]):
            page.wait_for_timeout(100)
        unreachable = [e for e in monitor.errors[errors:] if MQTT_UNREACHABLE in e]
        if attempt == 2 or not unreachable:
            return
        del monitor.errors[errors:]
        monitor.retried.append(route)


def ui_routes(build: Path) -> list[str]:
    """The path patterns of the build's router (``path:"/…"`` in its main bundle)."""
    index = (build / "index.html").read_text()
    main = re.search(r'src="/static/(static/main-[^"]+\.js)"', index).group(1)
    return sorted(set(re.findall(r'path:"([^"]*)"', (build / main).read_text())))


def concrete(pattern: str) -> str:
    values = {"pioreactorUnit": "worker1", "device": "media_pump", "calibrationName": CALIBRATION,
              "profileFilename": PROFILE_FILE, "estimatorName": ESTIMATOR}
    if pattern == "*":
        return "/no-such-page"
    if pattern.startswith("/estimators/"):
        values["device"] = "od_fused"
    return re.sub(r":(\w+)", lambda m: values[m.group(1)], pattern)


# ------------------------------------------------------------------------------------------- tests
def test_cluster_up_installs_the_ui_and_prints_its_address(cluster):
    assert "Fetching the Pioreactor web UI" in cluster.up_output
    assert f"Web UI:     {cluster.base}/login#token={cluster.layout.admin_token()}" in cluster.up_output
    assert "ws://127.0.0.1:" in cluster.up_output
    served = httpx.get(cluster.base + "/overview", headers=cluster.layout.headers())
    assert served.status_code == 200 and '<div id="root">' in served.text
    to_login = httpx.get(cluster.base + "/overview")  # without the login cookie
    assert to_login.status_code == 303 and to_login.headers["location"] == "/login?next=%2Foverview"


def test_every_route_of_the_ui_loads_without_a_failed_call_or_an_error(cluster, page, monitor):
    build = Path(cluster.layout.ui_dir)
    routes = [concrete(p) for p in ui_routes(build)]
    assert len(routes) >= 30 and "/overview" in routes
    for route in routes:
        visit(page, monitor, cluster, route)
        page.wait_for_timeout(300)
    print(f"\n{len(routes)} routes of the build; {monitor.summary()}")
    assert_clean(monitor)


def test_running_jobs_read_on_and_the_overview_draws_a_line_per_worker(cluster, page, monitor):
    visit(page, monitor, cluster, "/pioreactors")
    for worker in WORKERS:
        card = page.locator(".MuiCard-root").filter(has=page.get_by_text(worker, exact=True)).first
        for label in ("Stirring", "Optical density", "Growth rate"):
            activity = card.locator("div").filter(has=page.get_by_text(label, exact=True)).filter(
                has=page.get_by_text(re.compile(r"^(On|Off)$"))).last
            activity.get_by_text("On", exact=True).wait_for()
    visit(page, monitor, cluster, "/overview")

    def charts_with_a_line_per_worker() -> list[str]:
        charts = page.evaluate("""() => Array.from(document.querySelectorAll('.MuiCard-root')).map(card => ({
            title: (card.querySelector('svg text') || {}).textContent || '',
            lines: Array.from(card.querySelectorAll('svg path')).filter(p =>
                /fill: none; stroke: rgb/.test(p.getAttribute('style') || '') && (p.getAttribute('d') || '').length > 50
            ).length,
            legend: Array.from(card.querySelectorAll('svg text')).map(t => t.textContent)}))""")
        return [c["title"] for c in charts if c["lines"] >= len(WORKERS) and set(WORKERS) <= set(c["legend"])]

    drawn = wait_for("a chart with a line per running worker", lambda: charts_with_a_line_per_worker() or None)
    print(f"\ncharts drawing a line per worker: {drawn}")
    assert_clean(monitor)


def test_the_inventory_shows_every_worker_online_with_its_versions(cluster, page, monitor):
    """Each unit's monitor (started by the cluster's supervisord) lights the Inventory's status dot and fills in the
    software version and board; without it the dot stays grey ("Waiting for information...") and they read "-"."""
    from reactorkit import __version__

    visit(page, monitor, cluster, "/inventory")
    online = "rgb(47, 187, 57)"  # the UI's colour for a monitor in "ready" (#2FBB39)
    for worker in WORKERS:
        card = page.locator(".MuiCard-root").filter(has=page.get_by_text(worker, exact=True)).first
        dot = card.locator(".indicator-dot").first
        wait_for(f"{worker}'s status dot to turn green", lambda: online in (dot.get_attribute("style") or "") or None)

        def row(label: str) -> str:
            return card.locator("tr").filter(has=page.get_by_text(label, exact=True)).first.locator("code").inner_text()

        wait_for(f"{worker}'s software version", lambda: row("Software version") == __version__ or None)
        assert row("Raspberry Pi") not in ("", "-")
    assert_clean(monitor)


# ------------------------------------------------------------------------------------------- control
def open_control(page: Any, monitor: Monitor, cluster: Cluster, worker: str) -> Any:
    """The worker's "Control" dialog (Activities, Settings, Dosing … tabs), opened from its page."""
    visit(page, monitor, cluster, f"/pioreactors/{worker}")
    page.get_by_role("button", name="Control", exact=True).first.click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_role("tab", name="Activities").wait_for()
    return dialog


def button_after(scope: Any, title: str, name: str) -> Any:
    """The first button labelled ``name`` after the text ``title`` (the dialog's sections are flat)."""
    return scope.get_by_text(title, exact=True).first.locator(
        f'xpath=following::button[normalize-space(.)="{name}"][1]')


#: What the dialog's state chip of a job reads, for each ``$state`` (the UI's own labels)
STATE_CHIPS = ("Starting", "On", "Paused", "Off", "Lost", "Not available")


def state_after(scope: Any, title: str) -> str:
    """The state chip of the section titled ``title`` (the first chip label after the title).

    Any label counts, not only On/Off: a section reading "Lost" must not be skipped for the chip of a
    later section (e.g. a running temperature automation's "On").
    """
    labels = " or ".join(f'normalize-space(.)="{label}"' for label in STATE_CHIPS)
    return scope.get_by_text(title, exact=True).first.locator(
        f"xpath=following::*[{labels}][1]").inner_text().strip()


def choose(page: Any, label: str, option: str) -> None:
    """Pick ``option`` in the select that follows the text ``label`` (once its options have loaded)."""
    select = page.get_by_text(label, exact=True).first.locator("xpath=following::*[@role='combobox'][1]")

    def chosen() -> bool:
        if option in select.inner_text():
            return True
        select.click()
        choice = page.get_by_role("option", name=option, exact=True)
        if choice.count():
            choice.first.click()
        else:
            page.keyboard.press("Escape")
        return option in select.inner_text()

    wait_for(f"{option!r} chosen in {label!r}", chosen)


def topic(worker: str, *parts: str, experiment: str = EXPERIMENT) -> str:
    return "/".join(("pioreactor", worker, experiment, *parts))


@pytest.fixture(autouse=True)
def since_this_test(request):
    """Each test answers for the failures and errors of its own clicks (the totals are printed at the end)."""
    if "monitor" in request.fixturenames:
        monitor = request.getfixturevalue("monitor")
        monitor.mark = (len(monitor.failures), len(monitor.errors))
    yield


def assert_clean(monitor: Monitor) -> None:
    failures, errors = monitor.mark
    assert monitor.failures[failures:] == []
    assert monitor.errors[errors:] == []


def test_editing_the_config_in_the_ui_saves_it_and_reaches_the_workers(cluster, page, monitor):
    visit(page, monitor, cluster, "/config")
    editor = page.locator("textarea").first
    editor.wait_for()
    wait_for("the config in the editor", lambda: "[cluster.topology]" in editor.input_value())
    editor.fill(editor.input_value().rstrip("\n") + "\n\n[ui.browser_test]\nedited = 1\n")
    page.get_by_role("button", name="Save").click()
    wait_for("the saved config", lambda: "[ui.browser_test]" in cluster.api.get("/api/config/shared").text)
    with cluster.unit_api("worker1") as worker:
        wait_for("the config on worker1",
                 lambda: worker.get("/unit_api/config/merged").json().get("ui.browser_test") == {"edited": "1"})
    assert_clean(monitor)


def test_exporting_a_dataset_in_the_ui_downloads_its_rows(cluster, page, monitor):
    import io
    import zipfile

    visit(page, monitor, cluster, "/export-data")
    export = page.locator("button[type=submit]").filter(has_text="Export")

    def od_readings_of_the_experiment_chosen() -> bool:  # the form fills in as its data arrives
        choose(page, "Experiment", EXPERIMENT)
        page.locator("input[name=od_readings]").check()
        return export.is_enabled()

    wait_for("the export button enabled", od_readings_of_the_experiment_chosen)
    with page.expect_download(timeout=WAIT_S * 1000) as download:
        export.click()
    archive = zipfile.ZipFile(io.BytesIO(Path(download.value.path()).read_bytes()))
    csvs = [name for name in archive.namelist() if name.endswith(".csv") and "od_readings" in name]
    assert csvs, archive.namelist()
    rows = archive.read(csvs[0]).decode().splitlines()
    assert len(rows) > 2 and all(worker in "".join(rows) for worker in WORKERS)
    assert_clean(monitor)


def test_changing_target_rpm_in_the_ui_reaches_the_job_and_shows_live(cluster, page, monitor):
    dialog = open_control(page, monitor, cluster, "worker1")
    dialog.get_by_role("tab", name="Settings").click()
    title = dialog.get_by_text("Target RPM", exact=True).first
    title.locator("xpath=following::input[1]").fill("650")
    button_after(dialog, "Target RPM", "Update").click()
    wait_for("target_rpm 650 over MQTT", lambda: float(cluster.mqtt.get(topic("worker1", "stirring", "target_rpm"))) == 650)
    seen = time.monotonic()
    dialog.get_by_role("button", name="close").click()
    page.get_by_text("650 RPM", exact=True).first.wait_for()
    print(f"\ntarget RPM shown in the UI {time.monotonic() - seen:.2f} s after the job published it")
    with cluster.unit_api("worker1") as worker:
        assert float(worker.get("/unit_api/jobs/settings/job_name/stirring").json()["settings"]["target_rpm"]) == 650
    assert_clean(monitor)


def test_stopping_and_starting_stirring_and_od_reading_in_the_ui(cluster, page, monitor):
    for job, title in (("stirring", "Stirring"), ("od_reading", "Optical density")):
        dialog = open_control(page, monitor, cluster, "worker1")
        button_after(dialog, title, "Stop").click()
        wait_for(f"{job} stopped", lambda j=job: j not in cluster.running("worker1"))
        wait_for(f"{job} $state disconnected", lambda j=job: cluster.mqtt.get(topic("worker1", j, "$state")) == "disconnected")
        wait_for(f"{title} Off in the UI", lambda t=title: state_after(dialog, t) == "Off")
        button_after(dialog, title, "Start").click()
        wait_for(f"{job} running again", lambda j=job: j in cluster.running("worker1"))
        wait_for(f"{job} $state ready", lambda j=job: cluster.mqtt.get(topic("worker1", j, "$state")) == "ready")
        wait_for(f"{title} On in the UI", lambda t=title: state_after(dialog, t) == "On")
        dialog.get_by_role("button", name="close").click()
    assert_clean(monitor)


def test_starting_a_dosing_automation_in_the_ui(cluster, page, monitor):
    dialog = open_control(page, monitor, cluster, "worker2")
    button_after(dialog, "Dosing automation", "Start").click()
    dialog.get_by_text("Select dosing automation").wait_for()
    page.locator("input[name=current_volume_ml], input#current_volume_ml").first.fill("15")  # the vial holds 15 mL now
    page.get_by_role("dialog").get_by_role("button", name="Start", exact=True).last.click()
    wait_for("dosing_automation on worker2", lambda: "dosing_automation" in cluster.running("worker2"))
    wait_for("the automation's name over MQTT",
             lambda: cluster.mqtt.get(topic("worker2", "dosing_automation", "automation_name")) == "chemostat")
    wait_for("the vial's volume set at start",
             lambda: float(cluster.mqtt.get(topic("worker2", "bioreactor", "current_volume_ml"))) >= 15)
    assert_clean(monitor)


def test_running_an_experiment_profile_in_the_ui(cluster, page, monitor):
    visit(page, monitor, cluster, "/experiment-profiles")
    choose(page, "Experiment profile", "UI profile")
    page.get_by_role("button", name="Run profile").click()
    for worker in WORKERS:  # the profile starts temperature_automation on every assigned worker at t=0
        wait_for(f"the profile's temperature_automation on {worker}",
                 lambda w=worker: "temperature_automation" in cluster.running(w))
    wait_for("the automation's name over MQTT", lambda: cluster.mqtt.get(
        topic("worker1", "temperature_automation", "automation_name")) == "only_record_temperature")
    recent = cluster.api.get(f"/api/experiments/{EXPERIMENT}/experiment_profiles/recent").json()
    assert any(run["experiment_profile_name"] == "UI profile" for run in recent)
    assert_clean(monitor)


def test_after_a_broker_restart_the_ui_shows_the_jobs_running_and_its_settings_reach_them(cluster, page, monitor):
    """The cluster's mosquitto restarted under an open page whose jobs the broker declared lost: the jobs
    reconnect and re-announce ``ready``, the page's own MQTT connection comes back and shows them running,
    and a setting changed in the UI afterwards reaches the job and shows live."""
    from reactorkit.core.localcluster.broker import wait_for_port
    from reactorkit.core.localcluster.supervisor import ctl

    dialog = open_control(page, monitor, cluster, "worker1")
    for job in JOBS:  # what the broker publishes for a job whose connection dropped (its last will)
        cluster.mqtt.client.publish(topic("worker1", job, "$state"), "lost", qos=1, retain=True).wait_for_publish(10)
    dialog.get_by_text("Lost", exact=True).first.wait_for()  # the page shows what the broker says
    restarted = ctl(cluster.layout, "restart", "broker")
    assert "started" in restarted.stdout, restarted.stdout + restarted.stderr
    wait_for_port(cluster.layout.mqtt_port)
    back = time.monotonic()
    for job in JOBS:
        wait_for(f"{job} $state ready after the restart",
                 lambda j=job: cluster.mqtt.get(topic("worker1", j, "$state")) == "ready")
    assert set(JOBS) <= cluster.running("worker1")
    # The page's own MQTT connection comes back on its own schedule (its reconnect, then the retained states
    # of every topic it follows): on a loaded machine it can follow the jobs' ready by seconds.
    for title in ("Stirring", "Optical density", "Growth rate"):
        wait_for(f"{title} On in the UI after the restart", lambda t=title: state_after(dialog, t) == "On")
    wait_for("no section of the dialog reading Lost after the restart",
             lambda: dialog.get_by_text("Lost", exact=True).count() == 0)
    print(f"\njobs shown running in the UI {time.monotonic() - back:.1f} s after the broker was back")
    dialog.get_by_role("tab", name="Settings").click()
    dialog.get_by_text("Target RPM", exact=True).first.locator("xpath=following::input[1]").fill("720")
    button_after(dialog, "Target RPM", "Update").click()
    wait_for("target_rpm 720 over MQTT",
             lambda: float(cluster.mqtt.get(topic("worker1", "stirring", "target_rpm")) or 0) == 720)
    dialog.get_by_role("button", name="close").click()
    page.get_by_text("720 RPM", exact=True).first.wait_for()
    with cluster.unit_api("worker1") as worker:
        assert float(worker.get("/unit_api/jobs/settings/job_name/stirring").json()["settings"]["target_rpm"]) == 720
    failures, _ = monitor.mark
    assert monitor.failures[failures:] == []  # (console errors of the page's MQTT reconnect are expected)


def test_creating_an_experiment_and_assigning_a_worker_in_the_ui(cluster, page, monitor):
    visit(page, monitor, cluster, "/start-new-experiment")
    page.get_by_label("Experiment name").fill("ui-second")
    page.get_by_role("button", name="Save").click()
    wait_for("the new experiment", lambda: any(
        e["experiment"] == "ui-second" for e in cluster.api.get("/api/experiments").json()))
    page.wait_for_url("**/overview")
    visit(page, monitor, cluster, "/pioreactors")
    # The page learns its experiment after it has loaded (it asks for the newest), and the dialog fetches its
    # worker list when it opens, from the experiment the page has then; it assigns to that experiment. Clicked
    # before either had arrived, the dialog assigned worker2 to no experiment (or found it already in
    # ui-browser's). So: open it once the page's experiment selector reads ui-second, and check worker2 once
    # the dialog names ui-second and lists worker2 as not in it.
    page.get_by_text("ui-second", exact=True).first.wait_for(state="attached")
    page.get_by_role("button", name="Assign Pioreactors").first.click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_text("ui-second", exact=True).first.wait_for()
    worker2 = dialog.get_by_label("worker2")
    worker2.wait_for()
    wait_for("worker2 listed as not in ui-second", lambda: not worker2.is_checked())
    worker2.check()
    before = len(monitor.calls)
    dialog.get_by_role("button", name="Assign 1", exact=True).click()
    try:
        wait_for("worker2 assigned to ui-second", lambda: {
            a["pioreactor_unit"]: a["experiment"] for a in cluster.api.get("/api/workers/assignments").json()
        }.get("worker2") == "ui-second")
    except pytest.fail.Exception:  # name what the UI sent, to tell a call never made from one that went elsewhere
        sent = [call for call in monitor.calls[before:] if call[0] != "GET"]
        assignments = cluster.api.get("/api/workers/assignments").json()
        pytest.fail(f"worker2 not assigned to ui-second; the UI sent {sent}; assignments now {assignments}")
    assert_clean(monitor)
