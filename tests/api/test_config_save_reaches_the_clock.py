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

import time

import pytest

from pio_serve import pinned_connection, request_on, serve_keeping_connections
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


def _clock(sock) -> float:
    """The serving worker's "now" (simulated epoch seconds)."""
    status, body = request_on(sock, "GET", "/unit_api/system/utc_clock")
    assert status == 200, body
    return parse_iso(body["clock_time"])


def test_a_saved_simulation_speedup_reaches_the_clock_of_every_api_worker(unit_env, tmp_path):
    unit_env.write_config(SHARED)
    proc, port, (first, second) = _serve(unit_env, tmp_path)
    socks = []
    try:
        socks = [pinned_connection(port, first, second), pinned_connection(port, second, first)]
        for sock in socks:  # each worker builds its clock from the files as they are: wall time (speedup 1)
            assert abs(_clock(sock) - time.time()) < DAY_S

        origin = time.time() - ORIGIN_AGO_S
        code = f"[simulation]\nspeedup = {SPEEDUP}\nclock_origin = {origin!r}\n"
        status, body = request_on(socks[0], "PATCH", "/unit_api/config/specific", {"code": code})
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
