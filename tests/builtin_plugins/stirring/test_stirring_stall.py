"""A stalled stirrer (0 RPM with a positive target) is reported and re-kicked, in-process with a fake motor."""

import json

import pytest

from reactorkit.builtin_plugins.stirring.job import Stirring
from reactorkit.core.clock import Clock
from reactorkit.core.config import load_config
from reactorkit.core.hardware.base import Hardware

pytestmark = pytest.mark.integration  # the job talks to the real broker


class FakeMotor(Hardware):
    """A stir motor whose tachometer always reads ``rpm``; remembers every duty cycle it was given."""

    def __init__(self, rpm: float) -> None:
        self.rpm = rpm
        self.duty_cycles: list[float] = []

    def set_pwm(self, channel, duty_cycle):
        self.duty_cycles.append(float(duty_cycle))

    def get_pwm(self, channel):
        return self.duty_cycles[-1] if self.duty_cycles else 0.0

    def measure_rpm(self, duration_s=2.0):
        return self.rpm


@pytest.fixture
def job_env(unit_env, monkeypatch):
    for key, value in unit_env.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(Stirring, "_install_signal_handlers", lambda self: None)
    return unit_env


def test_zero_rpm_warns_blinks_code_4_and_rekicks_at_most_60_percent(job_env, mqtt_recorder):
    motor = FakeMotor(rpm=0.0)
    job = Stirring(job_env.unit, job_env.experiment, target_rpm=500, duty_cycle=80, hardware=motor,
                   config=load_config(), clock=Clock(speedup=1000.0))
    try:
        assert job.poll_and_update() == 0.0
        code = mqtt_recorder.wait_for(f"{job_env.prefix}pioreactor/{job_env.unit}/$experiment/monitor/flicker_led_with_error_code")
        assert code == b"4"
        warning = json.loads(mqtt_recorder.wait_for(job_env.topic("logs", "app", "warning")))
        assert "RPM is 0" in warning["message"]
        assert 100.0 in motor.duty_cycles  # kicked
        assert 0 < job.duty_cycle <= 60.0
    finally:
        job.clean_up()
    assert motor.duty_cycles[-1] == 0.0


def test_target_outside_0_to_5000_rpm_is_refused_before_anything_starts(job_env):
    with pytest.raises(ValueError, match="target_rpm"):
        Stirring(job_env.unit, job_env.experiment, target_rpm=6000, hardware=FakeMotor(0.0), config=load_config())
