"""The Pioreactor web UI build: fetched from the package index at run time, never shipped here.

The UI our users know is the React build inside the ``pioreactor`` wheel on the
package index (``pioreactor/web/static``, MIT licence). :func:`install_ui`
fetches that wheel with ``pip download --no-deps`` (any Python tag: the wheel is
pure Python, only the build inside it is used), extracts ``web/static`` into
``$DOT_PIOREACTOR/ui/<version>/`` and records it in ``$DOT_PIOREACTOR/ui/installed.json``.
:func:`static_dir` answers where the leader serves the UI from: ``[ui] static_dir``
when set, else the recorded build.

pip's own settings apply (``PIP_INDEX_URL``, ``PIP_FIND_LINKS``, ``PIP_NO_INDEX``,
a proxy), so a mirror or an offline wheel folder works as for any package.

An install works in a temporary folder ``$DOT_PIOREACTOR/ui/.install-*`` (the download, the extracted build, the
build it replaces) while it holds an exclusive ``flock`` on ``$DOT_PIOREACTOR/ui``. An install that was killed or
cut off by a power loss leaves that folder behind; :func:`remove_stale_installs` removes such leftovers, and
runs at the start of every install and of the leader's server (:func:`ensure_ui`, the web UI's mount).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path, PurePosixPath
from typing import Callable

from reactorkit.core.paths import atomic_write, dot_pioreactor, fsync_dir

UI_PACKAGE = "pioreactor"
DEFAULT_UI_VERSION = "26.11.1"
BUILD_PREFIX = "pioreactor/web/static/"
RECORD_NAME = "installed.json"
INSTALL_PREFIX = ".install-"  # an install's temporary folder in ui_root()
PIP_TIMEOUT_S = 15
UNREACHABLE_HINTS = ("Could not fetch URL", "NewConnectionError", "Failed to establish a new connection",
                     "Temporary failure in name resolution", "Max retries exceeded", "ConnectTimeout",
                     "Network is unreachable", "ProxyError", "Connection refused")


class UiInstallError(RuntimeError):
    """The UI build could not be installed.

    Attributes:
        unreachable: True when the package index could not be reached (as opposed to, e.g.,
            an unknown version or a wheel without a UI build).
    """

    def __init__(self, message: str, *, unreachable: bool = False) -> None:
        super().__init__(message)
        self.unreachable = unreachable


def ui_root() -> Path:
    """``$DOT_PIOREACTOR/ui``: one folder per installed version, and the record."""
    return dot_pioreactor() / "ui"


def installed_record() -> dict | None:
    """The record of the installed build (``{version, path, wheel, files, installed_at}``), or None."""
    try:
        return json.loads((ui_root() / RECORD_NAME).read_text())
    except (OSError, ValueError):
        return None


def installed_ui() -> Path | None:
    """The folder of the recorded build if it still holds an ``index.html``, else None."""
    record = installed_record()
    if not record:
        return None
    path = Path(record.get("path", ""))
    return path if (path / "index.html").is_file() else None


def static_dir(config: object | None = None) -> Path | None:
    """Where the leader serves the UI from: ``[ui] static_dir`` (when set), else the installed build.

    Returns None when neither holds an ``index.html``.
    """
    if config is not None:
        configured = config.get("ui", "static_dir", fallback="") or ""  # type: ignore[attr-defined]
        if configured.strip():
            path = Path(configured.strip()).expanduser()
            if not path.is_absolute():
                path = dot_pioreactor() / path
            return path if (path / "index.html").is_file() else None
    return installed_ui()


def _lock_ui_root(root: Path, *, wait: bool) -> int | None:
    """A descriptor of the folder ``root`` holding an exclusive ``flock`` on it, or None when another process
    holds it and ``wait`` is False. The lock goes with the descriptor (closed: released; the process killed:
    released by the kernel), so a crashed install never leaves it held.

    Raises:
        OSError: ``root`` cannot be opened, or the filesystem cannot lock it (e.g. ENOLCK).
    """
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except OSError as exc:
        os.close(fd)
        if not wait and exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return None
        raise
    except BaseException:
        os.close(fd)
        raise
    return fd


def _restore_previous(root: Path, leftover: Path) -> bool:
    """Put back the build a killed install had moved aside (``leftover/previous``) when the recorded build's
    folder is missing: the install was cut off between its two renames, and that build is the only copy of the
    one the record names. Only a real folder holding an ``index.html`` is moved, and only to the record's path
    when that is a missing folder directly in ``root``. Returns True when it was put back."""
    previous = leftover / "previous"
    record = installed_record()
    if not isinstance(record, dict) or not isinstance(record.get("path"), str) or not record["path"]:
        return False
    if not previous.is_dir() or previous.is_symlink() or not (previous / "index.html").is_file():
        return False
    target = Path(record["path"])
    if target.parent != root or not target.name or target.name.startswith(".") or os.path.lexists(target):
        return False
    os.replace(previous, target)
    fsync_dir(root)
    return True


def _sweep(root: Path, echo: Callable[[str], None]) -> list[str]:
    """Remove the ``.install-*`` folders directly in ``root`` (the caller holds the lock of :func:`_lock_ui_root`:
    no install is using them); returns their names. Entries of that name that are not real folders (a link, a
    file) are not an install's and are left as they are; a folder's content is removed without following the
    links in it (``shutil.rmtree`` works on descriptors where the platform allows:
    ``shutil.rmtree.avoids_symlink_attacks``), so nothing outside it is touched. A folder that cannot be removed
    whole is reported through ``echo`` and left."""
    removed = []
    with os.scandir(root) as entries:
        leftovers = [Path(e.path) for e in entries if e.name.startswith(INSTALL_PREFIX)
                     and e.is_dir(follow_symlinks=False)]
    for leftover in sorted(leftovers):
        try:
            if _restore_previous(root, leftover):
                echo(f"Put back the web UI build an interrupted install had moved aside ({leftover.name}/previous).")
            shutil.rmtree(leftover)
        except OSError as exc:
            echo(f"Could not remove {leftover} (left by an interrupted web UI install): {exc}")
            continue
        removed.append(leftover.name)
    return removed


def remove_stale_installs(*, echo: Callable[[str], None] = lambda line: None) -> list[str]:
    """Remove what killed installs left in ``$DOT_PIOREACTOR/ui``: their ``.install-*`` folders; returns their names.

    A running install holds an exclusive ``flock`` on ``$DOT_PIOREACTOR/ui`` (:func:`install_ui`): while it does,
    nothing is removed (its folder is in use; the lock is not waited for), and once no install holds it every
    ``.install-*`` folder is a leftover. Only real folders directly in ``$DOT_PIOREACTOR/ui`` are removed, never
    through a link: when ``$DOT_PIOREACTOR/ui`` is itself a link nothing is removed, a ``.install-*`` link is
    left, and links inside a leftover are removed, not followed. A leftover holding the build that its install
    had moved aside, when the recorded build's folder is missing (the install was cut off between its two
    renames), has that build put back in place first.

    Args:
        echo: Receives a line per build put back and per leftover that could not be removed.

    Returns:
        The names of the removed folders (``[]`` when there is no UI folder or an install is running).

    Raises:
        OSError: ``$DOT_PIOREACTOR/ui`` cannot be opened or locked.
    """
    root = ui_root()
    if root.is_symlink() or not root.is_dir():
        return []
    fd = _lock_ui_root(root, wait=False)
    if fd is None:
        return []
    try:
        return _sweep(root, echo)
    finally:
        os.close(fd)


def download_wheel(version: str, dest: Path) -> Path:
    """``pip download --no-deps pioreactor==version`` into ``dest``; returns the wheel's path.

    Raises:
        UiInstallError: pip failed (``unreachable`` set when the index could not be reached).
    """
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--ignore-requires-python", "--disable-pip-version-check", "--no-input",
               "--retries", "1", "--timeout", str(PIP_TIMEOUT_S), "--dest", str(dest), f"{UI_PACKAGE}=={version}"]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        raise UiInstallError("the package index did not answer within 300 s", unreachable=True) from None
    wheels = sorted(dest.glob(f"{UI_PACKAGE}-*.whl"))
    if result.returncode != 0 or not wheels:
        output = (result.stderr or "") + (result.stdout or "")
        unreachable = any(hint in output for hint in UNREACHABLE_HINTS) or "(from versions: none)" in output
        last = [line.strip() for line in output.splitlines() if line.strip()]
        detail = last[-1] if last else f"pip exited with {result.returncode}"
        if unreachable:
            raise UiInstallError(f"the package index could not be reached ({detail})", unreachable=True)
        raise UiInstallError(f"{UI_PACKAGE}=={version} could not be downloaded: {detail}")
    return wheels[0]


def extract_build(wheel: Path, target: Path) -> int:
    """Extract the wheel's ``pioreactor/web/static`` tree into ``target`` (created); returns the file count.

    Members that would land outside ``target`` (absolute paths, ``..``) are refused. Every file is flushed to
    disk (``fsync``) once written, then every folder of the tree, ``target`` included (:func:`fsync_dir`): once
    this returns, a rename of ``target`` publishes files whose data and names are on the disk (after a power
    cut, a renamed folder could otherwise hold empty or missing files; ext4's ``auto_da_alloc`` covers a
    file renamed over another, not a new file in a renamed folder).

    Raises:
        UiInstallError: the file is not a wheel, or holds no UI build (no ``index.html``).
        OSError: a file or folder cannot be written or synced (e.g. the disk is full).
    """
    try:
        archive = zipfile.ZipFile(wheel)
    except (zipfile.BadZipFile, OSError) as exc:
        raise UiInstallError(f"{wheel.name} is not a readable wheel: {exc}") from None
    count = 0
    folders = {target}
    with archive:
        members = [m for m in archive.infolist() if m.filename.startswith(BUILD_PREFIX) and not m.is_dir()]
        if not any(m.filename == BUILD_PREFIX + "index.html" for m in members):
            raise UiInstallError(f"{wheel.name} holds no UI build ({BUILD_PREFIX}index.html is missing)")
        for member in members:
            relative = PurePosixPath(member.filename[len(BUILD_PREFIX):])
            if relative.is_absolute() or ".." in relative.parts:
                raise UiInstallError(f"{wheel.name} has an unsafe member {member.filename!r}")
            destination = target.joinpath(*relative.parts)
            destination.parent.mkdir(parents=True, exist_ok=True)
            folders.update(destination.parents[:len(relative.parts) - 1])
            with archive.open(member) as source, open(destination, "wb") as out:
                shutil.copyfileobj(source, out)
                out.flush()
                os.fsync(out.fileno())
            count += 1
    for folder in sorted(folders, key=lambda f: len(f.parts), reverse=True):  # each folder's entries, deepest first
        fsync_dir(folder)
    return count


def install_ui(version: str = DEFAULT_UI_VERSION, *, wheel: Path | None = None,
               echo: Callable[[str], None] = lambda line: None) -> Path:
    """Fetch (or take ``wheel``), extract and record the UI build ``version``; returns its folder.

    The build is extracted next to its final place, flushed to disk (every file and folder:
    :func:`extract_build`) and renamed into ``$DOT_PIOREACTOR/ui/<version>/`` only when complete, then
    ``$DOT_PIOREACTOR/ui`` is flushed (:func:`fsync_dir`) and the record written (:func:`atomic_write`,
    durable): a failed or interrupted install leaves the previous build (and record) untouched, and a
    finished one survives a power cut. A build of the same version already there is moved aside by a
    rename, and put back if the new one cannot be renamed in; it is deleted once the new one is in place
    (a power cut between those two renames leaves it in ``$DOT_PIOREACTOR/ui/.install-*/previous``, from where
    the next install or server start puts it back: :func:`remove_stale_installs`).

    The install holds an exclusive ``flock`` on ``$DOT_PIOREACTOR/ui`` from start to end (a second install
    waits for it, saying so through ``echo``) and, once it has the lock, removes the ``.install-*`` folders
    that killed installs left (:func:`remove_stale_installs`'s rules) before it makes its own.

    Args:
        version: The ``pioreactor`` release whose UI to install (ignored for the folder name
            when ``wheel`` is given: the wheel's own version is used).
        wheel: A wheel file already on disk, instead of downloading one.
        echo: Receives progress lines.

    Raises:
        UiInstallError: download or extraction failed (see its ``unreachable``).
        OSError: the build or the record cannot be written or synced (e.g. the disk is full).
    """
    root = ui_root()
    if not root.is_dir():
        root.mkdir(parents=True, exist_ok=True)
        fsync_dir(root.parent)
    started = time.monotonic()
    lock = _lock_ui_root(root, wait=False)
    if lock is None:
        echo("Another install of the web UI is running; waiting for it to finish …")
        lock = _lock_ui_root(root, wait=True)
    try:
        if not root.is_symlink():
            removed = _sweep(root, echo)
            if removed:
                echo(f"Removed {len(removed)} folder(s) left by interrupted installs: {', '.join(removed)}.")
        return _install_locked(root, version, wheel, echo, started)
    finally:
        os.close(lock)


def _install_locked(root: Path, version: str, wheel: Path | None, echo: Callable[[str], None],
                    started: float) -> Path:
    """:func:`install_ui`'s work, with the lock of :func:`_lock_ui_root` held."""
    with tempfile.TemporaryDirectory(dir=root, prefix=INSTALL_PREFIX) as tmp:
        tmp_path = Path(tmp)
        if wheel is None:
            echo(f"Fetching the Pioreactor web UI {version} ({UI_PACKAGE} wheel) from the package index …")
            wheel = download_wheel(version, tmp_path / "wheel")
        else:
            wheel = Path(wheel)
            version = wheel.name.split("-")[1] if wheel.name.count("-") >= 2 else version
        staging = tmp_path / "build"
        files = extract_build(wheel, staging)
        target = root / version
        previous = tmp_path / "previous"
        if target.exists():
            os.replace(target, previous)  # deleted with the temporary folder, once the new build is in place
        try:
            os.replace(staging, target)
        except BaseException:
            if previous.exists():
                os.replace(previous, target)
            raise
        fsync_dir(root)
    record = {"version": version, "path": str(target), "wheel": wheel.name, "files": files,
              "installed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    atomic_write(root / RECORD_NAME, json.dumps(record, indent=2))
    echo(f"Web UI {version} installed in {target} ({files} files, {time.monotonic() - started:.1f} s).")
    return target


def ensure_ui(version: str = DEFAULT_UI_VERSION, *, echo: Callable[[str], None] = print) -> Path | None:
    """The installed build, installing ``version`` first when none is; None (and a line saying why)
    when it cannot be installed, e.g. the package index is unreachable. Never raises for that.

    First removes what killed installs left in ``$DOT_PIOREACTOR/ui`` (:func:`remove_stale_installs`: not
    while an install runs), which may put back the recorded build an install had moved aside; a UI folder
    that cannot be opened or locked for that is reported through ``echo`` and the rest goes on."""
    try:
        removed = remove_stale_installs(echo=echo)
    except OSError as exc:
        echo(f"Leftovers of interrupted web UI installs were not looked for: {exc}")
    else:
        if removed:
            echo(f"Removed {len(removed)} folder(s) left by interrupted web UI installs.")
    existing = installed_ui()
    if existing is not None:
        return existing
    try:
        return install_ui(version, echo=echo)
    except UiInstallError as exc:
        if exc.unreachable:
            echo(f"The web UI is not installed: {exc}. Going on without it; install it later with `pio ui install`.")
        else:
            echo(f"The web UI could not be installed: {exc}. Going on without it.")
        return None
