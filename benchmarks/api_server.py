"""The HTTP server of the API benchmarks: ``pio serve`` (or a bare gunicorn) on a free port, started and waited for
until every one of its worker processes has loaded the app, and stopped.

gunicorn's workers load the app after the fork, each in its own time, and on a busy machine one can answer while
its sibling is still importing; a throughput run started then finds one worker to accept every connection, which
keep-alive keeps on one core for the whole run. So a server here counts as started when each worker has marked
itself booted (a gunicorn ``post_worker_init`` hook, :func:`boot_marking`), not when it first answers.

Used by ``api_time_series.py`` and ``api_light_routes.py`` (imported as a neighbour: ``benchmarks/`` is the
script's folder).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 free now (the OS's pick)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


#: a gunicorn config file's hook: each worker, once it has loaded the app, leaves a file named by its pid in
#: ``$RK_BENCH_BOOTED`` (:func:`boot_marking`)
_BOOT_HOOK = """import os, pathlib


def post_worker_init(worker):
    pathlib.Path(os.environ["RK_BENCH_BOOTED"], str(worker.pid)).touch()
"""


def boot_marking(env: dict[str, str], root: Path) -> dict[str, str]:
    """``env`` for a gunicorn (or ``pio serve``) whose workers each mark when they have loaded the app, for
    :func:`wait_booted` (see the module doc). Writes the hook's config file and an empty marks folder in ``root``
    (an earlier server's marks removed: a pid may be used again)."""
    hook, folder = root / "gunicorn_boot_hook.py", root / "booted"
    hook.write_text(_BOOT_HOOK)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    return {**env, "GUNICORN_CMD_ARGS": f"--config {hook}", "RK_BENCH_BOOTED": str(folder)}


def wait_booted(proc: subprocess.Popen, env: dict[str, str], workers: int, timeout: float = 60.0) -> bool:
    """Wait until ``workers`` worker processes of the gunicorn ``proc`` (started with :func:`boot_marking`'s
    ``env``; gunicorn forks them one after another) have each loaded the app; False if ``proc`` stopped or
    ``timeout`` (s) passed first."""
    folder = Path(env["RK_BENCH_BOOTED"])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        except OSError:
            children = []
        if len(children) >= workers and all((folder / pid).exists() for pid in children):
            return True
        time.sleep(0.1)
    return False


class DidNotStart(SystemExit):
    """A process of a benchmark did not start; the message (``"{name} did not start; see {log}"``) is what the script
    exits with. ``log`` (a :class:`~pathlib.Path`) is the file that holds its output: the script keeps the folder
    holding it instead of deleting it (:func:`remove_unless_kept`)."""

    def __init__(self, name: str, log: Path) -> None:
        super().__init__(f"{name} did not start; see {log}")
        self.log = log


def remove_unless_kept(root: Path, keep: bool, failed: DidNotStart | None) -> None:
    """Delete a benchmark's temporary folder ``root``, unless asked to keep it (``keep``: the script's ``--keep``) or a
    process it started there did not start (``failed``: its log is in ``root``); a kept folder is named on stderr."""
    if failed is not None:
        print(f"(kept {root}: {failed.log.name} there says why the start failed)", file=sys.stderr, flush=True)
    elif keep:
        print(f"(kept {root})", flush=True)
    else:
        shutil.rmtree(root, ignore_errors=True)


def start_booted(command: list[str], env: dict[str, str], root: Path, log_name: str, workers: int, name: str,
                 timeout: float = 60.0) -> subprocess.Popen:
    """Start a gunicorn server (``command``, its own or ``pio serve``'s) and return it once ``workers`` of its
    worker processes have each loaded the app.

    Args:
        command: The server's command line (it binds the port itself).
        env: Its environment (the boot marks are added, :func:`boot_marking`).
        root: A folder for the boot hook, its marks and the log.
        log_name: The file in ``root`` its output (stdout and stderr) is appended to.
        workers: How many worker processes to wait for.
        name: The server as the failure message names it (``"pio serve"``, ``"gunicorn"``).
        timeout: Seconds to wait for the workers.

    Raises:
        DidNotStart: (a :class:`SystemExit`) ``"{name} did not start; see {root}/{log_name}"``, when the server
            stopped or ``timeout`` passed first (the server killed).
    """
    env = boot_marking(env, root)
    with open(root / log_name, "ab") as log:
        proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    if not wait_booted(proc, env, workers, timeout):
        proc.kill()
        raise DidNotStart(name, root / log_name)
    return proc


def start_pio_serve(env: dict[str, str], root: Path, options: list[str], workers: int, log_name: str = "serve.log",
                    name: str = "pio serve") -> tuple[subprocess.Popen, int]:
    """``pio serve --port PORT *options`` on a free port, with this interpreter, once ``workers`` of its worker
    processes have each loaded the app (``workers``: the number ``options`` ask for, else :func:`serve_default`).

    Returns:
        ``(process, port)``.

    Raises:
        DidNotStart: it did not start (:func:`start_booted`; ``log_name``, ``name`` as there).
    """
    port = free_port()
    command = [sys.executable, "-m", "reactorkit.core.cli.main", "serve", "--port", str(port), *options]
    return start_booted(command, env, root, log_name, workers, name), port


def serve_default(option: str) -> object:
    """The default of ``pio serve``'s ``option`` (``"workers"``, ``"threads"``)."""
    from reactorkit.builtin_plugins.system.serve import serve

    return next(p.default for p in serve.params if p.name == option)


def stop(proc: subprocess.Popen) -> None:
    """Stop a process: SIGTERM, then SIGKILL if it has not exited 10 s later."""
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
