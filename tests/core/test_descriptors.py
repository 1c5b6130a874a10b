"""Descriptors validate on construction and serialize to the contract's fields."""

import pytest

from reactorkit.core.descriptors import (
    AutomationDescriptor,
    AutomationField,
    CalibrationProtocolDescriptor,
    DatasetDescriptor,
    JobDescriptor,
    PublishedSetting,
    RouteDescriptor,
    resolve,
)


def test_job_descriptor_serializes_contract_fields_only():
    d = JobDescriptor(job_name="stirring", display_name="Stirring", job_class="x:Y",
                      published_settings=(PublishedSetting(key="target_rpm", unit="RPM", editable=True),))
    out = d.to_dict()
    assert "job_class" not in out and "cli_options" not in out
    assert out["published_settings"][0] == {
        "key": "target_rpm", "type": "numeric", "datatype": "float", "unit": "RPM", "label": "Target rpm",
        "description": "", "editable": True, "display": True, "min": None, "max": None,
    }


@pytest.mark.parametrize("name", ["Stirring", "od-reading", "1job", ""])
def test_job_name_must_be_snake_case(name):
    with pytest.raises(ValueError, match="snake_case"):
        JobDescriptor(job_name=name, display_name="X", job_class="x:Y")


def test_reserved_job_names_are_refused():
    with pytest.raises(ValueError, match="reserved"):
        JobDescriptor(job_name="leds", display_name="LEDs", job_class="x:Y")


def test_duplicate_setting_keys_are_refused():
    with pytest.raises(ValueError, match="given twice"):
        JobDescriptor(job_name="j", display_name="J", job_class="x:Y",
                      published_settings=(PublishedSetting(key="a"), PublishedSetting(key="a")))


def test_setting_min_above_max_is_refused():
    with pytest.raises(ValueError, match="min"):
        PublishedSetting(key="a", min=5, max=1)


def test_select_field_needs_options():
    with pytest.raises(ValueError, match="options"):
        AutomationField(key="mode", label="Mode", type="select")


def test_unknown_automation_type_is_refused():
    with pytest.raises(ValueError, match="dosing, led, temperature"):
        AutomationDescriptor(automation_type="ph", automation_name="x", display_name="X", automation_class=object)


def test_dataset_needs_exactly_one_of_table_and_query():
    with pytest.raises(ValueError, match="exactly one"):
        DatasetDescriptor(dataset_name="d", display_name="D")
    with pytest.raises(ValueError, match="exactly one"):
        DatasetDescriptor(dataset_name="d", display_name="D", table="t", query="SELECT 1")


def test_protocol_id_joins_device_and_protocol():
    p = CalibrationProtocolDescriptor(target_device="media_pump", protocol_name="duration_based", title="T")
    assert p.to_dict()["id"] == "media_pump_duration_based"


def test_route_paths_stay_under_the_two_api_roots():
    with pytest.raises(ValueError, match="/unit_api/"):
        RouteDescriptor(path="/admin", resource=object())


def test_resolve_imports_lazily_by_path():
    assert resolve("os.path:join") is __import__("os").path.join
    with pytest.raises(ModuleNotFoundError):
        resolve("no_such_module_here:x")
