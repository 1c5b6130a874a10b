"""After an unclean stop (power cut, SIGKILL, crash), restore what was running — or say it stays stopped.

A job started as ``pio run <job> …`` keeps those arguments in the unit's job
registry; when its process dies without cleaning up, the registry moves them,
with the job's last published settings, to ``unclean_stops``
(:meth:`reactorkit.core.job_registry.JobRegistry.clean_stale`).

When the unit's task worker starts (``pio worker``: at boot, or when its
supervisor restarts it), :func:`restore_after_unclean_stop` applies the policy
``[reliability] restore_policy``:

* ``restore`` (default): each job is started again, detached, with its
  original arguments and its last settings where they were options (a
  ``target_rpm`` changed while it ran restarts at the changed value), in its
  experiment. Automations keep their state where it lives on disk (a dosing
  automation's vial bookkeeping; an interrupted dilution is completed by the
  books, see ``builtin_plugins/dosing/dilution.py``). Pump actions are never
  repeated (they keep no restart arguments).
* ``stay_stopped``: nothing is started; a warning per job says it stays
  stopped and gives the command that starts it again.

Either way each job gets a log line (the unit's log file and MQTT log topic).
A job already running again (started by hand before the worker) is left alone.
"""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
import sys
from typing import Any

logger = logging.getLogger("reactorkit.restore")

POLICIES = ("restore", "stay_stopped")


def restore_policy(config: Any) -> str:
    """``[reliability] restore_policy`` (``restore`` | ``stay_stopped``).

    Raises:
        ValueError: another value.
    """
    value = (config.get("reliability", "restore_policy", fallback="restore") or "restore").strip().lower()
    if value not in POLICIES:
        raise ValueError(f"[reliability] restore_policy must be one of {', '.join(POLICIES)}, got {value!r}")
    return value


def with_settings(argv: list[str], settings: dict[str, Any]) -> list[str]:
    """``argv`` with the value after ``--<setting>`` replaced by the job's last published value of it.

    Only settings given as options are changed (``--target-rpm 400`` + ``target_rpm = 500`` → ``--target-rpm 500``).
    """
    out = list(argv)
    for name, value in settings.items():
        if name.startswith("$") or value in (None, ""):
            continue
        flag = "--" + name.replace("_", "-")
        for i, arg in enumerate(out[:-1]):
            if arg == flag:
                out[i + 1] = str(value)
    return out


def restore_after_unclean_stop(config: Any = None) -> list[dict[str, Any]]:
    """Apply ``[reliability] restore_policy`` to the jobs that stopped uncleanly (see the module doc).

    Returns:
        ``[{job_name, experiment, argv, action: "restored" | "stayed_stopped" | "already_running"}]``.
    """
    from reactorkit.core.config import get_config, get_unit_name
    from reactorkit.core.job_registry import JobRegistry

    config = config or get_config()
    unit = get_unit_name()
    policy = restore_policy(config)
    registry = JobRegistry(config=config)
    try:
        stopped = registry.take_unclean_stops()
        running = {r.job_name for r in registry.running()}
    finally:
        registry.close()
    done = []
    for entry in stopped:
        argv = with_settings(entry["argv"], entry["settings"])
        command = "pio " + " ".join(shlex.quote(a) for a in argv)
        if entry["job_name"] in running:
            action = "already_running"
            message = f"{entry['job_name']} stopped uncleanly earlier and is running again; left alone."
        elif policy == "restore":
            env = dict(os.environ, EXPERIMENT=entry["experiment"], JOB_SOURCE=entry["job_source"] or "user")
            subprocess.Popen([sys.executable, "-m", "reactorkit.core.cli.main", *argv], env=env,
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True, close_fds=True)
            running.add(entry["job_name"])
            action = "restored"
            message = (f"{entry['job_name']} was running when the unit stopped uncleanly (pid {entry['pid']}); "
                       f"restored with its last settings: {command}")
        else:
            action = "stayed_stopped"
            message = (f"{entry['job_name']} was running when the unit stopped uncleanly (pid {entry['pid']}); it stays "
                       f"stopped ([reliability] restore_policy = stay_stopped). Start it again with: {command}")
        _log(unit, entry["experiment"], config, message, warning=action == "stayed_stopped")
        done.append({"job_name": entry["job_name"], "experiment": entry["experiment"], "argv": argv,
                     "action": action})
    return done


def _log(unit: str, experiment: str, config: Any, message: str, *, warning: bool) -> None:
    """The unit's log file, and its MQTT log topic when the broker answers."""
    from reactorkit.core import mqtt as mq
    from reactorkit.core.logs import create_logger

    client = None
    try:
        client = mq.create_client(config=config, timeout=3.0)
    except Exception:
        client = None
    try:
        log = create_logger("restore", unit=unit, experiment=experiment, mqtt_client=client, config=config)
        (log.warning if warning else log.info)(message)
    finally:
        if client is not None:
            import time

            deadline = time.monotonic() + 2.0
            while client.want_write() and time.monotonic() < deadline:  # let the network thread send it
                time.sleep(0.01)
            client.disconnect()
            client.loop_stop()


__all__ = ["restore_after_unclean_stop", "restore_policy", "with_settings", "POLICIES"]
