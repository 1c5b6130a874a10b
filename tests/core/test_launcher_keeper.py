"""The task worker's launcher keeper: a launcher whose lock file cannot be used (exit code 78) is a fault of the
unit's state folder; the keeper says so once, tries again at a long interval and says when the launcher runs again.
Fakes stand in for the launcher process, the socket check and the waits (no wall-clock timing)."""

import logging
import subprocess
import threading

import pytest

from reactorkit.core import launcher_keeper as lk
from reactorkit.core.launcher_keeper import (QUIET_LOCK_ENV, UNUSABLE_LOCK, UNUSABLE_LOCK_REMIND_EVERY,
                                             UNUSABLE_LOCK_RETRY_S, LauncherKeeper)


class Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records = []

    def emit(self, record):
        self.records.append(record)

    def at(self, level):
        return [r.getMessage() for r in self.records if r.levelno == level]


class FakeLauncher:
    """Exits with ``code`` at once; or (``code=None``) runs: its socket answers, and it ends with ``then``
    (None: when the keeper's test stops the keeper)."""

    def __init__(self, keeper, code, then=None):
        self.keeper, self.code, self.then = keeper, code, then

    def wait(self, timeout=None):
        if self.code is not None:
            return self.code
        if timeout is not None:
            self.keeper.serving = True
            raise subprocess.TimeoutExpired("launcher", timeout)
        self.keeper.serving = False
        if self.then is None:
            self.keeper._stop.set()  # the worker stops: the launcher is ended
            return 0
        return self.then


def make_keeper(tmp_path, codes, stop_after):
    """A keeper whose launchers exit with ``codes`` in turn (None: one that runs); its waits are recorded, and it
    stops at the ``stop_after``-th wait."""
    handler = Records()
    log = logging.getLogger(f"test.launcher_keeper.{id(handler)}")
    log.propagate = False
    log.setLevel(logging.DEBUG)
    log.addHandler(handler)
    waits, envs = [], []
    codes = list(codes)

    def popen(argv, env, stdin):
        envs.append(env)
        code = codes.pop(0)
        return FakeLauncher(keeper, *code) if isinstance(code, tuple) else FakeLauncher(keeper, code)

    def wait(seconds):
        waits.append(seconds)
        return len(waits) >= stop_after

    keeper = LauncherKeeper(env={"DOT_PIOREACTOR": str(tmp_path)}, popen=popen,
                            answers=lambda path: keeper.serving, wait=wait, log=log)
    keeper.serving = False
    return keeper, waits, envs, handler


def test_an_unusable_lock_file_is_retried_at_the_long_interval_and_logged_once(tmp_path):
    failures = 5
    (tmp_path / "storage" / "launcher.lock").mkdir(parents=True)
    keeper, waits, envs, records = make_keeper(tmp_path, [UNUSABLE_LOCK] * failures, stop_after=failures)
    keeper._run()
    assert waits == [UNUSABLE_LOCK_RETRY_S] * failures  # each exit 78 waits the long interval, not the backoff
    assert UNUSABLE_LOCK_RETRY_S >= 60
    [error] = records.at(logging.ERROR)
    assert f"{tmp_path / 'storage' / 'launcher.lock'} is a folder" in error and "Remove it" in error
    assert records.at(logging.WARNING) == [] and records.at(logging.INFO) == []
    # the first launcher says what is wrong; those started after the keeper logged it do not repeat it
    assert QUIET_LOCK_ENV not in envs[0] and all(env[QUIET_LOCK_ENV] == "1" for env in envs[1:])


def test_a_lock_file_that_stays_unusable_is_recalled_at_a_much_lower_rate(tmp_path):
    failures = 3 * UNUSABLE_LOCK_REMIND_EVERY
    keeper, waits, _, records = make_keeper(tmp_path, [UNUSABLE_LOCK] * failures, stop_after=failures)
    keeper._run()
    assert len(records.at(logging.ERROR)) == 1
    reminders = records.at(logging.WARNING)  # at failed attempts 12, 24 and 36, about an hour apart
    assert [f"({n} attempts)" in m and "cannot be made" in m for n, m in zip((12, 24, 36), reminders)] == [True] * 3
    assert len(reminders) == 3
    assert set(waits) == {UNUSABLE_LOCK_RETRY_S}


def test_the_keeper_recovers_by_itself_once_the_lock_file_can_be_used(tmp_path):
    keeper, waits, envs, records = make_keeper(tmp_path, [UNUSABLE_LOCK, UNUSABLE_LOCK, None], stop_after=99)
    keeper._run()
    assert waits == [UNUSABLE_LOCK_RETRY_S] * 2  # the third launcher serves until the keeper stops
    [info] = records.at(logging.INFO)
    assert "the launcher runs again" in info and "after 2 failed attempts" in info
    assert keeper.lock_failures == 0 and len(records.at(logging.ERROR)) == 1


def test_a_lock_file_that_becomes_unusable_again_after_a_recovery_is_logged_again(tmp_path):
    # the second launcher serves, then exits with 1 (say, killed); the third meets an unusable lock file again
    keeper, waits, _, records = make_keeper(tmp_path, [UNUSABLE_LOCK, (None, 1), UNUSABLE_LOCK], stop_after=3)
    keeper._run()
    assert waits == [UNUSABLE_LOCK_RETRY_S, 0.5, UNUSABLE_LOCK_RETRY_S]
    assert len(records.at(logging.ERROR)) == 2 and len(records.at(logging.INFO)) == 1


def test_a_retry_that_gets_past_the_lock_file_and_exits_ends_the_fault(tmp_path):
    keeper, waits, _, records = make_keeper(tmp_path, [UNUSABLE_LOCK, lk.ANOTHER_LAUNCHER], stop_after=2)
    keeper._run()
    assert waits == [UNUSABLE_LOCK_RETRY_S, keeper.check_s]
    [info] = records.at(logging.INFO)
    assert "can be used again (the launcher exited with code 75)" in info and keeper.lock_failures == 0


def test_other_exits_keep_the_short_backoff(tmp_path):
    keeper, waits, _, _ = make_keeper(tmp_path, [1, 1, 1, lk.ANOTHER_LAUNCHER, 1], stop_after=5)
    keeper._run()
    assert waits == [0.5, 1.0, 2.0, keeper.check_s, 8.0]  # the backoff doubles at each exit, as before


@pytest.mark.integration
def test_with_a_folder_for_a_lock_file_jobs_start_without_the_launcher_until_it_is_removed(unit_env, mqtt_recorder,
                                                                                           capfd):
    """Real launchers and ``pio run``: the keeper's waits are held on events instead of elapsing."""
    import json
    import sys

    from reactorkit.core.testing import pio_command, stop_process

    lock = unit_env.root / "storage" / "launcher.lock"
    (lock / "inside").mkdir(parents=True)
    handler = Records()
    log = logging.getLogger("test.launcher_keeper.integration")
    log.propagate, log.level = False, logging.DEBUG
    log.addHandler(handler)
    waits, waiting, go = [], threading.Semaphore(0), threading.Semaphore(0)

    def wait(seconds):
        waits.append(seconds)
        waiting.release()
        go.acquire()
        return keeper._stop.is_set()

    keeper = LauncherKeeper(env=unit_env.env(), wait=wait, log=log).start()
    try:
        assert waiting.acquire(timeout=120)  # the first launcher exited 78
        assert waits == [UNUSABLE_LOCK_RETRY_S]
        assert keeper.proc.returncode == UNUSABLE_LOCK
        go.release()
        assert waiting.acquire(timeout=120)  # the second one too, without printing the error again
        assert waits == [UNUSABLE_LOCK_RETRY_S] * 2
        assert capfd.readouterr().err.count(f"{lock} is a folder") == 1
        [error] = handler.at(logging.ERROR)
        assert f"{lock} is a folder" in error

        # meanwhile `pio run` starts the job itself
        client = subprocess.Popen([sys.executable, "-m", "reactorkit.core.cli.entry", "run", "stirring"],
                                  env=unit_env.env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            mqtt_recorder.wait_for(unit_env.topic("stirring", "$state"), lambda p: p == b"ready", timeout=60)
            listed = subprocess.run(pio_command("jobs", "list", "--json"), env=unit_env.env(), capture_output=True,
                                    text=True, check=True)
            [row] = [r for r in json.loads(listed.stdout) if r["job_name"] == "stirring"]
            assert row["pid"] == client.pid
        finally:
            assert stop_process(client) == 0

        (lock / "inside").rmdir()
        lock.rmdir()
        answered = threading.Event()
        handler.emit = lambda record: (handler.records.append(record), answered.set())
        go.release()
        assert answered.wait(120)
        assert "the launcher runs again" in handler.at(logging.INFO)[0]
        assert keeper.proc.poll() is None and lock.is_file()
    finally:
        keeper._stop.set()
        go.release()
        keeper.stop()
        log.removeHandler(handler)
