"""Prometheus metrics read from the live ingest counters at scrape time, in a per-app registry
(several apps in one process, e.g. tests, must not collide in the global registry)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from server.api.health import db_probe
from server.ingest import INGEST_STATES


class CitywatchCollector(Collector):
    def __init__(self, app: Any) -> None:
        self._app = app

    def collect(self) -> Iterator[Metric]:
        state = self._app.state
        ingest = getattr(state, "ingest", None)
        c = ingest.counters if ingest is not None else None
        for name, doc in (
            ("received", "MQTT messages received"),
            ("stored", "Events stored (new event_ids)"),
            ("duplicates", "Events received again and not stored"),
            ("dead_letters", "Messages kept as dead letters"),
            ("batches", "Batches committed"),
            ("db_errors", "Failed batch commits (retried)"),
            ("retries", "Batches retried after a transient database error (connection, lock, serialization)"),
            ("db_rejected", "Messages the database refused for good, kept as dead letters"),
            ("splits", "Batch splits made to find messages the database refuses"),
            ("camera_errors", "Camera status/watermark updates that failed (other cameras went on)"),
            ("events_received", "Events received (a batch envelope counts each event); rate() = ingest rate"),
            ("gaps_detected", "Gaps in a camera's seq noticed"),
            ("replay_requests", "Replay requests sent to edges to repair gaps"),
        ):
            m = CounterMetricFamily(f"citywatch_ingest_{name}", doc)
            m.add_metric([], float(getattr(c, name, 0) if c else 0))
            yield m
        g = GaugeMetricFamily("citywatch_ingest_last_batch_ms", "Duration of the last ingest batch in ms")
        g.add_metric([], float(c.last_batch_ms if c else 0.0))
        yield g
        g = GaugeMetricFamily("citywatch_ingest_event_lag_seconds", "Newest batch: max commit time - event time")
        g.add_metric([], float(c.event_lag_s if c else 0.0))
        yield g
        g = GaugeMetricFamily("citywatch_ingest_commit_lag_seconds", "Newest batch: max commit time - receive time")
        g.add_metric([], float(c.commit_lag_s if c else 0.0))
        yield g
        g = GaugeMetricFamily(
            "citywatch_ingest_missing_events", "Seqs missing above the watermark", labels=["camera_id"]
        )
        for cam, n in sorted((c.missing if c else {}).items()):
            g.add_metric([cam], float(n))
        yield g
        g = GaugeMetricFamily("citywatch_mqtt_connected", "1 when the ingest is connected to the broker")
        g.add_metric([], 1.0 if ingest is not None and ingest.connected else 0.0)
        yield g
        g = GaugeMetricFamily("citywatch_ingest_queue_depth", "Messages received, not yet processed")
        g.add_metric([], float(ingest.queue_depth() if ingest is not None else 0))
        yield g
        g = GaugeMetricFamily(
            "citywatch_ingest_oldest_unacked_seconds", "Age of the oldest received, not yet acknowledged message"
        )
        g.add_metric([], ingest.oldest_unacked_s() if ingest is not None else 0.0)
        yield g
        g = GaugeMetricFamily("citywatch_ingest_retrying", "Transient failures of the current batch in a row (0: none)")
        g.add_metric([], float(c.retrying if c else 0))
        yield g
        g = GaugeMetricFamily("citywatch_ingest_dead_letters_last_minute", "Dead letters stored in the last 60 s")
        g.add_metric([], float(ingest.dead_letters_per_min() if ingest is not None else 0))
        yield g
        g = GaugeMetricFamily(
            "citywatch_ingest_state", "1 for the ingest's health state (Ingest.health), else 0", labels=["state"]
        )
        current = ingest.health()[0] if ingest is not None else None
        for st in INGEST_STATES:
            g.add_metric([st], 1.0 if st == current else 0.0)
        yield g
        probe = db_probe(self._app)
        db_state = probe.check()[0] if probe is not None else "down"
        g = GaugeMetricFamily("citywatch_db_up", "1 when the database answered a read of events in time")
        g.add_metric([], 1.0 if db_state == "ok" else 0.0)
        yield g
        g = GaugeMetricFamily(
            "citywatch_committed_seq", "Contiguous committed watermark per camera", labels=["camera_id"]
        )
        for cam, seq in sorted((c.committed if c else {}).items()):
            g.add_metric([cam], float(seq))
        yield g
        hub = getattr(state, "hub", None)
        g = GaugeMetricFamily("citywatch_live_subscribers", "Connected live (SSE) clients")
        g.add_metric([], float(hub.subscriber_count if hub is not None else 0))
        yield g


def make_registry(app: Any) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(CitywatchCollector(app))
    app.state.request_seconds = Histogram(
        "citywatch_http_request_seconds",
        "API request latency (query latency) by route template",
        ["route", "method", "status"],
        registry=registry,
        buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    )
    return registry


def route_template(request: Any, prefix: str = "") -> str:
    """The route's path template (``/api/v1/cameras/{camera_id}``): bounded label cardinality."""
    path = getattr(request.scope.get("route"), "path", None)
    if not path:
        return "unmatched"
    return path if path.startswith(prefix) else prefix + path
