"""Where a unit keeps its state, and safe joins inside it.

``$DOT_PIOREACTOR`` (default ``~/.pioreactor``) holds ``config.ini``,
``unit_config.ini``, ``storage/``, ``plugins/``, ``experiment_profiles/``,
``logs/`` and the calibrations. Every path built from user input goes through
:func:`safe_join`, so nothing escapes that folder.
"""

from __future__ import annotations

import errno
import itertools
import os
import threading
from pathlib import Path
from typing import Callable, TypeVar

T = TypeVar("T")


class UnsafePath(ValueError):
    """A user-supplied path would leave ``$DOT_PIOREACTOR`` (absolute, ``..`` or a link)."""


def dot_pioreactor() -> Path:
    """The unit's state folder: ``$DOT_PIOREACTOR`` or ``~/.pioreactor``."""
    return Path(os.environ.get("DOT_PIOREACTOR") or Path.home() / ".pioreactor")


def storage_dir() -> Path:
    """``$DOT_PIOREACTOR/storage``, created on demand."""
    path = dot_pioreactor() / "storage"
    path.mkdir(parents=True, exist_ok=True)
    return path


def file_identity(path: Path | str) -> tuple[int, int] | None:
    """``(st_dev, st_ino)`` of ``path``, or None when it does not exist: another value means another file
    (one put in its place by a rename, as a state-archive import does with the whole folder), even while a
    connection keeps the replaced one open (its inode cannot be reused meanwhile)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def open_identified(path: Path | str, open_file: Callable[[], T]) -> tuple[T, tuple[int, int] | None]:
    """``(open_file(), identity)``: what ``open_file`` opened at ``path`` and :func:`file_identity` of the file it
    opened. The identity is read before the open, so that a file put in its place in between differs from it at
    the next check (read after, the new file would be taken for the one the connection has); when there was no
    file yet (the open makes it), it is read after.

    Raises:
        Whatever ``open_file`` raises.
    """
    before = file_identity(path)
    opened = open_file()
    return opened, before if before is not None else file_identity(path)


def safe_join(root: Path, *parts: str) -> Path:
    """Join ``parts`` under ``root`` and refuse anything that escapes it.

    Raises:
        UnsafePath: a part is absolute, contains ``..``, or the resolved path
            (following symlinks) is outside ``root``.
    """
    for part in parts:
        if not part or os.path.isabs(part) or ".." in Path(part).parts or "\x00" in part:
            raise UnsafePath(f"{part!r} is not a relative path inside {root}")
    candidate = root.joinpath(*parts)
    resolved_root = root.resolve()
    resolved = candidate.resolve()
    if resolved != resolved_root and resolved_root not in resolved.parents:
        raise UnsafePath(f"{'/'.join(parts)!r} resolves outside {root}")
    return candidate


_temporaries = itertools.count()
_CREATE_ATTEMPTS = 100


def _create_temporary(path: Path) -> tuple[int, str]:
    """A new file beside ``path`` (``.{name}.{pid}.{thread}.{n}.tmp``, mode 0600, created exclusively): its
    descriptor and name. The name is this process's and thread's own, so no two writers share one (``tempfile``'s
    random names would do as well, but import ``shutil``, ``bz2``, ``lzma`` and ``random`` into every job: ~0.5 MB).

    A file of that name already there (left by a crashed process that had this pid, or made by a process of
    another pid namespace sharing the folder) is never removed nor reused: it may be another writer's, which
    would then rename this writer's half-written file into place. The next number is tried instead.

    Raises:
        OSError: the folder refuses the file (FileExistsError after :data:`_CREATE_ATTEMPTS` names in use).
    """
    prefix = f"{path.parent}/.{path.name}.{os.getpid()}.{threading.get_ident()}."
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(_CREATE_ATTEMPTS):
        name = f"{prefix}{next(_temporaries)}.tmp"
        try:
            return os.open(name, flags, 0o600), name
        except FileExistsError:
            continue
    raise FileExistsError(f"{_CREATE_ATTEMPTS} temporary names beside {path} are in use")


def fsync_dir(path: Path | str) -> None:
    """Flush ``path``'s directory entries to disk (``fsync`` of the directory itself), so that a rename or a
    new file in it survives a power cut: ``fsync`` of a file does not make its name durable, only the
    directory's does (fsync(2), "Calling fsync() does not necessarily ensure that the entry in the directory
    containing the file has also reached disk. For that an explicit fsync() on a file descriptor for the
    directory is also needed").

    A filesystem that cannot sync a directory (it answers EINVAL, as some network and FUSE filesystems do) is
    accepted: it offers no more durability to ask for.

    Raises:
        OSError: the folder cannot be opened, or the fsync failed otherwise (EIO: the data may be lost).
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
    finally:
        os.close(fd)


def durable_replace(source: Path | str, target: Path | str) -> None:
    """``os.replace(source, target)`` that survives a power cut: ``source`` (a complete file written beside
    ``target``) is flushed to disk first, then renamed, then the folder of ``target`` is flushed
    (:func:`fsync_dir`), so that after a crash ``target`` holds either its old content or all of the new one.
    For files written by a stream (uploads, exports); :func:`atomic_write` does the same for bytes in memory.

    Raises:
        OSError: ``source`` cannot be opened or synced, the rename failed (``source`` is left where it is), or
            the folder cannot be synced.
    """
    fd = os.open(source, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(source, target)
    fsync_dir(os.path.dirname(os.path.abspath(target)))


def atomic_write(path: Path, data: bytes | str, *, durable: bool = True) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename.

    Readers see either the old or the new content, never a half-written file.
    With ``durable`` (the default) the data is flushed to disk (``fsync``) before
    the rename and the folder after it (:func:`fsync_dir`: without it a power cut
    right after the rename can bring back the old file, or none), so the new
    content survives a power cut once this returns; pass False for state that is
    rewritten many times a second and worthless after a reboot (the simulated
    vessel), where each fsync would cost milliseconds.

    Raises:
        OSError: the folder refuses the file, the disk is full, or an fsync failed (the temporary file is
            removed; ``path`` keeps its old content unless the rename was made).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode() if isinstance(data, str) else data
    fd, tmp = _create_temporary(path)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    if durable:
        fsync_dir(path.parent)
