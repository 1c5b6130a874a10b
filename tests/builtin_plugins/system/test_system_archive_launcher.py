"""Importing a state archive leaves the unit with the one job launcher it had, still serving: the launcher's
socket and lock file are carried into the imported folder as the same files, so a task worker never starts a
second launcher beside it, and jobs started after the import are forked by it."""

import os
import subprocess
import sys
import time

import pytest

from reactorkit.core.fault_drills import wait_until
from reactorkit.core.job_registry import JobRegistry
from reactorkit.core.launcher_keeper import LauncherKeeper
from reactorkit.core.testing import pio_command, stop_process

pytestmark = pytest.mark.integration


def multipart(data):
    boundary = "rkboundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"archive\"; filename=\"backup.zip\"\r\n"
            "Content-Type: application/zip\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return {"body": body, "headers": {"Content-Type": f"multipart/form-data; boundary={boundary}"}}


def launchers(root):
    """Pids of the launcher processes serving ``root`` (titled ``pio launcher <root>`` once ready). A process the
    launcher has just forked (a job's waiting process importing its modules, a job) bears its title until it sets
    its own: a child of a launcher found is not counted."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                cmd = fh.read().replace(b"\0", b" ").decode(errors="replace").strip()
            with open(f"/proc/{entry}/environ", "rb") as fh:
                env = fh.read().split(b"\0")
        except OSError:
            continue
        if cmd == f"pio launcher {root}" or ("reactorkit.core.launcher" in cmd
                                             and f"DOT_PIOREACTOR={root}".encode() in env):
            found.append(int(entry))
    serving = []
    for pid in found:
        try:
            if parent_of(pid) not in found:
                serving.append(pid)
        except (OSError, IndexError, ValueError):  # gone meanwhile
            pass
    return sorted(serving)


def parent_of(pid):
    with open(f"/proc/{pid}/stat") as fh:
        return int(fh.read().rsplit(")", 1)[1].split()[1])


def import_state(leader_client, run_tasks):
    archive = leader_client.simulate_get("/unit_api/zipped_dot_pioreactor").content
    accepted = leader_client.simulate_post("/unit_api/import_zipped_dot_pioreactor", **multipart(archive))
    assert accepted.status_code == 202, accepted.text
    run_tasks()
    result = leader_client.simulate_get(accepted.json["result_url_path"]).json
    assert result["status"] == "succeeded", result


@pytest.fixture
def socket_file(leader_env):
    subprocess.run(pio_command("run", "--help"), env=leader_env.env(), stdout=subprocess.DEVNULL, check=True)
    return leader_env.root / "storage" / "launcher.sock"


def test_the_task_workers_launcher_goes_on_serving_the_imported_folder(leader_env, leader_client, run_tasks,
                                                                       mqtt_recorder, socket_file):
    keeper = LauncherKeeper(env=dict(os.environ)).start()  # as `pio worker` keeps it
    client = None
    try:
        wait_until(lambda: socket_file.exists() and keeper.proc is not None
                   and launchers(leader_env.root) == [keeper.proc.pid], timeout=30,
                   what="the launcher started by the keeper")
        first = keeper.proc
        import_state(leader_client, run_tasks)

        assert socket_file.is_socket()
        since = time.monotonic()
        log = open(leader_env.root / "client.log", "ab")
        client = subprocess.Popen([sys.executable, "-m", "reactorkit.core.cli.entry", "run", "stirring"],
                                  env=leader_env.env(), stdout=log, stderr=subprocess.STDOUT)
        mqtt_recorder.wait_for(leader_env.topic("stirring", "$state"), lambda p: p == b"ready", timeout=30,
                               since=since)
        registry = JobRegistry()
        try:
            [row] = registry.running(job_name="stirring")
        finally:
            registry.close()
        assert parent_of(row.pid) == first.pid  # forked by the launcher that served the unit before the import
        assert keeper.proc is first and first.poll() is None
        assert launchers(leader_env.root) == [first.pid]
    finally:
        if client is not None:
            stop_process(client)
        keeper.stop()


def test_a_task_worker_beside_a_launcher_run_by_something_else_starts_no_second_one(leader_env, leader_client,
                                                                                   run_tasks, socket_file):
    log = open(leader_env.root / "launcher.log", "wb")
    served = subprocess.Popen(pio_command("launcher"), env=leader_env.env(), stdout=log, stderr=subprocess.STDOUT)
    keeper = None
    try:
        wait_until(lambda: socket_file.exists() or served.poll() is not None, timeout=30, what="the launcher's socket")
        assert served.poll() is None, (leader_env.root / "launcher.log").read_text()
        keeper = LauncherKeeper(env=dict(os.environ), check_s=0.05).start()
        wait_until(lambda: keeper.checks >= 1, timeout=30, what="the keeper's first look")

        import_state(leader_client, run_tasks)
        after = keeper.checks
        # (a keeper that starts a launcher waits on it: it looks no more)
        wait_until(lambda: keeper.checks >= after + 5 or keeper.proc is not None, timeout=30,
                   what="the keeper's looks after the import")

        assert keeper.proc is None  # it found the launcher answering every time
        assert launchers(leader_env.root) == [served.pid]
        assert served.poll() is None
    finally:
        if keeper is not None:
            keeper.stop()
        stop_process(served)

