"""Exports: CSV for spreadsheets and FIWARE Smart Data Models (NGSI-LD key-values) for city platforms.

One module for every export so that flows (``TrafficFlowObserved``) and incidents (``Alert``) share the
id scheme, the ``@context`` handling, where a camera is and the CSV writer. Entities are the key-values
form the official schemas in ``../shared/standards/fiware`` describe. Pure: the API reads the rows and
hands them here, so the builders are tested on plain rows.

Vocabulary: citywatch class names map to the schema's own ``vehicleType`` enumeration (``truck`` is
``lorry``); ``person`` is not a vehicle and never appears in a traffic-flow entity. A line's ``in``
direction is exported as ``laneDirection: forward``, ``out`` as ``backward``.

Times follow one rule in every export (:data:`TIME_RULE`), stated in each file: CSV times are the
city's wall-clock time as ISO 8601 with the UTC offset, and a ``timezone`` column names the zone;
FIWARE entities carry UTC (``...Z``), the DateTime form NGSI-LD and the Smart Data Models use; file
names carry the query's time zone with its offset.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from citywatch.config import CitywatchConfig

#: ``text/csv`` with a UTF-8 byte-order mark so that Excel shows Vietnamese text correctly.
CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
BOM = "\ufeff"

TRANSPORTATION_CONTEXT = (
    "https://raw.githubusercontent.com/smart-data-models/dataModel.Transportation/master/context.jsonld"
)
ALERT_CONTEXT = "https://raw.githubusercontent.com/smart-data-models/dataModel.Alert/master/context.jsonld"

#: citywatch class -> TrafficFlowObserved ``vehicleType`` (the schema's enumeration).
VEHICLE_TYPE: dict[str, str] = {
    "car": "car",
    "truck": "lorry",
    "bus": "bus",
    "motorcycle": "motorcycle",
    "bicycle": "bicycle",
}
LANE_DIRECTION: dict[str, str] = {"in": "forward", "out": "backward"}

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")

#: The one time rule of every export (also in the README and the API docs).
TIME_RULE = (
    "CSV: city time, ISO 8601 with UTC offset, zone named in the timezone column; "
    "FIWARE: UTC (NGSI-LD DateTime); file names: the query's time zone with its offset"
)


def local_iso(t: datetime | str | None, tz: tzinfo) -> str | None:
    """``t`` (a datetime or an ISO string) as the city's wall-clock time, ISO 8601 with offset."""
    if t is None:
        return None
    d = datetime.fromisoformat(t) if isinstance(t, str) else t
    if d.tzinfo is None:
        d = d.replace(tzinfo=timezone.utc)  # the store keeps UTC
    return d.astimezone(tz).isoformat()


def query_tz(start: datetime | None, end: datetime | None, default: tzinfo) -> tzinfo:
    """The time zone a query was written in (the offset of ``from``, else of ``to``), else ``default``."""
    for t in (start, end):
        if t is not None and t.tzinfo is not None:
            return t.tzinfo
    return default


def file_stamp(t: datetime) -> str:
    """``20250303T0700+0700``: a file name's time, in ``t``'s own time zone with its offset."""
    off = t.utcoffset() or timedelta(0)
    sign = "-" if off < timedelta(0) else "+"
    minutes = abs(int(off.total_seconds())) // 60
    return f"{t:%Y%m%dT%H%M}{sign}{minutes // 60:02d}{minutes % 60:02d}"


def attachment(name: str) -> dict[str, str]:
    """The ``Content-Disposition`` header of a download named ``name``."""
    return {"Content-Disposition": f'attachment; filename="{re.sub(r"[^A-Za-z0-9_.+-]", "_", name)}"'}


def csv_text(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """CSV with a BOM, CRLF line ends (RFC 4180) and cells that cannot start a spreadsheet formula."""
    buf = io.StringIO()
    buf.write(BOM)
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(header)
    for r in rows:
        w.writerow([_cell(v) for v in r])
    return buf.getvalue()


def _cell(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, str) and v[:1] in ("=", "+", "-", "@"):
        return "'" + v  # CSV injection: a camera name must never run as a formula in Excel
    return v


def entity_id(kind: str, *parts: object) -> str:
    """``urn:ngsi-ld:<Type>:<part>-<part>...`` with only URN-safe characters."""
    return f"urn:ngsi-ld:{kind}:" + "-".join(_UNSAFE.sub("_", str(p)) for p in parts)


def iso_z(t: datetime) -> str:
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def geo_point(lat: float | None, lon: float | None) -> dict[str, Any] | None:
    if lat is None or lon is None:
        return None
    return {"type": "Point", "coordinates": [float(lon), float(lat)]}


def traffic_flow_observed(
    *,
    site_id: str,
    camera_id: str,
    start: datetime,
    end: datetime,
    intensity: int,
    line_id: str | None = None,
    direction: str | None = None,
    lane_id: str | None = None,
    lane_number: int | None = None,
    class_name: str | None = None,
    occupancy: float | None = None,
    average_speed_kmh: float | None = None,
    location: dict[str, Any] | None = None,
    name: str | None = None,
    congested: bool | None = None,
    context: bool = True,
) -> dict[str, Any]:
    """One ``TrafficFlowObserved`` (key-values) for a line or lane, a period and optionally one class."""
    if class_name is not None and class_name not in VEHICLE_TYPE:
        raise ValueError(f"{class_name!r} is not a vehicle class of TrafficFlowObserved")
    where = line_id if line_id is not None else f"lane.{lane_id}"
    e: dict[str, Any] = {
        "id": entity_id(
            "TrafficFlowObserved",
            site_id,
            camera_id,
            where,
            direction or "all",
            class_name or "all",
            int(start.timestamp()),
            int(end.timestamp() - start.timestamp()),
        ),
        "type": "TrafficFlowObserved",
        "dateObserved": f"{iso_z(start)}/{iso_z(end)}",
        "dateObservedFrom": iso_z(start),
        "dateObservedTo": iso_z(end),
        "intensity": int(intensity),
        "dataProvider": "citywatch",
        "source": f"citywatch:{site_id}/{camera_id}",
    }
    desc = f"camera {camera_id}, " + (f"line {line_id}" if line_id is not None else f"lane {lane_id}")
    if direction:
        desc += f", direction {direction}"
    e["description"] = desc
    if name:
        e["name"] = name
    if lane_number is not None:
        e["laneId"] = int(lane_number)
    if direction in LANE_DIRECTION:
        e["laneDirection"] = LANE_DIRECTION[direction]
    elif lane_id is not None:
        e["laneDirection"] = "forward"  # a lane's configured direction of travel
    if class_name is not None:
        e["vehicleType"] = VEHICLE_TYPE[class_name]
    if occupancy is not None:
        e["occupancy"] = round(min(1.0, max(0.0, float(occupancy))), 4)
    if average_speed_kmh is not None:
        e["averageVehicleSpeed"] = round(max(0.0, float(average_speed_kmh)), 2)
    if congested is not None:
        e["congested"] = bool(congested)
    if location is not None:
        e["location"] = location
    if context:
        e["@context"] = [TRANSPORTATION_CONTEXT]
    return e


@dataclass(frozen=True)
class Place:
    """Where a camera is, as an entity states it: its site, a GeoJSON point (or None) and a name (or None)."""

    site_id: str
    location: dict[str, Any] | None
    name: str | None


def camera_places(settings: CitywatchConfig, known: Iterable[Mapping[str, Any]]) -> Callable[[str], Place]:
    """Each camera's place: its configured block first, then what the database knows (``list_cameras`` rows:
    ``camera_id``, ``site_id``, ``lat``, ``lon``, ``name``), then the configuration's site."""
    configured = {c.id: c for c in settings.cameras}
    rows = {r["camera_id"]: r for r in known}

    def place(camera_id: str) -> Place:
        cfg = configured.get(camera_id)
        row = rows.get(camera_id, {})
        site = (settings.camera_site(cfg) if cfg else None) or row.get("site_id") or settings.site
        if cfg is not None and cfg.location is not None:
            return Place(site, geo_point(cfg.location.lat, cfg.location.lon), cfg.name or None)
        return Place(site, geo_point(row.get("lat"), row.get("lon")), row.get("name"))

    return place


def traffic_flow_entities(
    settings: CitywatchConfig,
    known: Iterable[Mapping[str, Any]],
    flows: Iterable[Mapping[str, Any]],
    lanes: Iterable[Mapping[str, Any]],
    *,
    start: datetime,
    end: datetime,
    bucket_s: int | None,
    per_class: bool = True,
) -> list[dict[str, Any]]:
    """``TrafficFlowObserved`` entities for ``[start, end)``: per bucket, line and direction (all vehicles, and
    one per vehicle class when ``per_class``), and per lane (vehicles entered, occupancy, mean speed).

    ``flows``: the ``/flow`` rows (``bucket_start`` ISO or None for the whole range, ``camera_id``, ``line_id``,
    ``direction``, ``counts`` by class, ``mean_speed_kmh``); ``lanes``: lane rows of the zone history
    (``bucket`` epoch seconds or None, ``camera_id``, ``zone_id``, ``vehicles_entered``, ``occupancy``,
    ``mean_speed_kmh``); ``known``: the database's cameras, for cameras the configuration does not place."""
    place = camera_places(settings, known)
    lane_ids = {c.id: [ln.id for ln in c.lanes] for c in settings.cameras}

    def period(b_iso: str | None) -> tuple[datetime, datetime]:
        if b_iso is None or not bucket_s:
            return start, end
        b = datetime.fromisoformat(b_iso)
        return b, b + timedelta(seconds=bucket_s)

    out: list[dict[str, Any]] = []
    for r in flows:
        at = place(r["camera_id"])
        p0, p1 = period(r["bucket_start"])
        vehicles = {c: n for c, n in r["counts"].items() if c in VEHICLE_TYPE}
        common: dict[str, Any] = {
            "site_id": at.site_id, "camera_id": r["camera_id"], "start": p0, "end": p1, "location": at.location,
            "name": at.name,
        }
        out.append(
            traffic_flow_observed(
                **common,
                line_id=r["line_id"],
                direction=r["direction"],
                intensity=sum(vehicles.values()),
                average_speed_kmh=r["mean_speed_kmh"],
            )
        )
        if per_class:
            for c, n in vehicles.items():
                if n:
                    out.append(
                        traffic_flow_observed(
                            **common, line_id=r["line_id"], direction=r["direction"], intensity=n, class_name=c
                        )
                    )
    for z in lanes:
        ids = lane_ids.get(z["camera_id"], [])
        at = place(z["camera_id"])
        p0 = datetime.fromtimestamp(z["bucket"], timezone.utc) if z["bucket"] is not None else start
        p1 = p0 + timedelta(seconds=bucket_s) if z["bucket"] is not None and bucket_s else end
        out.append(
            traffic_flow_observed(
                site_id=at.site_id,
                camera_id=z["camera_id"],
                start=p0,
                end=p1,
                lane_id=z["zone_id"],
                lane_number=ids.index(z["zone_id"]) + 1 if z["zone_id"] in ids else None,
                intensity=z["vehicles_entered"],
                occupancy=z["occupancy"],
                average_speed_kmh=z["mean_speed_kmh"],
                location=at.location,
                name=at.name,
            )
        )
    return out


# --- incidents: FIWARE Alert ------------------------------------------------------------------

#: citywatch incident type -> Alert ``subCategory`` (the schema's enumeration); category is ``traffic``.
ALERT_SUBCATEGORY: dict[str, str] = {
    "stopped_vehicle": "carStopped",
    "wrong_way": "carWrongDirection",
    "congestion": "trafficJam",
    "pedestrian_on_carriageway": "pedestrianOnRoad",
    "cyclist_on_carriageway": "bikerOnRoad",
    "crash_candidate": "carAccident",
}
INCIDENT_CSV_HEADER = (
    "incident_id", "site_id", "camera_id", "incident_type", "state", "status", "severity", "confidence",
    "lane_id", "zone_id", "started_at", "ended_at", "timezone", "track_ids", "message", "acknowledged_at",
    "acknowledged_by", "resolved_at", "resolved_by", "resolution_note", "escalation_level",
)


def alert(
    incident: dict[str, Any],
    *,
    location: dict[str, Any] | None = None,
    name: str | None = None,
    context: bool = True,
) -> dict[str, Any]:
    """One ``Alert`` (key-values) for an incident record (``server.incidents.record``)."""
    kind = incident["incident_type"]
    if kind not in ALERT_SUBCATEGORY:
        raise ValueError(f"no Alert subCategory for incident type {kind!r}")
    site, cam = incident["site_id"], incident["camera_id"]
    started = datetime.fromisoformat(incident["started_at"])
    e: dict[str, Any] = {
        "id": entity_id("Alert", site, cam, incident["incident_id"]),
        "type": "Alert",
        "category": "traffic",
        "subCategory": ALERT_SUBCATEGORY[kind],
        "severity": incident["severity"],
        "dateIssued": iso_z(started),
        "validFrom": iso_z(started),
        "alertSource": entity_id("Device", "citywatch", site, cam),
        "dataProvider": "citywatch",
        "source": f"citywatch:{site}/{cam}",
        "description": incident.get("message") or f"{kind.replace('_', ' ')} at camera {cam}",
        "data": {
            "incidentId": incident["incident_id"],
            "incidentType": kind,
            "state": incident["state"],
            "status": incident.get("status"),
            "confidence": incident["confidence"],
            "laneId": incident.get("lane_id"),
            "zoneId": incident.get("zone_id"),
            "trackIds": list(incident.get("track_ids") or []),
        },
    }
    if incident.get("ended_at"):
        e["validTo"] = iso_z(datetime.fromisoformat(incident["ended_at"]))
    if name:
        e["name"] = name
    if location is not None:
        e["location"] = location
    if context:
        e["@context"] = [ALERT_CONTEXT]
    return e


INCIDENT_TIMES = ("started_at", "ended_at", "acknowledged_at", "resolved_at")


def incidents_csv(incidents: Iterable[dict[str, Any]], tz: str = "UTC") -> str:
    """Incident records as CSV; times in ``tz`` (the city's zone) with offset, named in ``timezone``."""
    zone = ZoneInfo(tz)

    def cell(i: dict[str, Any], k: str) -> Any:
        if k == "track_ids":
            return " ".join(map(str, i.get("track_ids") or []))
        if k == "timezone":
            return tz
        return local_iso(i.get(k), zone) if k in INCIDENT_TIMES else i.get(k)

    return csv_text(INCIDENT_CSV_HEADER, ([cell(i, k) for k in INCIDENT_CSV_HEADER] for i in incidents))


def incidents_file_name(since: datetime | None, until: datetime | None, tz: str) -> str:
    """``citywatch-incidents-<since or now>.csv``, in the query's time zone (else the city's)."""
    zone = query_tz(since, until, ZoneInfo(tz))
    return f"citywatch-incidents-{file_stamp((since or datetime.now(timezone.utc)).astimezone(zone))}.csv"


__all__ = [
    "ALERT_CONTEXT",
    "ALERT_SUBCATEGORY",
    "INCIDENT_CSV_HEADER",
    "Place",
    "TIME_RULE",
    "alert",
    "attachment",
    "camera_places",
    "file_stamp",
    "incidents_csv",
    "incidents_file_name",
    "local_iso",
    "query_tz",
    "BOM",
    "CSV_MEDIA_TYPE",
    "LANE_DIRECTION",
    "TRANSPORTATION_CONTEXT",
    "VEHICLE_TYPE",
    "csv_text",
    "entity_id",
    "geo_point",
    "iso_z",
    "traffic_flow_entities",
    "traffic_flow_observed",
]
