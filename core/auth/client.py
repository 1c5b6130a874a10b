"""Credentials a unit sends when it calls another unit's API.

Every unit of a cluster keeps the cluster token in ``storage/cluster_token``
(:mod:`reactorkit.core.auth.tokens`); the leader's fan-out calls, a worker's calls
to the leader and the experiment-profile runner send it as a bearer token.
"""

from __future__ import annotations

from pathlib import Path

from reactorkit.core.auth.tokens import read_cluster_token


def bearer(token: str) -> dict[str, str]:
    """``{"Authorization": "Bearer <token>"}``."""
    return {"Authorization": f"Bearer {token}"}


def cluster_headers(root: Path | None = None) -> dict[str, str]:
    """The ``Authorization`` header carrying this unit's cluster token (``{}`` when it has none)."""
    token = read_cluster_token(root)
    return bearer(token) if token else {}
