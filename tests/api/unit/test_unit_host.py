"""/unit_api/system/disk_space, memory and ipv4: the unit's host as the web UI shows it."""

import falcon.testing
import pytest

from reactorkit.api.app import create_app
from reactorkit.core.plugins import Registry


@pytest.fixture
def unit_api(plugin_manager, tmp_path, monkeypatch):
    monkeypatch.setenv("DOT_PIOREACTOR", str(tmp_path))
    return falcon.testing.TestClient(create_app(Registry.from_plugins(plugin_manager), unit="w1", leader=False))


@pytest.mark.parametrize("path", ["/unit_api/system/disk_space", "/unit_api/system/memory"])
def test_space_is_available_and_total_bytes(unit_api, path):
    answer = unit_api.simulate_get(path).json
    assert set(answer) == {"available_bytes", "total_bytes"}
    assert isinstance(answer["total_bytes"], int) and 0 < answer["available_bytes"] <= answer["total_bytes"]


def test_ipv4_is_a_dotted_address(unit_api):
    address = unit_api.simulate_get("/unit_api/system/ipv4").json["ipv4_address"]
    assert address is None or len(address.split(".")) == 4


def test_job_flags_are_integers(unit_api):
    from reactorkit.api.unit.jobs import as_row

    row = as_row({"job_name": "stirring", "is_running": True, "is_long_running_job": False})
    assert row["is_running"] == 1 and row["is_long_running_job"] == 0
    assert type(row["is_running"]) is int


def test_the_ui_is_not_served_by_a_worker(unit_api):
    assert unit_api.simulate_get("/").status_code == 404
