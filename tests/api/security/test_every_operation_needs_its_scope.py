"""Generated from the OpenAPI documents: every operation refuses a request without a token (401) and one whose
token's scope is too small (403), before anything runs; health and the docs stay public.

New routes (a plugin's included) are covered as soon as they are in the documents.
"""

from __future__ import annotations

import re

import pytest

from reactorkit.core.auth.scopes import SCOPES

from reactorkit.core.auth.client import bearer

SAMPLE = {"pioreactor_unit": "worker1", "unit": "worker1", "experiment": "exp1", "job_name": "stirring"}


def concrete(path: str) -> str:
    return re.sub(r"\{([^}]+)\}", lambda m: SAMPLE.get(m.group(1), "x1"), path)


def operations(client, root: str) -> list[tuple[str, str, str]]:
    doc = client.simulate_get(f"{root}/openapi.json").json
    return [(method.upper(), path, entry["x-scope"]) for path, item in doc["paths"].items()
            for method, entry in item.items()]


@pytest.fixture(scope="module")
def every_operation(secured_leader, secured_worker):
    ops = [("leader", *o) for o in operations(secured_leader, "/api") + operations(secured_leader, "/unit_api")]
    ops += [("worker", *o) for o in operations(secured_worker, "/unit_api")]
    return ops


def test_the_documents_declare_the_scheme_and_a_scope_for_every_operation(secured_leader):
    for root in ("/api", "/unit_api"):
        doc = secured_leader.simulate_get(f"{root}/openapi.json").json
        assert doc["components"]["securitySchemes"]["bearerAuth"] == {
            "type": "http", "scheme": "bearer", "description": doc["components"]["securitySchemes"]["bearerAuth"][
                "description"]}
        for path, item in doc["paths"].items():
            for method, entry in item.items():
                assert entry["x-scope"] in (*SCOPES, "public"), (method, path)
                if entry["x-scope"] == "public":
                    assert entry["security"] == []
                else:
                    assert {"bearerAuth": [entry["x-scope"]]} in entry["security"], (method, path)
                    assert "401" in entry["responses"] and "403" in entry["responses"], (method, path)


def test_every_operation_without_a_token_is_401_in_the_error_shape(secured_leader, secured_worker, every_operation):
    clients = {"leader": secured_leader, "worker": secured_worker}
    checked = 0
    for app, method, path, scope in every_operation:
        response = clients[app].simulate_request(method, concrete(path), json={} if method != "GET" else None)
        if scope == "public":
            assert response.status_code != 401, (app, method, path)
            continue
        assert response.status_code == 401, (app, method, path, response.status_code, response.text[:200])
        body = response.json
        assert set(body) == {"error", "cause", "remediation", "status"} and body["status"] == 401
        assert response.headers["www-authenticate"].startswith("Bearer")
        checked += 1
    assert checked > 200  # the documents list every route of the leader and the worker


def test_every_operation_refuses_a_smaller_scope_with_403(secured_leader, secured_worker, every_operation, tokens):
    clients = {"leader": secured_leader, "worker": secured_worker}
    checked = set()
    for app, method, path, scope in every_operation:
        if scope in ("public", "read"):
            continue
        for smaller in SCOPES[:SCOPES.index(scope)]:
            response = clients[app].simulate_request(method, concrete(path), headers=bearer(tokens.of(smaller)),
                                                     json={})
            assert response.status_code == 403, (app, method, path, smaller, response.status_code)
            assert response.json["status"] == 403 and scope in response.json["cause"]
            checked.add(scope)
    assert checked == {"control", "admin"}


def test_a_revoked_or_malformed_token_is_401(secured_leader, tokens):
    for token in (tokens.revoked, "rk_00000000_notarealtokennotarealtoken", "garbage", tokens.read + "x"):
        response = secured_leader.simulate_get("/api/experiments", headers=bearer(token))
        assert response.status_code == 401, token


def test_a_token_of_the_scope_gets_through(secured_leader, tokens):
    assert secured_leader.simulate_get("/api/experiments", headers=bearer(tokens.read)).status_code == 200
    created = secured_leader.simulate_post("/api/experiments", headers=bearer(tokens.control),
                                           json={"experiment": "auth-exp"})
    assert created.status_code in (200, 201), created.text
    assert secured_leader.simulate_get("/api/tokens", headers=bearer(tokens.admin)).status_code == 200


def test_health_and_docs_need_no_token(secured_leader, secured_worker):
    for client in (secured_leader, secured_worker):
        assert client.simulate_get("/unit_api/health").status_code == 200
        assert client.simulate_get("/unit_api/docs").status_code == 200
        assert client.simulate_get("/unit_api/openapi.json").status_code == 200
    assert secured_leader.simulate_get("/api/docs").status_code == 200
