"""Time-series endpoints: windows, series naming, both down-sampling paths against a reference, fallback."""

import math
import random

import pytest

from reactorkit.api.leader.series import _bucket_size
from reactorkit.core.clock import get_clock, parse_iso, utc_iso_ms


@pytest.fixture
def od(writer):
    """Insert od_readings rows ``(unit, channel, seconds_ago, value)``; returns the timestamps written."""
    now = get_clock().now()

    def add(rows):
        out = []
        writer.execute("BEGIN")
        for unit, channel, seconds_ago, value in rows:
            ts = utc_iso_ms(now - seconds_ago)
            writer.execute("INSERT INTO od_readings (experiment, pioreactor_unit, timestamp, od_reading, angle, channel)"
                           " VALUES ('exp1', ?, ?, ?, 90, ?)", (unit, ts, value, channel))
            out.append((ts, value))
        writer.execute("COMMIT")
        return out

    return add


def reference_downsample(rows, target):
    """Domain facts §4.3, written plainly: ≤ target rows → all; else evenly spaced times from first to last row,
    each taking the first row at/after it, de-duplicated, the last row always included."""
    if len(rows) <= target:
        return rows
    times = [parse_iso(ts) for ts, _ in rows]
    first, last = times[0], times[-1]
    picks, j = [], 0
    for i in range(target):
        t = first + i * (last - first) / (target - 1)
        while times[j] < t - 1e-6:
            j += 1
        if not picks or picks[-1] != j:
            picks.append(j)
    if picks[-1] != len(rows) - 1:
        picks.append(len(rows) - 1)
    return [rows[k] for k in picks]


def points(result, index=0):
    assert result.status_code == 200, result.text
    return [(p["x"], p["y"]) for p in result.json["data"][index]]


def test_all_rows_when_there_are_few_and_series_are_unit_channel(api, cluster, od):
    cluster.experiment("exp1")
    a2 = od([("w1", 2, 60 - i, 0.1 + i / 100) for i in range(5)])
    od([("w1", 1, 30, 0.5), ("w0", 2, 30, 0.7)])
    result = api.simulate_get("/api/experiments/exp1/time_series/od_readings")
    assert result.json["series"] == ["w0-2", "w1-1", "w1-2"]
    assert points(result, 2) == [(ts, round(v, 7)) for ts, v in a2]
    assert result.headers["cache-control"] == "max-age=5"


def test_window_is_now_minus_lookback_to_now(api, cluster, od):
    cluster.experiment("exp1")
    od([("w1", 2, 5 * 3600, 1.0), ("w1", 2, 3 * 3600, 2.0), ("w1", 2, -60, 3.0), ("w2", 2, 5 * 3600, 4.0)])
    default = api.simulate_get("/api/experiments/exp1/time_series/od_readings").json
    assert default["series"] == ["w1-2"] and [p["y"] for p in default["data"][0]] == [2.0]
    wide = api.simulate_get("/api/experiments/exp1/time_series/od_readings", params={"lookback": "6"}).json
    assert wide["series"] == ["w1-2", "w2-2"] and [p["y"] for p in wide["data"][0]] == [1.0, 2.0]


def test_exact_grid_matches_the_reference_algorithm(api, cluster, od):
    cluster.experiment("exp1")
    rng = random.Random(7)
    rows = od([("w1", 2, 1500 - 1.5 * i - rng.uniform(0, 0.4), rng.random()) for i in range(900)])
    rows.sort()
    target = 150  # span ≈ 1350 s < 10 s × 147: no rollup bucket fits, the grid is exact
    assert _bucket_size(parse_iso(rows[-1][0]) - parse_iso(rows[0][0]), target) is None
    got = points(api.simulate_get("/api/experiments/exp1/time_series/od_readings",
                                  params={"target_points": str(target)}))
    expected = [(ts, round(v, 7)) for ts, v in reference_downsample(rows, target)]
    assert got == expected
    assert len(got) <= target and got[0] == expected[0] and got[-1] == (rows[-1][0], round(rows[-1][1], 7))


def test_rollup_sampling_takes_the_first_row_of_each_aligned_bucket(api, cluster, od, db):
    cluster.experiment("exp1")
    rng = random.Random(3)
    rows = od([("w1", 2, 2 * 86400 - 30 * i - rng.uniform(0, 5), rng.random()) for i in range(5700)])
    rows.sort()
    target = 100
    assert db.rollup_ready("od_readings")
    size = _bucket_size(parse_iso(rows[-1][0]) - parse_iso(rows[0][0]), target)
    assert size == 1920
    got = points(api.simulate_get("/api/experiments/exp1/time_series/od_readings",
                                  params={"target_points": str(target), "lookback": "49"}))
    first_of_bucket = {}
    for ts, value in rows:
        first_of_bucket.setdefault(int(parse_iso(ts)) // size, (ts, value))
    middle = [r for r in sorted(first_of_bucket.values()) if rows[0][0] < r[0] < rows[-1][0]]
    expected = [(ts, round(v, 7)) for ts, v in [rows[0], *middle, rows[-1]]]
    assert got == expected
    assert math.floor(target * 2 / 3) <= len(got) <= target


def test_rollups_and_exact_grid_agree_in_shape(api, cluster, od):
    """Both paths return real rows, in time order, first and last included, at most target_points."""
    cluster.experiment("exp1")
    rows = sorted(od([("w1", 2, 86400 - 20 * i, i / 4000) for i in range(4300)]))
    for target in (3, 50, 700, 5000):
        got = points(api.simulate_get("/api/experiments/exp1/time_series/od_readings",
                                      params={"target_points": str(target), "lookback": "25"}))
        stored = {ts: round(v, 7) for ts, v in rows}
        assert all(stored[x] == y for x, y in got)
        assert [x for x, _ in got] == sorted({x for x, _ in got})
        assert got[0][0] == rows[0][0] and got[-1][0] == rows[-1][0]
        assert len(got) <= max(target, 2)


def test_per_unit_series_and_unknown_worker(api, cluster, od):
    cluster.experiment("exp1")
    cluster.worker("w1")
    od([("w1", 2, 10, 0.1), ("w2", 2, 10, 0.2)])
    result = api.simulate_get("/api/workers/w1/experiments/exp1/time_series/od_readings")
    assert result.json["series"] == ["w1-2"]
    assert api.simulate_get("/api/workers/ghost/experiments/exp1/time_series/od_readings").status_code == 404


@pytest.mark.parametrize("source, column, decimals", [
    ("growth_rates", "rate", 5), ("temperature_readings", "temperature_c", 2),
    ("od_readings_filtered", "normalized_od_reading", 7), ("od_readings_fused", "od_reading", 7),
])
def test_named_series_per_unit_with_their_decimals(api, cluster, writer, source, column, decimals):
    cluster.experiment("exp1")
    now = get_clock().now()
    for unit, value in (("w2", 1.123456789), ("w1", 2.987654321)):
        writer.execute(f"INSERT INTO {source} (experiment, pioreactor_unit, timestamp, {column}) VALUES ('exp1', ?, ?, ?)",
                       (unit, utc_iso_ms(now - 5), value))
    result = api.simulate_get(f"/api/experiments/exp1/time_series/{source}").json
    assert result["series"] == ["w1", "w2"]
    assert [d[0]["y"] for d in result["data"]] == [round(2.987654321, decimals), round(1.123456789, decimals)]


def test_a_table_no_plugin_declared_is_an_empty_result(api, cluster, db):
    cluster.experiment("exp1")
    db.execute("DROP TABLE temperature_readings")
    result = api.simulate_get("/api/experiments/exp1/time_series/temperature_readings")
    assert result.status_code == 200 and result.json == {"series": [], "data": []}


@pytest.mark.parametrize("params, name", [
    ({"target_points": "0"}, "target_points"), ({"target_points": "-3"}, "target_points"),
    ({"target_points": "many"}, "target_points"), ({"lookback": "soon"}, "lookback"), ({"lookback": "-1"}, "lookback"),
])
def test_bad_parameters_are_400_naming_them(api, cluster, params, name):
    cluster.experiment("exp1")
    result = api.simulate_get("/api/experiments/exp1/time_series/od_readings", params=params)
    assert result.status_code == 400 and name in result.json["cause"]
    result = api.simulate_get("/api/experiments/exp1/time_series/stirring_rates/measured_rpm", params=params)
    assert result.status_code == 400 and name in result.json["cause"]


def test_fallback_keeps_every_kth_row_per_unit(api, cluster, writer):
    cluster.experiment("exp1")
    now = get_clock().now()
    for i in range(10):
        for unit in ("w1", "w2"):
            writer.execute("INSERT INTO stirring_rates VALUES ('exp1', ?, ?, ?)",
                           (unit, utc_iso_ms(now - 100 + i), 400 + i + 0.123456789))
    result = api.simulate_get("/api/experiments/exp1/time_series/stirring_rates/measured_rpm",
                              params={"target_points": "3"}).json
    assert result["series"] == ["w1", "w2"]
    assert [p["y"] for p in result["data"][0]] == [403.1234568, 407.1234568]  # k = ceil(10/3) = 4: rows 4 and 8
    all_rows = api.simulate_get("/api/experiments/exp1/time_series/stirring_rates/measured_rpm").json
    assert len(all_rows["data"][1]) == 10
    one = api.simulate_get("/api/workers/w1/experiments/exp1/time_series/stirring_rates/measured_rpm", params={})
    assert one.status_code == 404  # w1 is not in the inventory


@pytest.mark.parametrize("source, column", [
    ("nothing_here", "value"), ("stirring_rates", "no_column"), ("sqlite_master", "name"),
])
def test_fallback_on_unknown_tables_or_columns_is_400(api, cluster, source, column):
    cluster.experiment("exp1")
    result = api.simulate_get(f"/api/experiments/exp1/time_series/{source}/{column}")
    assert result.status_code == 400 and result.json["cause"]


def test_fallback_names_are_reduced_to_safe_characters(api, cluster, writer):
    cluster.experiment("exp1")
    writer.execute("INSERT INTO stirring_rates VALUES ('exp1', 'w1', ?, 500)", (utc_iso_ms(get_clock().now() - 1),))
    result = api.simulate_get("/api/experiments/exp1/time_series/stirring_rates/measured_rpm;--")
    assert result.status_code == 200 and result.json["series"] == ["w1"]
