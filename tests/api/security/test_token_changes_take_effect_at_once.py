"""The auth middleware keeps its token store and each operation's scope between requests: a token revoked,
created or changed by a replaced file is seen by the very next request of the same app."""

from __future__ import annotations

import json
import os

from reactorkit.core.auth.tokens import TokenStore


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_token_revoked_after_it_was_used_is_refused_at_the_next_request(secured_leader, secured_root):
    store = TokenStore(secured_root)
    token, record = store.create("t-soon-revoked", "read")
    assert secured_leader.simulate_get("/api/experiments", headers=bearer(token)).status_code == 200
    store.revoke(record.id)
    assert secured_leader.simulate_get("/api/experiments", headers=bearer(token)).status_code == 401


def test_a_token_created_after_the_app_served_others_is_accepted_at_the_next_request(secured_leader, secured_root,
                                                                                    tokens):
    assert secured_leader.simulate_get("/api/experiments", headers=bearer(tokens.read)).status_code == 200
    token, _ = TokenStore(secured_root).create("t-new", "control")
    assert secured_leader.simulate_get("/api/experiments", headers=bearer(token)).status_code == 200
    assert secured_leader.simulate_post("/api/experiments", headers=bearer(token),
                                        json={"experiment": "made-by-new-token"}).status_code in (200, 201)


def test_a_token_file_replaced_by_rename_with_the_same_size_and_time_takes_effect_at_once(secured_leader,
                                                                                          secured_root):
    store = TokenStore(secured_root)
    token, record = store.create("t-scoped", "admin")
    assert secured_leader.simulate_get("/api/tokens", headers=bearer(token)).status_code == 200
    path = secured_root / "storage" / "api_tokens.json"
    before = path.stat()
    data = json.loads(path.read_text())
    for row in data["tokens"]:
        if row["id"] == record.id:
            row["scope"] = "read"
    text = json.dumps(data, indent=1) + "\n"
    text += " " * (before.st_size - len(text.encode()))  # padded to the old file's size
    staged = path.with_name("api_tokens.json.staged")
    staged.write_text(text)
    os.utime(staged, ns=(before.st_atime_ns, before.st_mtime_ns))  # written within the same clock tick
    os.replace(staged, path)
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    assert secured_leader.simulate_get("/api/tokens", headers=bearer(token)).status_code == 403
    assert secured_leader.simulate_get("/api/experiments", headers=bearer(token)).status_code == 200
