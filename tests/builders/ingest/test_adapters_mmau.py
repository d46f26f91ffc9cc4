"""MM-AU adapter on tiny sheets in the real layouts: a committed CAP annotation .xls (made
with xlwt: a legend sheet first, then `annotation file` with CAP's column order, then a
type legend), DADA annotation and Q&A .xlsx sheets written here with openpyxl. The traps
of the real files: leading zeros (and ids stored as numbers), DADA's `video` repeating
across types, `accident frame = -1`, CAP and DADA ordering their columns differently,
Chinese headers in the CAP Q&A sheets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from vlm_autodrive.builders.ingest.adapters import AdapterError, load_adapter_config, run_adapter
from vlm_autodrive.builders.ingest.adapters.mmau import expand

openpyxl = pytest.importorskip("openpyxl")
pytest.importorskip("xlrd")

CAP_XLS = Path(__file__).parent / "data" / "cap_annotations_fixture.xls"
CODED = [
    "weather(sunny,rainy,snowy,foggy)1-4",
    "light(day,night)1-2",
    "scenes(highway,tunnel,mountain,urban,rural)1-5",
    "linear(arterials,curve,intersection,T-junction,ramp) 1-5",
]


def _xlsx(path: Path, sheets: dict[str, list[list]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    wb = openpyxl.Workbook()
    wb.remove(wb.active)
    for name, rows in sheets.items():
        ws = wb.create_sheet(name)
        for row in rows:
            ws.append(row)
    wb.save(path)
    return path


def _dada(path: Path) -> Path:
    # DADA's order (accident frame before abnormal end), headers with odd case / spaces
    header = [
        "video",
        *CODED,
        " TYPE ",
        "whether an accident occurred (1/0)",
        "abnormal start frame",
        "Accident  Frame",
        "abnormal end frame",
        "total frames",
    ]
    rows = [
        ["001", 1, 1, 4, 1, 1, 1, 30, 63, 115, 440],  # row 2: type 1 video 001
        ["001", 2, 2, 5, 4, 2, 1, 31, 61, 91, 300],  # row 3: type 2 video 001, not a repeat
        ["002", 1, 1, 4, 2, 1, 0, 30, -1, 90, 300],  # row 4: no accident: Near-Collision
        ["003", 1, 1, 4, 1, 43, 0, 30, -1, 90, 300],  # row 5: other, no accident: dropped
        ["004", 1, 1, 4, 1, 5, 0, -1, -1, -1, 300],  # row 6: no window: a named drop
        ["005", 1, 1, 4, 1, 5, 1, 30, -1, 90, 300],  # row 7: occurred 1 but no accident
        ["006", 1, 1, 4, 1, 5, 1, 30, 60, 500, 300],  # row 8: end past the last frame
        ["001", 1, 1, 4, 1, 1, 1, 30, 63, 115, 440],  # row 9: repeats row 2
        [7, 1, 1, 4, 5, 3, 1, 30, 40, 50, 300],  # row 10: id stored as a number
        ["008", 1, 1, 4, 1, 3, 1, 30, "#N/A", 50, 300],  # row 11: an error cell
    ]
    legend = [[1, "a vehicle turns left"], [None, "ego-car turns left"]]
    return _xlsx(path, {"text": legend, "Sheet1": [header, *rows]})


def _cap_qa(path: Path) -> Path:
    header = [
        *["video", "type", "tai", "tco", "tae", "(tai,tae)", "total frames"],
        "天气（晴天，雨天，雪天，雾天）1-4",
        "光照（白天，夜晚）1-2",
        "场景（高速，隧道，山区，城区，农村）1-5",
        "位置(干道，弯道，十字路口，丁字路口，匝道) 1-5",
        *["question", "answer", "a0", "a1", "a2", "a3", "a4"],
    ]
    opts = ["Pedestrian runs the red light", "The car is out of control", "c", "d", "e"]
    q = "What is the cause of the accident?"
    rows = [
        ["001222", 5, 21, 36, 54, 33, 69, 1, 2, 1, 1, q, 1, *opts],  # row 2
        ["001223", 43, 21, 36, 54, 33, 69, 1, 1, 1, 1, q, 0, *opts],  # row 3: other
        ["001224", 5, 21, 36, 54, 33, 69, 1, 1, 1, 1, q, 5, *opts],  # row 4: answer 5
        ["001225", 5, 21, 36, 54, 33, 69, 1, 1, 1, 1, q, 2, "a", "b", None, "d", "e"],  # row 5
    ]
    return _xlsx(path, {"Sheet1": [header, *rows]})


def test_cap_xls_annotation_sheet():
    result = run_adapter("mmau", CAP_XLS, video_root=Path("/videos/mmau"))
    assert result.rows == 10 and result.accounted()  # the blank row 5 is not a row
    by_id = {e.video_id: e for e in result.entries}
    assert sorted(by_id) == ["cap_000001", "cap_000012"]
    e = by_id["cap_000001"]
    assert e.label == "Collision" and e.path == "/videos/mmau/cap/10/000001.mp4"
    # frames are 1-based at 30 fps; CAP orders start, end, accident: read by header
    assert (e.event_start, e.event_time, e.event_end) == (
        round(17 / 30, 6),
        round(33 / 30, 6),
        round(49 / 30, 6),
    )
    assert (e.metadata.weather, e.metadata.light, e.metadata.scene, e.metadata.road) == (
        "clear",
        "daylight",
        "urban",
        "intersection",
    )
    assert e.metadata.source_class == "type 10" and [a.role for a in e.metadata.actors] == ["ego"]
    assert e.metadata.cause is None and e.metadata.source_split is None
    twelve = by_id["cap_000012"]  # the id was stored as the number 12: zeros restored
    assert (twelve.metadata.weather, twelve.metadata.light) == ("rain", "night")
    assert (twelve.metadata.scene, twelve.metadata.road) == ("tunnel", "arterial")  # kept
    assert dict(result.unmapped_values) == {"road=arterial": 1, "scene=tunnel": 1}
    assert dict(result.dropped) == {"other: accident": 1}
    got = {r.line: r.reason for r in result.rejects}
    assert sorted(got) == [6, 7, 8, 9, 10, 11, 12]
    for line, reason in got.items():
        assert reason.startswith(f"sheet 'annotation file' row {line}: ")
    assert "column 'weather(sunny,rainy,snowy,foggy)1-4': code 7 is not in codes" in got[6]
    assert "column 'accident frame': 'x' is not a whole number" in got[7]
    assert "abnormal start <= accident <= abnormal end, got 40, 30, 50" in got[8]
    assert "duplicate video_id 'cap_000001' (first on" in got[9] and "row 2" in got[9]
    assert "column 'video': '1234567' is not a video number of at most 6 digits" in got[10]
    assert "accident type 99 is not in known_types" in got[11]
    assert "10.5 is not a whole number" in got[12]
    assert {r.source for r in result.rejects} == {str(CAP_XLS)}
    assert result.notes["cap sheets read"] == 1  # the legend sheets are not data


def test_dada_xlsx_annotation_sheet(tmp_path):
    src = _dada(tmp_path / "dada_text_annotations.xlsx")
    result = run_adapter("mmau", src)
    assert result.rows == 10 and result.accounted()
    by_id = {e.video_id: e for e in result.entries}
    assert sorted(by_id) == ["dada_1_001", "dada_1_002", "dada_2_001", "dada_3_007"]
    assert by_id["dada_1_001"].event_time == round(62 / 30, 6)
    assert by_id["dada_1_001"].path == "dada/1/001.mp4"
    near = by_id["dada_1_002"]  # accident frame -1 with an abnormal window
    assert near.label == "Near-Collision"
    assert (near.event_start, near.event_time, near.event_end) == (
        round(29 / 30, 6),
        round(59 / 30, 6),
        round(89 / 30, 6),
    )
    assert by_id["dada_2_001"].metadata.light == "night"
    assert dict(result.dropped) == {"other: no accident": 1, "ego: no window": 1}
    got = {r.line: r.reason for r in result.rejects}
    assert sorted(got) == [7, 8, 9, 11]
    assert "column 'whether an accident occurred (1/0)': 1 disagrees" in got[7]
    assert "column 'abnormal end frame': frame 500 is outside 1..300" in got[8]
    assert "duplicate video_id 'dada_1_001'" in got[9]
    assert "column 'Accident  Frame': #N/A is not a whole number" in got[11]
    # the label mapping decides: keep no-window rows? Here they become a reject instead
    config = load_adapter_config("mmau")
    labels = {k: v for k, v in config.labels.items() if k != "ego: no window"}
    strict = run_adapter("mmau", src, config.model_copy(update={"labels": labels}))
    assert "source label 'ego: no window'" in {r.line: r.reason for r in strict.rejects}[6]


def test_qa_sheets_cause_question_and_split(tmp_path):
    folder = tmp_path / "Q&A" / "data" / "cap"
    _cap_qa(folder / "train.xlsx")
    _cap_qa(folder / "total.xlsx")  # not excluded by the bundled `total.xls` glob
    config = load_adapter_config("mmau")
    config = config.model_copy(update={"exclude": ["total.*"]})
    result = run_adapter("mmau", folder, config)
    assert result.rows == 4 and result.accounted()
    (e,) = result.entries
    assert e.video_id == "cap_001222" and e.metadata.source_split == "train"
    assert e.metadata.cause.question == "What is the cause of the accident?"
    assert e.metadata.cause.options[e.metadata.cause.answer] == "The car is out of control"
    assert len(e.metadata.cause.options) == 5
    assert (e.metadata.light, e.metadata.scene) == ("night", "highway")  # Chinese headers
    assert e.event_time == round(35 / 30, 6)  # tco
    got = {r.line: r.reason for r in result.rejects}
    assert "column 'answer': 5 is not an index of the 5 options" in got[4]
    assert "column 'a2': option None is not a text" in got[5]
    # without the exclusion, total.xlsx repeats every video: loud duplicates, not a merge
    again = run_adapter("mmau", folder)
    assert sum("duplicate video_id" in r.reason for r in again.rejects) == 1


def test_workbook_and_config_errors(tmp_path):
    no_data = _xlsx(tmp_path / "cap_legend.xlsx", {"types": [["类别", "事故类型文本"]]})
    with pytest.raises(AdapterError, match="no sheet has the columns"):
        run_adapter("mmau", no_data)
    anonymous = _dada(tmp_path / "sheets" / "annotations.xlsx")
    with pytest.raises(AdapterError, match="no part of its path names a subset"):
        run_adapter("mmau", anonymous)
    forced = load_adapter_config("mmau").model_copy(update={"subset": "dada"})
    assert len(run_adapter("mmau", anonymous, forced).entries) == 4
    two = _xlsx(tmp_path / "dada_two.xlsx", {"s": [["video", "type", "tai", "tco", "tae", "TCO"]]})
    with pytest.raises(AdapterError, match="both match 'accident'"):
        run_adapter("mmau", two)
    (tmp_path / "dada_broken.xlsx").write_bytes(b"not a workbook")
    with pytest.raises(AdapterError, match="cannot read the workbook"):
        run_adapter("mmau", tmp_path / "dada_broken.xlsx")
    assert expand(["1-18", 61, "62"]) == {*range(1, 19), 61, 62}
    with pytest.raises(ValueError):
        expand(["18-1"])


# --- the real sheets, where a checkout has them beside it (not bundled: CC BY-NC) ------

DATA = Path(
    os.environ.get("AUTODRIVE_TEST_DATA")
    or Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
)


@pytest.mark.skipif(not (DATA / "cap_text_annotations.xls").exists(), reason="no real CAP sheet")
def test_real_cap_sheet():
    # 9,768 videos, every one an accident; 5,405 have an ego type (1-18, 61, 62).
    r = run_adapter("mmau", DATA / "cap_text_annotations.xls")
    assert r.summary().startswith(
        "9768 rows = 5405 entries {'Collision': 5405} + 4363 dropped {'other: accident': 4363}"
        " + 0 rejected"
    )


@pytest.mark.skipif(not (DATA / "dada_text_annotations.xlsx").exists(), reason="no real sheet")
def test_real_dada_sheet():
    # 1,962 videos; 17 without an accident frame (13 ego -> Near-Collision, 4 other).
    r = run_adapter("mmau", DATA / "dada_text_annotations.xlsx")
    assert r.summary().startswith(
        "1962 rows = 988 entries {'Collision': 975, 'Near-Collision': 13} + 974 dropped"
        " {'other: accident': 970, 'other: no accident': 4} + 0 rejected"
    )
