"""Functions the unit's rq worker (``pio worker``) runs for ``/unit_api`` async routes.

Each returns the task's ``result`` (JSON-able) or raises :class:`TaskFailed`,
whose ``error``/``cause``/``remediation`` are stored in the rq job's ``meta``
so that ``GET /unit_api/task_results/{task_id}`` can report them (§8).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterable

# §8: the only variables a caller may set for a job started over HTTP
ENV_WHITELIST = frozenset({
    "EXPERIMENT", "JOB_SOURCE", "TESTING", "HOSTNAME", "HARDWARE", "ACTIVE", "FIRMWARE", "DEBUG", "MODEL_NAME",
    "MODEL_VERSION", "SKIP_PLUGINS", "DOT_PIOREACTOR", "GLOBAL_CONFIG", "LOCAL_CONFIG", "HAT_PRESENT",
})
ALIVE_CHECK_S = 1.0  # §8: a started job counts as running if still alive after 1 s


class TaskFailed(RuntimeError):
    """A task's expected failure, reported as ``failed`` with ``error, cause, remediation``."""

    def __init__(self, error: str, *, cause: str | None = None, remediation: str | None = None) -> None:
        super().__init__(error)
        self.error = error
        self.cause = cause or error
        self.remediation = remediation

    def to_dict(self) -> dict[str, Any]:
        out = {"error": self.error, "cause": self.cause}
        if self.remediation:
            out["remediation"] = self.remediation
        return out


def fail(error: str, *, cause: str | None = None, remediation: str | None = None) -> TaskFailed:
    """Record ``error`` on the current rq job (if any) and return the exception to raise."""
    exc = TaskFailed(error, cause=cause, remediation=remediation)
    try:
        from rq import get_current_job

        job = get_current_job()
        if job is not None:
            job.meta["error"] = exc.to_dict()
            job.save_meta()
    except Exception:  # outside a worker (tests, direct calls) there is nothing to record
        pass
    return exc


# ------------------------------------------------------------------- job runs
def job_command(job_name: str, options: dict[str, Any] | None = None, args: Iterable[str] = (),
                config_overrides: Iterable[Iterable[str]] = (), flag_options: Iterable[str] = ()) -> list[str]:
    """``python -m reactorkit.core.cli.main run <job> …`` for the given request (§8).

    Options become flags: ``target_rpm: 200`` → ``--target-rpm 200``; ``None`` (or
    ``True`` for a ``flag`` option named in ``flag_options``) → the bare flag;
    ``False`` for such a flag → omitted. ``args`` are appended as given;
    ``config_overrides`` ``[[section, key, value], …]`` → ``--config-override section key value``.
    """
    flags = set(flag_options)
    cmd = [sys.executable, "-m", "reactorkit.core.cli.main", "run", job_name]
    for name, value in (options or {}).items():
        flag = "--" + str(name).replace("_", "-")
        if value is None or (name in flags and value is True):
            cmd.append(flag)
        elif name in flags and value is False:
            continue
        else:
            cmd.extend([flag, _cli_value(value)])
    for override in config_overrides:
        section, key, value = (str(v) for v in override)
        cmd.extend(["--config-override", section, key, value])
    cmd.extend(str(a) for a in args)
    return cmd


def _cli_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def job_environment(env: dict[str, Any] | None, base: dict[str, str] | None = None) -> dict[str, str]:
    """The worker's environment plus the whitelisted keys of ``env`` (others are ignored)."""
    out = dict(os.environ if base is None else base)
    for key, value in (env or {}).items():
        if key in ENV_WHITELIST and value is not None:
            out[key] = str(value)
    out.setdefault("JOB_SOURCE", "user")
    return out


def _output_path(job_name: str) -> Path:
    from reactorkit.core.paths import dot_pioreactor

    folder = dot_pioreactor() / "logs" / "api_jobs"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{job_name}.out"


def _last_line(path: Path) -> str:
    try:
        lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1] if lines else ""


def start_job(job_name: str, options: dict[str, Any] | None = None, env: dict[str, Any] | None = None,
              args: list[str] | None = None, config_overrides: list[list[str]] | None = None,
              alive_check_s: float = ALIVE_CHECK_S) -> dict[str, Any]:
    """Start ``pio run <job_name> …`` detached (own session; it outlives the worker).

    Returns:
        ``{"ok": True}`` when the process is still alive after ``alive_check_s`` (1 s).

    Raises:
        TaskFailed: the process exited early; ``cause`` is its last output line
            and the message names the exit code.
    """
    flag_options: list[str] = []
    try:
        from reactorkit.core.cli.index import get_index

        entry = get_index()["jobs"].get(job_name)
        if entry is not None:
            flag_options = [o["name"] for o in entry["cli_options"] if o["type"] == "flag"]
    except Exception:  # the CLI itself reports plugin trouble
        pass
    cmd = job_command(job_name, options, args or (), config_overrides or (), flag_options)
    out_path = _output_path(job_name)
    job_env = job_environment(env)
    with open(out_path, "wb") as out, open(os.devnull, "rb") as devnull:
        code = _launch_and_check(cmd, job_env, devnull.fileno(), out.fileno(), alive_check_s)
    if code is None:
        return {"ok": True}
    last = _last_line(out_path) or "(no output)"
    raise fail(f"{job_name} exited with code {code}.", cause=last,
               remediation=f"Run `pio run {job_name}` on the unit to see the full output.")


def _launch_and_check(cmd: list[str], env: dict[str, str], stdin: int, out: int, alive_check_s: float) -> int | None:
    """Start ``cmd`` detached, through the unit's launcher when one runs (else a fresh interpreter);
    its exit code if it ended within ``alive_check_s``, else None."""
    from reactorkit.core.launch_client import launch

    launched = launch(["pio", *cmd[3:]], env=env, fds=(stdin, out, out), detach=True)
    if launched is not None:
        try:
            return launched.wait(alive_check_s)
        finally:
            launched.close()
    proc = subprocess.Popen(cmd, env=env, stdin=stdin, stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True, close_fds=True)
    deadline = time.monotonic() + alive_check_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    return proc.poll()


def stop_jobs_task(job_name: str | None = None, experiment: str | None = None, job_id: int | None = None,
                   job_source: str | None = None, all_jobs: bool = False) -> dict[str, Any]:
    """Stop matching jobs with SIGINT (§2.3); returns ``{"stopped": [{job_name, job_id, experiment}]}``."""
    from reactorkit.core.jobs_control import stop_jobs

    rows = stop_jobs(job_name=job_name, experiment=experiment, job_id=job_id, job_source=job_source,
                     all_jobs=all_jobs)
    return {"stopped": [{"job_name": r.job_name, "job_id": r.job_id, "experiment": r.experiment} for r in rows]}


# ---------------------------------------------------------------------- clock
def set_clock(utc_clock_time: str | None = None) -> dict[str, Any]:
    """Set (leader) or re-sync (worker) the system clock.

    On a Pi the leader runs ``date -u --set <time>`` and a worker ``chronyc -a
    makestep``. A simulated unit never changes the machine's clock.

    Raises:
        TaskFailed: simulated hardware, or the system command failed.
    """
    from reactorkit.core.clock import get_clock, utc_iso_ms
    from reactorkit.core.config import is_leader
    from reactorkit.core.hardware import backend_name

    if backend_name() != "pi":
        raise fail("Setting the clock is only supported on a Raspberry Pi.",
                   cause=f"this unit uses the {backend_name()} hardware backend, whose clock is the host's",
                   remediation="Set the host's clock with its own tools.")
    if is_leader():
        if not utc_clock_time:
            raise fail("utc_clock_time is required on the leader.", remediation="Send {\"utc_clock_time\": \"…Z\"}.")
        cmd = ["sudo", "date", "-u", "--set", utc_clock_time]
    else:
        cmd = ["sudo", "chronyc", "-a", "makestep"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise fail("Could not set the clock.", cause=(done.stderr or done.stdout).strip() or f"exit {done.returncode}")
    return {"clock_time": utc_iso_ms(get_clock().now())}
