"""A chemostat on the simulated vessel settles to a true growth rate equal to its dilution rate."""

import time

import pytest

from reactorkit.core.testing import stop_process

pytestmark = pytest.mark.integration

SPEEDUP = 500.0
EXCHANGE_ML = 0.5
DURATION_MIN = 6.0
EFFLUX_ML = 14.0
RUN_HOURS = 8.0
SETTLED_HOURS = 2.0  # compared over the last hours of the run


def test_chemostat_growth_rate_settles_to_the_dilution_rate(dosing_unit, mqtt_recorder, spawn_job):
    unit = dosing_unit("[simulation]\ninitial_od = 1.2\nmu_max_per_hour = 0.6\nmonod_ks = 0.3\nsubstrate_in = 2.0\n",
                       speedup=SPEEDUP)
    dilution_rate = EXCHANGE_ML / EFFLUX_ML * 60.0 / DURATION_MIN  # h⁻¹
    start = unit.truth()
    assert abs(start["growth_rate"] - dilution_rate) > 0.15 * dilution_rate  # it has to move to get there
    proc = spawn_job("dosing_automation", "--automation-name", "chemostat", "--exchange-volume-ml", str(EXCHANGE_ML),
                     "--duration", str(DURATION_MIN))
    mqtt_recorder.wait_for(unit.env.topic("dosing_automation", "$state"), lambda p: p == b"ready", timeout=20)
    samples = []
    end = start["t"] + RUN_HOURS * 3600
    while True:
        truth = unit.truth()
        samples.append(truth)
        if truth["t"] >= end:
            break
        assert proc.poll() is None, "the automation died"
        time.sleep(0.05)
    settled = [s for s in samples if s["t"] >= end - SETTLED_HOURS * 3600]
    mean_rate = sum(s["growth_rate"] for s in settled) / len(settled)
    assert mean_rate == pytest.approx(dilution_rate, rel=0.10)
    # the volume stays at the efflux level, and the bookkeeping follows the vessel (compared once the
    # automation has stopped: during a dose the vessel has the pumped volume before the books do)
    assert all(abs(s["volume_ml"] - EFFLUX_ML) <= 0.05 * EFFLUX_ML for s in samples)
    assert stop_process(proc) == 0
    truth, books = unit.truth(), unit.bookkeeping()
    assert books["cumulative_media_added_ml"] == pytest.approx(truth["cumulative_media_ml"], rel=0.02)
    assert books["current_volume_ml"] == pytest.approx(truth["volume_ml"], rel=0.02)
    expected_doses = RUN_HOURS * 60 / DURATION_MIN
    assert truth["cumulative_media_ml"] == pytest.approx(expected_doses * EXCHANGE_ML, rel=0.1)
    dosing = [e for e in mqtt_recorder.json_values(unit.env.topic("dosing_events")) if e["event"] == "add_media"]
    assert all(e["source_of_event"] == "dosing_automation:chemostat" for e in dosing)
