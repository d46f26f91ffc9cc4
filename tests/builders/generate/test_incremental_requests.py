"""Regenerating after an edit: per edit kind, exactly which rows change and which
requests are sent, and `autodrive build --dry-run` predicts that count before the run.

Each test edits a copy of one tiny finished build (6 synthetic videos, every model
split), runs `autodrive build RECIPE --dry-run` and then `autodrive build RECIPE` through
the real command line (in process), and compares: the dry run's `to send` per split
equals the `sent` of the run, the requests sent are those of the clips the edit touched,
and the rows that changed (by stable id and content hash) are those clips' rows. The
model is the scripted backend (tests/doubles/scripted.py) put in place of the backend
factory; its VLM captions name the clip's bytes, so a re-cut clip gets a new caption.

The retrain edit is the eval harness's: its stored answers key on the weights hash,
tested in tests/trainer/eval/test_eval_e2e.py
(`test_new_weights_in_the_same_folder_regenerate_every_answer`).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from tests.doubles.scripted import ScriptedBackend
from vlm_autodrive import cli
from vlm_autodrive.builders.generate.backends import factory
from vlm_autodrive.builders.generate.inputs import read_config
from vlm_autodrive.builders.synthetic.sample import generate_sample
from vlm_autodrive.resources import bundled

SPLITS = (
    "caption_vlm", "vqa", "reasoning_mcq", "reasoning_vqa",
    "reasoning_revised", "short_qa", "caption_augmented", "cause_reasoning",
)  # fmt: skip
CONFIGS = ("mcq", "caption_metadata", *SPLITS)
MAY_SEND = re.compile(r"^\s+(\w+): up to (\d+) more requests, ")


class Recording(ScriptedBackend):
    """The scripted model; keeps every request; a caption names the clip's bytes."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.requests = []

    def generate(self, requests):
        requests = list(requests)
        self.requests += requests
        return super().generate(requests)

    def _answer(self, req):
        sha = (req.key_extra or {}).get("video_sha256")
        if sha:
            return f"A car drives along a wet road (clip {sha[:8]})."
        return super()._answer(req)


def recipe_dict(root: Path, manifest: Path) -> dict:
    return {
        "manifest": str(manifest),
        "build_dir": str(root / "build"),
        "chunk": {"window": 4.0, "stride": 3.5, "mode": "copy", "workers": 1},
        "rules": {"test_per_class": 1, "on_short": "take_available"},
        "generate": {
            "models": {"m": {"model": "scripted", "revision": "1", "base_urls": ["http://x/v1"]}},
            "configs": {
                "caption_vlm": {"model": "m"},
                "vqa": {"model": "m"},
                "reasoning_mcq": {"model": "m", "n": 2, "temperature": 0.6, "seed": 1},
                "reasoning_vqa": {"model": "m"},
                "reasoning_revised": {"model": "m", "check": {"model": "m"}},
                "short_qa": {"model": "m"},
                "caption_augmented": {"model": "m", "n": 2},
                "cause_reasoning": {"model": "m"},
            },
        },
    }


def write_recipe(root: Path, data: dict) -> Path:
    path = root / "recipe.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def write_manifest(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def read_manifest(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line]


class Printed(dict):
    """split -> its row of the printed table; `more`: split -> how many more requests a
    dry run said it may send than its `to send`; `text`: everything printed."""

    more: dict[str, int]
    text: str


def build(recipe: Path, backend: Recording, capsys, *args: str) -> tuple[int, Printed]:
    """`autodrive build RECIPE ARGS` in process; (exit code, the printed table)."""
    capsys.readouterr()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(factory, "open_backend", lambda cfg, stack, **kw: backend)
        code = cli.main(["build", str(recipe), *args])
    printed = capsys.readouterr()
    out = printed.out
    table = Printed()
    table.text, table.more = out + printed.err, {}
    for line in out.splitlines():
        words = line.split()
        if words and words[0] in SPLITS and len(words) > 4 and words[1].isdigit():
            table[words[0]] = words
        if m := MAY_SEND.match(line):
            table.more[m.group(1)] = int(m.group(2))
    return code, table


def snapshot(build_dir: Path) -> dict[str, dict[str, tuple]]:
    """config -> row id -> (content hash, clip id)."""
    return {
        c: {
            r["id"]: (r["content_hash"], r["clip_id"])
            for r in read_config(build_dir, c, ["id", "content_hash", "clip_id"])
        }
        for c in CONFIGS
    }


def changed(before: dict, after: dict) -> dict[str, set[str]]:
    """config -> clip ids of the rows added, removed or changed."""
    out = {}
    for c in CONFIGS:
        b, a = before[c], after[c]
        ids = {i for i in b.keys() | a.keys() if b.get(i, (None,))[0] != a.get(i, (None,))[0]}
        out[c] = {(a.get(i) or b.get(i))[1] for i in ids}
    return out


def sent_clips(backend: Recording) -> set[str]:
    return {r.key_extra["clip"] for r in backend.requests}


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """A finished build of every split; the manifest names its videos by absolute path."""
    root = tmp_path_factory.mktemp("incr")
    manifest = generate_sample(root / "sample", 6, seed=2, duration=8.0, width=96, height=64)
    rows = read_manifest(manifest)
    for r in rows:
        r["path"] = str((manifest.parent / r["path"]).resolve())
    write_manifest(root / "manifest.jsonl", rows)
    recipe = write_recipe(root, recipe_dict(root, root / "manifest.jsonl"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(factory, "open_backend", lambda cfg, stack, **kw: Recording())
        assert cli.main(["build", str(recipe)]) in (0, 3)
    return root


@pytest.fixture
def copy(base, tmp_path) -> Path:
    """A copy of the base build (its manifest and recipe pointing at the copy)."""
    shutil.copytree(base / "build", tmp_path / "build")
    shutil.copy2(base / "manifest.jsonl", tmp_path / "manifest.jsonl")
    write_recipe(tmp_path, recipe_dict(tmp_path, tmp_path / "manifest.jsonl"))
    return tmp_path


def dry_then_real(root: Path, capsys, *args: str, recipe: Path | None = None):
    """Dry run, then the run; (dry table, run table, backend of the run, rows changed)."""
    recipe = recipe or root / "recipe.yaml"
    before = snapshot(root / "build")
    silent = Recording()
    code, dry = build(recipe, silent, capsys, "--dry-run", *args)
    assert code == 0 and silent.requests == [], "the dry run sent something"
    assert snapshot(root / "build") == before, "the dry run wrote something"
    backend = Recording()
    code, real = build(recipe, backend, capsys, *args)
    assert code in (0, 3)
    assert_predicted(dry, real)
    assert sum(int(real[s][4]) for s in SPLITS) == len(backend.requests)
    return dry, real, backend, changed(before, snapshot(root / "build"))


def assert_predicted(dry: dict, real: dict) -> None:
    """The dry run's `to send` is what the run then sent, per split; where it also said
    a split may send up to N more (requests made from outputs still to be drawn: the
    revisions of reasoning_mcq samples that come out wrong), the run sent no fewer and at
    most N more."""
    for split in SPLITS:
        predicted, sent, more = int(dry[split][4]), int(real[split][4]), dry.more.get(split, 0)
        assert predicted <= sent <= predicted + more, (split, dry[split], more, real[split])


def sides(root: Path) -> dict[str, str]:
    """clip id -> train, test or held_out."""
    import pyarrow.parquet as pq

    t = pq.read_table(root / "build" / "split" / "assignment.parquet", columns=["clip_id", "split"])
    return dict(zip(t.column("clip_id").to_pylist(), t.column("split").to_pylist()))


def entered(before: dict[str, str], after: dict[str, str]) -> set[str]:
    """Clips in a split now that were held out (or did not exist) before."""
    return {
        c for c, s in after.items() if s != "held_out" and before.get(c, "held_out") == "held_out"
    }


def video_of(clip_ids: set[str]) -> set[str]:
    return {c.rsplit("_", 1)[0] for c in clip_ids}


def event_video(root: Path, label: str) -> dict:
    return next(r for r in read_manifest(root / "manifest.jsonl") if r["label"] == label)


def edit_manifest(root: Path, video_id: str, **fields) -> None:
    rows = read_manifest(root / "manifest.jsonl")
    for r in rows:
        if r["video_id"] == video_id:
            r.update(fields)
    write_manifest(root / "manifest.jsonl", rows)


def test_no_change_sends_nothing_and_changes_nothing(copy, capsys):
    _dry, real, backend, diff = dry_then_real(copy, capsys)
    assert backend.requests == [] and all(not d for d in diff.values())
    assert all(real[s][3] == real[s][2] for s in SPLITS)  # every request cached


def test_manifest_label_edit(copy, capsys):
    v = event_video(copy, "Near-Collision")
    edit_manifest(copy, v["video_id"], label="Collision")
    _dry, real, backend, diff = dry_then_real(copy, capsys)
    # Re-cut, the same bytes: the VLM captions come from the cache.
    assert real["caption_vlm"][4] == "0" and diff["caption_vlm"] == set()
    touched = diff["mcq"]  # the event clip's answer
    assert video_of(touched) == {v["video_id"]} and len(touched) == 1
    assert video_of(sent_clips(backend)) == {v["video_id"]}
    for c in ("vqa", "reasoning_mcq"):  # their prompts hold the label
        assert diff[c] == touched


def test_manifest_event_time_edit(copy, capsys):
    v = event_video(copy, "Collision")
    t = v["event_time"] + 1.5
    edit_manifest(copy, v["video_id"], event_time=t, event_start=t, event_end=t)
    before = sides(copy)
    _dry, real, backend, diff = dry_then_real(copy, capsys)
    # The moved event leaves v's first window Normal Driving: one more Normal test clip
    # for the balanced test, so another video's held-out clip joins the train side.
    new = entered(before, sides(copy))
    assert video_of(sent_clips(backend) - new) == {v["video_id"]}
    assert video_of(set().union(*diff.values()) - new) == {v["video_id"]}
    assert int(real["caption_vlm"][4]) >= 1  # the event clip moved: new pixels


def test_removed_video(copy, capsys):
    rows = read_manifest(copy / "manifest.jsonl")
    gone = next(r for r in rows if r["label"] == "Normal Driving")["video_id"]
    write_manifest(copy / "manifest.jsonl", [r for r in rows if r["video_id"] != gone])
    _dry, _real, backend, diff = dry_then_real(copy, capsys)
    assert backend.requests == []
    assert video_of(set().union(*diff.values())) == {gone}
    after = snapshot(copy / "build")
    assert not any(video_of({clip}) == {gone} for c in after.values() for _, clip in c.values())


def test_window_change(copy, capsys):
    _dry, real, backend, _diff = dry_then_real(copy, capsys, "--stride", "3.0", "--force")
    video = {r.key_extra["clip"] for r in backend.requests if r.key_extra.get("video_sha256")}
    # The windows moved, and their clips with them; a video's first clip (the same window,
    # the same bytes) keeps its cached caption.
    assert video and int(real["caption_vlm"][4]) == len(video)
    assert not any(c.endswith("_0000000") for c in video)
    assert any(c.endswith("_0000000") for c in labels(copy))


def test_caption_template_edit_for_one_class(copy, capsys):
    templates = copy / "my_templates"
    shutil.copytree(bundled("templates"), templates)
    event = templates / "captions" / "event.jinja"
    text = event.read_text()
    assert "but avoids contact" in text
    event.write_text(text.replace("but avoids contact", "but avoids any contact"))
    data = recipe_dict(copy, copy / "manifest.jsonl")
    data["rules"]["templates"] = str(templates)
    recipe = write_recipe(copy, data)
    dry, real, backend, diff = dry_then_real(copy, capsys, recipe=recipe)
    # the output to send is measured on the responses of the inputs kept from the last
    # run (none of them was looked up), not guessed as max_tokens
    assert "vqa tokens, " in dry.text and "no cached sample" not in dry.text, dry.text
    near = {c for c, lab in labels(copy).items() if lab == "Near-Collision"}
    assert diff["caption_metadata"] == near and diff["mcq"] == set()
    assert sent_clips(backend) == near  # the prompts made from the caption
    assert real["caption_vlm"][4] == "0" and int(real["vqa"][4]) == len(near)


def labels(root: Path) -> dict[str, str]:
    return {
        r["clip_id"]: r["label"]
        for r in read_config(root / "build", "caption_metadata", ["clip_id", "label"])
    }


def test_prompt_edit(copy, capsys):
    prompts = copy / "my_prompts"
    prompts.mkdir()
    text = (bundled("prompts") / "reasoning_vqa.jinja").read_text()
    edited = text.replace("{% block user %}", "{% block user %}Note: ")
    (prompts / "reasoning_vqa.jinja").write_text(edited)
    data = recipe_dict(copy, copy / "manifest.jsonl")
    data["generate"]["prompts"] = str(prompts)
    recipe = write_recipe(copy, data)
    _dry, real, _backend, _diff = dry_then_real(copy, capsys, recipe=recipe)
    assert {s for s in SPLITS if real[s][4] != "0"} == {"reasoning_vqa"}
    assert int(real["reasoning_vqa"][4]) == int(real["reasoning_vqa"][2])


def test_parser_edit_reparses_and_the_dry_run_counts_the_rows(copy, capsys, monkeypatch):
    from vlm_autodrive.builders.generate.parsing import ParseError
    from vlm_autodrive.builders.generate.tasks import reasoning_vqa

    original = reasoning_vqa.ReasoningVqa.parse

    def stricter(self, completion, clip, sample, common, taxonomy):
        if clip.label == "Collision":
            raise ParseError("the new rule refuses Collision clips")
        return original(self, completion, clip, sample, common, taxonomy)

    monkeypatch.setattr(reasoning_vqa.ReasoningVqa, "parse", stricter)
    dry, _real, backend, diff = dry_then_real(copy, capsys)
    assert backend.requests == []
    collision = {c for c, lab in labels(copy).items() if lab == "Collision"}
    assert collision and diff["reasoning_vqa"] == collision
    assert int(dry["reasoning_vqa"][7]) == len(collision)  # rows chg


def test_retry_failed(copy, capsys):
    prompts = copy / "my_prompts"
    prompts.mkdir()
    text = (bundled("prompts") / "vqa.jinja").read_text()
    (prompts / "vqa.jinja").write_text(text.replace("{% block user %}", "{% block user %}Now: "))
    data = recipe_dict(copy, copy / "manifest.jsonl")
    data["generate"]["prompts"] = str(prompts)
    recipe = write_recipe(copy, data)

    def garble(req):  # half of the vqa answers are broken
        return "questions" in json.dumps(req.constraint or {}) and req.sampling.seed % 2

    code, _first = build(recipe, Recording(garble=garble), capsys)
    failed = [
        f
        for f in read_config(copy / "build", "failures", ["config", "kind"])
        if f["config"] == "vqa"
    ]
    assert code == 3 and failed and {f["kind"] for f in failed} == {"parse"}
    _dry, real, _backend, _diff = dry_then_real(copy, capsys, "--retry-failed", recipe=recipe)
    # vqa re-sends its failed requests (the other splits their own parse failures).
    assert int(real["vqa"][4]) == len(failed)
    code, again = build(recipe, Recording(), capsys, "--retry-failed", "--dry-run")
    assert again["vqa"][4] == "0"  # its failures answered: nothing left to retry


def test_new_build_is_planned_from_the_manifest(tmp_path, base, capsys):
    shutil.copy2(base / "manifest.jsonl", tmp_path / "manifest.jsonl")
    recipe = write_recipe(tmp_path, recipe_dict(tmp_path, tmp_path / "manifest.jsonl"))
    silent = Recording()
    code, dry = build(recipe, silent, capsys, "--dry-run")
    assert code == 0 and silent.requests == [] and not (tmp_path / "build").exists()
    backend = Recording()
    code, real = build(recipe, backend, capsys)
    assert_predicted(dry, real)
    for split in SPLITS:
        assert real[split][4] == real[split][2], split
    # The scripted model answers A: the samples of clips whose answer is B or C are
    # revised, which the dry run could only bound (no sample drawn yet).
    assert dry["reasoning_revised"][4] == "0" and int(real["reasoning_revised"][4]) > 0
    assert dry.more["reasoning_revised"] >= int(real["reasoning_revised"][4])
    assert "reasoning_revised (independent check): " in real.text  # told apart from the revisions
    # docs/regenerate.md shows these two lines of this dry run
    page = (Path(__file__).parents[3] / "docs" / "regenerate.md").read_text()
    shown = [ln for ln in page.splitlines() if "with the 28 above" in ln or "up to 28" in ln]
    assert len(shown) == 2 and all(line in dry.text.splitlines() for line in shown)


def test_damaged_clips_are_re_cut_to_their_bytes_and_nothing_is_sent(copy, capsys):
    """A truncated, an emptied and a deleted clip: the chunk stage cuts their videos
    again, from the same inputs, into the bytes its parts recorded; the dry run knows
    that, so it predicts no request, and the run sends none."""
    clips = sorted((copy / "build" / "clips").rglob("*.mp4"))
    damaged = [clips[0], clips[len(clips) // 2], clips[-1]]
    damaged[0].write_bytes(damaged[0].read_bytes()[:500])
    damaged[1].write_bytes(b"")
    damaged[2].unlink()
    _dry, _real, backend, diff = dry_then_real(copy, capsys)
    assert backend.requests == [] and all(not d for d in diff.values())
    assert all(c.is_file() and c.stat().st_size > 500 for c in damaged)


@pytest.mark.parametrize("damage", ["truncate", "delete"])
def test_a_damaged_model_made_data_file_is_made_again(copy, capsys, damage):
    """A later stage's data file damaged or gone does not stop the earlier stages (they
    write the card, which counts every file's rows): the model splits make it again,
    the same bytes, from the cache."""
    path = next((copy / "build" / "data" / "caption_vlm").glob("test-*.parquet"))
    before = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(before[:100])
    else:
        path.unlink()
    # and an edit the rule splits (which write the card first) must redo
    v = event_video(copy, "Near-Collision")
    edit_manifest(copy, v["video_id"], label="Collision")
    recipe = copy / "recipe.yaml"
    code, dry = build(recipe, Recording(), capsys, "--dry-run")
    assert code == 0, dry.text
    backend = Recording()
    code, real = build(recipe, backend, capsys)
    assert code in (0, 3), real.text
    assert_predicted(dry, real)
    edit_manifest(copy, v["video_id"], label="Near-Collision")  # back: the old rows
    code, _again = build(recipe, Recording(), capsys)
    assert code in (0, 3) and path.read_bytes() == before


def test_new_build_from_a_sample_recipe(tmp_path, capsys):
    data = recipe_dict(tmp_path, tmp_path / "sample" / "manifest.jsonl")
    data["sample"] = {"videos": 3, "seed": 4, "duration": 6.0, "width": 96, "height": 64}
    recipe = write_recipe(tmp_path, data)
    silent = Recording()
    code, dry = build(recipe, silent, capsys, "--dry-run")
    # The sample was planned from a temporary copy: nothing here yet.
    assert code == 0 and silent.requests == [] and not (tmp_path / "sample").exists()
    code, real = build(recipe, Recording(), capsys)
    assert_predicted(dry, real)
    for split in SPLITS:
        assert real[split][4] == real[split][2], split
