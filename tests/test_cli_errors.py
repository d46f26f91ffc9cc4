"""Bad input at the command line, as a user meets it: exit 2 and one line
`autodrive: <file>: <key or line>: <message>`, never a traceback; checks made before any
work (nothing written); rows that are bad on their own rejected, the rest kept.

Each test runs `autodrive ...` through the CLI's main() (a traceback would fail the
test), on a tiny synthetic sample made by `autodrive sample`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from vlm_autodrive.cli import main

CHUNK = ["--window", "2", "--stride", "1", "--margin", "0.5"]


DOUBLED_WORD = re.compile(r"\b([A-Za-z]{2,}) \1\b", re.IGNORECASE)


def autodrive(capsys, *args: str) -> tuple[int, str, str]:
    """Run `autodrive ARGS`; (exit code, stdout, stderr). Every message it prints is
    checked for a doubled word (the issue found "at at")."""
    capsys.readouterr()
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    doubled = [m.group(0) for m in DOUBLED_WORD.finditer(out + err)]
    assert not doubled, f"doubled words {doubled} in: {out + err}"
    return code, out, err


def bad_input(capsys, *args: str) -> str:
    """Run `autodrive ARGS`, which must fail as bad input; its message."""
    code, _, err = autodrive(capsys, *args)
    assert code == 2, err
    assert err.startswith("autodrive: ") and "Traceback" not in err, err
    return err


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    """Three 4 s videos (Collision, Normal, Near-Collision) and their manifest."""
    out = tmp_path_factory.mktemp("sample") / "s"
    args = ["sample", "--videos", "3", "--out", str(out), "--duration", "4"]
    assert main([*args, "--width", "64", "--height", "48"]) == 0
    return out


def manifest_rows(sample: Path) -> list[dict]:
    return [json.loads(line) for line in (sample / "manifest.jsonl").read_text().splitlines()]


def write_recipe(folder: Path, sample: Path, **sections) -> Path:
    """A build recipe in `folder`, its paths relative to that folder."""
    folder.mkdir(parents=True, exist_ok=True)
    recipe = {
        "manifest": os.path.relpath(sample / "manifest.jsonl", folder),
        "build_dir": "build",
        "chunk": {"window": 2.0, "stride": 1.0, "margin": 0.5},
        "rules": {"test_per_class": 1, "on_short": "take_available"},
        **sections,
    }
    path = folder / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


# -- item 1: what ended in a traceback ----------------------------------------------------


def test_a_250_character_video_id_is_a_counted_reject_at_ingest(sample, tmp_path, capsys):
    rows = [{**r, "path": str(sample / r["path"])} for r in manifest_rows(sample)]
    shutil.copy(rows[1]["path"], tmp_path / "long.mp4")
    long_row = {**rows[1], "video_id": "x" * 250, "path": str(tmp_path / "long.mp4")}
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in [*rows, long_row]))
    build = tmp_path / "b"
    code, out, _ = autodrive(capsys, "ingest", manifest, "--build", build)
    assert code == 3
    assert "manifest rows 4 = videos 3 + rejected 1" in out
    (reject,) = [json.loads(x) for x in (build / "ingest/rejects.jsonl").read_text().splitlines()]
    assert (
        reject["line"] == 4 and "video_id is 250 characters long, at most 200" in reject["reason"]
    )
    code, out, err = autodrive(capsys, "chunk", "--build", build, *CHUNK)
    assert code == 0, err  # the other videos are cut; nothing stops the stage


def test_a_csv_field_over_128_kb_is_read(sample, tmp_path, capsys):
    row = manifest_rows(sample)[1]
    manifest = tmp_path / "big.csv"
    manifest.write_text(
        "video_id,path,label,source\n"
        f"{row['video_id']},{sample / row['path']},{row['label']},{'a' * 200_000}\n"
    )
    code, out, err = autodrive(capsys, "ingest", manifest, "--build", tmp_path / "b")
    assert code == 0, err
    assert "manifest rows 1 = videos 1 + rejected 0" in out


def test_a_corrupt_parquet_manifest_is_named(tmp_path, capsys):
    manifest = tmp_path / "m.parquet"
    manifest.write_bytes(b"PAR1 this is not parquet")
    err = bad_input(capsys, "ingest", manifest, "--build", tmp_path / "b")
    assert f"autodrive: {manifest}: not a readable Parquet file" in err


def test_a_folder_given_as_manifest_or_recipe(sample, tmp_path, capsys):
    err = bad_input(capsys, "ingest", sample, "--build", tmp_path / "b")
    assert f"autodrive: {sample}: is a folder, but a manifest must be a file" in err
    assert not (tmp_path / "b").exists()  # checked before the build folder is made
    err = bad_input(capsys, "build", sample)
    assert f"autodrive: {sample}: is a folder, but a build recipe must be a file" in err


def test_set_values_that_are_not_yaml_or_are_unsafe(sample, tmp_path, capsys):
    recipe = write_recipe(tmp_path, sample)
    err = bad_input(capsys, "build", recipe, "--set", "chunk.window=[1")
    assert "autodrive: --set chunk.window: line 1: not valid YAML: expected ',' or ']'" in err
    err = bad_input(capsys, "build", recipe, "--set", "chunk.window=!!python/object:os.system x")
    assert "--set chunk.window" in err and "tags that build Python objects are not allowed" in err
    assert not (tmp_path / "build").exists()


def rule_templates(folder: Path, mcq: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "mcq.jinja").write_text(mcq)
    return folder


def test_a_template_that_divides_by_zero_or_includes_itself(sample, tmp_path, capsys):
    zero = rule_templates(
        tmp_path / "zero",
        "{% block question %}Q{% endblock %}\n{% block answer %}{{ 1 / 0 }}{% endblock %}\n",
    )
    recipe = write_recipe(tmp_path / "r1", sample, rules={"templates": str(zero)})
    err = bad_input(capsys, "build", recipe)
    assert f"autodrive: {zero / 'mcq.jinja'}:2: ZeroDivisionError: division by zero" in err
    loop = rule_templates(
        tmp_path / "loop",
        '{% block question %}{% include "mcq.jinja" %}{% endblock %}\n'
        "{% block answer %}A{% endblock %}\n",
    )
    recipe = write_recipe(tmp_path / "r2", sample, rules={"templates": str(loop)})
    err = bad_input(capsys, "build", recipe)
    assert f"autodrive: {loop / 'mcq.jinja'}: includes itself (mcq.jinja -> mcq.jinja)" in err
    # both found before any work: no build folder
    assert not (tmp_path / "r1/build").exists() and not (tmp_path / "r2/build").exists()


def test_sample_out_and_publish_to_pointing_at_a_file(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    err = bad_input(capsys, "sample", "--videos", "1", "--out", afile)
    assert f"autodrive: {afile}: is a file, but the output (--out) must be a folder" in err
    err = bad_input(capsys, "publish", tmp_path, "--version", "0.1.0", "--to", afile)
    assert f"autodrive: {afile}: is a file, but the release target (--to) must be a folder" in err


def test_a_missing_local_model_folder(sample, tmp_path, capsys):
    gen = {
        "models": {"text": {"model": "models/tiny/nothere", "local_server": True}},
        "configs": {"vqa": {"model": "text"}},
    }
    recipe = write_recipe(tmp_path, sample, generate=gen)
    err = bad_input(capsys, "build", recipe)
    assert (
        f"autodrive: {recipe}: generate.models.text.model: models/tiny/nothere: no such "
        "model folder" in err
    )
    assert not (tmp_path / "build").exists()  # before ingest, not after chunking
    err = bad_input(capsys, "eval", "--model", tmp_path / "nothere", "--dataset", tmp_path)
    assert "autodrive: command line: --model: " in err and "no such model folder" in err


TRAIN_PYTHON = Path(__file__).resolve().parents[1] / ".venv-train" / "bin" / "python"


@pytest.mark.skipif(not TRAIN_PYTHON.exists(), reason="needs .venv-train (make train-env)")
def test_a_training_recipe_with_a_placeholder_hub_dataset_run_offline(tmp_path):
    """Run as a user runs it, in the training environment (from `.venv` the message
    names that environment first) and offline: the recipe's checks come before torch,
    transformers and the Hub client."""
    from vlm_autodrive.resources import bundled

    recipe = bundled("recipes", "train/cosmos_reason1_7b.yaml")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [str(TRAIN_PYTHON), "-m", "vlm_autodrive.cli", "train", str(recipe)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert (
        f"autodrive: {recipe}: dataset.repo: 'your-org/vlm-autodrive-dashcam' is the "
        "recipe's placeholder" in proc.stderr
    )
    data = yaml.safe_load(recipe.read_text())
    data["model"] = {"path": str(tmp_path / "no-model")}
    mine = tmp_path / "mine.yaml"
    mine.write_text(yaml.safe_dump(data))
    proc = subprocess.run(
        [str(TRAIN_PYTHON), "-m", "vlm_autodrive.cli", "train", str(mine)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"autodrive: {mine}: model.path: {tmp_path / 'no-model'}: no such model folder" in (
        proc.stderr
    )


# -- item 2: messages ---------------------------------------------------------------------


def test_template_errors_give_the_templates_own_line(sample, tmp_path, capsys):
    folder = rule_templates(
        tmp_path / "t",
        "{% block question %}Q{% endblock %}\n{% block answer %}{{ answer.nope }}{% endblock %}\n",
    )
    recipe = write_recipe(tmp_path, sample, rules={"templates": str(folder)})
    err = bad_input(capsys, "build", recipe)
    assert f"autodrive: {folder / 'mcq.jinja'}:2: UndefinedError:" in err and "'nope'" in err


def test_the_chunk_balance_line_gives_every_term_a_number(sample, tmp_path, capsys):
    build = tmp_path / "b"
    assert autodrive(capsys, "ingest", sample / "manifest.jsonl", "--build", build)[0] == 0
    code, out, err = autodrive(capsys, "chunk", "--build", build, *CHUNK)
    assert code == 0, err
    line = next(x for x in out.splitlines() if "windows planned" in x)
    m = re.fullmatch(
        r"\s*windows planned (\d+) = clips (\d+) \+ dropped \((.*)\) "
        r"\+ windows of rejected videos (\d+)",
        line,
    )
    assert m, line
    dropped = sum(int(x.split()[-1]) for x in m.group(3).split(", ") if x != "none")
    assert int(m.group(1)) == int(m.group(2)) + dropped + int(m.group(4))


def test_a_bad_taxonomy_is_file_key_message_not_a_pydantic_dump(sample, tmp_path, capsys):
    taxonomy = tmp_path / "taxonomy.yaml"
    taxonomy.write_text("classes:\n  - name: Collision\n")
    err = bad_input(
        capsys,
        "ingest",
        sample / "manifest.jsonl",
        "--build",
        tmp_path / "b",
        "--taxonomy",
        taxonomy,
    )
    assert f"autodrive: {taxonomy}: classes.0.mcq_option: Field required" in err
    assert "validation error" not in err and "errors.pydantic.dev" not in err


def test_window_settings_are_key_message_not_a_pydantic_dump(sample, tmp_path, capsys):
    recipe = write_recipe(tmp_path, sample)
    err = bad_input(capsys, "build", recipe, "--window", "nan")
    assert "window: Input should be a finite number" in err
    assert "validation error" not in err and "errors.pydantic.dev" not in err


def test_chunk_without_ingest_names_the_stage_to_run_and_writes_nothing(tmp_path, capsys):
    build = tmp_path / "b"
    err = bad_input(capsys, "chunk", "--build", build)
    assert f"run `autodrive ingest MANIFEST --build {build}` first" in err
    assert not build.exists()
    build.mkdir()
    err = bad_input(capsys, "chunk", "--build", build)
    assert "ingest/videos.parquet not found" in err and "autodrive ingest" in err
    assert list(build.iterdir()) == []


def test_a_non_utf8_row_rejects_that_row_only(sample, tmp_path, capsys):
    lines = (sample / "manifest.jsonl").read_bytes().splitlines()
    lines[0] = lines[0].replace(b'"source"', b'"sou\xffrce"')
    manifest = tmp_path / "m.jsonl"
    manifest.write_bytes(b"\n".join(lines) + b"\n")
    for row in manifest_rows(sample):
        shutil.copy(sample / row["path"], tmp_path)
    manifest.write_bytes(manifest.read_bytes().replace(b"videos/", b""))
    code, out, _ = autodrive(capsys, "ingest", manifest, "--build", tmp_path / "b")
    assert code == 3
    assert "manifest rows 3 = videos 2 + rejected 1" in out
    assert f"({manifest}:1): unreadable row: not UTF-8 (byte 0xff" in out
    rows = manifest_rows(sample)
    csv_file = tmp_path / "m.csv"
    csv_file.write_bytes(
        b"video_id,path,label,event_time,source\n"
        + b"".join(
            f"{r['video_id']},{r['path'].removeprefix('videos/')},{r['label']},"
            f"{r.get('event_time', '')},".encode()
            + (b"caf\xe9\n" if i == 1 else b"synthetic\n")
            for i, r in enumerate(rows)
        )
    )
    code, out, _ = autodrive(capsys, "ingest", csv_file, "--build", tmp_path / "b2")
    assert code == 3
    assert "manifest rows 3 = videos 2 + rejected 1" in out
    assert f"({csv_file}:3): unreadable row: not UTF-8 (byte 0xe9)" in out


def test_a_utf8_bom_is_accepted_in_jsonl_and_csv(sample, tmp_path, capsys):
    jsonl = tmp_path / "m.jsonl"
    jsonl.write_text((sample / "manifest.jsonl").read_text(), encoding="utf-8-sig")
    for row in manifest_rows(sample):
        shutil.copy(sample / row["path"], tmp_path)
    jsonl.write_text(jsonl.read_text(encoding="utf-8-sig").replace("videos/", ""), "utf-8-sig")
    code, out, err = autodrive(capsys, "ingest", jsonl, "--build", tmp_path / "b1")
    assert code == 0 and "manifest rows 3 = videos 3 + rejected 0" in out, out + err
    row = manifest_rows(sample)[1]
    csv_file = tmp_path / "m.csv"
    csv_file.write_text(
        f"video_id,path,label\n{row['video_id']},{sample / row['path']},{row['label']}\n",
        encoding="utf-8-sig",
    )
    code, out, err = autodrive(capsys, "ingest", csv_file, "--build", tmp_path / "b2")
    assert code == 0 and "manifest rows 1 = videos 1 + rejected 0" in out, out + err


def test_duplicate_yaml_keys_are_an_error_naming_key_and_line(sample, tmp_path, capsys):
    recipe = write_recipe(tmp_path, sample)
    recipe.write_text(recipe.read_text() + "build_dir: elsewhere\n")
    lines = recipe.read_text().splitlines()
    first = lines.index("build_dir: build") + 1
    err = bad_input(capsys, "build", recipe)
    assert (
        f"autodrive: {recipe}: line {len(lines)}: not valid YAML: key 'build_dir' given twice "
        f"(first on line {first}, again on line {len(lines)})" in err
    )


def test_sample_fps_zero_and_duration_nan_say_what_is_wrong(tmp_path, capsys):
    out = tmp_path / "s"
    err = bad_input(capsys, "sample", "--videos", "1", "--out", out, "--fps", "0")
    assert "autodrive: command line: --fps: 0 is out of range: from 1 to 120" in err
    err = bad_input(capsys, "sample", "--videos", "1", "--out", out, "--duration", "nan")
    assert "autodrive: command line: --duration: Input should be a finite number" in err
    assert not out.exists()


# -- item 3: checks before work -----------------------------------------------------------


def test_recipe_paths_are_relative_to_the_recipes_folder(sample, tmp_path, capsys, monkeypatch):
    recipe = write_recipe(tmp_path / "project", sample)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    code, _, err = autodrive(capsys, "build", recipe)
    assert code == 0, err
    assert (tmp_path / "project/build/chunk/clips.parquet").is_file()
    assert list(elsewhere.iterdir()) == []


def test_folders_preset_windows_and_prompts_are_checked_before_ingest(sample, tmp_path, capsys):
    cases = [
        ("rules", "templates", "no-such", "rules.templates: {folder}/no-such: no such folder"),
        ("generate", "prompts", "no-such", "generate.prompts: {folder}/no-such: no such folder"),
        ("chunk", "preset", "bogus", "chunk.preset: 'bogus' is not an x264 preset"),
        ("chunk", "window", float("inf"), "chunk.window: Input should be a finite number"),
    ]
    for i, (section, key, value, words) in enumerate(cases):
        folder = tmp_path / f"r{i}"
        recipe = write_recipe(folder, sample)
        data = yaml.safe_load(recipe.read_text())
        data.setdefault(section, {})[key] = value
        recipe.write_text(yaml.safe_dump(data))
        err = bad_input(capsys, "build", recipe)
        words = words.format(folder=folder)
        assert f"autodrive: {recipe}: " in err and words in err, (words, err)
        assert not (folder / "build").exists(), words
    err = bad_input(capsys, "chunk", "--build", tmp_path, "--preset", "bogus")
    assert "preset: 'bogus' is not an x264 preset; use one of ultrafast" in err


def test_eval_on_a_hub_dataset_with_the_hub_off(tmp_path):
    """Offline, a Hub dataset not in the cache is a message naming --dataset (a fresh
    process: huggingface_hub reads HF_HUB_OFFLINE when imported)."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")  # a model folder holds model files
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    args = ["eval", "--model", str(model), "--dataset", "acme/dashcam@v1.0.0"]
    proc = subprocess.run(
        [sys.executable, "-m", "vlm_autodrive.cli", *args],
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith(
        "autodrive: command line: --dataset: acme/dashcam@v1.0.0: not in the local Hugging "
        "Face cache, and the Hub cannot be reached"
    )
