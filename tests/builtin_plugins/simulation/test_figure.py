"""The demo's figure is drawn from an export zip: hours since the start, one series per unit, dilution rates."""

import csv
import io
import json
import zipfile

import pytest

from reactorkit.builtin_plugins.simulation.figure import (
    bin_steps,
    by_unit,
    dilution_rates,
    od_axis_label,
    plot_export,
    read_dataset,
)


def write_zip(path, datasets):
    """An export-shaped zip: ``datasets`` is ``name -> list of row dicts``."""
    manifest = {"datasets": []}
    with zipfile.ZipFile(path, "w") as zf:
        for name, rows in datasets.items():
            member = f"{name}/{name}-all.csv"
            out = io.StringIO()
            writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\r\n")
            writer.writeheader()
            writer.writerows(rows)
            zf.writestr(member, out.getvalue())
            manifest["datasets"].append({"dataset_name": name, "csv_paths": [member]})
        zf.writestr("manifest.json", json.dumps(manifest))
    return path


def rows(unit, column, points, **extra):
    return [{"pioreactor_unit": unit, "hours_since_experiment_created": h, column: v, **extra} for h, v in points]


def test_series_are_split_by_unit_and_shifted_to_the_start(tmp_path):
    data = rows("w1", "od_reading", [(1.5, 0.1), (2.0, 0.2)], channel="2") + \
        rows("w1", "od_reading", [(1.5, 9.0)], channel="1") + rows("w2", "od_reading", [(1.75, 0.3)], channel="2")
    series = by_unit(data, "od_reading", channel="2", start_h=1.5)
    assert series == {"w1": ([0.0, 0.5], [0.1, 0.2]), "w2": ([0.25], [0.3])}


def test_dilution_rate_is_media_per_hour_over_the_volume():
    doses = [{"pioreactor_unit": "w1", "hours_since_experiment_created": h, "event": e, "volume_change_ml": v}
             for h, e, v in [(0.2, "add_media", 0.5), (0.5, "add_media", 0.5), (0.6, "remove_waste", 1.0),
                             (1.2, "add_alt_media", 0.7)]]
    volumes = {"w1": ([0.0, 0.5, 1.5], [10.0, 10.0, 14.0])}
    xs, ys = dilution_rates(doses, volumes)["w1"]
    assert xs == [0.0, 1.0]
    assert ys == pytest.approx([1.0 / 10.0, 0.7 / 14.0])  # waste removals do not count


def test_the_last_dilution_bin_is_drawn_across_its_width_up_to_the_end_of_the_data():
    assert bin_steps(([0.0, 1.0], [0.07, 0.1]), end_h=2.0) == ([0.0, 1.0, 2.0], [0.07, 0.1, 0.1])
    assert bin_steps(([0.0, 1.0], [0.07, 0.1]), end_h=1.5) == ([0.0, 1.0, 1.5], [0.07, 0.1, 0.1])  # a part bin
    assert bin_steps(([0.0, 6.0], [0.0, 0.0]), end_h=6.0) == ([0.0, 6.0], [0.0, 0.0])  # no media at all
    assert bin_steps(([], []), end_h=2.0) == ([], [])


def test_the_od_axis_says_whether_it_is_calibrated():
    assert od_axis_label(True) == "OD600 (calibrated)"
    assert "uncalibrated" in od_axis_label(False)


def test_the_figure_is_drawn_from_the_export(tmp_path):
    export = write_zip(tmp_path / "export.zip", {
        "od_readings": rows("w1", "od_reading", [(h / 10, 0.1 + h / 100) for h in range(50)], channel="2"),
        "growth_rates": rows("w1", "rate", [(h / 10, 0.4) for h in range(50)]),
        "liquid_volumes": rows("w1", "liquid_volume", [(1.0, 14.5), (1.01, 14.0)]),
        "dosing_events": rows("w1", "volume_change_ml", [(1.0, 0.5)], event="add_media") +
        rows("w1", "volume_change_ml", [(1.01, 0.5)], event="remove_waste"),
    })
    with zipfile.ZipFile(export) as zf:
        assert len(read_dataset(zf, json.loads(zf.read("manifest.json")), "od_readings")) == 50
        assert read_dataset(zf, json.loads(zf.read("manifest.json")), "nothing") == []
    path = plot_export(export, tmp_path / "fig.png", title="exp: turbidostat on w1", start_h=0.5)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 20_000

