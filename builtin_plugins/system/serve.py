"""``pio serve``: the unit's HTTP API (``/unit_api``, and ``/api`` on the leader) under gunicorn.

Workers: gunicorn's threaded worker (``gthread``, 2 processes × 4 threads) by default, as
:class:`reactorkit.api.balanced_worker.BalancedThreadWorker`, which shares a burst of new connections
between the processes (one process holding them all runs on one core of the two). Each request has its
own OS thread, so one that waits (a write waiting up to 15 s for SQLite's lock while the MQTT writer, an
experiment's deletion or a migration holds it; a state-folder zip; a long time-series or logs query; an
inline calibration action) holds its thread only, not the other requests. ``--worker-class gevent_pywsgi``
(gevent's WSGI server, one greenlet per connection, the standard library monkey-patched) costs about two
thirds of the CPU per light route (``benchmarks/api_light_routes.py``), but SQLite, zlib and the other C
calls are not patched: a request waiting in them stalls every other request of its worker process
(``tests/api/test_serve_blocking.py`` holds the database lock: under gevent_pywsgi a health request waited
more than 120 s, under gthread it is answered at once). It is there for measurements, not for a unit.

The master's pid is written to :func:`reactorkit.plugin.gunicorn_pid_path`; SIGHUP to it starts fresh
workers, which load the plugins anew (what an install or uninstall does, and ``web_server/restart``).
"""

from __future__ import annotations

import os
import sys

import click

#: ``pio serve``'s worker class when it runs threads: gthread sharing a burst of new connections between workers
BALANCED_WORKER = "reactorkit.api.balanced_worker.BalancedThreadWorker"


@click.command("serve", context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--port", type=int, default=None, help="TCP port (default [ui] port, 4999).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--workers", type=int, default=2, show_default=True, help="gunicorn worker processes.")
@click.option("--threads", type=int, default=4, show_default=True,
              help="Threads per worker process (the gthread worker class only).")
@click.option("--worker-class", default=None,
              help="gunicorn worker class (default: gthread sharing new connections between the worker processes, "
                   "reactorkit.api.balanced_worker.BalancedThreadWorker, when --threads > 1, else sync); "
                   "gevent_pywsgi / gevent: a "
                   "request waiting in SQLite or another C call stalls its whole worker process.")
@click.option("--access-log/--no-access-log", default=True, show_default=True,
              help="Write one line per request to stdout (costs about a quarter of the throughput of small requests).")
def serve(port: int | None, host: str, workers: int, threads: int, worker_class: str | None, access_log: bool) -> None:
    """Serve /unit_api (and /api on the leader) with gunicorn."""
    from reactorkit.plugin import get_config, gunicorn_pid_path

    if worker_class is None and threads > 1:
        worker_class = BALANCED_WORKER
    config = get_config()
    port = port or config.getint("ui", "port", fallback=4999)
    # HTTPS when [api] tls_cert_file and tls_key_file name a certificate and its key (then set [ui] proto = https)
    cert, key = (config.get("api", k, fallback="").strip() for k in ("tls_cert_file", "tls_key_file"))
    tls = ["--certfile", cert, "--keyfile", key] if cert and key else []
    args = [sys.executable, "-m", "gunicorn", "reactorkit.api.app:get_app()", "--bind", f"{host}:{port}", *tls,
            "--workers", str(workers), "--threads", str(threads),
            *(["--worker-class", worker_class] if worker_class else []),  # gunicorn's sync when threads == 1
            "--timeout", "330",  # a calibration step may run the hardware for up to 300 s
            "--graceful-timeout", "5",
            *(["--access-logfile", "-"] if access_log else []), "--log-level", "warning",
            "--pid", str(gunicorn_pid_path())]
    os.execv(sys.executable, args)
