"""The scripted experiment's choices that do not need a cluster."""

import json

import pytest

from reactorkit.builtin_plugins.simulation.experiment import (
    LatestValues,
    calibration_name,
    experiment_name,
    profile_yaml,
    progress_legend,
    turbidostat_target_for,
)


def test_the_turbidostat_target_stays_within_the_culture_s_reach():
    assert turbidostat_target_for(0.04) == 10.0  # a fresh culture: 10× its first readings
    assert turbidostat_target_for(0.5) == 2.0  # grown during set-up: hold about OD 1
    assert turbidostat_target_for(1.9) == 1.5  # nearly full: still above where it starts
    assert turbidostat_target_for(None) == 10.0


def test_the_profile_carries_the_turbidostat_target():
    text = profile_yaml("worker1", "worker2", 24, turbidostat_target=2.5)
    assert "target_biomass: 2.5" in text and "biomass_signal: normalized_od" in text
    assert "automation_name: chemostat" in text


def test_a_calibrated_turbidostat_targets_od600():
    text = profile_yaml("worker1", "worker2", 24, turbidostat_target=1.0, biomass_signal="od")
    assert "target_biomass: 1, biomass_signal: od," in text


def test_the_progress_counts_a_media_dose_sent_twice_once():
    values = LatestValues(["worker1", "worker2"])
    topic = "rk-test/pioreactor/worker2/exp/dosing_events"
    first = json.dumps({"event": "add_media", "volume_change": 0.5, "timestamp": "2026-12-05T01:12:02.117Z"}).encode()
    second = json.dumps({"event": "add_media", "volume_change": 0.5, "timestamp": "2026-12-05T01:32:02.117Z"}).encode()
    waste = json.dumps({"event": "remove_waste", "volume_change": 0.5, "timestamp": "2026-12-05T01:12:10.103Z"}).encode()
    for payload in (first, first, waste, second, second, b""):  # the outbox resends what was not acknowledged
        values.update(topic, payload)
    values.update("rk-test/pioreactor/worker2/exp/bioreactor/current_volume_ml", b"14.5")
    assert values.latest["worker2"]["doses"] == 2
    assert values.latest["worker2"]["volume_ml"] == 14.5
    assert values.latest["worker1"]["doses"] == 0


def test_each_demo_names_its_calibrations_after_its_experiment():
    assert calibration_name("demo-20261205-000912", "media_pump") == "demo-20261205-000912-media_pump"
    assert calibration_name("demo-20261205-000912", "od90") != calibration_name("demo-20261205-001500", "od90")


def test_the_progress_legend_explains_each_field_once():
    legend = progress_legend()
    for field in ("OD = ", "OD600", "true = ", "growth rate = ", "h⁻¹", "volume = ", "mL", "doses = "):
        assert field in legend, field
    assert "worker2: the recording's photodiode signal" in progress_legend(["worker2"])


def test_the_experiment_is_named_on_the_simulated_clock_of_its_data():
    from datetime import datetime, timezone

    simulated = datetime(2026, 12, 6, 6, 51, 1, tzinfo=timezone.utc).timestamp()  # the export's clock, not the wall's
    assert experiment_name(simulated) == "demo-20261206-065101"


def test_the_progress_shows_the_growth_rate_s_mean_over_the_last_hour_beside_the_latest_value():
    from reactorkit.builtin_plugins.simulation.experiment import GROWTH_RATE_WINDOW_S
    from reactorkit.plugin import utc_iso_ms

    values = LatestValues(["worker2"])
    topic = "rk-test/pioreactor/worker2/exp/growth_rate_calculating/growth_rate"
    start = 1_796_000_000.0
    # a pulse-fed chemostat: 0.155 h⁻¹ after each dose (every 20 min) falling to 0.065 before the next, for 3 h;
    # one value of 0.9 more than an hour before the last one
    values.update(topic, json.dumps({"growth_rate": 0.9, "timestamp": utc_iso_ms(start - 60)}).encode())
    rates = []
    for i in range(3 * 60):  # one a minute
        rate = 0.155 - 0.09 * (i % 20) / 19
        rates.append(rate)
        values.update(topic, json.dumps({"growth_rate": rate, "timestamp": utc_iso_ms(start + 60 * i)}).encode())
    values.update(topic, b'{"growth_rate": 0.3}')  # no timestamp: the latest value, left out of the mean
    latest = values.latest["worker2"]
    window = int(GROWTH_RATE_WINDOW_S // 60)
    assert latest["growth_rate_mean"] == pytest.approx(sum(rates[-window:]) / window)
    assert latest["growth_rate_mean"] == pytest.approx(0.11, abs=1e-9)  # whole cycles: their mean
    assert latest["growth_rate"] == 0.3  # the latest value, shown beside the mean
    assert LatestValues(["worker1"]).latest["worker1"]["growth_rate_mean"] is None
