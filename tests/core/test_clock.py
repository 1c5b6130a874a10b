"""The sped-up clock and its timer."""

import threading
import time

import pytest

from reactorkit.core.clock import Clock, RepeatedTimer, parse_iso, utc_iso_ms


def test_simulated_time_runs_speedup_times_faster():
    clock = Clock(speedup=100.0)
    start = clock.now()
    time.sleep(0.05)
    elapsed = clock.now() - start
    assert 4.0 < elapsed < 20.0


def test_clocks_with_the_same_origin_agree_across_processes():
    origin = time.time() - 10
    a, b = Clock(60.0, origin), Clock(60.0, origin)
    assert abs(a.now() - b.now()) < 1.0
    assert a.now() - time.time() > 500  # 10 wall seconds since origin are 600 simulated


def test_sleep_takes_simulated_seconds():
    clock = Clock(speedup=1000.0)
    t0 = time.monotonic()
    clock.sleep(50)
    assert time.monotonic() - t0 < 1.0


def test_speedup_must_be_positive():
    with pytest.raises(ValueError):
        Clock(0)


def test_repeated_timer_fires_on_simulated_intervals():
    clock = Clock(speedup=200.0)
    calls = []
    done = threading.Event()

    def tick():
        calls.append(clock.now())
        if len(calls) == 3:
            done.set()

    timer = RepeatedTimer(20.0, tick, clock=clock).start()
    assert done.wait(5)
    timer.cancel()
    gaps = [b - a for a, b in zip(calls, calls[1:])]
    assert all(15.0 < g < 30.0 for g in gaps)


def test_paused_timer_does_not_call():
    clock = Clock(speedup=500.0)
    calls = []
    timer = RepeatedTimer(5.0, lambda: calls.append(1), clock=clock)
    timer.pause()
    timer.start()
    time.sleep(0.1)
    timer.cancel()
    assert calls == []


def test_timestamps_round_trip():
    ts = 1_700_000_000.123
    assert utc_iso_ms(ts) == "2023-11-14T22:13:20.123Z"
    assert abs(parse_iso(utc_iso_ms(ts)) - ts) < 1e-3
    assert abs(parse_iso(Clock().utc_iso(ts)) - ts) < 1e-5


def test_iso_timestamps_normalise_to_milliseconds_as_the_epoch_round_trip_does():
    import random
    from datetime import datetime, timezone

    from reactorkit.core.clock import iso_to_utc_iso_ms, parse_iso, utc_iso_ms

    rng = random.Random(7)
    samples = [datetime.fromtimestamp(rng.uniform(0, 3e9), tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
               for _ in range(2000)]
    samples += ["2026-01-01T00:00:00Z", "2026-01-01T00:00:00.999999Z", "2026-06-01T12:34:56.0005+00:00",
                "2026-06-01T12:34:56.123+02:00", "2026-06-01T12:34:56", "1969-12-31T23:59:59.5Z"]
    for text in samples:
        assert iso_to_utc_iso_ms(text) == utc_iso_ms(parse_iso(text)), text
    for bad in ("2026-02-30T00:00:00Z", "yesterday", ""):
        with pytest.raises(ValueError):
            iso_to_utc_iso_ms(bad)


@pytest.fixture
def config_files(tmp_path, monkeypatch):
    """A unit folder whose clock comes from its config files (no ``$REACTORKIT_SPEEDUP``/``..._CLOCK_ORIGIN``)."""
    from reactorkit.core.clock import set_clock
    from reactorkit.core.config import set_config

    monkeypatch.setenv("DOT_PIOREACTOR", str(tmp_path))
    for key in ("REACTORKIT_SPEEDUP", "REACTORKIT_CLOCK_ORIGIN", "GLOBAL_CONFIG", "LOCAL_CONFIG"):
        monkeypatch.delenv(key, raising=False)
    set_config(None)
    set_clock(None)
    yield tmp_path
    set_config(None)
    set_clock(None)


def test_a_config_file_written_by_another_process_reaches_the_clock(config_files):
    from reactorkit.core.clock import get_clock
    from reactorkit.core.config import recheck_config_files
    from reactorkit.core.paths import atomic_write

    assert get_clock().speedup == 1.0
    assert recheck_config_files() is False  # nothing changed: the clock stays
    before = get_clock()
    atomic_write(config_files / "unit_config.ini", "[simulation]\nspeedup = 60\nclock_origin = 1000.0\n")
    assert get_clock() is before  # cached until the files are checked
    assert recheck_config_files() is True
    assert (get_clock().speedup, get_clock().origin) == (60.0, 1000.0)
    assert recheck_config_files() is False


def test_forgetting_the_config_keeps_a_clock_that_was_set(config_files):
    from reactorkit.core.clock import Clock, get_clock, set_clock
    from reactorkit.core.config import forget_config_files

    installed = Clock(speedup=5.0, origin=0.0)
    set_clock(installed)
    (config_files / "unit_config.ini").write_text("[simulation]\nspeedup = 60\n")
    forget_config_files()
    assert get_clock() is installed


def test_a_config_file_replaced_while_it_is_being_read_is_read_again_at_the_next_recheck(config_files, monkeypatch):
    # a gunicorn worker's threads: one reads the files (a first get_config() after a forget) while another's
    # recheck finds a file replaced after that read began and forgets the config; the read then ends with the old
    # text, and the cache must not keep it unchecked for ever
    from reactorkit.core import config as config_module
    from reactorkit.core.paths import atomic_write

    unit_file = config_files / "unit_config.ini"
    atomic_write(unit_file, "[simulation]\nspeedup = 2\n")
    real_load = config_module.load_config
    calls = []

    def load_while_replaced(*args, **kwargs):
        loaded = real_load(*args, **kwargs)  # the old text
        if not calls:
            calls.append(1)
            atomic_write(unit_file, "[simulation]\nspeedup = 60\n")  # replaced meanwhile (a sibling's save)
            config_module.recheck_config_files()  # the other thread's recheck, at that moment
        return loaded

    monkeypatch.setattr(config_module, "load_config", load_while_replaced)
    assert config_module.get_config().get("simulation", "speedup") == "2"  # the read that began before the save
    assert config_module.recheck_config_files() is True
    assert config_module.get_config().get("simulation", "speedup") == "60"
