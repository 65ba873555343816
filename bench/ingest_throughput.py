"""Sustained ingest through a private Mosquitto configured as shipped (deploy/mosquitto), from simulated
edges in separate processes, beside a count-only paho subscriber receiving the same load in the same run.

    python bench/ingest_throughput.py --db sqlite --events 20000 --batch 1
    python bench/ingest_throughput.py --db postgresql --events 100000 --batch 50 --ingest 1 2 3

Prints one line per run: events/s stored by citywatch ingest (processes `python -m server`), the
count-only baseline measured just before it, and checks zero loss / zero duplicates (stored ==
published), with the CPU time per message of the count-only subscriber and of the ingest processes
(the database server's apart); then the medians of ``--repeat`` runs, since other work on a shared
machine moves single runs by ±30 %.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import paho.mqtt.client as mqtt
import yaml
from paho.mqtt.enums import CallbackAPIVersion

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

sys.path.insert(0, str(REPO / "tests"))

from support import ShippedBroker, wait_ingest_subscribed  # noqa: E402  (the tests' broker from deploy/mosquitto)

from citywatch.contract import EventBatch, LineCrossing  # noqa: E402
from server.storage.store import Store  # noqa: E402

PG_URL = os.environ.get("CITYWATCH_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def start_broker(tmp: Path) -> tuple[ShippedBroker, int]:
    """deploy/mosquitto/mosquitto.conf with its delivery settings, anonymous on a free loopback port."""
    broker = ShippedBroker(tmp)
    broker.start()
    return broker, broker.port


def publisher_proc(port: int, prefix: str, cams: list[str], per_cam: int, batch: int, go: mp.Event, run: str) -> None:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{run}-{cams[0]}", protocol=mqtt.MQTTv5)
    c.max_inflight_messages_set(1000)
    c.max_queued_messages_set(0)
    c.connect("127.0.0.1", port, 60)
    c.loop_start()
    now = datetime.now(timezone.utc)
    msgs = []
    for cam in cams:
        evs = [
            LineCrossing(
                event_id=uuid.uuid4(),
                camera_id=cam,
                site_id="s1",
                seq=s,
                ts=now,
                config_version="b",
                model_version="b",
                line_id="l1",
                direction="in" if s % 2 else "out",
                class_name=("car", "motorcycle", "truck")[s % 3],
                track_id=s,
                frame_index=s,
                speed_kmh=30.0,
            )
            for s in range(1, per_cam + 1)
        ]
        for i in range(0, per_cam, batch):
            chunk = evs[i : i + batch]
            if batch == 1:
                msgs.append((f"{prefix}/s1/{cam}/event/line_crossing", chunk[0].model_dump_json()))
            else:
                msgs.append((f"{prefix}/s1/{cam}/event/batch", EventBatch(events=chunk).model_dump_json()))
    go.wait()
    infos = [c.publish(t, p, qos=1) for t, p in msgs]
    for i in infos:
        i.wait_for_publish(600)
    c.disconnect()
    c.loop_stop()


def publish(port: int, prefix: str, n_pub: int, n_cams: int, events: int, batch: int, run: str) -> float:
    per_cam = events // n_cams
    cams = [f"cam-{i}" for i in range(n_cams)]
    go = mp.Event()
    procs = [
        mp.Process(target=publisher_proc, args=(port, prefix, cams[i::n_pub], per_cam, batch, go, run))
        for i in range(n_pub)
    ]
    for p in procs:
        p.start()
    time.sleep(1.0 + 0.00005 * events)  # let them build their messages
    t0 = time.perf_counter()
    go.set()
    return t0, procs  # type: ignore[return-value]


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (Linux /proc; NaN elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def baseline(port: int, prefix: str, args: argparse.Namespace, run: str) -> tuple[float, float]:
    """Events/s a count-only paho subscriber receives, and its CPU µs per message."""
    n_msgs = (args.events // args.cameras) // args.batch * args.cameras
    got = [0]
    last = [0.0]
    done = threading.Event()

    def on_message(_c, _u, _m):  # type: ignore[no-untyped-def]
        got[0] += 1
        if got[0] >= n_msgs:
            last[0] = time.perf_counter()
            done.set()

    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-count-{run}", protocol=mqtt.MQTTv5)
    c.on_message = on_message
    c.connect("127.0.0.1", port, 60)
    c.subscribe(f"{prefix}/+/+/event/+", qos=1)
    c.loop_start()
    time.sleep(0.5)
    t0, procs = publish(port, prefix, args.publishers, args.cameras, args.events, args.batch, run)
    cpu0 = time.process_time()  # this process: the subscriber's thread; the publishers are children
    done.wait(600)
    cpu = time.process_time() - cpu0
    for p in procs:
        p.join()
    c.disconnect()
    c.loop_stop()
    rate = got[0] * args.batch / (last[0] - t0) if last[0] else float("nan")
    return rate, cpu / max(got[0], 1) * 1e6


def ingest_run(
    port: int, prefix: str, args: argparse.Namespace, k: int, tmp: Path, run: str
) -> tuple[float, int, float]:
    """Events/s stored, stored minus published, and the ingest processes' CPU µs per message."""
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    if args.db == "sqlite":
        url, schema_env = f"sqlite:///{tmp}/{schema}.sqlite", None
    else:
        url, schema_env = PG_URL, schema
    store = Store(url, schema=schema_env)
    procs = []
    for i in range(k):
        cfg = {
            "site": "s1",
            "mqtt": {
                "host": "127.0.0.1",
                "port": port,
                "topic_prefix": prefix,
                "username_env": None,
                "password_env": None,
                "shared_group": "bench" if k > 1 else None,
                "session_expiry_s": 600,
            },
            "server": {"database_url": url, "client_id": f"bench-ingest-{run}-{i}", "port": 0},
        }
        if args.batch_max_events:
            cfg["server"]["ingest"] = {"batch_max_events": args.batch_max_events}
        f = tmp / f"ingest-{run}-{i}.yaml"
        f.write_text(yaml.safe_dump(cfg))
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        if schema_env:
            env["CITYWATCH_DATABASE_SCHEMA"] = schema_env
        with open(tmp / f"ingest-{run}-{i}.log", "wb") as log:  # the child keeps its own descriptor
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "server", "-c", str(f), "--port", "0"],
                    cwd=REPO,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
    wait_ingest_subscribed(*(tmp / f"ingest-{run}-{i}.log" for i in range(k)))
    expected = (args.events // args.cameras) * args.cameras
    cpu0 = sum(cpu_seconds(p.pid) for p in procs)
    t0, pubs = publish(port, prefix, args.publishers, args.cameras, args.events, args.batch, run)
    deadline = time.perf_counter() + 900
    while time.perf_counter() < deadline:
        # done when every camera's watermark reached its last seq: 20 rows to read, where polling
        # count(*) over the growing events table took the database's CPU from the ingest it measures
        if sum(store.committed_seqs().values()) >= expected:
            break
        time.sleep(0.05)
    t1 = time.perf_counter()
    for p in pubs:
        p.join()
    cpu = sum(cpu_seconds(p.pid) for p in procs) - cpu0
    time.sleep(1.0)
    n = store.count_events()
    for p in procs:
        p.terminate()
        p.wait(20)
    if n != expected:  # show why: the ingest processes' own logs
        for f in sorted(tmp.glob(f"ingest-{run}-*.log")):
            print(f"--- {f.name} (last lines)\n" + "\n".join(f.read_text(errors="replace").splitlines()[-20:]))
    if args.db == "postgresql":
        from sqlalchemy import text

        with store.engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    store.close()
    return expected / (t1 - t0), n - expected, cpu / (expected // args.batch) * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    ap.add_argument("--events", type=int, default=20000)
    ap.add_argument("--batch", type=int, default=1, help="events per MQTT message (1: single-event messages)")
    ap.add_argument("--publishers", type=int, default=2, help="simulated edge processes")
    ap.add_argument("--cameras", type=int, default=20)
    ap.add_argument("--ingest", type=int, nargs="+", default=[1], help="ingest process counts to try")
    ap.add_argument("--batch-max-events", type=int, help="server.ingest.batch_max_events (default: the product's)")
    ap.add_argument(
        "--repeat", type=int, default=3,
        help="runs per ingest count, each right after its own count-only run (the machine is shared: medians)",
    )
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        broker, port = start_broker(tmp)
        try:
            for k in args.ingest:
                ratios, rates, bases, cpus = [], [], [], []
                for r in range(args.repeat):
                    run = uuid.uuid4().hex[:6]
                    base, base_cpu = baseline(port, f"bench-{run}-base", args, run)
                    run = uuid.uuid4().hex[:6]
                    rate, extra, cpu = ingest_run(port, f"bench-{run}", args, k, tmp, run)
                    ratios.append(rate / base)
                    rates.append(rate)
                    bases.append(base)
                    cpus.append((base_cpu, cpu))
                    print(
                        f"  run {r + 1}: db={args.db} events={args.events} batch={args.batch} "
                        f"publishers={args.publishers} ingest={k}: {rate:,.0f} events/s stored "
                        f"({rate / base:.0%} of count-only {base:,.0f} events/s); stored-published={extra}; "
                        f"CPU per message: count-only {base_cpu:.0f} us, ingest {cpu:.0f} us (database server apart)",
                        flush=True,
                    )
                print(
                    f"db={args.db} events={args.events} batch={args.batch} publishers={args.publishers} ingest={k}: "
                    f"median {statistics.median(rates):,.0f} events/s stored, median count-only "
                    f"{statistics.median(bases):,.0f} events/s, median ratio {statistics.median(ratios):.0%} "
                    f"(range {min(ratios):.0%}-{max(ratios):.0%}, {args.repeat} runs); median CPU per message: "
                    f"count-only {statistics.median(c[0] for c in cpus):.0f} us, "
                    f"ingest {statistics.median(c[1] for c in cpus):.0f} us",
                    flush=True,
                )
        finally:
            broker.stop()


if __name__ == "__main__":
    main()
