"""The od_fused estimator: fitted on the real multi-angle OD table, it recovers standards across the hook."""

import csv
import math
from collections import defaultdict

import pytest

from repo_data import real_data_dir

from reactorkit.builtin_plugins.od_reading import fusion as od_fusion
from reactorkit.core.calibration_store import validate_estimator
from reactorkit.core.curves import evaluate

DATASET = real_data_dir() / "pioreactor_od_angle_calibration_dataset.csv"
ANGLES = ("45", "90", "135")


def _rows():
    with DATASET.open(newline="") as fh:
        return [r for r in csv.DictReader(fh) if r["angle"] in ANGLES]


def _observations(rows, exclude=()):
    return [(float(r["concentration_mg_ml"]), r["angle"], float(r["od_reading"]))
            for r in rows if float(r["concentration_mg_ml"]) not in exclude]


def _mean_readings(rows, concentration):
    by_angle = defaultdict(list)
    for r in rows:
        if float(r["concentration_mg_ml"]) == concentration:
            by_angle[r["angle"]].append(float(r["od_reading"]))
    return {a: sum(v) / len(v) for a, v in by_angle.items()}


def _fit(observations):
    return od_fusion.fit_estimator(observations, estimator_name="real-table", unit="pio01",
                                   created_at="2026-01-01T00:00:00.000000Z", ir_led_intensity=80)


def test_fitted_estimator_is_a_valid_record_in_log_space():
    rows = _rows()
    est = _fit(_observations(rows))
    validate_estimator(est, "od_fused")
    assert est["estimator_type"] == "od_fused_estimator"
    assert est["angles"] == ["45", "90", "135"]
    assert est["min_logc"] == pytest.approx(math.log10(0.0025))  # the blank is left out: log undefined
    assert est["max_logc"] == pytest.approx(math.log10(50.0))
    mean_90 = _mean_readings(rows, 0.3155)["90"]
    mu = evaluate(est["mu_splines"]["90"], math.log10(0.3155))
    assert mu == pytest.approx(sum(math.log(float(r["od_reading"])) for r in rows
                                   if r["angle"] == "90" and float(r["concentration_mg_ml"]) == 0.3155) / 15)
    assert math.exp(mu) == pytest.approx(mean_90, rel=0.1)


@pytest.mark.parametrize("held_out", [0.01991, 0.05, 0.1256, 0.3155, 0.7924, 3.155])
def test_fusion_recovers_held_out_interior_standards(held_out):
    rows = _rows()
    est = _fit(_observations(rows, exclude=(held_out,)))
    fused = od_fusion.fuse(est, _mean_readings(rows, held_out))
    assert abs(math.log10(fused / held_out)) < 0.1, fused  # within ~26 %; instruments differ by ~10 %


def test_fusion_resolves_readings_past_the_90_degree_peak():
    """12.56 mg/mL reads lower at 90° than 3.155 does; the other angles place it on the right side."""
    rows = _rows()
    est = _fit(_observations(rows))
    readings = _mean_readings(rows, 12.56)
    assert readings["90"] < _mean_readings(rows, 3.155)["90"]
    fused = od_fusion.fuse(est, readings)
    assert fused == pytest.approx(12.56, rel=0.15)


def test_one_wild_angle_does_not_drag_the_estimate_far():
    rows = _rows()
    est = _fit(_observations(rows))
    readings = _mean_readings(rows, 0.3155)
    readings["45"] *= 5  # a smudge on one photodiode
    assert abs(math.log10(od_fusion.fuse(est, readings) / 0.3155)) < 0.15


def test_fusion_needs_four_standards_and_two_angles():
    with pytest.raises(od_fusion.FusionError, match="at least 4 standards"):
        _fit([(c, a, 0.1 * c + 0.01) for c in (0.1, 0.2, 0.4) for a in ("45", "90")])
    with pytest.raises(od_fusion.FusionError, match="2 angles"):
        _fit([(c, "90", 0.1 * c + 0.01) for c in (0.1, 0.2, 0.4, 0.8)])
    est = _fit(_observations(_rows()))
    with pytest.raises(od_fusion.FusionError):
        od_fusion.fuse(est, {"45": 0.0, "90": -1.0})


def test_offset_shifts_every_angle_curve_by_its_offset():
    est = _fit(_observations(_rows()))
    shifted = od_fusion.offset_estimator(est, {"90": 0.2}, estimator_name="shifted")
    x = math.log10(0.5)
    assert evaluate(shifted["mu_splines"]["90"], x) == pytest.approx(evaluate(est["mu_splines"]["90"], x) + 0.2)
    assert evaluate(shifted["mu_splines"]["45"], x) == pytest.approx(evaluate(est["mu_splines"]["45"], x))
    assert shifted["estimator_name"] == "shifted" and est["estimator_name"] == "real-table"
