"""Incidents on the server: acknowledged and resolved by operators (with an audit trail), pushed live
the moment they open, notified (webhook, e-mail) and escalated when nobody acknowledges them in time.
Their tables and the insert hook that fills them from ``incident`` events are in
:mod:`server.storage.incidents`.

Notifications: the service thread claims a level from the ``incidents`` row (the outbox), sends it
through ``server.notify`` and records each channel's result in the audit trail. An incident still
``open`` and ``new`` (not acknowledged) ``escalate_after_s`` after it was received is escalated, at
most ``max_escalations`` times.
"""

from __future__ import annotations

import logging
import threading

from citywatch.config import CitywatchConfig
from server.live import LiveHub
from server.storage.incidents import IncidentRecord, IncidentStore

log = logging.getLogger(__name__)


class IncidentService:
    """Per app: live alerts on open, the notification/escalation thread. ``start``/``stop`` from the lifespan."""

    def __init__(self, config: CitywatchConfig, incidents: IncidentStore, hub: LiveHub | None = None) -> None:
        from server.notify import Notifier

        self.config = config
        self.cfg = config.server.incidents
        self.db = incidents
        self.hub = hub
        self.notifier = Notifier(self.cfg)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.sent = 0
        self.failed = 0

    def start(self) -> None:
        self.db.listeners.append(self._on_opened)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="citywatch-incidents", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        if self._on_opened in self.db.listeners:
            self.db.listeners.remove(self._on_opened)
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._thread = None

    def _on_opened(self, records: list[IncidentRecord]) -> None:
        """Right after the commit that stored them: push to the dashboard, wake the notifier."""
        if self.hub is not None:
            for rec in records:
                self.hub.publish("incident_alert", rec)
        self._wake.set()

    def publish_status(self, rec: IncidentRecord) -> None:
        if self.hub is not None:
            self.hub.publish("incident_status", rec)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:
                log.exception("incident notifications: pass failed")
            self._wake.wait(self.cfg.check_interval_s)
            self._wake.clear()

    def tick(self) -> None:
        """One pass: escalate what is due, then send every notification not sent yet."""
        if self.cfg.escalate_after_s is not None and self.cfg.max_escalations > 0:
            for rec, level in self.db.escalate_due(self.cfg.escalate_after_s, self.cfg.max_escalations):
                log.warning(
                    "incident %s (%s, camera %s) escalated to level %d",
                    rec["incident_id"],
                    rec["incident_type"],
                    rec["camera_id"],
                    level,
                )
                if self.hub is not None:
                    self.hub.publish("incident_escalated", {**rec, "escalation_level": level})
        for rec, level in self.db.claim_notifications():
            if not self.notifier.wants(rec):
                continue
            for channel, ok, detail in self.notifier.send(rec, level):
                if ok:
                    self.sent += 1
                else:
                    self.failed += 1
                self.db.add_action(
                    rec["incident_id"], "notify" if ok else "notify_failed", f"level {level} {channel}: {detail}"[:2000]
                )
