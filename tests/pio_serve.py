"""Test kit: ``pio serve`` (real gunicorn) with idle connections kept open, for tests that pin keep-alive
connections to worker processes."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx
import psutil

from reactorkit.core.cluster import free_port
from reactorkit.core.testing import pio_command


def serve_keeping_connections(env: dict[str, str], folder: Path, workers: int, gunicorn_settings: str = ""
                              ) -> tuple[subprocess.Popen, int, list[psutil.Process]]:
    """Start ``pio serve --workers workers`` on a free port with environment ``env`` and return once it answers
    ``/unit_api/health`` and all its worker processes exist: ``(process, port, worker processes)``.

    A gunicorn config file written in ``folder`` (given through ``GUNICORN_CMD_ARGS``, read by the gunicorn that
    ``pio serve`` becomes) keeps idle connections open 120 s (gunicorn's default is 2 s), followed by
    ``gunicorn_settings`` (Python lines of a gunicorn config file).

    Raises:
        AssertionError: the server did not answer within 60 s, or stopped.
    """
    config = folder / "gunicorn_test_config.py"
    config.write_text("keepalive = 120\n" + gunicorn_settings)
    port = free_port()
    proc = subprocess.Popen(pio_command("serve", "--port", str(port), "--workers", str(workers), "--no-access-log"),
                            env={**env, "GUNICORN_CMD_ARGS": f"--config {config}"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/unit_api/health", timeout=5)
            break
        except httpx.TransportError:
            assert time.monotonic() < deadline and proc.poll() is None, "pio serve did not start"
            time.sleep(0.2)
    master = psutil.Process(proc.pid)
    while len(master.children()) < workers:  # a worker that answered may be alone for a moment
        assert proc.poll() is None, "pio serve stopped"
        time.sleep(0.1)
    return proc, port, master.children()
