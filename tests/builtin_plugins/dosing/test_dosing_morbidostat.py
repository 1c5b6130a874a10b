"""pid_morbidostat with the real od_reading and growth_rate_calculating jobs: inhibitory alt media slows growth,
and the bookkeeping's alt-media fraction and volumes follow the vessel's."""

import json
import time

import pytest

from reactorkit.core.testing import stop_process

pytestmark = pytest.mark.integration

SPEEDUP = 1000.0
MAX_HOURS = 24.0  # simulated: the automation must have inhibited growth by then
INHIBITED_FRACTION = 0.3  # alt-media fraction at which mu = 0.5·(1 − 0.8·0.3) h⁻¹ is 76 % of the uninhibited rate
WALL_CAP_S = 900.0  # only against a hang: a loaded machine takes longer, never fails for it

CONFIG = """
[simulation]
initial_od = 0.2
mu_max_per_hour = 0.5
alt_media_inhibition = 0.8

[od_reading.config]
samples_per_second = 0.05
"""


def test_pid_morbidostat_slows_growth_with_alt_media_and_the_books_match_the_vessel(dosing_unit, mqtt_recorder,
                                                                                    spawn_job):
    unit = dosing_unit(CONFIG, speedup=SPEEDUP)
    start = unit.truth()
    spawn_job("od_reading")
    spawn_job("growth_rate_calculating")
    mqtt_recorder.wait_for(unit.env.topic("growth_rate_calculating", "growth_rate"), timeout=60)
    automation = spawn_job("dosing_automation", "--automation-name", "pid_morbidostat", "--target-growth-rate", "0.15",
                           "--target-normalized-od", "1.2", "--duration", "10")
    mqtt_recorder.wait_for(unit.env.topic("dosing_automation", "$state"), lambda p: p == b"ready", timeout=60)

    # Wait for the outcome, not for a span of time: on a busy machine the jobs and the automation's timer fall
    # behind simulated time (missed beats are skipped), so the same hours hold fewer decisions.
    end = start["t"] + MAX_HOURS * 3600
    deadline = time.monotonic() + WALL_CAP_S
    while unit.truth()["alt_media_fraction"] < INHIBITED_FRACTION:
        assert automation.poll() is None, "the automation died"
        assert unit.truth()["t"] < end, f"alt-media fraction {unit.truth()['alt_media_fraction']:.3f} after {MAX_HOURS} h"
        assert time.monotonic() < deadline, f"still running after {WALL_CAP_S:.0f} s"
        time.sleep(0.2)

    # books and vessel are compared once the automation has stopped (during a dose the vessel has the
    # pumped volume before the books do)
    assert stop_process(automation) == 0
    truth, books = unit.truth(), unit.bookkeeping()
    assert truth["cumulative_alt_media_ml"] > 1.0
    assert truth["alt_media_fraction"] >= INHIBITED_FRACTION
    assert truth["growth_rate"] < 0.8 * start["growth_rate"]  # the inhibitor took effect
    assert books["alt_media_fraction"] == pytest.approx(truth["alt_media_fraction"], rel=0.02)
    assert books["current_volume_ml"] == pytest.approx(truth["volume_ml"], rel=0.02)
    assert books["cumulative_media_added_ml"] == pytest.approx(truth["cumulative_media_ml"], rel=0.02)
    assert books["cumulative_alt_media_added_ml"] == pytest.approx(truth["cumulative_alt_media_ml"], rel=0.02)
    events = [json.loads(p) for p in mqtt_recorder.values(unit.env.topic("dosing_automation", "latest_event")) if p]
    assert any(e["event_name"] == "AddAltMediaEvent" for e in events)
    fraction_topic = unit.env.topic("bioreactor", "alt_media_fraction")
    # the last published value may still be on its way from the broker
    mqtt_recorder.wait_for(fraction_topic, lambda p: abs(float(p) - books["alt_media_fraction"]) <= 1e-5, timeout=10)
    fraction = mqtt_recorder.values(fraction_topic)[-1]
    assert float(fraction) == pytest.approx(books["alt_media_fraction"], abs=1e-5)
