"""Ask the unit's job launcher to start a job (the client side of :mod:`reactorkit.core.launcher`).

Kept to the standard library's light modules (no pathlib, no click, nothing of
reactorkit but :mod:`reactorkit.core.processes`), because ``pio run <job>`` imports only this before handing the job
to the launcher.

Protocol (a Unix stream socket at ``$DOT_PIOREACTOR/storage/launcher.sock``,
owner-only): the client sends a 4-byte big-endian length and a JSON request
``{"argv", "env", "cwd", "executable", "pythonpath", "detach", "umask"}``; the first
``sendmsg`` carries the client's stdin, stdout and stderr as ``SCM_RIGHTS``. The
launcher answers one line, ``pid <n>`` (the job's process) or ``refused <reason>``,
and, when the job exits, ``exit <code>`` (negative: killed by that signal). An
attached client that goes away before its job has exited takes the job with it
(the launcher sends SIGKILL), as a ``pio run`` process killed with its job would.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import sys
import time

from reactorkit.core.processes import pid_alive

SOCKET_NAME = "launcher.sock"
LOCK_NAME = "launcher.lock"  # held (flock) by the launcher serving the unit
ANOTHER_LAUNCHER = 75  # launcher exit code: another launcher holds the unit's lock (EX_TEMPFAIL, sysexits.h)
UNUSABLE_LOCK = 78  # launcher exit code: the unit's lock file cannot be used (a folder, …) (EX_CONFIG, sysexits.h)
QUIET_LOCK_ENV = "REACTORKIT_LAUNCHER_QUIET_LOCK"
"""Set (to ``1``) in a launcher's environment by :mod:`reactorkit.core.launcher_keeper` once it has logged the
unusable lock file: that launcher does not print the error again when it exits with :data:`UNUSABLE_LOCK`."""
FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)


def socket_path(env: dict[str, str] | None = None) -> str:
    """``$DOT_PIOREACTOR/storage/launcher.sock`` of the unit named by ``env`` (default ``os.environ``)."""
    env = os.environ if env is None else env
    root = env.get("DOT_PIOREACTOR") or os.path.join(os.path.expanduser("~"), ".pioreactor")
    return os.path.join(root, "storage", SOCKET_NAME)


def runtime_paths(env: dict[str, str] | None = None) -> list[str]:
    """The files of ``$DOT_PIOREACTOR`` a running launcher is known by: its socket and its lock file
    (``storage/launcher.sock``, ``storage/launcher.lock``). They are the launcher's while it runs: whatever
    replaces the state folder (a state-archive import) must carry these very files (same inodes) into the
    new folder, or the launcher is no longer found there and another one would be started beside it."""
    sock = socket_path(env)
    return [sock, os.path.join(os.path.dirname(sock), LOCK_NAME)]


def enabled(env: dict[str, str] | None = None) -> bool:
    """False when ``$REACTORKIT_LAUNCHER`` is ``0`` (always spawn a fresh interpreter)."""
    env = os.environ if env is None else env
    return env.get("REACTORKIT_LAUNCHER", "1") not in ("0", "false", "no", "off")


class Launched:
    """A job the launcher started: its ``pid`` and the connection that reports its exit."""

    def __init__(self, pid: int, sock: socket.socket) -> None:
        self.pid = pid
        self.sock = sock
        self._buffer = b""
        self.returncode: int | None = None

    def wait(self, timeout: float | None = None) -> int | None:
        """The job's exit code (negative: the signal that killed it), or None if still running at ``timeout``.

        If the launcher itself goes away, waits for the process to vanish and reports 0.
        """
        if self.returncode is not None:
            return self.returncode
        deadline = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self._buffer:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            if remaining == 0.0:
                return None
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(256)
            except socket.timeout:
                return None
            except OSError:
                chunk = b""
            if not chunk:
                return self._wait_orphan(deadline)
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        word, _, value = line.decode().partition(" ")
        self.returncode = int(value) if word == "exit" else 0
        return self.returncode

    def _wait_orphan(self, deadline: float | None) -> int | None:
        while pid_alive(self.pid):
            if deadline is not None and time.monotonic() >= deadline:
                return None
            time.sleep(0.05)
        self.returncode = 0
        return 0

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def launch(argv: list[str], *, env: dict[str, str] | None = None, cwd: str | None = None,
           fds: tuple[int, int, int] = (0, 1, 2), detach: bool = False, timeout: float = 5.0) -> Launched | None:
    """Start ``argv`` (``["pio", "run", job, …]``) through the unit's launcher.

    Args:
        env: The job's environment (default ``os.environ``); also names the unit (``DOT_PIOREACTOR``).
        cwd: The job's working directory (default this process's).
        fds: The job's stdin, stdout and stderr (file descriptors of this process).
        detach: The job outlives this connection (else it is killed if the connection drops first).

    Returns:
        The :class:`Launched` job, or None when no launcher answers, it refuses (another
        interpreter, code changed since it started …) or launching is disabled: then start
        the job the ordinary way.
    """
    env = dict(os.environ if env is None else env)
    if not enabled(env):
        return None
    path = socket_path(env)
    if len(path.encode()) >= 104 or not os.path.exists(path):
        return None
    umask = os.umask(0o022)
    os.umask(umask)
    request = json.dumps({
        "argv": list(argv), "env": env, "cwd": cwd or os.getcwd(), "executable": sys.executable,
        "pythonpath": env.get("PYTHONPATH", ""), "detach": detach, "umask": umask,
    }).encode()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(path)
        payload = struct.pack(">I", len(request)) + request
        sent = socket.send_fds(sock, [payload], list(fds))
        if sent < len(payload):
            sock.sendall(payload[sent:])
        line = b""
        while not line.endswith(b"\n"):
            chunk = sock.recv(256)
            if not chunk:
                raise OSError("launcher closed the connection")
            line += chunk
    except OSError:
        sock.close()
        return None
    word, _, value = line.decode().strip().partition(" ")
    if word != "pid":
        sock.close()
        return None
    return Launched(int(value), sock)


def run_attached(argv: list[str]) -> int | None:
    """Run ``argv`` through the launcher as if in this process: signals forwarded, exit code returned.

    Returns None when the launcher cannot be used (the caller runs the job itself).
    """
    job = launch(argv)
    if job is None:
        return None

    def forward(signum: int, frame: object) -> None:
        try:
            os.kill(job.pid, signum)
        except ProcessLookupError:
            pass

    for signum in FORWARDED_SIGNALS:
        signal.signal(signum, forward)
    code = job.wait()
    job.close()
    return code


def exit_like(code: int) -> None:
    """Leave this process as the job left: its exit code, or killed by the same signal."""
    if code < 0:
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
        time.sleep(1)
        code = 128 - code
    sys.stdout.flush()
    os._exit(code)
