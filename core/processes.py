"""Whether a process is alive, with the standard library only.

Kept apart from :mod:`reactorkit.core.job_registry` (sqlite3, config) because
the launch client of ``pio run`` (:mod:`reactorkit.core.launch_client`) asks it
too and imports nothing heavier than ``os``.
"""

from __future__ import annotations

import os


def pid_alive(pid: int) -> bool:
    """True when a process with ``pid`` exists and is not a zombie (an exited child nobody reaped).

    A process of another user counts as alive (``kill(pid, 0)`` is refused, not failed). The state is
    the field after the *last* ``)`` of ``/proc/<pid>/stat``, since a process name (``comm``) may itself
    contain ``) ``; where ``/proc`` cannot be read the process counts as alive.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


def release_free_heap() -> None:
    """Give the C heap's free pages back to the system (glibc ``malloc_trim(0)``, every malloc arena).

    glibc keeps what a thread freed in that thread's arena, returning only the top of the heap: after a
    one-off burst of allocations (a database migration, a connection closed) a process keeps the pages
    in its RSS for its whole life. This returns the whole free pages of every arena (``madvise``),
    in about a millisecond. Imports :mod:`ctypes` (~0.3 MB) on first use. A no-op where the C library
    has no ``malloc_trim`` (musl, macOS). Never raises.
    """
    try:
        import ctypes

        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError, TypeError):  # TypeError: a C library that cannot be opened by None (Windows)
        pass
