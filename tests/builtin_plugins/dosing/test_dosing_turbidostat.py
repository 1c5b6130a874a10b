"""A turbidostat fed by the real od_reading job holds the vessel's true OD for a simulated day."""

import bisect
import json
import time

import pytest

from reactorkit.core.clock import parse_iso
from reactorkit.core.testing import stop_process

pytestmark = pytest.mark.integration

SPEEDUP = 400.0  # a stall of a job on a busy machine (seconds) is then under an hour of growth (< 7 %)
EXCHANGE_ML = 0.5
EFFLUX_ML = 14.0
HOLD_HOURS = 24.0
CONFIG = """
[simulation]
initial_od = 0.25
mu_max_per_hour = 0.2

[od_reading.config]
samples_per_second = 0.05
"""


def od_readings(recorder, unit):
    """``[(t, od signal)]`` of the live (non-retained) od2 messages."""
    out = []
    for topic, payload, retained, _ in list(recorder.messages):
        if topic == unit.env.topic("od_reading", "od2") and payload and not retained:
            data = json.loads(payload)
            out.append((parse_iso(data["timestamp"]), float(data["od"])))
    return out


def true_od_at(samples, t):
    """Linear interpolation of the sampled true OD at simulated time ``t``."""
    times = [s["t"] for s in samples]
    i = bisect.bisect_left(times, t)
    if i == 0 or i >= len(samples):
        return None
    a, b = samples[i - 1], samples[i]
    w = (t - a["t"]) / (b["t"] - a["t"]) if b["t"] > a["t"] else 0.0
    return a["od"] + w * (b["od"] - a["od"])


def test_turbidostat_holds_the_true_od_within_ten_percent_for_a_day(dosing_unit, mqtt_recorder, spawn_job):
    unit = dosing_unit(CONFIG, speedup=SPEEDUP)
    od_proc = spawn_job("od_reading")
    first = json.loads(mqtt_recorder.wait_for(unit.env.topic("od_reading", "od2"), timeout=30))
    target_signal = 1.5 * float(first["od"])  # the culture grows ~1.5× before the first dilution
    automation = spawn_job("dosing_automation", "--automation-name", "turbidostat", "--target-biomass",
                           f"{target_signal:.6f}", "--exchange-volume-ml", str(EXCHANGE_ML), "--biomass-signal", "od")
    mqtt_recorder.wait_for(unit.env.topic("dosing_automation", "$state"), lambda p: p == b"ready", timeout=20)

    samples, first_dilution = [], None
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        truth = unit.truth()
        samples.append(truth)
        if first_dilution is None and truth["cumulative_media_ml"] > 0:
            first_dilution = truth["t"]
        if first_dilution is not None and truth["t"] >= first_dilution + HOLD_HOURS * 3600:
            break
        assert automation.poll() is None and od_proc.poll() is None, "a job died"
        time.sleep(0.03)
    assert first_dilution is not None and samples[-1]["t"] >= first_dilution + HOLD_HOURS * 3600

    # The target is in od_reading's (uncalibrated) units: map it to true OD with the readings of the growth phase.
    pairs = [(s, true_od_at(samples, t)) for t, s in od_readings(mqtt_recorder, unit) if t < first_dilution - 30]
    pairs = [(s, od) for s, od in pairs if od is not None and s >= 0.75 * target_signal]
    assert len(pairs) >= 20
    n = len(pairs)
    mean_s, mean_od = sum(p[0] for p in pairs) / n, sum(p[1] for p in pairs) / n
    slope = sum((s - mean_s) * (od - mean_od) for s, od in pairs) / sum((s - mean_s) ** 2 for s, _ in pairs)
    target_od = mean_od + slope * (target_signal - mean_s)

    held = [s for s in samples if s["t"] >= first_dilution]
    worst = max(abs(s["od"] - target_od) / target_od for s in held)
    assert worst <= 0.10, f"true OD strayed {worst:.1%} from its target {target_od:.4f}"
    assert max(abs(s["volume_ml"] - EFFLUX_ML) / EFFLUX_ML for s in held) <= 0.05
    doses = [e for e in mqtt_recorder.json_values(unit.env.topic("dosing_events")) if e["event"] == "add_media"]
    assert len(doses) > 60  # it kept diluting all day (μ ≈ 0.17 h⁻¹, ~3.5 % per exchange)

    # once the automation has stopped (during a dose the vessel has the pumped volume before the books do)
    assert stop_process(automation) == 0
    truth, books = unit.truth(), unit.bookkeeping()
    assert books["current_volume_ml"] == pytest.approx(truth["volume_ml"], rel=0.02)
    assert books["cumulative_media_added_ml"] == pytest.approx(truth["cumulative_media_ml"], rel=0.02)
