"""The pipeline's declarations (builders/pipeline.py): what re-runs a stage and what not.

The property test edits each input a user can change, one at a time, and checks which
stages' declared keys change: exactly the stages that read it. The table of edits and
the stages they must reach is written here, apart from the declarations, so a
declaration that forgets an input (the mutant test removes one) fails it. Settings that
are not inputs (workers, timeouts, servers, engine, the build folder) change no key.
End to end, through the real command line: a moved project sends nothing, replaced
weights re-send every request of that model, and a parse-setting change gives with a
warm cache the bytes a build from scratch gives.
"""

from __future__ import annotations

import copy as copylib
import hashlib
import shutil
from pathlib import Path

import pytest

from tests.builders.generate.test_incremental_requests import (
    Recording,
    base,  # noqa: F401
    build,
    read_manifest,
    recipe_dict,
    write_manifest,
    write_recipe,
)
from vlm_autodrive.builders import pipeline
from vlm_autodrive.builders.core.fingerprint import _module_tree, model_identity
from vlm_autodrive.builders.core.taxonomy import load_taxonomy
from vlm_autodrive.builders.recipe import BuildRecipe

STAGES = [s.name for s in pipeline.PIPELINE]


def base_recipe(tmp_path: Path) -> dict:
    model = tmp_path / "model"
    model.mkdir(exist_ok=True)
    (model / "config.json").write_text('{"hidden_size": 64}')
    (model / "model.safetensors").write_bytes(b"weights-1")
    return {
        "manifest": str(tmp_path / "manifest.jsonl"),
        "build_dir": str(tmp_path / "build"),
        "sample": {"videos": 4, "seed": 1},
        "chunk": {"window": 4.0, "stride": 3.5, "workers": 1},
        "rules": {"test_per_class": 1, "seed": 0},
        "generate": {
            "models": {
                "text": {
                    "model": "org/text-model",
                    "revision": "abc",
                    "base_urls": ["http://a/v1"],
                },
                "local": {"model": str(model), "local_server": True},
            },
            "configs": {"vqa": {"model": "text"}, "caption_vlm": {"model": "local"}},
        },
    }


def keys(data: dict, taxonomy=None) -> dict[str, str]:
    recipe = BuildRecipe.model_validate(data)
    tax = taxonomy or load_taxonomy(None)
    return {s: pipeline.declared_key(s, recipe, tax, None) for s in STAGES}


def set_path(data: dict, dotted: str, value) -> dict:
    out = copylib.deepcopy(data)
    *parents, leaf = dotted.split(".")
    node = out
    for p in parents:
        node = node.setdefault(p, {})
    node[leaf] = value
    return out


# Each input a user edits, and the stages that read it (written apart from the
# declarations on purpose).
INPUT_EDITS = [
    ("sample.seed", 2, {"sample"}),
    ("ingest.duplicates", "group", {"ingest"}),
    ("ingest.near_duplicates", "off", {"ingest"}),
    ("chunk.window", 5.0, {"chunk"}),
    ("chunk.mode", "copy", {"chunk"}),
    ("chunk.crf", 30, {"chunk"}),
    ("chunk.encoder_threads", 3, {"chunk"}),  # x264's output depends on its threads
    ("rules.seed", 7, {"rule_splits"}),
    ("rules.test_per_class", 2, {"rule_splits"}),
    ("rules.mcq_options", "fixed", {"rule_splits"}),
    ("generate.configs.vqa.temperature", 0.7, {"model_splits"}),
    ("generate.configs.vqa.max_output_chars", 50, {"model_splits"}),
    ("generate.configs.vqa.n", 2, {"model_splits"}),
    ("generate.models.text.revision", "def", {"model_splits"}),
    ("generate.models.text.model", "org/other-model", {"model_splits"}),
    (
        "generate.models.local.engine_args",
        {"media_io_kwargs": {"video": {"fps": 8}}},
        {"model_splits"},
    ),
    ("generate.models.local.max_model_len", 4096, {"model_splits"}),
    ("generate.models.text.reasoning_parser", "deepseek_r1", {"model_splits"}),
    ("audit.plots", True, {"audit"}),
]
# Settings that say how a stage runs, never what it makes.
NOT_INPUTS = [
    ("chunk.workers", 2),
    ("chunk.decode", "cpu"),
    ("engine", "ray"),
    ("build_dir", "/elsewhere/build"),
    ("generate.models.text.timeout", 5.0),
    ("generate.models.text.max_retries", 9),
    ("generate.models.text.max_concurrency", 3),
    ("generate.models.text.base_urls", ["http://b/v1", "http://c/v1"]),
    ("generate.models.text.served_model_name", "other-name"),
    ("generate.models.local.backend", "vllm"),
]


def violations(tmp_path: Path) -> list[str]:
    """Every edit whose re-run stages are not exactly those that read it."""
    data = base_recipe(tmp_path)
    before = keys(data)
    out = []
    for dotted, value, expected in INPUT_EDITS:
        edited = set_path(data, dotted, value)
        after = keys(edited)
        rerun = {s for s in STAGES if after[s] != before[s]}
        if rerun != expected:
            out.append(f"{dotted}: re-runs {sorted(rerun)}, reads {sorted(expected)}")
    return out


def test_each_declared_input_reruns_exactly_the_stages_that_read_it(tmp_path):
    assert violations(tmp_path) == []


def test_settings_that_are_not_inputs_rerun_nothing(tmp_path):
    data = base_recipe(tmp_path)
    before = keys(data)
    for dotted, value in NOT_INPUTS:
        edited = set_path(data, dotted, value)
        if dotted == "generate.models.local.backend":
            edited["generate"]["models"]["local"].pop("local_server")
        assert keys(edited) == before, dotted


def test_a_declaration_missing_an_input_fails_the_property_test(tmp_path, monkeypatch):
    """The mutant: chunk's declaration without its recipe section."""
    spec = pipeline.SPECS["chunk"]
    mutant = pipeline.StageSpec(
        spec.name, pipeline.Inputs(**{**spec.inputs.__dict__, "recipe": ()}), spec.run, spec.plan
    )
    monkeypatch.setitem(pipeline.SPECS, "chunk", mutant)
    found = violations(tmp_path)
    assert found and all(v.startswith("chunk.") for v in found), found


def test_the_taxonomy_and_user_files_are_inputs_by_content(tmp_path):
    data = base_recipe(tmp_path)
    tax = load_taxonomy(None)
    before = keys(data, tax)
    renamed = tax.classes[-1].model_copy(update={"name": "Normal"})
    other = tax.model_copy(update={"classes": [*tax.classes[:-1], renamed]})
    after = keys(data, other)
    assert {s for s in STAGES if after[s] != before[s]} == {
        "ingest",
        "chunk",
        "rule_splits",
        "model_splits",
    }
    # A copied templates folder: by content, wherever it lies.
    for name in ("a", "b"):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "mcq.jinja").write_text("Question {{ x }}")
    with_a = keys(set_path(data, "rules.templates", str(tmp_path / "a")))
    with_b = keys(set_path(data, "rules.templates", str(tmp_path / "b")))
    assert with_a == with_b
    (tmp_path / "b" / "mcq.jinja").write_text("Another question {{ x }}")
    edited = keys(set_path(data, "rules.templates", str(tmp_path / "b")))
    assert {s for s in STAGES if edited[s] != with_a[s]} == {"rule_splits"}


def test_code_counts_by_behaviour_not_by_comments_or_docstrings(tmp_path):
    def tree(text: str) -> str:
        path = tmp_path / f"m{hashlib.sha256(text.encode()).hexdigest()[:8]}.py"
        path.write_text(text)
        return _module_tree("vlm_autodrive.m", path)[0]

    code = 'def f(x):\n    """Doubles."""\n    return 2 * x  # why\n'
    assert tree(code) == tree(code.replace("# why", "# another reason"))
    assert tree(code) == tree(code.replace("Doubles.", "Twice x."))
    assert tree(code) != tree(code.replace("2 * x", "3 * x"))


def test_model_identity_is_the_weights_wherever_they_lie(tmp_path):
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text("{}")
        (tmp_path / name / "model.safetensors").write_bytes(b"same weights")
    one = model_identity(str(tmp_path / "one"), None, tmp_path / "memo")
    assert one == model_identity(str(tmp_path / "two"), None, tmp_path / "memo")
    (tmp_path / "two" / "model.safetensors").write_bytes(b"retrained weights")
    assert one != model_identity(str(tmp_path / "two"), None, tmp_path / "memo")
    assert model_identity("org/m", "v1", None) != model_identity("org/m", "v2", None)


# --- end to end, through the command line ---------------------------------------------


def local_model(folder: Path, weights: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text('{"architectures": ["Scripted"]}')
    (folder / "model.safetensors").write_bytes(weights)
    return folder


def project(root: Path, base_root: Path, model: Path, **split_settings) -> Path:
    """A copy of the base build under `root`, its recipe's model a local folder."""
    shutil.copytree(base_root / "build", root / "build")
    rows = read_manifest(base_root / "manifest.jsonl")
    write_manifest(root / "manifest.jsonl", rows)
    data = recipe_dict(root, root / "manifest.jsonl")
    data["generate"]["models"]["m"] = {"model": str(model), "base_urls": ["http://x/v1"]}
    for split, settings in split_settings.items():
        data["generate"]["configs"][split].update(settings)
    return write_recipe(root, data)


def sent(table: dict) -> int:
    return sum(int(row[4]) for row in table.values())


@pytest.mark.slow
def test_a_moved_project_sends_nothing_and_new_weights_send_everything(request, tmp_path, capsys):
    """~10 s: three builds of a 6-video build with every split."""
    finished = request.getfixturevalue("base")
    model = local_model(tmp_path / "a" / "models" / "m", b"weights one")
    recipe = project(tmp_path / "a", finished, model)
    code, first = build(recipe, Recording(), capsys)
    assert code in (0, 3) and sent(first) > 0
    # The whole project (build folder and model folder) moved elsewhere.
    shutil.copytree(tmp_path / "a", tmp_path / "moved")
    moved_model = tmp_path / "moved" / "models" / "m"
    recipe = project(tmp_path / "moved2", tmp_path / "moved", moved_model)
    backend = Recording()
    code, moved = build(recipe, backend, capsys)
    assert code in (0, 3) and backend.requests == [], "a moved project re-sent requests"
    assert "up to date: nothing changed since the last audit" in moved.text
    # Retrained into the same folder: every request of that model is sent again.
    (moved_model / "model.safetensors").write_bytes(b"weights two")
    backend = Recording()
    code, retrained = build(recipe, backend, capsys)
    assert sent(retrained) == sum(int(row[2]) for row in retrained.values()) > 0


@pytest.mark.slow
def test_a_warm_cache_equals_a_build_from_scratch_after_a_parse_setting_change(
    request, tmp_path, capsys
):
    """~10 s: a build with the old cache and a fresh build, bytes of every data file."""
    finished = request.getfixturevalue("base")
    model = local_model(tmp_path / "model", b"weights")
    warm = project(tmp_path / "warm", finished, model)
    assert build(warm, Recording(), capsys)[0] in (0, 3)
    lower = {"max_output_chars": 60}
    warm = project(tmp_path / "warm2", tmp_path / "warm", model, reasoning_mcq=lower, vqa=lower)
    assert build(warm, Recording(), capsys)[0] in (0, 3)
    cold_root = tmp_path / "cold"
    cold_root.mkdir()
    write_manifest(cold_root / "manifest.jsonl", read_manifest(finished / "manifest.jsonl"))
    data = recipe_dict(cold_root, cold_root / "manifest.jsonl")
    data["generate"]["models"]["m"] = {"model": str(model), "base_urls": ["http://x/v1"]}
    for split in ("reasoning_mcq", "vqa"):
        data["generate"]["configs"][split].update(lower)
    assert build(write_recipe(cold_root, data), Recording(), capsys)[0] in (0, 3)
    files = sorted(
        p.relative_to(tmp_path / "warm2" / "build")
        for p in (tmp_path / "warm2" / "build" / "data").rglob("*.parquet")
    )
    assert files
    for rel in files:
        warm_bytes = (tmp_path / "warm2" / "build" / rel).read_bytes()
        assert warm_bytes == (cold_root / "build" / rel).read_bytes(), rel


@pytest.mark.slow
def test_chunk_alone_recuts_nothing_and_a_one_video_edit_recuts_that_video(
    request, tmp_path, capsys
):
    """~10 s: `autodrive chunk` after a build, then a relabel of one video."""
    from vlm_autodrive import cli

    finished = request.getfixturevalue("base")
    model = local_model(tmp_path / "model", b"weights")
    recipe = project(tmp_path / "p", finished, model)
    assert build(recipe, Recording(), capsys)[0] in (0, 3)
    capsys.readouterr()
    assert (
        cli.main(["chunk", "--build", str(tmp_path / "p" / "build"), "--recipe", str(recipe)]) == 0
    )
    assert "(cut now 0," in capsys.readouterr().out
    rows = read_manifest(tmp_path / "p" / "manifest.jsonl")
    event = next(r for r in rows if r["label"] == "Near-Collision")
    event["label"] = "Collision"
    write_manifest(tmp_path / "p" / "manifest.jsonl", rows)
    capsys.readouterr()
    with pytest.MonkeyPatch.context() as mp:
        from vlm_autodrive.builders.generate.backends import factory

        mp.setattr(factory, "open_backend", lambda cfg, stack, **kw: Recording())
        assert cli.main(["build", str(recipe)]) in (0, 3)
    assert "(cut now 1, of them re-cut after a change 1;" in capsys.readouterr().out


@pytest.mark.slow
def test_publish_refuses_model_splits_made_from_older_rule_splits(request, tmp_path, capsys):
    """~10 s: the rule splits rebuilt alone (a new test-set seed) after a full build."""
    from tests.builders.real_builds import autodrive
    from vlm_autodrive.builders.rules.config import RuleSplitsConfig
    from vlm_autodrive.builders.rules.stage import build_rule_splits

    finished = request.getfixturevalue("base")
    model = local_model(tmp_path / "model", b"weights")
    recipe = project(tmp_path / "p", finished, model)
    assert build(recipe, Recording(), capsys)[0] in (0, 3)
    folder = tmp_path / "p" / "build"
    config = RuleSplitsConfig(test_per_class=1, on_short="take_available", seed=9)
    build_rule_splits(folder, config, load_taxonomy(None), {})
    code, text = autodrive(capsys, "publish", folder, "--version", "0.1.0", "--to", tmp_path / "r")
    assert code == 2 and "model_splits" in text, text
    assert not (tmp_path / "r").exists()
