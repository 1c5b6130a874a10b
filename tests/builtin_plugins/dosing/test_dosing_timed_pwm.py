"""A timed PWM run on the simulated vessel moves exactly its volume, however late the caller turns it off."""

import pytest

from reactorkit.core.clock import Clock
from reactorkit.core.config import load_config
from reactorkit.core.hardware.base import Hardware
from reactorkit.core.hardware.simulated import SimulatedHardware


class ManualClock(Clock):
    def __init__(self, t):
        super().__init__(1.0, t)
        self.t = t

    def now(self):
        return self.t


@pytest.fixture
def vessel(tmp_path, monkeypatch):
    monkeypatch.setenv("DOT_PIOREACTOR", str(tmp_path))
    clock = ManualClock(1_000_000.0)
    return SimulatedHardware(load_config(), "u1", clock=clock, path=tmp_path / "vessel.json"), clock


def test_the_vessel_stops_a_timed_pump_on_time_even_if_the_caller_is_late(vessel):
    hardware, clock = vessel
    started = hardware.set_pwm_for(2, 100.0, 4.0)  # media at 0.5 mL/s for 4 s
    assert started == clock.t
    clock.t += 60.0  # the caller wakes up a minute late
    assert hardware.get_pwm(2) == 0.0
    truth = hardware.ground_truth()
    assert truth["cumulative_media_ml"] == pytest.approx(2.0, rel=1e-6)
    assert truth["volume_ml"] == pytest.approx(16.0, rel=1e-6)
    hardware.set_pwm(2, 0.0)  # harmless once off
    assert hardware.ground_truth()["cumulative_media_ml"] == pytest.approx(2.0, rel=1e-6)


def test_an_early_stop_ends_a_timed_run(vessel):
    hardware, clock = vessel
    hardware.set_pwm_for(3, 100.0, 10.0)
    clock.t += 2.0
    hardware.set_pwm(3, 0.0)
    clock.t += 20.0
    assert hardware.ground_truth()["cumulative_alt_media_ml"] == pytest.approx(1.0, rel=1e-6)


def test_a_plain_set_pwm_cancels_the_timer(vessel):
    hardware, clock = vessel
    hardware.set_pwm_for(2, 100.0, 1.0)
    hardware.set_pwm(2, 50.0)
    clock.t += 4.0
    assert hardware.get_pwm(2) == 50.0
    assert hardware.ground_truth()["cumulative_media_ml"] == pytest.approx(1.0, rel=1e-6)


def test_backends_without_a_timer_just_set_the_duty_cycle():
    class Recorder(Hardware):
        def __init__(self):
            self.calls = []

        def set_pwm(self, channel, duty_cycle):
            self.calls.append((channel, duty_cycle))

    hardware = Recorder()
    assert hardware.set_pwm_for(4, 30.0, 5.0) is None
    assert hardware.calls == [(4, 30.0)]


def test_a_vessel_left_ahead_by_an_earlier_clock_carries_on_from_the_new_clock(tmp_path, monkeypatch):
    """A cluster started again in the same folder has a new clock, behind the vessel's last time: a timed pump
    run starts now and ends on the new clock, not once the new clock has caught up with the old one."""
    monkeypatch.setenv("DOT_PIOREACTOR", str(tmp_path))
    old = ManualClock(1_000_000.0 + 30 * 3600.0)  # the previous run's clock, 30 simulated hours ahead
    SimulatedHardware(load_config(), "u1", clock=old, path=tmp_path / "vessel.json").set_pwm(1, 0.0)  # saved there
    clock = ManualClock(1_000_000.0)
    hardware = SimulatedHardware(load_config(), "u1", clock=clock, path=tmp_path / "vessel.json")
    started = hardware.set_pwm_for(2, 100.0, 4.0)  # media at 0.5 mL/s for 4 s
    assert started == clock.t
    clock.t += 5.0
    assert hardware.get_pwm(2) == 0.0
    assert hardware.ground_truth()["cumulative_media_ml"] == pytest.approx(2.0, rel=1e-6)
