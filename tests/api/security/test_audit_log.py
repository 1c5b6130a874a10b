"""The audit log: every state-changing request, who by token name, what, when and the result; admin only."""

from __future__ import annotations

from reactorkit.core.auth.client import bearer


def test_state_changing_requests_are_logged_with_who_what_and_result(secured_leader, tokens):
    created = secured_leader.simulate_post("/api/experiments", json={"experiment": "audited"},
                                           headers=bearer(tokens.control))
    assert created.status_code in (200, 201)
    refused = secured_leader.simulate_post("/api/units/leader/system/reboot", headers=bearer(tokens.read))
    anonymous = secured_leader.simulate_delete("/api/experiments/audited")
    secured_leader.simulate_get("/api/experiments", headers=bearer(tokens.read))  # reads are not logged
    rows = secured_leader.simulate_get("/api/audit", headers=bearer(tokens.admin)).json
    mine = [(r["actor"], r["method"], r["path"], r["status"], r["experiment"]) for r in rows[-3:]]
    assert mine == [("t-control", "POST", "/api/experiments", created.status_code, "audited"),
                    ("t-read", "POST", "/api/units/leader/system/reboot", refused.status_code, None),
                    ("anonymous", "DELETE", "/api/experiments/audited", anonymous.status_code, "audited")]
    assert (refused.status_code, anonymous.status_code) == (403, 401)
    assert rows[-1]["timestamp"].endswith("Z") and rows[-3]["scope"] == "control"
    assert all(r["method"] != "GET" for r in rows)


def test_the_audit_log_is_filtered_and_admin_only(secured_leader, tokens):
    secured_leader.simulate_post("/api/experiments", json={"experiment": "filtered"}, headers=bearer(tokens.admin))
    rows = secured_leader.simulate_get("/api/audit", params={"experiment": "filtered"},
                                       headers=bearer(tokens.admin)).json
    assert {r["experiment"] for r in rows} == {"filtered"} and rows[0]["actor"] == "t-admin"
    assert secured_leader.simulate_get("/api/audit", headers=bearer(tokens.control)).status_code == 403


def test_the_audit_log_is_an_exportable_dataset(secured_leader, tokens):
    secured_leader.simulate_post("/api/experiments", json={"experiment": "exported"}, headers=bearer(tokens.control))
    datasets = secured_leader.simulate_get("/api/datasets/exportable", headers=bearer(tokens.read)).json
    assert "audit_log" in [d["dataset_name"] for d in datasets]
    rows = secured_leader.simulate_get("/api/datasets/exportable/audit_log/preview", params={"n_rows": 100},
                                       headers=bearer(tokens.admin)).json
    assert ("t-control", "POST", "/api/experiments", "exported") in [
        (r["actor"], r["method"], r["path"], r["experiment"]) for r in rows]


def test_the_audit_log_dataset_is_read_and_exported_by_admin_only(secured_leader, tokens):
    preview = secured_leader.simulate_get("/api/datasets/exportable/audit_log/preview",
                                          headers=bearer(tokens.control))
    assert preview.status_code == 403 and "admin" in preview.json["remediation"]
    body = {"datasets": ["od_readings", "audit_log"], "experiments": ["<All experiments>"],
            "partition_by_unit": False, "partition_by_experiment": False}
    export = secured_leader.simulate_post("/api/datasets/exportable/export", json=body,
                                          headers=bearer(tokens.control))
    assert export.status_code == 403 and "audit_log" in export.json["cause"]
    other = secured_leader.simulate_get("/api/datasets/exportable/od_readings/preview",
                                        headers=bearer(tokens.read))
    assert other.status_code == 200  # other datasets keep their scope
