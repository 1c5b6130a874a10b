"""The simulated vessel: physics a controller can rely on, and determinism under a seed."""

import math
import os

import pytest

from reactorkit.core.config import load_config
from reactorkit.core.clock import Clock
from reactorkit.core.hardware.simulated import SimulatedHardware
from reactorkit.core.hardware.vessel import Vessel, VesselParameters, VesselState

HOUR = 3600.0


def vessel(**state):
    return Vessel(VesselParameters(), VesselState(t=0.0, **state))


def test_batch_culture_grows_at_monod_rate_then_saturates():
    v = vessel(od=0.05, substrate=1.95)
    mu0 = v.growth_rate_per_hour()
    assert mu0 == pytest.approx(0.6 * 1.95 / (0.3 + 1.95))
    v.advance(1 * HOUR)
    assert v.s.od == pytest.approx(0.05 * math.exp(mu0), rel=0.03)
    v.advance(48 * HOUR)
    assert v.s.od == pytest.approx(2.0, rel=0.01)  # biomass + substrate is conserved (yield 1)
    assert v.growth_rate_per_hour() < 0.01


def test_media_pump_adds_volume_and_dilutes():
    v = vessel(od=1.0, substrate=1.0, volume_ml=14.0)
    v.s.pwm["2"] = 100.0  # media pump at 0.5 mL/s
    v.advance(2.0)
    v.s.pwm["2"] = 0.0
    assert v.s.volume_ml == pytest.approx(15.0, rel=1e-3)
    assert v.s.od == pytest.approx(14.0 / 15.0, rel=0.01)
    assert v.s.cumulative_media_ml == pytest.approx(1.0, rel=1e-3)


def test_waste_pump_only_removes_liquid_above_the_efflux_tube():
    v = vessel(volume_ml=15.0)
    v.s.pwm["4"] = 100.0
    v.advance(10.0)  # could remove 5 mL, but only 1 mL is above the tube
    assert v.s.volume_ml == pytest.approx(14.0)
    assert v.s.cumulative_waste_ml == pytest.approx(1.0)


def test_alt_media_fraction_follows_mixing():
    v = vessel(volume_ml=14.0)
    v.s.pwm["3"] = 100.0
    v.advance(2.0)  # 1 mL of alt media into 14 mL
    assert v.s.alt_media_fraction == pytest.approx(1.0 / 15.0, rel=1e-3)


def test_chemostat_steady_state_growth_rate_equals_dilution_rate():
    v = vessel(od=0.5, substrate=1.5, volume_ml=14.0)
    dilution_per_hour, dose_ml = 0.3, 0.5
    period = dose_ml / (dilution_per_hour * 14.0) * HOUR
    samples = []
    n_cycles = int(40 * HOUR / period)
    for cycle in range(n_cycles):
        t = cycle * period
        v.s.pwm["2"] = 100.0  # 0.5 mL of media in 1 s …
        v.advance(t + 1.0)
        v.s.pwm["2"] = 0.0
        v.s.pwm["4"] = 100.0  # … then back down to the efflux level
        v.advance(t + 3.0)
        v.s.pwm["4"] = 0.0
        for k in range(1, 51):
            v.advance(t + k * period / 50)
            if cycle == n_cycles - 1:
                samples.append(v.growth_rate_per_hour())
    # μ dips between doses as substrate is used up: compare its mean over one period
    effective_dilution = math.log((14.0 + dose_ml) / 14.0) / (period / HOUR)
    assert sum(samples) / len(samples) == pytest.approx(effective_dilution, rel=0.03)
    assert effective_dilution == pytest.approx(dilution_per_hour, rel=0.03)


def test_heater_warms_towards_its_equilibrium():
    v = vessel(temperature_c=22.0)
    v.s.pwm["5"] = 20.0  # equilibrium 22 + 10 °C
    v.advance(10 * 600.0)
    assert v.s.temperature_c == pytest.approx(32.0, abs=0.01)


def test_stirrer_rpm_follows_duty_cycle():
    v = vessel()
    v.s.pwm["1"] = 30.0
    v.advance(10.0)
    assert v.s.rpm == pytest.approx(25 * (30 - 8), rel=1e-3)


def test_photodiode_signal_rises_with_od_and_needs_the_ir_led():
    low, high = vessel(od=0.1), vessel(od=1.0)
    angles = {1: "REF", 2: "90"}
    assert high.photodiode_voltages(angles, 80)[2] > 5 * low.photodiode_voltages(angles, 80)[2]
    assert low.photodiode_voltages(angles, 0)[2] < 0.002


def test_noise_is_deterministic_under_a_seed():
    a, b = vessel(od=0.5), vessel(od=0.5)
    assert [a.photodiode_voltages({2: "90"}, 80) for _ in range(3)] == [b.photodiode_voltages({2: "90"}, 80) for _ in range(3)]


def test_processes_share_one_vessel_through_the_state_file(tmp_path, monkeypatch):
    monkeypatch.setenv("DOT_PIOREACTOR", str(tmp_path))
    config = load_config()
    clock = Clock(speedup=1.0)
    pump_process = SimulatedHardware(config, "u1", clock=clock)
    reader_process = SimulatedHardware(config, "u1", clock=clock)
    pump_process.set_pwm(2, 50.0)
    assert reader_process.get_pwm(2) == 50.0
    assert reader_process.ground_truth()["pwm"]["2"] == 50.0
    with pytest.raises(ValueError):
        pump_process.set_pwm(2, 150.0)


def test_pumped_volume_counts_what_the_pump_head_moved_even_below_the_efflux_level():
    v = vessel(volume_ml=14.0)
    v.s.pwm["4"] = 100.0
    v.advance(4.0)  # nothing is above the efflux tube, but the pump moved 2 mL of air and liquid
    assert v.s.cumulative_waste_ml == 0.0
    assert v.ground_truth()["pumped_ml"]["waste"] == pytest.approx(2.0)


def test_a_vial_change_replaces_the_culture_and_leaves_the_units_actuators_as_they_are(tmp_path, monkeypatch):
    monkeypatch.setenv("DOT_PIOREACTOR", str(tmp_path))
    config = load_config()
    hardware = SimulatedHardware(config, "u1", clock=Clock(speedup=1.0))
    hardware.set_led("A", 80.0)  # od_reading's IR LED, on in the middle of a reading
    hardware.set_pwm(1, 40.0)  # the stirrer
    ref_before = hardware.read_photodiodes((1,))[1]
    hardware.reset(od=0.8, substrate=1.2)
    truth = hardware.ground_truth()
    assert truth["od"] == pytest.approx(0.8, rel=1e-3) and truth["substrate"] == pytest.approx(1.2, rel=1e-3)
    assert truth["leds"]["A"] == 80.0 and truth["pwm"]["1"] == 40.0
    assert hardware.read_photodiodes((1,))[1] == pytest.approx(ref_before, rel=0.05)  # REF still lit


def _locked_elsewhere(path):
    """Whether another open file description (as another process or thread has) cannot take ``path``'s flock now."""
    import fcntl
    import os

    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def test_the_vessel_lock_is_an_flock_held_until_its_outermost_exit_and_shared_with_filelock(tmp_path):
    import threading

    from filelock import FileLock, Timeout

    from reactorkit.core.hardware.simulated import VesselLock

    path = str(tmp_path / "simulated_vessel_u.json.lock")
    lock = VesselLock(path)
    with lock:
        assert _locked_elsewhere(path)
        with lock:  # re-entrant in its thread
            assert _locked_elsewhere(path)
        assert _locked_elsewhere(path)  # the inner exit keeps it
        with pytest.raises(Timeout):
            FileLock(path).acquire(timeout=0)  # the simulation's helpers lock the same file with filelock
    assert not _locked_elsewhere(path)
    with FileLock(path):
        assert _locked_elsewhere(path)
    # another thread waits for the holder's release, then holds it
    entered, release = threading.Event(), threading.Event()

    def other() -> None:
        with lock:
            entered.set()
            release.wait(30)

    lock.__enter__()
    thread = threading.Thread(target=other)
    thread.start()
    assert not entered.is_set() and lock._depth == 1  # the other thread has not entered while this one holds it
    lock.__exit__(None, None, None)
    assert entered.wait(30) and _locked_elsewhere(path)
    release.set()
    thread.join(30)
    assert not _locked_elsewhere(path) and os.path.exists(path)  # released; the file stays in place


def test_the_vessel_lock_makes_its_folder_again_when_it_is_gone(tmp_path):
    # (as filelock did: a process's hardware outlives a state folder replaced by one without storage/)
    from reactorkit.core.hardware.simulated import VesselLock

    import shutil

    path = tmp_path / "storage" / "simulated_vessel_u.json.lock"
    lock = VesselLock(str(path))
    with lock:
        assert _locked_elsewhere(str(path))
    assert path.exists() and not _locked_elsewhere(str(path))
    # the simulated hardware of a process goes on when its folder is removed under it
    hardware = SimulatedHardware(load_config(), "u1", clock=Clock(speedup=1.0), path=tmp_path / "state" / "v.json")
    hardware.set_pwm(1, 30.0)
    shutil.rmtree(tmp_path / "state")
    hardware.set_pwm(1, 40.0)
    assert hardware.ground_truth()["pwm"]["1"] == 40.0
