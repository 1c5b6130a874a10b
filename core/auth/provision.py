"""Tokens of a cluster whose units share one machine (``pio cluster up``, ``pio demo``, the test kit).

The leader's store gets the cluster token and an ``admin`` token for the person
at the keyboard; every worker gets a copy of the list and the cluster token, as
the leader would push them on a real cluster.
"""

from __future__ import annotations

import os
from pathlib import Path

from reactorkit.core.auth.tokens import TokenStore, ensure_cluster_token, write_cluster_token
from reactorkit.core.paths import atomic_write


def provision(leader_root: Path, worker_roots: list[Path], *, admin_file: Path | None = None,
              admin_name: str = "admin") -> str:
    """Set up the tokens of a local cluster; returns the plain ``admin`` token.

    Args:
        leader_root: The leader's ``$DOT_PIOREACTOR``.
        worker_roots: Each worker's ``$DOT_PIOREACTOR``.
        admin_file: Where the admin token is kept (mode 0600) and reused on the next start while it is valid.
        admin_name: The admin token's name.
    """
    store = TokenStore(leader_root)
    cluster = ensure_cluster_token(leader_root)
    admin = None
    if admin_file is not None and admin_file.exists():
        candidate = admin_file.read_text().strip()
        admin = candidate if store.verify(candidate) else None
    if admin is None:
        admin, _ = store.create(admin_name, "admin")
        if admin_file is not None:
            atomic_write(admin_file, admin + "\n")
            os.chmod(admin_file, 0o600)
    rows = store.rows()
    for root in worker_roots:
        TokenStore(root).replace(rows)
        write_cluster_token(cluster, root)
    return admin
