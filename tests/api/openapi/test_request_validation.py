"""Request bodies and query parameters are validated against the documented schemas, for every operation.

For each operation with a JSON body schema, a valid body is built from its
schema; then each field in turn gets a value of a wrong type, and each required
field is left out: the answer is a 400 ``Invalid request body.`` whose cause
names the field. Declared numeric query parameters given a word are a 400 naming
the parameter. The checks run before the handler, so nothing is acted on.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from reactorkit.api.openapi.schemas.common import COMPONENTS

WRONG_VALUES: list[Any] = [{"an": "object"}, ["a", "list"], "a-string", 1.5, 7, True]
PATH_VALUES = {"automation_type": "dosing"}


def resolve(schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    return resolve(COMPONENTS[ref.rsplit("/", 1)[-1]]) if ref else schema


def example(schema: dict[str, Any]) -> Any:
    """A small value that satisfies ``schema`` (the subset of JSON Schema the API's schemas use)."""
    schema = resolve(schema)
    if "enum" in schema:
        return schema["enum"][0]
    if "anyOf" in schema:
        return example(next(s for s in schema["anyOf"] if s.get("type") != "null"))
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = next(k for k in kind if k != "null")
    if kind == "object":
        out = {name: example(schema["properties"][name]) for name in schema.get("required", ())}
        if schema.get("minProperties") and not out:
            name, sub = next(iter(schema.get("properties", {}).items()), ("key", schema.get("additionalProperties")))
            out[name] = example(sub or {"type": "string"})
        return out
    if kind == "array":
        return [example(schema.get("items", {"type": "string"})) for _ in range(schema.get("minItems", 0))]
    return {"string": "x1", "integer": 1, "number": 1.0, "boolean": True}[kind]


def wrong_value(schema: dict[str, Any]) -> Any:
    validator = Draft202012Validator(resolve(schema))
    return next(v for v in WRONG_VALUES if not validator.is_valid(v))


def concrete(path: str) -> str:
    return re.sub(r"\{([^}]+)\}", lambda m: PATH_VALUES.get(m.group(1), "x1"), path)


def body_operations(doc: dict) -> list[tuple[str, str, dict]]:
    out = []
    for path, methods in doc["paths"].items():
        for method, operation in methods.items():
            content = operation.get("requestBody", {}).get("content", {})
            schema = content.get("application/json", {}).get("schema")
            if schema and schema.get("properties"):
                out.append((method.upper(), path, schema))
    return out


@pytest.fixture(scope="module")
def operations(unit_doc, api_doc):
    return body_operations(unit_doc) + body_operations(api_doc)


def test_many_operations_declare_body_schemas(operations):
    assert len(operations) >= 50


def test_a_wrong_type_is_a_400_naming_the_field_for_every_operation(client, operations):
    checked = 0
    for method, path, schema in operations:
        valid = example(schema)
        assert Draft202012Validator(schema).is_valid(valid), (method, path, valid)
        for name, prop in schema["properties"].items():
            body = copy.deepcopy(valid)
            body[name] = wrong_value(prop)
            result = client.simulate_request(method, concrete(path), json=body)
            assert result.status_code == 400, (method, path, name, result.status_code, result.text)
            assert result.json["error"] == "Invalid request body.", (method, path, name, result.json)
            assert f"'{name}" in result.json["cause"], (method, path, name, result.json["cause"])
            assert result.headers.get("Reactorkit-Version") == "1"
            checked += 1
    assert checked >= 150


def test_a_missing_required_field_is_a_400_naming_it_for_every_operation(client, operations):
    checked = 0
    for method, path, schema in operations:
        valid = example(schema)
        for name in schema.get("required", ()):
            body = {k: v for k, v in valid.items() if k != name}
            result = client.simulate_request(method, concrete(path), json=body)
            assert result.status_code == 400, (method, path, name, result.text)
            assert result.json["cause"] == f"Field '{name}' is required.", (method, path, result.json)
            checked += 1
    assert checked >= 40


def test_a_body_that_is_not_an_object_or_not_json_is_a_400(client):
    array = client.simulate_post("/api/experiments", json=["exp"])
    assert array.status_code == 400 and array.json["cause"] == "The body must be an object, got an array."
    number = client.simulate_post("/api/experiments", json={"experiment": 5})
    assert number.json["cause"] == "Field 'experiment' must be a string, got 5 (an integer)."  # the value sent
    broken = client.simulate_post("/api/experiments", body="{nope", headers={"Content-Type": "application/json"})
    assert broken.status_code == 400 and "not valid JSON" in broken.json["error"]


def test_a_json_parse_error_names_its_line_and_column_in_one_body(client):
    text = '{"experiment": "e1",\n "description": unquoted}'
    result = client.simulate_post("/api/experiments", body=text, headers={"Content-Type": "application/json"})
    assert result.status_code == 400
    assert result.json["error"] == "The body is not valid JSON (line 2, column 17)."
    assert result.json["cause"] == "JSON parsing stopped at line 2, column 17: Expecting value."
    assert result.json["remediation"].startswith("Fix the JSON at line 2, column 17")
    # also on an operation that declares no body schema
    bare = client.simulate_post("/unit_api/jobs/stop/all", body="{,}", headers={"Content-Type": "application/json"})
    assert bare.status_code == 400 and bare.json["error"] == "The body is not valid JSON (line 1, column 2)."


def test_a_method_the_path_does_not_take_is_named_with_the_ones_it_takes(client):
    result = client.simulate_delete("/api/experiments")
    assert result.status_code == 405
    assert result.json == {"error": "Method not allowed.",
                           "cause": "DELETE is not one of the methods /api/experiments takes (GET or POST).",
                           "remediation": "Send the request as GET or POST.", "status": 405}


def test_nested_fields_are_named_with_their_path(client):
    result = client.simulate_post("/unit_api/jobs/run/job_name/stirring", json={"args": ["a", {"b": 1}]})
    assert result.status_code == 400 and result.json["cause"].startswith("Field 'args[1]' must be")
    result = client.simulate_patch("/unit_api/bioreactor/experiments/e1", json={"values": {"alt_media_fraction": 2}})
    assert result.status_code == 400 and result.json["cause"].startswith("Field 'values.alt_media_fraction' must be ≤ 1")


def test_an_optional_field_may_be_null(client):
    # the handlers treat null as absent; the schemas agree (400 here would come from the handler, not the schema)
    result = client.simulate_post("/unit_api/jobs/run/job_name/no_such_job", json={"options": None, "args": None})
    assert result.status_code == 404


def test_unpaired_surrogates_and_topic_breaking_names_are_refused(client):
    surrogate = client.simulate_patch("/api/workers/$broadcast/jobs/update/job_name/stirring/experiments/e1",
                                      body='{"settings": {"target_rpm": "\\ud800"}}',
                                      headers={"Content-Type": "application/json"})
    assert surrogate.status_code == 400 and "'settings.target_rpm'" in surrogate.json["cause"]
    wildcard = client.simulate_patch("/api/workers/$broadcast/jobs/update/job_name/stirring/experiments/e1",
                                     json={"settings": {"target+rpm": 1}})
    assert wildcard.status_code == 400 and "'settings'" in wildcard.json["cause"]
    path = client.simulate_post("/api/workers/$broadcast/jobs/stop/job_name/stir%23ring/experiments/e1")
    assert path.status_code == 400 and "'job_name'" in path.json["cause"]


def test_declared_numeric_query_parameters_are_checked(client, unit_doc, api_doc):
    checked = 0
    for doc in (unit_doc, api_doc):
        for path, methods in doc["paths"].items():
            for method, operation in methods.items():
                for parameter in operation["parameters"]:
                    schema = parameter.get("schema", {})
                    if parameter.get("in") != "query" or schema.get("type") not in ("integer", "number"):
                        continue
                    result = client.simulate_request(method.upper(), concrete(path),
                                                     params={parameter["name"]: "lots"})
                    assert result.status_code == 400, (method, path, parameter["name"], result.text)
                    assert f"'{parameter['name']}'" in result.json["error"] + result.json["cause"]
                    checked += 1
    assert checked >= 20
