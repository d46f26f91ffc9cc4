"""Nexar adapter on fixtures in the real layouts: the Hub's one metadata.csv per class
folder (`<split>/<class>/metadata.csv`), and Kaggle's train.csv."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vlm_autodrive.builders.core.stage import read_rejects, write_rejects
from vlm_autodrive.builders.core.taxonomy import load_taxonomy
from vlm_autodrive.builders.ingest.adapters import (
    AdapterError,
    load_adapter_config,
    run_adapter,
    write_manifest,
)
from vlm_autodrive.builders.ingest.manifest import read_manifest
from vlm_autodrive.builders.ingest.records import ManifestEntry
from vlm_autodrive.cli import main

HEADER = "file_name,time_of_event,time_of_alert,light_conditions,weather,scene,time_to_accident"

# The real files' traps: the same file names in every class folder and split, light
# `Twilight`, scenes `Industrial` / `Nature`, empty weather cells, times from 3.0 to 56.8 s.
GOOD = {
    ("train", "positive"): [
        "00000.mp4,19.5,18.633,Twilight,,Industrial,0.867",
        "00001.mp4,3.0,2.1,Normal,Clear,Urban,0.9",
    ],
    ("train", "negative"): ["00000.mp4,,,Normal,Cloudy,Nature,"],
    ("test-public", "positive"): ["00000.mp4,56.8,55.0,Dark,Rain,Highway,1.8"],
    ("test-public", "negative"): ["00002.mp4,,,Bright,,Sub-urban,"],
}


def _nexar(root: Path, tables: dict[tuple[str, str], list[str]]) -> Path:
    for (split, folder), rows in tables.items():
        d = root / split / folder
        d.mkdir(parents=True)
        (d / "metadata.csv").write_text("\n".join([HEADER, *rows]) + "\n")
    return root


def test_root_reads_every_split_and_class(tmp_path):
    root = _nexar(tmp_path / "nexar", GOOD)
    result = run_adapter("nexar", root)
    assert result.rows == 5 and not result.rejects and result.accounted()
    by_id = {e.video_id: e for e in result.entries}
    assert sorted(by_id) == [
        "test-public-negative-00002",
        "test-public-positive-00000",
        "train-negative-00000",
        "train-positive-00000",
        "train-positive-00001",
    ]
    pos, neg = by_id["train-positive-00000"], by_id["train-negative-00000"]
    assert pos.label == "Collision" and neg.label == "Normal Driving"
    assert (pos.event_start, pos.event_time, pos.event_end) == (19.5, 19.5, 19.5)
    assert neg.event_time is None and neg.event_start is None
    assert by_id["test-public-positive-00000"].event_time == 56.8
    assert pos.path == str(root / "train" / "positive" / "00000.mp4")
    assert pos.metadata.source_split == "train" and pos.metadata.source_class == "positive"
    assert by_id["test-public-negative-00002"].metadata.source_split == "test-public"
    # unknown vocabulary is kept as written and counted, not rejected; empty stays null
    assert (pos.metadata.light, pos.metadata.weather, pos.metadata.scene) == (
        "Twilight",
        None,
        "Industrial",
    )
    assert dict(result.unmapped_values) == {
        "light=Twilight": 1,
        "scene=Industrial": 1,
        "scene=Nature": 1,
    }
    assert by_id["train-positive-00001"].metadata.light == "daylight"
    assert by_id["test-public-negative-00002"].metadata.scene == "suburban"
    assert result.notes["csv files read"] == 4
    assert result.counts() == {"Collision": 3, "Normal Driving": 2}
    assert result.summary().startswith(
        "5 rows = 5 entries {'Collision': 3, 'Normal Driving': 2} + 0 dropped {} + 0 rejected"
    )


def test_split_folder_class_folder_and_csv_give_the_same_entries(tmp_path):
    root = _nexar(tmp_path / "nexar", GOOD)
    every = {e.video_id: e for e in run_adapter("nexar", root).entries}
    for source in (root / "train", root / "train" / "positive"):
        got = run_adapter("nexar", source).entries
        assert got and all(e == every[e.video_id] for e in got)
    one = run_adapter("nexar", root / "test-public" / "negative" / "metadata.csv")
    assert [e.video_id for e in one.entries] == ["test-public-negative-00002"]
    assert one.entries[0] == every["test-public-negative-00002"]


def test_video_root_stands_for_the_source_folder(tmp_path):
    root = _nexar(tmp_path / "nexar", GOOD)
    result = run_adapter("nexar", root, video_root=Path("/videos/nexar"))
    e = next(x for x in result.entries if x.video_id == "train-positive-00000")
    assert e.path == "/videos/nexar/train/positive/00000.mp4"
    result = run_adapter("nexar", root / "train", video_root=Path("/videos/train"))
    e = next(x for x in result.entries if x.video_id == "train-negative-00000")
    assert e.path == "/videos/train/negative/00000.mp4"


def test_bad_rows_are_rejects_naming_file_and_line(tmp_path):
    root = _nexar(
        tmp_path / "nexar",
        {
            ("train", "positive"): [
                "00061.mp4,19.5,18.633,Normal,Cloudy,Urban,0.5",  # line 2: fine
                "00063.mp4,,,Normal,Clear,Urban,",  # line 3: positive without a time
                "00064.mp4,abc,,Normal,Clear,Urban,",  # line 4: not seconds
                "00065.mp4,5,4,Normal,Clear,Urban,1,extra",  # line 5: a field too many
                "/abs/00066.mp4,5,4,Normal,Clear,Urban,1",  # line 6: outside the folder
                "00061.mp4,7,6,Normal,Clear,Urban,1",  # line 7: repeated file
                "00067.mp4,-2,,Normal,Clear,Urban,1",  # line 8: negative time
            ],
            ("train", "negative"): ["00123.mp4,12.0,,Normal,Clear,Urban,"],  # time on a negative
            ("train", "unsorted"): ["00200.mp4,,,Normal,Clear,Urban,"],  # no mapping
        },
    )
    result = run_adapter("nexar", root)
    assert [e.video_id for e in result.entries] == ["train-positive-00061"]
    assert result.rows == 9 and result.accounted()
    got = {(Path(r.source).parent.name, r.line): r for r in result.rejects}
    positives = [("positive", n) for n in range(3, 9)]
    assert sorted(got) == [("negative", 2), *positives, ("unsorted", 2)]
    for (_, line), r in got.items():
        assert r.reason.startswith(f"line {line}: ") and r.source.endswith("metadata.csv")
    reason = {k: r.reason for k, r in got.items()}
    assert "'Collision' is an event class but the row has no event time" in reason["positive", 3]
    assert "time_of_event 'abc'" in reason["positive", 4]
    assert "8 fields, but the header has 7" in reason["positive", 5]
    assert "must be a path inside" in reason["positive", 6]
    assert "duplicate video_id 'train-positive-00061' (first on" in reason["positive", 7]
    assert "event times must be >= 0" in reason["positive", 8]
    assert (
        "'Normal Driving' is not an event class but the row has an event time"
        in (reason["negative", 2])
    )
    assert "source label 'unsorted'" in reason["unsorted", 2]
    assert "folder holding its CSV" in reason["unsorted", 2]
    assert got["negative", 2].video_id == "00123"


def test_drop_missing_columns_and_no_csv(tmp_path):
    root = _nexar(tmp_path / "nexar", GOOD)
    config = load_adapter_config("nexar")
    dropped = config.model_copy(update={"labels": {"positive": "drop", "negative": "drop"}})
    result = run_adapter("nexar", root, dropped)
    assert not result.entries and not result.rejects
    assert dict(result.dropped) == {"positive": 3, "negative": 2} and result.accounted()
    (root / "train" / "positive" / "metadata.csv").write_text("file_name,weather\n0.mp4,Clear\n")
    with pytest.raises(AdapterError, match=r"positive/metadata.csv: missing columns"):
        run_adapter("nexar", root)
    (tmp_path / "kaggle").mkdir()
    (tmp_path / "kaggle" / "train.csv").write_text("id,time_of_alert,time_of_event,target\n")
    with pytest.raises(AdapterError, match=r"no metadata\.csv .*pass its train\.csv itself"):
        run_adapter("nexar", tmp_path / "kaggle")
    with pytest.raises(AdapterError, match="no such file or folder"):
        run_adapter("nexar", tmp_path / "absent")


def test_kaggle_train_csv(tmp_path):
    src = tmp_path / "kaggle" / "train.csv"
    src.parent.mkdir()
    src.write_text(
        "id,time_of_alert,time_of_event,target\n"
        "822,17.8,19.5,1\n"  # line 2: id written without its zeros
        "01924,,,0\n"  # line 3
        "00077,,,1\n"  # line 4: positive without a time
        "00005,,,2\n"  # line 5: unknown target
    )
    result = run_adapter("nexar", src)
    by_id = {e.video_id: e for e in result.entries}
    assert sorted(by_id) == ["train-negative-01924", "train-positive-00822"]
    pos = by_id["train-positive-00822"]
    assert pos.label == "Collision" and pos.event_time == 19.5
    assert pos.path == str(src.parent / "train" / "00822.mp4")
    assert pos.metadata.source_split == "train" and pos.metadata.source_class == "positive"
    assert by_id["train-negative-01924"].event_time is None
    reasons = {r.line: r.reason for r in result.rejects}
    assert sorted(reasons) == [4, 5] and result.accounted()
    assert "no event time" in reasons[4] and "target '2' is not in targets" in reasons[5]


def test_cli_reads_the_root_and_writes_manifest_and_rejects(tmp_path, capsys):
    tables = dict(GOOD)
    tables["train", "positive"] = [*GOOD["train", "positive"], "00009.mp4,,,Normal,Clear,Urban,"]
    root = _nexar(tmp_path / "nexar", tables)
    out = tmp_path / "out" / "manifest.jsonl"
    assert main(["adapt", "nexar", str(root), "--out", str(out)]) == 3  # done, one reject
    printed = capsys.readouterr().out
    assert "6 rows = 5 entries" in printed and "1 rejected" in printed
    assert "positive/metadata.csv:4" in printed  # the reject, with its file and line
    back = [ManifestEntry.model_validate_json(t) for t in out.read_text().splitlines()]
    assert back == run_adapter("nexar", root).entries
    rejects = read_rejects(out.with_name("manifest.rejects.jsonl"))
    assert [(r.line, r.video_id) for r in rejects] == [(4, "00009")]
    assert main(["adapt", "nexar", str(tmp_path / "absent"), "--out", str(out)]) == 2


def test_write_manifest_and_rejects_round_trip(tmp_path):
    root = _nexar(tmp_path / "nexar", {("train", "positive"): GOOD["train", "positive"]})
    result = run_adapter("nexar", root)
    out = tmp_path / "out" / "manifest.jsonl"
    assert write_manifest(result.entries, out) == 2
    back = [ManifestEntry.model_validate_json(t) for t in out.read_text().splitlines()]
    assert back == result.entries
    rejects = tmp_path / "out" / "rejects.jsonl"
    write_rejects(rejects, result.rejects)
    assert (
        read_rejects(rejects) == []
        and json.loads(back[0].model_dump_json())["metadata"]["source_split"] == "train"
    )


def test_relative_root_paths_resolve_from_the_manifest_folder(tmp_path, monkeypatch):
    """`adapt nexar data/nexar --out sub/dir/manifest.jsonl` run from the project folder:
    ingest resolves relative paths against the manifest's folder, so every row's video
    must be found from there."""
    root = _nexar(tmp_path / "data" / "nexar", GOOD)
    for (split, folder), rows in GOOD.items():
        for row in rows:
            (root / split / folder / row.split(",")[0]).write_bytes(b"video")
    monkeypatch.chdir(tmp_path)
    out = Path("sub/dir/manifest.jsonl")
    assert main(["adapt", "nexar", "data/nexar", "--out", str(out)]) == 0
    written = [json.loads(t)["path"] for t in out.read_text().splitlines()]
    assert "../../data/nexar/train/positive/00000.mp4" in written  # relative, movable tree
    rows, rejects = read_manifest(out, load_taxonomy().names)
    assert not rejects and len(rows) == len(written) == 5
    assert all(Path(r.entry.path).is_file() for r in rows)
    # an absolute root stays absolute
    absolute = tmp_path / "abs.jsonl"
    assert main(["adapt", "nexar", str(root), "--out", str(absolute)]) == 0
    assert all(Path(json.loads(t)["path"]).is_absolute() for t in absolute.read_text().splitlines())


def test_excel_byte_order_mark_is_read_as_text(tmp_path):
    root = _nexar(tmp_path / "nexar", GOOD)
    csv = root / "train" / "positive" / "metadata.csv"
    csv.write_bytes(b"\xef\xbb\xbf" + csv.read_bytes())  # Excel's "CSV UTF-8"
    result = run_adapter("nexar", root)
    assert not result.rejects and len(result.entries) == 5


def test_reject_reasons_name_the_line_once_and_nan_says_missing(tmp_path):
    root = _nexar(
        tmp_path / "nexar",
        {
            ("train", "positive"): ["00001.mp4,NaN,,Normal,Clear,Urban,"],  # pandas' gap
            ("train", "unsorted"): ["00002.mp4,,,Normal,Clear,Urban,"],  # no mapping
        },
    )
    reasons = {Path(r.source).parent.name: r.reason for r in run_adapter("nexar", root).rejects}
    assert all(r.startswith("line 2: ") and r.count("line 2") == 1 for r in reasons.values())
    assert "time_of_event is 'NaN' (a missing value)" in reasons["positive"]
    assert "not a number of seconds" not in reasons["positive"]
