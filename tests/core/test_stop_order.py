"""`stop all` stops jobs in the order their descriptors declare (stop_priority), not a list kept in core."""

from __future__ import annotations

import signal
import subprocess
import sys

from reactorkit.core import jobs_control
from reactorkit.core.job_registry import JobRegistry


def test_the_built_ins_declare_pumps_then_heating_then_automations_then_the_rest(monkeypatch, tmp_path):
    monkeypatch.setenv("DOT_PIOREACTOR", str(tmp_path))
    priority = jobs_control.stop_priorities()
    assert priority["add_media"] < priority["temperature_automation"] < priority["dosing_automation"]
    assert priority["dosing_automation"] < priority["led_automation"] < priority["stirring"]


def test_stop_all_signals_jobs_in_stop_priority_order(monkeypatch, tmp_path):
    monkeypatch.setenv("DOT_PIOREACTOR", str(tmp_path))
    registry = JobRegistry(path=tmp_path / "jobs.sqlite")
    procs = {}
    for name in ("stirring", "led_automation", "remove_waste", "temperature_automation", "dosing_automation"):
        proc = subprocess.Popen(["sleep", "60"])
        procs[proc.pid] = name
        registry.register(unit="u", experiment="e", job_name=name, pid=proc.pid, started_at="2026-01-01T00:00:00.000Z")
    signalled: list[str] = []
    real_kill = jobs_control.os.kill

    def recording_kill(pid, sig):
        if sig == signal.SIGINT:  # (signal 0 is how liveness is checked)
            signalled.append(procs[pid])
        real_kill(pid, sig)

    monkeypatch.setattr(jobs_control.os, "kill", recording_kill)
    try:
        jobs_control.stop_jobs(all_jobs=True, registry=registry, wait_s=10)
    finally:
        for pid in procs:
            try:
                real_kill(pid, 9)
            except ProcessLookupError:
                pass
        registry.close()
    assert signalled == ["remove_waste", "temperature_automation", "dosing_automation", "led_automation", "stirring"]
