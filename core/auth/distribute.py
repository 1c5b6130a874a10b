"""The leader pushes its token list (hashes, scopes, expiry, revocations) to every worker.

A worker checks tokens against its own copy (``storage/api_tokens.json``), so
after each ``pio tokens create|revoke`` (or ``POST``/``DELETE /api/tokens``) the
leader sends the list with ``PUT /unit_api/auth/tokens``, authenticated by the
cluster token. A worker that was unreachable keeps its previous list until the
next push (``pio tokens push`` sends it again). A new worker gets its first list
and the cluster token copied once, as its SSH key is (``pio tokens export``/``import``).
"""

from __future__ import annotations

from typing import Any

from reactorkit.core.auth.client import cluster_headers
from reactorkit.core.auth.tokens import TokenStore


def cluster_units(config: Any) -> list[str]:
    """Every unit of the cluster but this one: ``[cluster.addresses]`` and the leader's inventory."""
    from reactorkit.core.config import get_unit_name

    units = set(config.options("cluster.addresses")) if config.has_section("cluster.addresses") else set()
    try:
        from reactorkit.core.leader_db import LeaderDB, database_path

        if database_path().exists():
            db = LeaderDB()
            try:
                units.update(row["pioreactor_unit"] for row in db.workers(active_only=False))
            finally:
                db.close()
    except Exception:  # no inventory (a worker, or a leader without a database yet)
        pass
    units.discard(get_unit_name())
    return sorted(units)


def push_tokens(config: Any, units: list[str] | None = None, timeout_s: float = 5.0) -> dict[str, str]:
    """Send this unit's token list to ``units`` (default :func:`cluster_units`).

    Returns:
        ``{unit: "ok" | "<why not>"}``; never raises for an unreachable unit.
    """
    import httpx

    from reactorkit.core.cluster import unit_url

    rows = TokenStore().rows()
    out: dict[str, str] = {}
    for unit in units if units is not None else cluster_units(config):
        try:
            reply = httpx.put(f"{unit_url(unit, config)}/unit_api/auth/tokens", json={"tokens": rows},
                              headers=cluster_headers(), timeout=timeout_s)
            out[unit] = "ok" if reply.status_code < 300 else f"HTTP {reply.status_code}: {reply.text[:200]}"
        except Exception as exc:
            out[unit] = f"{type(exc).__name__}: {exc}"
    return out
