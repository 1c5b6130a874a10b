"""The unit's outbox file: numbering, bound (oldest kept, gaps recorded), acknowledgement, orphans, stored topics."""

import os
import subprocess
import sys

import pytest
from concurrent_opens import open_together

from reactorkit.core.outbox import (Outbox, SeenNumbers, SEQ_PROPERTY, STREAM_PROPERTY, holes, in_ranges, merge_ranges, process_token, to_ranges, token_alive)


@pytest.fixture
def box(tmp_path):
    b = Outbox(tmp_path / "outbox.sqlite", max_messages=5)
    yield b
    b.close()


def test_messages_are_numbered_per_topic_and_kept_in_order(box):
    me = process_token()
    ids = [box.append(t, b"x", qos=1, retain=False, owner=me) for t in ("a", "b", "a", "a")]
    assert [seq for _, seq in ids] == [1, 1, 2, 3]
    assert [r[0] for r in box.pending(me, 0)] == sorted(r for r, _ in ids)
    assert box.usage() == (4, 4)


def test_a_full_outbox_keeps_the_oldest_and_records_the_run_it_could_not_keep(box):
    me = process_token()
    kept = [box.append("od", b"12345", qos=1, retain=False, owner=me) for _ in range(5)]
    dropped = [box.append("od", b"12345", qos=1, retain=False, owner=me) for _ in range(3)]
    assert all(row is not None for row, _ in kept) and all(row is None for row, _ in dropped)
    assert [r[2] for r in box.pending(me, 0)] == [1, 2, 3, 4, 5]  # the oldest stay
    [gap] = box.gaps()
    assert (gap["topic"], gap["first_seq"], gap["last_seq"], gap["count"]) == ("od", 6, 8, 3)
    assert box.last_seq("od") == 8  # numbers go on: the leader sees the hole


def test_a_byte_bound_applies_too(tmp_path):
    b = Outbox(tmp_path / "o.sqlite", max_messages=100, max_bytes=10)
    me = process_token()
    assert b.append("t", b"123456", qos=1, retain=False, owner=me)[0] is not None
    assert b.append("t", b"123456", qos=1, retain=False, owner=me)[0] is None
    b.close()


def test_acknowledged_messages_are_forgotten_and_room_comes_back(box):
    me = process_token()
    for _ in range(5):
        box.append("od", b"x", qos=1, retain=False, owner=me)
    gone = box.delete_acknowledged([("od", 1, 3)], owner=me)
    assert len(gone) == 3 and box.usage()[0] == 2
    assert box.append("od", b"x", qos=1, retain=False, owner=me)[0] is not None


def test_gaps_are_forgotten_only_as_reported(box):
    me = process_token()
    for _ in range(7):
        box.append("od", b"x", qos=1, retain=False, owner=me)
    assert box.forget_gaps([("od", 6, 6)]) == 0  # the gap grew to 7 since: keep it
    assert box.forget_gaps([("od", 6, 7)]) == 1 and box.gaps() == []


def test_messages_of_ended_processes_are_adopted(box):
    ended = subprocess.run([sys.executable, "-c", "from reactorkit.core.outbox import process_token as p; print(p())"],
                           capture_output=True, text=True, check=True).stdout.strip()
    assert not token_alive(ended) and token_alive(process_token())
    row, _ = box.append("od", b"x", qos=1, retain=False, owner=ended)
    me = process_token()
    assert box.pending(me, 0) == []
    assert box.adopt_orphans(me) == row
    assert [r[0] for r in box.pending(me, 0)] == [row]
    assert box.adopt_orphans(me) is None


def test_stored_patterns_are_remembered_and_unstored_messages_dropped(box, tmp_path):
    me = process_token()
    box.append("p/pioreactor/u/e/od_reading/od2", b"1", qos=1, retain=False, owner=me)
    box.append("p/pioreactor/u/e/stirring/target_rpm", b"1", qos=1, retain=False, owner=me)
    assert box.stored_patterns() is None
    assert box.set_stored_patterns(["pioreactor/+/+/od_reading/od2"], "p/") == 1
    assert [r[1] for r in box.pending(me, 0)] == ["p/pioreactor/u/e/od_reading/od2"]
    again = Outbox(tmp_path / "outbox.sqlite")
    assert again.stored_patterns() == ["pioreactor/+/+/od_reading/od2"] and again.stream == box.stream
    again.close()


def test_a_new_outbox_file_is_a_new_stream(tmp_path):
    a = Outbox(tmp_path / "a.sqlite")
    b = Outbox(tmp_path / "b.sqlite")
    assert a.stream != b.stream
    a.close()
    b.close()


def test_ranges():
    assert to_ranges([3, 1, 2, 7, 7]) == [[1, 3], [7, 7]]
    assert merge_ranges([[1, 3]], [[4, 6], [9, 9]]) == [[1, 6], [9, 9]]
    assert in_ranges([[1, 3], [7, 9]], 8) and not in_ranges([[1, 3], [7, 9]], 5) and not in_ranges([], 1)
    assert holes([[1, 3], [7, 9]]) == 3 and holes([[2, 2]]) == 1


class Props:
    """paho's message properties as far as the numbering goes."""

    def __init__(self, stream, seq):
        self.UserProperty = [(STREAM_PROPERTY, stream), (SEQ_PROPERTY, str(seq))]


def test_seen_numbers_drop_copies_only():
    seen = SeenNumbers(max_ranges=3)
    order = [5, 3, 4, 9, 7, 8, 6, 1]  # resends and late first copies arrive out of order
    assert [seen.first("t", Props("s", n)) for n in order] == [True] * len(order)
    assert [seen.first("t", Props("s", n)) for n in order] == [False] * len(order)
    assert seen.copies == len(order)
    assert seen._seen[("t", "s")] == [[1, 1], [3, 9]]  # merged as they came
    assert seen.first("t", Props("s", 2)) and seen._seen[("t", "s")] == [[1, 9]]
    assert seen.first("t", Props("other stream", 5)) and seen.first("u", Props("s", 5))
    assert all(seen.first("t", None) for _ in range(2))  # no numbering: never a copy
    assert seen.first("t", Props("s", 5), retained=True)  # the broker's retained value on subscribing
    for n in (20, 30, 40):  # more runs than max_ranges: the lowest numbers are forgotten first
        seen.first("t", Props("s", n))
    assert seen._seen[("t", "s")] == [[20, 20], [30, 30], [40, 40]]


def test_seen_numbers_forget_the_least_recent_topic_first():
    seen = SeenNumbers(max_keys=2)
    seen.first("a", Props("s", 1))
    seen.first("b", Props("s", 1))
    assert not seen.first("a", Props("s", 1))  # "a" seen last now
    seen.first("c", Props("s", 1))  # "b" forgotten
    assert not seen.first("a", Props("s", 1)) and seen.first("b", Props("s", 1))


def test_process_token_names_this_process():
    assert process_token().startswith(f"{os.getpid()}:")


def test_the_units_outbox_is_opened_again_when_its_file_was_replaced(tmp_path, monkeypatch):
    # a state-archive import puts another folder in place of $DOT_PIOREACTOR: a client made after it must not
    # write into the replaced file (deleted with the old folder: its messages would never be sent)
    from reactorkit.core.config import set_config

    root = tmp_path / "dot"
    root.mkdir()
    monkeypatch.setenv("DOT_PIOREACTOR", str(root))
    set_config(None)
    try:
        first = Outbox.for_unit()
        assert Outbox.for_unit() is first
        first.append("t", b"1", qos=1, retain=False, owner="1:1")
        staged = tmp_path / "staged"
        (staged / "storage").mkdir(parents=True)
        box = Outbox(staged / "storage" / "outbox.sqlite")
        box.close()
        root.rename(tmp_path / "replaced")
        staged.rename(root)
        again = Outbox.for_unit()
        assert again is not first and again.stream == box.stream
        assert again.append("t", b"2", qos=1, retain=False, owner="1:1")[1] == 1
        assert Outbox.for_unit() is again
    finally:
        set_config(None)


def test_an_outbox_file_replaced_while_it_opens_is_opened_again(tmp_path, monkeypatch):
    # the identity kept is the one of the file the connection opened: a folder swapped in between the open and
    # the stat must not be taken for it (this process would go on numbering in the replaced file for good)
    import sqlite3

    from reactorkit.core.config import set_config

    root = tmp_path / "dot"
    root.mkdir()
    monkeypatch.setenv("DOT_PIOREACTOR", str(root))
    set_config(None)
    (root / "storage").mkdir()
    Outbox(root / "storage" / "outbox.sqlite").close()  # the unit's outbox, made by an earlier process
    real_connect = sqlite3.connect
    made = []

    def connect_then_swap(*args, **kwargs):
        conn = real_connect(*args, **kwargs)
        monkeypatch.setattr(sqlite3, "connect", real_connect)
        staged = tmp_path / "staged"
        (staged / "storage").mkdir(parents=True)
        made.append(Outbox(staged / "storage" / "outbox.sqlite"))
        made[0].close()
        root.rename(tmp_path / "replaced")
        staged.rename(root)
        return conn

    try:
        monkeypatch.setattr(sqlite3, "connect", connect_then_swap)
        first = Outbox.for_unit()  # opened the file that was then replaced
        assert made and first.stream != made[0].stream
        again = Outbox.for_unit()
        assert again is not first and again.stream == made[0].stream
    finally:
        set_config(None)


@pytest.mark.parametrize("configured, level", [("FULL", 2), ("normal", 1), ("bogus", 1)])
def test_the_outbox_file_is_wal_with_the_configured_synchronous_level(tmp_path, configured, level):
    box = Outbox(tmp_path / "storage" / "outbox.sqlite", synchronous=configured)  # a bad config value: NORMAL
    assert box.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert box.conn.execute("PRAGMA synchronous").fetchone()[0] == level
    assert box.conn.execute("PRAGMA busy_timeout").fetchone()[0] == 15000
    box.close()


def test_concurrent_first_opens_of_a_new_outbox_file_all_succeed_in_wal_mode(tmp_path):
    path = tmp_path / "storage" / "outbox.sqlite"
    boxes: list[Outbox] = []
    assert open_together(lambda: boxes.append(Outbox(path))) == []
    assert len({box.stream for box in boxes}) == 1  # one stream id, written once
    assert boxes[0].conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    for box in boxes:
        box.close()


def test_an_outbox_open_before_its_file_was_replaced_numbers_on_in_the_file_in_its_place(tmp_path):
    # as a state-archive import does: the file copied under its write lock, the folder swapped, the lock let go;
    # a write waiting for the lock, and every later one, go into the copy with the next numbers
    import sqlite3
    import threading

    root = tmp_path / "dot"
    (root / "storage").mkdir(parents=True)
    path = root / "storage" / "outbox.sqlite"
    box = Outbox(path)
    try:
        assert box.append("t", b"1", qos=1, retain=False, owner="1:1")[1] == 1
        locker = sqlite3.connect(path, timeout=15, isolation_level=None)
        locker.execute("BEGIN IMMEDIATE")
        staged = tmp_path / "staged"
        (staged / "storage").mkdir(parents=True)
        source = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        copy = sqlite3.connect(staged / "storage" / "outbox.sqlite")
        source.backup(copy)
        copy.close()
        source.close()
        written = []
        writer = threading.Thread(target=lambda: written.append(box.append("t", b"2", qos=1, retain=False,
                                                                           owner="1:1")))
        writer.start()  # waits for the write lock
        root.rename(tmp_path / "replaced")
        staged.rename(root)
        locker.execute("ROLLBACK")
        locker.close()
        writer.join(30)
        assert [seq for _, seq in written] == [2]
        assert box.append("t", b"3", qos=1, retain=False, owner="1:1")[1] == 3
        assert [(seq, bytes(p)) for _, _, seq, p, _ in box.pending("1:1", 0)] == [(1, b"1"), (2, b"2"), (3, b"3")]
        with sqlite3.connect(path) as conn:  # the file now at the path holds them all
            assert conn.execute("SELECT seq, payload FROM messages ORDER BY seq").fetchall() == [
                (1, b"1"), (2, b"2"), (3, b"3")]
    finally:
        box.close()


def test_an_outbox_whose_file_keeps_being_replaced_refuses_the_write_and_writes_nothing(tmp_path):
    # (replaced again at each look: no file stays in place long enough to write in, so the write is refused
    # before any statement runs; none is made in autocommit mode and then reported failed)
    import sqlite3

    path = tmp_path / "storage" / "outbox.sqlite"
    box = Outbox(path)
    reopened = []
    box._replaced = lambda: True
    box._reopen = lambda: reopened.append(1)
    try:
        with pytest.raises(sqlite3.OperationalError, match="replaced"):
            box.append("t", b"1", qos=1, retain=False, owner="1:1")
        assert len(reopened) >= 1 and not box.conn.in_transaction
        with sqlite3.connect(path) as conn:
            assert conn.execute("SELECT count(*) FROM messages").fetchone()[0] == 0
            assert conn.execute("SELECT count(*) FROM sequences").fetchone()[0] == 0
    finally:
        box.close()
