"""The one line a job that could not start prints, and its exit code (``pio run``, runners, automation hosts)."""

from __future__ import annotations

import sys
from typing import Any


def start_failure(job_name: str, exc: BaseException, *, refusals: tuple[type[BaseException], ...] = (),
                  refusal_exit: int = 1, refusal_hint: str = "", stream: Any = None) -> int | None:
    """Print why ``job_name`` could not start (one ``Error: …`` line on stderr) and return the exit code.

    * another ``job_name`` runs (``JobAlreadyRunning``): how to stop it, exit 1;
    * the broker cannot be reached (``ConnectionError``): where to look, exit 1;
    * one of ``refusals`` (a bad option value, a missing calibration …): the message (and ``refusal_hint``),
      exit ``refusal_exit``.

    Returns:
        The exit code, or None when ``exc`` is none of these (the caller re-raises it).
    """
    from reactorkit.core.job_registry import JobAlreadyRunning

    out = stream or sys.stderr
    if isinstance(exc, JobAlreadyRunning):
        print(f"Error: {exc}. Stop it first with: pio kill --job-name {job_name}", file=out)
        return 1
    if isinstance(exc, ConnectionError):
        print(f"Error: {exc}. Is mosquitto running? Check [mqtt] in config.ini.", file=out)
        return 1
    if refusals and isinstance(exc, refusals):
        print(f"Error: {exc}{refusal_hint}", file=out)
        return refusal_exit
    return None
