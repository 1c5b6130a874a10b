"""MQTT → leader database ingestion: sustained rate, lag and completeness.

Starts a mosquitto of its own on a free port (persistence on, Debian's
defaults otherwise) and the leader's ``mqtt_to_db_streaming`` job on a fresh
``$DOT_PIOREACTOR``, then N publishing processes — one per simulated unit —
each offering ``rate / N`` OD readings per second for ``--seconds`` on
``pioreactor/{unit}/{experiment}/od_reading/od2`` (QoS 1), numbered the way
a unit's outbox numbers them (MQTT 5 user properties ``rk-stream`` and
``rk-seq``). Every reading carries its number as its value, so a reading
stored twice or never is found by value.

Prints, with the interpreter floor and the machine's load beside them:

* offered: what the publishers sent per second, and how far behind their
  schedule they fell: the publishers are not the bottleneck when they kept
  their schedule (each sends what is due every 20 ms in one write; the oldest
  message of a write is never more than 100 ms later than that), which the
  run says in so many words; ``--publishers-only`` measures what they can
  offer with no ingestion at all;
* stored per second over the run, lag (how long after a reading was offered
  it was committed: median and max over the run, sampled every 0.1 s), and the
  catch-up time once publishing stopped;
* published / stored / lost / duplicated;
* CPU seconds used by the publishers, the broker and the ingestion process.

Target (issue: ingestion ≥ 10,000 messages/s): 10,000/s for 60 s, 0 lost, lag < 1 s.

Usage:
    python benchmarks/ingestion_throughput.py [--rate 10000] [--seconds 60] [--units 4]
        [--ingesters 1] [--publishers-only]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from machine import interpreter_floor_ms  # noqa: E402 (benchmarks/ is the script's folder)

EXPERIMENT = "bench"
BROKER_CONF = "max_queued_messages 100000\n"


def publisher(unit: str, port: int, prefix: str, rate: float, seconds: float, start_at: float,
              sent: "mp.sharedctypes.Synchronized", behind: "mp.sharedctypes.Synchronized",
              acked: "mp.sharedctypes.Synchronized", window: "mp.sharedctypes.SynchronizedArray",
              tick_s: float = 0.02) -> None:
    """One simulated unit: ``rate`` readings/s for ``seconds``, what is due sent every ``tick_s``
    in one write (see :mod:`mqtt_wire`; a write per message costs the publisher more than the
    messages themselves). ``behind``: how late the oldest message of a write was, beyond one tick;
    ``window``: monotonic times of the first and the last write."""
    sys.path.insert(0, str(Path(__file__).parent))
    from mqtt_wire import WirePublisher

    client = WirePublisher("127.0.0.1", port, f"bench-{unit}")
    topic = f"{prefix}pioreactor/{unit}/{EXPERIMENT}/od_reading/od2"
    stream = uuid.uuid4().hex[:16]
    total = int(rate * seconds)
    while time.time() < start_at:
        time.sleep(0.001)
    t0 = time.monotonic()
    window[0] = t0
    n = 0
    worst = 0.0
    while n < total:
        elapsed = time.monotonic() - t0
        due = min(total, int(elapsed * rate) + 1)
        if due > n:
            worst = max(worst, elapsed - n / rate - tick_s)
            now = time.time()
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1e6) % 1_000_000:06d}Z"
            seqs = range(n + 1, due + 1)
            client.publish_many(topic, [f'{{"od": {k}, "angle": "90", "channel": "2", "timestamp": "{stamp}"}}'.encode()
                                        for k in seqs],
                                [[("rk-stream", stream), ("rk-seq", str(k))] for k in seqs])
            n = due
            window[1] = time.monotonic()
            sent.value = n
            behind.value = max(behind.value, worst)
        time.sleep(max(0.0, tick_s - (time.monotonic() - t0) % tick_s))
    client.wait_acked(120)
    acked.value = client.acked
    client.close()


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError):
        return float("nan")


def stored_count(db: Path) -> int:
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            row = conn.execute("SELECT max(rowid) FROM od_readings").fetchone()
        finally:
            conn.close()
        return int(row[0] or 0)
    except sqlite3.Error:
        return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=10_000, help="messages per second, all units together")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--units", type=int, default=4, help="publishing processes, one per simulated unit")
    parser.add_argument("--ingesters", type=int, default=None,
                        help="ingestion processes sharing the subscription ([mqtt_to_db] processes)")
    parser.add_argument("--publishers-only", action="store_true", help="no ingestion: what the publishers can offer")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--ingestion-pythonpath", help="run the ingestion of another checkout (a folder holding a "
                                                       "reactorkit package), e.g. to compare with main")
    args = parser.parse_args()

    from reactorkit.core.fault_drills import PrivateBroker, wait_until
    from reactorkit.core.testing import MQTTRecorder, pio_command

    floor = interpreter_floor_ms()
    base = Path(tempfile.mkdtemp(prefix="rk-ingest-"))
    # the broker settings the README recommends for a leader: room for a burst instead of dropping it
    broker = PrivateBroker(base / "broker", extra_conf=BROKER_CONF).start()
    prefix = f"b{uuid.uuid4().hex[:8]}/"
    leader = base / "leader"
    leader.mkdir()
    config = broker.config_ini()
    if args.ingesters:
        config += f"\n[mqtt_to_db]\nprocesses = {args.ingesters}\n"
    (leader / "config.ini").write_text(config)
    env = dict(os.environ, DOT_PIOREACTOR=str(leader), HOSTNAME="leader", MQTT_TOPIC_PREFIX=prefix,
               EXPERIMENT="$experiment", PYTHONUNBUFFERED="1")
    if args.ingestion_pythonpath:
        env["PYTHONPATH"] = args.ingestion_pythonpath
    db = leader / "storage" / "pioreactor.sqlite"
    ingest = None
    recorder = MQTTRecorder(prefix, port=broker.port)
    try:
        if not args.publishers_only:
            ingest = subprocess.Popen(pio_command("run", "mqtt_to_db_streaming"), env=env,
                                      stdout=open(base / "ingest.log", "wb"), stderr=subprocess.STDOUT)
            recorder.wait_for(f"{prefix}pioreactor/leader/$experiment/mqtt_to_db_streaming/$state",
                              lambda p: p == b"ready", timeout=60)
        recorder.close()
        load_before = os.getloadavg()
        ctx = mp.get_context("spawn")
        sent = [ctx.Value("q", 0) for _ in range(args.units)]
        behind = [ctx.Value("d", 0.0) for _ in range(args.units)]
        acked = [ctx.Value("q", 0) for _ in range(args.units)]
        windows = [ctx.Array("d", 2) for _ in range(args.units)]
        start_at = time.time() + 3.0
        procs = [ctx.Process(target=publisher, args=(f"unit{i + 1}", broker.port, prefix, args.rate / args.units,
                                                     args.seconds, start_at, sent[i], behind[i], acked[i], windows[i]))
                 for i in range(args.units)]
        for p in procs:
            p.start()
        cpu0 = {"broker": cpu_seconds(broker.proc.pid)}
        if ingest is not None:
            cpu0["ingestion"] = cpu_seconds(ingest.pid)
        while time.time() < start_at:
            time.sleep(0.01)
        t0 = time.monotonic()
        samples: list[tuple[float, int, int]] = []  # (t, offered, stored)
        pub_cpu: dict[int, float] = {}
        while any(p.is_alive() for p in procs):
            offered = sum(v.value for v in sent)
            stored = stored_count(db) if ingest is not None else 0
            samples.append((time.monotonic() - t0, offered, stored))
            for p in procs:
                if p.is_alive():
                    pub_cpu[p.pid] = cpu_seconds(p.pid)
            time.sleep(0.1)
        publish_end = time.monotonic() - t0
        published = sum(v.value for v in acked)
        catch_up = float("nan")
        if ingest is not None:
            try:
                wait_until(lambda: stored_count(db) >= published, timeout=120, interval=0.05, what="catch-up")
                catch_up = time.monotonic() - t0 - publish_end
            except TimeoutError:
                pass
        cpu = {k: cpu_seconds(broker.proc.pid if k == "broker" else ingest.pid) - v for k, v in cpu0.items()}
        load_after = os.getloadavg()

        def offered_at(count: int) -> float:
            for t, offered, _ in samples:
                if offered >= count:
                    return t
            return samples[-1][0]

        lags = [t - offered_at(stored) for t, offered, stored in samples if stored and t > 1.0 and stored < offered]
        lags += [0.0] * sum(1 for t, offered, stored in samples if stored >= offered and t > 1.0)
        print(f"broker: mosquitto with persistence and {BROKER_CONF.strip()}; ingestion: "
              f"{args.ingestion_pythonpath or 'this checkout'}")
        print(f"interpreter floor {floor:.0f} ms; load average {load_before[0]:.2f} before, {load_after[0]:.2f} after "
              f"({os.cpu_count()} cores)")
        total_offered = sum(v.value for v in sent)
        offered_end = max(w[1] for w in windows) - min(w[0] for w in windows)  # first write to last, all units
        worst_behind = max(v.value for v in behind)
        pub_cpu_s = sum(pub_cpu.values())
        print(f"offered: {total_offered} messages from {args.units} publishers in {offered_end:.1f} s = "
              f"{total_offered / offered_end:,.0f}/s (target {args.rate:,.0f}/s); {published} acknowledged by the broker")
        verdict = ("kept their schedule: they are not the bottleneck" if worst_behind < 0.1
                   else "FELL BEHIND their schedule: they limited what was offered")
        print(f"publishers: {verdict} (oldest message of a write at most {max(0.0, worst_behind) * 1000:.0f} ms late "
              f"beyond their 20 ms tick; {pub_cpu_s:.1f} CPU s = "
              f"{pub_cpu_s / max(total_offered, 1) * 1e6:.0f} µs per message, start-up included)")
        if ingest is None:
            return
        rows = sqlite3.connect(db).execute(
            "SELECT count(*), count(DISTINCT pioreactor_unit || '/' || od_reading) FROM od_readings").fetchone()
        stored_total, distinct = rows
        last_t = samples[-1][0]
        print(f"stored: {stored_total / (publish_end + (catch_up if catch_up == catch_up else 0)):,.0f}/s overall; "
              f"lag median {statistics.median(lags) if lags else 0:.2f} s, max {max(lags) if lags else 0:.2f} s "
              f"(sampled over {last_t:.0f} s); catch-up after the last publish {catch_up:.2f} s")
        print(f"published {published} / stored {stored_total} / lost {published - distinct} / "
              f"duplicated {stored_total - distinct}")
        per_msg = cpu.get('ingestion', 0) / max(published, 1) * 1e6
        print(f"CPU seconds: ingestion {cpu.get('ingestion', 0):.1f} ({per_msg:.0f} µs per message), "
              f"broker {cpu['broker']:.1f}, publishers {pub_cpu_s:.1f}")
    finally:
        if ingest is not None and ingest.poll() is None:
            ingest.terminate()
            ingest.wait(30)
        broker.stop()
        if not args.keep:
            import shutil

            shutil.rmtree(base, ignore_errors=True)
        else:
            print(f"kept {base}")


if __name__ == "__main__":
    main()
