"""atomic_write: a rename of a file of the writer's own, never a half-written target."""

import os
import threading

from reactorkit.core import paths
from reactorkit.core.paths import atomic_write


def test_concurrent_writers_each_rename_a_whole_file_of_their_own(tmp_path):
    target = tmp_path / "state.json"
    payloads = [(str(i) * 5000).encode() for i in range(8)]
    seen: list[bytes] = []
    start = threading.Barrier(len(payloads))  # the writers of all but the last payload, and the reader

    def write(data: bytes) -> None:
        start.wait()
        for _ in range(50):
            atomic_write(target, data, durable=False)

    def read() -> None:
        start.wait()
        for _ in range(400):
            if target.exists():
                seen.append(target.read_bytes())

    threads = [threading.Thread(target=write, args=(p,)) for p in payloads[:-1]] + [threading.Thread(target=read)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert target.read_bytes() in payloads
    assert all(s in payloads for s in seen)  # never a mix of two writes, never a partial one
    assert sorted(os.listdir(tmp_path)) == ["state.json"]  # no temporary file left


def test_a_stale_temporary_of_the_same_name_is_replaced(tmp_path, monkeypatch):
    target = tmp_path / "state.json"
    monkeypatch.setattr(paths, "_temporaries", iter([7, 7]))
    stale = tmp_path / f".state.json.{os.getpid()}.{threading.get_ident()}.7.tmp"
    stale.write_bytes(b"left by a crashed process of the same pid")
    atomic_write(target, b"new")
    assert target.read_bytes() == b"new"
    assert sorted(os.listdir(tmp_path)) == ["state.json"]
    assert (target.stat().st_mode & 0o777) == 0o600  # a private file, as tempfile.mkstemp makes it
