"""The leader passes another unit's zipped $DOT_PIOREACTOR through, or bundles all units."""

import io
import zipfile

import httpx
import pytest

from reactorkit.core.testing import LocalCluster

pytestmark = pytest.mark.integration


def test_one_worker_and_all_units_archives(tmp_path):
    with LocalCluster(tmp_path, ["worker1"]) as cluster:
        cluster.add_workers()
        one = httpx.get(f"{cluster.leader.url}/api/units/worker1/zipped_dot_pioreactor", timeout=60, headers=cluster.headers)
        assert one.status_code == 200, one.text
        assert "config.ini" in zipfile.ZipFile(io.BytesIO(one.content)).namelist()

        everything = httpx.get(f"{cluster.leader.url}/api/units/$broadcast/zipped_dot_pioreactor", timeout=60, headers=cluster.headers)
        assert everything.status_code == 200, everything.text
        assert sorted(zipfile.ZipFile(io.BytesIO(everything.content)).namelist()) == ["leader.zip", "worker1.zip"]
