"""`--format llamafactory` into a folder that already holds things: a refused export
leaves the folder as it was, and `dataset_info.json` (LLaMA-Factory's registry of every
dataset of its `dataset_dir`) is merged, not replaced. A QA's export into a folder with a
`clips` folder of its own refused (exit 2) only after the user's dataset_info.json had
been overwritten and mcq_train.json written; a second config exported into one folder
dropped the first one's entry, leaving its data file unlisted."""

from __future__ import annotations

import json
from pathlib import Path

from vlm_autodrive.cli import main

USERS = {"my_data": {"file_name": "my_data.json", "formatting": "alpaca"}}


def export(build: Path, out: Path, config: str, *more: str) -> int:
    return main(["export", str(build), "--format", "llamafactory", "--config", config,
                 "--out", str(out), *more])  # fmt: skip


def snapshot(folder: Path) -> dict[str, bytes | str]:
    return {
        str(p.relative_to(folder)): p.read_bytes() if p.is_file() else "folder"
        for p in sorted(folder.rglob("*"))
    }


def test_a_refused_export_leaves_the_users_registry_and_folder_as_they_were(
    build, tmp_path, capsys
):
    out = tmp_path / "u"
    (out / "clips").mkdir(parents=True)
    (out / "clips" / "mine.mp4").write_bytes(b"user's clip")
    (out / "dataset_info.json").write_text(json.dumps(USERS))
    before = snapshot(out)
    assert export(build, out, "mcq") == 2
    err = capsys.readouterr().err
    assert f"{out / 'clips'}: exists and is not a link" in err and "Traceback" not in err
    assert snapshot(out) == before  # nothing written, nothing overwritten


def test_configs_exported_into_one_folder_are_all_in_the_registry(build, tmp_path, capsys):
    out = tmp_path / "u"
    out.mkdir()
    (out / "dataset_info.json").write_text(json.dumps(USERS))
    assert export(build, out, "mcq") == 0
    assert export(build, out, "caption_metadata") == 0
    assert (
        "dataset_info.json keeps its other entries: my_data, mcq_train" in capsys.readouterr().out
    )
    info = json.loads((out / "dataset_info.json").read_text())
    assert list(info) == ["my_data", "mcq_train", "caption_metadata_train"]
    assert info["my_data"] == USERS["my_data"]
    for name in ("mcq_train", "caption_metadata_train"):
        assert info[name]["file_name"] == f"{name}.json" and (out / f"{name}.json").is_file()
    registry = (out / "dataset_info.json").read_bytes()
    assert export(build, out, "mcq") == 0  # again: the entry replaced in its place
    assert (out / "dataset_info.json").read_bytes() == registry


def test_a_clash_with_the_users_own_dataset_is_refused_before_any_write(build, tmp_path, capsys):
    out = tmp_path / "u"
    out.mkdir()
    (out / "dataset_info.json").write_text(json.dumps({"mcq_train": {"file_name": "x.json"}}))
    before = snapshot(out)
    assert export(build, out, "mcq") == 2
    assert f"{out / 'dataset_info.json'}: mcq_train: names another dataset" in (
        capsys.readouterr().err
    )
    assert snapshot(out) == before

    (out / "dataset_info.json").write_text("{}")
    (out / "mcq_train.json").write_text("[]")  # the user's, not listed
    before = snapshot(out)
    assert export(build, out, "mcq") == 2
    assert f"{out / 'mcq_train.json'}: exists and dataset_info.json has no entry" in (
        capsys.readouterr().err
    )
    assert snapshot(out) == before


def test_a_broken_registry_is_named_with_its_line(build, tmp_path, capsys):
    out = tmp_path / "u"
    out.mkdir()
    (out / "dataset_info.json").write_text('{\n  "a": 1,\n}\n')
    assert export(build, out, "mcq") == 2
    assert f"{out / 'dataset_info.json'}: line 3: not valid JSON" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["dataset_info.json"]


def test_a_clips_link_other_datasets_use_is_not_repointed(build, tmp_path, capsys):
    out = tmp_path / "u"
    elsewhere = tmp_path / "other_build" / "clips"
    elsewhere.mkdir(parents=True)
    assert export(build, out, "mcq") == 0
    (out / "clips").unlink()
    (out / "clips").symlink_to(elsewhere, target_is_directory=True)  # another build's
    before = snapshot(out)
    assert export(build, out, "caption_metadata") == 2
    assert "may read their clips through it" in capsys.readouterr().err
    assert snapshot(out) == before and (out / "clips").resolve() == elsewhere
    assert export(build, out, "mcq") == 0  # only its own entry: the link is re-pointed
    assert (out / "clips").resolve() == (build / "clips").resolve()


def test_another_formats_export_or_the_users_file_is_not_overwritten(build, tmp_path, capsys):
    # llava and llamafactory both write <config>_<split>.json: one folder, two formats
    # would replace one's data file with the other's.
    out = tmp_path / "u"
    assert export(build, out, "mcq") == 0
    before = snapshot(out)
    argv = ["export", str(build), "--config", "mcq", "--out", str(out)]
    assert main([*argv, "--format", "llava"]) == 2
    assert f"{out / 'export.json'}: {out} is an export of llamafactory, not llava" in (
        capsys.readouterr().err
    )
    assert snapshot(out) == before
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "utils.py").write_text("# the user's\n")
    assert main(["export", str(build), "--format", "lmms-eval", "--out", str(mine)]) == 2
    assert f"{mine / 'utils.py'}: exists, and {mine} is not an earlier lmms-eval export" in (
        capsys.readouterr().err
    )
    assert sorted(p.name for p in mine.iterdir()) == ["utils.py"]
    llava = ["export", str(build), "--config", "mcq", "--format", "llava", "--out"]
    assert main([*llava, str(tmp_path / "v")]) == 0
    assert main([*llava, str(tmp_path / "v")]) == 0  # an earlier llava export: replaced
