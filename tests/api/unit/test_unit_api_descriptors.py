"""Descriptors and capabilities: the union of what plugins registered, in the contract's shapes (§5)."""

import falcon.testing
import pytest

from reactorkit.api.app import create_app
from reactorkit.core.descriptors import (
    AutomationDescriptor,
    AutomationField,
    ChartDescriptor,
    CliOption,
    DatasetDescriptor,
    JobDescriptor,
    PublishedSetting,
)
from reactorkit.core.hooks import hookimpl
from reactorkit.core.plugins import Registry


class _Job:
    pass


class PluginA:
    @hookimpl
    def register_jobs(self):
        yield JobDescriptor(job_name="alpha", display_name="Alpha", job_class=_Job, description="First.",
                            published_settings=(PublishedSetting(key="speed", unit="RPM", label="Speed",
                                                                 editable=True, min=0, max=10),),
                            cli_options=(CliOption(name="speed_limit", type="float", help="Max speed, RPM."),
                                         CliOption(name="quiet", type="flag")))

    @hookimpl
    def register_automations(self):
        yield AutomationDescriptor(automation_type="dosing", automation_name="chemo", display_name="Chemostat",
                                   automation_class=_Job,
                                   fields=(AutomationField(key="volume", label="Volume", unit="mL", default=1.0),))

    @hookimpl
    def register_charts(self):
        yield ChartDescriptor(chart_key="alpha_speed", data_source="alpha_speeds", title="Alpha speed",
                              y_axis_domain=(0, 10))


class PluginB:
    @hookimpl
    def register_jobs(self):
        yield JobDescriptor(job_name="beta", display_name="Beta", job_class=_Job, cli_arguments=("profile_path",))

    @hookimpl
    def register_automations(self):
        yield AutomationDescriptor(automation_type="led", automation_name="light_dark", display_name="Light/Dark",
                                   automation_class=_Job)

    @hookimpl
    def register_datasets(self):
        yield DatasetDescriptor(dataset_name="beta_rows", display_name="Beta rows", table="beta_rows")


@pytest.fixture
def registry(plugin_manager):
    from reactorkit.builtin_plugins import dosing, leds

    plugin_manager.register(PluginA(), name="plugin_a")
    plugin_manager.register(PluginB(), name="plugin_b")
    plugin_manager.register(_SettingsOnly(dosing), name="dosing")  # the collections come from their plugins
    plugin_manager.register(_SettingsOnly(leds), name="leds")
    return Registry.from_plugins(plugin_manager)


class _SettingsOnly:
    """Only the settings collections of a built-in plugin (its jobs would change the other assertions)."""

    def __init__(self, plugin):
        self._plugin = plugin

    @hookimpl
    def register_settings_collections(self):
        return self._plugin.register_settings_collections()


@pytest.fixture
def leader(registry, tmp_path, monkeypatch):
    monkeypatch.setenv("DOT_PIOREACTOR", str(tmp_path))
    return falcon.testing.TestClient(create_app(registry, unit="leader", leader=True))


@pytest.fixture
def worker(registry, tmp_path, monkeypatch):
    monkeypatch.setenv("DOT_PIOREACTOR", str(tmp_path))
    return falcon.testing.TestClient(create_app(registry, unit="worker", leader=False))


def test_job_descriptors_are_the_union_of_the_plugins(worker):
    jobs = worker.simulate_get("/unit_api/jobs/descriptors").json
    assert [j["job_name"] for j in jobs] == ["alpha", "beta"]
    alpha = jobs[0]
    assert {"display_name", "job_name", "display", "published_settings", "source", "description", "subtext",
            "is_testing"} <= set(alpha)
    assert alpha["source"] == "plugin_a"
    setting = alpha["published_settings"][0]
    assert {"key", "type", "display", "description", "default", "unit", "label", "editable", "min", "max"} <= set(setting)
    assert (setting["key"], setting["unit"], setting["editable"], setting["max"]) == ("speed", "RPM", True, 10)
    assert "job_class" not in alpha and "cli_options" not in alpha


def test_automation_descriptors_by_type(worker):
    dosing = worker.simulate_get("/unit_api/automations/descriptors/dosing").json
    assert [a["automation_name"] for a in dosing] == ["chemo"]
    assert dosing[0]["fields"][0] == {"key": "volume", "label": "Volume", "type": "numeric", "unit": "mL",
                                      "default": 1.0, "required": True, "disabled": False, "options": None}
    assert [a["automation_name"] for a in worker.simulate_get("/unit_api/automations/descriptors/led").json] == [
        "light_dark"]
    assert worker.simulate_get("/unit_api/automations/descriptors/temperature").json == []


def test_an_unknown_automation_type_is_a_400_naming_the_choices(worker):
    result = worker.simulate_get("/unit_api/automations/descriptors/ph")
    assert result.status_code == 400
    assert result.json["status"] == 400
    assert result.json["remediation"] == "Use one of: dosing, led, temperature."
    assert "ph" in result.json["error"]


def test_settings_descriptors_are_the_collections_the_plugins_register(worker):
    collections = {c["key"]: c for c in worker.simulate_get("/unit_api/settings/descriptors").json}
    assert set(collections) == {"bioreactor", "leds", "pwms"}
    keys = [s["key"] for s in collections["bioreactor"]["published_settings"]]
    assert keys == ["current_volume_ml", "efflux_tube_volume_ml", "alt_media_fraction", "cumulative_media_added_ml",
                    "cumulative_alt_media_added_ml", "cumulative_waste_removed_ml"]
    fraction = collections["bioreactor"]["published_settings"][2]
    assert (fraction["min"], fraction["max"]) == (0.0, 1.0)


def test_settings_defaults_follow_the_config(worker, tmp_path):
    from reactorkit.core.config import set_config

    (tmp_path / "config.ini").write_text("[bioreactor]\ninitial_volume_ml = 12.5\n")
    set_config(None)
    try:
        collections = {c["key"]: c for c in worker.simulate_get("/unit_api/settings/descriptors").json}
    finally:
        set_config(None)
    assert collections["bioreactor"]["published_settings"][0]["default"] == 12.5


def test_capabilities_list_options_and_settings(worker):
    caps = {c["job_name"]: c for c in worker.simulate_get("/unit_api/capabilities").json}
    alpha = caps["alpha"]
    assert alpha["cli_example"] == "pio run alpha [OPTIONS]"
    options = {o["name"]: o for o in alpha["options"]}
    assert options["speed_limit"] == {"name": "speed_limit", "long_flag": "speed-limit", "help": "Max speed, RPM.",
                                      "required": False, "multiple": False, "default": None, "type": "float"}
    assert options["quiet"]["type"] == "boolean" and options["quiet"]["default"] is False
    assert alpha["published_settings"]["speed"] == {"datatype": "float", "settable": True, "unit": "RPM"}
    assert alpha["published_settings"]["state"] == {"datatype": "string", "settable": True}
    assert alpha["arguments"] == []
    assert [a["name"] for a in caps["beta"]["arguments"]] == ["profile_path"]


def test_leader_serves_charts_datasets_and_the_classic_aliases(leader):
    assert leader.simulate_get("/api/jobs/descriptors").json == leader.simulate_get("/api/contrib/jobs").json
    assert [j["job_name"] for j in leader.simulate_get("/api/jobs/descriptors").json] == ["alpha", "beta"]
    charts = leader.simulate_get("/api/charts/descriptors").json
    assert charts == leader.simulate_get("/api/contrib/charts").json
    assert charts[0]["chart_key"] == "alpha_speed" and charts[0]["y_axis_domain"] == [0, 10]
    datasets = leader.simulate_get("/api/datasets/exportable").json
    assert [d["dataset_name"] for d in datasets] == ["beta_rows"]
    assert datasets == leader.simulate_get("/api/contrib/exportable_datasets").json
    assert leader.simulate_get("/api/contrib/automations/dosing").json == leader.simulate_get(
        "/api/automations/descriptors/dosing").json
    assert leader.simulate_get("/api/settings/descriptors").json == leader.simulate_get(
        "/unit_api/settings/descriptors").json
    assert leader.simulate_get("/api/contrib/automations/nope").status_code == 400


def test_a_worker_has_no_api_routes(worker):
    result = worker.simulate_get("/api/jobs/descriptors")
    assert result.status_code == 404
    assert set(result.json) >= {"error", "cause", "status"}


def test_a_plugin_settings_collection_is_listed_with_its_defaults(plugin_manager, tmp_path, monkeypatch):
    from reactorkit.core.descriptors import PublishedSetting, SettingsCollection

    class PhProbe:
        @hookimpl
        def register_settings_collections(self):
            yield SettingsCollection(
                key="ph_probe", display_name="pH probe",
                published_settings=(PublishedSetting(key="offset", unit="pH", editable=True, min=-1, max=1),),
                defaults=lambda config: {"offset": config.getfloat("ph_probe", "offset", fallback=0.05)})

    monkeypatch.setenv("DOT_PIOREACTOR", str(tmp_path))
    plugin_manager.register(PhProbe(), name="ph")
    app = create_app(Registry.from_plugins(plugin_manager), unit="worker", leader=False)
    (collection,) = falcon.testing.TestClient(app).simulate_get("/unit_api/settings/descriptors").json
    assert collection["key"] == "ph_probe" and collection["source"] == "ph"
    setting = collection["published_settings"][0]
    assert (setting["key"], setting["unit"], setting["min"], setting["max"], setting["default"]) == (
        "offset", "pH", -1, 1, 0.05)
