"""Keep the unit's job launcher running beside the task worker (``pio worker``).

The task worker starts ``python -m reactorkit.core.launcher`` when no launcher
answers on the unit's socket, starts it again if it exits, and stops it when
the worker stops. A launcher run by something else (``pio launcher`` under
systemd or supervisord) is left alone.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from typing import Any

from reactorkit.core.launch_client import enabled, socket_path

ANOTHER_LAUNCHER = 75  # the launcher's exit code when another one holds the unit


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
    """

    def __init__(self, env: dict[str, str] | None = None, check_s: float = 5.0) -> None:
        self.env = dict(os.environ if env is None else env)
        self.check_s = check_s
        self.proc: subprocess.Popen | None = None
        self.checks = 0  # times it has looked for a launcher answering on the unit's socket
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> "LauncherKeeper":
        if not enabled(self.env):
            return self
        self._thread = threading.Thread(target=self._run, name="launcher-keeper", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        backoff = 0.5
        while not self._stop.is_set():
            answers = _answers(socket_path(self.env))
            self.checks += 1
            if answers:
                self._stop.wait(self.check_s)
                continue
            env = {**self.env, "REACTORKIT_LAUNCHER_PARENT": str(os.getpid())}  # it ends when this process does
            self.proc = subprocess.Popen([sys.executable, "-m", "reactorkit.core.launcher"], env=env,
                                         stdin=subprocess.DEVNULL)
            code = self.proc.wait()
            if self._stop.is_set():
                return
            self._stop.wait(self.check_s if code == ANOTHER_LAUNCHER else backoff)
            backoff = min(backoff * 2, 10.0)

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
