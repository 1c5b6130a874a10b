"""``pio serve``: the unit's HTTP API (``/unit_api``, and ``/api`` on the leader) under gunicorn.

Workers: gevent's WSGI server (``gevent_pywsgi``, 2 processes) by default: one greenlet per connection and
no hand-over between threads per request, so a light route costs about two thirds of the CPU it costs under
gunicorn's threaded worker (``benchmarks/api_light_routes.py``; README "Light routes"). gunicorn patches the
standard library in each worker (sockets, ``threading``, ``time.sleep``, ``subprocess``) before the app is
loaded, so the app's threads (fan-out, reachability probes) are greenlets and wait without blocking the
others; a ``threading.local`` is per greenlet, i.e. per HTTP connection (the leader database hands an ended
connection's SQLite connection to the next one). ``--worker-class gthread --threads N`` serves as before
(and is the default where gevent is not installed).

The master's pid is written to :func:`reactorkit.plugin.gunicorn_pid_path`; SIGHUP to it starts fresh
workers, which load the plugins anew (what an install or uninstall does, and ``web_server/restart``).
"""

from __future__ import annotations

import os
import sys

import click


@click.command("serve", context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--port", type=int, default=None, help="TCP port (default [ui] port, 4999).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--workers", type=int, default=2, show_default=True, help="gunicorn worker processes.")
@click.option("--threads", type=int, default=4, show_default=True,
              help="Threads per worker process (the gthread worker class only).")
@click.option("--worker-class", default=None,
              help="gunicorn worker class: gevent_pywsgi (default; gthread when gevent is not installed), gevent, "
                   "gthread (with --threads) or sync.")
@click.option("--access-log/--no-access-log", default=True, show_default=True,
              help="Write one line per request to stdout (costs about a quarter of the throughput of small requests).")
def serve(port: int | None, host: str, workers: int, threads: int, worker_class: str | None, access_log: bool) -> None:
    """Serve /unit_api (and /api on the leader) with gunicorn."""
    from reactorkit.plugin import get_config, gunicorn_pid_path

    if worker_class is None:  # an environment installed before gevent was a dependency serves as before
        import importlib.util

        worker_class = "gevent_pywsgi" if importlib.util.find_spec("gevent") else "gthread"
    config = get_config()
    port = port or config.getint("ui", "port", fallback=4999)
    # HTTPS when [api] tls_cert_file and tls_key_file name a certificate and its key (then set [ui] proto = https)
    cert, key = (config.get("api", k, fallback="").strip() for k in ("tls_cert_file", "tls_key_file"))
    tls = ["--certfile", cert, "--keyfile", key] if cert and key else []
    args = [sys.executable, "-m", "gunicorn", "reactorkit.api.app:get_app()", "--bind", f"{host}:{port}", *tls,
            "--workers", str(workers), "--threads", str(threads),
            "--worker-class", worker_class,
            "--timeout", "330",  # a calibration step may run the hardware for up to 300 s
            "--graceful-timeout", "5",
            *(["--access-logfile", "-"] if access_log else []), "--log-level", "warning",
            "--pid", str(gunicorn_pid_path())]
    os.execv(sys.executable, args)
