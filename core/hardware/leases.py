"""PWM leases: a journal of the channels a process has switched on, so none stays on after it dies.

A process that turns a PWM channel on (a pump, the heater) first takes a
**lease** on it: a row in the unit's persistent cache (SQLite, committed before
the channel goes on) naming the channel, the holder process
(pid, start time and boot id, so a reused pid or a reboot never passes for the
holder), when it went on and, for a timed run, when it is due off. The holder
releases the lease after switching the channel off.

If the holder dies in any way — a signal, an uncaught exception, SIGKILL, the
unit losing power — its lease stays. :func:`sweep` (run by the unit's
watchdog thread in ``pio worker``, by every pump action before it starts and
by dosing automations) finds leases whose holder is gone, switches their
channel off, records the time it did so and calls the lease's ``reconcile``
function (an import path, e.g. the dosing plugin's, which books the volume the
pump moved after its last dosing event) before deleting the lease.

When did an orphaned channel go off? A backend whose channels keep their state
across a power cut (the simulated vessel, whose state lives in a file) went off
when the sweep switched it off, or at the timed end if earlier. On a Raspberry
Pi a power cut resets the GPIO pins, so a lease taken before the current boot
went off at its holder's last heartbeat (the holder writes one with every
dosing event, every 0.5 s of pumping).
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from reactorkit.core.sqlite import open_sqlite

logger = logging.getLogger("reactorkit.leases")

SCHEMA = """
CREATE TABLE IF NOT EXISTS pwm_leases (
    lease_id INTEGER PRIMARY KEY AUTOINCREMENT,
    channel INTEGER NOT NULL,
    holder TEXT NOT NULL,
    job_name TEXT NOT NULL,
    duty_cycle REAL NOT NULL,
    t_on REAL NOT NULL,
    until REAL,
    heartbeat REAL NOT NULL,
    t_off REAL,
    reconcile TEXT,
    details TEXT NOT NULL DEFAULT '{}'
)
"""


def boot_id() -> str:
    """This boot's id (``/proc/sys/kernel/random/boot_id``; ``"?"`` where there is none)."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "?"


def holder_token(pid: int | None = None) -> str:
    """``"{boot id}/{pid}:{start time}"``: names a process across pid reuse and reboots."""
    from reactorkit.core.outbox import process_token

    return f"{boot_id()}/{process_token(pid)}"


def holder_alive(token: str) -> bool:
    """True when the process ``token`` (from :func:`holder_token`) runs now, in this boot."""
    from reactorkit.core.outbox import token_alive

    boot, _, process = token.partition("/")
    return boot == boot_id() and token_alive(process)


def holder_from_this_boot(token: str) -> bool:
    """True when ``token`` was taken since the unit last booted (it did not lose power since)."""
    return token.partition("/")[0] == boot_id()


@dataclass(frozen=True)
class Lease:
    """One row of the journal.

    Attributes:
        lease_id: Row id. channel: PWM channel (1–5). holder: :func:`holder_token`.
        job_name: Who switched it on (a pump run, an automation …).
        duty_cycle: %. t_on, until, heartbeat, t_off: clock seconds (``until`` None for an open-ended run,
            ``t_off`` None until a sweep switched the channel off).
        reconcile: ``"module:function"`` called as ``f(lease, t_off, config)`` after the switch-off, or None.
        details: JSON-able facts the reconciler needs (action, experiment, mL booked so far …).
    """

    lease_id: int
    channel: int
    holder: str
    job_name: str
    duty_cycle: float
    t_on: float
    until: float | None
    heartbeat: float
    t_off: float | None
    reconcile: str | None
    details: dict[str, Any]


def leases_path(config: Any) -> Path:
    """The unit's persistent cache (``[storage] persistent_cache``), which holds the journal."""
    from reactorkit.core.paths import dot_pioreactor

    try:
        return config.path("storage", "persistent_cache")
    except Exception:
        return dot_pioreactor() / "storage" / "local_persistent_pioreactor_metadata.sqlite"


def connect(path: Path) -> sqlite3.Connection:
    """An autocommit connection to the journal's database (WAL), with the table created."""
    conn = open_sqlite(path, synchronous="NORMAL")  # WAL: no flush to storage per commit, still safe if a process dies
    conn.execute(SCHEMA)
    return conn


_shared: dict[tuple[int, str], tuple[sqlite3.Connection, threading.Lock, Any]] = {}
_shared_lock = threading.Lock()


@contextmanager
def database(path: Path) -> Iterator[sqlite3.Connection]:
    """This process's connection to the journal's database, held under a lock for the block.

    One connection per process and file, kept open: closing the last connection
    to a WAL database after a write checkpoints it with a flush to storage
    (~10 ms on a busy SD card), which a pump run would otherwise pay several times.
    Opened again when the file was replaced (a state archive imported; one ``stat``
    per use): the task worker's watchdog must see the leases of the jobs started
    after the import, not those of the replaced file.
    """
    from reactorkit.core.paths import file_identity, open_identified

    key = (os.getpid(), str(path))
    stale = None
    with _shared_lock:
        entry = _shared.get(key)
        if entry is not None and entry[2] != file_identity(path):
            stale, entry = entry, None
        if entry is None:
            conn = connect(path)
            conn.close()
            conn, identity = open_identified(  # connect() above made the file WAL
                path, lambda: open_sqlite(path, wal=False, synchronous="NORMAL", check_same_thread=False))
            entry = _shared[key] = (conn, threading.Lock(), identity)
    if stale is not None:
        with stale[1]:  # once its last user is done with it
            stale[0].close()
    with entry[1]:
        yield entry[0]


def _row(row: tuple) -> Lease:
    return Lease(lease_id=row[0], channel=row[1], holder=row[2], job_name=row[3], duty_cycle=row[4], t_on=row[5],
                 until=row[6], heartbeat=row[7], t_off=row[8], reconcile=row[9], details=json.loads(row[10] or "{}"))


_COLUMNS = "lease_id, channel, holder, job_name, duty_cycle, t_on, until, heartbeat, t_off, reconcile, details"


class PwmLeases:
    """The lease journal of one unit.

    Args:
        config: Merged config (for the database path).
        path: Database file (default :func:`leases_path`).
    """

    def __init__(self, config: Any, path: Path | None = None) -> None:
        self.config = config
        self.path = path or leases_path(config)

    def take(self, channel: int, *, job_name: str, duty_cycle: float, t_on: float, until: float | None = None,
             reconcile: str | None = None, details: dict[str, Any] | None = None) -> int:
        """Record that this process is about to switch ``channel`` on; returns the lease id.

        The row is committed before this returns (WAL, ``synchronous=NORMAL`` like
        the vial bookkeeping it goes with: a power cut may lose the last commits
        of both together, never half of one).
        """
        with database(self.path) as conn:
            cur = conn.execute(
                "INSERT INTO pwm_leases (channel, holder, job_name, duty_cycle, t_on, until, heartbeat, reconcile, "
                "details) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (int(channel), holder_token(), job_name, float(duty_cycle), float(t_on),
                 None if until is None else float(until), float(t_on), reconcile, json.dumps(details or {})),
            )
            return int(cur.lastrowid)

    def update(self, lease_id: int, *, t_on: float | None = None, until: float | None = None,
               heartbeat: float | None = None) -> None:
        """Correct the start / due-off time, or write a heartbeat (clock seconds)."""
        sets, args = [], []
        for name, value in (("t_on", t_on), ("until", until), ("heartbeat", heartbeat)):
            if value is not None:
                sets.append(f"{name} = ?")
                args.append(float(value))
        if sets:
            with database(self.path) as conn:
                conn.execute(f"UPDATE pwm_leases SET {', '.join(sets)} WHERE lease_id = ?", (*args, lease_id))

    def release(self, lease_id: int) -> None:
        """The holder switched its channel off: forget the lease."""
        with database(self.path) as conn:
            conn.execute("DELETE FROM pwm_leases WHERE lease_id = ?", (lease_id,))

    def all(self) -> list[Lease]:
        """Every lease in the journal."""
        if not self.path.exists():
            return []
        with database(self.path) as conn:
            return [_row(r) for r in conn.execute(f"SELECT {_COLUMNS} FROM pwm_leases ORDER BY lease_id")]

    def orphaned(self) -> list[Lease]:
        """Leases whose holder process no longer runs."""
        return [lease for lease in self.all() if not holder_alive(lease.holder)]

    def mark_off(self, lease_id: int, t_off: float) -> None:
        """Record when a sweep switched the channel off (kept if already recorded)."""
        with database(self.path) as conn:
            conn.execute("UPDATE pwm_leases SET t_off = coalesce(t_off, ?) WHERE lease_id = ?", (float(t_off), lease_id))

    def get(self, lease_id: int) -> Lease | None:
        """One lease, or None once released."""
        with database(self.path) as conn:
            row = conn.execute(f"SELECT {_COLUMNS} FROM pwm_leases WHERE lease_id = ?", (lease_id,)).fetchone()
        return _row(row) if row else None


def off_time(lease: Lease, now: float, hardware: Any) -> float:
    """When an orphaned lease's channel went (or goes) off, in clock seconds (see the module doc)."""
    keeps_state = bool(getattr(hardware, "pwm_survives_power_loss", False))
    if not keeps_state and not holder_from_this_boot(lease.holder):
        end = lease.heartbeat  # the power cut switched it off, after the last heartbeat
    else:
        end = now
    if lease.until is not None:
        end = min(end, lease.until)
    return max(end, lease.t_on)


_sweep_lock = threading.Lock()


def sweep(config: Any = None, hardware: Any = None, clock: Any = None,
          log: Callable[[str], Any] | None = None) -> list[Lease]:
    """Switch off every channel whose lease holder is gone, reconcile and forget those leases.

    Args:
        config, hardware, clock: Defaults: the process-wide ones.
        log: Called with a warning message per orphaned lease (default: this module's logger).

    Returns:
        The orphaned leases handled (their ``t_off`` filled in).

    A reconciler that raises leaves its lease in place (with ``t_off``
    recorded): the next sweep tries again, and the channel stays off.
    """
    from reactorkit.core.clock import get_clock
    from reactorkit.core.config import get_config
    from reactorkit.core.imports import resolve

    config = config or get_config()
    journal = PwmLeases(config)
    with _sweep_lock:
        orphans = journal.orphaned()
        if not orphans:
            return []
        if hardware is None:
            from reactorkit.core.hardware import get_hardware

            hardware = get_hardware(config)
        clock = clock or get_clock(config)
        handled = []
        for lease in orphans:
            t_off = lease.t_off
            if t_off is None:
                took_effect = hardware.set_pwm(lease.channel, 0.0)  # a backend may say when (the simulated vessel)
                now = float(took_effect) if isinstance(took_effect, (int, float)) else clock.now()
                t_off = off_time(lease, now, hardware)
                journal.mark_off(lease.lease_id, t_off)
            message = (f"PWM channel {lease.channel} was left on ({lease.duty_cycle:g} %) by {lease.job_name}, "
                       f"whose process ended without switching it off; switched it off.")
            (log or logger.warning)(message)
            done = Lease(**{**lease.__dict__, "t_off": t_off})
            if lease.reconcile:
                try:
                    resolve(lease.reconcile)(done, t_off, config)
                except Exception as exc:
                    logger.error("reconciling the lease of %s on channel %s failed: %s", lease.job_name,
                                 lease.channel, exc)
                    continue
            journal.release(lease.lease_id)
            handled.append(done)
        return handled


def watch(stop: threading.Event, config: Any = None, interval_s: float | None = None) -> None:
    """Until ``stop`` is set: :func:`sweep` every ``[safety] watchdog_interval_s`` (2 s, wall time).

    Args:
        config: A config to use throughout; default: this process's config as it is at each sweep (the files
            rechecked first, one ``stat`` each: settings saved through the API since the worker started apply).
        interval_s: Seconds between sweeps (default ``[safety] watchdog_interval_s`` of each sweep's config).
    """
    from reactorkit.core.config import current_config

    current = config
    while True:
        try:
            current = current_config(config)
            sweep(current)
        except Exception as exc:  # a busy database, a missing backend, a file unreadable: try again next time
            logger.debug("PWM lease sweep: %s", exc)
        try:
            interval = interval_s or current.getfloat("safety", "watchdog_interval_s", fallback=2.0)
        except (AttributeError, ValueError):  # no config read yet, or a typo: the watchdog goes on
            interval = 2.0
        if stop.wait(interval if interval > 0 else 2.0):
            break


def start_watchdog(config: Any = None) -> threading.Event:
    """Run :func:`watch` in a daemon thread (the unit's task worker does); set the event to stop it."""
    stop = threading.Event()
    threading.Thread(target=watch, args=(stop, config), name="pwm-watchdog", daemon=True).start()
    return stop


__all__ = ["Lease", "PwmLeases", "sweep", "watch", "start_watchdog", "holder_token", "holder_alive", "off_time",
           "boot_id", "connect", "leases_path"]
