"""The browser boundary: no CORS by default, foreign origins refused, JSON only, and the UI's login cookie."""

from __future__ import annotations

import falcon.testing
import pytest

from reactorkit.api.app import create_app
from reactorkit.core.auth.client import bearer
from reactorkit.core.config import load_config

RUN_PUMP = "/api/workers/worker1/jobs/run/job_name/add_media/experiments/exp1"
EVIL = "http://evil.example"


def test_no_cors_headers_for_a_foreign_origin(secured_leader, tokens):
    response = secured_leader.simulate_get("/api/experiments", headers={**bearer(tokens.read), "Origin": EVIL})
    assert response.status_code == 200
    assert "access-control-allow-origin" not in response.headers
    preflight = secured_leader.simulate_request("OPTIONS", RUN_PUMP, headers={
        "Origin": EVIL, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"})
    assert "access-control-allow-origin" not in preflight.headers


def test_a_cross_origin_form_post_with_the_login_cookie_cannot_start_a_pump(secured_leader, tokens):
    cookie = {"Cookie": f"reactorkit_token={tokens.admin}"}
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    # what a plain HTML form on another site sends (were the browser to attach the cookie at all)
    attack = secured_leader.simulate_post(RUN_PUMP, body="options=%7B%7D", headers={**cookie, **form, "Origin": EVIL})
    assert attack.status_code == 403 and attack.json["error"] == "Cross-origin request refused."
    # the same form without an Origin header (an old browser): the body is not JSON
    attack = secured_leader.simulate_post(RUN_PUMP, body="options=%7B%7D", headers={**cookie, **form})
    assert attack.status_code == 415 and attack.json["status"] == 415
    for media in ("text/plain", "multipart/form-data; boundary=x"):
        attack = secured_leader.simulate_post(RUN_PUMP, body='{"options": {}}',
                                              headers={**cookie, "Content-Type": media})
        assert attack.status_code == 415, media
    # marked cross-site by the browser
    attack = secured_leader.simulate_post(RUN_PUMP, json={}, headers={**cookie, "Sec-Fetch-Site": "cross-site"})
    assert attack.status_code == 403


def test_same_origin_and_programs_still_change_state(secured_leader, tokens):
    own = secured_leader.simulate_post("/api/experiments", json={"experiment": "same-origin"},
                                       headers={**bearer(tokens.control), "Origin": "http://falconframework.org"})
    assert own.status_code in (200, 201), own.text
    program = secured_leader.simulate_post("/api/experiments", json={"experiment": "from-a-script"},
                                           headers=bearer(tokens.control))
    assert program.status_code in (200, 201), program.text


@pytest.fixture
def configured_cors(secured_root, secured_registry, tmp_path):
    config = load_config()
    config.read_string("[api]\ncors_origins = https://dashboard.lab.example, http://10.0.0.5:3000\n")
    return falcon.testing.TestClient(create_app(secured_registry, config=config, unit="leader", leader=True))


def test_listed_origins_get_cors_and_may_change_state(configured_cors, tokens):
    origin = "https://dashboard.lab.example"
    response = configured_cors.simulate_get("/api/experiments", headers={**bearer(tokens.read), "Origin": origin})
    assert response.headers["access-control-allow-origin"] == origin
    assert response.headers["access-control-allow-credentials"] == "true"
    posted = configured_cors.simulate_post("/api/experiments", json={"experiment": "from-dashboard"},
                                           headers={**bearer(tokens.control), "Origin": origin})
    assert posted.status_code in (200, 201), posted.text
    other = configured_cors.simulate_post("/api/experiments", json={"experiment": "x"},
                                          headers={**bearer(tokens.control), "Origin": EVIL})
    assert other.status_code == 403 and "access-control-allow-origin" not in other.headers


def test_login_exchanges_a_token_for_a_strict_http_only_cookie(secured_leader, tokens):
    page = secured_leader.simulate_get("/login", params={"next": "/overview"})
    assert page.status_code == 200 and "<form" in page.text
    assert 'window.location.replace("/overview")' in page.text  # where the page goes once logged in
    bad = secured_leader.simulate_post("/login", json={"token": "rk_00000000_wrongwrongwrongwrongwrong"})
    assert bad.status_code == 401 and "set-cookie" not in bad.headers
    good = secured_leader.simulate_post("/login", json={"token": tokens.read})
    assert good.status_code == 200 and good.json == {"name": "t-read", "scope": "read"}
    cookie = good.headers["set-cookie"]
    assert cookie.startswith(f"reactorkit_token={tokens.read}")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    with_cookie = {"Cookie": f"reactorkit_token={tokens.read}"}
    assert secured_leader.simulate_get("/api/experiments", headers=with_cookie).status_code == 200
    # the cookie carries the token's scope, no more
    assert secured_leader.simulate_post("/api/experiments", json={"experiment": "e"},
                                        headers=with_cookie).status_code == 403


def test_the_login_form_redirects_to_a_local_page_only(secured_leader, tokens):
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    done = secured_leader.simulate_post("/login", body=f"token={tokens.read}&next=/overview", headers=form)
    assert done.status_code == 303 and done.headers["location"] == "/overview"
    elsewhere = secured_leader.simulate_post("/login", body=f"token={tokens.read}&next=//evil.example", headers=form)
    assert elsewhere.headers["location"] == "/"
    foreign = secured_leader.simulate_post("/login", body=f"token={tokens.read}", headers={**form, "Origin": EVIL})
    assert foreign.status_code == 403
