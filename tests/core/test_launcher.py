"""The unit's job launcher: jobs forked from it run, register, stop and report like jobs started the
ordinary way; without a launcher (or when it refuses) `pio run` starts the job itself."""

import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time

import pytest

from reactorkit.core.testing import pio_command, stop_process

pytestmark = pytest.mark.integration

PIO = [sys.executable, "-m", "reactorkit.core.cli.entry"]  # the `pio` console script


def wait_until(predicate, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.02)


def exited(pid):
    """True once ``pid`` is gone or a zombie (read in one go: it may vanish between two looks at /proc)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (FileNotFoundError, ProcessLookupError):
        return True


def running_jobs(unit_env, job_name):
    out = subprocess.run(pio_command("jobs", "list", "--json"), env=unit_env.env(), capture_output=True, text=True,
                         check=True)
    return [row for row in json.loads(out.stdout) if row["job_name"] == job_name]


def parent_of(pid):
    return int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])


@pytest.fixture
def launcher(unit_env):
    """A launcher serving ``unit_env``'s unit (stopped at teardown)."""
    subprocess.run(pio_command("run", "--help"), env=unit_env.env(), stdout=subprocess.DEVNULL, check=True)
    log = open(unit_env.root / "launcher.log", "wb")
    proc = subprocess.Popen(pio_command("launcher"), env=unit_env.env(), stdout=log, stderr=subprocess.STDOUT)
    sock = unit_env.root / "storage" / "launcher.sock"
    wait_until(lambda: sock.exists() or proc.poll() is not None, what="the launcher's socket")
    assert proc.poll() is None, (unit_env.root / "launcher.log").read_text()
    yield proc
    stop_process(proc)


def start(unit_env, *args):
    log = open(unit_env.root / "client.log", "ab")
    return subprocess.Popen([*PIO, "run", *args], env=unit_env.env(), stdout=log, stderr=subprocess.STDOUT)


def test_a_job_started_through_the_launcher_runs_is_registered_and_stops_with_pio_kill(unit_env, mqtt_recorder,
                                                                                       launcher):
    client = start(unit_env, "stirring", "--target-rpm", "321")
    try:
        mqtt_recorder.wait_for(unit_env.topic("stirring", "$state"), lambda p: p == b"ready", timeout=30)
        assert mqtt_recorder.wait_for(unit_env.topic("stirring", "target_rpm"), lambda p: bool(p)) == b"321.0"
        [row] = running_jobs(unit_env, "stirring")
        assert row["pid"] != client.pid and parent_of(row["pid"]) == launcher.pid  # forked by the launcher
        cmdline = open(f"/proc/{row['pid']}/cmdline", "rb").read().replace(b"\0", b" ")
        assert cmdline.startswith(b"pio run stirring --target-rpm 321")  # `ps` names the job
        t0 = time.monotonic()
        done = subprocess.run(pio_command("kill", "--job-name", "stirring"), env=unit_env.env(), capture_output=True,
                              text=True)
        assert "Stopped 1 job(s): stirring" in done.stdout
        mqtt_recorder.wait_for(unit_env.topic("stirring", "$state"), lambda p: p == b"disconnected", since=t0)
        assert client.wait(30) == 0  # the `pio run` process leaves with its job's exit code
        assert running_jobs(unit_env, "stirring") == []
    finally:
        stop_process(client)


def test_signals_to_pio_run_reach_the_launched_job(unit_env, mqtt_recorder, launcher):
    client = start(unit_env, "od_reading")
    mqtt_recorder.wait_for(unit_env.topic("od_reading", "$state"), lambda p: p == b"ready", timeout=30)
    [row] = running_jobs(unit_env, "od_reading")
    t0 = time.monotonic()
    client.send_signal(signal.SIGTERM)
    mqtt_recorder.wait_for(unit_env.topic("od_reading", "$state"), lambda p: p == b"disconnected", since=t0)
    assert client.wait(30) == 0
    wait_until(lambda: not os.path.exists(f"/proc/{row['pid']}"), what="the job's exit")


def test_a_launched_job_stopped_cleanly_leaves_the_outbox_wal_empty(unit_env, mqtt_recorder, launcher):
    # (the forked job leaves with os._exit: without its checkpoint at the stop the WAL kept every start's pages)
    client = start(unit_env, "stirring")
    mqtt_recorder.wait_for(unit_env.topic("stirring", "$state"), lambda p: p == b"ready", timeout=30)
    [row] = running_jobs(unit_env, "stirring")
    assert parent_of(row["pid"]) == launcher.pid
    assert stop_process(client, signal.SIGTERM) == 0
    wait_until(lambda: exited(row["pid"]), what="the job's exit")
    wal = unit_env.root / "storage" / "outbox.sqlite-wal"
    assert not wal.exists() or wal.stat().st_size == 0


def test_a_launched_job_dies_with_a_pio_run_process_killed_outright(unit_env, mqtt_recorder, launcher):
    client = start(unit_env, "stirring")
    mqtt_recorder.wait_for(unit_env.topic("stirring", "$state"), lambda p: p == b"ready", timeout=30)
    [row] = running_jobs(unit_env, "stirring")
    client.kill()
    client.wait(30)
    wait_until(lambda: not os.path.exists(f"/proc/{row['pid']}"), what="the job's death")
    # the broker publishes the job's last will, as for any job process that dies
    mqtt_recorder.wait_for(unit_env.topic("stirring", "$state"), lambda p: p == b"lost", timeout=30)


def test_the_job_exit_code_and_errors_come_back_through_the_launcher(unit_env, launcher):
    done = subprocess.run([*PIO, "run", "stirring", "--target-rpm", "fast"], env=unit_env.env(), capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2  # click's usage error, from the forked job
    assert "--target-rpm" in done.stderr


def test_without_a_launcher_pio_run_starts_the_job_itself(unit_env, mqtt_recorder):
    client = start(unit_env, "stirring")
    try:
        mqtt_recorder.wait_for(unit_env.topic("stirring", "$state"), lambda p: p == b"ready", timeout=30)
        [row] = running_jobs(unit_env, "stirring")
        assert row["pid"] == client.pid
    finally:
        assert stop_process(client) == 0


def test_launching_can_be_switched_off(unit_env, mqtt_recorder, launcher):
    unit_env.extra["REACTORKIT_LAUNCHER"] = "0"
    client = start(unit_env, "stirring")
    try:
        mqtt_recorder.wait_for(unit_env.topic("stirring", "$state"), lambda p: p == b"ready", timeout=30)
        assert running_jobs(unit_env, "stirring")[0]["pid"] == client.pid
    finally:
        assert stop_process(client) == 0


def test_the_launcher_refuses_a_caller_on_another_interpreter(unit_env, launcher):
    request = json.dumps({"argv": ["pio", "run", "stirring"], "env": unit_env.env(), "cwd": "/",
                          "executable": "/elsewhere/bin/python", "pythonpath": "", "detach": True}).encode()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(str(unit_env.root / "storage" / "launcher.sock"))
        socket.send_fds(sock, [struct.pack(">I", len(request)) + request], [0, 1, 2])
        assert sock.recv(256).startswith(b"refused the caller runs another interpreter")


def test_a_task_started_job_is_forked_by_the_launcher_and_outlives_the_task(unit_env, mqtt_recorder, launcher,
                                                                           monkeypatch):
    from reactorkit.core.task_functions import TaskFailed, start_job

    for key, value in unit_env.env().items():
        monkeypatch.setenv(key, value)
    assert start_job("stirring", {"target_rpm": 250}, alive_check_s=0.5) == {"ok": True}
    mqtt_recorder.wait_for(unit_env.topic("stirring", "$state"), lambda p: p == b"ready", timeout=30)
    [row] = running_jobs(unit_env, "stirring")
    assert parent_of(row["pid"]) == launcher.pid
    with pytest.raises(TaskFailed, match="exited with code 2"):
        start_job("od_reading", {"interval": "often"}, alive_check_s=30)
    os.kill(row["pid"], signal.SIGTERM)
    wait_until(lambda: exited(row["pid"]),
               what="the job's exit")


def test_the_task_worker_keeps_a_launcher_and_stops_it_with_itself(unit_env):
    from reactorkit.core.launcher_keeper import LauncherKeeper

    sock = unit_env.root / "storage" / "launcher.sock"
    keeper = LauncherKeeper(env=unit_env.env()).start()
    try:
        wait_until(sock.exists, what="a launcher started by the keeper")
        first = keeper.proc
        first.kill()  # a launcher that dies is started again
        wait_until(lambda: keeper.proc is not first and keeper.proc is not None and sock.exists(),
                   what="a new launcher")
    finally:
        keeper.stop()
    assert keeper.proc.poll() is not None


def children_of(pid):
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if parent_of(int(entry)) == pid:
                    out.append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    return out


def cmdline(pid):
    try:
        return open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def waiting_process(launcher, job_name):
    found = [p for p in children_of(launcher.pid) if cmdline(p) == f"pio launcher: ready for {job_name}"]
    return found[0] if found else None


@pytest.fixture
def leader_env(unit_env):
    """``unit_env``'s unit as the leader of its cluster (where the ingestion job runs)."""
    (unit_env.root / "unit_config.ini").write_text(f"[cluster.topology]\nleader_hostname = {unit_env.unit}\n")
    return unit_env


def test_a_job_with_modules_of_its_own_becomes_the_process_the_launcher_kept_for_it(leader_env, mqtt_recorder,
                                                                                   launcher):
    job = "mqtt_to_db_streaming"
    wait_until(lambda: waiting_process(launcher, job) is not None, what="a process kept for the ingestion job")
    waiting = waiting_process(launcher, job)
    state = "/".join((f"{leader_env.prefix}pioreactor", leader_env.unit, "$experiment", job, "$state"))
    client = start(leader_env, job)
    try:
        mqtt_recorder.wait_for(state, lambda p: p == b"ready", timeout=30)
        [row] = running_jobs(leader_env, job)
        assert row["pid"] == waiting  # the kept process became the job …
        assert parent_of(row["pid"]) == launcher.pid
        assert cmdline(row["pid"]).startswith(f"pio run {job}")
        # … and another is kept for the next start
        wait_until(lambda: waiting_process(launcher, job) not in (None, waiting), what="the next kept process")
        t0 = time.monotonic()
        client.send_signal(signal.SIGTERM)
        mqtt_recorder.wait_for(state, lambda p: p == b"disconnected", since=t0)
        assert client.wait(30) == 0  # the exit code comes back as for a forked job
    finally:
        stop_process(client)


def test_other_jobs_are_forked_by_the_launcher_and_the_kept_process_leaves_with_it(leader_env, mqtt_recorder,
                                                                                   launcher):
    wait_until(lambda: waiting_process(launcher, "mqtt_to_db_streaming") is not None, what="the kept process")
    waiting = waiting_process(launcher, "mqtt_to_db_streaming")
    client = start(leader_env, "stirring")
    try:
        mqtt_recorder.wait_for(leader_env.topic("stirring", "$state"), lambda p: p == b"ready", timeout=30)
        [row] = running_jobs(leader_env, "stirring")
        assert row["pid"] != waiting and parent_of(row["pid"]) == launcher.pid
        assert waiting_process(launcher, "mqtt_to_db_streaming") == waiting  # still kept
        launcher.send_signal(signal.SIGTERM)
        assert launcher.wait(30) == 0
        wait_until(lambda: exited(waiting),
                   what="the kept process's exit")
    finally:
        stop_process(client)


def test_on_a_unit_that_is_not_the_leader_no_process_is_kept(unit_env, mqtt_recorder, launcher):
    client = start(unit_env, "stirring")  # the launcher has served a request: it is past its start
    try:
        mqtt_recorder.wait_for(unit_env.topic("stirring", "$state"), lambda p: p == b"ready", timeout=30)
        assert [cmdline(p) for p in children_of(launcher.pid)] == [cmdline(running_jobs(unit_env, "stirring")[0]["pid"])]
    finally:
        stop_process(client)


def test_asking_the_built_in_jobs_for_their_modules_never_imports_numpy_into_the_launcher(tmp_path):
    # a built-in job whose module imports numpy at import: the launcher leaves it to be imported after the fork
    src = tmp_path / "src"
    src.mkdir()
    (src / "numpy_job.py").write_text(
        "import numpy\n"
        "from reactorkit.core.job import BackgroundJob\n"
        "class NumpyJob(BackgroundJob):\n"
        "    job_name = 'numpy_job'\n"
        "    @classmethod\n"
        "    def launcher_preload(cls, config):\n"
        "        return ('json',)\n")
    root = tmp_path / "unit"
    (root / "storage").mkdir(parents=True)
    (root / "storage" / "cli_index.json").write_text(json.dumps(
        {"jobs": {"numpy_job": {"source": "app", "job_class": "numpy_job:NumpyJob"}}}))
    code = ("import json, sys\n"
            "from reactorkit.core import launcher\n"
            "print(json.dumps({'warm': launcher.warm_imports(), 'numpy': 'numpy' in sys.modules,"
            " 'threads': launcher._thread_count()}))\n")
    env = {**os.environ, "DOT_PIOREACTOR": str(root), "PYTHONPATH": str(src)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    found = json.loads(out.stdout.strip().splitlines()[-1])
    assert found == {"warm": {}, "numpy": False, "threads": 1}  # the job is forked as any other, after the fork


def test_the_kept_process_leaves_when_the_launcher_is_killed_outright(leader_env, launcher):
    wait_until(lambda: waiting_process(launcher, "mqtt_to_db_streaming") is not None, what="the kept process")
    waiting = waiting_process(launcher, "mqtt_to_db_streaming")
    launcher.kill()
    launcher.wait(30)

    wait_until(lambda: exited(waiting), what="the kept process's exit")  # it saw its socket close: no process is left behind


def test_a_kept_process_that_cannot_be_forked_leaves_the_launcher_serving(tmp_path, monkeypatch):
    from reactorkit.core import launcher as launcher_module

    served = launcher_module.Launcher(str(tmp_path))
    served.warm_modules = {"mqtt_to_db_streaming": ("json",)}
    opened = len(os.listdir("/proc/self/fd"))

    def no_fork():
        raise BlockingIOError(11, "Resource temporarily unavailable")  # the unit's process or memory limit

    monkeypatch.setattr(launcher_module.os, "fork", no_fork)
    served._spawn_warm("mqtt_to_db_streaming")  # at start, or 1 s after the job's start: never an error
    assert served.warm == {}  # the job is forked as any other at its next start
    assert len(os.listdir("/proc/self/fd")) == opened  # its socket pair closed


def test_each_start_of_the_job_becomes_the_process_kept_for_it_then(leader_env, mqtt_recorder, launcher):
    job = "mqtt_to_db_streaming"
    state = "/".join((f"{leader_env.prefix}pioreactor", leader_env.unit, "$experiment", job, "$state"))
    previous = None
    for _ in range(3):
        wait_until(lambda: waiting_process(launcher, job) not in (None, previous), what="a kept process")
        waiting = waiting_process(launcher, job)
        t0 = time.monotonic()
        client = start(leader_env, job)
        try:
            mqtt_recorder.wait_for(state, lambda p: p == b"ready", timeout=30, since=t0)
            assert [row["pid"] for row in running_jobs(leader_env, job)] == [waiting]  # one job, the kept process
            t1 = time.monotonic()
            client.send_signal(signal.SIGTERM)
            mqtt_recorder.wait_for(state, lambda p: p == b"disconnected", since=t1)
            assert client.wait(30) == 0
        finally:
            stop_process(client)
        previous = waiting


def test_a_launcher_whose_state_folder_was_replaced_serves_the_folder_in_its_place(unit_env, mqtt_recorder, launcher):
    # the folder swapped by other means than an import (which carries the socket and lock over): the launcher
    # starts itself again (same process) on the new folder, instead of going on deaf beside a new one
    import shutil

    root = unit_env.root
    staged = root.parent / "staged"
    shutil.copytree(root, staged, ignore=shutil.ignore_patterns("launcher.sock", "launcher.lock", "*.log"))
    root.rename(root.parent / "replaced")
    staged.rename(root)
    sock = root / "storage" / "launcher.sock"
    wait_until(lambda: sock.exists() or launcher.poll() is not None, what="the launcher's socket in the new folder")
    assert launcher.poll() is None  # the same process, started again in place
    client = start(unit_env, "stirring")
    try:
        mqtt_recorder.wait_for(unit_env.topic("stirring", "$state"), lambda p: p == b"ready", timeout=30)
        [row] = running_jobs(unit_env, "stirring")
        assert parent_of(row["pid"]) == launcher.pid
    finally:
        stop_process(client)


LINKED_TO = {"dangling": "created", "a folder": ".", "a file": "theirs.txt"}


@pytest.mark.parametrize("link", sorted(LINKED_TO))
def test_a_lock_file_that_is_a_link_is_replaced_by_the_launchers_own_and_what_it_named_is_left(tmp_path, link):
    import stat

    from reactorkit.core import launcher as launcher_module

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "theirs.txt").write_text("theirs")
    served = launcher_module.Launcher(str(tmp_path / "dot"))
    os.symlink(outside / LINKED_TO[link], served.lock_path)
    lock = served.take_lock()
    try:
        assert lock is not None
        own = os.fstat(lock.fileno())
        at_path = os.lstat(served.lock_path)
        assert stat.S_ISREG(at_path.st_mode) and (at_path.st_dev, at_path.st_ino) == (own.st_dev, own.st_ino)
        assert sorted(os.listdir(outside)) == ["theirs.txt"] and (outside / "theirs.txt").read_text() == "theirs"
        assert launcher_module.Launcher(str(tmp_path / "dot")).take_lock() is None  # held: a second launcher leaves
    finally:
        lock.close()


def test_a_launcher_whose_lock_file_is_a_dangling_link_serves_and_makes_no_file_where_it_pointed(unit_env,
                                                                                                 mqtt_recorder):
    outside = unit_env.root.parent / "outside"
    outside.mkdir()
    storage = unit_env.root / "storage"
    storage.mkdir(parents=True, exist_ok=True)
    (storage / "launcher.lock").symlink_to(outside / "launcher.lock")
    subprocess.run(pio_command("run", "--help"), env=unit_env.env(), stdout=subprocess.DEVNULL, check=True)
    log = unit_env.root / "launcher.log"
    proc = subprocess.Popen(pio_command("launcher"), env=unit_env.env(), stdout=open(log, "wb"),
                            stderr=subprocess.STDOUT)
    try:
        # (the launcher reopened the link's target and locked it without end, never binding its socket)
        wait_until(lambda: (storage / "launcher.sock").exists() or proc.poll() is not None,
                   what="the launcher's socket")
        assert proc.poll() is None, log.read_text()
        assert "was a symbolic link" in log.read_text()
        assert not (storage / "launcher.lock").is_symlink() and list(outside.iterdir()) == []
        client = start(unit_env, "stirring")
        try:
            mqtt_recorder.wait_for(unit_env.topic("stirring", "$state"), lambda p: p == b"ready", timeout=30)
            [row] = running_jobs(unit_env, "stirring")
            assert parent_of(row["pid"]) == proc.pid
        finally:
            stop_process(client)
    finally:
        stop_process(proc)


def test_a_launcher_whose_lock_file_is_a_folder_says_so_and_exits(unit_env):
    from reactorkit.core.launcher import UNUSABLE_LOCK

    lock = unit_env.root / "storage" / "launcher.lock"
    (lock / "inside").mkdir(parents=True)
    result = subprocess.run(pio_command("launcher"), env=unit_env.env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == UNUSABLE_LOCK
    assert f"{lock} is a folder" in result.stderr and "Traceback" not in result.stderr
    assert (lock / "inside").is_dir()  # left as it was
