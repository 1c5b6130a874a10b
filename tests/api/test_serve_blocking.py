"""``pio serve`` (real gunicorn, its default worker class): a request that waits inside SQLite does not stall
the worker's other requests.

A write that finds the leader database locked (the MQTT writer's batch, an experiment's deletion, a migration)
waits in SQLite's busy handler for up to 15 s, in C. Each request has its own OS thread under gunicorn's
gthread worker, so the others go on; under a gevent worker the wait would hold the worker's only thread and
every other request on it would wait too.
"""

import socket
import threading

import httpx

from reactorkit.core.testing import LocalCluster


def _server_has_read(server_port: int, client_port: int) -> bool:
    """True when the server side of the TCP connection ``client_port -> server_port`` on 127.0.0.1 exists and
    its receive queue is empty (the server read the request). Linux ``/proc/net/tcp``."""
    wanted_local, wanted_remote = f"0100007F:{server_port:04X}", f"0100007F:{client_port:04X}"
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            if fields[1] == wanted_local and fields[2] == wanted_remote:
                return int(fields[4].split(":")[1], 16) == 0
    return False


def test_health_is_answered_while_a_write_waits_for_the_database_lock(tmp_path):
    with LocalCluster(tmp_path, [], api_workers=1) as cluster:
        cluster.start()
        db = cluster.leader_db()
        db.execute("BEGIN IMMEDIATE")  # the write lock, as a long writer holds it
        body = b'{"experiment": "blocked-write"}'
        request = (f"POST /api/experiments HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                   f"Authorization: Bearer {cluster.token}\r\nContent-Length: {len(body)}\r\n"
                   "Connection: close\r\n\r\n").encode() + body
        sock = socket.create_connection(("127.0.0.1", cluster.leader.port))
        reply: list[bytes] = []
        answered = threading.Event()

        def read_reply() -> None:
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
            reply.append(b"".join(chunks))
            answered.set()

        try:
            sock.sendall(request)
            reader = threading.Thread(target=read_reply, daemon=True)
            reader.start()
            client_port = sock.getsockname()[1]
            read = threading.Event()
            while not read.wait(0.02):  # until the server has read the POST: it is now waiting for the lock
                if _server_has_read(cluster.leader.port, client_port):
                    read.set()
            health = httpx.get(f"{cluster.leader.url}/unit_api/health", headers=cluster.headers, timeout=120)
            assert health.status_code == 200
            assert not answered.is_set(), "the health request waited for the write that waits for the lock"
        finally:
            db.execute("ROLLBACK")
            db.close()
        reader.join(60)
        sock.close()
        assert reply and reply[0].startswith(b"HTTP/1.1 201"), reply  # the write went through once the lock was free
        assert cluster.leader_db().experiment_exists("blocked-write")
