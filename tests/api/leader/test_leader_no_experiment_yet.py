"""A leader with no experiment yet, as the web UI meets it on its first visit: ``GET /api/experiments/latest``
answers 200 with ``null`` (the UI reads a non-object as "no experiment" and lets the user create one; a 404 is a
failed request and a console error on every page). Real gunicorn."""

import pytest

from reactorkit.core.testing import LocalCluster

pytestmark = pytest.mark.integration


def test_latest_experiment_is_null_until_one_is_created(tmp_path):
    with LocalCluster(tmp_path, []) as cluster, cluster.client(timeout=30) as client:
        assert client.get("/api/experiments").json() == []
        latest = client.get("/api/experiments/latest")
        assert latest.status_code == 200, latest.text
        assert latest.headers["content-type"].startswith("application/json") and latest.json() is None
        assert client.post("/api/experiments", json={"experiment": "first"}).status_code == 201
        latest = client.get("/api/experiments/latest")
        assert latest.status_code == 200 and latest.json()["experiment"] == "first"
