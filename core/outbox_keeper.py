"""Sends what ended jobs left in the unit's outbox.

A job that stops (or dies) before the leader acknowledged its last messages
leaves them in the outbox, on disk. Any running job of the unit adopts them,
but a unit may have no job running for a while; the keeper — a thread of the
unit's task worker (``pio worker``), or ``python -m reactorkit.core.outbox_keeper``
on its own — looks every ``[outbox] keeper_interval_s`` (10 s) for messages
whose process has ended, and when there are some, connects, adopts and sends
them until the leader has stored them all.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

logger = logging.getLogger("reactorkit.outbox")


def orphans(config: Any = None) -> int:
    """Messages in this unit's outbox whose process has ended, plus gaps not yet reported to the
    leader (0 when there is no outbox)."""
    import sqlite3

    from reactorkit.core.outbox import outbox_path, token_alive
    from reactorkit.core.sqlite import open_sqlite

    path = outbox_path(config)
    if not path.exists():
        return 0
    conn = open_sqlite(path, read_only=True, timeout_s=5)
    try:
        counts = conn.execute("SELECT owner, count(*) FROM messages GROUP BY owner").fetchall()
        counts.append(("", conn.execute("SELECT count(*) FROM gaps").fetchone()[0]))
    except sqlite3.Error:
        return 0
    finally:
        conn.close()
    return sum(n for owner, n in counts if not token_alive(owner))


def keep(stop: threading.Event, config: Any = None, interval_s: float | None = None) -> None:
    """Until ``stop`` is set: adopt and send orphaned messages of this unit (see the module doc).

    Args:
        stop: Set to end the loop (the connection, if any, is closed).
        config: A config to use throughout; default: this process's config as it is at each round (the files
            rechecked, one ``stat`` each: a broker saved through the API is the one the next round connects to,
            and a connection opened with the old settings is closed first).
        interval_s: Seconds between looks while idle (default ``[outbox] keeper_interval_s``, 10 s, of the config
            of each round); 1 s while sending.
    """
    from reactorkit.core import mqtt as mq
    from reactorkit.core.config import current_config

    client = None
    client_config = current = None  # the config the client was connected with; the last one read
    while True:
        try:
            current = current_config(config)
            interval = interval_s or current.getfloat("outbox", "keeper_interval_s", fallback=10.0)
        except Exception:  # a file unreadable, a typo: the keeper goes on (with the last config read)
            interval = interval_s or 10.0
        if stop.wait((interval if interval > 0 else 10.0) if client is None else 1.0):
            break
        try:
            current = current_config(config)
            if client is not None and client_config is not current:  # saved since: connect with the new settings
                _close(client)
                client = None
            if client is None:
                if orphans(current) == 0:
                    continue
                client, client_config = mq.create_client(client_id=None, config=current), current
                client.open_outbox()
            elif client.outbox_waiting() == 0 and orphans(current) == 0:
                _close(client)
                client = None
        except Exception as exc:  # the broker may be away: try again later
            logger.debug("outbox keeper: %s", exc)
            if client is not None:
                try:
                    _close(client)
                except Exception:
                    pass
                client = None
    if client is not None:
        _close(client)


def _close(client: Any) -> None:
    client.disconnect()
    client.loop_stop()


def start_thread(config: Any = None) -> threading.Event:
    """Run :func:`keep` in a daemon thread; set the returned event to stop it."""
    stop = threading.Event()
    threading.Thread(target=keep, args=(stop, config), name="outbox-keeper", daemon=True).start()
    return stop


def main() -> None:
    """``python -m reactorkit.core.outbox_keeper``: the keeper alone, until SIGTERM/SIGINT."""
    import signal

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    logging.basicConfig(level=logging.INFO)
    keep(stop, interval_s=None)
    time.sleep(0)


if __name__ == "__main__":
    main()
