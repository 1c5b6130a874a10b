"""A state-archive import keeps the unit's outbox, and a process that had it open before the import goes on
numbering in the outbox the unit has after it: every message published before, during and after the import, by
that process and by one started afterwards, is in the outbox file once, under its own number."""

import sqlite3
import subprocess
import sys
import threading

import pytest

from reactorkit.core.outbox import outbox_path

pytestmark = pytest.mark.integration

# publishes each number read on stdin (its payload) on one stored topic through the unit's outbox, and echoes it
PUBLISHER = r"""
import sys
from reactorkit.core import mqtt as mq

client = mq.create_client()
topic = sys.argv[1]
for line in sys.stdin:
    word = line.strip()
    if word == "stop":
        break
    client.publish(topic, word, qos=1)
    print(word, flush=True)
client.disconnect()
client.loop_stop()
"""


def multipart(data):
    boundary = "rkboundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"archive\"; filename=\"backup.zip\"\r\n"
            "Content-Type: application/zip\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return {"body": body, "headers": {"Content-Type": f"multipart/form-data; boundary={boundary}"}}


class Publisher:
    """A process of the unit publishing through an outbox client (a job's, the task worker's)."""

    def __init__(self, env, topic):
        self.proc = subprocess.Popen([sys.executable, "-c", PUBLISHER, topic], env=env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)

    def publish(self, numbers):
        for n in numbers:
            self.proc.stdin.write(f"{n}\n")
            self.proc.stdin.flush()
            assert self.proc.stdout.readline().strip() == str(n)  # published (kept in the outbox) before the next

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.write("stop\n")
            self.proc.stdin.flush()
            assert self.proc.wait(30) == 0


def kept(topic):
    """``[(seq, payload)]`` of ``topic`` in the outbox file now at the unit's outbox path, and its last number."""
    with sqlite3.connect(outbox_path(), timeout=15) as conn:
        rows = conn.execute("SELECT seq, payload FROM messages WHERE topic = ? ORDER BY seq", (topic,)).fetchall()
        last = conn.execute("SELECT last_seq FROM sequences WHERE topic = ?", (topic,)).fetchone()[0]
    return [(seq, bytes(payload).decode()) for seq, payload in rows], last


def test_an_outbox_opened_before_an_import_numbers_on_in_the_imported_folder(leader_env, leader_client, run_tasks):
    topic = leader_env.topic("rk_recorder", "value")  # a stored topic (no ingestion has announced others)
    before = Publisher(leader_env.env(), topic)
    late = None
    try:
        before.publish(range(1, 6))
        archive = leader_client.simulate_get("/unit_api/zipped_dot_pioreactor").content

        during = threading.Thread(target=before.publish, args=(range(6, 301),))  # goes on while the import runs
        during.start()
        try:
            accepted = leader_client.simulate_post("/unit_api/import_zipped_dot_pioreactor", **multipart(archive))
            assert accepted.status_code == 202, accepted.text
            run_tasks()
        finally:
            during.join(120)
        result = leader_client.simulate_get(accepted.json["result_url_path"]).json
        assert result["status"] == "succeeded", result
        assert not during.is_alive()

        before.publish(range(301, 311))  # after the import, through the outbox it opened before
        late = Publisher(leader_env.env(), topic)  # a process started after the import
        late.publish(range(311, 316))
        before.publish(range(316, 321))
        before.close()
        late.close()

        rows, last = kept(topic)
        assert rows == [(n, str(n)) for n in range(1, 321)]  # each once, none lost, numbered in publishing order
        assert last == 320
    finally:
        for publisher in (before, late):
            if publisher is not None and publisher.proc.poll() is None:
                publisher.proc.kill()
