"""``pio run experiment_profile execute <profile> <experiment> [--dry-run]``: run a profile from the leader.

The job is long-running (it survives "stop all"), registers as
``experiment_profile`` in the leader's job registry, and publishes under the
job segment ``experiment_profile/<job_id>`` (§2.6): retained
``experiment_profile_name``, ``start_time_utc``, ``profile_filename``,
``action_count`` and ``$state``. Each run is recorded in the leader database's
``experiment_profile_runs`` (``started_at, experiment_profile_name,
experiment``). Jobs it starts carry ``JOB_SOURCE=experiment_profile/<job_id>``;
if the profile is stopped before its last action, those jobs are stopped too.
The job ends by itself after its last action.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reactorkit.plugin import mqtt as mq
from reactorkit.plugin import Clock
from reactorkit.plugin import Config, is_leader
from reactorkit.plugin import DISCONNECTED, BackgroundJob
from reactorkit.plugin import LOG_LEVELS as LEVELS

if TYPE_CHECKING:
    from .schema import Profile

# YAML, the expression grammar (lark) and importlib.metadata are imported by the functions that need them: the
# unit's job launcher imports this module, and every job it forks would carry them (~3 MB of memory)

logger = logging.getLogger("reactorkit.experiment_profile")


class ProfileError(RuntimeError):
    """The profile cannot run (invalid, required plugin missing, not on the leader …)."""


def required_plugin_problems(profile: Profile, installed: dict[str, str]) -> list[str]:
    """Problems with ``profile.plugins`` against ``installed`` (``name → version``; names compared
    case-insensitively with ``-``/``_`` alike). Empty when everything required is there."""
    from packaging.specifiers import SpecifierSet
    from packaging.version import InvalidVersion, Version

    from .schema import version_spec

    normalized = {_norm(k): v for k, v in installed.items()}
    problems = []
    for name, version in profile.plugins:
        have = normalized.get(_norm(name))
        if have is None:
            problems.append(f"plugin {name} is required ({version}) but not installed")
            continue
        try:
            ok = SpecifierSet(version_spec(version)).contains(Version(have), prereleases=True)
        except InvalidVersion:
            ok = False
        if not ok:
            problems.append(f"plugin {name} {have} does not satisfy {version}")
    return problems


def _norm(name: str) -> str:
    return name.lower().replace("_", "-")


def installed_plugin_versions() -> dict[str, str]:
    """``name → version`` of installed plugins: entry-point names, distribution names and file plugins."""
    from importlib.metadata import entry_points

    from reactorkit.plugin import ENTRY_POINT_GROUP, Registry

    out: dict[str, str] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(ep, "dist", None)
        if dist is not None:
            out[ep.name] = dist.version
            out[dist.metadata["Name"]] = dist.version
    for name, info in Registry.installed().plugins.items():
        out.setdefault(name, info.version)
    return out


class ExperimentProfileJob(BackgroundJob):
    """Executes a validated profile against the cluster until its last action, or until stopped.

    Args:
        unit: The leader's name.
        experiment: The profile's experiment.
        profile: The validated profile.
        profile_path: Its file (published as ``profile_filename``).
        db: Leader database (default: this leader's).
        cluster: A :class:`~.runner.Cluster` (default: :class:`~.cluster.HttpCluster`).

    Raises:
        JobAlreadyRunning: a profile is already running on this leader.
    """

    job_name = "experiment_profile"
    is_long_running = True
    published_settings = {
        "experiment_profile_name": {"datatype": "string", "settable": False},
        "start_time_utc": {"datatype": "string", "settable": False},
        "profile_filename": {"datatype": "string", "settable": False},
        "action_count": {"datatype": "integer", "settable": False},
    }

    def __init__(self, unit: str, experiment: str, *, profile: Profile, profile_path: Path, db: Any = None,
                 cluster: Any = None, config: Config | None = None, clock: Clock | None = None,
                 job_source: str | None = None, source: str = "app") -> None:
        super().__init__(unit, experiment, config=config, clock=clock, job_source=job_source, source=source)
        self._rebase_topics()
        self.profile = profile
        self.source_tag = f"experiment_profile/{self.job_id}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="experiment_profile", daemon=True)
        self._reader = None
        if db is None:
            from reactorkit.plugin import LeaderDB

            db = LeaderDB(config=self.config, migrate=False)
        self.db = db
        if cluster is None:
            from .cluster import HttpCluster, RetainedReader

            self._reader = RetainedReader(self.config)
            cluster = HttpCluster(experiment, self.source_tag, self.config, db, self._reader,
                                  publish=self._publish_raw, clock=self.clock)
        self.cluster = cluster
        from .runner import ProfileRunner

        self.runner = ProfileRunner(profile, experiment, cluster, self.clock, self._log)
        self.experiment_profile_name = profile.name
        self.profile_filename = str(profile_path)
        self.action_count = profile.action_count()
        self.start_time_utc = self.clock.utc_iso()
        record_run(db, profile.name, experiment)

    # ------------------------------------------------------------ topics
    def _rebase_topics(self) -> None:
        """Move this job's topics to ``…/experiment_profile/<job_id>/…`` and re-arm the last will there."""
        old = self._topic_base
        self._topic_base = mq.job_topic(self.unit, self.experiment, self.job_name, str(self.job_id), config=self.config)
        self.mqtt.publish(f"{old}/$state", b"", qos=mq.QOS_EXACTLY_ONCE, retain=True).wait_for_publish(5)
        self.mqtt.disconnect()
        self.mqtt.loop_stop()
        self.mqtt.will_set(f"{self._topic_base}/$state", "lost", qos=mq.QOS_EXACTLY_ONCE, retain=True)
        host = self.config.get("mqtt", "broker_address", fallback="127.0.0.1")
        port = self.config.getint("mqtt", "broker_port", fallback=1883)
        self.mqtt.connect(host, port, keepalive=60)
        self.mqtt.loop_start()
        deadline = time.monotonic() + 5
        while not self.mqtt.is_connected() and time.monotonic() < deadline:
            time.sleep(0.01)
        if not self.mqtt.is_connected():
            raise ConnectionError(f"the MQTT broker at {host}:{port} did not accept the reconnection")
        self._publish_setting("state", self.state)

    def on_mqtt_connect(self, client: Any) -> None:
        if self.job_id is not None:
            root = mq.root_topic(self.config)
            client.subscribe(f"{root}/{self.unit}/{self.experiment}/{self.job_name}/{self.job_id}/+/set",
                             qos=mq.QOS_AT_LEAST_ONCE)

    def on_message(self, message: Any) -> None:
        parts = message.topic.split("/")
        if len(parts) >= 4 and parts[-1] == "set" and parts[-3] == str(self.job_id) and not message.retain:
            self._apply_set(parts[-2], message.payload.decode("utf-8", errors="replace"))

    def _publish_raw(self, topic: str, payload: str) -> None:
        self.mqtt.publish(topic, payload, qos=mq.QOS_AT_MOST_ONCE, retain=False)

    def _log(self, level: str, message: str) -> None:
        self.logger.log(LEVELS.get(level, logging.INFO), message)

    # ---------------------------------------------------------- lifecycle
    def on_init_to_ready(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        finished = False
        try:
            count = self.runner.schedule()
            self._log("notice", f"Started profile {self.profile.name!r} for {self.experiment}: {count} actions "
                                f"on {len(self.runner.units)} unit(s).")
            finished = self.runner.run(self._stop)
        except Exception as exc:
            self._log("error", f"Profile stopped by an error: {type(exc).__name__}: {exc}")
        if finished:
            self._log("notice", f"Finished profile {self.profile.name!r}.")
        if not self._stop.is_set():
            # never disconnect from this thread: clean-up joins it
            threading.Thread(target=self.set_state, args=(DISCONNECTED,), daemon=True).start()

    def on_disconnected(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=60)
        if self.runner.pending and self.runner.units:
            self._log("notice", f"Profile stopped early; stopping the jobs it started ({self.source_tag}).")
            stopper = getattr(self.cluster, "stop_profile_jobs", None)
            if stopper is not None:
                try:
                    stopper(sorted(self.runner.units))
                except Exception as exc:
                    self._log("error", f"Could not stop the profile's jobs: {exc}")
        for closer in (getattr(self.cluster, "close", None), getattr(self._reader, "close", None)):
            if closer is not None:
                try:
                    closer()
                except Exception:
                    pass


def record_run(db: Any, profile_name: str, experiment: str) -> None:
    """Insert ``(started_at, experiment_profile_name, experiment)`` into ``experiment_profile_runs``."""
    from reactorkit.plugin import now_iso

    from .descriptors import RUNS_TABLE

    db.ensure_table(RUNS_TABLE)
    db.execute("INSERT INTO experiment_profile_runs (started_at, experiment_profile_name, experiment) VALUES (?, ?, ?)",
               (now_iso(), profile_name, experiment))


def load_profile(path_text: str, *, known_jobs: Any = None) -> tuple[Profile, Path]:
    """Find, read and validate a profile for a run.

    Raises:
        ProfileError: not found, outside ``$DOT_PIOREACTOR``, or invalid (message lists the errors with lines).
    """
    from reactorkit.plugin import UnsafePath

    from .files import resolve_for_run
    from .schema import validate

    try:
        path = resolve_for_run(path_text)
        text = path.read_text(encoding="utf-8")
    except (UnsafePath, FileNotFoundError, OSError, UnicodeDecodeError) as exc:
        raise ProfileError(str(exc)) from None
    result = validate(text, known_jobs=known_jobs)
    if result.profile is None:
        lines = "; ".join(f"line {d.line}: {d.message}" for d in result.errors)
        raise ProfileError(f"{path.name} is not a valid profile: {lines}")
    return result.profile, path


def run_profile(*, unit: str, experiment: str, config: Config, command: str, profile_path: str,
                profile_experiment: str, dry_run: bool = False, **_: Any) -> int:
    """The ``pio run experiment_profile`` runner; returns the exit code.

    ``command`` must be ``execute``. With ``dry_run`` the schedule is printed and nothing runs.
    """
    if command != "execute":
        print(f"Error: unknown command {command!r}; use: pio run experiment_profile execute <profile> <experiment>",
              file=sys.stderr)
        return 2
    try:
        if not is_leader(config):
            raise ProfileError(f"profiles run on the leader, and {unit} is not the leader")
        from reactorkit.plugin import LeaderDB

        profile, path = load_profile(profile_path, known_jobs=None)
        db = LeaderDB(config=config, migrate=False)
        if not db.experiment_exists(profile_experiment):
            raise ProfileError(f"experiment {profile_experiment!r} does not exist")
        problems = required_plugin_problems(profile, installed_plugin_versions())
        if problems:
            raise ProfileError("; ".join(problems))
    except ProfileError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    if dry_run:
        from reactorkit.plugin import get_clock

        from .runner import ProfileRunner

        class _Static:
            def assigned_units(self) -> list[str]:
                return list(db.assigned_workers(profile_experiment, active_only=True))

        runner = ProfileRunner(profile, profile_experiment, _Static(), get_clock(config),  # type: ignore[arg-type]
                               lambda level, message: print(f"{level.upper()}: {message}"))
        print(f"Profile {profile.name!r} for {profile_experiment} ({profile.action_count()} actions):")
        for line in runner.dry_run():
            print(line)
        return 0
    from reactorkit.plugin import start_failure

    try:
        job = ExperimentProfileJob(unit, profile_experiment, profile=profile, profile_path=path, db=db, config=config)
    except Exception as exc:
        code = start_failure("experiment_profile", exc)
        if code is None:
            raise
        return code
    job.block_until_disconnected()
    return 0
