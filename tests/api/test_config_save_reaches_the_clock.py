"""A config saved through the API changes the clock of every gunicorn worker of ``pio serve`` (real gunicorn,
two worker processes), not only the config: ``[simulation] speedup`` and ``clock_origin`` make the API's "now"
(:func:`reactorkit.core.clock.get_clock`) when ``$REACTORKIT_SPEEDUP`` / ``$REACTORKIT_CLOCK_ORIGIN`` are not
set, and jobs started after the save read the new values; the API's pump-limit check (its last hour) and its
timestamps must use the same "now".

Each worker process is given one keep-alive connection of its own (the other worker stopped with SIGSTOP while
the connection is opened, so only the first can accept it; ``psutil`` checks which process holds it): the
worker that handles the save and its sibling, which only finds the file replaced, are both asked for their
clock (``GET /unit_api/system/utc_clock``) before and after.
"""

import json
import os
import signal
import socket
import time

import psutil
import pytest

from pio_serve import serve_keeping_connections
from reactorkit.core.clock import parse_iso
from reactorkit.core.testing import stop_process

pytestmark = pytest.mark.integration

SHARED = "[cluster.topology]\nleader_hostname = leader\nleader_address = 127.0.0.1\n"
SPEEDUP = 3600.0  # one simulated hour per wall second
ORIGIN_AGO_S = 1000.0  # wall seconds between the configured origin and the save: ~42 simulated days at SPEEDUP
DAY_S = 86400.0


def _serve(unit_env, tmp_path):
    """``pio serve --workers 2`` with the clock taken from the config files (no ``$REACTORKIT_SPEEDUP`` /
    ``$REACTORKIT_CLOCK_ORIGIN``), idle connections kept 120 s: ``(process, port, worker processes)``."""
    env = unit_env.env()
    for key in ("REACTORKIT_SPEEDUP", "REACTORKIT_CLOCK_ORIGIN", "GLOBAL_CONFIG", "LOCAL_CONFIG"):
        env.pop(key, None)
    return serve_keeping_connections(env, tmp_path, 2)


def _request(sock, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
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


def _pinned_connection(port: int, worker: psutil.Process, sibling: psutil.Process):
    """A keep-alive connection that ``worker`` accepted (``sibling`` stopped meanwhile), after one answered
    request on it."""
    os.kill(sibling.pid, signal.SIGSTOP)
    try:
        sock = socket.create_connection(("127.0.0.1", port))
        sock.settimeout(120)
        status, _ = _request(sock, "GET", "/unit_api/health")
        assert status == 200
    finally:
        os.kill(sibling.pid, signal.SIGCONT)
    held = {c.raddr.port for c in worker.net_connections(kind="tcp") if c.raddr}
    assert sock.getsockname()[1] in held, "the connection is not held by the worker it was opened for"
    return sock


def _clock(sock) -> float:
    """The serving worker's "now" (simulated epoch seconds)."""
    status, body = _request(sock, "GET", "/unit_api/system/utc_clock")
    assert status == 200, body
    return parse_iso(body["clock_time"])


def test_a_saved_simulation_speedup_reaches_the_clock_of_every_api_worker(unit_env, tmp_path):
    unit_env.write_config(SHARED)
    proc, port, (first, second) = _serve(unit_env, tmp_path)
    socks = []
    try:
        socks = [_pinned_connection(port, first, second), _pinned_connection(port, second, first)]
        for sock in socks:  # each worker builds its clock from the files as they are: wall time (speedup 1)
            assert abs(_clock(sock) - time.time()) < DAY_S

        origin = time.time() - ORIGIN_AGO_S
        code = f"[simulation]\nspeedup = {SPEEDUP}\nclock_origin = {origin!r}\n"
        status, body = _request(socks[0], "PATCH", "/unit_api/config/specific", {"code": code})
        assert (status, body) == (200, {"status": "success"})

        # now = origin + (wall - origin) * speedup: at least ~41 simulated days past the wall clock in both
        # the worker that saved the file and its sibling (with the old clock: the wall clock)
        for name, sock in zip(("the worker that saved the config", "its sibling"), socks):
            ahead = _clock(sock) - time.time()
            assert ahead > ORIGIN_AGO_S * (SPEEDUP - 1) - DAY_S, f"{name}: clock {ahead:.0f} s ahead of wall time"
    finally:
        for sock in socks:
            sock.close()
        assert stop_process(proc) == 0
