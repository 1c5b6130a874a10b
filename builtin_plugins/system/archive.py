"""Zip export and safe import of a unit's ``$DOT_PIOREACTOR``.

Export: every regular file (links are not followed), SQLite databases copied
consistently with SQLite's backup API (their ``-wal``/``-shm`` files left out),
temporary files, ``exports/`` and ``uploads/`` left out.

Import: the archive is checked before anything is written — no absolute
names, no ``..``, no links or device entries, at most ``max_members`` entries
and ``max_bytes`` uncompressed — then extracted into a staging folder next to
``$DOT_PIOREACTOR``; its config files may not change a setting the API may not
change (the unit's shell commands, the API's security:
:mod:`reactorkit.core.config_guard`), else the import is refused and nothing
is replaced; then every file and folder of the staging folder is flushed to disk and it
is swapped in with two renames (the old folder is kept until the new one is
in place, and put back if the swap fails), the parent folder flushed before
the old one is removed: after a power cut the unit has either its old state
or all of the new one. Files the
caller names in ``keep`` (the unit's outbox) stay as they are here: the
archive's copy is left out and the unit's own is copied in just before the swap,
under its SQLite write lock held until the new folder is in place (its writers
then go on in the copy: none is lost in the old file, none numbered twice).
Files it names in ``carry`` (the job launcher's socket and lock file) are the
running unit's, known by their inode: they are hard-linked into the new folder,
so that they are the very same files there.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import stat
import tempfile
import uuid
import zipfile
from pathlib import Path, PurePosixPath
from typing import Iterable, Iterator

SKIP_DIRS = {"exports", "uploads", "__pycache__"}
SQLITE_SUFFIXES = (".sqlite", ".sqlite3", ".db")
MAX_MEMBERS = 100_000
#: The unit's config files (relative to ``$DOT_PIOREACTOR``) whose protected settings an import must keep.
CONFIG_FILES = ("config.ini", "unit_config.ini", "storage/mqtt_credentials.ini")


class UnsafeArchive(ValueError):
    """An archive that must not be extracted (message names the entry and why)."""


class ImportNotFlushed(Exception):
    """An import swapped the folders, but the parent folder could not be flushed to disk after the renames (an
    fsync error: the storage is failing): the imported state is in use, and the previous one is kept at
    ``backup`` (a folder beside it), since after a power cut either may be the one found at the unit's path."""

    def __init__(self, message: str, backup: Path) -> None:
        super().__init__(message)
        self.backup = backup


def _files(root: Path) -> Iterator[Path]:
    for folder, dirs, files in os.walk(root, followlinks=False):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not os.path.islink(os.path.join(folder, d)))
        for name in sorted(files):
            path = Path(folder) / name
            if name.endswith((".tmp", "-wal", "-shm", "-journal", ".lock", ".pid")):
                continue
            mode = path.lstat().st_mode
            if stat.S_ISREG(mode):
                yield path


def write_zip(root: Path, target: Path) -> int:
    """Zip ``root`` into ``target``; returns the number of files."""
    from reactorkit.plugin import open_sqlite

    count = 0
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
        for path in _files(root):
            name = path.relative_to(root).as_posix()
            if path.name.endswith(SQLITE_SUFFIXES):
                with tempfile.TemporaryDirectory() as tmp:
                    copy = Path(tmp) / "copy.sqlite"
                    try:
                        source = open_sqlite(path, read_only=True)
                        dest = sqlite3.connect(copy)
                        with dest:
                            source.backup(dest)
                        source.close()
                        dest.close()
                        zf.write(copy, name)
                    except sqlite3.Error:
                        zf.write(path, name)
            else:
                zf.write(path, name)
            count += 1
    return count


def check_archive(path: Path, *, max_bytes: int, max_members: int = MAX_MEMBERS) -> list[zipfile.ZipInfo]:
    """The entries of a safe archive.

    Raises:
        UnsafeArchive: not a zip, an absolute or ``..`` name, a link or special
            file, too many entries or too large once extracted.
    """
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise UnsafeArchive(f"not a zip archive: {exc}") from None
    with zf:
        infos = zf.infolist()
        if len(infos) > max_members:
            raise UnsafeArchive(f"{len(infos)} entries; at most {max_members} are allowed")
        total = 0
        for info in infos:
            name = info.filename
            if "\x00" in name or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
                raise UnsafeArchive(f"{name!r} is an absolute path")
            parts = PurePosixPath(name.replace("\\", "/")).parts
            if ".." in parts:
                raise UnsafeArchive(f"{name!r} leaves the folder ('..')")
            kind = stat.S_IFMT(info.external_attr >> 16)
            if kind == stat.S_IFLNK:
                raise UnsafeArchive(f"{name!r} is a symbolic link")
            if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
                raise UnsafeArchive(f"{name!r} is not a regular file or folder")
            total += info.file_size
            if total > max_bytes:
                raise UnsafeArchive(f"more than {max_bytes // 2**20} MB once extracted")
        return infos


def _extract(path: Path, staging: Path, max_bytes: int) -> int:
    written = 0
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            target = staging.joinpath(*PurePosixPath(info.filename.replace("\\", "/")).parts)
            if staging.resolve() not in target.resolve().parents:
                raise UnsafeArchive(f"{info.filename!r} leaves the folder")
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as source, open(target, "wb") as out:
                while chunk := source.read(1 << 16):
                    written += len(chunk)
                    if written > max_bytes:  # the sizes in the headers lied
                        raise UnsafeArchive(f"more than {max_bytes // 2**20} MB once extracted")
                    out.write(chunk)
    return written


def _sync_tree(folder: Path) -> None:
    """``fsync`` every file and folder under ``folder`` (folders after their contents), so that its files' data
    and names are on disk before it is renamed into place.

    Raises:
        OSError: a file or folder cannot be opened or synced.
    """
    from reactorkit.plugin import fsync_dir

    for parent, _dirs, files in os.walk(folder, topdown=False, followlinks=False):
        for name in files:
            fd = os.open(os.path.join(parent, name), os.O_RDONLY | os.O_NOFOLLOW)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(parent)


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _check_protected_settings(root: Path, staging: Path) -> None:
    """Raises: UnsafeArchive when a config file of ``staging`` adds, changes or removes a protected setting
    of the same file in ``root`` (the unit's shell commands, the API's security)."""
    from reactorkit.plugin import protected_changes

    changed = sorted({key for name in CONFIG_FILES
                      for key in protected_changes(_text(root / name), _text(staging / name))})
    if changed:
        raise UnsafeArchive(f"its config changes {', '.join(changed)}, which can only be changed in the unit's own "
                            "files, not through the API; edit them on the unit, or export an archive whose config "
                            "keeps them as they are here")


@contextlib.contextmanager
def _write_locked(database: Path) -> Iterator[None]:
    """Hold SQLite's write lock on ``database`` (``BEGIN IMMEDIATE``, nothing written) until the block ends.

    Raises:
        sqlite3.OperationalError: another connection kept the lock for the 15 s busy timeout.
    """
    from reactorkit.plugin import open_sqlite

    conn = open_sqlite(database, wal=False, synchronous=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        yield
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        conn.close()  # (once the folder is swapped SQLite sees the file moved and leaves the new one's WAL alone)


def _keep_own(root: Path, staging: Path, keep: Iterable[str], held: contextlib.ExitStack) -> None:
    """Put ``root``'s own copy of each file of ``keep`` (relative paths) in ``staging`` instead of the archive's
    (none when ``root`` has none), flushed to disk. SQLite files are copied consistently (backup API, their
    ``-wal`` included) under their write lock, which ``held`` keeps until the caller has swapped the folders: a
    process that still has the file open (the unit's outbox, numbering messages) writes nothing after the copy
    is taken into the file thrown away; it waits, then finds another file in its place and writes there
    (:meth:`reactorkit.core.outbox.Outbox._begin`).

    Raises:
        sqlite3.Error: the lock or the copy failed.
        OSError: a copy could not be written or flushed.
    """
    from reactorkit.plugin import fsync_dir, open_sqlite

    for name in keep:
        target = staging / name
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{target}{suffix}").unlink(missing_ok=True)
        own = root / name
        if not own.is_file():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if own.name.endswith(SQLITE_SUFFIXES):
            held.enter_context(_write_locked(own))
            source = open_sqlite(own, read_only=True)
            try:
                dest = sqlite3.connect(target)
                try:
                    source.backup(dest)
                finally:
                    dest.close()
            finally:
                source.close()
        else:
            shutil.copy2(own, target)
        fd = os.open(target, os.O_RDONLY | os.O_NOFOLLOW)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        fsync_dir(target.parent)


def _carry_over(root: Path, staging: Path, carry: Iterable[str]) -> None:
    """Hard-link each file of ``carry`` (paths relative to ``root``) that exists under ``root`` into ``staging`` in
    place of the archive's: the same inode under both names (a launcher's socket still accepts connections there
    and its ``flock`` still holds). A file that cannot be linked (a file system without hard links) is left
    behind: its launcher notices and starts again on the new folder (:mod:`reactorkit.core.launcher`)."""
    for name in carry:
        own, target = root / name, staging / name
        try:
            if stat.S_ISDIR(own.lstat().st_mode) or stat.S_ISLNK(own.lstat().st_mode):
                continue
        except FileNotFoundError:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.unlink(missing_ok=True)
        try:
            os.link(own, target, follow_symlinks=False)
        except OSError:
            pass


def import_archive(path: Path, root: Path, *, max_bytes: int, keep: Iterable[str] = (),
                   carry: Iterable[str] = ()) -> dict[str, int]:
    """Replace ``root`` with the archive's content (checked first; swapped in atomically).

    Args:
        path: The zip archive.
        root: The folder replaced (``$DOT_PIOREACTOR``).
        max_bytes: Most bytes extracted.
        keep: Paths relative to ``root`` of files that stay this unit's own (the archive's copies are
            left out): the unit's outbox, whose numbering and waiting messages must not go back to the
            time of the export (the leader would drop new messages under numbers it has stored).
        carry: Paths relative to ``root`` of files of running processes that must stay the same files
            (hard-linked, see :func:`_carry_over`): the job launcher's socket and lock file.

    Returns:
        ``{"files": n, "bytes": total}``.

    Raises:
        UnsafeArchive: see :func:`check_archive`, or its config changes a protected setting (nothing is
            replaced).
        OSError: the swap failed (the old folder is back in place).
        sqlite3.Error: a kept SQLite file could not be locked or copied (nothing is replaced).
        ImportNotFlushed: the new folder is in place, but the parent folder could not be flushed after the
            renames (the previous state is kept at its ``backup``).
    """
    infos = check_archive(path, max_bytes=max_bytes)
    staging = root.parent / f".{root.name}.import-{uuid.uuid4().hex[:8]}"
    backup = root.parent / f".{root.name}.previous-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        # the kept SQLite files' write locks are held from their copies until the new folder is in place
        # (or the old one back): short, since the archive's files are flushed before
        with contextlib.ExitStack() as held:
            written = _extract(path, staging, max_bytes)
            _check_protected_settings(root, staging)
            _sync_tree(staging)
            _keep_own(root, staging, keep, held)
            _carry_over(root, staging, carry)  # after the sync: a socket cannot be opened to be synced
            os.rename(root, backup)
            try:
                os.rename(staging, root)
            except OSError:
                os.rename(backup, root)
                raise
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    from reactorkit.plugin import fsync_dir

    try:
        fsync_dir(root.parent)  # the two renames on disk before the old state is removed
    except OSError as exc:
        # the new state is in place and in use, but not known to be on disk: the old one stays beside it
        raise ImportNotFlushed(f"the imported folder is in place, but {root.parent} could not be flushed to disk "
                               f"({type(exc).__name__}: {exc}); the previous state is kept in {backup}",
                               backup) from exc
    shutil.rmtree(backup, ignore_errors=True)
    return {"files": sum(1 for i in infos if not i.is_dir()), "bytes": written}
