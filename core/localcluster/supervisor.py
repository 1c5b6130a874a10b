"""Supervise a local cluster's processes with supervisord.

Per unit: the API under gunicorn (``pio serve``) and the rq task worker
(``pio worker``); on the leader also ``mqtt_to_db_streaming``; and the
cluster's own mosquitto (``broker``, started first; see :mod:`.broker`). supervisord
restarts a crashed process, keeps one log per process under ``<root>/logs``,
and stops everything (process groups included, so jobs spawned by the workers
go too) on ``pio cluster down``.
"""

from __future__ import annotations

import getpass
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

from reactorkit.core.localcluster.layout import ClusterLayout


class SupervisorError(RuntimeError):
    """supervisord could not be started or answered with an error."""


def _program(name: str, command: list[str], env: dict[str, str], layout: ClusterLayout, cwd: Path) -> str:
    environment = ",".join(f'{k}="{v}"' for k, v in env.items())
    return (
        f"[program:{name}]\n"
        f"priority={BROKER_PRIORITY if name == BROKER else 999}\n"
        f"command={shlex.join(command)}\n"
        f"directory={cwd}\n"
        f"environment={environment}\n"
        "autostart=true\nautorestart=true\nstartsecs=1\nstartretries=5\n"
        "stopsignal=TERM\nstopwaitsecs=15\nstopasgroup=true\nkillasgroup=true\n"
        f"stdout_logfile={layout.root / 'logs' / (name + '.log')}\nredirect_stderr=true\n"
        "stdout_logfile_maxbytes=10MB\nstdout_logfile_backups=1\n\n"
    )


BROKER = "broker"
BROKER_PRIORITY = 1  # supervisord starts lower priorities first and stops them last


def broker_config_path(layout: ClusterLayout) -> Path:
    return layout.root / "mosquitto.conf"


def programs(layout: ClusterLayout) -> dict[str, tuple[list[str], str]]:
    """``program name -> (command, unit)`` of every supervised process."""
    py = [sys.executable, "-m", "reactorkit.core.cli.main"]
    out: dict[str, tuple[list[str], str]] = {}
    if layout.own_broker:
        from reactorkit.core.localcluster.broker import mosquitto_binary

        out[BROKER] = ([mosquitto_binary(), "-c", str(broker_config_path(layout))], layout.leader)
    for unit in layout.units:
        out[f"{unit}-api"] = ([*py, "serve", "--port", str(layout.ports[unit]), "--workers", "2"], unit)
        out[f"{unit}-worker"] = ([*py, "worker"], unit)
    out[f"{layout.leader}-mqtt_to_db"] = ([*py, "run", "mqtt_to_db_streaming"], layout.leader)
    return out


def write_config(layout: ClusterLayout) -> Path:
    """Write ``<root>/supervisord.conf``; returns its path."""
    root = layout.root
    base_env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "VIRTUAL_ENV")}
    text = (
        "[supervisord]\n"
        f"logfile={root / 'logs' / 'supervisord.log'}\npidfile={root / 'supervisord.pid'}\n"
        f"childlogdir={root / 'logs'}\nnodaemon=false\nsilent=true\n\n"
        f"[unix_http_server]\nfile={root / 'supervisor.sock'}\n\n"
        "[rpcinterface:supervisor]\n"
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n\n"
        f"[supervisorctl]\nserverurl=unix://{root / 'supervisor.sock'}\n\n"
    )
    if layout.own_broker:
        from reactorkit.core.localcluster.broker import mosquitto_config

        (root / "mosquitto").mkdir(exist_ok=True)
        broker_config_path(layout).write_text(mosquitto_config(
            tcp_port=layout.mqtt_port, ws_port=layout.mqtt_ws_port, bind_tcp="127.0.0.1", bind_ws="127.0.0.1",
            data_dir=root / "mosquitto", log_file=root / "logs" / "mosquitto.log", user=getpass.getuser()))
    for name, (command, unit) in programs(layout).items():
        text += _program(name, command, {**base_env, **layout.env(unit)}, layout, layout.unit_dir(unit))
    path = root / "supervisord.conf"
    path.write_text(text)
    return path


def _bin(name: str) -> str:
    candidate = Path(sys.executable).with_name(name)
    return str(candidate) if candidate.exists() else name


def start(layout: ClusterLayout) -> None:
    """Start supervisord (daemonised) with every program of the cluster.

    Raises:
        SupervisorError: supervisord did not start.
    """
    conf = write_config(layout)
    result = subprocess.run([_bin("supervisord"), "-c", str(conf)], capture_output=True, text=True)
    if result.returncode != 0:
        raise SupervisorError(f"supervisord did not start: {result.stderr.strip() or result.stdout.strip()}")
    deadline = time.monotonic() + 10
    while not (layout.root / "supervisor.sock").exists():
        if time.monotonic() > deadline:
            raise SupervisorError("supervisord started but its control socket did not appear")
        time.sleep(0.05)


def ctl(layout: ClusterLayout, *args: str) -> subprocess.CompletedProcess:
    """Run ``supervisorctl`` against the cluster's supervisord."""
    return subprocess.run([_bin("supervisorctl"), "-c", str(layout.root / "supervisord.conf"), *args],
                          capture_output=True, text=True)


def status(layout: ClusterLayout) -> dict[str, str]:
    """``program -> state line`` (e.g. ``"RUNNING   pid 123, uptime 0:01:02"``); empty if not running."""
    result = ctl(layout, "status")
    out: dict[str, str] = {}
    for line in result.stdout.splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2 and parts[0] in programs(layout):
            out[parts[0]] = parts[1]
    return out


def is_running(layout: ClusterLayout) -> bool:
    pidfile = layout.root / "supervisord.pid"
    try:
        os.kill(int(pidfile.read_text().strip()), 0)
        return True
    except (OSError, ValueError):
        return False


def stop(layout: ClusterLayout, timeout_s: float = 60.0) -> None:
    """Stop every program, then supervisord itself, and wait for it to exit."""
    if not is_running(layout):
        return
    pid = int((layout.root / "supervisord.pid").read_text().strip())
    ctl(layout, "stop", "all")
    ctl(layout, "shutdown")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except OSError:
            return
        time.sleep(0.1)
    os.kill(pid, 9)
