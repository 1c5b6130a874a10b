"""A config saved through the API is what the routes of every gunicorn worker of ``pio serve`` read from the next
request on, without a restart (real gunicorn, two worker processes; the leader's ``/api``): the settings were read
from the config the app was built with, and the broker checked by the health route, the addresses of
``/api/workers/discover``, the leader named by ``/api/units`` and the JSON body bound stayed those of the day the
server started.

Each worker process is given one keep-alive connection of its own (:func:`pio_serve.pinned_connection`): the worker
that handles the save (it forgets its cached config itself) and its sibling (which finds the file replaced at its
next request) are both asked before and after.
"""

import pytest

from pio_serve import pinned_connection, request_on, serve_keeping_connections
from reactorkit.core.cluster import free_port
from reactorkit.core.testing import stop_process

pytestmark = pytest.mark.integration

TOPOLOGY = "[cluster.topology]\nleader_hostname = {leader}\nleader_address = 127.0.0.1\n"
MQTT = "[mqtt]\nbroker_address = 127.0.0.1\nbroker_port = {port}\n"
BODY_BOUND = 4096  # bytes: far below the default (1 MiB), far above the saves of these tests


def _units(sock) -> list[str]:
    status, body = request_on(sock, "GET", "/api/units")
    assert status == 200, body
    return sorted(row["pioreactor_unit"] for row in body)


def _discovered(sock) -> list[str]:
    status, body = request_on(sock, "GET", "/api/workers/discover")
    assert status == 200, body
    return [row["pioreactor_unit"] for row in body]


def _broker(sock) -> dict:
    status, body = request_on(sock, "GET", "/unit_api/health")
    assert status == 200, body
    return body["broker"]


@pytest.fixture
def serve(unit_env, tmp_path):
    """``serve(config_ini)``: ``pio serve --workers 2`` on a unit whose ``config.ini`` is ``config_ini`` → one
    keep-alive connection pinned to each worker process ``[first's, second's]``; all closed and stopped at the
    end."""
    started = []

    def start(config_ini: str) -> list:
        unit_env.write_config(config_ini)
        env = unit_env.env()
        for key in ("GLOBAL_CONFIG", "LOCAL_CONFIG"):
            env.pop(key, None)
        proc, port, (first, second) = serve_keeping_connections(env, tmp_path, 2)
        started.append(proc)
        socks = [pinned_connection(port, first, second), pinned_connection(port, second, first)]
        started.extend(socks)
        return socks

    yield start
    for item in reversed(started):
        if hasattr(item, "close"):
            item.close()
        else:
            assert stop_process(item) == 0


def _save_shared(sock, code: str) -> None:
    status, body = request_on(sock, "PATCH", "/api/config/shared", {"code": code})
    assert status == 200, body


def _each(socks):
    return zip(("the worker that saved the config", "its sibling"), socks)


def test_a_saved_leader_hostname_is_the_leader_of_api_units(serve, unit_env):
    leader = TOPOLOGY.format(leader=unit_env.unit) + MQTT.format(port=1883)
    socks = serve(leader)
    for sock in socks:
        assert _units(sock) == [unit_env.unit]
    _save_shared(socks[0], TOPOLOGY.format(leader="leader2") + MQTT.format(port=1883))
    for name, sock in _each(socks):
        assert _units(sock) == ["leader2"], name  # LeaderDB.leader_unit: [cluster.topology] leader_hostname


def test_saved_cluster_addresses_are_discovered(serve, unit_env):
    shared = TOPOLOGY.format(leader=unit_env.unit) + MQTT.format(port=1883)
    socks = serve(shared)
    for sock in socks:
        assert _discovered(sock) == []
    _save_shared(socks[0], shared + "[cluster.addresses]\nw9 = 127.0.0.9\n")
    for name, sock in _each(socks):
        assert _discovered(sock) == ["w9"], name  # the route reads the app's context.config


def test_a_saved_json_body_bound_refuses_the_next_larger_body(serve, unit_env):
    shared = TOPOLOGY.format(leader=unit_env.unit) + MQTT.format(port=1883)
    socks = serve(shared)
    code = shared + f"[api]\nmax_body_bytes = {BODY_BOUND}\n"
    padded = code + "#" * BODY_BOUND + "\n"  # a save above the bound, below the default one
    _save_shared(socks[0], code)
    for name, sock in _each(socks):
        status, body = request_on(sock, "PATCH", "/api/config/shared", {"code": padded})
        assert status == 413, (name, status, body)
        assert f"at most {BODY_BOUND} bytes" in body["cause"], (name, body)


def test_a_broker_saved_in_a_worker_unit_config_is_the_one_its_health_checks(serve, unit_env):
    # a worker (not the leader): its own unit_config.ini, saved through /unit_api/config/specific
    socks = serve(TOPOLOGY.format(leader="leader") + MQTT.format(port=1883))
    for sock in socks:
        assert _broker(sock)["reachable"] is True  # the machine's shared mosquitto
    status, body = request_on(socks[0], "PATCH", "/unit_api/config/specific",
                              {"code": MQTT.format(port=free_port())})  # nothing listens there
    assert status == 200, body
    for name, sock in _each(socks):
        broker = _broker(sock)  # checked again, not the results of the old broker kept for a second
        assert broker["reachable"] is False, (name, broker)


def test_a_saved_body_bound_never_refuses_the_same_save(serve, unit_env):
    import json

    shared = TOPOLOGY.format(leader=unit_env.unit) + MQTT.format(port=1883)
    socks = serve(shared)
    status, body = request_on(socks[0], "PATCH", "/api/config/shared", {"code": shared + "[api]\nmax_body_bytes = 100\n"})
    assert status == 400 and "[api] max_body_bytes would be 100" in body["cause"], body
    assert (unit_env.root / "config.ini").read_text() == shared  # not replaced
    code = shared + "[api]\nmax_body_bytes = 999\n"  # a three-digit placeholder for the body's own size
    size = len(json.dumps({"code": code}).encode())  # what request_on sends as Content-Length
    assert 100 <= size < 1000
    code = code.replace("999", str(size))
    assert len(json.dumps({"code": code}).encode()) == size
    status, body = request_on(socks[0], "PATCH", "/api/config/shared", {"code": code.replace(str(size), str(size - 1))})
    assert status == 400 and f"at least {size}" in body["remediation"], body
    _save_shared(socks[0], code)  # exactly its own size: accepted
    for name, sock in _each(socks):
        status, body = request_on(sock, "PATCH", "/api/config/shared", {"code": code})  # and again, on each worker
        assert status == 200, (name, status, body)
