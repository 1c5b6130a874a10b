"""Several threads opening one new SQLite file at once, as the first opens of a store by several jobs do."""

from __future__ import annotations

import threading
from typing import Any, Callable


def open_together(open_and_write: Callable[[], Any], threads: int = 8) -> list[BaseException]:
    """Run ``open_and_write`` in ``threads`` threads released together; the exceptions they raised (empty when all
    of them succeeded)."""
    start = threading.Barrier(threads)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            start.wait(120)  # (a bound only for a thread that never started; not a timing)
            open_and_write()
        except BaseException as exc:  # noqa: BLE001 - returned to the test
            errors.append(exc)

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return errors


def insert_a_row(conn: Any) -> None:
    """Create table ``t`` when it is not there, add one row to it and close ``conn``."""
    conn.execute("CREATE TABLE IF NOT EXISTS t (x)")
    conn.execute("INSERT INTO t VALUES (1)")
    conn.close()
