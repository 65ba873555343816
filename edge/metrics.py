"""Prometheus metrics of an edge worker on a local port (``edge.metrics_port``; off by default).

Bound to ``edge.metrics_host`` (127.0.0.1 by default: scrape through the box's own agent or an SSH
tunnel, never exposed on the camera network). Values are read from ``EdgeWorker.stats()`` at scrape
time by a custom collector, on the worker's own registry (several workers in one process, as in
the tests, do not clash).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Protocol
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from edge.counters import CameraStats

log = logging.getLogger(__name__)

_STATES = ("starting", "ok", "reconnecting", "ended", "error")

#: (metric name, stats key, help, counter?)
_SIMPLE: tuple[tuple[str, str, str, bool], ...] = (
    ("citywatch_edge_frames", "frames", "Frames read from the source", True),
    ("citywatch_edge_frames_processed", "frames_processed", "Frames through the vision pipeline", True),
    ("citywatch_edge_frames_dropped", "frames_dropped", "Live frames dropped because vision was slower", True),
    ("citywatch_edge_events_appended", "events_appended", "Events stored in the outbox", True),
    ("citywatch_edge_events_published", "events_published", "Events handed to the MQTT client", True),
    ("citywatch_edge_resends", "resends", "Events published again for lack of a commit", True),
    ("citywatch_edge_replayed", "replayed", "Events published again on a replay request", True),
    ("citywatch_edge_source_reconnects", "source_reconnects", "Live source reconnections", True),
    ("citywatch_edge_source_stalls", "source_stalls", "Live source stalls detected", True),
    ("citywatch_edge_outbox_status_dropped", "outbox_status_dropped", "Heartbeats dropped by a full outbox", True),
    ("citywatch_edge_outbox_crossings_merged", "outbox_crossings_merged", "Crossings merged into totals", True),
    ("citywatch_edge_outbox_depth", "outbox_depth", "Events kept, not yet committed by the server", False),
    ("citywatch_edge_committed_seq", "committed_seq", "Server's committed watermark", False),
    ("citywatch_edge_fps_in", "fps_in", "Frames per second read (last heartbeat)", False),
    ("citywatch_edge_fps_processed", "fps_processed", "Frames per second processed (last heartbeat)", False),
    ("citywatch_edge_inference_ms", "inference_ms", "Mean inference time per frame (last heartbeat)", False),
)


class StatsSource(Protocol):
    """What the collector reads of an ``EdgeWorker``."""

    @property
    def uptime_s(self) -> float: ...

    def stats(self) -> dict[str, CameraStats]: ...


def _by_key(s: CameraStats) -> Mapping[str, object]:
    return s


class WorkerCollector(Collector):
    def __init__(self, worker: StatsSource) -> None:
        self.worker = worker

    def collect(self) -> Iterator[Metric]:
        stats = self.worker.stats()
        for name, key, doc, counter in _SIMPLE:
            fam = (CounterMetricFamily if counter else GaugeMetricFamily)(name, doc, labels=["camera"])
            for cam, s in stats.items():
                v = _by_key(s).get(key)
                if isinstance(v, int | float):
                    fam.add_metric([cam], float(v))
            yield fam
        state = GaugeMetricFamily(
            "citywatch_edge_source_state", "1 for the source's current state", labels=["camera", "state"]
        )
        mqtt = GaugeMetricFamily("citywatch_edge_mqtt_connected", "1 while connected to the broker", labels=["camera"])
        tamper = GaugeMetricFamily(
            "citywatch_edge_tamper", "1 while a tamper sign is raised", labels=["camera", "sign"]
        )
        crossings = CounterMetricFamily(
            "citywatch_edge_crossings", "Crossings counted", labels=["camera", "line", "direction", "class"]
        )
        info = GaugeMetricFamily(
            "citywatch_edge_config_info", "Configuration the camera runs", labels=["camera", "version"]
        )
        for cam, s in stats.items():
            for st in _STATES:
                state.add_metric([cam, st], 1.0 if s.get("source_state") == st else 0.0)
            mqtt.add_metric([cam], 1.0 if s.get("mqtt_connected") else 0.0)
            for sign in ("view_moved", "covered", "out_of_focus", "too_dark"):
                tamper.add_metric([cam, sign], 1.0 if sign in s.get("tamper", []) else 0.0)
            for key, n in s.get("crossings", {}).items():
                line, direction, cls = key.split("/", 2)
                crossings.add_metric([cam, line, direction, cls], float(n))
            info.add_metric([cam, str(s.get("config_version"))], 1.0)
        yield from (state, mqtt, tamper, crossings, info)
        yield GaugeMetricFamily(
            "citywatch_edge_uptime_seconds", "Seconds since the worker started", value=self.worker.uptime_s
        )


class MetricsServer:
    """``start()`` serves ``/metrics`` for one worker; ``stop()`` closes the port."""

    def __init__(self, worker: StatsSource, host: str, port: int) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(WorkerCollector(worker))
        self.host, self.port = host, port
        self._httpd: WSGIServer | None = None

    def start(self) -> int:
        self._httpd, _thread = start_http_server(self.port, addr=self.host, registry=self.registry)
        self.port = self._httpd.server_address[1]
        log.info("edge metrics on http://%s:%d/metrics", self.host, self.port)
        return self.port

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
