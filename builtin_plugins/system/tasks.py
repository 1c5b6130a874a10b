"""Archive tasks: import a zipped ``$DOT_PIOREACTOR`` here, or (on the leader) send one to a unit."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from reactorkit.plugin import fail_task as fail

from .files import DEFAULT_MAX_IMPORT_MB, limit_bytes


def import_dot_pioreactor(archive_path: str) -> dict[str, Any]:
    """Replace this unit's ``$DOT_PIOREACTOR`` with the archive (checked first, swapped atomically).

    Refused while jobs other than ``mqtt_to_db_streaming`` run; that one is stopped
    before the swap and started again after it (see :mod:`.ingestion_swap`). The unit's
    outbox and its web server's pid file stay its own (:func:`_own_files`); the job launcher's socket and lock
    stay the same files (:func:`_runtime_files`), so the launcher goes on serving the unit and no second one
    is started.

    Returns:
        ``{"imported": true, "files", "bytes", "ingestion": "restarted"|"not running"|…, "restart_recommended": true}``.

    Raises:
        TaskFailed: jobs are running, the archive is unsafe or the swap failed (the old folder stays), or the
            swap was made but not flushed to disk (the old folder is kept beside it).
    """
    from reactorkit.plugin import dot_pioreactor

    from .archive import ImportNotFlushed, UnsafeArchive, import_archive
    from .ingestion_swap import around_ingestion, jobs_in_the_way, refusal

    running = jobs_in_the_way()
    if running:
        raise fail(**refusal(running))
    root = dot_pioreactor()
    try:
        result = around_ingestion(lambda: import_archive(
            Path(archive_path), root, max_bytes=limit_bytes("max_import_mb", DEFAULT_MAX_IMPORT_MB),
            keep=_own_files(root), carry=_runtime_files(root)))
    except UnsafeArchive as exc:
        raise fail("The archive was refused.", cause=str(exc), remediation="Export a fresh archive with "
                   "GET /unit_api/zipped_dot_pioreactor.") from None
    except ImportNotFlushed as exc:
        raise fail("The archive was imported, but the unit's storage did not confirm the change.", cause=str(exc),
                   remediation=f"Check the unit's storage (SD card); remove {exc.backup} once the unit has "
                               "restarted with the imported state.") from None
    except (OSError, sqlite3.Error) as exc:  # (the outbox's write lock not given within its busy timeout)
        raise fail("The import failed; nothing was changed.", cause=f"{type(exc).__name__}: {exc}") from None
    return {"imported": True, **result, "restart_recommended": True}


def _own_files(root: Path) -> list[str]:
    """Files under ``root`` an import leaves as they are: the unit's outbox (``[outbox] path``) — what its jobs
    published and the leader has not stored yet, and the numbering the leader knows (an archive's copy would
    number new messages again from the time of the export, and the leader would drop them as copies) — and the
    pid file of the running ``pio serve`` master (archives leave ``.pid`` files out; without it the web server
    could not be reloaded after a plugin install, nor restarted through the API)."""
    from reactorkit.plugin import gunicorn_pid_path, outbox_path

    own = []
    for path in (outbox_path(), gunicorn_pid_path()):
        try:
            own.append(path.resolve().relative_to(root.resolve()).as_posix())
        except ValueError:  # kept outside the state folder: the import does not touch it
            pass
    return own


def _runtime_files(root: Path) -> list[str]:
    """Files under ``root`` of the unit's running processes that an import carries over as the same files: the
    job launcher's socket and lock file (:func:`reactorkit.plugin.launcher_runtime_paths`). Replaced by other
    files, or left behind with the old folder, the launcher would no longer be found there; the task worker
    would start a second one beside it."""
    from reactorkit.plugin import launcher_runtime_paths

    out = []
    for path in launcher_runtime_paths():
        try:
            out.append(Path(path).resolve().relative_to(root.resolve()).as_posix())
        except ValueError:
            pass
    return out


def forward_import(unit: str, archive_path: str) -> dict[str, Any]:
    """Leader task: send the archive to ``unit``'s ``/unit_api/import_zipped_dot_pioreactor`` and await its task.

    Returns:
        ``{unit: envelope}`` (the envelope's value is the unit's import result).
    """
    import httpx

    from reactorkit.plugin import fanout
    from reactorkit.plugin import unit_url
    from reactorkit.plugin import get_unit_name
    from reactorkit.plugin import cluster_headers

    path = Path(archive_path)
    try:
        if unit == get_unit_name():
            return {unit: fanout.ok_envelope(unit, import_dot_pioreactor(str(path)))}
        base = unit_url(unit)
        with httpx.Client(headers=cluster_headers()) as client:
            try:
                with open(path, "rb") as fh:
                    response = client.post(base + "/unit_api/import_zipped_dot_pioreactor",
                                           files={"archive": (path.name, fh, "application/zip")}, timeout=120)
            except httpx.HTTPError as exc:
                return {unit: fanout.error_envelope(unit, "connection_error", f"Could not send the archive to {unit}.",
                                                    cause=str(exc))}
            if response.status_code != 202:
                body = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
                return {unit: fanout.error_envelope(unit, "http_error", str(body.get("error") or response.status_code),
                                                    status_code=response.status_code, cause=body.get("cause"))}
            return {unit: fanout.poll_task(client, unit, response.json(), base_url=base)}
    finally:
        path.unlink(missing_ok=True)
