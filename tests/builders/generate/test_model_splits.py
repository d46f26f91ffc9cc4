"""The model splits stage: cache, template edits, parser changes, failures, retries.

The engine here is scripted (a backend object that answers from the prompt), so these
tests check the pipeline's bookkeeping; the real vLLM engine and server are exercised
in test_backends.py.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.doubles.scripted import ScriptedBackend
from vlm_autodrive.builders.clips.stage import run_chunk
from vlm_autodrive.builders.core.recipe import ChunkConfig
from vlm_autodrive.builders.core.taxonomy import load_taxonomy
from vlm_autodrive.builders.generate.config import GenerateConfig
from vlm_autodrive.builders.generate.parsing import ParseError
from vlm_autodrive.builders.generate.report import format_reports
from vlm_autodrive.builders.generate.stage import run_model_splits
from vlm_autodrive.builders.generate.tasks import vqa
from vlm_autodrive.builders.ingest.stage import run_ingest
from vlm_autodrive.builders.rules.config import RuleSplitsConfig
from vlm_autodrive.builders.rules.stage import build_rule_splits
from vlm_autodrive.builders.synthetic.sample import generate_sample
from vlm_autodrive.resources import bundled

TAX = load_taxonomy()


@pytest.fixture(scope="module")
def rule_build(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ms")
    manifest = generate_sample(root / "sample", 6, seed=2, duration=8.0, width=96, height=64)
    build = root / "build"
    run_ingest(manifest, build, TAX, progress=False)
    run_chunk(build, ChunkConfig(window=4, stride=3.5, mode="copy"), TAX, progress=False)
    build_rule_splits(build, RuleSplitsConfig(test_per_class=1, on_short="take_available"), TAX, {})
    return build


@pytest.fixture
def build(rule_build, tmp_path) -> Path:
    dst = tmp_path / "build"
    shutil.copytree(rule_build, dst)
    return dst


def gen_config(prompts: Path | None = None, n: int = 2) -> GenerateConfig:
    return GenerateConfig.model_validate(
        {
            "prompts": str(prompts) if prompts else None,
            "models": {"m": {"model": "scripted", "revision": "1"}},
            "splits": {
                "vqa": {"model": "m"},
                "reasoning_mcq": {"model": "m", "n": n, "temperature": 0.6, "seed": 1},
                "reasoning_vqa": {"model": "m"},
            },
        }
    )


def run(build, backend, **kw):
    return {
        r.name: r
        for r in run_model_splits(
            build,
            kw.pop("gen", None) or gen_config(),
            TAX,
            open_backend=lambda cfg, st: backend,
            progress=False,
            **kw,
        )
    }


def rows(build, config):
    out = []
    for side in ("train", "test"):
        p = build / f"data/{config}/{side}-00000-of-00001.parquet"
        if p.exists():
            out += pq.read_table(p).to_pylist()
    return out


def test_rows_failures_and_counts(build):
    backend = ScriptedBackend()
    reports = run(build, backend)
    clips = len(rows(build, "caption_metadata"))
    v = reports["vqa"]
    assert v.clips == clips and v.kept == v.samples and v.rows == 5 * v.samples
    # identical captions (the scene-level clips of one video) share one request
    assert v.requests < v.clips and len(backend.sent) == sum(r.requests for r in reports.values())
    r = reports["reasoning_mcq"]
    assert r.samples == 2 * r.clips == r.kept + r.failed["filtered"]
    kept = rows(build, "reasoning_mcq")
    assert all(x["answer_letter"] == "A" for x in kept) and len(kept) == r.kept
    assert kept[0]["target"].startswith("<think>\nThe car ahead") and kept[0]["target"].endswith(
        "</think>\n\n<answer>\nA\n</answer>"
    )
    fails = rows(build, "failures")
    assert {f["kind"] for f in fails} == {"filtered"} and all(f["raw_output"] for f in fails)
    assert len(fails) == r.failed["filtered"]
    assert "rows" in format_reports(reports.values())
    prov = json.loads((build / "provenance.json").read_text())
    assert {"vqa", "reasoning_mcq", "reasoning_vqa", "failures", "mcq"} <= set(prov["configs"])


def test_rebuild_is_served_from_the_cache(build):
    run(build, ScriptedBackend())
    first = {c: rows(build, c) for c in ("vqa", "reasoning_mcq", "reasoning_vqa")}
    again = ScriptedBackend()
    reports = run(build, again)
    assert again.sent == [] and all(r.sent == 0 for r in reports.values())
    assert {c: rows(build, c) for c in first} == first


def test_template_edit_resends_only_the_rows_it_changed(build, tmp_path):
    run(build, ScriptedBackend())
    edited = tmp_path / "prompts"
    edited.mkdir()
    src = (bundled("prompts") / "reasoning_vqa.jinja").read_text()
    (edited / "reasoning_vqa.jinja").write_text(
        src.replace("Write one multiple-choice question", "Write one hard multiple-choice question")
    )
    backend = ScriptedBackend()
    reports = run(build, backend, gen=gen_config(edited))
    assert reports["vqa"].sent == reports["reasoning_mcq"].sent == 0
    assert reports["reasoning_vqa"].sent == reports["reasoning_vqa"].requests > 0
    assert len(backend.sent) == reports["reasoning_vqa"].requests


def test_parser_change_reparses_without_model_calls(build, monkeypatch):
    run(build, ScriptedBackend())
    original = vqa.Vqa.parse

    def stricter(self, completion, clip, sample, common, taxonomy):
        rows = original(self, completion, clip, sample, common, taxonomy)
        if len(rows) < 6:
            raise ParseError(f"{len(rows)} questions: the new rule wants 6")
        return rows

    monkeypatch.setattr(vqa.Vqa, "parse", stricter)
    backend = ScriptedBackend()
    reports = run(build, backend)
    assert backend.sent == []
    assert reports["vqa"].rows == 0 and reports["vqa"].failed == {"parse": reports["vqa"].samples}
    assert any("the new rule wants 6" in f["reason"] for f in rows(build, "failures"))


def test_retry_failed_resends_only_the_failures(build):
    def garble(req):  # about half of the vqa prompts get a broken answer
        return "questions" in json.dumps(req.constraint) and len(json.dumps(req.messages)) % 2

    reports = run(build, ScriptedBackend(garble=garble))
    bad = reports["vqa"].failed.get("parse", 0)
    assert 0 < bad < reports["vqa"].samples
    again = ScriptedBackend()
    plain = run(build, again)
    assert again.sent == [] and plain["vqa"].failed.get("parse") == bad  # cached garbage
    retry = ScriptedBackend()
    fixed = run(build, retry, retry_failed=True)
    assert fixed["vqa"].failed == {} and fixed["vqa"].kept == fixed["vqa"].samples
    assert len(retry.sent) == fixed["vqa"].sent < fixed["vqa"].requests
    assert fixed["reasoning_mcq"].sent == fixed["reasoning_vqa"].sent == 0
    after = ScriptedBackend()
    run(build, after)
    assert after.sent == []  # the successful attempt is now the one served


def test_backend_errors_become_failures_and_are_resent_next_time(build):
    reports = run(
        build, ScriptedBackend(error=lambda req: req.constraint and "regex" in req.constraint)
    )
    r = reports["reasoning_mcq"]
    assert r.failed == {"error": r.samples} and r.kept == 0
    errs = [f for f in rows(build, "failures") if f["kind"] == "error"]
    assert errs and all(f["attempts"] == 3 and "HTTP 500" in f["reason"] for f in errs)
    again = ScriptedBackend()
    reports = run(build, again)
    assert reports["reasoning_mcq"].sent == reports["reasoning_mcq"].requests
    assert reports["vqa"].sent == 0


def test_a_template_that_fails_for_one_clip_fails_only_that_clip(build, tmp_path):
    edited = tmp_path / "prompts"
    edited.mkdir()
    src = (bundled("prompts") / "vqa.jinja").read_text()
    (edited / "vqa.jinja").write_text(
        src.replace("{{ caption }}", "{{ (caption if 'night' not in caption else none).strip() }}")
    )
    reports = run(build, ScriptedBackend(), gen=gen_config(edited))
    v = reports["vqa"]
    assert 0 < v.failed["render"] < v.clips and v.kept == v.clips - v.failed["render"]
    fail = next(f for f in rows(build, "failures") if f["kind"] == "render")
    assert "UndefinedError" in fail["reason"] or "None" in fail["reason"]


def test_dry_run_counts_and_writes_nothing(build):
    before = sorted(p.name for p in (build / "data").iterdir())
    reports = run(build, ScriptedBackend(), dry_run=True)
    assert all(r.cached == 0 and r.to_send == r.requests for r in reports.values())
    assert all(r.prompt_tokens_est > 0 for r in reports.values())
    assert sorted(p.name for p in (build / "data").iterdir()) == before
    run(build, ScriptedBackend())
    dry = run(build, ScriptedBackend(), dry_run=True)
    assert all(r.to_send == 0 and r.cached == r.requests for r in dry.values())
    assert "to send" in format_reports(dry.values(), dry_run=True)
