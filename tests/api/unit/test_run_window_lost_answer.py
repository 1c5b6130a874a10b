"""A job's run window (``SET NX PX`` in Redis) whose answer is lost is not taken for another request's.

The API's Redis client sends a command once (no retry): had it sent the ``SET NX`` again on a new connection
after the first had run on the server and its answer was lost, the second would find the key the first set
and the API would refuse its own request (429 "was just requested"). A proxy in front of the test's Redis
passes the ``SET NX`` on, reads Redis's answer and drops the connection without it. Real Redis (the test's
database), real API app in process.
"""

from __future__ import annotations

import select
import socket
import threading
import uuid

import pytest

from reactorkit.core.testing import TEST_REDIS_DB

REDIS = ("127.0.0.1", 6379)


class LoseSetNxAnswer:
    """A TCP proxy to the machine's Redis that loses the answer of the first ``SET … NX …`` through it: the
    command reaches Redis and runs, the proxy reads the answer and closes the client's connection instead
    (:attr:`lost` counts it). Every other command and connection is passed on both ways."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.lost = 0
        self.nx_seen = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self.listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._pass, args=(client,), daemon=True).start()

    def _pass(self, client: socket.socket) -> None:
        with client, socket.create_connection(REDIS) as server:
            while True:
                ready, _, _ = select.select([client, server], [], [], 60)
                if not ready:
                    return
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        return
                    if sock is server:
                        client.sendall(data)
                        continue
                    server.sendall(data)
                    if b"\r\nNX\r\n" in data.upper() and not self.nx_seen.is_set():
                        self.nx_seen.set()
                        server.recv(65536)  # Redis's answer to it: lost
                        self.lost += 1
                        return  # closes both connections


@pytest.fixture
def proxy():
    proxy = LoseSetNxAnswer()
    yield proxy
    proxy.close()


def test_the_proxy_makes_a_retrying_client_refuse_its_own_request(proxy):
    """The premise: a client that retries sends the SET NX again and gets "already set" for its own key."""
    from redis import Redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    key = f"reactorkit:test-lost-answer-{uuid.uuid4().hex}"
    retrying = Redis(host="127.0.0.1", port=proxy.port, db=TEST_REDIS_DB, retry=Retry(NoBackoff(), 3))
    try:
        assert retrying.set(key, "1", nx=True, px=60_000) is None  # refused: the key its first send set
        assert proxy.lost == 1
    finally:
        retrying.delete(key)
        retrying.close()


def test_a_lost_answer_to_the_run_window_is_a_503_not_a_429(proxy, api_env, unit_client, monkeypatch):
    from redis import Redis

    from reactorkit.api.unit import jobs

    monkeypatch.setattr(jobs, "RUN_DEBOUNCE_MS", 60_000)  # the key is still there when it is looked at below
    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{proxy.port}/{TEST_REDIS_DB}")
    result = unit_client.simulate_post("/unit_api/jobs/run/job_name/stirring", json={})
    assert proxy.lost == 1
    direct = Redis(host=REDIS[0], port=REDIS[1], db=TEST_REDIS_DB)
    try:
        key = f"reactorkit:{api_env.unit}:run:stirring"
        assert direct.pttl(key) > 0  # the SET NX ran on the server: only its answer was lost
        assert result.status_code == 503, result.json  # the queue unreachable, not "stirring was just requested"
        direct.delete(key)
    finally:
        direct.close()
