"""The outbox's WAL is checkpointed and emptied at a clean stop, without waiting for anyone and without losing
a message.

Job processes leave with ``os._exit``: the outbox's connection is never closed, so SQLite never checkpointed
the WAL at a close and ``outbox.sqlite-wal`` grew by 150–230 KB a job start (3.5 MB after 20 starts), which the
next start read back to rebuild the WAL's index."""

import shutil
import signal
import sqlite3
import threading
import time

import pytest

from reactorkit.core import outbox as outbox_module
from reactorkit.core.outbox import Outbox, process_token
from reactorkit.core.testing import stop_process


def wal_size(path):
    wal = path.with_name(path.name + "-wal")
    return wal.stat().st_size if wal.exists() else 0


def messages_in_the_file_alone(path, tmp_path):
    """``[(topic, payload)]`` of the outbox file ``path`` read from a copy of the file without its WAL (what a
    checkpoint put into the file itself)."""
    copy = tmp_path / "copy" / "outbox.sqlite"
    copy.parent.mkdir(exist_ok=True)
    shutil.copyfile(path, copy)
    conn = sqlite3.connect(copy)
    try:
        return [(topic, bytes(payload)) for topic, payload in conn.execute(
            "SELECT topic, payload FROM messages ORDER BY id")]
    finally:
        conn.close()


def fill(box, n=20):
    me = process_token()
    for i in range(n):
        box.append(f"pioreactor/u/e/od_reading/od{i % 3}", b"0.1234", qos=1, retain=False, owner=me)


@pytest.fixture
def box(tmp_path):
    b = Outbox(tmp_path / "outbox.sqlite")
    yield b
    b.close()


def test_truncating_the_wal_puts_every_kept_message_into_the_file(box, tmp_path):
    fill(box)
    assert wal_size(box.path) > 0
    busy, frames, copied = box.truncate_wal()
    assert busy == 0 and frames == copied
    assert wal_size(box.path) == 0
    assert len(messages_in_the_file_alone(box.path, tmp_path)) == 20
    fill(box, 1)  # the outbox goes on as before
    assert box.usage()[0] == 21


def test_truncating_an_empty_wal_does_nothing(box):
    fill(box, 1)
    box.truncate_wal()
    assert box.truncate_wal() == (0, 0, 0)


def test_truncating_while_another_connection_reads_answers_busy_at_once_and_loses_nothing(box, tmp_path):
    fill(box)
    reader = sqlite3.connect(box.path, isolation_level=None)
    try:
        reader.execute("BEGIN")
        assert reader.execute("SELECT count(*) FROM messages").fetchone()[0] == 20  # a snapshot in the WAL
        busy, _, _ = box.truncate_wal()  # (a wait would be for the outbox's 15 s busy timeout)
        assert busy == 1
        assert len(messages_in_the_file_alone(box.path, tmp_path)) == 20  # copied into the file all the same
        reader.execute("COMMIT")
    finally:
        reader.close()
    assert box.truncate_wal()[0] == 0 and wal_size(box.path) == 0


def test_truncating_while_another_connection_writes_answers_busy_at_once_and_writing_waits_again(box):
    fill(box)
    writer = sqlite3.connect(box.path, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")
        assert box.truncate_wal()[0] == 1
        writer.execute("COMMIT")
    finally:
        writer.close()
    assert box.conn.execute("PRAGMA busy_timeout").fetchone()[0] == 15_000  # writes wait for the lock as before
    fill(box, 1)
    assert box.usage()[0] == 21


def test_truncating_while_another_thread_uses_the_outbox_leaves_it_alone(box):
    fill(box)
    with box._lock:  # (a write of another thread, e.g. waiting for another process's write lock)
        result = []
        thread = threading.Thread(target=lambda: result.append(box.truncate_wal()))
        thread.start()
        thread.join()
    assert result == [None]
    assert wal_size(box.path) > 0


def test_at_exit_only_the_outboxes_this_process_opened_are_truncated(tmp_path, monkeypatch):
    mine, inherited = Outbox(tmp_path / "a.sqlite"), Outbox(tmp_path / "b.sqlite")
    monkeypatch.setattr(outbox_module, "_OPEN", {(str(mine.path), outbox_module.os.getpid()): mine,
                                                 (str(inherited.path), 1): inherited})
    try:
        fill(mine)
        fill(inherited)
        assert outbox_module.truncate_wals_at_exit() == 1
        assert wal_size(mine.path) == 0 and wal_size(inherited.path) > 0
    finally:
        mine.close()
        inherited.close()


# ---------------------------------------------------------------- jobs (real mosquitto, job processes)
def outbox_file(unit_env):
    return unit_env.root / "storage" / "outbox.sqlite"


@pytest.mark.integration
def test_a_job_stopped_cleanly_leaves_the_outbox_wal_empty_and_its_unacknowledged_messages_kept(
        unit_env, mqtt_recorder, spawn_job, tmp_path):
    for _ in range(2):
        started = time.monotonic()
        proc = spawn_job("stirring", "--target-rpm", "400")
        mqtt_recorder.wait_for(unit_env.topic("stirring", "$state"), lambda p: p == b"ready", since=started)
        mqtt_recorder.wait_for(unit_env.topic("stirring", "measured_rpm"), since=started)
        assert stop_process(proc, signal.SIGTERM) == 0
        assert wal_size(outbox_file(unit_env)) == 0
    # no leader's ingestion in this unit: nothing was acknowledged, everything kept is in the file itself, down to
    # each job's last message on a stored topic (its "Disconnected." log line)
    kept = messages_in_the_file_alone(outbox_file(unit_env), tmp_path)
    assert any(topic.endswith("/stirring/target_rpm") for topic, _ in kept)
    assert sum(b"Disconnected." in payload for topic, payload in kept if "/logs/" in topic) == 2


@pytest.mark.integration
def test_a_job_stops_cleanly_while_another_process_reads_the_outbox(unit_env, mqtt_recorder, spawn_job, tmp_path):
    proc = spawn_job("stirring", "--target-rpm", "400")
    mqtt_recorder.wait_for(unit_env.topic("stirring", "$state"), lambda p: p == b"ready")
    mqtt_recorder.wait_for(unit_env.topic("stirring", "measured_rpm"))
    reader = sqlite3.connect(outbox_file(unit_env), isolation_level=None)
    try:
        reader.execute("BEGIN")
        before = reader.execute("SELECT count(*) FROM messages").fetchone()[0]
        assert before > 0
        # a stop that waited for the reader would wait the outbox's 15 s busy timeout: killed after 10 s (-9)
        assert stop_process(proc, signal.SIGTERM) == 0
        mqtt_recorder.wait_for(unit_env.topic("stirring", "$state"), lambda p: p == b"disconnected")
        reader.execute("COMMIT")
        assert reader.execute("SELECT count(*) FROM messages").fetchone()[0] >= before
    finally:
        reader.close()
