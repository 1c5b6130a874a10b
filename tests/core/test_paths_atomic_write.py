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


def record_syncs(monkeypatch):
    """Replace os.fsync and os.replace with recorders: ``("fsync", path of the fd, is a folder)`` and
    ``("replace", source, target)`` events, in order (the real calls are still made)."""
    events: list[tuple] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}"), os.path.isdir(f"/proc/self/fd/{fd}")))
        return real_fsync(fd)

    def replace(source, target, *args, **kwargs):
        events.append(("replace", str(source), str(target)))
        return real_replace(source, target, *args, **kwargs)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    return events


def test_a_durable_write_syncs_the_file_before_the_rename_and_the_folder_after_it(tmp_path, monkeypatch):
    target = tmp_path / "sub" / "state.json"
    events = record_syncs(monkeypatch)
    atomic_write(target, b"new")
    assert target.read_bytes() == b"new"
    assert [e[0] for e in events] == ["fsync", "replace", "fsync"]
    (_, synced_file, file_is_dir), (_, renamed, renamed_to), (_, synced_dir, dir_is_dir) = events
    assert synced_file == renamed and not file_is_dir  # the temporary file's data, before its rename
    assert renamed_to == str(target)
    assert synced_dir == str(target.parent) and dir_is_dir  # the folder holding the new name, after the rename


def test_a_write_that_need_not_be_durable_syncs_nothing(tmp_path, monkeypatch):
    target = tmp_path / "state.json"
    events = record_syncs(monkeypatch)
    atomic_write(target, b"new", durable=False)
    assert target.read_bytes() == b"new"
    assert [e[0] for e in events] == ["replace"]


def test_a_filesystem_that_cannot_sync_folders_is_accepted_but_other_sync_errors_are_raised(tmp_path, monkeypatch):
    import errno

    real_fsync = os.fsync
    refusal = {"errno": errno.EINVAL}

    def fsync(fd):
        if os.path.isdir(f"/proc/self/fd/{fd}"):
            raise OSError(refusal["errno"], os.strerror(refusal["errno"]))
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    target = tmp_path / "state.json"
    atomic_write(target, b"one")
    assert target.read_bytes() == b"one"
    refusal["errno"] = errno.EIO
    try:
        atomic_write(target, b"two")
    except OSError as exc:
        assert exc.errno == errno.EIO
    else:
        raise AssertionError("an EIO of the folder's fsync was swallowed")
    assert sorted(os.listdir(tmp_path)) == ["state.json"]


def test_durable_replace_syncs_the_streamed_file_then_renames_then_syncs_the_folder(tmp_path, monkeypatch):
    source, target = tmp_path / ".upload.tmp", tmp_path / "upload.bin"
    source.write_bytes(b"streamed")
    events = record_syncs(monkeypatch)
    paths.durable_replace(source, target)
    assert target.read_bytes() == b"streamed" and not source.exists()
    assert events == [("fsync", str(source), False), ("replace", str(source), str(target)),
                      ("fsync", str(tmp_path), True)]
