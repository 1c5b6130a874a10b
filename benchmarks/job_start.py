"""Job start and stop latency, and the memory of an idle job process, for every built-in job.

For each job and each way of starting it, N runs: start the job, time until
``$state`` = ``ready`` arrives over MQTT (a subscriber on the broker), send
SIGTERM, time until ``disconnected`` arrives and until the process exits.
Prints medians beside the interpreter floor (``python -c pass``, measured just
before each start; ``× floor`` is the median of the per-start ratios) and the
machine's load average, and the memory of the idle job (``--idle`` seconds after ``ready`` in the
last run; the other runs are stopped 0.3 s after ``ready``):
its RSS (``VmRSS``: what ``ps``/``top`` show, and what the issue's "idle RSS" and the
Pioreactor figure of 47 MB mean; the target is on this one), its peak RSS (``VmHWM``), its
PSS (shared pages divided among the processes mapping them) and its USS (pages of its own),
from ``/proc/PID/status`` and ``/proc/PID/smaps_rollup``. The ingestion closes its database
connections after 2 s with nothing to store (its own log lines are stored ~0.1 s after ``ready``),
hence the default of 6 s.

Ways of starting (``--mode``, repeatable):

* ``spawn``    — ``pio run <job>`` with no launcher (a fresh interpreter imports everything);
* ``launcher`` — ``pio run <job>`` with the unit's launcher running (the job is forked from it);
* ``api``      — ``POST /unit_api/jobs/run/job_name/<job>`` to the unit's API (gunicorn), queued to
  its task worker (``pio worker``, which keeps the launcher), timed from the request (sent by one HTTP client kept for the run, as a UI keeps its own).

Target (issue: "jobs start in a blink"): spawn → ready within 3× the floor.
Reference, the Pioreactor software 26.11.1 on this machine class: 369 ms to ready
for stirring, 630 ms for od_reading, 1.17 s SIGTERM → exit.

The broker is a mosquitto of the run's own, on a free port, configured as a unit's broker is
(:func:`reactorkit.core.localcluster.broker.mosquitto_config`: ``set_tcp_nodelay true``); ``--broker-port 1883``
measures against another one instead. Debian's default configuration leaves Nagle's algorithm on: the broker's
PUBCOMP for a job's last ``$state`` (``disconnected``) then waits for the job's delayed ACK, and SIGTERM → exit
read 62–70 ms in about half of the stops against 7–14 ms (od_reading, 2026-12-05).

Needs mosquitto (and Redis on 127.0.0.1:6379 for ``api``). Usage:
    python benchmarks/job_start.py [--runs 5] [--job stirring …] [--mode launcher …] [--broker-port N]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from reactorkit.core.fault_drills import PrivateBroker
from reactorkit.core.testing import MQTTRecorder, UnitEnv, pio_command
from machine import interpreter_floor_ms, load_average  # noqa: E402 (benchmarks/ is the script's folder)

# job -> extra `pio run` options (and the same as the API's options)
JOBS: dict[str, dict[str, str]] = {
    "stirring": {},
    "od_reading": {},
    "growth_rate_calculating": {},
    "mqtt_to_db_streaming": {},
    "dosing_automation": {"automation_name": "silent"},
    "led_automation": {"automation_name": "silent"},
    "temperature_automation": {"automation_name": "only_record_temperature"},
}
LONG_RUNNING = {"mqtt_to_db_streaming"}  # runs under the experiment "$experiment"
MODES = ("spawn", "launcher", "api")
# the lines of a unit's mosquitto.conf (reactorkit.core.localcluster.broker.mosquitto_config) that bear on latency
UNIT_BROKER_CONF = "set_tcp_nodelay true\nmax_queued_messages 10000\n"
# the same job's next start follows the last one's API answer by this much: the API refuses a job asked for again
# within 1 s (RUN_DEBOUNCE_MS) of the request it handled
API_SPACING_S = 1.5
# the `pio` console script, as a user types it (``python -m …`` would skip the launcher's fast path)
_SCRIPT = Path(sys.executable).with_name("pio")
PIO = [sys.executable, str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "reactorkit.core.cli.entry"]


def compile_sources() -> None:
    """Write the bytecode of reactorkit's source folders, as installing the package does: run from an editable
    install under ``PYTHONDONTWRITEBYTECODE``, every job process would otherwise compile the modules it imports
    (tens of milliseconds of its start)."""
    import compileall

    root = Path(__file__).resolve().parents[1]
    for folder in ("core", "builtin_plugins", "api", "pkgroot"):
        if (root / folder).is_dir():
            compileall.compile_dir(root / folder, quiet=1)


def memory_mb(pid: int) -> tuple[float, float, float, float]:
    """(RSS, peak RSS, PSS, USS) of ``pid`` now, in MB (1 MB = 1024 kB; NaN where not readable)."""
    rss = peak = pss = uss = float("nan")
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            peak = int(line.split()[1]) / 1024
        elif line.startswith("VmRSS:"):
            rss = int(line.split()[1]) / 1024
    try:
        kb = {"Pss:": 0, "Private_Clean:": 0, "Private_Dirty:": 0}
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            key = line.split(maxsplit=1)[0] if line else ""
            if key in kb:
                kb[key] += int(line.split()[1])
        pss, uss = kb["Pss:"] / 1024, (kb["Private_Clean:"] + kb["Private_Dirty:"]) / 1024
    except OSError:
        pass
    return rss, peak, pss, uss


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def next_start_delay_s(answered: float, now: float) -> float:
    """Seconds to wait at ``now`` before the same job is started through the API again, its last API start
    answered at ``answered`` (both ``time.monotonic()`` seconds): :data:`API_SPACING_S` after that answer.

    The API's 1 s window opens when it handles the request (``SET NX PX`` of the job's debounce key), which is
    any time between the request's sending and its answer. Counted from the sending, a start whose handling
    came late (a gunicorn worker's first request, a loaded machine: 0.5 s and more) put the next one inside
    the window, and the API rightly answered 429."""
    return max(0.0, API_SPACING_S - (now - answered))


def cli_args(options: dict[str, str]) -> list[str]:
    out: list[str] = []
    for key, value in options.items():
        out += ["--" + key.replace("_", "-"), value]
    return out


class Unit:
    """One simulated unit: its environment, and (for ``launcher``/``api``) its launcher, API and worker."""

    def __init__(self, broker_port: int | None = None) -> None:
        self.env_ = UnitEnv(root=Path(tempfile.mkdtemp(prefix="rk-bench-")))
        self.broker = None
        if broker_port is None:  # a broker configured as a unit's (see the module doc)
            self.broker = PrivateBroker(self.env_.root / "broker", persistence=False, extra_conf=UNIT_BROKER_CONF)
            broker_port = self.broker.start().port
        self.broker_port = broker_port
        self.env_.extra["REACTORKIT_LAUNCHER"] = "0"
        # a task queue of its own, and the API's 1 s debounce of a job's run requests with it (keyed by the
        # queue's name): other runs of this benchmark on the machine use the same unit name and Redis database
        # (a worker of theirs could take our starts, and their requests debounce ours)
        self.env_.extra["REACTORKIT_QUEUE_PREFIX"] = f"b{uuid.uuid4().hex[:8]}-"
        # the unit leads its cluster, as the unit running mqtt_to_db_streaming does
        (self.env_.root / "unit_config.ini").write_text(f"[cluster.topology]\nleader_hostname = {self.env_.unit}\n"
                                                        f"[mqtt]\nbroker_port = {broker_port}\n")
        self.procs: list[subprocess.Popen] = []
        self.port = 0
        self.api_starts: dict[str, tuple[float, float]] = {}  # job -> (sent, answered) of its last API start
        self.recorder = MQTTRecorder(self.env_.prefix, port=broker_port)
        os.environ.update(DOT_PIOREACTOR=str(self.env_.root), HOSTNAME=self.env_.unit)  # to read the job registry
        subprocess.run(pio_command("run", "--help"), env=self.env_.env(), stdout=subprocess.DEVNULL, check=True)

    def env(self, mode: str) -> dict[str, str]:
        return self.env_.env(REACTORKIT_LAUNCHER="0" if mode == "spawn" else "1")

    def start_services(self, modes: list[str]) -> None:
        import httpx

        if "launcher" not in modes and "api" not in modes:
            return
        from reactorkit.core.auth.tokens import TokenStore

        token, _ = TokenStore(self.env_.root).create("benchmark", "control")  # the API checks it on every request
        self.headers = {"Authorization": f"Bearer {token}"}
        # one client for the run, as a UI keeps its own: httpx.post would build a client (and its TLS context,
        # ~25–50 ms of CPU) inside every timed start
        self.http = httpx.Client(timeout=30)
        log = open(self.env_.root / "services.log", "wb")
        env = self.env("launcher")
        self.procs.append(subprocess.Popen(pio_command("worker"), env=env, stdout=log, stderr=subprocess.STDOUT))
        if "api" in modes:
            self.port = free_port()
            self.procs.append(subprocess.Popen(pio_command("serve", "--port", str(self.port), "--no-access-log"),
                                               env=env, stdout=log, stderr=subprocess.STDOUT))
        deadline = time.monotonic() + 60
        sock = self.env_.root / "storage" / "launcher.sock"
        while not sock.exists() or (self.port and not self._api_up(httpx)):
            if time.monotonic() > deadline:
                sys.exit(f"the unit's services did not start; see {self.env_.root / 'services.log'}")
            time.sleep(0.2)

    def _api_up(self, httpx: object) -> bool:
        try:
            return self.http.get(f"http://127.0.0.1:{self.port}/unit_api/health", timeout=2).status_code == 200
        except Exception:
            return False

    def job_pid(self, job: str, timeout: float = 10) -> int:
        from reactorkit.core.job_registry import JobRegistry

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rows = JobRegistry().running(job_name=job)
            if rows:
                return rows[-1].pid
            time.sleep(0.02)
        raise TimeoutError(f"{job} is not in the job registry")

    def one_run(self, job: str, mode: str, idle_s: float | None = None) -> tuple[float, ...]:
        """(→ ready, → disconnected, → exit in ms; RSS, peak RSS, PSS, USS in MB, read ``idle_s`` after ready, NaN
        without; the floor in ms) of one start."""
        floor = interpreter_floor_ms(1)  # beside each start: the ratio compares figures taken under the same load

        experiment = "$experiment" if job in LONG_RUNNING else self.env_.experiment
        state = "/".join((f"{self.env_.prefix}pioreactor", self.env_.unit, experiment, job, "$state"))
        options = JOBS[job]
        t0 = time.monotonic()
        answered = t0  # of the API's answer (starts without the API are not paced)
        proc = None
        if mode == "api":
            r = self.http.post(f"http://127.0.0.1:{self.port}/unit_api/jobs/run/job_name/{job}",
                               json={"options": options, "env": {"EXPERIMENT": self.env_.experiment}}, timeout=30,
                               headers=self.headers)
            if r.status_code != 202:
                sys.exit(self.refused(job, r, state, t0))
            answered = time.monotonic()
            self.api_starts[job] = (t0, answered)
        else:
            proc = subprocess.Popen([*PIO, "run", job, *cli_args(options)], env=self.env(mode),
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.recorder.wait_for(state, lambda p: p == b"ready", timeout=30, since=t0)
        ready = time.monotonic() - t0
        time.sleep(0.3 if idle_s is None else idle_s)  # idle
        pid = self.job_pid(job)
        memory = memory_mb(pid) if idle_s is not None else (float("nan"),) * 4
        t1 = time.monotonic()
        os.kill(proc.pid if proc is not None else pid, signal.SIGTERM)
        self.recorder.wait_for(state, lambda p: p == b"disconnected", timeout=30, since=t1)
        disconnected = time.monotonic() - t1
        if proc is not None:
            proc.wait(30)
        else:
            while os.path.exists(f"/proc/{pid}") and _not_zombie(pid):
                time.sleep(0.002)
        exited = time.monotonic() - t1
        time.sleep(next_start_delay_s(answered, time.monotonic()))  # the API refuses the same job within 1 s
        return (ready * 1000, disconnected * 1000, exited * 1000, *memory, floor)

    def refused(self, job: str, r: object, state: str, t0: float) -> str:
        """What is known of a start the API refused (``r``, an ``httpx.Response``): its status and body, the
        remaining life of the job's 1 s debounce key in Redis (ms; set by this request's own handling if close to
        1000 - the time since the request), and whether the job became ``ready`` within 10 s anyway (a start
        queued by another handling of the same request)."""
        import redis

        elapsed = (time.monotonic() - t0) * 1000
        key = f"reactorkit:{self.env_.extra['REACTORKIT_QUEUE_PREFIX']}{self.env_.unit}:run:{job}"
        pttl = redis.Redis.from_url(self.env_.env()["REDIS_URL"]).pttl(key)
        try:
            self.recorder.wait_for(state, lambda p: p == b"ready", timeout=10, since=t0)
            started = "became ready anyway"
        except TimeoutError:
            started = "did not become ready within 10 s"
        previous = self.api_starts.get(job)
        before = ("" if previous is None else
                  f"; the previous API start of {job} was sent {(t0 - previous[0]) * 1000:.0f} ms before this "
                  f"request and answered {(t0 - previous[1]) * 1000:.0f} ms before it (after "
                  f"{(previous[1] - previous[0]) * 1000:.0f} ms)")
        return (f"{job}: the API answered {r.status_code} {r.text} after {elapsed:.0f} ms; its debounce key "
                f"{key} then had {pttl} ms left; the job {started}{before}")

    def close(self) -> None:
        if getattr(self, "http", None) is not None:
            self.http.close()
        for proc in self.procs:
            proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.recorder.close()
        if self.broker is not None:
            self.broker.stop()
        import shutil

        shutil.rmtree(self.env_.root, ignore_errors=True)  # the unit's temporary folder


def _not_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--job", action="append", choices=sorted(JOBS), help="job to measure (repeatable; default all)")
    parser.add_argument("--mode", action="append", choices=MODES, help="how to start it (repeatable; default all)")
    parser.add_argument("--idle", type=float, default=6.0,
                        help="seconds after ready when the last run's memory is read (default 6)")
    parser.add_argument("--broker-port", type=int, default=None,
                        help="measure against the broker on 127.0.0.1:PORT (default: one of the run's own, "
                             "configured as a unit's broker)")
    args = parser.parse_args()
    jobs, modes = args.job or list(JOBS), args.mode or list(MODES)
    compile_sources()
    unit = Unit(args.broker_port)
    try:
        unit.start_services(modes)
        floor = interpreter_floor_ms(7)
        broker = "a unit's (set_tcp_nodelay)" if unit.broker is not None else "the one"
        print(f"broker: {broker} on port {unit.broker_port}")
        print(f"interpreter floor (python -c pass): {floor:.1f} ms; {load_average()}; median of {args.runs} runs; "
              f"memory (MB) {args.idle:g} s after ready in the last run")
        print(f"{'job':<24} {'mode':<9} {'→ ready ms':>10} {'× floor':>8} {'→ disc. ms':>10} {'→ exit ms':>9} "
              f"{'RSS':>5} {'peak':>5} {'PSS':>5} {'USS':>5}  floor ms  load(1 min)")
        for job in jobs:
            for mode in modes:
                rows = [unit.one_run(job, mode, args.idle if i == args.runs - 1 else None) for i in range(args.runs)]
                ready, disc, exit_ = (statistics.median(r[i] for r in rows) for i in range(3))
                rss, peak, pss, uss = rows[-1][3:7]
                floor = statistics.median(r[7] for r in rows)
                ratio = statistics.median(r[0] / r[7] for r in rows)
                print(f"{job:<24} {mode:<9} {ready:>10.1f} {ratio:>8.1f} {disc:>10.1f} {exit_:>9.1f} "
                      f"{rss:>5.1f} {peak:>5.1f} {pss:>5.1f} {uss:>5.1f}  {floor:>8.1f}  {os.getloadavg()[0]:.2f}",
                      flush=True)
        print("targets: → ready within 3× the floor, SIGTERM → exit ≤ 100 ms, idle RSS ≤ 30 MB")
    finally:
        unit.close()


if __name__ == "__main__":
    main()
