"""The optional ``Reactorkit-Version`` request header, and the header on every response."""

from __future__ import annotations

import pytest

from reactorkit.api.openapi import version


@pytest.mark.parametrize("sent", [None, "1", " 1 ", "*"])
def test_supported_or_absent_versions_are_served_and_answered_with_the_version(client, sent):
    headers = {} if sent is None else {"Reactorkit-Version": sent}
    result = client.simulate_get("/unit_api/health", headers=headers)
    assert result.status_code == 200
    assert result.headers["Reactorkit-Version"] == "1"


@pytest.mark.parametrize("sent", ["2", "0", "v1", "1.0", "latest", ""])
def test_an_unsupported_version_is_a_400_naming_the_supported_ones(client, sent):
    result = client.simulate_post("/api/experiments", json={"experiment": "never_created"},
                                  headers={"Reactorkit-Version": sent})
    assert result.status_code == 400
    assert result.json["error"] == "Unsupported Reactorkit-Version."
    assert f"supports {', '.join(version.SUPPORTED)}" in result.json["cause"]
    assert repr(sent) in result.json["cause"]
    assert result.json["status"] == 400 and result.json["remediation"]
    assert result.headers["Reactorkit-Version"] == version.LATEST
    assert client.simulate_get("/api/experiments/never_created").status_code == 404  # nothing was done


def test_errors_and_unknown_routes_carry_the_header_too(client):
    missing = client.simulate_get("/unit_api/no/such/route")
    assert missing.status_code == 404 and missing.headers["Reactorkit-Version"] == "1"
    invalid = client.simulate_post("/api/experiments", json={"experiment": 5})
    assert invalid.status_code == 400 and invalid.headers["Reactorkit-Version"] == "1"
    docs = client.simulate_get("/unit_api/static/swagger-ui.css")
    assert docs.headers["Reactorkit-Version"] == "1"


def test_browsers_may_read_the_header(client):
    result = client.simulate_get("/unit_api/health", headers={"Origin": "http://leader.local"})
    assert "Reactorkit-Version" in result.headers["Access-Control-Expose-Headers"]


def test_the_documents_describe_the_header(unit_doc):
    parameter = unit_doc["components"]["parameters"]["ReactorkitVersion"]
    assert parameter["in"] == "header" and parameter["name"] == "Reactorkit-Version"
    assert set(parameter["schema"]["enum"]) == {*version.SUPPORTED, "*"}
    health = unit_doc["paths"]["/unit_api/health"]["get"]["responses"]["200"]
    assert health["headers"]["Reactorkit-Version"] == {"$ref": "#/components/headers/ReactorkitVersion"}
