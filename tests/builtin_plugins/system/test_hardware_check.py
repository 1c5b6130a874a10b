"""/unit_api/hardware/check: ok, warning or skipped — skipped off a Raspberry Pi, with the reason."""

import uuid

import pytest

from reactorkit.builtin_plugins.system import hardware_check
from reactorkit.core.config import Config, set_config


def config(text=""):
    out = Config()
    out.read_string(text)
    return out


def test_i2c_addresses_are_parsed_and_checked():
    assert hardware_check.parse_addresses("0x48, 0x2c;  10") == [0x48, 0x2C, 10]
    assert hardware_check.parse_addresses("") == []
    with pytest.raises(ValueError, match="7-bit"):
        hardware_check.parse_addresses("0x90")


@pytest.fixture
def fake_dev(tmp_path, monkeypatch):
    dev = tmp_path / "dev"
    dev.mkdir()
    monkeypatch.setattr(hardware_check, "DEV", dev)
    return dev


def test_pi_checks_name_what_is_missing(fake_dev, monkeypatch):
    monkeypatch.setattr(hardware_check, "gpio_installed", lambda: False)
    checks = {c["name"]: c for c in hardware_check.pi_checks(config())}
    assert checks["gpio"]["ok"] is False and "reactorkit[pi]" in checks["gpio"]["detail"]
    assert checks["spi_adc"]["ok"] is False and "spidev0.0" in checks["spi_adc"]["detail"]
    assert checks["i2c"]["ok"] is None  # nothing configured: not counted
    (fake_dev / "spidev1.2").write_text("")
    checks = {c["name"]: c for c in hardware_check.pi_checks(
        config("[hardware.pi]\nadc_bus = 1\nadc_device = 2\ni2c_addresses = 0x48\ni2c_bus = 3\n"))}
    assert checks["spi_adc"]["ok"] is True
    assert checks["i2c"]["ok"] is False  # /dev/i2c-3 does not exist
    assert "/dev/i2c-3" in checks["i2c"]["detail"] and "enable I2C" in checks["i2c"]["detail"]


def test_on_a_pi_every_check_passing_is_ok_and_one_failing_a_warning(fake_dev, tmp_path, monkeypatch):
    monkeypatch.setenv("DOT_PIOREACTOR", str(tmp_path))
    monkeypatch.setenv("HARDWARE", "pi")
    monkeypatch.setenv("HOSTNAME", "pi_unit")
    monkeypatch.setenv("MQTT_TOPIC_PREFIX", f"t{uuid.uuid4().hex[:10]}/")
    monkeypatch.setattr(hardware_check, "gpio_installed", lambda: True)
    set_config(None)
    try:
        (fake_dev / "spidev0.0").write_text("")
        result = hardware_check.check_hardware("pioreactor_40ml", "1.5")
        assert (result["status"], result["backend"]) == ("ok", "pi")
        assert result["reason"] == "Correct hardware found for pioreactor_40ml 1.5."
        (fake_dev / "spidev0.0").unlink()
        result = hardware_check.check_hardware("pioreactor_40ml", "1.5")
        assert result["status"] == "warning" and "spidev0.0" in result["reason"]
        assert "Hardware check" in (tmp_path / "logs" / "pioreactor.log").read_text()
    finally:
        set_config(None)


@pytest.mark.integration
def test_the_route_checks_the_model_then_queues_the_check(leader_client, run_tasks):
    missing = leader_client.simulate_post("/unit_api/hardware/check", json={"model_name": "pioreactor_40ml"})
    assert missing.status_code == 400 and "model_version" in missing.json["cause"]
    unknown = leader_client.simulate_post("/unit_api/hardware/check",
                                          json={"model_name": "pioreactor_9000ml", "model_version": "1.5"})
    assert unknown.status_code == 400 and "pioreactor_9000ml" in unknown.json["cause"]
    for method in ("POST", "PATCH"):
        accepted = leader_client.simulate_request(method, "/unit_api/hardware/check",
                                                  json={"model_name": "pioreactor_20ml", "model_version": "1.0"})
        assert accepted.status_code == 202, accepted.text
        run_tasks()
        done = leader_client.simulate_get(accepted.json["result_url_path"]).json
        assert done["status"] == "succeeded", done
        result = done["result"]
        assert (result["status"], result["backend"], result["model_name"], result["model_version"]) == \
            ("skipped", "simulated", "pioreactor_20ml", "1.0")
        assert "not a Raspberry Pi" in result["reason"] and result["checks"] == []
