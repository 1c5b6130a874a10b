"""A chemostat on the simulated vessel settles to a true growth rate equal to its dilution rate.

Timing: the run is timed in simulated time from the first dose, so a slow start of the automation on a busy
machine does not shorten it, and compared over its second hour, so the automation's first doses (slow on a busy
machine: first imports, first database and broker connections) do not count. A dose is three pump actions,
each with its own MQTT lifecycle: 0.2–0.6 s of wall time, up to 2 s on a busy machine. At 500× the 6-min dosing
period was 0.72 wall seconds; doses overran it, the automation's timer skipped the missed beats (as it should: it
never bursts), and the culture got less media than the dilution rate it was compared with (one loaded run: 36 of 80
doses, μ 0.17 h⁻¹ against 0.36). At 120× the period is 3 wall seconds. The culture (μmax 1 h⁻¹, Ks 0.1) settles
within an hour of the first dose, so the run is short in simulated time at that slower speed-up.
"""

import time

import pytest

from reactorkit.core.testing import stop_process

pytestmark = pytest.mark.integration

SPEEDUP = 120.0  # the 6-min dosing period is 3 s of wall time
EXCHANGE_ML = 0.5
DURATION_MIN = 6.0
EFFLUX_ML = 14.0
RUN_HOURS = 2.0  # from the first dose (and half a dosing period more, so that no dose falls on an end of the window)
SETTLED_HOURS = 1.0  # compared over the last hour of the run: settled an hour after the first dose


def test_chemostat_growth_rate_settles_to_the_dilution_rate(dosing_unit, mqtt_recorder, spawn_job):
    unit = dosing_unit("[simulation]\ninitial_od = 1.6\nmu_max_per_hour = 1.0\nmonod_ks = 0.1\nsubstrate_in = 2.0\n",
                       speedup=SPEEDUP)
    dilution_rate = EXCHANGE_ML / EFFLUX_ML * 60.0 / DURATION_MIN  # h⁻¹
    start = unit.truth()
    assert abs(start["growth_rate"] - dilution_rate) > 0.15 * dilution_rate  # it has to move to get there
    proc = spawn_job("dosing_automation", "--automation-name", "chemostat", "--exchange-volume-ml", str(EXCHANGE_ML),
                     "--duration", str(DURATION_MIN))
    mqtt_recorder.wait_for(unit.env.topic("dosing_automation", "$state"), lambda p: p == b"ready", timeout=20)
    samples, end = [], None
    deadline = time.monotonic() + 300  # only against a hang: the run is 60 s of wall time
    while time.monotonic() < deadline:
        truth = unit.truth()
        samples.append(truth)
        if end is None and truth["cumulative_media_ml"] > 0:
            end = truth["t"] + RUN_HOURS * 3600 + DURATION_MIN * 30  # the first dose has come: the run starts
        if end is not None and truth["t"] >= end:
            break
        assert proc.poll() is None, "the automation died"
        time.sleep(0.05)
    assert end is not None and samples[-1]["t"] >= end
    settled = [s for s in samples if s["t"] >= end - SETTLED_HOURS * 3600]
    mean_rate = sum(s["growth_rate"] for s in settled) / len(settled)
    assert mean_rate == pytest.approx(dilution_rate, rel=0.10)
    # … at the dilution rate it was given: a dose every DURATION_MIN over that hour
    doses = (settled[-1]["cumulative_media_ml"] - settled[0]["cumulative_media_ml"]) / EXCHANGE_ML
    assert doses == pytest.approx(SETTLED_HOURS * 60 / DURATION_MIN, rel=0.1)
    # the volume stays at the efflux level, and the bookkeeping follows the vessel (compared once the
    # automation has stopped: during a dose the vessel has the pumped volume before the books do)
    assert all(abs(s["volume_ml"] - EFFLUX_ML) <= 0.05 * EFFLUX_ML for s in samples)
    assert stop_process(proc) == 0
    truth, books = unit.truth(), unit.bookkeeping()
    assert books["cumulative_media_added_ml"] == pytest.approx(truth["cumulative_media_ml"], rel=0.02)
    assert books["current_volume_ml"] == pytest.approx(truth["volume_ml"], rel=0.02)
    dosing = [e for e in mqtt_recorder.json_values(unit.env.topic("dosing_events")) if e["event"] == "add_media"]
    assert all(e["source_of_event"] == "dosing_automation:chemostat" for e in dosing)
