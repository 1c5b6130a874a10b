"""atomic_write: a rename of a file of the writer's own, never a half-written target."""

import os
import subprocess
import sys
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


WRITER = """
import sys
from pathlib import Path
from reactorkit.core.paths import atomic_write
data = sys.argv[2].encode() * 5000
for _ in range(100):
    atomic_write(Path(sys.argv[1]), data, durable=False)
"""


def test_concurrent_processes_each_rename_a_whole_file_of_their_own(tmp_path):
    target = tmp_path / "state.json"
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(target), str(i)]) for i in range(4)]
    seen = set()
    while any(w.poll() is None for w in writers):
        if target.exists():
            seen.add(target.read_bytes())
    assert [w.wait() for w in writers] == [0, 0, 0, 0]
    assert seen <= {(str(i) * 5000).encode() for i in range(4)}  # never a mix, never a partial file
    assert sorted(os.listdir(tmp_path)) == ["state.json"]


def test_a_file_with_the_temporarys_name_is_left_alone_and_another_name_is_used(tmp_path, monkeypatch):
    # it may be another live writer's (a process of the same pid in another pid namespace): removing it would let
    # that writer rename this one's half-written file into place
    target = tmp_path / "state.json"
    monkeypatch.setattr(paths, "_temporaries", iter([7, 8]))
    other = tmp_path / f".state.json.{os.getpid()}.{threading.get_ident()}.7.tmp"
    other.write_bytes(b"another writer's")
    atomic_write(target, b"new")
    assert target.read_bytes() == b"new"
    assert other.read_bytes() == b"another writer's"
    assert sorted(os.listdir(tmp_path)) == [other.name, "state.json"]
    assert (target.stat().st_mode & 0o777) == 0o600  # a private file, as tempfile.mkstemp makes it
