"""server.export on plain rows: CSV a spreadsheet opens safely, URN-safe ids, where a camera is, and
TrafficFlowObserved and Alert entities that validate against the official FIWARE schemas (offline
validator in ../shared/standards/fiware). The API paths are in test_server_planner_api.py and
test_incident_workflow.py."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from support import require

from citywatch.config import parse_config
from server import export

FIWARE = Path(__file__).resolve().parents[3] / "shared/standards/fiware"
T0 = datetime(2025, 3, 3, 8, 0, tzinfo=timezone(timedelta(hours=7)))
SETTINGS = parse_config({
    "site": "hanoi",
    "cameras": [{
        "id": "cam-1", "name": "Cầu Giấy", "source": "x.mp4", "location": {"lat": 21.03, "lon": 105.8},
        "lines": [{"id": "l1", "points": [[0, 0], [100, 0]]}],
        "lanes": [{"id": "lane-a", "polygon": [[0, 0], [10, 0], [10, 10]]},
                  {"id": "lane-b", "polygon": [[20, 0], [30, 0], [30, 10]]}],
    }],
})
#: What the database knows about a camera the configuration does not name.
KNOWN = [{"camera_id": "cam-9", "site_id": "site-9", "lat": 10.77, "lon": 106.7, "name": "Quận 1"}]


def validate(tmp_path: Path, entities: list[dict[str, Any]]) -> None:
    require((FIWARE / "validate.py").exists(), "../shared/standards/fiware is not beside the checkout")
    f = tmp_path / "entities.json"
    f.write_text(json.dumps(entities))
    out = subprocess.run([sys.executable, str(FIWARE / "validate.py"), str(f)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def flow_row(cam: str, bucket_start: str | None, **counts: int) -> dict[str, Any]:
    return {"bucket_start": bucket_start, "camera_id": cam, "line_id": "l1", "direction": "in",
            "counts": counts, "mean_speed_kmh": 31.5}


def test_csv_has_a_bom_crlf_rows_and_cells_that_cannot_run_as_formulas() -> None:
    text = export.csv_text(("name", "n", "note"), [["=HYPERLINK(\"x\")", 3, None], ["Cầu Giấy", -1, "@x"]])
    assert text.startswith(export.BOM)
    lines = text[1:].split("\r\n")
    assert lines[0] == "name,n,note"
    assert lines[1] == "\"'=HYPERLINK(\"\"x\"\")\",3,"  # quoted text, a leading apostrophe, None empty
    assert lines[2] == "Cầu Giấy,-1,'@x"  # numbers stay numbers; only text is neutralised


def test_entity_ids_are_urns_with_only_safe_characters() -> None:
    assert export.entity_id("Alert", "site 1", "cam/2", "a:b") == "urn:ngsi-ld:Alert:site_1-cam_2-a_b"
    assert export.iso_z(T0) == "2025-03-03T01:00:00Z"
    assert export.geo_point(None, 105.8) is None
    assert export.geo_point(21.03, 105.8) == {"type": "Point", "coordinates": [105.8, 21.03]}


def test_a_camera_is_placed_by_its_configuration_first_then_by_the_database_then_the_site() -> None:
    place = export.camera_places(SETTINGS, [*KNOWN, {"camera_id": "cam-1", "site_id": "db-site", "lat": 1.0,
                                                     "lon": 2.0, "name": "old"}])
    assert place("cam-1") == export.Place("hanoi", export.geo_point(21.03, 105.8), "Cầu Giấy")
    assert place("cam-9") == export.Place("site-9", export.geo_point(10.77, 106.7), "Quận 1")
    assert place("cam-unknown") == export.Place("hanoi", None, None)


def test_traffic_flow_entities_per_line_per_class_and_per_lane_validate_against_the_schema(tmp_path: Path) -> None:
    b = T0.isoformat()
    flows = [flow_row("cam-1", b, car=10, truck=2, person=4), flow_row("cam-9", b, motorcycle=5)]
    lanes = [{"bucket": int(T0.timestamp()), "camera_id": "cam-1", "zone_id": "lane-b", "vehicles_entered": 7,
              "occupancy": 0.25, "mean_speed_kmh": None}]
    ents = export.traffic_flow_entities(SETTINGS, KNOWN, flows, lanes, start=T0, end=T0 + timedelta(hours=1),
                                        bucket_s=900)
    line_all = [e for e in ents if "vehicleType" not in e and "laneId" not in e]
    assert [e["intensity"] for e in line_all] == [12, 5]  # people are not traffic
    assert {e["vehicleType"] for e in ents if "vehicleType" in e} == {"car", "lorry", "motorcycle"}
    assert line_all[0]["dateObserved"] == "2025-03-03T01:00:00Z/2025-03-03T01:15:00Z"
    assert line_all[0]["laneDirection"] == "forward" and line_all[0]["name"] == "Cầu Giấy"
    assert line_all[1]["location"] == export.geo_point(10.77, 106.7) and ":site-9-cam-9-" in line_all[1]["id"]
    (lane,) = [e for e in ents if "laneId" in e]
    assert lane["laneId"] == 2 and lane["occupancy"] == 0.25 and lane["intensity"] == 7
    assert "averageVehicleSpeed" not in lane
    assert len({e["id"] for e in ents}) == len(ents)
    validate(tmp_path, ents)


def test_a_whole_range_row_covers_the_range_and_per_class_entities_can_be_left_out() -> None:
    start, end = T0, T0 + timedelta(days=1)
    ents = export.traffic_flow_entities(SETTINGS, [], [flow_row("cam-1", None, car=3, bus=0)], [], start=start,
                                        end=end, bucket_s=None, per_class=False)
    (e,) = ents
    assert e["dateObservedFrom"] == export.iso_z(start) and e["dateObservedTo"] == export.iso_z(end)
    assert e["intensity"] == 3 and e["@context"] == [export.TRANSPORTATION_CONTEXT]


def test_a_person_is_never_a_vehicle_type() -> None:
    with pytest.raises(ValueError, match="not a vehicle class"):
        export.traffic_flow_observed(site_id="s", camera_id="c", start=T0, end=T0, intensity=1, class_name="person")


INCIDENT = {
    "incident_id": "0b6d2a1e-8f0c-4a8e-9a53-2f1f3c1d7e11", "site_id": "hanoi", "camera_id": "cam-1",
    "incident_type": "wrong_way", "state": "closed", "status": "resolved", "severity": "high", "confidence": 0.8,
    "lane_id": "lane-a", "zone_id": None, "track_ids": [4, 9], "message": None,
    "started_at": T0.isoformat(), "ended_at": (T0 + timedelta(minutes=2)).isoformat(),
}


def test_an_incident_is_an_alert_in_the_schemas_vocabulary_that_validates(tmp_path: Path) -> None:
    place = export.camera_places(SETTINGS, [])("cam-1")
    a = export.alert(INCIDENT, location=place.location, name=place.name)
    assert a["category"] == "traffic" and a["subCategory"] == "carWrongDirection"
    assert a["validFrom"] == "2025-03-03T01:00:00Z" and a["validTo"] == "2025-03-03T01:02:00Z"
    assert a["description"] == "wrong way at camera cam-1" and a["data"]["trackIds"] == [4, 9]
    assert a["alertSource"] == "urn:ngsi-ld:Device:citywatch-hanoi-cam-1"
    validate(tmp_path, [a])
    with pytest.raises(ValueError, match="no Alert subCategory"):
        export.alert({**INCIDENT, "incident_type": "flow_anomaly"})


def test_incidents_csv_has_one_row_per_incident_with_track_ids_space_separated() -> None:
    text = export.incidents_csv([INCIDENT])
    header, row, end = text[1:].split("\r\n")
    assert header.split(",") == list(export.INCIDENT_CSV_HEADER) and end == ""
    cells = dict(zip(export.INCIDENT_CSV_HEADER, row.split(","), strict=True))
    assert cells["track_ids"] == "4 9" and cells["zone_id"] == "" and cells["incident_type"] == "wrong_way"
