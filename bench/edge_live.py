"""The end-to-end rows of bench/edge_throughput.py: the real ``EdgeWorker``, N cameras, a private Mosquitto.

Three kinds of row, each in its own subprocess (its CPU time and peak RSS are its own):

- ``e2e`` (:func:`child_e2e`): the London clips as files, ``realtime: false``, every frame as fast as it
  goes, once; counting error scored against the ground truth (cameras 1-3; camera 4 repeats clip 1);
- ``rt`` (:func:`child_realtime`): the clips as four file cameras paced in real time at their 25 fps and
  looped (``realtime: true, loop: true``), as the demo runs them; measured over ``duration`` seconds after
  a warm-up: frames handled per camera against 25 x wall seconds (the issue's 0.95 bar);
- ``rtsp`` (:func:`child_rtsp`): H.264 camera streams made from the clips (upscaled to 1280x720, 1920x1080,
  or a 640x360 sub-stream; bench/rtsp_serve.py with the system Python's GStreamer; encoded once into
  the cache), served over RTSP at 25 fps of wall clock and looped, read by the edge's own live source
  (OpenCV/FFmpeg over TCP); measured over ``duration`` seconds after the streams are up: frames decoded and
  handled per second per stream, CPU per stream, frames the edge dropped for being behind.

Latency is frame -> MQTT: from the moment the frame exists for the edge (a live frame when its grabber
decoded it; a real-time file frame when it was due by the clock, so falling behind shows; a fast file
frame when it was read) to the broker's first delivery of its crossing to bench/mqtt_committer.py, a
subscriber in a process of its own that also commits what it received, as the server does (so the
edge's in-flight window never fills and resends are not taken for late deliveries). Its first part is
given apart as "wait": how long a frame existed before its camera's vision thread took it (a live frame
in the grabber's buffer, a real-time file frame's lag behind the clock).
CPU % is this process's CPU time over wall time (200 % = both cores): decode, vision, outbox and MQTT,
all of it; the RTSP server's own CPU (the cameras' side, not the box's) is given apart.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from edge_throughput import CACHE, REPO, Meter, london, model_config, pct, processing, score

SRC_W, SRC_H, FPS = 352, 288, 25
GST_PYTHON = "/usr/bin/python3"
SERVE = REPO / "bench/rtsp_serve.py"

#: name -> (width, height, kbit/s, ROI): a camera's main streams (720p, 1080p), the 1080p one with a configured
#: ROI (the lines' bounding box plus 10 % of the frame on every side), and a typical sub-stream.
STREAMS: dict[str, tuple[int, int, int, str | None]] = {
    "720p": (1280, 720, 2000, None),
    "1080p": (1920, 1080, 4000, None),
    "1080p-roi": (1920, 1080, 4000, "lines+10%"),
    "360p-sub": (640, 360, 512, None),
}
DEFAULT_STREAMS = "720p,1080p,1080p-roi,360p-sub"


class Broker:
    """A private Mosquitto on a free port, for one row."""

    def __enter__(self) -> Broker:
        self.tmp = Path(tempfile.mkdtemp(prefix="cw-e2e-"))
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        (self.tmp / "m.conf").write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
        mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.proc = subprocess.Popen([mosquitto, "-c", str(self.tmp / "m.conf")], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        wait_port(self.port)
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(5)
        shutil.rmtree(self.tmp, ignore_errors=True)


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port} after {timeout:.0f} s")


class Stamps:
    """When each frame came to exist for the edge, and each crossing's frame -> MQTT latency on delivery.

    Patches ``edge.capture.open_camera_source`` (so every camera's source is wrapped, whatever its kind) and
    the live grabber's hand-over (a live frame exists when it is decoded, not when the vision thread takes it).
    Keys are (camera, frame index); a looping file reuses indices on its next pass, seconds later, by which
    time its crossings have long been delivered."""

    def __init__(self) -> None:
        self.at: dict[tuple[str, int], float] = {}
        self.latency_ms: list[tuple[float, float]] = []  # (delivered at, ms)
        self.wait_ms: list[tuple[float, float]] = []  # (taken at, ms it existed before the vision thread took it)
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.lock = threading.Lock()
        self.first: float | None = None
        self.last = 0.0

    def install(self) -> None:
        from edge import capture, sources

        decoded: dict[int, float] = {}  # id(image) -> when its grabber handed it over (ids reused: overwritten)
        orig_put = sources._Grabber._put

        def put(grabber: Any, kind: str, value: Any) -> None:
            if kind == "frame":
                decoded[id(value)] = time.monotonic()
            orig_put(grabber, kind, value)

        sources._Grabber._put = put  # type: ignore[method-assign]
        orig_open = capture.open_camera_source

        def timed_open(camera: Any, cfg: Any, outbox: Any) -> Any:
            source, resumed = orig_open(camera, cfg, outbox)
            frames, cam_id = source.frames, camera.id

            def stamped(stop: Any = None) -> Any:
                for f in frames(stop):
                    taken = now = time.monotonic()
                    if isinstance(source, sources.LiveSource):
                        now = decoded.pop(id(f.image), now)
                    elif source.realtime:
                        now -= source.lag_s  # when it was due: a camera behind the clock shows as latency
                    self.wait_ms.append((taken, (taken - now) * 1000.0))
                    if self.first is None:
                        self.first = now
                    self.at[(cam_id, f.index)] = now
                    yield f
                    self.last = time.monotonic()

            source.frames = stamped
            return source, resumed

        capture.open_camera_source = timed_open

    def delivered(self, rec: dict[str, Any]) -> None:
        """One first delivery, as the committer printed it (``t``: its ``time.monotonic()``)."""
        if rec.get("kind") != "line_crossing":
            return
        with self.lock:
            self.received.append((rec["camera_id"], rec))
            t = self.at.get((rec["camera_id"], rec["frame_index"]))
            if t is not None:
                self.latency_ms.append((rec["t"], (rec["t"] - t) * 1000.0))

    def latency(self, since: float = 0.0, until: float = float("inf")) -> dict[str, float | None]:
        with self.lock:
            ms = [v for t, v in self.latency_ms if since <= t <= until]
        wait = [v for t, v in list(self.wait_ms) if since <= t <= until]
        return {"p50_ms": pct(ms, 0.5), "p95_ms": pct(ms, 0.95), "latency_n": len(ms),
                "wait_p50_ms": pct(wait, 0.5), "wait_p95_ms": pct(wait, 0.95)}


class Committer:
    """bench/mqtt_committer.py in its own process: first deliveries go to ``stamps``, commits to the edge."""

    def __init__(self, port: int, stamps: Stamps) -> None:
        import psutil

        self.proc = subprocess.Popen([sys.executable, str(REPO / "bench/mqtt_committer.py"), str(port), "bench"],
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        ready = self.proc.stdout.readline().strip()
        if ready != "READY":
            raise RuntimeError(f"the committer did not start: {ready!r}")
        self.ps = psutil.Process(self.proc.pid)
        self.summary: dict[str, int] = {}
        self.reader = threading.Thread(target=self._read, args=(stamps,), daemon=True)
        self.reader.start()

    def _read(self, stamps: Stamps) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            rec = json.loads(line)
            if "summary" in rec:
                self.summary = rec["summary"]
            else:
                stamps.delivered(rec)

    def cpu_s(self) -> float:
        return float(sum(self.ps.cpu_times()[:2]))

    def stop(self) -> dict[str, int]:
        self.proc.terminate()
        self.proc.wait(10)
        self.reader.join(5)
        return self.summary


def edge_config(port: int, tmp: Path, model: Any, cams: list[dict[str, Any]]) -> Any:
    from citywatch.config import CitywatchConfig

    return CitywatchConfig.model_validate({
        "site": "bench",
        "mqtt": {"host": "127.0.0.1", "port": port, "topic_prefix": "bench"},
        "model": model.model_dump(mode="json"),
        "edge": {"outbox_path": str(tmp / "outbox.sqlite"), "heartbeat_s": 5, "tamper": {"enabled": True}},
        "cameras": cams,
    })


def make_worker(name: str, cfg: Any, frame_hw: tuple[int, int] | None = None) -> Any:
    """The worker with its models exported, loaded and warmed up before any clock starts."""
    import numpy as np

    from edge.worker import EdgeWorker
    from vision.detector import load_detector

    if name == "default":  # one model per input size the cameras' regions need (imgsz/roi auto)
        worker = EdgeWorker(cfg)
        worker.prepare()
        if frame_hw is not None:  # live cameras get theirs on connecting: load them now
            for camera in cfg.cameras:
                worker._detector_for(camera, frame_hw).detect(np.zeros((*frame_hw, 3), np.uint8))
        return worker
    detector = load_detector(cfg.model)
    detector.detect(np.zeros((*(frame_hw or (SRC_H, SRC_W)), 3), np.uint8))
    return EdgeWorker(cfg, detector=detector)


def camera(i: int, source: str, name: str, *, realtime: bool, loop: bool, scale: tuple[float, float] = (1, 1),
           roi: tuple[float, float, float, float] | None = None) -> dict[str, Any]:
    """Camera ``cam-<i+1>``: clip ``i`` of the London clips' lines (scaled to the stream's size)."""
    clips = london()
    _, _, lines = clips[i % len(clips)]
    sx, sy = scale
    proc = processing(name)
    proc_d = proc.model_dump(mode="json") if proc else {}
    if roi is not None:
        proc_d["roi"] = list(roi)
    return {"id": f"cam-{i + 1}", "source": source, "realtime": realtime, "loop": loop,
            "lines": [{"id": ln.id, "points": [[x * sx, y * sy] for x, y in ln.points]} for ln in lines],
            **({"processing": proc_d} if proc_d else {})}


def window(worker: Any, stamps: Stamps, committer: Committer, duration: float, extra: dict[str, Any]) -> dict[str, Any]:
    """Run ``duration`` s and measure: per-camera deltas of the worker's counters, CPU, latency in the window."""
    import psutil

    meter = Meter()
    before = worker.stats()
    meter.start()
    t1 = time.monotonic()
    server = extra.pop("server_pid", None)
    sproc = psutil.Process(server) if server else None
    s0 = sum(sproc.cpu_times()[:2]) if sproc else 0.0
    c0 = committer.cpu_s()
    time.sleep(duration)
    after = worker.stats()
    t2 = time.monotonic()
    s1 = sum(sproc.cpu_times()[:2]) if sproc else 0.0
    c1 = committer.cpu_s()
    handled_total = sum(after[c]["frames_handled"] - before[c]["frames_handled"] for c in after)
    out = meter.stop(handled_total)
    wall = t2 - t1
    cams = {}
    for cid, a in after.items():
        b = before[cid]
        d = {k: a[k] - b[k] for k in ("frames", "frames_handled", "frames_detected", "frames_skipped",
                                       "frames_dropped")}
        cams[cid] = {"offered": d["frames"], "decoded": d["frames"] + d["frames_dropped"],
                     "handled": d["frames_handled"], "detected": d["frames_detected"],
                     "skipped": d["frames_skipped"], "dropped": d["frames_dropped"],
                     "handled_vs_clock": d["frames_handled"] / (FPS * wall), "state": a["source_state"]}
    n = len(cams)
    out.update(stamps.latency(t1, t2 + 2.0), cameras=cams, streams=n, seconds=wall,
               fps_per_stream=handled_total / wall / n,
               decoded_per_stream=sum(c["decoded"] for c in cams.values()) / wall / n,
               cpu_pct_per_stream=out["cpu_pct"] / n,
               min_handled_vs_clock=min(c["handled_vs_clock"] for c in cams.values()),
               events=len(stamps.received), **extra)
    if sproc:
        out["server_cpu_pct"] = 100.0 * (s1 - s0) / wall
    out["committer_cpu_pct"] = 100.0 * (c1 - c0) / wall
    out["resends"] = sum(after[c]["resends"] - before[c]["resends"] for c in after)
    return out


def child_e2e(name: str, streams: int) -> dict[str, Any]:
    """Files as fast as they go, once; counting error against the ground truth."""
    clips = london()
    stamps = Stamps()
    stamps.install()
    with Broker() as broker:
        cams = [camera(i, str(clips[i % len(clips)][1]), name, realtime=False, loop=False) for i in range(streams)]
        worker = make_worker(name, edge_config(broker.port, broker.tmp, model_config(name), cams))
        sub = Committer(broker.port, stamps)
        meter = Meter()
        meter.start()
        worker.start()
        worker.wait_sources_done(600)
        frames = sum(c.n.frames for c in worker.cameras.values())
        appended = sum(sum(c.n.crossings.values()) for c in worker.cameras.values())
        deadline = time.monotonic() + 10
        while len(stamps.received) < appended and time.monotonic() < deadline:
            time.sleep(0.05)
        out = meter.stop(frames)
        out["cameras"] = {
            cid: {"offered": s["frames"], "detected": s["frames_detected"], "skipped": s["frames_skipped"]}
            for cid, s in worker.stats().items()
        }
        wall = stamps.last - (stamps.first or stamps.last)
        out.update(fps=frames / wall if wall > 0 else 0.0, seconds=wall)
        worker.stop(10)
        sub.stop()
    counted: dict[str, dict] = {}
    seen = set()
    for cam, ev in stamps.received:
        i = int(cam.split("-")[1]) - 1
        if ev["event_id"] in seen or i >= len(clips):  # the repeated clip is scored once: cameras 1..3
            continue
        seen.add(ev["event_id"])
        clip, _, lines = clips[i]
        per = counted.setdefault(clip, {ln.id: {"in": {}, "out": {}} for ln in lines})
        d = per[ev["line_id"]][ev["direction"]]
        d[ev["class_name"]] = d.get(ev["class_name"], 0) + 1
    for clip, _, lines in clips[:streams]:  # fewer cameras than clips: the clips they ran
        counted.setdefault(clip, {ln.id: {"in": {}, "out": {}} for ln in lines})
    true, cnt, line_abs = score(counted)
    out.update(stamps.latency(), true=true, counted=cnt, error=abs(cnt - true) / true, line_abs=line_abs,
               events=len(stamps.received), appended=appended, streams=streams)
    return out


def child_realtime(name: str, streams: int, duration: float, warmup: float) -> dict[str, Any]:
    """Four (``streams``) file cameras paced at 25 fps and looped, as the demo runs them."""
    clips = london()
    stamps = Stamps()
    stamps.install()
    with Broker() as broker:
        cams = [camera(i, str(clips[i % len(clips)][1]), name, realtime=True, loop=True) for i in range(streams)]
        worker = make_worker(name, edge_config(broker.port, broker.tmp, model_config(name), cams))
        sub = Committer(broker.port, stamps)
        worker.start()
        try:
            time.sleep(warmup)
            return window(worker, stamps, sub, duration, {})
        finally:
            worker.stop(10)
            sub.stop()


def encoded(kind: str, clip: Path) -> Path:
    """The clip as this stream kind's H.264 (Annex B), encoded once into the cache."""
    w, h, kbps, _ = STREAMS[kind]
    out = CACHE / f"{clip.stem}_{w}x{h}_{kbps}k.h264"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        part = out.with_suffix(".part")
        subprocess.run([GST_PYTHON, str(SERVE), "encode", str(clip), str(part), str(w), str(h), str(kbps)],
                       check=True, timeout=900)
        part.rename(out)
    return out


def lines_roi(i: int, sx: float, sy: float, w: int, h: int) -> tuple[float, float, float, float]:
    """The lines' bounding box plus 10 % of the frame on every side, in the stream's pixels."""
    clips = london()
    pts = [p for ln in clips[i % len(clips)][2] for p in ln.points]
    x1, x2 = min(x for x, _ in pts) * sx - 0.1 * w, max(x for x, _ in pts) * sx + 0.1 * w
    y1, y2 = min(y for _, y in pts) * sy - 0.1 * h, max(y for _, y in pts) * sy + 0.1 * h
    return max(0.0, x1), max(0.0, y1), min(float(w), x2), min(float(h), y2)


def child_rtsp(kind: str, name: str, streams: int, duration: float, warmup: float) -> dict[str, Any]:
    """``streams`` RTSP cameras of this kind (720p/1080p/sub-stream), served in real time, through the worker."""
    w, h, _, roi = STREAMS[kind]
    clips = london()
    files = [encoded(kind, clips[i % len(clips)][1]) for i in range(streams)]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        rtsp_port = s.getsockname()[1]
    server = subprocess.Popen([GST_PYTHON, str(SERVE), "serve", str(rtsp_port), str(FPS), *map(str, files)],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        ready = server.stdout.readline().decode().strip() if server.stdout else ""
        if ready != "READY":
            raise RuntimeError(f"RTSP server did not start: {ready!r}")
        stamps = Stamps()
        stamps.install()
        sx, sy = w / SRC_W, h / SRC_H
        with Broker() as broker:
            cams = [camera(i, f"rtsp://127.0.0.1:{rtsp_port}/s{i}", name, realtime=False, loop=False, scale=(sx, sy),
                           roi=lines_roi(i, sx, sy, w, h) if roi else None) for i in range(streams)]
            worker = make_worker(name, edge_config(broker.port, broker.tmp, model_config(name), cams), (h, w))
            sub = Committer(broker.port, stamps)
            worker.start()
            try:
                deadline = time.monotonic() + 60
                while any(s["frames"] == 0 for s in worker.stats().values()) and time.monotonic() < deadline:
                    time.sleep(0.2)
                time.sleep(warmup)
                return window(worker, stamps, sub, duration, {"server_pid": server.pid, "resolution": f"{w}x{h}",
                                                         "roi": roi or "auto"})
            finally:
                worker.stop(10)
                sub.stop()
    finally:
        server.kill()
        server.wait(5)
