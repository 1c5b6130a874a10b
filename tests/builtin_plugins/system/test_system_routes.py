"""System routes on an in-process leader; tasks run on a real rq worker in this process (the test Redis DB)."""

import io
import zipfile

import pytest

pytestmark = pytest.mark.integration


@pytest.fixture
def tree(leader_env, tmp_path):
    root = leader_env.root
    (root / "plugins").mkdir()
    (root / "plugins" / "mine.py").write_text("__plugin_name__ = 'mine'\n")
    (root / "storage").mkdir(exist_ok=True)
    (root / "uploads").mkdir()
    (root / "notes.txt").write_text("hello")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("TOP-SECRET-CONTENT")
    (root / "escape").symlink_to(outside)
    (root / "escape.txt").symlink_to(outside / "secret.txt")
    return root


def task(client, accepted, run_tasks):
    assert accepted.status_code == 202, accepted.text
    assert accepted.json["status"] == "accepted"
    run_tasks()
    return client.simulate_get(accepted.json["result_url_path"]).json


def zip_bytes(entries):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in entries:
            zf.writestr(name, data)
    return buffer.getvalue()


def multipart(field, filename, data):
    boundary = "rkboundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return {"body": body, "headers": {"Content-Type": f"multipart/form-data; boundary={boundary}"}}


# ------------------------------------------------------------- traversal
UNSAFE = ["..%2F..%2Fetc%2Fpasswd", "%2Fetc%2Fpasswd", "escape%2Fsecret.txt", "escape.txt"]


@pytest.mark.parametrize("path", UNSAFE)
def test_path_listing_refuses_traversal_absolute_and_links(leader_client, tree, path):
    result = leader_client.simulate_get(f"/unit_api/system/path/{path}")
    assert result.status_code == 400, result.text
    assert "TOP-SECRET-CONTENT" not in result.text


@pytest.mark.parametrize("filepath", ["../outside/secret.txt", "/etc/passwd", "escape/secret.txt", "escape.txt"])
def test_remove_file_refuses_traversal_absolute_and_links(leader_client, tree, tmp_path, filepath):
    result = leader_client.simulate_post("/unit_api/system/remove_file", json={"filepath": filepath})
    assert result.status_code == 400
    assert (tmp_path / "outside" / "secret.txt").exists()


@pytest.mark.parametrize("path", ["..%2F..%2Fnotes.py", "%2Fetc%2Fx.py", "..%2Fescape.txt"])
def test_plugin_file_and_upload_downloads_refuse_traversal(leader_client, tree, path):
    assert leader_client.simulate_get(f"/unit_api/plugins/installed/{path}").status_code == 400
    assert leader_client.simulate_get(f"/unit_api/system/uploads/{path}").status_code == 400


@pytest.mark.parametrize("filename", ["../evil.whl", "/tmp/evil.whl", "..", ".hidden"])
def test_uploads_refuse_unsafe_names(leader_client, tree, filename):
    result = leader_client.simulate_post("/api/system/upload", **multipart("file", filename, b"data"))
    assert result.status_code == 400
    assert not list((tree / "uploads").glob("*evil*")) if (tree / "uploads").exists() else True


@pytest.mark.parametrize("source", ["../outside/secret.txt", "/etc/passwd", "escape/secret.txt"])
def test_plugin_install_sources_must_be_inside_the_state_folder(leader_client, tree, source):
    result = leader_client.simulate_post("/unit_api/plugins/install", json={"args": ["x"], "options": {"source": source}})
    assert result.status_code == 400


# --------------------------------------------------------------- listing
def test_path_listing_and_file_contents(leader_client, tree):
    listing = leader_client.simulate_get("/unit_api/system/path/").json
    assert listing["current"] == str(tree)
    assert "plugins" in listing["dirs"] and "notes.txt" in listing["files"]
    assert leader_client.simulate_get("/unit_api/system/path/plugins").json["files"] == ["mine.py"]
    assert leader_client.simulate_get("/unit_api/system/path/notes.txt").text == "hello"
    assert leader_client.simulate_get("/unit_api/system/path/nothing").status_code == 404


def test_remove_file_runs_as_a_task(leader_client, tree, run_tasks):
    result = task(leader_client, leader_client.simulate_post("/unit_api/system/remove_file",
                                                             json={"filepath": "notes.txt"}), run_tasks)
    assert result["status"] == "succeeded"
    assert not (tree / "notes.txt").exists()
    assert leader_client.simulate_post("/unit_api/system/remove_file", json={"filepath": "notes.txt"}).status_code == 404


def test_installed_plugin_file_is_served_as_text(leader_client, tree):
    assert leader_client.simulate_get("/unit_api/plugins/installed/mine.py").text == "__plugin_name__ = 'mine'\n"
    mine = [p for p in leader_client.simulate_get("/unit_api/plugins/installed").json if p["name"] == "mine"]
    assert mine and mine[0]["source"] == "plugins/mine.py" and mine[0]["errors"] == []


# -------------------------------------------------------- system commands
@pytest.mark.parametrize("kind", ["reboot", "shutdown", "repair"])
def test_system_commands_are_disabled_off_a_pi_and_say_so(leader_client, tree, run_tasks, kind):
    result = task(leader_client, leader_client.simulate_post(f"/unit_api/system/{kind}"), run_tasks)
    assert result["status"] == "failed"
    assert "disabled" in result["error"]
    assert "simulated" in result["cause"]
    assert "commands_enabled" in result["remediation"]


def test_enabled_system_commands_run_the_configured_command(leader_client, leader_env, tree, run_tasks):
    marker = tree / "rebooted"
    with open(leader_env.root / "config.ini", "a") as fh:
        fh.write(f"[system]\ncommands_enabled = 1\nreboot_command = touch {marker}\n")
    from reactorkit.core.config import set_config

    set_config(None)
    result = task(leader_client, leader_client.simulate_post("/unit_api/system/reboot"), run_tasks)
    assert result["status"] == "succeeded", result
    assert marker.exists()


def test_update_of_an_unknown_target_is_400_and_updates_are_disabled_here(leader_client, tree, run_tasks):
    assert leader_client.simulate_post("/unit_api/system/update/firmware", json={}).status_code == 400
    result = task(leader_client, leader_client.simulate_post("/unit_api/system/update/app",
                                                             json={"options": {"version": "1.2.3"}}), run_tasks)
    assert result["status"] == "failed" and "disabled" in result["error"]


def test_web_server_status_shape(leader_client, tree):
    status = leader_client.simulate_get("/unit_api/system/web_server/status").json
    assert set(status) == {"service", "state", "raw_status"}
    assert "rq-worker=" in status["raw_status"]


def test_utc_clock_set_fails_with_a_clear_cause_off_a_pi(leader_client, tree, run_tasks):
    result = task(leader_client, leader_client.simulate_post("/unit_api/system/utc_clock",
                                                             json={"utc_clock_time": "2026-01-01T00:00:00Z"}), run_tasks)
    assert result["status"] == "failed"
    assert "Raspberry Pi" in result["error"]


def test_plugin_installs_can_be_forbidden(leader_client, tree):
    (tree / "DISALLOW_UI_INSTALLS").write_text("")
    assert leader_client.simulate_post("/unit_api/plugins/install", json={"args": ["x"]}).status_code == 403


# ---------------------------------------------------------------- archives
def test_zipped_dot_pioreactor_round_trips_through_import(leader_client, tree, run_tasks):
    exported = leader_client.simulate_get("/unit_api/zipped_dot_pioreactor")
    assert exported.status_code == 200 and exported.headers["content-type"] == "application/zip"
    names = zipfile.ZipFile(io.BytesIO(exported.content)).namelist()
    assert "notes.txt" in names and "plugins/mine.py" in names
    assert not any(n.startswith("escape") for n in names)
    (tree / "notes.txt").write_text("changed")
    result = task(leader_client, leader_client.simulate_post("/unit_api/import_zipped_dot_pioreactor",
                                                             **multipart("archive", "backup.zip", exported.content)),
                  run_tasks)
    assert result["status"] == "succeeded", result
    assert result["result"]["imported"] is True
    assert (tree / "notes.txt").read_text() == "hello"


def test_an_import_keeps_this_units_outbox_its_numbering_and_waiting_messages(leader_client, leader_env, tree,
                                                                               run_tasks):
    # the outbox numbers what the unit's jobs publish; the leader stores a number once. An archive's outbox is that
    # of the time it was exported: its numbering would start again below numbers the leader has stored (it would
    # drop the new messages as copies), and messages published since and still waiting would be lost
    from reactorkit.core.outbox import Outbox

    path = tree / "storage" / "outbox.sqlite"
    topic = leader_env.topic("od_reading", "od1")
    box = Outbox(path)
    stored, _ = box.append(topic, b"1", qos=1, retain=False, owner="1:1")
    box.delete([stored])
    exported = leader_client.simulate_get("/unit_api/zipped_dot_pioreactor").content
    stored, _ = box.append(topic, b"2", qos=1, retain=False, owner="1:1")  # after the export, stored by the leader
    box.delete([stored])
    box.append(topic, b"3", qos=1, retain=False, owner="1:1")  # after the export, not yet stored
    stream = box.stream
    box.close()
    result = task(leader_client, leader_client.simulate_post("/unit_api/import_zipped_dot_pioreactor",
                                                             **multipart("archive", "backup.zip", exported)),
                  run_tasks)
    assert result["status"] == "succeeded", result
    after = Outbox(path)
    try:
        assert after.stream == stream
        assert [(seq, payload) for _, _, seq, payload, _ in after.pending("1:1", 0)] == [(3, b"3")]
        assert after.append(topic, b"4", qos=1, retain=False, owner="1:1")[1] == 4
    finally:
        after.close()


def test_an_import_keeps_the_pid_file_of_the_running_web_server(leader_client, tree, run_tasks):
    # archives leave .pid files out; the web server's is how a plugin install (reload) and a restart through the
    # API find its master
    pid_file = tree / "storage" / "gunicorn.pid"
    pid_file.write_text("4242\n")
    exported = leader_client.simulate_get("/unit_api/zipped_dot_pioreactor").content
    assert "storage/gunicorn.pid" not in zipfile.ZipFile(io.BytesIO(exported)).namelist()
    result = task(leader_client, leader_client.simulate_post("/unit_api/import_zipped_dot_pioreactor",
                                                             **multipart("archive", "backup.zip", exported)),
                  run_tasks)
    assert result["status"] == "succeeded", result
    assert pid_file.read_text() == "4242\n"


def test_an_import_brings_no_outbox_where_there_was_none(leader_client, leader_env, tree, run_tasks):
    # an archive's outbox (another unit's, or this one's of before a reinstall) is not this unit's queue
    from reactorkit.core.outbox import Outbox

    path = tree / "storage" / "outbox.sqlite"
    box = Outbox(path)
    box.append(leader_env.topic("od_reading", "od1"), b"1", qos=1, retain=False, owner="1:1")
    box.close()
    exported = leader_client.simulate_get("/unit_api/zipped_dot_pioreactor").content
    assert "storage/outbox.sqlite" in zipfile.ZipFile(io.BytesIO(exported)).namelist()
    path.unlink()
    result = task(leader_client, leader_client.simulate_post("/unit_api/import_zipped_dot_pioreactor",
                                                             **multipart("archive", "backup.zip", exported)),
                  run_tasks)
    assert result["status"] == "succeeded", result
    assert not path.exists()


@pytest.mark.parametrize("entries", [[("../evil", b"x")], [("/evil", b"x")], [("a/../../evil", b"x")]])
def test_import_refuses_evil_archives_and_writes_nothing(leader_client, tree, tmp_path, entries):
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    result = leader_client.simulate_post("/unit_api/import_zipped_dot_pioreactor",
                                         **multipart("archive", "evil.zip", zip_bytes([("notes.txt", b"new")] + entries)))
    assert result.status_code == 400
    assert result.json["error"] == "The archive was refused."
    assert (tree / "notes.txt").read_text() == "hello"
    # nothing but the audit log's row of the refused request (in the leader database)
    audit = {str(p) for p in tmp_path.rglob("pioreactor.sqlite*")}
    assert sorted(str(p) for p in tmp_path.rglob("*") if str(p) not in audit) == [p for p in before if p not in audit]
    last = leader_client.simulate_get("/api/audit").json[-1]
    assert (last["method"], last["path"], last["status"]) == ("POST", "/unit_api/import_zipped_dot_pioreactor", 400)


def test_oversize_uploads_are_413(leader_client, leader_env, tree):
    with open(leader_env.root / "config.ini", "a") as fh:
        fh.write("[system]\nmax_upload_mb = 0.001\n")
    from reactorkit.core.config import set_config

    set_config(None)
    result = leader_client.simulate_post("/api/system/upload", **multipart("file", "big.bin", b"0" * 5000))
    assert result.status_code == 413
    assert not list((tree / "uploads").glob("big*"))


def test_upload_saves_inside_the_state_folder(leader_client, tree):
    result = leader_client.simulate_post("/api/system/upload", **multipart("file", "plugin-1.0.whl", b"wheel"))
    assert result.json["message"] == "File successfully uploaded"
    assert result.json["save_path"] == str(tree / "uploads" / "plugin-1.0.whl")
    assert leader_client.simulate_get("/unit_api/system/uploads/plugin-1.0.whl").content == b"wheel"


# ------------------------------------------------------------ leader fan-outs
@pytest.mark.parametrize("method, path", [
    ("GET", "/api/units/nosuch/plugins/installed"),
    ("POST", "/api/units/nosuch/plugins/install"),
    ("POST", "/api/units/nosuch/system/reboot"),
    ("GET", "/api/units/nosuch/zipped_dot_pioreactor"),
])
def test_leader_fan_outs_refuse_unknown_units(leader_client, tree, method, path):
    result = leader_client.simulate_request(method, path, json={"args": ["x"]})
    assert result.status_code == 400
    assert "nosuch" in result.json["error"]


def test_leader_fan_outs_queue_a_task_for_the_cluster(leader_client, leader_env, tree):
    for method, path, body in [("GET", "/api/units/$broadcast/plugins/installed", None),
                               ("POST", "/api/units/$broadcast/system/reboot", None),
                               ("POST", f"/api/units/{leader_env.unit}/plugins/uninstall", {"args": ["x"]})]:
        result = leader_client.simulate_request(method, path, json=body)
        assert result.status_code == 202, (path, result.text)
        assert result.json["result_url_path"].startswith("/unit_api/task_results/")


def test_importing_into_every_unit_at_once_is_refused(leader_client, tree):
    result = leader_client.simulate_post("/api/units/$broadcast/import_zipped_dot_pioreactor",
                                         **multipart("archive", "a.zip", zip_bytes([("x", b"1")])))
    assert result.status_code == 400


def test_own_zip_through_the_leader_route(leader_client, leader_env, tree):
    result = leader_client.simulate_get(f"/api/units/{leader_env.unit}/zipped_dot_pioreactor")
    assert result.status_code == 200
    assert "notes.txt" in zipfile.ZipFile(io.BytesIO(result.content)).namelist()
