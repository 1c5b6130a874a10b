"""A cluster's supervisord that has exited but waits for init to reap it (a zombie) counts as stopped."""

import os
import subprocess
import sys
import time

from reactorkit.core.localcluster import supervisor
from reactorkit.core.localcluster.layout import ClusterLayout


def a_zombie():
    """An exited child not reaped yet: what a killed, daemonised supervisord is until pid 1 reaps it."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with open(f"/proc/{proc.pid}/stat", "rb") as fh:
            if fh.read().rsplit(b")", 1)[1].split()[0] == b"Z":
                return proc
        time.sleep(0.01)
    raise AssertionError("the child did not exit")


def test_a_supervisord_that_is_a_zombie_is_not_running_and_stop_returns_at_once(tmp_path):
    layout = ClusterLayout(root=tmp_path)
    proc = a_zombie()
    try:
        (tmp_path / "supervisord.pid").write_text(str(proc.pid))
        assert not supervisor.is_running(layout)
        supervisor.stop(layout)  # nothing to wait for
        (tmp_path / "supervisord.pid").write_text(str(os.getpid()))
        assert supervisor.is_running(layout)  # a live process is
    finally:
        proc.wait()
