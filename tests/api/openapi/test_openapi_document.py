"""The OpenAPI documents: generated from the app's routes (plugins' included), valid, with the error schema."""

from __future__ import annotations

import re

import falcon
import falcon.routing
import falcon.testing
import pytest

from reactorkit.api.app import create_app
from reactorkit.api.openapi.schemas import normalize
from reactorkit.core.descriptors import RouteDescriptor
from reactorkit.core.hooks import hookimpl
from reactorkit.core.plugins import Registry, make_plugin_manager

METHODS = ("get", "post", "put", "patch", "delete")


def doc_operations(doc: dict) -> set[tuple[str, str]]:
    return {(m.upper(), p) for p, ms in doc["paths"].items() for m in ms}


def app_operations(app, root: str) -> set[tuple[str, str]]:
    out = set()
    for template, (resource, kwargs) in app.route_table.items():
        if not template.startswith(root + "/"):
            continue
        for method in falcon.routing.map_http_methods(resource, suffix=kwargs.get("suffix")):
            if method in ("HEAD", "OPTIONS") and not hasattr(resource, f"on_{method.lower()}"):
                continue
            out.add((method, normalize(template)))
    return out


def test_the_documents_are_openapi_3_1_with_the_error_schema(unit_doc, api_doc):
    for doc in (unit_doc, api_doc):
        assert doc["openapi"].startswith("3.1")
        error = doc["components"]["schemas"]["Error"]
        assert set(error["required"]) == {"error", "cause", "status"}
        assert set(error["properties"]) >= {"error", "cause", "remediation", "status"}


@pytest.mark.parametrize("root", ["/unit_api", "/api"])
def test_every_route_of_the_app_is_in_its_document(leader_app, unit_doc, api_doc, root):
    doc = unit_doc if root == "/unit_api" else api_doc
    expected = app_operations(leader_app, root)
    assert len(expected) > 50
    assert doc_operations(doc) == expected
    assert all(p.startswith(root + "/") for p in doc["paths"])


def test_a_worker_serves_only_the_unit_document(worker_app):
    client = falcon.testing.TestClient(worker_app)
    doc = client.simulate_get("/unit_api/openapi.json").json
    assert doc_operations(doc) == app_operations(worker_app, "/unit_api")
    assert client.simulate_get("/api/openapi.json").status_code == 404


def test_every_operation_documents_the_error_shape_and_the_version_header(unit_doc, api_doc):
    for doc in (unit_doc, api_doc):
        for path, methods in doc["paths"].items():
            for method, operation in methods.items():
                assert operation["responses"]["default"] == {"$ref": "#/components/responses/Error"}, (method, path)
                refs = [p.get("$ref") for p in operation["parameters"]]
                assert "#/components/parameters/ReactorkitVersion" in refs
                fields = re.findall(r"\{([^}]+)\}", path)
                declared = [p["name"] for p in operation["parameters"] if p.get("in") == "path"]
                assert declared == fields, (method, path)


def test_async_operations_take_wait_and_document_the_task_envelope(unit_doc, api_doc):
    run = unit_doc["paths"]["/unit_api/jobs/run/job_name/{job_name}"]["post"]
    assert run["responses"]["202"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/TaskEnvelope"}
    assert any(p.get("name") == "wait" and p["in"] == "query" for p in run["parameters"])
    health = unit_doc["paths"]["/unit_api/health"]["get"]
    assert not any(p.get("name") == "wait" for p in health["parameters"])
    asyncs = [o for ms in api_doc["paths"].values() for o in ms.values() if "202" in o["responses"]
              and "TaskEnvelope" in str(o["responses"]["202"])]
    assert len(asyncs) > 30
    assert all(any(p.get("name") == "wait" for p in o["parameters"]) for o in asyncs)


def test_request_bodies_in_the_document_are_the_validated_schemas(unit_doc):
    body = unit_doc["paths"]["/unit_api/jobs/run/job_name/{job_name}"]["post"]["requestBody"]
    schema = body["content"]["application/json"]["schema"]
    assert set(schema["properties"]) == {"options", "env", "args", "config_overrides"}
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(schema)
    assert validator.is_valid({"options": {"target_rpm": 300}, "args": ["x"]})
    assert not validator.is_valid({"options": "fast"})


def test_the_documents_load_in_schemathesis(unit_doc, api_doc):
    schemathesis = pytest.importorskip("schemathesis")
    for doc in (unit_doc, api_doc):
        loaded = schemathesis.openapi.from_dict(doc)
        operations = [result.ok() for result in loaded.get_all_operations()]
        assert len(operations) == len(doc_operations(doc))


class _Thing:
    """A plugin's thing."""

    def on_get(self, req, resp, name):
        resp.media = {"name": name}

    def on_post(self, req, resp, name):
        resp.media = {"echo": req.get_media()}


class _Documented:
    openapi = {"GET": {"summary": "Documented on the resource.", "responses": {"200": {"type": "integer"}}}}

    def on_get(self, req, resp):
        resp.media = 3


THING_SCHEMAS = {"POST": {"summary": "Make a thing.", "body": {"type": "object", "required": ["size"],
                                                               "properties": {"size": {"type": "integer"}}},
                          "body_required": True, "responses": {"200": {"type": "object"}}}}


class _Sized:
    def on_get(self, req, resp, name):
        resp.media = 1

    def on_delete(self, req, resp, name):
        resp.media = None


# a table of several routes of the plugin, keyed by (METHOD, template), as the built-in plugins declare theirs
THING_TABLE = {
    ("GET", "/unit_api/sizes/{name}"): {"summary": "A thing's size.", "responses": {"200": {"type": "integer"}}},
    ("DELETE", "/unit_api/sizes/{name:path}"): {"summary": "Forget a thing's size."},
    ("GET", "/unit_api/documented"): {"summary": "Another route's entry, not this one's."},
}


class _ThingPlugin:
    """A third-party plugin adding three routes: one with declared schemas, one described by its resource,
    one whose descriptor names a table of the plugin's route descriptions."""

    @hookimpl
    def register_routes(self):
        yield RouteDescriptor(path="/unit_api/things/{name}", resource=_Thing(), schemas=THING_SCHEMAS)
        yield RouteDescriptor(path="/unit_api/documented", resource=_Documented())
        yield RouteDescriptor(path="/unit_api/sizes/{name}", resource=_Sized(), schemas=f"{__name__}:THING_TABLE")


@pytest.fixture(scope="module")
def plugin_app(state_dir):
    pm, loaded = make_plugin_manager()
    pm.register(_ThingPlugin(), name="thing_plugin")
    return create_app(Registry.from_plugins(pm, loaded), unit="worker1", leader=False)


def test_plugin_routes_are_documented_with_what_they_declare_or_generically(plugin_app):
    client = falcon.testing.TestClient(plugin_app)
    doc = client.simulate_get("/unit_api/openapi.json").json
    thing = doc["paths"]["/unit_api/things/{name}"]
    assert thing["post"]["summary"] == "Make a thing."
    assert thing["post"]["requestBody"]["content"]["application/json"]["schema"]["required"] == ["size"]
    assert thing["get"]["summary"] == "A plugin's thing."  # generic: from the resource's docstring
    assert "2XX" in thing["get"]["responses"]
    documented = doc["paths"]["/unit_api/documented"]["get"]
    assert documented["summary"] == "Documented on the resource."
    assert documented["responses"]["200"]["content"]["application/json"]["schema"] == {"type": "integer"}
    sizes = doc["paths"]["/unit_api/sizes/{name}"]
    assert sizes["get"]["summary"] == "A thing's size."
    assert sizes["get"]["responses"]["200"]["content"]["application/json"]["schema"] == {"type": "integer"}
    assert sizes["delete"]["summary"] == "Forget a thing's size."  # templates compared without converters


def test_every_built_in_plugin_route_is_described_by_its_plugin_through_the_registry(leader_app, registry):
    from reactorkit.api.openapi import catalog_of, schemas

    plugin_paths = {normalize(route.path) for route in registry.routes.values()}
    operations = [o for o in catalog_of(leader_app).operations.values() if o.path in plugin_paths]
    assert len(operations) > 100
    for operation in operations:
        assert operation.source == "descriptor", (operation.method, operation.template, operation.source)
        assert schemas.builtin(operation.method, operation.template) is None  # nothing about it in api/


def test_a_plugin_route_body_is_validated_against_its_declared_schema(plugin_app):
    client = falcon.testing.TestClient(plugin_app)
    missing = client.simulate_post("/unit_api/things/a", json={})
    assert missing.status_code == 400
    assert missing.json["error"] == "Invalid request body." and "'size'" in missing.json["cause"]
    wrong = client.simulate_post("/unit_api/things/a", json={"size": "big"})
    assert wrong.status_code == 400 and "'size'" in wrong.json["cause"] and "integer" in wrong.json["cause"]
    ok = client.simulate_post("/unit_api/things/a", json={"size": 3})
    assert ok.status_code == 200 and ok.json == {"echo": {"size": 3}}


def test_the_docs_pages_load_their_assets_from_the_unit(client):
    for root in ("/unit_api", "/api"):
        page = client.simulate_get(f"{root}/docs")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert sources and all(s.startswith("/unit_api/static/") for s in sources), sources
        assert f'"{root}/openapi.json"' in page.text
        assert "https://" not in page.text and "http://" not in page.text
        for source in sources:
            asset = client.simulate_get(source)
            assert asset.status_code == 200 and len(asset.content) > 500, source
