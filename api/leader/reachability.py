"""Which units the leader can reach: ``reachable`` and ``last_seen_at`` in ``/api/workers`` and ``/api/units``.

A daemon thread of the leader's API process calls ``GET /unit_api/health`` on
every unit of the inventory, concurrently, every ``[cluster]
reachability_interval_s`` (15 s) with a ``reachability_timeout_s`` (5 s)
timeout, so a unit that lost power or its network reads ``reachable: false``
within about 20 s (well within a minute), and again ``true`` once it answers.
Before the first round has answered, ``reachable`` is null (unknown). The
leader itself is reachable while its API answers.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any, Callable, Iterable

DEFAULT_INTERVAL_S = 15.0
DEFAULT_TIMEOUT_S = 5.0


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class Reachability:
    """Probes units in the background; :meth:`status` reads the latest answer.

    Args:
        config: The leader's config (``[cluster.addresses]``, ``[cluster]`` interval and timeout).
        units: ``() -> [unit names]`` to probe (the inventory).
        leader: The leader's own name (always reachable).
    """

    def __init__(self, config: Any, units: Callable[[], Iterable[str]], leader: str) -> None:
        self.config, self.units, self.leader = config, units, leader
        self.interval_s = config.getfloat("cluster", "reachability_interval_s", fallback=DEFAULT_INTERVAL_S)
        self.timeout_s = config.getfloat("cluster", "reachability_timeout_s", fallback=DEFAULT_TIMEOUT_S)
        self._state: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._client: Any = None

    def _http(self) -> Any:
        """One ``httpx.Client`` for every probe of this process (thread-safe). ``httpx.get`` builds a client, and
        with it a TLS context, per call: about 40 ms of CPU per unit and round, where a kept client takes 0.5 ms."""
        if self._client is None:
            import httpx

            with self._lock:
                if self._client is None:
                    # no kept-alive connections: each probe opens its own, as before (a unit's server closes
                    # idle ones long before the next round)
                    self._client = httpx.Client(timeout=self.timeout_s, follow_redirects=False,
                                                limits=httpx.Limits(max_keepalive_connections=0))
        return self._client

    def _probe(self, unit: str) -> tuple[bool, str | None]:
        from reactorkit.core.cluster import unit_url

        try:
            response = self._http().get(unit_url(unit, self.config) + "/unit_api/health")
            return response.status_code < 500, None if response.status_code < 500 else f"HTTP {response.status_code}"
        except Exception as exc:
            return False, f"{type(exc).__name__}: {exc}"

    def probe_all(self) -> None:
        """One round: every unit of the inventory (but the leader), concurrently."""
        targets = sorted(u for u in set(self.units()) if u != self.leader)
        if not targets:
            return
        with ThreadPoolExecutor(max_workers=min(16, len(targets))) as pool:
            answers = dict(zip(targets, pool.map(self._probe, targets)))
        now = time.time()
        with self._lock:
            for unit, (ok, error) in answers.items():
                entry = self._state.setdefault(unit, {"last_seen_at": None})
                entry.update(reachable=ok, checked_at=now, error=error)
                if ok:
                    entry["last_seen_at"] = now

    def _run(self) -> None:
        while True:
            try:
                self.probe_all()
            except Exception:  # a busy database or a bad address: try again next round
                pass
            if self._stop.wait(self.interval_s):
                return

    def start(self) -> "Reachability":
        """Start the probing thread (once)."""
        if self._thread is not None:  # started: no lock needed to know it
            return self
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="unit-reachability", daemon=True)
                self._thread.start()
        return self

    def status(self, unit: str) -> dict[str, Any]:
        """``{"reachable": bool | None, "last_seen_at": ISO-8601 | None}`` of ``unit``."""
        return self.statuses([unit])[0]

    def statuses(self, units: Iterable[str]) -> list[dict[str, Any]]:
        """:meth:`status` of each of ``units``, in order (read under one lock)."""
        self.start()
        now = None
        out = []
        with self._lock:
            entries = [(unit, self._state.get(unit) or {}) for unit in units]
            entries = [(unit, entry.get("reachable"), entry.get("last_seen_at")) for unit, entry in entries]
        for unit, reachable, seen in entries:
            if unit == self.leader:
                now = now or _iso(time.time())
                out.append({"reachable": True, "last_seen_at": now})
            else:
                out.append({"reachable": reachable, "last_seen_at": _iso(seen) if seen else None})
        return out
