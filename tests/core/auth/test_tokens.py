"""API tokens: stored as hashes only, scoped, revocable, expiring; `pio tokens` on the leader."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import datetime, timedelta, timezone

import pytest

from reactorkit.core.auth.provision import provision
from reactorkit.core.auth.scopes import covers
from reactorkit.core.auth.tokens import TokenError, TokenStore, parse_expiry, read_cluster_token
from reactorkit.core.testing import pio_command


def test_only_the_hash_is_stored_and_the_token_verifies(tmp_path):
    store = TokenStore(tmp_path)
    token, record = store.create("alice", "control")
    text = (tmp_path / "storage" / "api_tokens.json").read_text()
    assert token not in text and record.sha256 in text
    assert oct(os.stat(tmp_path / "storage" / "api_tokens.json").st_mode & 0o777) == "0o600"
    assert store.verify(token).name == "alice"
    assert store.verify(token[:-1] + ("A" if token[-1] != "A" else "B")) is None


def test_revoked_and_expired_tokens_stop_working(tmp_path):
    store = TokenStore(tmp_path)
    token, record = store.create("bob", "read")
    store.revoke("bob")
    assert store.verify(token) is None and store.find(record.id).revoked_at
    soon, _ = store.create("carol", "read", expires="1h")
    assert store.verify(soon) is not None
    later = datetime.now(timezone.utc) + timedelta(hours=2)
    assert not store.find("carol").active(now=later)


def test_bad_requests_say_what_is_expected(tmp_path):
    store = TokenStore(tmp_path)
    with pytest.raises(TokenError, match="scope 'root'"):
        store.create("x", "root")
    with pytest.raises(TokenError, match="name"):
        store.create("has space", "read")
    with pytest.raises(TokenError, match="duration"):
        parse_expiry("tomorrow")
    with pytest.raises(TokenError, match="past"):
        parse_expiry("2001-01-01")
    with pytest.raises(TokenError, match="no token"):
        store.revoke("nobody")


def test_scopes_are_ordered():
    assert covers("admin", "control") and covers("control", "read") and covers("read", "public")
    assert not covers("read", "control") and not covers("control", "admin") and not covers("nonsense", "read")


def test_a_local_cluster_gets_a_cluster_token_and_an_admin_token_every_unit_accepts(tmp_path):
    leader, worker = tmp_path / "leader", tmp_path / "worker1"
    admin = provision(leader, [worker], admin_file=tmp_path / "admin_token")
    cluster = read_cluster_token(worker)
    for root in (leader, worker):
        assert TokenStore(root).verify(admin).scope == "admin"
        assert TokenStore(root).verify(cluster).name == "cluster"
    assert provision(leader, [worker], admin_file=tmp_path / "admin_token") == admin  # reused on the next start


def test_pio_tokens_create_list_revoke(tmp_path):
    env = {**os.environ, "DOT_PIOREACTOR": str(tmp_path), "HOSTNAME": "leader"}

    def pio(*args):
        return subprocess.run(pio_command("tokens", *args), env=env, capture_output=True, text=True, timeout=60)

    created = pio("create", "--name", "dashboard", "--scope", "read", "--expires", "30d")
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert TokenStore(tmp_path).verify(token).scope == "read"
    listed = [json.loads(line) for line in pio("list", "--json").stdout.splitlines()]
    assert [(r["name"], r["scope"], r["active"]) for r in listed] == [("dashboard", "read", True)]
    assert "sha256" not in listed[0] and token not in pio("list").stdout
    assert pio("revoke", "dashboard").returncode == 0
    assert TokenStore(tmp_path).verify(token) is None
    bad = pio("create", "--name", "x", "--scope", "superuser")
    assert bad.returncode != 0 and "superuser" in bad.stderr


def test_a_token_file_replaced_by_rename_takes_effect_even_with_the_same_size_and_time(tmp_path):
    store = TokenStore(tmp_path)
    token, _ = store.create("dana", "control", expires="2999-01-01")
    path = tmp_path / "storage" / "api_tokens.json"
    assert store.verify(token) is not None  # read and kept
    before = path.stat()
    text = path.read_text()
    expired = text.replace('"2999-01-01T00:00:00Z"', '"2000-01-01T00:00:00Z"')
    assert len(expired) == len(text) and expired != text
    staged = path.with_name("api_tokens.json.staged")
    staged.write_text(expired)
    os.utime(staged, ns=(before.st_atime_ns, before.st_mtime_ns))  # written within the same clock tick
    os.replace(staged, path)  # as the leader's push or `pio tokens` replaces it
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    assert store.verify(token) is None
    assert TokenStore(tmp_path).verify(token) is None
