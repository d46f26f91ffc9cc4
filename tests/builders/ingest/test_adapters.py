"""Adapters: real DoTA and CCD annotation files, a Nexar fixture, config validation."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from vlm_autodrive.builders.core.taxonomy import load_taxonomy
from vlm_autodrive.builders.ingest.adapters import (
    ADAPTERS,
    AdapterError,
    load_adapter_config,
    run_adapter,
)
from vlm_autodrive.builders.ingest.adapters.dota import iter_top_level
from vlm_autodrive.resources import bundled

# The real annotation files live in the `shared` folder beside the repository checkout
# (or where AUTODRIVE_TEST_DATA says, for a checkout that has none beside it).
DATA = Path(
    os.environ.get("AUTODRIVE_TEST_DATA")
    or Path(__file__).resolve().parents[3] / ".." / "shared" / "data"
)
DOTA = DATA / "dota_metadata_val.json"
CCD = DATA / "ccd_Crash-1500.txt"
needs_dota = pytest.mark.skipif(not DOTA.exists(), reason=f"real DoTA file absent: {DOTA}")
needs_ccd = pytest.mark.skipif(not CCD.exists(), reason=f"real CCD file absent: {CCD}")
CLASSES = set(load_taxonomy().names)


def _line_of(path: Path, needle: str) -> int:
    return next(i for i, t in enumerate(path.read_text().splitlines(), 1) if needle in t)


def test_registry_and_bundled_configs_load():
    assert set(ADAPTERS) == {"nexar", "dota", "ccd", "mmau"}
    for name, adapter in ADAPTERS.items():
        config = load_adapter_config(name)
        assert isinstance(config, adapter.config_model)
        assert config.adapter == name


# --- DoTA -------------------------------------------------------------------------


@needs_dota
def test_dota_real_file_bundled_mapping():
    raw = json.loads(DOTA.read_text())
    result = run_adapter("dota", DOTA, video_root=Path("/videos/dota"))
    config = load_adapter_config("dota")
    assert result.rows == len(raw) == 1402
    assert not result.rejects
    # every row is accounted for: kept, or dropped by an explicit `drop` line
    assert len(result.entries) + sum(result.dropped.values()) == 1402
    assert len(result.entries) == 805
    assert set(result.dropped) == {c for c in config.labels if c.startswith("other:")}
    for e in result.entries:
        assert e.label in CLASSES
        assert e.label == config.labels[e.metadata.source_class]
        row = raw[e.video_id]
        assert e.event_start == row["anomaly_start"] / 10
        assert e.event_end == row["anomaly_end"] / 10
        assert e.event_time == e.event_start  # onset
        assert e.path == f"/videos/dota/{e.video_id}.mp4"
        assert e.source == "dota"
        assert e.metadata.actors[0].role == "ego"


@needs_dota
def test_dota_spot_check_and_counterparts():
    by_id = {e.video_id: e for e in run_adapter("dota", DOTA).entries}
    e = by_id["0RJPQ_97dcs_000387"]  # anomaly_start 41, anomaly_end 94 in the file
    assert (e.event_start, e.event_time, e.event_end) == (4.1, 4.1, 9.4)
    assert e.label == "Collision"
    assert e.metadata.source_class == "ego: moving_ahead_or_waiting"
    assert [a.role for a in e.metadata.actors] == ["ego", "other"]
    assert e.path == "0RJPQ_97dcs_000387.mp4"
    walker = next(x for x in by_id.values() if x.metadata.source_class == "ego: pedestrian")
    assert [a.type for a in walker.metadata.actors] == [None, "pedestrian"]
    solo = next(x for x in by_id.values() if x.metadata.source_class == "ego: leave_to_left")
    assert [a.role for a in solo.metadata.actors] == ["ego"]


@needs_dota
def test_dota_keep_all_and_middle_and_prefix_rules():
    config = load_adapter_config("dota")
    keep_all = config.model_copy(
        update={"labels": dict.fromkeys(config.labels, "Collision"), "event_time": "middle"}
    )
    result = run_adapter("dota", DOTA, keep_all)
    assert len(result.entries) == 1402 and not result.rejects
    e = next(x for x in result.entries if x.video_id == "0RJPQ_97dcs_000387")
    assert e.event_time == (41 + 94) / 2 / 10
    for x in result.entries:
        if x.metadata.source_class.startswith("other:"):
            assert all(a.role == "other" for a in x.metadata.actors)
    # explicit prefix rules give the same result as the bundled per-class lines
    prefixed = config.model_copy(
        update={"labels": {}, "label_prefixes": {"ego:": "Collision", "other:": "drop"}}
    )
    assert run_adapter("dota", DOTA, prefixed).entries == run_adapter("dota", DOTA).entries


@needs_dota
def test_dota_unmapped_class_is_reject_naming_line_or_error():
    config = load_adapter_config("dota")
    labels = {k: v for k, v in config.labels.items() if k != "ego: turning"}
    result = run_adapter("dota", DOTA, config.model_copy(update={"labels": labels}))
    assert len(result.rejects) == 279  # every `ego: turning` clip, none guessed
    assert all("'ego: turning'" in r.reason for r in result.rejects)
    first = result.rejects[0]
    assert first.line == _line_of(DOTA, f'"{first.video_id}"')
    assert f"line {first.line}:" in first.reason
    strict = config.model_copy(update={"labels": labels, "unmapped": "error"})
    with pytest.raises(AdapterError, match=r"line \d+: source label 'ego: turning'"):
        run_adapter("dota", DOTA, strict)


def test_dota_malformed_rows_are_rejects_naming_lines(tmp_path):
    good = {"anomaly_start": 5, "anomaly_end": 20, "num_frames": 30}
    rows = {
        "ok_1": {**good, "anomaly_class": "ego: oncoming"},
        "bad_start": {**good, "anomaly_start": "5", "anomaly_class": "ego: oncoming"},
        "backwards": {**good, "anomaly_start": 25, "anomaly_class": "ego: oncoming"},
        "no_class": dict(good),
        "not_obj": [1, 2],
        "weird_kind": {**good, "anomaly_class": "ego: teleporting"},
        "bad id!": {**good, "anomaly_class": "ego: oncoming"},
    }
    src = tmp_path / "meta.json"
    src.write_text(json.dumps(rows, indent=2))
    result = run_adapter("dota", src)
    assert [e.video_id for e in result.entries] == ["ok_1"]
    reasons = {r.video_id: r for r in result.rejects}
    assert set(reasons) == set(rows) - {"ok_1"}
    for vid, r in reasons.items():
        assert r.line == _line_of(src, f'"{vid}"'), vid
        assert r.reason.startswith(f"line {r.line}: ")
    assert "anomaly_start must be an integer" in reasons["bad_start"].reason
    assert "anomaly_start <= anomaly_end" in reasons["backwards"].reason
    assert "anomaly_class" in reasons["no_class"].reason
    assert "'ego: teleporting'" in reasons["weird_kind"].reason
    assert "video_id" in reasons["bad id!"].reason


def test_iter_top_level_lines_and_repeated_keys():
    text = '{\n "a": {"x": 1},\n "b": 2,\n "a": 3\n}'
    assert list(iter_top_level(text)) == [("a", {"x": 1}, 2), ("b", 2, 3), ("a", 3, 4)]
    with pytest.raises(ValueError):
        list(iter_top_level("[1, 2]"))


# --- CCD --------------------------------------------------------------------------


def _ccd_fields(line: str) -> tuple[str, list[int], list[str]]:
    head, rest = line.split(",[", 1)
    inner, tail = rest.split("],", 1)
    return head, [int(x) for x in inner.split(",")], tail.split(",")


@needs_ccd
def test_ccd_real_file():
    lines = CCD.read_text().splitlines()
    result = run_adapter("ccd", CCD, video_root=Path("/videos/ccd"))
    assert result.rows == len(lines) == 1500 and not result.rejects
    ego_no = sum(line.endswith(",No") for line in lines)
    assert dict(result.dropped) == {"No": ego_no}
    assert len(result.entries) == 1500 - ego_no == 801
    first = result.entries[0]
    name, labels, tail = _ccd_fields(lines[0])
    assert first.video_id == name == "000001"
    assert first.event_start == labels.index(1) / 10 == 3.2
    assert first.event_time == first.event_start
    assert first.event_end == (len(labels) - 1 - labels[::-1].index(1)) / 10
    assert first.path == "/videos/ccd/Crash-1500/000001.mp4"
    assert (tail[2], tail[3]) == ("Day", "Normal")
    assert (first.metadata.light, first.metadata.weather) == ("daylight", "clear")
    assert [a.role for a in first.metadata.actors] == ["ego"]
    assert first.metadata.source_class == "crash"
    for e in result.entries:
        assert e.label == "Collision"
        assert e.metadata.weather in {"clear", "rain", "snow"}
        assert e.metadata.light in {"daylight", "night"}


@needs_ccd
def test_ccd_keep_other_crashes_and_value_mapping():
    config = load_adapter_config("ccd")
    keep = config.model_copy(update={"labels": {"Yes": "Collision", "No": "Collision"}})
    result = run_adapter("ccd", CCD, keep)
    assert len(result.entries) == 1500
    lines = CCD.read_text().splitlines()
    expect = {"Day": "daylight", "Night": "night", "Normal": "clear", "Snowy": "snow"}
    expect |= {"Rainy": "rain", "Yes": "ego", "No": "other"}
    for e, line in zip(result.entries, lines):
        name, labels, tail = _ccd_fields(line)
        assert e.video_id == name
        assert e.event_start == labels.index(1) / 10
        assert e.metadata.light == expect[tail[2]]
        assert e.metadata.weather == expect[tail[3]]
        assert [a.role for a in e.metadata.actors] == [expect[tail[4]]]


@needs_dota
@needs_ccd
def test_real_files_every_row_accounted():
    # DoTA val: 1,402 clips, all accidents; the 805 `ego: *` ones are Collision, the 597
    # `other: *` ones (crashes the dashcam only watches) are dropped by explicit lines.
    dota = run_adapter("dota", DOTA)
    assert dota.accounted() and not dota.rejects
    assert dota.summary().startswith("1402 rows = 805 entries {'Collision': 805} + 597 dropped")
    assert dota.dropped["other: turning"] == 206 and len(dota.dropped) == 10
    # CCD: 1,500 crash clips; ego involvement `Yes` (801) -> Collision, `No` (699) dropped.
    ccd = run_adapter("ccd", CCD)
    assert ccd.accounted()
    assert ccd.summary() == (
        "1500 rows = 801 entries {'Collision': 801} + 699 dropped {'No': 699} + 0 rejected"
    )


def test_ccd_malformed_lines_are_rejects_naming_lines(tmp_path):
    def line(name, labels, light="Day", weather="Rainy", ego="Yes", start="000100"):
        return f"{name},[{', '.join(map(str, labels))}],{start},0000,{light},{weather},{ego}"

    ok = [0] * 45 + [1] * 5
    text = "\n".join(
        [
            line("000001", ok),
            line("000002", [0] * 50),  # no positive frame
            line("000003", ok[:-1]),  # 49 labels
            "000004,0, 0, 1,000100,0000,Day,Normal,Yes",  # no brackets
            line("000005", ok, light="Dusk"),  # value missing from values.light
            line("000006", ok, ego="Maybe"),  # label key missing from labels
            line("000007", ok)[:-4],  # a field short
            line("000008", ok, start="x1"),
            line("000001", ok),  # repeated vidname
            "",
        ]
    )
    src = tmp_path / "Crash.txt"
    src.write_text(text + "\n")
    result = run_adapter("ccd", src)
    assert [e.video_id for e in result.entries] == ["000001"]
    assert result.entries[0].event_start == 4.5 and result.entries[0].event_end == 4.9
    assert result.entries[0].metadata.weather == "rain"
    got = {r.line: r.reason for r in result.rejects}
    assert sorted(got) == [2, 3, 4, 5, 6, 7, 8, 9]
    assert all(reason.startswith(f"line {n}: ") for n, reason in got.items())
    assert "no frame is labelled 1" in got[2]
    assert "expected 50 frame labels, got 49" in got[3]
    assert "bracketed" in got[4]
    assert "'Dusk'" in got[5] and "values.light" in got[5]
    assert "'Maybe'" in got[6] and "label mapping" in got[6]
    assert "expected 5 fields" in got[7]
    assert "startframe" in got[8]
    assert "duplicate video_id '000001' (first on line 1)" in got[9]


# --- configs ------------------------------------------------------------------------


def _edited(tmp_path: Path, name: str, old: str, new: str) -> Path:
    body = bundled("recipes", f"adapters/{name}.yaml").read_text()
    assert old in body
    p = tmp_path / f"{name}.yaml"
    p.write_text(body.replace(old, new, 1))
    return p


@pytest.mark.parametrize(
    ("name", "old", "new", "where"),
    [
        ("dota", "fps: 10", "fps: 10\nframe_rate: 10", "frame_rate"),
        (
            "dota",
            "{role: other, type: pedestrian}",
            "{role: other, typ: pedestrian}",
            "counterparts.pedestrian.typ",
        ),
        (
            "ccd",
            "    Night: night",
            "    Night: night\n  sky:\n    Blue: clear",
            "values.sky.[key]",
        ),
        ("nexar", "unmapped: reject", "unmapped: ignore", "unmapped"),
        ("dota", "adapter: dota", "adapter: ccd", "adapter"),
    ],
)
def test_config_errors_name_the_key_path(tmp_path, name, old, new, where):
    path = _edited(tmp_path, name, old, new)
    with pytest.raises(ValueError, match=re.escape(f"{path}: {where}")):
        load_adapter_config(name, path)


def test_config_targets_checked_against_taxonomy(tmp_path):
    path = _edited(tmp_path, "dota", '"ego: turning": Collision', '"ego: turning": Colision')
    with pytest.raises(ValueError, match=r"labels\.ego: turning: 'Colision' is not one of"):
        load_adapter_config("dota", path)
    path = _edited(tmp_path, "ccd", "Normal: clear", "Normal: sunny")
    with pytest.raises(ValueError, match=r"values\.weather\.Normal: 'sunny' is not in vocab"):
        load_adapter_config("ccd", path)


def test_template_fields_checked(tmp_path):
    path = _edited(tmp_path, "ccd", "Crash-1500/{video_id}.mp4", "{vidname}.mp4")
    with pytest.raises(ValueError, match="path_template"):
        load_adapter_config("ccd", path)


def test_run_adapter_guards():
    with pytest.raises(AdapterError, match="unknown adapter 'waymo'"):
        run_adapter("waymo", "x")
    with pytest.raises(AdapterError, match="not a config for adapter 'dota'"):
        run_adapter("dota", "x", load_adapter_config("ccd"))


def test_dota_subset_is_kept_as_source_split(tmp_path):
    good = {
        "anomaly_start": 5,
        "anomaly_end": 20,
        "num_frames": 30,
        "anomaly_class": "ego: oncoming",
    }
    rows = {
        "a_val": {**good, "subset": "val"},
        "b_train": {**good, "subset": "train"},
        "c_none": dict(good),
        "d_bad": {**good, "subset": 3},
    }
    src = tmp_path / "meta.json"
    src.write_text(json.dumps(rows, indent=2))
    result = run_adapter("dota", src)
    splits = {e.video_id: e.metadata.source_split for e in result.entries}
    assert splits == {"a_val": "val", "b_train": "train", "c_none": None}
    assert [(r.video_id, "subset must be a string" in r.reason) for r in result.rejects] == [
        ("d_bad", True)
    ]
    if DOTA.exists():  # the real file: every row says `val`
        assert {e.metadata.source_split for e in run_adapter("dota", DOTA).entries} == {"val"}


def test_unmapped_label_reject_names_its_line_once(tmp_path):
    src = tmp_path / "meta.json"
    row = {"anomaly_start": 5, "anomaly_end": 20, "num_frames": 30, "anomaly_class": "ego: x"}
    src.write_text(json.dumps({"v1": row}, indent=2))
    (reject,) = run_adapter("dota", src).rejects
    assert reject.reason == "line 2: source label 'ego: x' is not in the label mapping"
