"""After a state archive is imported, every thread of every gunicorn worker of the API writes to the imported
database, not to the replaced file its connection had open (what was written there would be lost): the routes'
rows and the audit log's."""

import sqlite3
from concurrent.futures import ThreadPoolExecutor

import pytest

from reactorkit.core.testing import LocalCluster

pytestmark = pytest.mark.integration

CONCURRENT = 16  # more than the API's threads (2 gunicorn workers x 4 threads): each of them serves requests


def stored_experiments(cluster):
    """The experiments in the leader's database file (read directly, not through the API)."""
    with sqlite3.connect(cluster.leader.root / "storage" / "pioreactor.sqlite", timeout=15) as conn:
        return {r[0] for r in conn.execute("SELECT experiment FROM experiments")}


def audited_creations(cluster):
    """How many ``POST /api/experiments`` the audit log in the leader's database file holds."""
    with sqlite3.connect(cluster.leader.root / "storage" / "pioreactor.sqlite", timeout=15) as conn:
        return conn.execute("SELECT count(*) FROM audit_log WHERE method = 'POST' AND path = '/api/experiments'"
                            ).fetchone()[0]


def listed_experiments(client):
    response = client.get("/api/experiments")
    assert response.status_code == 200, response.text
    return frozenset(e["experiment"] for e in response.json())


def create(client, name):
    response = client.post("/api/experiments", json={"experiment": name})
    assert response.status_code == 201, response.text


def in_parallel(fn, items):
    with ThreadPoolExecutor(CONCURRENT) as pool:
        return list(pool.map(fn, items))


def test_writes_after_an_import_land_in_the_imported_database(tmp_path):
    with LocalCluster(tmp_path, [], api_workers=2) as cluster:
        clients = [cluster.client(timeout=30) for _ in range(CONCURRENT)]
        try:
            create(clients[0], "kept")
            archive = clients[0].get("/unit_api/zipped_dot_pioreactor")
            assert archive.status_code == 200, archive.text
            create(clients[0], "not_in_the_archive")
            # every thread of every worker opens its connection (many requests on 16 connections at once)
            seen = in_parallel(lambda i: listed_experiments(clients[i % CONCURRENT]), range(20 * CONCURRENT))
            assert set(seen) == {frozenset({"kept", "not_in_the_archive"})}

            accepted = clients[0].post("/unit_api/import_zipped_dot_pioreactor",
                                       files={"archive": ("backup.zip", archive.content, "application/zip")})
            assert accepted.status_code == 202, accepted.text
            done = cluster.wait_task(accepted.json(), timeout=60)
            assert done["status"] == "succeeded", done
            assert stored_experiments(cluster) == {"kept"}

            # every thread now reads the imported database ...
            seen = in_parallel(lambda i: listed_experiments(clients[i % CONCURRENT]), range(20 * CONCURRENT))
            assert set(seen) == {frozenset({"kept"})}
            # ... and writes into it
            names = [f"after_{i}" for i in range(2 * CONCURRENT)]
            in_parallel(lambda i: create(clients[i % CONCURRENT], names[i]), range(len(names)))
            assert stored_experiments(cluster) == {"kept", *names}
            # the audit log (on the leader, in the same database, through a connection of its own) too
            assert audited_creations(cluster) == 1 + len(names)
        finally:
            for client in clients:
                client.close()

        cluster.restart_api()
        with cluster.client(timeout=30) as client:
            assert listed_experiments(client) == {"kept", *names}
