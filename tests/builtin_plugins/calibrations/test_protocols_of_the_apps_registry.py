"""Calibration routes read the protocols of the registry their app was built with (no registry of their own)."""

import falcon.testing

from reactorkit.api.app import create_app
from reactorkit.builtin_plugins import calibrations
from reactorkit.core.config import set_config
from reactorkit.core.plugins import Registry
from reactorkit.plugin import CalibrationProtocolDescriptor, hookimpl


class PhProtocol:
    @hookimpl
    def register_calibration_protocols(self):
        yield CalibrationProtocolDescriptor(target_device="ph_probe", protocol_name="buffer_offset",
                                            title="pH buffer offset")


def app_with(plugin_manager, *extra):
    plugin_manager.register(calibrations, name="calibrations")
    for plugin in extra:
        plugin_manager.register(plugin, name=type(plugin).__name__)
    return falcon.testing.TestClient(create_app(Registry.from_plugins(plugin_manager), unit="unit1", leader=False))


def test_each_app_lists_the_protocols_of_its_own_registry(tmp_path, monkeypatch):
    from reactorkit.core.plugins import make_plugin_manager

    monkeypatch.setenv("DOT_PIOREACTOR", str(tmp_path))
    set_config(None)
    with_ph = app_with(make_plugin_manager(load_installed=False)[0], PhProtocol())
    without = app_with(make_plugin_manager(load_installed=False)[0])
    assert [p["id"] for p in with_ph.simulate_get("/unit_api/calibration_protocols").json] == ["ph_probe_buffer_offset"]
    assert without.simulate_get("/unit_api/calibration_protocols").json == []
    # a session of a protocol only the other app knows is refused with the engine's 400
    started = without.simulate_post("/unit_api/calibrations/sessions",
                                    json={"target_device": "ph_probe", "protocol_name": "buffer_offset"})
    assert started.status_code == 400
    set_config(None)
