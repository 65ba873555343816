"""The server's side of the wire for the edge benches, in a process of its own: receive and commit.

    python bench/mqtt_committer.py PORT [PREFIX]

Subscribes to every event topic under ``PREFIX`` (default ``bench``) on the broker at 127.0.0.1:PORT and,
like the server, publishes each camera's ``committed`` watermark (retained, at most every 0.2 s), so the
edge's outbox drains and its in-flight window (``edge.max_inflight``) never fills. Without it an edge
publishes 200 events per camera and then only resends them every ``resend_after_s``: a bench of a minute
or more then measures resends, not latency.

It prints ``READY`` once subscribed, then one JSON line per event on its *first* delivery:
``{"t": <time.monotonic()>, "camera_id", "event_id", "seq", "kind", ...}`` (line crossings with their
line, direction, class and frame index). ``time.monotonic`` is the system-wide ``CLOCK_MONOTONIC`` on
Linux, so the bench compares it with its own frame stamps. On SIGTERM it prints
``{"summary": {"duplicates": N, "commits": M}}`` and exits. Being its own process, it never competes
with the edge for the edge's GIL; its CPU is the bench's to report apart.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt

from citywatch.contract import ControlCommitted

COMMIT_EVERY_S = 0.2
CROSSING_FIELDS = ("line_id", "direction", "class_name", "frame_index", "track_id")


class Committer:
    def __init__(self, client: mqtt.Client, prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        self.seen: set[str] = set()
        self.duplicates = 0
        self.commits = 0
        self.lock = threading.Lock()
        #: camera -> (site, seqs received above the watermark, watermark)
        self.cameras: dict[str, tuple[str, set[int], int | None]] = {}
        self.dirty: set[str] = set()

    def on_message(self, _c: Any, _u: Any, msg: Any) -> None:
        now = time.monotonic()
        body = json.loads(msg.payload)
        events = body.get("events") if body.get("kind") == "batch" else [body]
        out: list[str] = []
        with self.lock:
            for ev in events or []:
                eid, cam = ev["event_id"], ev["camera_id"]
                site, above, mark = self.cameras.setdefault(cam, (ev["site_id"], set(), None))
                seq = int(ev["seq"])
                if mark is None:
                    mark = seq - 1  # the first seq this run sees: an earlier run's were committed
                if seq > mark:
                    above.add(seq)
                    while mark + 1 in above:
                        mark += 1
                        above.discard(mark)
                    self.cameras[cam] = (site, above, mark)
                    self.dirty.add(cam)
                if eid in self.seen:
                    self.duplicates += 1
                    continue
                self.seen.add(eid)
                rec = {"t": now, "camera_id": cam, "event_id": eid, "seq": seq, "kind": ev.get("kind")}
                if ev.get("kind") == "line_crossing":
                    rec.update({k: ev.get(k) for k in CROSSING_FIELDS})
                out.append(json.dumps(rec))
        if out:
            sys.stdout.write("\n".join(out) + "\n")
            sys.stdout.flush()

    def commit_loop(self, stop: threading.Event) -> None:
        while not stop.wait(COMMIT_EVERY_S):
            with self.lock:
                due = [(cam, *self.cameras[cam]) for cam in self.dirty]
                self.dirty.clear()
            for cam, site, _above, mark in due:
                if mark is None or mark < 1:
                    continue
                payload = ControlCommitted(camera_id=cam, seq=mark).model_dump_json()
                self.client.publish(f"{self.prefix}/{site}/{cam}/control/committed", payload, qos=1, retain=True)
                self.commits += 1


def main() -> None:
    port = int(sys.argv[1])
    prefix = sys.argv[2] if len(sys.argv) > 2 else "bench"
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-committer", protocol=mqtt.MQTTv5)
    committer = Committer(client, prefix)
    client.on_message = committer.on_message
    client.connect("127.0.0.1", port)
    client.subscribe(f"{prefix}/+/+/event/+", qos=1)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    client.loop_start()
    time.sleep(0.3)  # the SUBACK
    print("READY", flush=True)
    committer.commit_loop(stop)
    client.loop_stop()
    print(json.dumps({"summary": {"duplicates": committer.duplicates, "commits": committer.commits}}), flush=True)


if __name__ == "__main__":
    main()
