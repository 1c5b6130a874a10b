"""What ``/unit_api/health`` reports beyond "the API answers": can this unit reach its broker, its Redis
and its database — and, on the leader, is ingestion running and has anything been lost.

Each check is cheap (a TCP handshake with an MQTT CONNECT, a Redis PING, a
SQLite ``SELECT``) and bounded by :data:`TIMEOUT_S`; the results are cached
for :data:`CACHE_S` seconds and refreshed by one request at a time (the
others answer with the previous results), so the route stays as fast as a
constant answer under load.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any, Callable

TIMEOUT_S = 0.5
CACHE_S = 1.0


def _timed(check: Callable[[], None]) -> dict[str, Any]:
    start = time.perf_counter()
    try:
        check()
    except Exception as exc:
        return {"reachable": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    return {"reachable": True, "latency_ms": round((time.perf_counter() - start) * 1000, 2)}


def _mqtt_string(text: str) -> bytes:
    data = text.encode()
    return len(data).to_bytes(2, "big") + data


def check_broker(host: str, port: int, username: str = "", password: str = "") -> None:
    """Open a TCP connection, send an MQTT 3.1.1 CONNECT, expect a CONNACK that accepts, disconnect.

    Raises:
        OSError: unreachable; ConnectionError: not a broker, or it refused (credentials).
    """
    flags = 0x02 | (0x80 if username else 0) | (0x40 if username and password else 0)
    body = _mqtt_string("MQTT") + bytes([4, flags]) + (10).to_bytes(2, "big") + _mqtt_string(
        f"rk-health-{threading.get_ident() % 100000}-{time.monotonic_ns() % 100000}")
    if username:
        body += _mqtt_string(username) + (_mqtt_string(password) if password else b"")
    with socket.create_connection((host, port), timeout=TIMEOUT_S) as sock:
        sock.settimeout(TIMEOUT_S)
        sock.sendall(bytes([0x10, len(body)]) + body)
        reply = b""
        while len(reply) < 4:
            chunk = sock.recv(4 - len(reply))
            if not chunk:
                raise ConnectionError("the broker closed the connection")
            reply += chunk
        if reply[0] != 0x20:
            raise ConnectionError("not an MQTT broker")
        if reply[3] != 0:
            raise ConnectionError(f"the broker refused the connection (return code {reply[3]})")
        sock.sendall(b"\xe0\x00")


def check_redis(url: str) -> None:
    """PING the Redis at ``url``. Raises: redis errors when unreachable."""
    from redis import Redis

    client = Redis.from_url(url, socket_timeout=TIMEOUT_S, socket_connect_timeout=TIMEOUT_S)
    try:
        client.ping()
    finally:
        client.close()


def check_database(path: Any) -> None:
    """Open the SQLite file read-only and read its schema. Raises: sqlite3.Error / FileNotFoundError."""
    from pathlib import Path

    from reactorkit.core.sqlite import open_sqlite

    if not Path(path).exists():
        raise FileNotFoundError("the database file does not exist yet")
    conn = open_sqlite(path, read_only=True, timeout_s=TIMEOUT_S)
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    finally:
        conn.close()


def ingestion_status(config: Any) -> dict[str, Any]:
    """On the leader: is the ingestion job running, and what the ledger says was lost or is on its way.

    Returns:
        ``{"running": bool, "lost": n, "gaps": n, "missing": n}`` (counts over all units).
    """
    from reactorkit.core.job_registry import JobRegistry
    from reactorkit.core.leader_db import LeaderDB
    from reactorkit.core.outbox import INGESTION_JOB

    registry = JobRegistry(config=config)
    try:
        running = bool(registry.running(job_name=INGESTION_JOB))
    finally:
        registry.close()
    out = {"running": running, "lost": 0, "gaps": 0, "missing": 0}
    try:
        from reactorkit.builtin_plugins.mqtt_to_db.ledger import summary

        db = LeaderDB(config=config, migrate=False)
        try:
            for unit in summary(db):
                for key in ("lost", "gaps", "missing"):
                    out[key] += unit[key]
        finally:
            db.close()
    except Exception as exc:  # no leader database yet, or the plugin is not installed
        out["error"] = f"{type(exc).__name__}: {exc}"[:300]
    return out


class HealthChecks:
    """Cached reachability of this unit's broker, Redis and database (and ingestion on the leader).

    Args:
        config: Merged config (``[mqtt]``, ``[redis]``/``$REDIS_URL``, ``[storage]``), or ``() -> Config`` returning
            it as it is now (the app's: a broker saved through the API is the one checked next, the results of
            the old config are not reused).
        leader: This unit is the leader (its database is the leader database; ingestion is reported).
    """

    def __init__(self, config: Any, leader: bool) -> None:
        from reactorkit.api.context import as_config_source

        self._config = as_config_source(config)
        self.leader = leader
        self._lock = threading.Lock()
        self._results: dict[str, Any] | None = None
        self._at = 0.0
        self._of: tuple[Any, int] | None = None  # (config, generation) the results were checked with

    @property
    def config(self) -> Any:
        return self._config()

    def _same_config(self, config: Any) -> bool:
        of = self._of
        return of is not None and of[0] is config and of[1] == getattr(config, "generation", 0)

    def _fresh(self, config: Any) -> bool:
        return self._results is not None and self._same_config(config) and time.monotonic() - self._at < CACHE_S

    def results(self) -> dict[str, Any]:
        """``{"broker": {...}, "redis": {...}, "database": {...}[, "ingestion": {...}]}``, at most ``CACHE_S`` old
        (older only while another request is refreshing them)."""
        config = self.config
        if self._fresh(config):
            return self._results  # type: ignore[return-value]
        # results of another config are not answered while a request refreshes them: wait for it
        if not self._lock.acquire(blocking=self._results is None or not self._same_config(config)):
            return self._results  # type: ignore[return-value]
        try:
            if not self._fresh(config):
                self._results = self._check(config)
                self._at = time.monotonic()
                self._of = (config, getattr(config, "generation", 0))
            return self._results
        finally:
            self._lock.release()

    def _check(self, config: Any) -> dict[str, Any]:
        from reactorkit.core.tasks import redis_url

        host = config.get("mqtt", "broker_address", fallback="127.0.0.1")
        port = config.getint("mqtt", "broker_port", fallback=1883)
        user = config.get("mqtt", "username", fallback="") or ""
        password = config.get("mqtt", "password", fallback="") or ""
        database = config.path("storage", "database" if self.leader else "temporary_cache")
        out = {
            "broker": _timed(lambda: check_broker(host, port, user, password)),
            "redis": _timed(lambda: check_redis(redis_url(config))),
            "database": _timed(lambda: check_database(database)),
        }
        if not self.leader and not database.exists():  # a worker's registry appears with its first job
            out["database"] = {"reachable": True, "latency_ms": 0.0, "note": "no job has run on this unit yet"}
        if self.leader:
            try:
                out["ingestion"] = ingestion_status(config)
            except Exception as exc:
                out["ingestion"] = {"running": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
        return out
