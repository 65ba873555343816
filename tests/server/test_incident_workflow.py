"""Incidents on the server: stored from their events (once), listed and filtered, acknowledged and resolved
with an audit trail, pushed live, notified by signed webhook and e-mail, escalated when nobody acknowledges,
and exported as FIWARE Alerts that the official schema accepts."""

from __future__ import annotations

import json
import socketserver
import subprocess
import sys
import threading
import uuid
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from server_testkit import make_config, wait_for
from support import require

from citywatch.contract import Incident
from server.app import create_app
from server.notify import verify_signature
from server.runner import serve_in_thread
from server.storage.store import Store

FIWARE = Path(__file__).resolve().parents[3] / "shared/standards/fiware"
KEYS = "operator:op-key-123,planner:pl-key-123,admin:ad-key-123"
OP, PL = {"X-API-Key": "op-key-123"}, {"X-API-Key": "pl-key-123"}
#: Recent (older events are beyond the raw-event retention and not stored again), on the half hour.
T0 = datetime.now(timezone.utc).replace(minute=30, second=0, microsecond=0) - timedelta(hours=6)


def incident(seq: int, iid: uuid.UUID, state: str, *, kind: str = "stopped_vehicle", camera_id: str = "cam-1",
             tracks: list[int] | None = None, start: datetime = T0, severity: str = "high", update_no: int = 0,
             ) -> Incident:
    return Incident(
        event_id=uuid.uuid5(iid, f"{state}{update_no}"), camera_id=camera_id, site_id="site-1", seq=seq,
        ts=start + timedelta(seconds=seq), config_version="t", model_version="t", incident_id=iid,
        incident_type=kind, state=state, severity=severity, confidence=0.9, lane_id="nb-1",  # type: ignore[arg-type]
        track_ids=tracks or [7], started_at=start,
        ended_at=start + timedelta(seconds=40) if state == "closed" else None, message=f"{kind} {state}",
        snapshot_id="cam-1-abc" if state == "open" else None,
    )


class Webhook:
    """A receiver on a free port: keeps (headers, body) of every POST."""

    def __init__(self) -> None:
        got: list[tuple[dict[str, str], bytes]] = []

        class H(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                got.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *a: Any) -> None:
                pass

        self.got = got
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(b) for _, b in self.got]


class Smtp:
    """A minimal SMTP server (enough for smtplib): keeps (recipients, message text) of every mail."""

    def __init__(self) -> None:
        mails: list[tuple[list[str], str]] = []

        class H(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                rcpt: list[str] = []
                self.wfile.write(b"220 test ESMTP\r\n")
                while line := self.rfile.readline():
                    cmd = line.decode().strip()
                    verb = cmd.split(" ", 1)[0].upper()
                    if verb in ("EHLO", "HELO"):
                        self.wfile.write(b"250 test\r\n")
                    elif verb == "RCPT":
                        rcpt.append(cmd.split(":", 1)[1].strip(" <>"))
                        self.wfile.write(b"250 OK\r\n")
                    elif verb == "DATA":
                        self.wfile.write(b"354 go\r\n")
                        data = []
                        while (d := self.rfile.readline()) not in (b".\r\n", b""):
                            data.append(d.decode())
                        mails.append((rcpt, "".join(data)))
                        rcpt = []
                        self.wfile.write(b"250 queued\r\n")
                    elif verb == "QUIT":
                        self.wfile.write(b"221 bye\r\n")
                        return
                    else:
                        self.wfile.write(b"250 OK\r\n")

        self.mails = mails
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receivers() -> Any:
    hook, smtp = Webhook(), Smtp()
    yield hook, smtp
    hook.server.shutdown()
    smtp.server.shutdown()


def test_incident_events_become_one_incident_that_operators_acknowledge_and_resolve(store: Any, run_id: str) -> None:
    config = make_config(run_id=run_id, database_url="sqlite://")
    iid, other = uuid.uuid4(), uuid.uuid4()
    events = [incident(1, iid, "open"), incident(2, iid, "update", tracks=[7, 9], update_no=1),
              incident(3, other, "open", kind="congestion", camera_id="cam-2", start=T0 + timedelta(hours=2))]
    with serve_in_thread(config, ingest=False, store=store, api_keys=KEYS) as handle, \
            httpx.Client(base_url=handle.url + "/api/v1", timeout=10) as http:
        store.insert_events(events)
        store.insert_events(events[:2])  # redelivered: duplicates change nothing
        store.insert_events([incident(4, iid, "closed", update_no=2)])
        got = http.get("/incidents", headers=PL).json()
        assert got["total"] == 2
        one = http.get(f"/incidents/{iid}", headers=PL).json()
        assert (one["state"], one["status"], one["updates"], one["track_ids"]) == ("closed", "new", 1, [7, 9])
        assert one["ended_at"] == (T0 + timedelta(seconds=40)).isoformat() and one["snapshot_id"] == "cam-1-abc"
        def ids(**q: Any) -> list[str]:
            return [i["incident_id"] for i in http.get("/incidents", params=q, headers=PL).json()["items"]]
        assert ids(type="congestion") == [str(other)] and ids(camera_id="cam-1") == [str(iid)]
        assert ids(state="open") == [str(other)] and ids(until=(T0 + timedelta(minutes=30)).isoformat()) == [str(iid)]
        assert ids(since=(T0 + timedelta(minutes=90)).isoformat()) == [str(other)]
        assert http.get("/incidents", params={"since": "2025-06-02T09:00:00"}, headers=PL).status_code == 422
        # planners read but may not act; operators acknowledge, then resolve with a note
        assert http.post(f"/incidents/{iid}/ack", json={}, headers=PL).status_code == 403
        assert http.post(f"/incidents/{iid}/ack", json={}).status_code == 401
        r = http.post(f"/incidents/{iid}/ack", json={"by": "Nguyễn Lan", "note": "đã thấy"}, headers=OP)
        assert r.status_code == 200 and r.json()["status"] == "acknowledged"
        assert r.json()["acknowledged_by"] == "Nguyễn Lan"
        assert http.post(f"/incidents/{iid}/ack", json={}, headers=OP).status_code == 409
        assert http.post(f"/incidents/{iid}/resolve", json={}, headers=OP).status_code == 422
        r = http.post(f"/incidents/{iid}/resolve", json={"note": "tow truck cleared it"}, headers=OP)
        assert r.status_code == 200 and r.json()["status"] == "resolved"
        assert r.json()["resolved_by"] == "API key 1 of CITYWATCH_API_KEYS"  # a machine names nobody: its key
        assert http.post(f"/incidents/{iid}/resolve", json={"note": "again"}, headers=OP).status_code == 409
        assert http.post(f"/incidents/{uuid.uuid4()}/ack", json={}, headers=OP).status_code == 404
        trail = http.get(f"/incidents/{iid}", headers=PL).json()["actions"]
        assert [(a["action"], a["actor"], a["role"], a["note"]) for a in trail] == [
            ("ack", "Nguyễn Lan", "operator", "đã thấy"),
            ("resolve", "API key 1 of CITYWATCH_API_KEYS", "operator", "tow truck cleared it")]
        assert all(datetime.fromisoformat(a["at"]).tzinfo for a in trail)
        assert ids(status="resolved") == [str(iid)]


def test_the_audit_trail_names_the_person_or_the_api_key_never_just_a_role(sqlite_url: str, run_id: str) -> None:
    store = Store(sqlite_url)
    ids = [uuid.uuid4() for _ in range(3)]
    store.insert_events([incident(n + 1, iid, "open") for n, iid in enumerate(ids)])
    config = make_config(run_id=run_id, database_url=sqlite_url, server={"database_url": sqlite_url})
    same = {"Origin": "http://testserver"}
    with TestClient(create_app(config, ingest=False, store=store, api_keys=KEYS)) as c:
        # the dashboard (a session cookie) must say who acts: the role alone is refused, with a reason
        assert c.post("/api/v1/session", json={"key": "op-key-123"}).status_code == 200
        for body in ({}, {"by": "   "}, {"note": "seen"}):
            r = c.post(f"/api/v1/incidents/{ids[0]}/ack", json=body, headers=same)
            assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "by"], r.text
        r = c.post(f"/api/v1/incidents/{ids[0]}/resolve", json={"note": "cleared"}, headers=same)
        assert r.status_code == 422 and "who acts" in r.json()["detail"][0]["msg"]
        r = c.post(f"/api/v1/incidents/{ids[0]}/ack", json={"by": " Trần Thị B "}, headers=same)
        assert r.status_code == 200 and r.json()["acknowledged_by"] == "Trần Thị B"
        c.cookies.clear()
        # machine clients with a key that names nobody: recorded under the key
        r = c.post(f"/api/v1/incidents/{ids[1]}/ack", headers=OP)
        assert r.status_code == 200 and r.json()["acknowledged_by"] == "API key 1 of CITYWATCH_API_KEYS"
        admin = {"X-API-Key": "ad-key-123"}
        made = c.post("/api/v1/keys", json={"role": "operator", "name": "tow dispatch"}, headers=admin)
        bot = {"Authorization": f"Bearer {made.json()['key']}"}
        r = c.post(f"/api/v1/incidents/{ids[1]}/resolve", json={"note": "towed"}, headers=bot)
        assert r.status_code == 200 and r.json()["resolved_by"] == "API key 'tow dispatch'"
        r = c.post(f"/api/v1/incidents/{ids[2]}/ack", json={"by": "Lê Văn C"}, headers=bot)
        assert r.json()["acknowledged_by"] == "Lê Văn C"  # a name given wins over the key's
        trail = c.get(f"/api/v1/incidents/{ids[1]}", headers=OP).json()["actions"]
        assert [a["actor"] for a in trail] == ["API key 1 of CITYWATCH_API_KEYS", "API key 'tow dispatch'"]
    store.close()


def test_open_local_mode_must_name_who_acknowledges(sqlite_url: str, run_id: str) -> None:
    store = Store(sqlite_url)
    iid = uuid.uuid4()
    store.insert_events([incident(1, iid, "open")])
    config = make_config(run_id=run_id, database_url=sqlite_url, server={"database_url": sqlite_url})
    with TestClient(create_app(config, ingest=False, store=store, api_keys="")) as c:
        r = c.post(f"/api/v1/incidents/{iid}/ack", json={})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "by"]
        assert c.post(f"/api/v1/incidents/{iid}/ack", json={"by": "Phạm D"}).json()["acknowledged_by"] == "Phạm D"
    store.close()


def test_a_new_incident_is_pushed_live_notified_signed_and_escalated_until_acknowledged(
    sqlite_url: str, run_id: str, receivers: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    hook, smtp = receivers
    monkeypatch.setenv("CW_TEST_HOOK_SECRET", "s3cret-for-hmac")
    config = make_config(run_id=run_id, database_url=sqlite_url, server={
        "database_url": sqlite_url, "client_id": f"cw-{run_id}",
        "incidents": {
            "webhooks": [{"url": hook.url, "secret_env": "CW_TEST_HOOK_SECRET"}],
            "email": {
                "host": "127.0.0.1", "port": smtp.port, "to": ["ioc@example.vn"], "escalate_to": ["boss@example.vn"],
            },
            "escalate_after_s": 1.0, "max_escalations": 2, "check_interval_s": 0.1, "retries": 0,
            "min_severity": "medium",
        },
    })
    iid = uuid.uuid4()
    with serve_in_thread(config, ingest=False, api_keys=KEYS) as handle, \
            httpx.Client(base_url=handle.url + "/api/v1", timeout=10) as http:
        store = handle.app.state.store
        lines: list[str] = []

        def listen() -> None:
            with httpx.stream("GET", handle.url + "/api/v1/events/live", headers=OP, timeout=20) as r:
                for line in r.iter_lines():
                    lines.append(line)
                    if line.startswith("event: incident_alert"):
                        return

        t = threading.Thread(target=listen, daemon=True)
        t.start()
        wait_for(lambda: handle.app.state.hub.subscriber_count == 1)
        store.insert_events([incident(1, iid, "open"), incident(2, uuid.uuid4(), "open", severity="low")])
        t.join(10)
        assert "event: incident_alert" in lines
        wait_for(lambda: len(hook.got) >= 1 and len(smtp.mails) >= 1)
        headers, body = hook.got[0]
        ts, sig = headers["x-citywatch-timestamp"], headers["x-citywatch-signature"]
        assert verify_signature("s3cret-for-hmac", ts, body, sig) and not verify_signature("wrong", ts, body, sig)
        first = hook.events()[0]
        assert (first["event"], first["level"], first["incident"]["incident_id"]) == ("incident.opened", 0, str(iid))
        assert smtp.mails[0][0] == ["ioc@example.vn"] and "stopped vehicle at camera cam-1" in smtp.mails[0][1]
        # nobody acknowledges: escalated after 1 s, to the escalation list too
        wait_for(lambda: any(e["event"] == "incident.escalated" for e in hook.events()), timeout=10)
        wait_for(lambda: any("boss@example.vn" in m[0] for m in smtp.mails))
        assert http.post(f"/incidents/{iid}/ack", json={"by": "Minh"}, headers=OP).status_code == 200
        level = http.get(f"/incidents/{iid}", headers=OP).json()["escalation_level"]
        assert level in (1, 2)
        import time

        time.sleep(2.5)  # two more escalation periods: none comes after the acknowledgement
        assert http.get(f"/incidents/{iid}", headers=OP).json()["escalation_level"] == level
        assert {e["incident"]["incident_id"] for e in hook.events()} == {str(iid)}  # low severity: not notified
        acts = [a["action"] for a in http.get(f"/incidents/{iid}", headers=OP).json()["actions"]]
        assert acts.count("escalate") == level and "notify" in acts and "ack" in acts


def test_incidents_export_as_fiware_alerts_valid_against_the_official_schema_and_as_csv(
    sqlite_url: str, run_id: str, tmp_path: Path
) -> None:
    validator = FIWARE / "validate.py"
    require(validator.is_file(), f"FIWARE schemas not found at {FIWARE}")
    config = make_config(run_id=run_id, database_url=sqlite_url)
    kinds = ["stopped_vehicle", "wrong_way", "congestion", "pedestrian_on_carriageway", "cyclist_on_carriageway",
             "crash_candidate"]
    with serve_in_thread(config, ingest=False, api_keys=KEYS) as handle, \
            httpx.Client(base_url=handle.url + "/api/v1", timeout=10) as http:
        for n, kind in enumerate(kinds):
            iid = uuid.uuid4()
            handle.app.state.store.insert_events([incident(2 * n + 1, iid, "open", kind=kind)]
                                                 + ([incident(2 * n + 2, iid, "closed", kind=kind)] if n % 2 else []))
        alerts = http.get("/export/incidents", params={"format": "fiware"}, headers=PL).json()
        csv_r = http.get("/export/incidents", params={"format": "csv", "type": "wrong_way"}, headers=PL)
    assert sorted(a["subCategory"] for a in alerts) == sorted(
        ["carStopped", "carWrongDirection", "trafficJam", "pedestrianOnRoad", "bikerOnRoad", "carAccident"])
    assert all(a["category"] == "traffic" and a["location"]["coordinates"] == [106.7, 10.77] for a in alerts)
    assert sum("validTo" in a for a in alerts) == 3
    out = tmp_path / "alerts.json"
    out.write_text(json.dumps(alerts))
    res = subprocess.run([sys.executable, str(validator), str(out)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    assert csv_r.status_code == 200 and csv_r.headers["content-type"].startswith("text/csv")
    rows = csv_r.text.lstrip("\ufeff").strip().splitlines()
    assert rows[0].startswith("incident_id,site_id,camera_id,incident_type")
    assert len(rows) == 2 and ",wrong_way," in rows[1]
