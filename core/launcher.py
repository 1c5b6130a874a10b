"""The unit's job launcher: a process with the framework imported that forks job processes on request.

A fresh ``pio run <job>`` spends most of its start importing (click, paho, the
job's module, sqlite, logging …) and only a little starting the job. The
launcher pays the imports once: it imports the framework and the built-in job
modules (not numpy or scipy: the jobs that compute with them import them), then
waits on ``$DOT_PIOREACTOR/storage/launcher.sock``. For each request (see
:mod:`reactorkit.core.launch_client` for the protocol) it forks; the child takes
the caller's stdin/stdout/stderr, environment and working directory, starts a
session of its own, names itself after the command (``ps`` shows ``pio run
<job> …``) and runs the ``pio`` command line in-process. The job registry,
``pio kill``, signals and the job's exit code work as for a job started the
ordinary way; a caller that cannot reach a launcher starts the job the
ordinary way.

A job whose class names modules only it needs (``launcher_preload``, e.g. the
ingestion's asyncio MQTT client) gets a process of its own, forked from the
launcher ahead of time with them imported and waiting on a socket pair; a
request for that job is handed to it (it becomes the job) and another is forked
for the next start. The launcher itself does not import them, so the other jobs
do not carry them in their memory.

The launcher keeps one thread (forking a threaded process could copy a held
lock), answers only its own user, and refuses (so the caller falls back) when
the caller runs another interpreter or ``PYTHONPATH`` or when a module it
imported has changed on disk since it started (it then starts itself again).

One launcher serves a unit: it holds an exclusive ``flock`` on
``storage/launcher.lock`` (taken on the file that is at that path, not one
replaced meanwhile; another launcher exits with code 75). The lock file is
opened without following a link (``O_NOFOLLOW``): a symbolic link in its place
is removed (never what it points to) and a lock file of the launcher's own made
there; anything else that is not a regular file (a folder, a FIFO) is reported
and the launcher exits with code 78 (:meth:`Launcher.take_lock`). A state-archive
import carries the socket and the lock file into the new folder as the same
files (:func:`reactorkit.core.launch_client.runtime_paths`); when either is no
longer at its path all the same (the folder replaced by other means), the
launcher starts itself again on the folder in its place (checked every second),
instead of going on deaf beside the one a task worker would start there.

Run it with ``pio launcher`` (``pio worker`` starts one when none answers).
"""

from __future__ import annotations

import errno
import fcntl
import importlib
import importlib.abc
import json
import os
import selectors
import signal
import socket
import stat
import struct
import sys
import threading
import time
from typing import Any, NoReturn

from reactorkit.core.launch_client import ANOTHER_LAUNCHER, LOCK_NAME, QUIET_LOCK_ENV, SOCKET_NAME, UNUSABLE_LOCK

# the framework, imported once in the launcher; the built-in jobs' modules are added from the CLI index
FRAMEWORK = (
    "reactorkit.core.cli.main", "reactorkit.core.cli.index", "reactorkit.core.imports",
    "reactorkit.core.config", "reactorkit.core.paths", "reactorkit.core.clock", "reactorkit.core.logs",
    "reactorkit.core.mqtt", "reactorkit.core.outbox", "reactorkit.core.outbox_client",
    "reactorkit.core.job_registry", "reactorkit.core.job", "reactorkit.core.automation", "reactorkit.core.pid",
    "reactorkit.core.hardware", "reactorkit.core.hardware.simulated", "reactorkit.core.hardware.leases",
    "reactorkit.core.calibration_store", "reactorkit.core.storage_rows", "reactorkit.core.storage_index",
    "reactorkit.plugin",
    "setproctitle", "filelock", "sqlite3", "logging.handlers", "uuid", "json", "encodings.idna",
)
# never imported by the launcher: they start threads (BLAS) and would weigh on every job's memory;
# a job whose module needs them at import imports it (and them) after the fork
NOT_PRELOADED = frozenset({"numpy", "scipy", "pandas", "matplotlib"})
MAX_REQUEST_BYTES = 4 * 1024 * 1024
PARENT_ENV = "REACTORKIT_LAUNCHER_PARENT"
# a job's next waiting process is forked this long after its start (its imports would take CPU from the start)
WARM_RESPAWN_DELAY_S = 1.0
# the launcher starts again once its socket or lock file has been missing this long (seconds)
MISSING_RESTART_S = 2.0
LOCK_ATTEMPTS = 10  # opens of the lock file before one that is replaced each time is given up on


class _RefuseHeavy(importlib.abc.MetaPathFinder):
    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name.partition(".")[0] in NOT_PRELOADED:
            raise ImportError(f"{name} is not imported by the launcher")
        return None


def builtin_job_modules() -> list[str]:
    """Modules of the built-in jobs, runners and automations, from the CLI index (no plugin is loaded)."""
    from reactorkit.core.cli.index import get_index

    pid = os.fork()  # a stale index is rebuilt in a child: loading the plugins stays out of the launcher
    if pid == 0:
        try:
            get_index()
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    index = get_index()
    paths = [entry.get(key) for entry in index["jobs"].values() if entry.get("source") == "app"
             for key in ("job_class", "runner")]
    paths += [entry.get("automation_class") for named in index.get("automations", {}).values()
              for entry in named.values() if entry.get("source") == "app"]
    return sorted({p.partition(":")[0] for p in paths if p})


def warm_imports() -> dict[str, tuple[str, ...]]:
    """``job_name -> modules`` of the built-in jobs whose class asks for modules of their own
    (``BackgroundJob.launcher_preload``), for this unit's config; from the saved CLI index (none without one).

    A job whose module cannot be imported without numpy/scipy/pandas/matplotlib (:data:`NOT_PRELOADED`) gets
    none: it is forked as any other job. Never raises (an unreadable index or config: ``{}``).
    """
    from reactorkit.core import config as config_module
    from reactorkit.core.cli.index import _index_path
    from reactorkit.core.imports import resolve

    out: dict[str, tuple[str, ...]] = {}
    # a job class whose module needs numpy/scipy at import is not resolved here: they would start threads in
    # the launcher (which then could fork nothing) and weigh on every job
    guard = _RefuseHeavy()
    sys.meta_path.insert(0, guard)
    try:
        with open(_index_path()) as f:  # as saved by builtin_job_modules: never rebuilt here (no plugin is loaded)
            jobs = json.load(f)["jobs"]
        config = config_module.get_config()
        for name, entry in jobs.items():
            if entry.get("source") != "app" or not entry.get("job_class"):
                continue
            try:
                modules = tuple(resolve(entry["job_class"]).launcher_preload(config))
            except Exception:  # not a BackgroundJob, or its config is unreadable: forked as any job
                continue
            if modules:
                out[name] = modules
    except Exception:
        return {}
    finally:
        sys.meta_path.remove(guard)
        config_module.set_config(None)  # each job reads its own
    return out


def _import_all(modules: tuple[str, ...]) -> list[str]:
    """Import ``modules`` refusing numpy/scipy; returns those that failed."""
    failed = []
    guard = _RefuseHeavy()
    sys.meta_path.insert(0, guard)
    try:
        for name in modules:
            try:
                importlib.import_module(name)
            except Exception:
                failed.append(name)
    finally:
        sys.meta_path.remove(guard)
    return failed


def preload(modules: tuple[str, ...] | None = None) -> list[str]:
    """Import the framework and the built-in jobs' modules (or ``modules``), refusing numpy/scipy.

    Returns the modules that were not imported (their jobs import them after the fork).
    """
    if modules is None:
        modules = FRAMEWORK
        try:
            importlib.import_module("reactorkit.core.cli.index")
            modules = (*FRAMEWORK, *builtin_job_modules())
        except Exception:
            pass
    failed = _import_all(modules)
    _release_free_heap()
    import gc

    # what the launcher holds now is never garbage: a job's collections skip it, and do not copy the pages
    # they would visit (~10% of a forked job's CPU to ready)
    gc.freeze()
    return failed


def _release_free_heap() -> None:
    """Give the heap the imports freed back to the system (glibc ``malloc_trim``): a forked job's RSS
    counts every page of the launcher's, so ~1 MB less here is ~1 MB less in each job. No-op elsewhere."""
    import gc

    from reactorkit.core.processes import release_free_heap

    gc.collect()
    release_free_heap()


def _source_files() -> dict[str, int]:
    """``path -> mtime_ns`` of every imported reactorkit module (to notice edits on disk)."""
    out: dict[str, int] = {}
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if not path or not name.startswith("reactorkit"):
            continue
        try:
            out[path] = os.stat(path).st_mtime_ns
        except OSError:
            out[path] = -1
    return out


def _changed(files: dict[str, int]) -> bool:
    for path, mtime in files.items():
        try:
            if os.stat(path).st_mtime_ns != mtime:
                return True
        except OSError:
            if mtime != -1:
                return True
    return False


def _identity(path: str) -> tuple[int, int] | None:
    """``(st_dev, st_ino)`` of ``path`` (not followed if a link), or None when it does not exist."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


def _same_file(path: str, fd: int) -> bool:
    """True when ``path`` names the file open as ``fd`` (same device and inode)."""
    own = os.fstat(fd)
    return _identity(path) == (own.st_dev, own.st_ino)


class UnusableLock(OSError):
    """The unit's lock file (``storage/launcher.lock``) cannot be used: what is at its path is not a regular
    file nor a symbolic link (a folder, a FIFO …), it cannot be opened, locked or a link there removed, or it
    was replaced at every one of :data:`LOCK_ATTEMPTS` opens."""


def _thread_count() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return threading.active_count()


class Launcher:
    """The launcher of the unit whose state folder is ``root`` (``$DOT_PIOREACTOR``)."""

    def __init__(self, root: str) -> None:
        self.storage = os.path.join(root, "storage")
        os.makedirs(self.storage, exist_ok=True)
        self.path = os.path.join(self.storage, SOCKET_NAME)
        self.lock_path = os.path.join(self.storage, LOCK_NAME)
        self.children: dict[int, socket.socket | None] = {}
        self.attached: dict[socket.socket, int] = {}
        self.stopping = False
        self.restart = False
        self.warm_modules: dict[str, tuple[str, ...]] = {}
        self.warm: dict[str, tuple[int, socket.socket]] = {}  # job_name -> (pid, our end) of its waiting process
        self.wake_r = self.wake_w = -1
        self.respawn: dict[str, float] = {}  # job_name -> when to fork its next waiting process
        self.socket_id: tuple[int, int] | None = None  # (st_dev, st_ino) of the socket file bound

    # ---------------------------------------------------------------- serving
    def take_lock(self) -> Any:
        """The unit's lock file ``storage/launcher.lock``, open and held (exclusive ``flock``), or None when
        another launcher holds it.

        The path is opened with ``O_NOFOLLOW`` (created mode 0600 if missing), so the lock is never taken on,
        nor a file made at, what a link points to, inside the state folder or not. A symbolic link at the path
        (dangling, or to a file or folder anywhere) is removed (the link, not what it points to: ``unlink``
        does not follow it), said on stderr, and a lock file of the launcher's own made in its place. The lock
        is taken on the file that is at the path after the lock (same device and inode), not one replaced
        meanwhile; a path replaced at each of :data:`LOCK_ATTEMPTS` opens is given up on.

        Returns:
            The lock file (a binary file object; closing it releases the lock), or None.

        Raises:
            UnusableLock: a folder, FIFO or other non-regular file is at the path, or the file cannot be
                opened, locked, or a link there removed (the message says which and what to do).
        """
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
        for _ in range(LOCK_ATTEMPTS):
            try:
                fd = os.open(self.lock_path, flags, 0o600)
            except OSError as exc:
                if exc.errno == errno.ELOOP and self._remove_link():
                    continue
                if exc.errno == errno.EISDIR:
                    raise UnusableLock(exc.errno, f"{self.lock_path} is a folder, not the launcher's lock file: "
                                                  "remove it to let a launcher serve the unit") from None
                raise UnusableLock(exc.errno, f"{self.lock_path} cannot be opened: {exc.strerror}") from None
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                os.close(fd)
                raise UnusableLock(errno.EINVAL, f"{self.lock_path} is not a regular file: remove it to let a "
                                                 "launcher serve the unit")
            lock = os.fdopen(fd, "r+b", buffering=0)
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                lock.close()
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                    return None
                raise UnusableLock(exc.errno, f"{self.lock_path} cannot be locked: {exc.strerror}") from None
            if _same_file(self.lock_path, lock.fileno()):
                return lock
            lock.close()  # the file was replaced between the open and the lock: the one in its place is the unit's
        raise UnusableLock(errno.EAGAIN, f"{self.lock_path} was replaced at each of {LOCK_ATTEMPTS} attempts to "
                                         "lock it")

    def _remove_link(self) -> bool:
        """Remove the symbolic link at the lock path (not what it points to); False when none is there (the
        open's ELOOP had another cause).

        Raises:
            UnusableLock: the link cannot be removed (e.g. ``storage/`` is read-only).
        """
        try:
            if not stat.S_ISLNK(os.lstat(self.lock_path).st_mode):
                return False
            target = os.readlink(self.lock_path)
            os.unlink(self.lock_path)
        except FileNotFoundError:
            return True  # removed meanwhile (by another launcher): open again
        except OSError as exc:
            raise UnusableLock(exc.errno, f"{self.lock_path} is a symbolic link that cannot be removed "
                                          f"({exc.strerror}): remove it to let a launcher serve the unit") from None
        print(f"launcher: {self.lock_path} was a symbolic link (to {target}); removed, the launcher's own lock "
              "file is made in its place", file=sys.stderr, flush=True)
        return True

    def serve(self) -> int:
        """Bind, serve until SIGTERM/SIGINT; returns the exit code (:data:`ANOTHER_LAUNCHER`: another launcher
        holds the unit; :data:`UNUSABLE_LOCK`: its lock file cannot be used, see :meth:`take_lock`; said on stderr
        unless ``REACTORKIT_LAUNCHER_QUIET_LOCK`` is set, as :mod:`reactorkit.core.launcher_keeper` sets it once it
        has logged the fault)."""
        try:
            lock = self.take_lock()
        except UnusableLock as exc:
            if not os.environ.get(QUIET_LOCK_ENV):  # set by a keeper that has logged it already
                print(f"launcher: {exc.strerror}", file=sys.stderr, flush=True)
            return UNUSABLE_LOCK
        if lock is None:
            print(f"launcher: another launcher serves {self.path}", file=sys.stderr)
            return ANOTHER_LAUNCHER
        self.lock = lock
        failed = preload()
        self.warm_modules = warm_imports()
        _set_title(f"pio launcher {os.path.dirname(self.storage)}")
        if failed:
            print(f"launcher: not preloaded (jobs import them themselves): {', '.join(failed)}", file=sys.stderr)
        self.files = _source_files()
        self.executable, self.pythonpath = sys.executable, os.environ.get("PYTHONPATH", "")
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        staging = f"{self.path}.{os.getpid()}"
        old_umask = os.umask(0o177)
        try:
            self.listener.bind(staging)
        finally:
            os.umask(old_umask)
        self.listener.listen(64)
        os.replace(staging, self.path)  # the socket appears only once it accepts connections
        # the socket file's identity (fstat of the listener names the socket, not the file bound to it)
        self.socket_id = _identity(self.path)
        self.wake_r, self.wake_w = os.pipe()
        for fd in (self.wake_r, self.wake_w):
            os.set_blocking(fd, False)
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        signal.signal(signal.SIGHUP, self._stop)
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.listener, selectors.EVENT_READ, "listen")
        self.selector.register(self.wake_r, selectors.EVENT_READ, "wake")
        for name in self.warm_modules:
            self._spawn_warm(name)
        print(f"launcher: ready on {self.path} (pid {os.getpid()})", file=sys.stderr, flush=True)
        parent = int(os.environ.get(PARENT_ENV) or 0)  # set by the task worker that keeps this launcher
        missing_since: float | None = None
        try:
            while not self.stopping:
                if parent and os.getppid() != parent:  # the task worker is gone (even killed outright): so are we
                    break
                found = self._still_found()
                now = time.monotonic()
                missing_since = (missing_since or now) if found is None else None
                # (a path missing for a moment is a folder being swapped: starting again then would make the
                # folder anew in its place and fail the swap)
                if found is False or (missing_since is not None and now - missing_since >= MISSING_RESTART_S):
                    print("launcher: its socket or lock file is no longer in the unit's state folder (the folder "
                          "was replaced); starting again on the folder in its place", file=sys.stderr, flush=True)
                    self.restart = self.stopping = True
                    break
                timeout = min([1.0, *(max(0.0, due - time.monotonic()) for due in self.respawn.values())])
                for key, _ in self.selector.select(timeout=timeout):
                    if key.data == "listen":
                        self._accept()
                    elif key.data == "wake":
                        self._drain_wake()
                    else:
                        self._client_readable(key.fileobj)
                self._reap()
                self._respawn_warm()
        finally:
            self._close_listener()
            for _, ours in self.warm.values():  # the waiting processes see the end of their socket and leave
                ours.close()
            self.warm.clear()
        if self.restart:
            print("launcher: starting again", file=sys.stderr, flush=True)
            lock.close()
            os.execv(sys.executable, [sys.executable, "-m", "reactorkit.core.launcher"])
        return 0

    def _still_found(self) -> bool | None:
        """True while the unit's socket and lock paths are this launcher's own files; False when another file is
        in the place of either (the state folder was replaced without carrying them over); None when one is
        missing (for a moment while a folder is swapped by two renames, or removed)."""
        socket_id, lock_id = _identity(self.path), _identity(self.lock_path)
        if socket_id is None or lock_id is None:
            return None
        own = os.fstat(self.lock.fileno())
        return socket_id == self.socket_id and lock_id == (own.st_dev, own.st_ino)

    def _stop(self, signum: int, frame: Any) -> None:
        self.stopping = True

    def _close_listener(self) -> None:
        try:
            if self.socket_id is not None and _identity(self.path) == self.socket_id:  # ours, not a successor's
                os.unlink(self.path)
        except OSError:
            pass
        self.listener.close()

    def _drain_wake(self) -> None:
        try:
            while os.read(self.wake_r, 512):
                pass
        except BlockingIOError:
            pass

    def _reap(self) -> None:
        while self.children or self.warm:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            for name, (warm_pid, ours) in list(self.warm.items()):
                if warm_pid == pid:  # a waiting process died: its job is forked as any other until the next start
                    ours.close()
                    del self.warm[name]
            conn = self.children.pop(pid, None)
            if conn is not None:
                self.attached.pop(conn, None)
                try:
                    conn.sendall(f"exit {os.waitstatus_to_exitcode(status)}\n".encode())
                except OSError:
                    pass
                self._drop(conn)

    def _drop(self, conn: socket.socket) -> None:
        try:
            self.selector.unregister(conn)
        except (KeyError, ValueError):
            pass
        conn.close()

    def _client_readable(self, conn: socket.socket) -> None:
        try:
            data = conn.recv(256)
        except OSError:
            data = b""
        if data:
            return
        pid = self.attached.pop(conn, None)  # the caller is gone: so goes its job
        if pid is not None and pid in self.children:
            self.children[pid] = None
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._drop(conn)

    # -------------------------------------------------------------- requests
    def _accept(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        fds: list[int] = []
        try:
            conn.settimeout(2.0)
            uid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))[1]
            if uid != os.getuid():
                raise PermissionError("caller is another user")
            request, fds = self._read_request(conn)
            refusal = self._refusal(request, fds)
            if refusal:
                conn.sendall(f"refused {refusal}\n".encode())
                conn.close()
                return
            name = str(request["argv"][2])
            pid = self._hand_to_warm(name, request, fds)
            if pid is None:
                pid = self._fork(conn, request, fds)
        except (OSError, ValueError) as exc:
            try:
                conn.sendall(f"refused {exc}\n".encode())
            except OSError:
                pass
            conn.close()
            return
        finally:
            for fd in fds:
                try:
                    os.close(fd)
                except OSError:
                    pass
        try:
            conn.sendall(f"pid {pid}\n".encode())
        except OSError:
            pass
        conn.setblocking(False)
        self.children[pid] = conn
        if not request.get("detach"):
            self.attached[conn] = pid
        self.selector.register(conn, selectors.EVENT_READ, "client")
        if name in self.warm_modules and name not in self.warm:  # ready for the next start, once this one is
            self.respawn.setdefault(name, time.monotonic() + WARM_RESPAWN_DELAY_S)

    def _read_request(self, conn: socket.socket) -> tuple[dict[str, Any], list[int]]:
        data, fds, _, _ = socket.recv_fds(conn, 65536, 3)
        if len(data) < 4:
            raise ValueError("short request")
        (size,) = struct.unpack(">I", data[:4])
        if size > MAX_REQUEST_BYTES:
            raise ValueError("request too large")
        body = data[4:]
        while len(body) < size:
            chunk = conn.recv(min(65536, size - len(body)))
            if not chunk:
                raise ValueError("truncated request")
            body += chunk
        return json.loads(body), list(fds)

    def _refusal(self, request: dict[str, Any], fds: list[int]) -> str:
        if len(fds) != 3:
            return "stdin, stdout and stderr were not passed"
        if request.get("executable") != self.executable or request.get("pythonpath", "") != self.pythonpath:
            return "the caller runs another interpreter or PYTHONPATH"
        argv = request.get("argv") or []
        if len(argv) < 3 or argv[1] != "run":
            return "only `pio run <job>` is launched"
        if _changed(self.files):
            print("launcher: source changed on disk", file=sys.stderr, flush=True)
            self.restart = self.stopping = True
            return "the launcher's code changed on disk; it is starting again"
        if _thread_count() != 1:
            return "the launcher has started a thread; forking it is not safe"
        return ""

    def _spawn_warm(self, name: str) -> None:
        """Fork the process that waits, with ``name``'s own modules imported, to become its next job.

        Never raises: when the fork fails (the unit's process or memory limit), no process is kept and the
        job is forked as any other at its next start (which tries again for the one after).
        """
        if _thread_count() != 1:
            return
        try:
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        except OSError:
            return
        try:
            pid = os.fork()
        except OSError as exc:
            ours.close()
            theirs.close()
            print(f"launcher: no process kept for {name}: {exc}", file=sys.stderr, flush=True)
            return
        if pid == 0:
            try:
                ours.close()
                self._leave_launcher()
                _import_all(self.warm_modules[name])  # (no gc.collect: it would copy the launcher's pages it visits)
                _set_title(f"pio launcher: ready for {name}")
                request, fds = self._read_request(theirs)
                theirs.close()
            except BaseException:  # noqa: BLE001 - the launcher has stopped (or sent nothing usable): no job, no error
                _exit_child(0)
            self._run_child(None, request, fds)
        theirs.close()
        self.warm[name] = (pid, ours)

    def _respawn_warm(self) -> None:
        now = time.monotonic()
        for name, due in list(self.respawn.items()):
            if due <= now and not self.stopping:
                del self.respawn[name]
                if name not in self.warm:
                    self._spawn_warm(name)

    def _hand_to_warm(self, name: str, request: dict[str, Any], fds: list[int]) -> int | None:
        """Send the request to ``name``'s waiting process, which becomes the job; its pid, or None
        (no such process, or it is gone: the job is forked as any other)."""
        warm = self.warm.pop(name, None)
        if warm is None:
            return None
        pid, ours = warm
        body = json.dumps(request).encode()
        message = struct.pack(">I", len(body)) + body
        try:
            ours.settimeout(2.0)
            sent = socket.send_fds(ours, [message], fds)
            if sent < len(message):  # (once all is sent, the process may have read it and closed its end)
                ours.sendall(message[sent:])
        except OSError:
            return None
        finally:
            ours.close()
        return pid

    def _fork(self, conn: socket.socket, request: dict[str, Any], fds: list[int]) -> int:
        pid = os.fork()
        if pid == 0:
            self._run_child(conn, request, fds)
        return pid

    def _run_child(self, conn: socket.socket | None, request: dict[str, Any], fds: list[int]) -> NoReturn:
        """In a forked child: become the requested job, run it and leave with its exit code (1 and the
        traceback on stderr if it raised). Never returns into the launcher's loop."""
        code = 1
        try:
            self._become_job(conn, request, fds)
            code = _run_cli(request["argv"])
        except BaseException:  # noqa: BLE001 - a child must never return into the launcher
            try:
                import traceback

                traceback.print_exc()
            except Exception:
                pass
        finally:
            _exit_child(code)

    def _leave_launcher(self) -> None:
        """In a forked child: the launcher's signal handlers, sockets, wake-up pipe and lock are not its own."""
        signal.set_wakeup_fd(-1)
        for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD):
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        self.selector.close()
        socks = (self.listener, *self.attached, *(c for c in self.children.values() if c is not None),
                 *(ours for _, ours in self.warm.values()))
        for sock in socks:
            try:
                sock.close()
            except OSError:
                pass
        for fd in (self.wake_r, self.wake_w):
            if fd >= 0:
                os.close(fd)
        self.wake_r = self.wake_w = -1
        self.lock.close()  # the launcher's lock is not the job's

    def _become_job(self, conn: socket.socket | None, request: dict[str, Any], fds: list[int]) -> None:
        if conn is not None:
            conn.close()
        if self.wake_r >= 0:  # (a waiting process has left the launcher already)
            self._leave_launcher()
        os.setsid()
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        for fd in set(fds):
            if fd > 2:
                os.close(fd)
        argv = [str(a) for a in request["argv"]]
        _set_title(" ".join(["pio", *argv[1:]]))  # before the environment changes (the title's memory follows it)
        os.environ.clear()
        os.environ.update({str(k): str(v) for k, v in request.get("env", {}).items()})
        os.chdir(request.get("cwd") or "/")
        if isinstance(request.get("umask"), int):
            os.umask(request["umask"])
        sys.argv = argv
        _reopen_std_streams()
        _reset_process_state()


def _exit_child(code: int) -> NoReturn:
    """Leave a forked child at once with ``code``: stdout and stderr flushed, no interpreter teardown (the
    launcher's objects it inherited are not its own to finalise)."""
    from reactorkit.core.cli.run import leave

    leave(code, close_logs=False)


def _set_title(title: str) -> None:
    """What ``ps`` shows for this process."""
    try:
        import setproctitle

        setproctitle.setproctitle(title)
    except ImportError:
        pass


def _reopen_std_streams() -> None:
    """New ``sys.stdin/stdout/stderr`` on fds 0–2 (now the caller's), buffered as a fresh interpreter would."""
    import io

    unbuffered = bool(os.environ.get("PYTHONUNBUFFERED"))
    for fd, name, mode in ((0, "stdin", "r"), (1, "stdout", "w"), (2, "stderr", "w")):
        try:
            raw = io.FileIO(fd, mode, closefd=False)
        except OSError:
            continue
        interactive = raw.isatty()
        if mode == "r":
            stream: Any = io.TextIOWrapper(io.BufferedReader(raw), line_buffering=interactive)
        else:
            buffered = raw if unbuffered else io.BufferedWriter(raw)
            stream = io.TextIOWrapper(buffered, line_buffering=interactive or fd == 2,
                                      write_through=unbuffered or fd == 2, errors="backslashreplace" if fd == 2 else None)
        setattr(sys, name, stream)
        setattr(sys, f"__{name}__", stream)


def _reset_process_state() -> None:
    """Forget anything a module cached from the launcher's environment (the job reads its own)."""
    from reactorkit.core import clock, config

    config.set_config(None)
    clock._clock = None


def _run_cli(argv: list[str]) -> int:
    from reactorkit.core.cli.main import pio

    try:
        pio.main(args=argv[1:], prog_name="pio", standalone_mode=True)
    except SystemExit as exc:
        if exc.code is None:
            return 0
        if isinstance(exc.code, int):
            return exc.code
        print(exc.code, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


def main() -> None:
    """``python -m reactorkit.core.launcher``: serve the unit of ``$DOT_PIOREACTOR``."""
    from reactorkit.core.paths import dot_pioreactor

    sys.exit(Launcher(str(dot_pioreactor())).serve())


if __name__ == "__main__":
    main()
