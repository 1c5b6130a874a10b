"""The API refuses a setting or a job option outside the bounds its PublishedSetting declares (400, error shape)."""

import pytest

ERROR_KEYS = {"error", "cause", "remediation", "status"}


def assert_refused(result, *words):
    assert result.status_code == 400, result.text
    assert set(result.json) == ERROR_KEYS
    for word in words:
        assert word in result.json["cause"], result.json


def test_a_setting_below_its_minimum_is_refused_by_the_unit(unit_client):
    result = unit_client.simulate_patch("/unit_api/jobs/settings/job_name/stirring",
                                        json={"settings": {"target_rpm": -100}})
    assert_refused(result, "target_rpm", "between 0 and 5000 RPM", "-100")
    assert "between 0 and 5000 RPM" in result.json["remediation"]


@pytest.mark.parametrize("settings, words", [
    ({"target_rpm": "fast"}, ("target_rpm", "a number")),
    ({"target_rpm": "6000"}, ("target_rpm", "between 0 and 5000 RPM")),
    ({"duty_cycle": 101}, ("duty_cycle", "between 0 and 100 %")),
    ({"measured_rpm": 5}, ("measured_rpm", "not editable")),
])
def test_each_declared_fact_of_a_setting_is_enforced(unit_client, settings, words):
    result = unit_client.simulate_patch("/unit_api/jobs/settings/job_name/stirring", json={"settings": settings})
    assert_refused(result, *words)


def test_a_setting_inside_its_bounds_passes_the_check(unit_client):
    result = unit_client.simulate_patch("/unit_api/jobs/settings/job_name/stirring",
                                        json={"settings": {"target_rpm": 300}})
    assert result.status_code == 404  # checked, then: stirring is not running on this unit
    assert "not running" in result.json["error"]


def test_a_run_option_outside_the_settings_bounds_is_refused(unit_client):
    result = unit_client.simulate_post("/unit_api/jobs/run/job_name/stirring", json={"options": {"target_rpm": -100}})
    assert_refused(result, "options.target_rpm", "between 0 and 5000 RPM")


def test_the_leader_refuses_before_fanning_out(leader_client):
    update = leader_client.simulate_patch("/api/workers/$broadcast/jobs/update/job_name/stirring/experiments/exp1",
                                          json={"settings": {"target_rpm": -100}})
    assert_refused(update, "target_rpm", "between 0 and 5000 RPM")
    run = leader_client.simulate_post("/api/workers/$broadcast/jobs/run/job_name/stirring/experiments/exp1",
                                      json={"options": {"target_rpm": -100}})
    assert_refused(run, "options.target_rpm")
