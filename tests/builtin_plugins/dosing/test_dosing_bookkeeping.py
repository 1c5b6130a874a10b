"""The vial bookkeeping: projection rules of dosing events, validation, persistence."""

import threading

import pytest

from reactorkit.builtin_plugins.dosing.bioreactor import (
    VARIABLES,
    BioreactorStore,
    InvalidBioreactorValue,
    apply_dosing_event,
    format_value,
    initial_values,
    validate_values,
)
from reactorkit.core.config import Config, load_config


@pytest.fixture
def config(tmp_path, monkeypatch):
    monkeypatch.setenv("DOT_PIOREACTOR", str(tmp_path))
    return load_config()


def start(volume=14.0, efflux=14.0, fraction=0.0):
    return {
        "current_volume_ml": volume,
        "efflux_tube_volume_ml": efflux,
        "alt_media_fraction": fraction,
        "cumulative_media_added_ml": 0.0,
        "cumulative_alt_media_added_ml": 0.0,
        "cumulative_waste_removed_ml": 0.0,
    }


def test_initial_values_come_from_the_bioreactor_section(config):
    config.set("bioreactor", "initial_volume_ml", "15.5")
    config.set("bioreactor", "initial_alt_media_fraction", "0.25")
    values = initial_values(config)
    assert values["current_volume_ml"] == 15.5
    assert values["efflux_tube_volume_ml"] == 14.0
    assert values["alt_media_fraction"] == 0.25
    assert set(values) == set(VARIABLES)


def test_adding_media_raises_the_volume_and_dilutes_the_alt_media():
    after = apply_dosing_event(start(volume=14.0, fraction=0.5), "add_media", 1.0)
    assert after["current_volume_ml"] == pytest.approx(15.0)
    assert after["alt_media_fraction"] == pytest.approx(0.5 * 14 / 15)
    assert after["cumulative_media_added_ml"] == pytest.approx(1.0)


def test_adding_alt_media_enriches_the_fraction():
    after = apply_dosing_event(start(volume=14.0, fraction=0.5), "add_alt_media", 2.0)
    assert after["alt_media_fraction"] == pytest.approx((0.5 * 14 + 2) / 16)
    assert after["cumulative_alt_media_added_ml"] == pytest.approx(2.0)


def test_waste_never_takes_the_volume_below_the_efflux_tube():
    above = apply_dosing_event(start(volume=15.0), "remove_waste", 3.0)
    assert above["current_volume_ml"] == pytest.approx(14.0)
    assert above["cumulative_waste_removed_ml"] == pytest.approx(3.0)  # the pumped volume is counted
    partly = apply_dosing_event(start(volume=15.0), "remove_waste", 0.4)
    assert partly["current_volume_ml"] == pytest.approx(14.6)


def test_waste_below_the_efflux_level_leaves_the_volume_alone():
    after = apply_dosing_event(start(volume=12.0), "remove_waste", 1.0)
    assert after["current_volume_ml"] == 12.0
    assert after["alt_media_fraction"] == 0.0


def test_pump_calibration_events_are_not_applied():
    before = start()
    assert apply_dosing_event(before, "add_media", 5.0, "pump_calibration") == before


def test_chunks_add_up_to_the_same_state_as_one_event():
    whole = apply_dosing_event(start(fraction=0.2), "add_alt_media", 1.0)
    chunked = start(fraction=0.2)
    for _ in range(4):
        chunked = apply_dosing_event(chunked, "add_alt_media", 0.25)
    for key in VARIABLES:
        assert chunked[key] == pytest.approx(whole[key])


def test_a_dose_that_ends_exactly_at_a_limit_reaches_it_despite_float_noise_of_its_chunks():
    from reactorkit.builtin_plugins.dosing.pumps import reaches

    values, published = start(), 0.0
    for elapsed in [1.1 * i for i in range(1, 18)]:  # 0.1 mL/s: the chunks of a 2 mL dose
        chunk = 0.1 * elapsed - published
        published += chunk
        values = apply_dosing_event(values, "add_media", chunk)
    values = apply_dosing_event(values, "add_media", 2.0 - published)  # the final correction
    assert values["current_volume_ml"] < 16.0  # the sum falls a few ulps short …
    assert reaches(values["current_volume_ml"], 16.0)  # … and still counts as reaching 16 mL
    assert not reaches(15.99, 16.0)


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"volume": 3}, "volume"),
        ({"current_volume_ml": -1}, "current_volume_ml"),
        ({"current_volume_ml": "a lot"}, "current_volume_ml"),
        ({"current_volume_ml": True}, "current_volume_ml"),
        ({"alt_media_fraction": 1.5}, "alt_media_fraction"),
        ({"efflux_tube_volume_ml": 25}, "efflux_tube_volume_ml"),
        ({"cumulative_media_added_ml": float("nan")}, "cumulative_media_added_ml"),
        ({}, "values"),
    ],
)
def test_invalid_values_are_refused_naming_the_field(config, changes, field):
    with pytest.raises(InvalidBioreactorValue) as info:
        validate_values(changes, config)
    assert info.value.field == field
    assert field in str(info.value) or field == "values"


def test_store_defaults_updates_and_persists(config, tmp_path):
    store = BioreactorStore(config)
    assert store.get("exp1")["current_volume_ml"] == 14.0
    store.update("exp1", {"current_volume_ml": 12.5})
    assert BioreactorStore(config).get("exp1")["current_volume_ml"] == 12.5
    assert store.get("exp2")["current_volume_ml"] == 14.0  # per experiment
    with pytest.raises(InvalidBioreactorValue):
        store.update("exp1", {"current_volume_ml": 13, "alt_media_fraction": 2})
    assert store.get("exp1")["current_volume_ml"] == 12.5  # nothing half written
    assert (tmp_path / "storage" / "local_persistent_pioreactor_metadata.sqlite").exists()


def test_concurrent_events_are_never_lost(config):
    store = BioreactorStore(config)

    def pump():
        for _ in range(25):
            store.apply("exp", "add_media", 0.01)

    threads = [threading.Thread(target=pump) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    values = store.get("exp")
    assert values["cumulative_media_added_ml"] == pytest.approx(1.0)
    assert values["current_volume_ml"] == pytest.approx(15.0)


def test_wire_format_is_a_plain_number():
    assert format_value(14.0) == "14"
    assert format_value(0.1234567) == "0.123457"
    assert float(format_value(1e-9)) == 0.0


def test_a_config_without_storage_section_still_works(tmp_path, monkeypatch):
    monkeypatch.setenv("DOT_PIOREACTOR", str(tmp_path))
    store = BioreactorStore(Config())
    assert store.get("e")["efflux_tube_volume_ml"] == 14.0
