"""Requests per second of the light API routes, per gunicorn configuration.

Serves a leader (``pio serve``, as deployed; a small database with one
experiment and four workers) with each configuration given (``--config
WORKERS:THREADS[:CLASS]``, repeatable; CLASS ``balanced`` (``pio serve``'s default: gthread sharing new
connections between its workers, ``reactorkit.api.balanced_worker``), ``gthread``, ``gevent_pywsgi``, ``gevent``,
or ``sync``; THREADS counts for the gthread ones only) and
reports, for each light route, p50 of one client and the requests per second
of ``--concurrency`` keep-alive connections, and the gunicorn workers' CPU time per
request and each worker's share of it (a run in which one worker accepted every connection — they race
for connections on the socket they share — shows ~100/0 and about half the requests per second), beside the interpreter floor and the load average measured in the same run.

Load generator (``--loadgen``): ``wrk`` (C; Debian's ``apt-get install wrk``) when it is installed, else
the Python one of ``api_time_series.py`` (raw sockets, 4 processes). Both keep ``--concurrency``
keep-alive connections busy, each sending its next request when the answer came, and both run on
the same 2 cores as the server, so the figure is what the server gets of the machine: the Python
generator costs about as much CPU per request as the server does and so takes roughly half of it;
wrk takes a small fraction. Each line names the generator that ran. ``--loadgen both`` runs both.

The gunicorn floor (``--no-gunicorn-floor`` skips it): gunicorn serving a WSGI app that returns one
constant body (``constant_wsgi.py``), measured the same way, with ``pio serve``'s worker class (2 × 4
threads, gthread sharing new connections), with gunicorn's plain ``gthread`` (2 × 4) and with gevent's WSGI
server (2 × ``gevent_pywsgi``), so each run shows what the server itself costs per request beside what
the routes cost.

Each server is measured once every one of its worker processes has loaded the app (gunicorn's workers
load it after the fork, each in its own time: on a busy machine the first can answer while its sibling
is still importing, and would then accept every connection of the first route's run).

Routes: ``/unit_api/health``, ``/unit_api/versions/app``, ``/api/experiments``,
``/api/units``, ``/api/workers``, ``/unit_api/jobs/running``.
Target (issue "Fast where it is still level"): ≥ 5,000 req/s each with 16 connections on 2 cores.

Usage::

    python benchmarks/api_light_routes.py                          # the default configuration
    python benchmarks/api_light_routes.py --config 2:1 --config 2:4 --config 3:1:sync --duration 3
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
import api_server  # noqa: E402 (benchmarks/ is the script's folder)
from machine import interpreter_floor_ms  # noqa: E402

_spec = importlib.util.spec_from_file_location("api_time_series", Path(__file__).with_name("api_time_series.py"))
ts = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ts)  # type: ignore[union-attr]

ROUTES = ("/unit_api/health", "/unit_api/versions/app", "/api/experiments", "/api/units", "/api/workers",
          "/unit_api/jobs/running")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", action="append", help="WORKERS:THREADS[:CLASS] (repeatable; default: pio serve's)")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--duration", type=float, default=4.0, help="seconds of each throughput run")
    parser.add_argument("--requests", type=int, default=200, help="sequential requests for p50")
    parser.add_argument("--route", action="append", help="route to measure (repeatable; default all six)")
    parser.add_argument("--loadgen", choices=("auto", "wrk", "python", "both"), default="auto",
                        help="load generator: wrk when installed (auto), the Python one, or both in turn")
    parser.add_argument("--gunicorn-floor", action=argparse.BooleanOptionalAction, default=True,
                        help="also serve a constant-body WSGI app with gunicorn (2 × 4 threads as pio serve, 2 × 4 "
                             "plain gthread, 2 × gevent_pywsgi) and measure it the same way: what the server costs per request "
                             "before the app runs")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temporary leader folder (kept anyway, with its logs, when a server did not start)")
    args = parser.parse_args()
    wrk = shutil.which("wrk")
    if args.loadgen == "auto":
        args.loadgens = ["wrk" if wrk else "python"]
    elif args.loadgen == "both":
        args.loadgens = ["wrk", "python"] if wrk else ["python"]
    else:
        args.loadgens = [args.loadgen]
    if "wrk" in args.loadgens and not wrk:
        sys.exit("wrk is not installed (apt-get install wrk); use --loadgen python")
    root = Path(tempfile.mkdtemp(prefix="rk-bench-light-"))
    env = ts.setup_leader(root)
    env["REACTORKIT_LAUNCHER"] = "0"
    ts.create_schema(env, ["worker1", "worker2", "worker3", "worker4"])
    configs = args.config or [""]
    routes = args.route or list(ROUTES)
    print(f"interpreter floor (python -c pass): {interpreter_floor_ms():.1f} ms; "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; {os.cpu_count()} CPU(s); "
          f"{args.concurrency} connections, {args.duration:.0f} s each")
    failed = None
    try:
        for config in configs:
            _measure(config, env, root, routes, args)
        if args.gunicorn_floor:
            for floor in FLOORS:
                _measure_floor(root, args, floor)
    except api_server.DidNotStart as exc:  # the message names its log, in root
        failed = exc
        raise
    finally:
        api_server.remove_unless_kept(root, args.keep, failed)


def _measure(config: str, env: dict[str, str], root: Path, routes: list[str], args: argparse.Namespace) -> None:
    """Serve with one configuration (``WORKERS:THREADS[:CLASS]``, ``""``: pio serve's) and print each route's figures."""
    parts = config.split(":") if config else []
    workers = int(parts[0]) if parts else 0
    threads = int(parts[1]) if len(parts) > 1 else 0
    worker_class = parts[2] if len(parts) > 2 else None
    if worker_class == "balanced":
        worker_class = BALANCED
    options = ["--workers", str(workers), "--threads", str(threads)] if parts else []
    options += ["--no-access-log"] + (["--worker-class", worker_class] if worker_class else [])
    # waits for every worker, not only the first to answer (api_server.boot_marking)
    proc, port = api_server.start_pio_serve(env, root, options,
                                            workers if parts else api_server.serve_default("workers"))
    label = config or "pio serve defaults"
    try:
        print(f"[{label}]")
        for route in routes:
            _load(proc, port, route, route, args)
    finally:
        api_server.stop(proc)


def _load(proc: subprocess.Popen, port: int, route: str, label: str, args: argparse.Namespace) -> None:
    """Print p50 of one client, then req/s and the gunicorn workers' CPU per request under each load generator."""
    p50 = statistics.median(ts.latencies(port, route, args.requests))
    for loadgen in args.loadgens:
        workers = _workers(proc.pid)
        cpu0 = {w: _cpu_s(w) for w in workers}
        if loadgen == "wrk":
            rps, seconds = ts.wrk_throughput(port, route, args.concurrency, args.duration)
        else:
            rps, seconds = ts.throughput(port, route, args.concurrency, args.duration), args.duration
        used = sorted((_cpu_s(w) - cpu0[w] for w in workers), reverse=True)
        per_request = sum(used) / max(rps * seconds, 1) * 1e6
        # each worker's share of the server CPU: a run where one process got (nearly) every connection shows ~100/0
        shares = "/".join(f"{100 * u / max(sum(used), 1e-9):.0f}" for u in used)
        print(f"  {label:<26} p50 {p50:6.2f} ms  {rps:8.0f} req/s ({loadgen:<6})  server CPU "
              f"{per_request:5.0f} µs/request, per worker {shares} %   (load {os.getloadavg()[0]:.2f})", flush=True)


#: pio serve's default worker class (gthread sharing a burst of new connections between its workers)
BALANCED = "reactorkit.api.balanced_worker.BalancedThreadWorker"
#: the gunicorn floors: (label, gunicorn arguments)
FLOORS = (("2 workers × gevent_pywsgi", ["--workers", "2", "--worker-class", "gevent_pywsgi"]),
          ("2 workers × 4 gthread threads", ["--workers", "2", "--threads", "4", "--worker-class", "gthread"]),
          ("2 workers × 4 threads, balanced gthread, as pio serve",
           ["--workers", "2", "--threads", "4", "--worker-class", BALANCED]))


def _measure_floor(root: Path, args: argparse.Namespace, floor: tuple[str, list[str]]) -> None:
    """gunicorn serving :mod:`constant_wsgi` with ``floor``'s worker settings, measured as a route."""
    port = api_server.free_port()
    proc = api_server.start_booted([sys.executable, "-m", "gunicorn", "constant_wsgi:app", "--pythonpath",
                                    str(Path(__file__).parent), "--bind", f"127.0.0.1:{port}", *floor[1],
                                    "--log-level", "warning"], dict(os.environ), root, "floor.log",
                                   int(floor[1][floor[1].index("--workers") + 1]), "gunicorn", timeout=30)
    try:
        print(f"[gunicorn floor: a constant-body WSGI app, {floor[0]}]")
        _load(proc, port, "/", "constant body", args)
    finally:
        api_server.stop(proc)


def _workers(master: int) -> list[int]:
    """gunicorn's worker processes (children of the master ``pio serve`` became)."""
    try:
        return [int(p) for p in Path(f"/proc/{master}/task/{master}/children").read_text().split()]
    except OSError:
        return []


def _cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError):
        return 0.0


if __name__ == "__main__":
    main()
