"""The local cluster's supervised programs: every unit runs each job its plugins mark ``autostart``."""

import sys

import pytest

from reactorkit.core.descriptors import JobDescriptor
from reactorkit.core.localcluster import supervisor
from reactorkit.core.localcluster.layout import ClusterLayout


def test_the_installed_autostart_jobs_come_from_the_plugins_descriptors():
    from reactorkit.core.plugins import Registry

    jobs = Registry.installed().jobs
    assert "monitor" in supervisor.autostart_jobs()
    assert all(jobs[name].autostart and jobs[name].is_long_running for name in supervisor.autostart_jobs())
    assert "mqtt_to_db_streaming" not in supervisor.autostart_jobs()  # the leader's alone, started by name


def test_every_unit_gets_a_program_per_autostart_job_run_in_its_own_interpreter(tmp_path, monkeypatch):
    monkeypatch.setattr(supervisor, "autostart_jobs", lambda: ("monitor", "sensor_check"))
    layout = ClusterLayout(root=tmp_path, workers=["worker1"], ports={"leader": 40001, "worker1": 40002})
    programs = supervisor.programs(layout)
    for unit in ("leader", "worker1"):
        for job in ("monitor", "sensor_check"):
            assert programs[f"{unit}-{job}"] == ([sys.executable, "-m", supervisor.FRESH_JOB_ENTRY, "run", job], unit)
    (tmp_path / "logs").mkdir()
    text = supervisor.write_config(layout).read_text()

    def section(name: str) -> str:
        return text.split(f"[program:{name}]\n", 1)[1].split("\n\n", 1)[0]

    assert 'REACTORKIT_LAUNCHER="0"' in section("worker1-monitor")  # the supervised process is the job itself
    assert 'HOSTNAME="worker1"' in section("worker1-monitor")
    assert "REACTORKIT_LAUNCHER" not in section("worker1-api")


def test_autostart_needs_a_long_running_job():
    with pytest.raises(ValueError, match="autostart needs is_long_running"):
        JobDescriptor(job_name="sensor_check", display_name="Sensor check", job_class="x:Y", autostart=True)
    assert JobDescriptor(job_name="sensor_check", display_name="Sensor check", job_class="x:Y", autostart=True,
                         is_long_running=True).autostart


def test_the_leaders_ingestion_is_supervised_as_the_job_itself(tmp_path):
    layout = ClusterLayout(root=tmp_path, workers=["worker1"], ports={"leader": 40001, "worker1": 40002})
    programs = supervisor.programs(layout)
    assert programs["leader-mqtt_to_db"] == (
        [sys.executable, "-m", supervisor.FRESH_JOB_ENTRY, "run", "mqtt_to_db_streaming"], "leader")
    assert "worker1-mqtt_to_db" not in programs
    (tmp_path / "logs").mkdir()
    section = supervisor.write_config(layout).read_text().split("[program:leader-mqtt_to_db]\n", 1)[1]
    assert 'REACTORKIT_LAUNCHER="0"' in section.split("\n\n", 1)[0]  # not handed to the unit's launcher
