"""Ground-truth files as the accuracy harness reads them: the tracks CSV and CVAT 1.1 XML give the same
boxes, classes and flags; CVAT keyframes are interpolated; a bad file is named in the error."""

from __future__ import annotations

from pathlib import Path

import pytest

from citywatch.contract import CLASS_NAMES
from evaluation.ground_truth import GroundTruthError, load_ground_truth

CSV = """frame,track_id,x,y,w,h,type,stopped,parked
0,7,10,20,30,40,car,0,0
1,7,12,20,30,40,van,0,0
2,7,14,20,30,40,car,1,0
0,8,100,100,20,20,bicycle,0,1
"""

CVAT = """<annotations>
  <track id="7" label="car">
    <box frame="0" outside="0" xtl="10" ytl="20" xbr="40" ybr="60"/>
    <box frame="2" outside="0" xtl="14" ytl="20" xbr="44" ybr="60">
      <attribute name="stopped">true</attribute>
    </box>
    <box frame="3" outside="1" xtl="14" ytl="20" xbr="44" ybr="60"/>
  </track>
  <track id="8" label="bicycle">
    <box frame="0" outside="0" xtl="100" ytl="100" xbr="120" ybr="120">
      <attribute name="parked">true</attribute>
    </box>
    <box frame="1" outside="1" xtl="100" ytl="100" xbr="120" ybr="120"/>
  </track>
</annotations>
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_csv_and_cvat_files_give_the_same_tracks_boxes_and_flags(tmp_path: Path) -> None:
    csv_gt = load_ground_truth(write(tmp_path, "gt.csv", CSV))
    xml_gt = load_ground_truth(write(tmp_path, "gt.xml", CVAT))
    for gt in (csv_gt, xml_gt):
        assert gt.track_ids == {7, 8} and gt.last_frame == 2 and gt.has_ids
        assert gt.at(1).xyxy.tolist() == [[12, 20, 42, 60]]  # CVAT: interpolated between keyframes 0 and 2
        assert [CLASS_NAMES[c] for c in gt.at(0).class_id] == ["car", "bicycle"]
        assert gt.flags[7]["stopped"] and not gt.flags[7]["parked"] and gt.flags[8]["parked"]
        assert len(gt.at(3)) == 0  # outside / not annotated


def test_a_track_takes_its_most_frequent_label() -> None:
    from evaluation.ground_truth import _majority_type

    rows = [(0, 1, 0.0, 0.0, 1.0, 1.0, "van"), (1, 1, 0.0, 0.0, 1.0, 1.0, "car"), (2, 1, 0.0, 0.0, 1.0, 1.0, "taxi")]
    assert {r[-1] for r in _majority_type(rows)} == {"car"}  # car and taxi are both car; van is a truck


@pytest.mark.parametrize(("name", "text", "says"), [
    ("gt.csv", "frame,id\n1,2\n", "missing column"),
    ("gt.csv", "frame,track_id,x,y,w,h\n0,1,a,0,1,1\n", "gt.csv:2: bad row"),
    ("gt.xml", "<annotations><track id='1'><box frame='0'/></track></annotations>", "no 'xtl' attribute"),
    ("gt.xml", "<annotations>", "not a readable CVAT XML"),
    ("gt.xml", "<annotations><image id='0'/></annotations>", "no track ids"),
])
def test_a_bad_ground_truth_file_is_named_with_what_is_wrong(tmp_path: Path, name: str, text: str, says: str) -> None:
    with pytest.raises(GroundTruthError, match=says):
        load_ground_truth(write(tmp_path, name, text))


def test_a_missing_ground_truth_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(GroundTruthError, match="missing.csv does not exist"):
        load_ground_truth(tmp_path / "missing.csv")
