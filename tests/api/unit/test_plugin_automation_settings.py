"""A plugin automation's fields are settings of its host job: listed, editable and bounded like a built-in's."""

from __future__ import annotations

import falcon.testing

from reactorkit.api.app import create_app
from reactorkit.builtin_plugins import dosing
from reactorkit.core.descriptors import AutomationDescriptor, AutomationField
from reactorkit.core.hooks import hookimpl
from reactorkit.core.plugins import Registry


class PhStat:
    @hookimpl
    def register_automations(self):
        yield AutomationDescriptor(automation_type="dosing", automation_name="ph_stat", display_name="pH-stat",
                                   fields=(AutomationField(key="target_ph", label="Target pH", unit="pH", default=7.0,
                                                           min=2, max=12),),
                                   automation_class="ph_plugin.automation:PhStat")


def worker(plugin_manager, tmp_path, monkeypatch):
    monkeypatch.setenv("DOT_PIOREACTOR", str(tmp_path))
    plugin_manager.register(dosing, name="dosing")
    plugin_manager.register(PhStat(), name="ph")
    return falcon.testing.TestClient(create_app(Registry.from_plugins(plugin_manager), unit="w1", leader=False))


def test_the_host_job_lists_the_plugin_automations_field_as_an_editable_setting(plugin_manager, tmp_path, monkeypatch):
    jobs = {j["job_name"]: j for j in worker(plugin_manager, tmp_path, monkeypatch)
            .simulate_get("/unit_api/jobs/descriptors").json}
    settings = {s["key"]: s for s in jobs["dosing_automation"]["published_settings"]}
    target = settings["target_ph"]
    assert (target["editable"], target["unit"], target["min"], target["max"], target["label"]) == (
        True, "pH", 2, 12, "Target pH")
    assert settings["automation_name"]["editable"] is False  # the host's own settings stay as declared


def test_an_out_of_range_value_for_it_is_refused_by_the_api(plugin_manager, tmp_path, monkeypatch):
    client = worker(plugin_manager, tmp_path, monkeypatch)
    result = client.simulate_patch("/unit_api/jobs/settings/job_name/dosing_automation",
                                   json={"settings": {"target_ph": 13}})
    assert result.status_code == 400
    assert "between 2 and 12 pH" in result.json["cause"]


def test_every_automation_setting_of_the_host_comes_from_an_automation_field_built_in_or_plugin(plugin_manager):
    from reactorkit.builtin_plugins.dosing.descriptors import DOSING_AUTOMATION

    plugin_manager.register(dosing, name="dosing")
    plugin_manager.register(PhStat(), name="ph")
    registry = Registry.from_plugins(plugin_manager)
    own = {s.key for s in DOSING_AUTOMATION.published_settings}
    assert own == {"automation_name", "duration", "latest_event"}  # the host's (AutomationJob's) own settings
    fields = {}
    for automation in registry.automations["dosing"].values():
        for automation_field in automation.fields:
            fields.setdefault(automation_field.key, automation_field)
    derived = {s.key: s for s in registry.jobs["dosing_automation"].published_settings if s.key not in own}
    assert set(derived) == set(fields) - own
    assert {"target_biomass", "exchange_volume_ml", "dosing_volume_ml", "target_ph"} <= set(derived)
    for key, setting in derived.items():
        assert setting == fields[key].as_setting(), key
    assert derived["target_ph"].display is True and derived["target_biomass"].display is True  # on the job card
    assert derived["target_biomass"].min == 0 and derived["biomass_signal"].editable is False


def test_each_built_in_automation_job_takes_its_settings_from_its_fields():
    from reactorkit.core.descriptors import resolve
    from reactorkit.core.job import setting_specs

    registry = Registry.installed()
    checked = 0
    for named in registry.automations.values():
        for automation in named.values():
            if automation.source != "app" or not automation.fields:
                continue
            specs = setting_specs(resolve(automation.automation_class).published_settings)
            for automation_field in automation.fields:
                spec = specs[automation_field.key]
                assert spec["settable"] is automation_field.editable, (automation.key, automation_field.key)
                assert (spec["unit"], spec["min"], spec["max"]) == (
                    automation_field.unit, automation_field.min, automation_field.max), (automation.key, spec)
                checked += 1
    assert checked >= 10
