"""Leader fan-out: envelopes, error kinds, task polling, target resolution (§1.2, §8)."""

import json

import httpx
import pytest

from reactorkit.api import fanout
from reactorkit.core.config import load_config


@pytest.fixture
def config():
    config = load_config()
    config.read_string("[cluster.addresses]\npio01 = pio01:4999\npio02 = pio02:4999\npio03 = pio03:4999\n")
    return config


def client_for(routes):
    """An httpx client whose transport answers with ``routes[(host, path)](request)``; unknown hosts refuse."""
    seen = []

    def handler(request):
        seen.append((request.method, request.url.host, request.url.path,
                     json.loads(request.content) if request.content else None))
        answer = routes.get((request.url.host, request.url.path))
        if answer is None:
            raise httpx.ConnectError("connection refused", request=request)
        return answer(request) if callable(answer) else answer

    client = httpx.Client(transport=httpx.MockTransport(handler))
    client.seen = seen
    return client


def run(config, client, method, units, path, body=None, **kwargs):
    return fanout.fan_out(method, units, path, body, config=config, client=client, poll_interval_s=0, **kwargs)


def test_success_wraps_the_body_and_strips_a_success_status(config):
    client = client_for({("pio01", "/unit_api/x"): httpx.Response(200, json={"status": "success", "n": 1})})
    assert run(config, client, "GET", ["pio01"], "/unit_api/x") == {
        "pio01": {"ok": True, "unit": "pio01", "value": {"n": 1}}
    }


def test_one_unreachable_unit_does_not_fail_the_others(config):
    client = client_for({("pio01", "/unit_api/jobs/run/job_name/stirring"): httpx.Response(200, json={"ok": True})})
    result = run(config, client, "POST", ["pio02", "pio01"], "/unit_api/jobs/run/job_name/stirring", {})
    assert list(result) == ["pio01", "pio02"]
    assert result["pio01"] == {"ok": True, "unit": "pio01", "value": {"ok": True}}
    failed = result["pio02"]
    assert failed["ok"] is False and failed["retryable"] is True and failed["status_code"] is None
    assert failed["error"]["kind"] == "connection_error"
    assert failed["error"]["message"] == "Could not POST to pio02's /unit_api/jobs/run/job_name/stirring."


def test_the_body_goes_to_every_unit_and_per_unit_bodies_win(config):
    ok = httpx.Response(200, json=[])
    client = client_for({("pio01", "/unit_api/a"): ok, ("pio02", "/unit_api/a"): ok})
    run(config, client, "POST", ["pio01", "pio02"], "/unit_api/a", {"x": 1}, json_per_unit={"pio02": {"x": 2}})
    bodies = {host: body for _, host, _, body in client.seen}
    assert bodies == {"pio01": {"x": 1}, "pio02": {"x": 2}}


@pytest.mark.parametrize("code, retryable", [(404, False), (400, False), (500, True), (503, True)])
def test_http_errors_are_retryable_only_from_500(config, code, retryable):
    body = {"error": "Job 'x' is not running.", "cause": "no row", "remediation": "start it", "status": code}
    client = client_for({("pio01", "/unit_api/x"): httpx.Response(code, json=body)})
    envelope = run(config, client, "GET", ["pio01"], "/unit_api/x")["pio01"]
    assert envelope["error"]["kind"] == "http_error"
    assert envelope["status_code"] == code
    assert envelope["retryable"] is retryable
    assert envelope["error"]["message"] == "Job 'x' is not running."
    assert envelope["error"]["cause"] == "no row"


def test_unit_error_text_is_copied_only_when_its_status_matches(config):
    body = {"error": "secret detail", "status": 200}
    client = client_for({("pio01", "/unit_api/x"): httpx.Response(502, json=body)})
    envelope = run(config, client, "GET", ["pio01"], "/unit_api/x")["pio01"]
    assert "secret detail" not in json.dumps(envelope)
    assert envelope["error"]["message"] == "pio01 answered 502 to GET /unit_api/x."


def test_a_body_that_is_not_json_is_a_decode_error(config):
    client = client_for({("pio01", "/unit_api/x"): httpx.Response(200, text="<html>")})
    envelope = run(config, client, "GET", ["pio01"], "/unit_api/x")["pio01"]
    assert envelope["error"]["kind"] == "decode_error"
    assert envelope["retryable"] is False


def accepted(task_id="t1"):
    return httpx.Response(202, json={"unit": "pio01", "task_id": task_id,
                                     "result_url_path": f"/unit_api/task_results/{task_id}", "status": "accepted"})


def polls(*answers):
    """A handler giving the answers in order (the last one repeats)."""
    answers = list(answers)

    def handler(request):
        return answers.pop(0) if len(answers) > 1 else answers[0]

    return handler


def result(status, code=200, **extra):
    return httpx.Response(code, json={"task_id": "t1", "result_url_path": "/unit_api/task_results/t1",
                                      "status": status, **extra})


def test_a_task_reply_is_polled_and_replaced_by_its_result(config):
    client = client_for({
        ("pio01", "/unit_api/jobs/run/job_name/stirring"): accepted(),
        ("pio01", "/unit_api/task_results/t1"): polls(result("pending", 202), result("running", 202),
                                                      result("succeeded", result={"ok": True})),
    })
    envelope = run(config, client, "POST", ["pio01"], "/unit_api/jobs/run/job_name/stirring", {})["pio01"]
    assert envelope == {"ok": True, "unit": "pio01", "value": {"ok": True}}
    assert [p for _, _, p, _ in client.seen].count("/unit_api/task_results/t1") == 3


def test_a_failed_task_reports_its_error(config):
    client = client_for({
        ("pio01", "/unit_api/a"): accepted(),
        ("pio01", "/unit_api/task_results/t1"): result("failed", error="stirring exited with code 1.",
                                                       cause="Error: already running"),
    })
    envelope = run(config, client, "POST", ["pio01"], "/unit_api/a")["pio01"]
    assert envelope["ok"] is False
    assert envelope["error"] == {"kind": "task_failed", "message": "stirring exited with code 1.",
                                 "cause": "Error: already running"}


def test_a_task_that_never_finishes_times_out(config):
    client = client_for({("pio01", "/unit_api/a"): accepted(),
                         ("pio01", "/unit_api/task_results/t1"): result("pending", 202)})
    envelope = run(config, client, "POST", ["pio01"], "/unit_api/a", poll_max=3)["pio01"]
    assert envelope["error"]["kind"] == "task_timeout"
    assert [p for _, _, p, _ in client.seen].count("/unit_api/task_results/t1") == 3


def test_default_polling_budget_is_thirty_seconds_of_quarter_second_polls():
    assert fanout.POLL_INTERVAL_S == 0.25 and fanout.POLL_MAX == 120
    assert fanout.default_timeout("GET") == 5.0 and fanout.default_timeout("POST") == 2.0


@pytest.mark.parametrize("answer, kind", [
    (result("succeeded"), "missing_result"),
    (result("exploded"), "task_incomplete"),
    (httpx.Response(200, json=[1, 2]), "invalid_response"),
    (httpx.Response(200, text="nope"), "decode_error"),
])
def test_odd_task_results_have_their_own_kinds(config, answer, kind):
    client = client_for({("pio01", "/unit_api/a"): accepted(), ("pio01", "/unit_api/task_results/t1"): answer})
    assert run(config, client, "POST", ["pio01"], "/unit_api/a")["pio01"]["error"]["kind"] == kind


def test_a_202_without_a_result_path_is_an_invalid_response(config):
    client = client_for({("pio01", "/unit_api/a"): httpx.Response(202, json={"task_id": "x"})})
    assert run(config, client, "POST", ["pio01"], "/unit_api/a")["pio01"]["error"]["kind"] == "invalid_response"


def test_polling_that_loses_the_unit_is_a_task_exception(config):
    client = client_for({("pio01", "/unit_api/a"): accepted()})
    envelope = run(config, client, "POST", ["pio01"], "/unit_api/a")["pio01"]
    assert envelope["error"]["kind"] == "task_exception"


def test_path_may_depend_on_the_unit(config):
    ok = httpx.Response(200, json={})
    client = client_for({("pio01", "/unit_api/p/pio01"): ok, ("pio02", "/unit_api/p/pio02"): ok})
    result = run(config, client, "GET", ["pio01", "pio02"], lambda unit: f"/unit_api/p/{unit}")
    assert all(e["ok"] for e in result.values())


def test_no_targets_means_an_empty_result(config):
    assert run(config, client_for({}), "GET", [], "/unit_api/x") == {}


def test_task_envelope_points_at_the_task_results_route():
    assert fanout.task_envelope("abc", "leader") == {
        "unit": "leader", "task_id": "abc", "result_url_path": "/unit_api/task_results/abc", "status": "accepted"}


# ------------------------------------------------------------ target resolution
@pytest.fixture
def db(tmp_path, monkeypatch):
    from reactorkit.core.leader_db import LeaderDB

    config = load_config()
    config.set("cluster.topology", "leader_hostname", "leader")
    db = LeaderDB(tmp_path / "leader.sqlite", config=config)
    for unit in ("pio01", "pio02", "pio03"):
        db.add_worker(unit)
    db.set_worker_active("pio03", False)
    db.execute("INSERT INTO experiments (experiment, created_at) VALUES ('exp1', '2026-01-01T00:00:00.000Z')")
    db.execute("INSERT INTO experiments (experiment, created_at) VALUES ('empty', '2026-01-01T00:00:00.000Z')")
    db.assign("pio01", "exp1")
    db.assign("pio03", "exp1")
    return db


def test_broadcast_over_workers_is_the_active_workers(db):
    assert fanout.resolve_units("$broadcast", family="workers", db=db) == ["pio01", "pio02"]


def test_broadcast_over_units_includes_the_leader_and_inactive_workers(db):
    assert fanout.resolve_units("$broadcast", family="units", db=db) == ["leader", "pio01", "pio02", "pio03"]


def test_a_named_unit_must_belong_to_the_family(db):
    assert fanout.resolve_units("pio03", family="workers", db=db) == ["pio03"]
    assert fanout.resolve_units("leader", family="units", db=db) == ["leader"]
    with pytest.raises(fanout.UnknownUnit):
        fanout.resolve_units("leader", family="workers", db=db)
    with pytest.raises(fanout.UnknownUnit):
        fanout.resolve_units("nobody", family="units", db=db)


def test_job_runs_target_active_workers_assigned_to_the_experiment(db):
    assert fanout.resolve_units("$broadcast", experiment="exp1", db=db) == ["pio01"]
    assert fanout.resolve_units("$broadcast", experiment="$experiment", db=db) == ["pio01", "pio02"]
    assert fanout.resolve_units("pio01", experiment="exp1", db=db) == ["pio01"]
    with pytest.raises(fanout.NoTargets):
        fanout.resolve_units("pio02", experiment="exp1", db=db)
    with pytest.raises(fanout.NoTargets):
        fanout.resolve_units("$broadcast", experiment="empty", db=db)
    with pytest.raises(fanout.UnknownExperiment):
        fanout.resolve_units("$broadcast", experiment="nope", db=db)


def test_inactive_assigned_workers_count_when_active_only_is_off(db):
    assert fanout.resolve_units("$broadcast", experiment="exp1", active_only=False, db=db) == ["pio01", "pio03"]
