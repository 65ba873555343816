"""Incidents on their own (``server.storage.incidents`` and ``server.incidents``), on SQLite in a
temporary folder: merging the events of one incident, the operator workflow and its audit trail,
escalation and the notification outbox, retention, and the service's pass."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from server_testkit import make_config
from sqlalchemy.orm import Session

from citywatch.contract import AnyEvent, Incident, utcnow
from server.incidents import IncidentService
from server.storage.incidents import IncidentConflict, IncidentStore
from server.storage.store import Store

T0 = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(minutes=30)


def incident(
    seq: int,
    iid: uuid.UUID,
    state: str,
    *,
    camera_id: str = "cam-1",
    severity: str = "medium",
    tracks: tuple[int, ...] = (7,),
    message: str | None = None,
) -> Incident:
    return Incident(
        event_id=uuid.uuid5(iid, f"{state}{seq}"), camera_id=camera_id, site_id="site-1", seq=seq,
        ts=T0 + timedelta(seconds=seq), config_version="t", model_version="t", incident_id=iid,
        incident_type="stopped_vehicle", state=state, severity=severity, confidence=0.5 + seq / 100,
        track_ids=list(tracks), started_at=T0, ended_at=T0 + timedelta(seconds=60) if state == "closed" else None,
        message=message,
    )  # fmt: skip


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(f"sqlite:///{tmp_path}/incidents.sqlite")
    yield s
    s.close()


@pytest.fixture
def incidents(store: Store) -> IncidentStore:
    return store.incidents


def test_the_events_of_one_incident_merge_into_one_row(store: Store, incidents: IncidentStore) -> None:
    iid = uuid.uuid4()
    store.insert_events([incident(1, iid, "open", tracks=(7,), message="stopped")])
    store.insert_events([incident(2, iid, "update", severity="high", tracks=(7, 9))])
    store.insert_events([incident(3, iid, "closed", severity="low")])
    row = incidents.get(str(iid))
    assert row is not None
    assert row["state"] == "closed" and row["ended_at"] == (T0 + timedelta(seconds=60)).isoformat()
    assert row["severity"] == "high"  # never lowered by a later event
    assert row["track_ids"] == [7, 9] and row["updates"] == 1 and row["message"] == "stopped"
    assert row["confidence"] == pytest.approx(0.53) and row["status"] == "new"


def test_a_redelivered_incident_event_is_applied_once(store: Store, incidents: IncidentStore) -> None:
    iid = uuid.uuid4()
    store.insert_events([incident(1, iid, "open")])
    update = incident(2, iid, "update")
    store.insert_events([update])
    inserted, duplicates = store.insert_events([update])
    assert inserted == [] and duplicates == [str(update.event_id)]
    assert incidents.get(str(iid))["updates"] == 1  # type: ignore[index]


def test_listeners_hear_of_incidents_opened_by_a_commit_and_never_of_a_rolled_back_one(
    store: Store, incidents: IncidentStore
) -> None:
    heard: list[list[dict[str, Any]]] = []
    incidents.listeners.append(heard.append)
    opened, closed_on_arrival = uuid.uuid4(), uuid.uuid4()
    store.insert_events([incident(1, opened, "open"), incident(2, closed_on_arrival, "closed")])
    assert [[r["incident_id"] for r in batch] for batch in heard] == [[str(opened)]]

    def broken(_s: Session, _events: list[AnyEvent]) -> None:
        raise RuntimeError("the batch fails after the incident hook ran")

    store.events.add_hook(broken)
    with pytest.raises(RuntimeError):
        store.insert_events([incident(3, uuid.uuid4(), "open")])
    assert len(heard) == 1


def test_acknowledge_then_resolve_keeps_an_audit_trail_and_refuses_repeats(
    incidents: IncidentStore, store: Store
) -> None:
    iid = uuid.uuid4()
    store.insert_events([incident(1, iid, "open")])
    acked = incidents.acknowledge(str(iid), "an", "operator", "on my way")
    assert acked is not None and acked["status"] == "acknowledged" and acked["acknowledged_by"] == "an"
    with pytest.raises(IncidentConflict, match="already acknowledged by an"):
        incidents.acknowledge(str(iid), "binh", "operator", None)
    resolved = incidents.resolve(str(iid), "binh", "operator", "towed")
    assert resolved is not None and resolved["status"] == "resolved" and resolved["resolution_note"] == "towed"
    with pytest.raises(IncidentConflict, match="already resolved"):
        incidents.resolve(str(iid), "an", "operator", "again")
    detail = incidents.get(str(iid))
    assert detail is not None
    assert [(a["action"], a["actor"], a["note"]) for a in detail["actions"]] == [
        ("ack", "an", "on my way"),
        ("resolve", "binh", "towed"),
    ]
    assert incidents.acknowledge(str(uuid.uuid4()), "an", "operator", None) is None


def test_resolving_without_acknowledging_counts_as_acknowledged(incidents: IncidentStore, store: Store) -> None:
    iid = uuid.uuid4()
    store.insert_events([incident(1, iid, "open")])
    rec = incidents.resolve(str(iid), "an", "operator", "false alarm")
    assert rec is not None and rec["acknowledged_by"] == "an" and rec["acknowledged_at"] is not None


def test_an_unacknowledged_incident_escalates_one_level_per_period_up_to_the_maximum(
    incidents: IncidentStore, store: Store
) -> None:
    iid, acked = uuid.uuid4(), uuid.uuid4()
    store.insert_events([incident(1, iid, "open"), incident(2, acked, "open")])
    incidents.acknowledge(str(acked), "an", "operator", None)
    now = utcnow()
    assert incidents.escalate_due(60, 2, now=now) == []
    assert [(r["incident_id"], lvl) for r, lvl in incidents.escalate_due(60, 2, now=now + timedelta(seconds=61))] == [
        (str(iid), 1)
    ]
    assert incidents.escalate_due(60, 2, now=now + timedelta(seconds=62)) == []  # level 2 is due at 120 s
    assert [lvl for _r, lvl in incidents.escalate_due(60, 2, now=now + timedelta(seconds=121))] == [2]
    assert incidents.escalate_due(60, 2, now=now + timedelta(hours=1)) == []  # the maximum
    actions = incidents.get(str(iid))["actions"]  # type: ignore[index]
    assert [a["action"] for a in actions] == ["escalate", "escalate"]


def test_each_notification_level_is_claimed_once(incidents: IncidentStore, store: Store) -> None:
    iid = uuid.uuid4()
    store.insert_events([incident(1, iid, "open")])
    assert [(r["incident_id"], lvl) for r, lvl in incidents.claim_notifications()] == [(str(iid), 0)]  # "new"
    assert incidents.claim_notifications() == []
    incidents.escalate_due(1, 1, now=utcnow() + timedelta(seconds=5))
    assert [lvl for _r, lvl in incidents.claim_notifications()] == [1]
    assert incidents.claim_notifications() == []


def test_retention_deletes_finished_incidents_with_their_trail_and_keeps_open_ones(
    incidents: IncidentStore, store: Store
) -> None:
    closed, resolved, still_open = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    store.insert_events([incident(1, closed, "closed"), incident(2, resolved, "open"), incident(3, still_open, "open")])
    incidents.resolve(str(resolved), "an", "operator", "done")
    assert incidents.prune(30) == {"incidents": 0, "incident_actions": 0}  # not old enough
    deleted = incidents.prune(30, now=utcnow() + timedelta(days=31))
    assert deleted == {"incidents": 2, "incident_actions": 1}
    assert [r["incident_id"] for r in incidents.list()[0]] == [str(still_open)]


class Hub:
    """Records what the service publishes."""

    def __init__(self) -> None:
        self.items: list[tuple[str, dict[str, Any]]] = []

    def publish(self, kind: str, data: dict[str, Any]) -> None:
        self.items.append((kind, data))


def test_the_service_pushes_openings_live_and_publishes_escalations(store: Store) -> None:
    config = make_config(
        run_id="svc", database_url=store.url, server={"incidents": {"escalate_after_s": 0.001, "max_escalations": 1}}
    )
    hub = Hub()
    service = IncidentService(config, store.incidents, hub)  # type: ignore[arg-type]
    service.start()
    try:
        iid = uuid.uuid4()
        store.insert_events([incident(1, iid, "open")])
        assert [k for k, _ in hub.items][:1] == ["incident_alert"]
        service.tick()
    finally:
        service.stop()
    assert ("incident_escalated", str(iid)) in [(k, d["incident_id"]) for k, d in hub.items]
    assert service.sent == service.failed == 0  # no channel configured: nothing sent, nothing failed
