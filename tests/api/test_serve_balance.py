"""``pio serve`` (real gunicorn, its default worker class): a burst of new keep-alive connections is shared
between the worker processes, and every connection is answered when no sibling can take it.

gunicorn's workers race for new connections on the listening socket they share; the one already on a CPU
could accept all 16 of a burst and, with keep-alive, serve them all on one core
(:class:`reactorkit.api.balanced_worker.BalancedThreadWorker`). These tests open 16 connections at once, as
wrk does, and look at which worker process holds each (``psutil``, Linux ``/proc``); SIGSTOP and SIGCONT
decide which worker runs first, as the scheduler does.

A gunicorn config file given through ``GUNICORN_CMD_ARGS`` (read by the gunicorn that ``pio serve`` becomes)
keeps idle connections open for 120 s (gunicorn's default is 2 s) while they are counted and, where the
sibling is to take some, sets the worker's deferral to 0.5 s instead of a few ms: the first worker then
takes one connection per 0.5 s past its share, so the sibling would have to wait ~6 s for a CPU to find
none left, on however busy a machine.
"""

import os
import signal
import socket
import subprocess
import time

import psutil
import pytest

from pio_serve import serve_keeping_connections
from reactorkit.core.testing import stop_process

BURST = 16


def _serve(unit_env, tmp_path, workers: int, defer_s: float | None = None
           ) -> tuple[subprocess.Popen, int, list[psutil.Process]]:
    """``pio serve --workers workers`` (default worker class and threads; the worker's deferral ``defer_s``
    seconds, None: its default) on a free port, once it answers: ``(process, port, worker processes)``."""
    settings = "" if defer_s is None else ("from reactorkit.api.balanced_worker import BalancedThreadWorker\n"
                                           f"BalancedThreadWorker.accept_defer_s = {defer_s}\n")
    return serve_keeping_connections(unit_env.env(), tmp_path, workers, settings)


def _open(port: int) -> list[socket.socket]:
    """Open :data:`BURST` connections at once and send a health request on each (``Connection: keep-alive``)."""
    socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(BURST)]
    request = b"GET /unit_api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n"
    for s in socks:
        s.settimeout(120)
        s.sendall(request)
    return socks


def _answered(socks: list[socket.socket]) -> None:
    """Read the answer's head on each of ``socks``: each is a 200 and leaves the connection open."""
    for s in socks:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = s.recv(65536)
            assert chunk, "the server closed a connection without answering"
            head += chunk
        assert head.startswith(b"HTTP/1.1 200"), head[:200]


def _held(workers: list[psutil.Process], socks: list[socket.socket]) -> list[int]:
    """How many of ``socks`` each worker process holds (has accepted: its end of the TCP connection)."""
    ports = {s.getsockname()[1] for s in socks}
    return [sum(1 for c in w.net_connections(kind="tcp") if c.raddr and c.raddr.port in ports) for w in workers]


@pytest.mark.integration
def test_a_burst_of_connections_is_shared_between_the_two_workers(unit_env, tmp_path):
    """The burst waits in the listening socket's queue (both workers stopped) and one worker is let run
    first, as one already on a CPU would be: it accepts its share (as many as its threads) and leaves the
    rest; the sibling, let run next, takes some. Plain ``gthread`` gives the first worker all 16."""
    proc, port, (first, second) = _serve(unit_env, tmp_path, 2, defer_s=0.5)
    socks = []
    threads = 4  # pio serve's default --threads
    for worker in (first, second):
        os.kill(worker.pid, signal.SIGSTOP)
    try:
        socks = _open(port)
        os.kill(first.pid, signal.SIGCONT)
        deadline = time.monotonic() + 60
        while _held([first], socks)[0] < threads:
            assert time.monotonic() < deadline, f"the first worker holds {_held([first], socks)} connections"
            time.sleep(0.01)
        os.kill(second.pid, signal.SIGCONT)
        _answered(socks)
        held = _held([first, second], socks)
        assert sum(held) == BURST, held
        assert held[1] > 0, f"the first worker let run holds every connection: {held}"
    finally:
        for worker in (first, second):
            os.kill(worker.pid, signal.SIGCONT)
        for s in socks:
            s.close()
        assert stop_process(proc) == 0


@pytest.mark.integration
def test_a_single_worker_answers_every_connection_of_a_burst(unit_env, tmp_path):
    proc, port, workers = _serve(unit_env, tmp_path, 1)
    socks = []
    try:
        socks = _open(port)
        _answered(socks)
        assert _held(workers, socks) == [BURST]
    finally:
        for s in socks:
            s.close()
        assert stop_process(proc) == 0


@pytest.mark.integration
def test_a_worker_accepts_every_connection_when_its_sibling_cannot(unit_env, tmp_path):
    """The sibling stopped (SIGSTOP) takes nothing: the running worker, past its share, accepts the rest one
    per deferral (5 ms) instead of leaving them waiting."""
    proc, port, (running, stopped) = _serve(unit_env, tmp_path, 2)
    socks = []
    os.kill(stopped.pid, signal.SIGSTOP)
    try:
        socks = _open(port)
        _answered(socks)
        assert _held([running, stopped], socks) == [BURST, 0]
    finally:
        os.kill(stopped.pid, signal.SIGCONT)
        for s in socks:
            s.close()
        assert stop_process(proc) == 0
