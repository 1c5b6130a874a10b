"""Supervise a local cluster's processes with supervisord.

Per unit: the API under gunicorn (``pio serve``) and the rq task worker
(``pio worker``) and every job the installed plugins mark ``autostart`` (:func:`autostart_jobs`);
on the leader also the ingestion job; and the
cluster's own mosquitto (``broker``, started first; see :mod:`.broker`). supervisord
restarts a crashed process, keeps one log per process under ``<root>/logs``,
and stops everything (process groups included, so jobs spawned by the workers
go too) on ``pio cluster down``.
"""

from __future__ import annotations

import functools
import getpass
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

from reactorkit.core.localcluster.layout import ClusterLayout
from reactorkit.core.outbox import INGESTION_JOB
from reactorkit.core.processes import pid_alive


class SupervisorError(RuntimeError):
    """supervisord could not be started or answered with an error."""


def _program(name: str, command: list[str], env: dict[str, str], layout: ClusterLayout, cwd: Path) -> str:
    """One ``[program:…]`` section; gunicorn (``*-api``) gets SIGINT, its quick shutdown (a local
    cluster has no request worth waiting for), the others SIGTERM."""
    environment = ",".join(f'{k}="{v}"' for k, v in env.items())
    return (
        f"[program:{name}]\n"
        f"priority={BROKER_PRIORITY if name == BROKER else 999}\n"
        f"command={shlex.join(command)}\n"
        f"directory={cwd}\n"
        f"environment={environment}\n"
        "autostart=true\nautorestart=true\nstartsecs=1\nstartretries=5\n"
        f"stopsignal={'INT' if name.endswith('-api') else 'TERM'}\nstopwaitsecs=15\nstopasgroup=true\nkillasgroup=true\n"
        f"stdout_logfile={layout.root / 'logs' / (name + '.log')}\nredirect_stderr=true\n"
        "stdout_logfile_maxbytes=10MB\nstdout_logfile_backups=1\n\n"
    )


BROKER = "broker"
BROKER_PRIORITY = 1  # supervisord starts lower priorities first and stops them last


def broker_config_path(layout: ClusterLayout) -> Path:
    return layout.root / "mosquitto.conf"


@functools.lru_cache(maxsize=1)
def autostart_jobs() -> tuple[str, ...]:
    """Names of the installed jobs every unit runs from its start (``JobDescriptor.autostart``), sorted."""
    from reactorkit.core.plugins import Registry

    return tuple(sorted(name for name, d in Registry.installed().jobs.items() if d.autostart and d.is_long_running))


#: What the autostarted jobs and the leader's ingestion run: ``pio``'s console script, told to run the job in its own
#: process (no launcher: the supervised process is the job, not a client of it) and without click (~2 MB less memory
#: per job, measured)
FRESH_JOB_ENTRY = "reactorkit.core.cli.entry"
FRESH_JOB_ENV = {"REACTORKIT_LAUNCHER": "0"}


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
        for job in autostart_jobs():
            out[f"{unit}-{job}"] = ([sys.executable, "-m", FRESH_JOB_ENTRY, "run", job], unit)
    out[f"{layout.leader}-mqtt_to_db"] = ([sys.executable, "-m", FRESH_JOB_ENTRY, "run", INGESTION_JOB],
                                          layout.leader)
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

        from reactorkit.core.auth.mqtt import provision_broker

        (root / "mosquitto").mkdir(exist_ok=True)
        passwords, acl = provision_broker(
            root / "broker", (layout.leader, layout.unit_dir(layout.leader)),
            [(w, layout.unit_dir(w)) for w in layout.workers if w != layout.leader])
        broker_config_path(layout).write_text(mosquitto_config(
            tcp_port=layout.mqtt_port, ws_port=layout.mqtt_ws_port, bind_tcp="127.0.0.1", bind_ws="127.0.0.1",
            data_dir=root / "mosquitto", log_file=root / "logs" / "mosquitto.log", user=getpass.getuser(),
            password_file=passwords, acl_file=acl))
    for name, (command, unit) in programs(layout).items():
        extra = FRESH_JOB_ENV if FRESH_JOB_ENTRY in command else {}
        text += _program(name, command, {**base_env, **layout.env(unit), **extra}, layout, layout.unit_dir(unit))
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


def supervisord_pid(layout: ClusterLayout) -> int | None:
    """Pid of the cluster's supervisord (from its pidfile), or None."""
    try:
        return int((layout.root / "supervisord.pid").read_text().strip())
    except (OSError, ValueError):
        return None


def is_running(layout: ClusterLayout) -> bool:
    pid = supervisord_pid(layout)
    return pid is not None and pid_alive(pid)  # a zombie waiting for init to reap it has stopped


def rpc(layout: ClusterLayout):
    """An XML-RPC proxy of the cluster's supervisord, over its unix socket (no ``supervisorctl`` start-up)."""
    import xmlrpc.client

    from supervisor.xmlrpc import SupervisorTransport

    transport = SupervisorTransport(None, None, f"unix://{layout.root / 'supervisor.sock'}")
    return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)


def program_pids(layout: ClusterLayout) -> set[int]:
    """Pids of the supervised processes that run (empty when supervisord does not answer)."""
    try:
        return {info["pid"] for info in rpc(layout).supervisor.getAllProcessInfo() if info.get("pid")}
    except (OSError, Exception):  # noqa: BLE001 - a supervisord that is gone or going answers nothing
        return set()


def stop_programs(layout: ClusterLayout, names: list[str] | None = None, timeout_s: float = 20.0) -> None:
    """Ask supervisord to stop ``names`` (default: every program but the broker) all at once; wait for them.

    supervisord itself stops programs one after the other when it shuts down; asking for each
    without waiting lets them wind down in parallel.
    """
    server = rpc(layout)
    try:
        infos = server.supervisor.getAllProcessInfo()
    except (OSError, Exception):  # noqa: BLE001
        return
    wanted = [i["name"] for i in infos if (i["name"] in names if names is not None else i["name"] != BROKER)]
    for name in wanted:
        try:
            server.supervisor.stopProcess(name, False)
        except Exception:  # noqa: BLE001 - not running: nothing to stop
            pass
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            states = {i["name"]: i["statename"] for i in server.supervisor.getAllProcessInfo()}
        except (OSError, Exception):  # noqa: BLE001
            return
        if all(states.get(n) not in ("RUNNING", "STARTING", "STOPPING", "BACKOFF") for n in wanted):
            return
        time.sleep(0.05)


def _all_stopped(layout: ClusterLayout) -> bool:
    """True when supervisord answers and none of its programs runs or is stopping."""
    try:
        infos = rpc(layout).supervisor.getAllProcessInfo()
    except (OSError, Exception):  # noqa: BLE001
        return False
    return all(i["statename"] in ("STOPPED", "EXITED", "FATAL") and not i.get("pid") for i in infos)


def stop(layout: ClusterLayout, timeout_s: float = 60.0) -> None:
    """Stop every program (the broker last), then supervisord itself, and wait for it to exit.

    Each program is stopped through the API before the shutdown: supervisord's own shutdown
    walks its programs one per turn of its event loop (up to a second each).
    """
    pid = supervisord_pid(layout)
    if pid is None or not is_running(layout):
        return
    stop_programs(layout)
    stop_programs(layout, [BROKER])
    if _all_stopped(layout):
        # nothing left to supervise: end supervisord at once rather than wait for its event loop's next turns
        try:
            os.kill(pid, 9)
        except OSError:
            pass
        # gone once it is a zombie: supervisord is daemonised, and reaping it is up to init (pid 1), which in a
        # container may take a second or two
        gone_by = time.monotonic() + 5
        while pid_alive(pid) and time.monotonic() < gone_by:
            time.sleep(0.01)
        for leftover in (layout.root / "supervisor.sock", layout.root / "supervisord.pid"):
            leftover.unlink(missing_ok=True)
        return
    try:
        rpc(layout).supervisor.shutdown()
    except (OSError, Exception):  # noqa: BLE001 - already shutting down
        os.kill(pid, 15)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return
        time.sleep(0.05)
    os.kill(pid, 9)
