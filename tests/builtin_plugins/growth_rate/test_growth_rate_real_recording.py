"""The estimator fed every row of a real Pioreactor recording (data/real/README.md facts).

The README documents log-linear growth-rate fits of the recording: 0.116 h⁻¹
over 0–3 h, 0.051 h⁻¹ over 3–8 h and 0.025 h⁻¹ over 8–15 h; normalized OD must
stay positive, and an outlier detector should flag well under 1 % of rows.
The last ~65 s hold a −12 % step (kept out of the windows).
"""

import csv
import gzip
import math

import pytest

from repo_data import real_data_dir

from reactorkit.builtin_plugins.growth_rate.estimator import GrowthRateCalculator
from reactorkit.core.clock import parse_iso

DATA_DIR = real_data_dir()
RECORDING = DATA_DIR / "pioreactor_1unit_5s_od_readings.csv.gz"
README_FITS = [((0, 3), 0.116), ((3, 8), 0.051), ((8, 15), 0.025)]


@pytest.fixture(scope="module")
def rows():
    with gzip.open(RECORDING, "rt", newline="") as fh:
        reader = csv.DictReader(fh)
        return [(parse_iso(r["timestamp"]), float(r["od_reading"])) for r in reader]


@pytest.fixture(scope="module")
def estimates(rows):
    calc = GrowthRateCalculator()
    out = []
    for t, od in rows:
        estimate = calc.on_od(t, {"2": od})
        if estimate is not None:
            out.append(estimate)
    return calc, out


def test_every_row_gives_an_estimate_after_the_warm_up(rows, estimates):
    calc, out = estimates
    assert len(out) == len(rows) - 5 - 10 + 1


def window_mean(rows, out, window):
    t0 = rows[0][0]
    values = [e.growth_rate for e in out if window[0] <= (e.timestamp - t0) / 3600 < window[1]]
    return sum(values) / len(values)


@pytest.mark.parametrize("window,documented", README_FITS)
def test_mean_growth_rate_matches_the_documented_fit_within_15_percent(rows, estimates, window, documented):
    assert window_mean(rows, estimates[1], window) == pytest.approx(documented, rel=0.15)


@pytest.mark.parametrize("window,documented", README_FITS)
def test_mean_growth_rate_matches_the_documented_fit_within_3_percent(rows, estimates, window, documented):
    assert window_mean(rows, estimates[1], window) == pytest.approx(documented, rel=0.03)


def test_no_negative_estimate_after_the_first_hour(rows, estimates):
    t0 = rows[0][0]
    assert min(e.growth_rate for e in estimates[1] if e.timestamp - t0 >= 3600) > 0


def test_the_estimate_is_near_the_first_windows_rate_from_30_minutes_on(rows, estimates):
    """From 30 min to the end of the first window the mean estimate is within 10 % of its documented μ."""
    assert window_mean(rows, estimates[1], (0.5, 3)) == pytest.approx(README_FITS[0][1], rel=0.10)


def test_growth_rate_is_positive_early_and_falls_towards_003(rows, estimates):
    t0 = rows[0][0]
    _, out = estimates
    early = [e.growth_rate for e in out if 0.5 <= (e.timestamp - t0) / 3600 < 3]
    late = [e.growth_rate for e in out if 12 <= (e.timestamp - t0) / 3600 < 15]
    assert min(early) > 0
    assert sum(late) / len(late) == pytest.approx(0.03, abs=0.01)
    assert sum(late) / len(late) < sum(early) / len(early) / 2


def test_normalized_od_stays_positive(estimates):
    _, out = estimates
    assert min(e.od_filtered for e in out) > 0
    # and it follows the signal: the recording grows from 0.26 to ~0.57
    assert out[-20].od_filtered == pytest.approx(0.57 / 0.264, rel=0.1)


def test_outliers_are_well_under_one_percent_of_rows(rows, estimates):
    calc, _ = estimates
    assert calc.outlier_count / len(rows) < 0.005


def test_filter_matches_the_data_in_log_space(rows, estimates):
    """The filtered level stays within a few noise SDs of the readings (no drift away from the data)."""
    calc, out = estimates
    factor = calc.normalization.factors["2"]
    by_time = dict(rows)
    errors = [math.log(by_time[e.timestamp] / factor) - math.log(e.od_filtered) for e in out]
    assert abs(sum(errors) / len(errors)) < 0.005
