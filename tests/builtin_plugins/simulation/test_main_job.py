"""The main job, shorter: a real local cluster runs the scripted experiment through the API."""

import time
import statistics
import zipfile

import httpx
import pytest

from reactorkit.builtin_plugins.simulation.experiment import run_experiment
from reactorkit.core.localcluster.layout import ClusterLayout
from reactorkit.core.testing import processes_under
from vessel_sampler import VesselSampler

pytestmark = pytest.mark.integration

HOURS = 6.0
TARGET_NOD = 3.0


def test_the_scripted_experiment_runs_end_to_end(tmp_path):
    root = tmp_path / "cluster"
    sampler = VesselSampler(root)
    sampler.start()
    seen = {}

    def inspect(result):
        """While the cluster is still up: read what the API serves."""
        api = httpx.Client(base_url=result.api_url, timeout=30,
                           headers={"Authorization": f"Bearer {ClusterLayout.load(root).admin_token()}"})
        params = {"lookback": HOURS + 2, "target_points": 720}
        for source in ("od_readings", "growth_rates"):
            seen[source] = api.get(f"/api/experiments/{result.experiment}/time_series/{source}", params=params).json()
        seen["dosing"] = api.get(f"/api/experiments/{result.experiment}/time_series/dosing_events/volume_change_ml",
                                 params=params).json()
        seen["result"] = result

    try:
        run_experiment(root, hours=HOURS, minutes=1.5, workers=2, out_dir=tmp_path / "out", echo=lambda line: None,
                       live=False, keep_running=inspect, turbidostat_target=TARGET_NOD)
    finally:
        sampler.stop.set()
        sampler.join(5)
    result = seen["result"]

    # both units have OD and growth-rate series
    od_series = seen["od_readings"]["series"]
    assert {s.split("-")[0] for s in od_series} == {"worker1", "worker2"}
    assert sorted(seen["growth_rates"]["series"]) == ["worker1", "worker2"]
    assert all(len(points) > 20 for points in seen["growth_rates"]["data"])

    # the turbidostat doses and holds the true OD within ±10 % of a level near its trigger after its first dilution
    assert result.turbidostat in seen["dosing"]["series"]
    samples = sampler.samples[result.turbidostat]
    media = [s["cumulative_media_ml"] for s in samples]
    calibrated = next(i for i, s in enumerate(samples) if s["pwm"].get("1", 0) > 0)  # stirring on: profile started
    first_dose = next(i for i in range(calibrated, len(samples)) if media[i] > media[calibrated] + 0.1)
    held = samples[first_dose]["od"] / (1 - 1 / 15)  # the OD that triggered the first dilution
    after = [s["od"] for s in samples[first_dose:]]
    assert len(after) > 50
    level = statistics.median(after)  # the level held; one sample taken mid-dose misjudges ``held`` by a few %
    assert abs(level - held) / held < 0.10, (held, level)
    assert all(abs(od - level) / level < 0.10 for od in after), (held, level, min(after), max(after))

    # the export holds the expected CSVs, and the plot was written
    names = zipfile.ZipFile(result.export_path).namelist()
    for dataset in ("od_readings", "growth_rates", "dosing_events"):
        assert any(n.startswith(f"{dataset}/") and n.endswith(".csv") for n in names), (dataset, names)
    assert result.plot_path.stat().st_size > 10_000

    # and nothing is left running
    time.sleep(1)
    assert processes_under(root) == []
