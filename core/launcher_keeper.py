"""Keep the unit's job launcher running beside the task worker (``pio worker``).

The task worker starts ``python -m reactorkit.core.launcher`` when no launcher
answers on the unit's socket, starts it again if it exits, and stops it when
the worker stops. A launcher run by something else (``pio launcher`` under
systemd or supervisord) is left alone.

A launcher that exits with :data:`UNUSABLE_LOCK` (78: ``storage/launcher.lock`` is a folder, or a file that
cannot be opened or locked) meets a fault of the unit's state folder, not one that a quick restart fixes: the
keeper logs it once, with what to do, and tries again every :data:`UNUSABLE_LOCK_RETRY_S` (saying it again
every :data:`UNUSABLE_LOCK_REMIND_EVERY` failed attempts); the launchers it starts meanwhile do not print the
error again (:data:`QUIET_LOCK_ENV`). Once a launcher answers again the keeper logs that it runs again. Jobs
start without it meanwhile (``pio run`` starts the job itself when no launcher answers).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from typing import Any, Callable

from reactorkit.core.launch_client import (ANOTHER_LAUNCHER, LOCK_NAME, QUIET_LOCK_ENV, UNUSABLE_LOCK, enabled,
                                          socket_path)

UNUSABLE_LOCK_RETRY_S = 300.0
"""Seconds between attempts to start a launcher while ``storage/launcher.lock`` cannot be used (exit code
:data:`UNUSABLE_LOCK`): it needs someone to remove or fix it, so retrying at the restart backoff (at most 10 s)
only repeated the same error; 5 minutes keeps the recovery after a fix within minutes at 288 attempts a day."""
UNUSABLE_LOCK_REMIND_EVERY = 12
"""Failed attempts (at :data:`UNUSABLE_LOCK_RETRY_S`, so about an hour) between two reminders that the lock file
still cannot be used."""
RESTART_BACKOFF_S = (0.5, 10.0)  # seconds before restarting a launcher that exited (first, most; doubles each time)
ANSWER_POLL_S = 0.2  # seconds between looks for an answer from a launcher started after an unusable lock


def _answers(path: str) -> bool:
    import socket

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(1.0)
        sock.connect(path)
        return True
    except OSError:
        return False
    finally:
        sock.close()


class LauncherKeeper:
    """Starts and restarts a launcher child process; :meth:`stop` ends it.

    Args:
        env: Environment of the launcher (default ``os.environ``).
        check_s: Seconds between checks of a launcher that is not ours.
        popen: Starts a launcher (``subprocess.Popen``'s signature; tests pass a fake).
        answers: ``answers(socket_path) -> bool``, True when a launcher answers there (tests pass a fake).
        wait: ``wait(seconds) -> bool``, waits between attempts, True when the keeper is stopped (default: the
            stop event's ``wait``; tests pass one that records the seconds asked for).
        log: Logger of the keeper's messages (default: ``reactorkit.launcher_keeper``, made on the first message
            for stderr and the unit's log file, see :func:`reactorkit.core.logs.create_logger`).
    """

    def __init__(self, env: dict[str, str] | None = None, check_s: float = 5.0, *,
                 popen: Callable[..., Any] = subprocess.Popen, answers: Callable[[str], bool] | None = None,
                 wait: Callable[[float], bool] | None = None, log: logging.Logger | None = None) -> None:
        self.env = dict(os.environ if env is None else env)
        self.check_s = check_s
        self.proc: subprocess.Popen | None = None
        self.checks = 0  # times it has looked for a launcher answering on the unit's socket
        self.lock_failures = 0  # consecutive exits with UNUSABLE_LOCK since the last launcher that answered
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._popen = popen
        self._answers = answers or _answers
        self._wait = wait or self._stop.wait
        self._log = log

    def start(self) -> "LauncherKeeper":
        if not enabled(self.env):
            return self
        self._thread = threading.Thread(target=self._run, name="launcher-keeper", daemon=True)
        self._thread.start()
        return self

    def _logger(self) -> logging.Logger:
        if self._log is None:
            try:
                from reactorkit.core.config import get_unit_name
                from reactorkit.core.logs import create_logger

                self._log = create_logger("launcher_keeper", unit=get_unit_name(), experiment="$experiment")
            except Exception:  # no readable config: the message still reaches stderr
                self._log = logging.getLogger("reactorkit.launcher_keeper")
        return self._log

    def _answered(self) -> None:
        """A launcher answers on the unit's socket: say so once after an unusable lock file."""
        if self.lock_failures:
            self._logger().info("the launcher runs again: %s can be used now (after %d failed attempts)",
                                self._lock_path(), self.lock_failures)
            self.lock_failures = 0

    def _lock_path(self) -> str:
        return os.path.join(os.path.dirname(socket_path(self.env)), LOCK_NAME)

    def _lock_fault(self) -> str:
        """What is wrong with the lock file, as far as ``lstat`` tells (the launcher's stderr line says more)."""
        import stat

        try:
            mode = os.lstat(self._lock_path()).st_mode
        except FileNotFoundError:
            return "cannot be made (the storage/ folder is read-only or not the unit's user's)"
        except OSError as exc:
            return f"cannot be looked at ({exc.strerror})"
        if stat.S_ISDIR(mode):
            return "is a folder"
        if not stat.S_ISREG(mode) and not stat.S_ISLNK(mode):
            return "is not a regular file"
        return "cannot be opened or locked (its owner or mode, or a read-only storage/ folder)"

    def _unusable_lock(self) -> None:
        self.lock_failures += 1
        minutes = f"{UNUSABLE_LOCK_RETRY_S / 60:g} min"
        if self.lock_failures == 1:
            self._logger().error(
                "the launcher cannot start: its lock file %s %s. Remove it, or fix its owner and mode, to let a "
                "launcher serve the unit; trying again every %s. Jobs start without the launcher meanwhile.",
                self._lock_path(), self._lock_fault(), minutes)
        elif self.lock_failures % UNUSABLE_LOCK_REMIND_EVERY == 0:
            self._logger().warning("the launcher still cannot start (%d attempts): its lock file %s %s; remove or "
                                   "fix it. Trying again every %s.", self.lock_failures, self._lock_path(),
                                   self._lock_fault(), minutes)

    def _wait_for_exit(self, proc: Any) -> int:
        """The launcher's exit code; after an unusable lock file, says when it answers meanwhile."""
        path = socket_path(self.env)
        while self.lock_failures and not self._stop.is_set():
            try:
                return proc.wait(timeout=ANSWER_POLL_S)
            except subprocess.TimeoutExpired:
                if self._answers(path):
                    self._answered()
        return proc.wait()

    def _run(self) -> None:
        backoff = RESTART_BACKOFF_S[0]
        while not self._stop.is_set():
            answers = self._answers(socket_path(self.env))
            self.checks += 1
            if answers:
                self._answered()
                if self._wait(self.check_s):
                    return
                continue
            env = {**self.env, "REACTORKIT_LAUNCHER_PARENT": str(os.getpid())}  # it ends when this process does
            if self.lock_failures:
                env[QUIET_LOCK_ENV] = "1"  # the error was logged: not printed again at each attempt
            self.proc = self._popen([sys.executable, "-m", "reactorkit.core.launcher"], env=env,
                                    stdin=subprocess.DEVNULL)
            code = self._wait_for_exit(self.proc)
            if self._stop.is_set():
                return
            if code == UNUSABLE_LOCK:
                self._unusable_lock()
                delay = UNUSABLE_LOCK_RETRY_S
            else:
                if self.lock_failures:  # it got past the lock file, then exited (another launcher holds it, …)
                    self._logger().info("the launcher's lock file %s can be used again (the launcher exited with "
                                        "code %d)", self._lock_path(), code)
                    self.lock_failures = 0
                delay = self.check_s if code == ANOTHER_LAUNCHER else backoff
                backoff = min(backoff * 2, RESTART_BACKOFF_S[1])
            if self._wait(delay):
                return

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the launcher this keeper started (its jobs keep running)."""
        self._stop.set()
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
        if self._thread is not None:
            self._thread.join(timeout)


def keep_launcher(**kwargs: Any) -> LauncherKeeper:
    """Start a :class:`LauncherKeeper` for this unit."""
    return LauncherKeeper(**kwargs).start()
