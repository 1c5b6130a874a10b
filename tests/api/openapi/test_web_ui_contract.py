"""Contract: the routes the Pioreactor web UI calls beyond endpoints.tsv (``tests/data/spec/web-ui-endpoints.tsv``)
are mounted and are operations of the OpenAPI documents, with a response schema."""

from __future__ import annotations

import csv
import re

import pytest

from repo_data import DATA

with (DATA / "spec" / "web-ui-endpoints.tsv").open(newline="") as fh:
    UI_ENDPOINTS = [(row["method"], row["path"]) for row in csv.DictReader(fh, delimiter="\t")]


def shape(path: str) -> str:
    return re.sub(r"\{[^}]*\}", "{}", path).rstrip("/")


@pytest.fixture(scope="module")
def operations(unit_doc, api_doc) -> dict[tuple[str, str], dict]:
    return {(method.upper(), shape(path)): op for doc in (unit_doc, api_doc)
            for path, methods in doc["paths"].items() for method, op in methods.items()}


def test_the_list_is_not_empty():
    assert len(UI_ENDPOINTS) >= 7


@pytest.mark.parametrize("method, path", UI_ENDPOINTS, ids=[f"{m} {p}" for m, p in UI_ENDPOINTS])
def test_web_ui_endpoint_is_an_operation_with_a_response_schema(operations, method, path):
    operation = operations.get((method, shape(path)))
    assert operation is not None, f"{method} {path} is not in /unit_api or /api openapi.json"
    ok = operation["responses"]["200"]
    assert ok["content"]["application/json"]["schema"]
