"""Leader API and ingestion speed: time series over a large ``od_readings``, health, experiments, mqtt-to-db.

Fills a fresh leader database with ``--rows`` od_readings rows (``--units`` units,
one photodiode channel each, evenly over ``--days`` days ending now), serves it
with gunicorn (``pio serve``, as deployed), and reports for

* the all-units time series ``/api/experiments/bench/time_series/od_readings``
  (``target_points=720``, a lookback covering every row),
* ``/unit_api/health`` and
* ``/api/experiments``

the p50/p99 latency of one client (sequential requests on one keep-alive
connection) and the requests per second of ``--concurrency`` connections.
Then it grows the table to ``--rows-large`` rows and measures the time series
again (its latency should depend on the points returned, not the rows stored).
Finally it runs ``mqtt_to_db_streaming`` as a real process, publishes
``--messages`` od readings (QoS 1) to the broker, and reports messages stored
per second and how many were lost.

Targets (issue: fast where it is still level): time series p50 ≤ 5 ms at 1M and at
10M rows, > 150 req/s; health and experiments ≥ 5,000 req/s; ingestion ≥ 5,000
messages/s with no loss here (10,000/s: ``ingestion_throughput.py``). Every figure
is printed with the interpreter floor and the load average measured right after it. The load generator
(``wrk`` when installed, else the Python one below; each line names it) runs on the same machine (and
cores) as the server, so the figures are conservative. The server runs as
``pio serve --workers 2 --threads 8 --no-access-log`` (pio serve's default worker class, gunicorn's gthread
sharing new connections between its workers; a leader does not need a line per request; the access log
costs about a quarter of the small-request throughput); ``--access-log``/``--threads``/``--workers`` change
that.

Ingestion is measured at paced rates (``--ingest-rates``, published with
``mosquitto_pub`` when installed): a rate is *kept up with* when nothing is lost
and the last row is stored within a second of the last publish. Bursts far
above what the writer keeps up with are limited by the broker, which queues at
most ``max_queued_messages`` (mosquitto: 1000) QoS 1 messages per subscriber.

Usage::

    python benchmarks/api_time_series.py                       # 1M then 10M rows
    python benchmarks/api_time_series.py --rows 200000 --rows-large 0 --duration 3   # quick
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import random
import re
import selectors
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from api_server import DidNotStart, remove_unless_kept, start_pio_serve, stop  # noqa: E402 (benchmarks/ is the script's folder)
from machine import conditions, interpreter_floor_ms  # noqa: E402

EXPERIMENT = "bench"
PD_CHANNEL = 2


# ------------------------------------------------------------------- HTTP load
#: ``Authorization`` header line of every request: a read-scope token :func:`create_schema` creates (the API
#: checks it on every request, as deployed)
AUTH_HEADER = ""


def _request_bytes(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: bench\r\n{AUTH_HEADER}Connection: keep-alive\r\n\r\n".encode()


def _read_response(sock: socket.socket, buffer: bytearray) -> tuple[int, bytearray]:
    """Read one response; returns ``(status, leftover)``."""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        buffer += chunk
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    body = bytearray(rest)
    while len(body) < length:
        chunk = sock.recv(max(65536, length - len(body)))
        if not chunk:
            raise ConnectionError("server closed the connection")
        body += chunk
    return status, body[length:]


def latencies(port: int, path: str, n: int, warmup: int = 20) -> list[float]:
    """Milliseconds of ``n`` sequential GETs on one keep-alive connection."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    request, buffer, out = _request_bytes(path), bytearray(), []
    for i in range(warmup + n):
        t0 = time.perf_counter()
        sock.sendall(request)
        status, buffer = _read_response(sock, buffer)
        if status != 200:
            raise RuntimeError(f"{path} answered {status}")
        if i >= warmup:
            out.append((time.perf_counter() - t0) * 1000)
    sock.close()
    return out


def _load_worker(port: int, path: str, connections: int, duration: float, start_at: float, queue: mp.Queue) -> None:
    request = _request_bytes(path)
    selector = selectors.DefaultSelector()
    for _ in range(connections):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ, {"buffer": bytearray(), "need": None, "body": 0})
    while time.time() < start_at:
        time.sleep(0.001)
    done = errors = 0
    end = time.time() + duration
    for key in list(selector.get_map().values()):
        key.fileobj.sendall(request)
    while time.time() < end:
        for key, _ in selector.select(timeout=0.1):
            sock, state = key.fileobj, key.data
            try:
                chunk = sock.recv(262144)
            except BlockingIOError:
                continue
            if not chunk:
                errors += 1
                selector.unregister(sock)
                continue
            buf = state["buffer"]
            buf += chunk
            while True:
                if state["need"] is None:
                    idx = buf.find(b"\r\n\r\n")
                    if idx < 0:
                        break
                    head = bytes(buf[:idx])
                    if b" 200 " not in head.split(b"\r\n", 1)[0]:
                        errors += 1
                    length = 0
                    for line in head.split(b"\r\n")[1:]:
                        name, _, value = line.partition(b":")
                        if name.strip().lower() == b"content-length":
                            length = int(value)
                    del buf[:idx + 4]
                    state["need"] = length
                if len(buf) < state["need"]:
                    break
                del buf[:state["need"]]
                state["need"] = None
                done += 1
                sock.sendall(request)
    queue.put((done, errors))


def throughput(port: int, path: str, concurrency: int, duration: float) -> float:
    """Requests per second of ``concurrency`` keep-alive connections (spread over up to 4 processes)."""
    processes = min(4, concurrency)
    per = [concurrency // processes + (1 if i < concurrency % processes else 0) for i in range(processes)]
    queue: mp.Queue = mp.Queue()
    start_at = time.time() + 0.5
    procs = [mp.Process(target=_load_worker, args=(port, path, n, duration, start_at, queue)) for n in per]
    for p in procs:
        p.start()
    results = [queue.get() for _ in procs]
    for p in procs:
        p.join()
    done = sum(r[0] for r in results)
    errors = sum(r[1] for r in results)
    if errors:
        print(f"    ({errors} errors on {path})")
    return done / duration


def wrk_throughput(port: int, path: str, concurrency: int, duration: float) -> tuple[float, float]:
    """``(requests per second, seconds measured)`` of ``wrk`` with ``concurrency`` keep-alive connections on
    2 threads, sending :data:`AUTH_HEADER`; non-2xx answers and socket errors are printed."""
    header = AUTH_HEADER.strip()
    cmd = ["wrk", "-t", str(min(2, concurrency)), "-c", str(concurrency), "-d", f"{max(1, round(duration))}s",
           *(["-H", header] if header else []), f"http://127.0.0.1:{port}{path}"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    match = re.search(r"(\d+) requests in ([\d.]+)(m?s)", out)
    if match is None:
        sys.exit(f"could not read wrk's output:\n{out}")
    seconds = float(match.group(2)) / (1000 if match.group(3) == "ms" else 1)
    for problem in re.findall(r"(Non-2xx or 3xx responses: \d+|Socket errors: [^\n]+)", out):
        print(f"    ({problem} on {path})")
    return int(match.group(1)) / seconds, seconds



# -------------------------------------------------------------------- the data
def utc_ms(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts * 1000) % 1000:03d}Z"


def setup_leader(root: Path) -> dict[str, str]:
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.ini").write_text(
        "[cluster.topology]\nleader_hostname = leader\nleader_address = 127.0.0.1\n\n[mqtt]\nbroker_address = 127.0.0.1\n"
        "\n[logging]\nconsole_log_level = WARNING\n")
    env = {k: v for k, v in os.environ.items() if k not in ("GLOBAL_CONFIG", "LOCAL_CONFIG", "EXPERIMENT",
                                                             "REACTORKIT_SPEEDUP", "REACTORKIT_CLOCK_ORIGIN")}
    env.update(DOT_PIOREACTOR=str(root), HOSTNAME="leader", MQTT_TOPIC_PREFIX=f"bench{uuid.uuid4().hex[:8]}/",
               REDIS_URL="redis://127.0.0.1:6379/9", PYTHONUNBUFFERED="1")
    return env


def create_schema(env: dict[str, str], units: list[str]) -> Path:
    """Migrate the database with the installed plugins (od_readings + rollup triggers), add the experiment,
    create a read-scope API token (sets :data:`AUTH_HEADER`)."""
    global AUTH_HEADER
    code = (
        "from reactorkit.core.leader_db import LeaderDB, now_iso\n"
        "from reactorkit.core.plugins import Registry\n"
        "import sys\n"
        "db = LeaderDB(registry=Registry.installed())\n"
        f"db.execute(\"INSERT OR IGNORE INTO experiments (experiment, created_at, description) VALUES ('{EXPERIMENT}', ?, 'benchmark')\", (now_iso(),))\n"
        f"for u in {units!r}:\n"
        "    db.add_worker(u, 'pioreactor_20ml', '1.5')\n"
        f"    db.assign(u, '{EXPERIMENT}')\n"
        "from reactorkit.core.auth.tokens import TokenStore\n"
        "print(TokenStore().create('benchmark', 'read')[0])\n"
        "print(db.path)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True)
    token, path = out.stdout.strip().splitlines()[-2:]
    AUTH_HEADER = f"Authorization: Bearer {token}\r\n"
    return Path(path)


def fill(env: dict[str, str], path: Path, units: list[str], rows: int, days: float, end: float, seed: int) -> float:
    """Insert ``rows`` od_readings evenly over ``days`` ending at ``end``; returns seconds taken.

    Bulk load: the rollup trigger is dropped during the load and the leader's
    migration re-creates it and back-fills the rollups (as on an upgrade), which
    is quicker than maintaining them row by row as ingestion does.
    """
    rng = random.Random(seed)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("PRAGMA cache_size = -262144")
    conn.execute("DROP TRIGGER IF EXISTS od_readings_rollup_ai")
    start = end - days * 86400
    per_unit = rows // len(units)
    step = (end - start) / per_unit
    t0 = time.perf_counter()
    batch = 200_000
    for unit in units:
        offset = rng.uniform(0, step)
        for lo in range(0, per_unit, batch):
            values = [(EXPERIMENT, unit, utc_ms(start + offset + i * step), 0.05 + 0.9 * i / per_unit + rng.gauss(0, 0.003),
                       90, PD_CHANNEL) for i in range(lo, min(per_unit, lo + batch))]
            conn.execute("BEGIN")
            conn.executemany("INSERT INTO od_readings (experiment, pioreactor_unit, timestamp, od_reading, angle, channel)"
                             " VALUES (?, ?, ?, ?, ?, ?)", values)
            conn.execute("COMMIT")
    conn.close()
    create_schema(env, units)  # trigger back, rollups back-filled
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return time.perf_counter() - t0


def count_rows(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT count(*) FROM od_readings").fetchone()[0]
    finally:
        conn.close()


# ------------------------------------------------------------------ the server
def start_server(env: dict[str, str], root: Path, args: argparse.Namespace) -> tuple[subprocess.Popen, int]:
    """``pio serve`` with ``args``' workers, threads and access log on a free port, once every worker has loaded
    the app (:func:`api_server.start_pio_serve`); its output goes to ``root``/gunicorn.log.

    Raises:
        SystemExit: it did not start.
    """
    options = ["--workers", str(args.workers), "--threads", str(args.threads),
               "--access-log" if args.access_log else "--no-access-log"]
    return start_pio_serve(env, root, options, args.workers, log_name="gunicorn.log", name="gunicorn")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


# ---------------------------------------------------------------- ingestion
def ingestion(env: dict[str, str], root: Path, rates: list[int], seconds: float,
              publishers: int) -> list[tuple[int, float, float, int, float]]:
    """Run ``mqtt_to_db_streaming`` and publish od readings at each of ``rates`` (messages/s, QoS 1) for ``seconds``.

    Returns ``[(rate, published per second, stored per second, lost, lag)]``: stored per second counts
    from the first publish to the last row stored; lag is how long after the last publish the last
    row was stored (small when the writer keeps up).
    """
    prefix = env["MQTT_TOPIC_PREFIX"]
    db = create_schema(env, [])
    log = open(root / "mqtt_to_db.log", "ab")
    job = subprocess.Popen([sys.executable, "-m", "reactorkit.core.cli.main", "run", "mqtt_to_db_streaming"],
                           env=env, stdout=log, stderr=subprocess.STDOUT)
    results = []
    try:
        _wait_for_writer(db, root)
        for run, rate in enumerate(rates):
            before = count_rows(db)
            messages = int(rate * seconds)
            base = time.time() - 3600 * (run + 2)
            lines: list[list[bytes]] = [[] for _ in range(publishers)]
            for i in range(messages):
                lines[i % publishers].append(json.dumps(
                    {"od": 0.1 + i * 1e-6, "angle": "90", "channel": str(PD_CHANNEL),
                     "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(base + i / 1000))
                     + f".{i % 1000:03d}000Z"}).encode() + b"\n")
            topics = [f"{prefix}pioreactor/ing{n}/{EXPERIMENT}/od_reading/od{PD_CHANNEL}" for n in range(publishers)]
            t0, published_at = _publish_paced(topics, lines, rate)
            stored, last, last_change = 0, -1, time.perf_counter()
            while stored < messages:
                stored = count_rows(db) - before
                if stored != last:
                    last, last_change = stored, time.perf_counter()
                elif time.perf_counter() - last_change > 10:
                    break  # nothing more arrives
                time.sleep(0.01)
            done = last_change if stored < messages else time.perf_counter()
            stored = min(stored, messages)
            results.append((rate, messages / (published_at - t0), stored / (done - t0), messages - stored,
                            max(0.0, done - published_at)))
        return results
    finally:
        stop(job)


def _wait_for_writer(db: Path, root: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        conn = sqlite3.connect(db)
        try:
            if conn.execute("SELECT count(*) FROM logs WHERE task = 'mqtt_to_db_streaming'"
                            " AND message LIKE 'Storing%'").fetchone()[0]:
                time.sleep(0.5)
                return
        except sqlite3.OperationalError:
            pass
        finally:
            conn.close()
        time.sleep(0.1)
    raise DidNotStart("mqtt_to_db_streaming", root / "mqtt_to_db.log")


def _publish_paced(topics: list[str], lines: list[list[bytes]], rate: float) -> tuple[float, float]:
    """Feed each topic's lines to a publisher at ``rate`` messages/s in total (QoS 1): ``mosquitto_pub -l``
    (C) when installed, else a paho client per topic in its own process.

    Returns ``(start, end)`` of publishing (``time.perf_counter``).
    """
    tool = shutil.which("mosquitto_pub")
    if tool is None:
        workers = [mp.Process(target=_paho_paced, args=(t, chunk, rate / len(topics))) for t, chunk in zip(topics, lines)]
        for p in workers:
            p.start()
        t0 = time.perf_counter()
        for p in workers:
            p.join()
        return t0, time.perf_counter()
    procs = [subprocess.Popen([tool, "-h", "127.0.0.1", "-p", "1883", "-q", "1", "-t", t, "-l"],
                              stdin=subprocess.PIPE, stdout=subprocess.DEVNULL) for t in topics]
    time.sleep(0.5)  # connected before the clock starts
    per_second = rate / len(topics)
    sent = [0] * len(topics)
    t0 = time.perf_counter()
    while any(s < len(chunk) for s, chunk in zip(sent, lines)):
        due = int((time.perf_counter() - t0) * per_second) + 1
        for n, proc in enumerate(procs):
            upto = min(due, len(lines[n]))
            if upto > sent[n]:
                proc.stdin.write(b"".join(lines[n][sent[n]:upto]))
                proc.stdin.flush()
                sent[n] = upto
        time.sleep(0.005)
    fed = time.perf_counter()
    for proc in procs:
        proc.stdin.close()
        proc.wait()
    return t0, fed


def _paho_paced(topic: str, chunk: list[bytes], per_second: float) -> None:
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2)
    client.max_inflight_messages_set(1000)
    client.connect("127.0.0.1", 1883)
    client.loop_start()
    t0, infos = time.perf_counter(), []
    for i, line in enumerate(chunk):
        wait = t0 + i / per_second - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        infos.append(client.publish(topic, line.rstrip(b"\n"), qos=1))
    for info in infos:
        info.wait_for_publish(60)
    client.disconnect()
    client.loop_stop()


# ------------------------------------------------------------------------ main
def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def measure_endpoint(port: int, name: str, path: str, args: argparse.Namespace) -> tuple[float, float, float]:
    """p50 and p99 of one client, and requests per second of ``--concurrency`` connections with ``wrk`` when it
    is installed (else the Python generator above; the line says which ran)."""
    lat = latencies(port, path, args.requests)
    if shutil.which("wrk"):
        rps, loadgen = wrk_throughput(port, path, args.concurrency, args.duration)[0], "wrk"
    else:
        rps, loadgen = throughput(port, path, args.concurrency, args.duration), "python"
    p50, p99 = statistics.median(lat), percentile(lat, 99)
    print(f"  {name:<14} p50 {p50:7.2f} ms   p99 {p99:7.2f} ms   {rps:9.0f} req/s ({args.concurrency} connections, "
          f"{loadgen})   [{conditions()}]")
    return p50, p99, rps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="od_readings rows of the first round")
    parser.add_argument("--rows-large", type=int, default=10_000_000, help="rows of the second round (0: skip)")
    parser.add_argument("--units", type=int, default=4)
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--requests", type=int, default=300, help="sequential requests for the latency figures")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of each throughput run")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes (pio serve --workers)")
    parser.add_argument("--threads", type=int, default=8, help="threads per worker (pio serve --threads)")
    parser.add_argument("--access-log", action="store_true", help="serve with gunicorn's per-request access log")
    parser.add_argument("--ingest-rates", default="5000,7500,10000",
                        help="messages/s to publish, comma separated ('' to skip the ingestion runs)")
    parser.add_argument("--ingest-seconds", type=float, default=6.0, help="seconds of each ingestion run")
    parser.add_argument("--publishers", type=int, default=4, help="concurrent publishers (one topic each)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temporary leader folder (kept anyway, with its logs, when a process did not start)")
    args = parser.parse_args()

    print(f"interpreter floor (python -c pass) {interpreter_floor_ms():.0f} ms; load average "
          + " ".join(f"{x:.2f}" for x in os.getloadavg()) + f" ({os.cpu_count()} cores); each figure below is "
          "followed by the floor and the load measured just after it")
    root = Path(tempfile.mkdtemp(prefix="rk-bench-leader-"))
    env = setup_leader(root / "leader")
    units = [f"pio{i + 1:02d}" for i in range(args.units)]
    lookback_h = args.days * 24 + 1
    series_path = f"/api/experiments/{EXPERIMENT}/time_series/od_readings?lookback={lookback_h:g}&target_points=720"
    failed = None
    try:
        db = create_schema(env, units)
        end = time.time()
        took = fill(env, db, units, args.rows, args.days, end, seed=1)
        print(f"od_readings: {count_rows(db):,} rows ({args.units} units, {args.days:g} days) filled in {took:.1f} s")
        server, port = start_server(env, root, args)
        print(f"pio serve --workers {args.workers} --threads {args.threads} "
              f"{'--access-log' if args.access_log else '--no-access-log'} on {os.cpu_count()} CPU(s)")
        body = json.loads(_get(port, series_path))
        print(f"  time series returns {len(body['series'])} series × {len(body['data'][0]) if body['data'] else 0} points")
        try:
            ts_small = measure_endpoint(port, "time series", series_path, args)
            health = measure_endpoint(port, "health", "/unit_api/health", args)
            experiments = measure_endpoint(port, "experiments", "/api/experiments", args)
        finally:
            stop(server)

        ts_large = None
        if args.rows_large > args.rows:
            took = fill(env, db, units, args.rows_large - args.rows, args.days, end, seed=2)
            print(f"od_readings: {count_rows(db):,} rows, {args.rows_large - args.rows:,} added in {took:.1f} s")
            server, port = start_server(env, root, args)
            try:
                ts_large = measure_endpoint(port, "time series", series_path, args)
            finally:
                stop(server)

        ingest = []
        rates = [int(r) for r in args.ingest_rates.split(",") if r.strip()]
        if rates:
            tool = "mosquitto_pub" if shutil.which("mosquitto_pub") else "paho"
            print(f"ingestion: od readings published with QoS 1 by {args.publishers} {tool} client(s), "
                  f"{args.ingest_seconds:g} s per rate")
            ingest = ingestion(env, root, rates, args.ingest_seconds, args.publishers)
            for rate, published, stored, lost, lag in ingest:
                print(f"  published {published:7,.0f} msg/s: stored {stored:7,.0f} msg/s, lost {lost}, "
                      f"last row stored {lag:.2f} s after the last publish")
            print(f"  [{conditions()}] (ingestion_throughput.py measures the 10,000 messages/s target)")

        print("\ntargets")
        print(f"  time series p50 ≤ 5 ms at {args.rows:,} rows: {ts_small[0]:.2f} ms {verdict(ts_small[0] <= 5)}")
        print(f"  time series > 150 req/s: {ts_small[2]:.0f} {verdict(ts_small[2] > 150)}")
        if ts_large is not None:
            ratio = ts_large[0] / ts_small[0]
            print(f"  time series p50 ≤ 5 ms at {args.rows_large:,} rows: {ts_large[0]:.2f} ms "
                  f"{verdict(ts_large[0] <= 5)} ({ratio:.2f}× the p50 at {args.rows:,} rows)")
        print(f"  health > 5,000 req/s: {health[2]:.0f} {verdict(health[2] > 5000)}")
        print(f"  experiments ≥ 5,000 req/s: {experiments[2]:.0f} {verdict(experiments[2] >= 5000)}")
        if ingest:
            # sustained = kept up with the publishers: nothing lost, stored within 1 s of the last publish
            kept_up = [published for _, published, _, lost, lag in ingest if lost == 0 and lag <= 1.0]
            best = max(kept_up, default=0.0)
            lost = sum(r[3] for r in ingest)
            print(f"  ingestion >= 5,000 messages/s sustained, none lost: kept up with {best:,.0f}/s, lost {lost} "
                  f"{verdict(best >= 5000 and lost == 0)}")
    except DidNotStart as exc:  # the message names its log, in root
        failed = exc
        raise
    finally:
        remove_unless_kept(root, args.keep, failed)


def _get(port: int, path: str) -> bytes:
    """The body of one GET."""
    sock = socket.create_connection(("127.0.0.1", port))
    try:
        sock.sendall(_request_bytes(path))
        buffer = bytearray()
        while b"\r\n\r\n" not in buffer:
            buffer += sock.recv(65536)
        head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
        length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length"))
        body = bytearray(rest)
        while len(body) < length:
            body += sock.recv(65536)
        return bytes(body[:length])
    finally:
        sock.close()


if __name__ == "__main__":
    main()
