"""Per-input reuse in the model splits (builders/generate/row_memo.py): after an edit
only the inputs it touches are parsed again, and the folder holds the bytes a build
from scratch (with the same responses cached) writes; a memo whose outputs were altered
is not used."""

from __future__ import annotations

import os
import shutil
import zlib
from dataclasses import replace
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.builders.small_builds import relabel_one_video, rule_build
from tests.doubles.scripted import ScriptedBackend
from vlm_autodrive.builders.core.taxonomy import load_taxonomy
from vlm_autodrive.builders.generate.config import GenerateConfig
from vlm_autodrive.builders.generate.stage import run_model_splits
from vlm_autodrive.builders.generate.tasks.base import ClipInput, ModelSplit, with_vlm_caption
from vlm_autodrive.resources import bundled

SPLITS = ("caption_vlm", "vqa", "reasoning_mcq", "reasoning_vqa", "reasoning_revised")
KEEP = ("ingest", "chunk", "clips", "cache")  # what a build from scratch starts from


def gen_config(max_output_chars: int | None = None) -> GenerateConfig:
    extra = {"max_output_chars": max_output_chars} if max_output_chars else {}
    splits = {name: {"model": "m", "n": 2 if name == "reasoning_mcq" else 1} for name in SPLITS}
    splits["vqa"].update(extra)
    return GenerateConfig.model_validate(
        {"models": {"m": {"model": "scripted", "revision": "1"}}, "configs": splits}
    )


def garbled(req) -> bool:
    """About one request in seven answered with broken JSON (failures to reuse too)."""
    return zlib.crc32(req.request_id.encode()) % 7 == 0


def model_splits(build: Path, gen: GenerateConfig, monkeypatch) -> tuple[list, int, int]:
    """The model splits of `build`; (reports, samples parsed, requests sent)."""
    parsed = []
    original = ModelSplit.checked_parse

    def counting(self, *args, **kwargs):
        parsed.append(self.name)
        return original(self, *args, **kwargs)

    backend = ScriptedBackend(garble=garbled)
    with monkeypatch.context() as m:
        m.setattr(ModelSplit, "checked_parse", counting)
        reports = run_model_splits(
            build, gen, load_taxonomy(), open_backend=lambda c, s: backend, progress=False
        )
    return reports, len(parsed), len(backend.sent)


def data(build: Path) -> dict[str, bytes]:
    """Every data file of the folder (names hold their content hash) with its bytes."""
    return {
        p.relative_to(build).as_posix(): p.read_bytes()
        for p in sorted(build.rglob("data/**/*.parquet"))
    }


def from_scratch(build: Path) -> None:
    for p in build.iterdir():
        if p.name not in KEEP:
            shutil.rmtree(p) if p.is_dir() else p.unlink()


@pytest.fixture
def base(tmp_path, monkeypatch) -> Path:
    build = rule_build(tmp_path / "base" / "build")
    model_splits(build, gen_config(), monkeypatch)
    return build


def copy(base: Path, tmp_path: Path, name: str) -> Path:
    out = tmp_path / name / "build"
    shutil.copytree(base, out, copy_function=shutil.copy2)
    return out


def reworded_templates(tmp_path: Path) -> Path:
    """A templates folder whose Collision event sentence says `hits`: the captions of the
    Collision clips change, the model splits' settings and templates do not."""
    folder = tmp_path / "templates"
    if not folder.exists():
        shutil.copytree(bundled("templates"), folder)
        event = folder / "captions" / "event.jinja"
        old = '"the ego vehicle collides with " ~ whom'
        assert old in event.read_text()
        event.write_text(event.read_text().replace(old, '"the ego vehicle hits " ~ whom'))
    return folder


EDITS = [
    "one video relabelled",
    "vqa's max_output_chars lowered",
    "Collision captions reworded",
    "one clip file touched",
]


@pytest.mark.parametrize("edit", EDITS)
def test_an_edit_reparses_what_it_touches_and_writes_the_bytes_of_a_build_from_scratch(
    base, tmp_path, monkeypatch, edit
):
    gen = gen_config(max_output_chars=300 if "max_output_chars" in edit else None)
    templates = reworded_templates(tmp_path) if "reworded" in edit else None
    results = {}
    for name in ("warm", "scratch"):
        build = copy(base, tmp_path, name)
        if "relabelled" in edit:
            relabel_one_video(build)
        if "touched" in edit:  # caption_vlm attaches the video: keyed on size and mtime
            clip = build / pq.read_table(build / "chunk" / "clips.parquet")["path"][0].as_py()
            os.utime(clip, ns=(clip.stat().st_atime_ns, clip.stat().st_mtime_ns + 10**9))
        if name == "scratch":
            from_scratch(build)
        rule_build(build, templates)
        results[name] = (build, *model_splits(build, gen, monkeypatch))
    (warm, w_reports, w_parsed, w_sent), (cold, c_reports, c_parsed, c_sent) = (
        results["warm"],
        results["scratch"],
    )
    assert data(warm) == data(cold)
    assert [(r.name, r.samples, r.kept, r.failed, r.rows) for r in w_reports] == [
        (r.name, r.samples, r.kept, r.failed, r.rows) for r in c_reports
    ]
    assert w_sent == c_sent
    assert any(r.failed.get("parse") for r in w_reports)  # failures were reused too
    if "relabelled" in edit or "touched" in edit:
        assert 0 < w_parsed < c_parsed / 10  # the edited video's inputs, not every input
    elif "reworded" in edit:  # the Collision clips' inputs (a minority), not every input
        assert 0 < w_parsed < c_parsed / 2
    else:
        # Every cached vqa answer (~590 characters) is now over the bound, as when new;
        # the other splits were reused.
        vqa = next(r for r in w_reports if r.name == "vqa")
        assert vqa.samples and vqa.failed == {"parse": vqa.samples}
        assert w_parsed < c_parsed


def test_a_memo_whose_outputs_were_altered_is_not_used(base, tmp_path, monkeypatch):
    build = copy(base, tmp_path, "altered")
    vqa = next((build / "data" / "vqa").glob("train-*.parquet"))
    table = pq.read_table(vqa)
    pq.write_table(table.slice(0, table.num_rows - 1), vqa)  # one row gone
    reports, parsed, sent = model_splits(build, gen_config(), monkeypatch)
    assert parsed == sum(r.samples - r.failed.get("render", 0) for r in reports)
    assert sent == 0
    assert data(build) == data(base)


def test_with_vlm_caption_is_replace():
    clip = ClipInput(
        "c1", "v1", "Collision", "train", "clips/c1.mp4", "/b/clips/c1.mp4", "a caption",
        None, "q?", ("A", "B"), "A", facts={"weather": ("rain",)}, cause_question="why?",
    )  # fmt: skip
    made = with_vlm_caption(clip, "a vlm caption")
    assert made == replace(clip, vlm_caption="a vlm caption")
    assert clip.vlm_caption is None  # the input itself is unchanged
