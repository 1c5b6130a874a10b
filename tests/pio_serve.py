"""Test kit: ``pio serve`` (real gunicorn) with idle connections kept open, for tests that pin keep-alive
connections to worker processes (:func:`pinned_connection`) and send requests on them (:func:`request_on`)."""

from __future__ import annotations

import json
import os
import signal
import socket
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


def request_on(sock: socket.socket, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    """One HTTP/1.1 request on the keep-alive connection ``sock``: ``(status, JSON body)``."""
    data = b"" if body is None else json.dumps(body).encode()
    head = (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n"
            f"Content-Length: {len(data)}\r\n" + ("Content-Type: application/json\r\n" if data else "") + "\r\n")
    sock.sendall(head.encode() + data)
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection"
        received += chunk
    header, _, rest = received.partition(b"\r\n\r\n")
    lines = header.decode("latin-1").split("\r\n")
    length = next(int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length:"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection"
        rest += chunk
    return int(lines[0].split()[1]), json.loads(rest[:length])


def pinned_connection(port: int, worker: psutil.Process, sibling: psutil.Process) -> socket.socket:
    """A keep-alive connection that ``worker`` accepted (``sibling`` stopped with SIGSTOP meanwhile, so only
    ``worker`` could accept it; checked with ``psutil``), after one answered request on it.

    Raises:
        AssertionError: the health request failed, or another process holds the connection.
    """
    os.kill(sibling.pid, signal.SIGSTOP)
    try:
        sock = socket.create_connection(("127.0.0.1", port))
        sock.settimeout(120)
        status, _ = request_on(sock, "GET", "/unit_api/health")
        assert status == 200
    finally:
        os.kill(sibling.pid, signal.SIGCONT)
    held = {c.raddr.port for c in worker.net_connections(kind="tcp") if c.raddr}
    assert sock.getsockname()[1] in held, "the connection is not held by the worker it was opened for"
    return sock
