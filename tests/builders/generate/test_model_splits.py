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
from vlm_autodrive.builders.core.sections import ChunkConfig
from vlm_autodrive.builders.core.taxonomy import load_taxonomy
from vlm_autodrive.builders.dataset.folder import data_files, data_path
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


def gen_config(prompts: Path | None = None, n: int = 2, **splits: dict) -> GenerateConfig:
    """The three text splits on model `m`; `splits` adds keys to a split (or adds one)."""
    base = {
        "vqa": {"model": "m"},
        "reasoning_mcq": {"model": "m", "n": n, "temperature": 0.6, "seed": 1},
        "reasoning_vqa": {"model": "m"},
    }
    for name, extra in splits.items():
        base[name] = {**base.get(name, {"model": "m"}), **extra}
    return GenerateConfig.model_validate(
        {
            "prompts": str(prompts) if prompts else None,
            "models": {"m": {"model": "scripted", "revision": "1"}},
            "configs": base,
        }
    )


class Recording(ScriptedBackend):
    """A scripted backend that keeps every request it received."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.requests = []

    def generate(self, requests):
        requests = list(requests)
        self.requests += requests
        return super().generate(requests)


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
    for rel in data_files(build, config).values():  # train, then test
        out += pq.read_table(build / rel).to_pylist()
    return out


def test_rows_failures_and_counts(build):
    backend = ScriptedBackend()
    reports = run(build, backend)
    clips = len(rows(build, "caption_metadata"))
    v = reports["vqa"]
    assert v.clips == clips and v.kept == v.samples and v.rows == 5 * v.samples
    # one request per clip, even where captions are identical (scene-level clips)
    assert v.requests == v.clips and len(backend.sent) == sum(r.requests for r in reports.values())
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


def same_captions(build: Path) -> list[dict]:
    """Give every clip the same detailed caption; returns the caption_metadata rows."""
    import pyarrow as pa

    out = []
    for side in ("train", "test"):
        p = data_path(build, "caption_metadata", side)
        t = pq.read_table(p)
        i = t.schema.get_field_index("answer")
        t = t.set_column(i, "answer", pa.array(["A car drives on a dry road."] * len(t)))
        pq.write_table(t, p)
        out += t.to_pylist()
    return out


def test_one_request_per_clip_seeded_from_the_clip_unless_prompts_are_shared(build):
    clips = same_captions(build)
    backend = Recording()
    reports = run(build, backend)
    for name, r in reports.items():
        assert r.requests == r.clips == len(clips), name
    sent = [q for q in backend.requests if "questions" in json.dumps(q.constraint)]
    assert len({q.sampling.seed for q in sent}) == len(sent) == len(clips)
    assert len({json.dumps(q.messages) for q in sent}) < len(sent)  # same prompts, own seeds
    assert len({q.key_extra["clip"] for q in sent}) == len(clips)
    # Sharing is an option, and never across train and test.
    shared = Recording()
    got = run(build, shared, gen=gen_config(vqa={"share_prompts": True}))
    groups = {(c["label"], c["split"]) for c in clips}  # the vqa prompt: caption and label
    assert {lab for lab, side in groups if side == "test"} & {
        lab for lab, side in groups if side == "train"
    }, "the fixture needs a prompt on both sides"
    assert got["vqa"].requests == len(groups) < len(clips)
    assert got["reasoning_mcq"].sent == got["reasoning_vqa"].sent == 0
    vqa_rows = rows(build, "vqa")
    assert {r["clip_id"] for r in vqa_rows} == {c["clip_id"] for c in clips}


def test_retry_failed_works_any_number_of_times(build):
    def bad(req):
        return "questions" in json.dumps(req.constraint)  # every vqa answer is broken

    first = run(build, ScriptedBackend(garble=bad))["vqa"]
    failed = first.failed["parse"]
    assert failed == first.samples > 0
    seeds = []
    for _ in range(2):  # still broken: the next retry must send them all again
        again = Recording(garble=bad)
        r = run(build, again, retry_failed=True)["vqa"]
        assert r.sent == failed and r.failed == {"parse": failed}
        seeds.append({q.sampling.seed for q in again.requests})
    assert not seeds[0] & seeds[1]  # each attempt samples anew
    fixed = ScriptedBackend()
    r = run(build, fixed, retry_failed=True)["vqa"]
    assert r.sent == failed and r.failed == {} and r.kept == r.samples
    after = ScriptedBackend()
    assert run(build, after, retry_failed=True)["vqa"].failed == {} and after.sent == []


class FewChoices(ScriptedBackend):
    """Answers reasoning_mcq requests (n=2) with one choice or none, the rest fully."""

    def generate(self, requests):
        for i, resp in enumerate(super().generate(requests)):
            if resp.completions and len(resp.completions) == 2:
                resp.completions = resp.completions[: i % 2]
            yield resp


def cache_rows(build: Path) -> list[tuple]:
    import sqlite3

    with sqlite3.connect(build / "cache" / "responses.sqlite") as db:
        return db.execute("SELECT key, sample, length(text) FROM responses").fetchall()


def test_fewer_choices_than_n_are_errors_and_never_cached(build):
    reports = run(build, FewChoices())
    r = reports["reasoning_mcq"]
    assert r.failed == {"error": r.samples} and r.kept == 0
    errs = [f for f in rows(build, "failures") if f["config"] == "reasoning_mcq"]
    assert {f["reason"] for f in errs} == {
        "the backend returned 0 of 2 choices",
        "the backend returned 1 of 2 choices",
    }
    stored = {k for k, _, _ in cache_rows(build)}
    assert not stored & {f["request_id"] for f in errs}  # no partial response cached
    again = ScriptedBackend()
    r = run(build, again)["reasoning_mcq"]
    assert r.sent == r.requests and "error" not in r.failed
    assert reports["vqa"].sent > 0 and run(build, ScriptedBackend())["vqa"].sent == 0


class Huge(ScriptedBackend):
    def generate(self, requests):
        for resp in super().generate(requests):
            for c in resp.completions:
                if c.text.startswith('{"questions"'):
                    c.text = c.text + " " * 3_000_000  # a 3 MB completion
            yield resp


def test_an_oversized_output_is_a_failure_and_the_cache_keeps_only_the_limit(build):
    gen = gen_config(vqa={"max_output_chars": 5000})
    v = run(build, Huge(), gen=gen)["vqa"]
    assert v.failed == {"parse": v.samples} and v.rows == 0
    fails = [f for f in rows(build, "failures") if f["config"] == "vqa"]
    assert all("max_output_chars (5000)" in f["reason"] for f in fails)
    assert max(n for _, _, n in cache_rows(build)) <= 5000
    again = ScriptedBackend()
    assert run(build, again, gen=gen)["vqa"].failed == {"parse": v.samples}
    assert again.sent == []  # served from the cache, still too long
    # A larger limit: the stored prefix is not the whole answer, so it is sent again.
    bigger = ScriptedBackend()
    v = run(build, bigger, gen=gen_config(vqa={"max_output_chars": 10_000}))["vqa"]
    assert v.sent == v.requests and v.failed == {}


def test_recut_clips_resend_their_video_requests_and_nothing_else(build):
    gen = gen_config(caption_vlm={})
    first = run(build, ScriptedBackend(), gen=gen)
    assert first["caption_vlm"].sent == first["caption_vlm"].clips > 1
    clips = sorted((build / "clips").rglob("*.mp4"))
    # Re-cut: the same path, other pixels (another clip's bytes).
    clips[0].write_bytes(clips[1].read_bytes())
    backend = Recording()
    again = run(build, backend, gen=gen)
    assert again["caption_vlm"].sent == 1
    assert all(again[s].sent == 0 for s in ("vqa", "reasoning_mcq", "reasoning_vqa"))
    (req,) = backend.requests
    assert req.messages[-1]["content"][0]["video_url"]["url"].endswith(clips[0].name)


def test_every_split_key_is_read_or_rejected():
    with pytest.raises(ValueError, match="media_io_kwargs"):
        gen_config(caption_vlm={"fps": 2})
    with pytest.raises(ValueError, match="engine_args: not used with a server at base_urls"):
        GenerateConfig.model_validate(
            {"models": {"m": {"model": "x", "base_urls": ["http://h/v1"], "engine_args": {"a": 1}}}}
        )
    with pytest.raises(ValueError, match="base_urls: not used with backend vllm"):
        GenerateConfig.model_validate(
            {"models": {"m": {"model": "x", "backend": "vllm", "base_urls": ["http://h/v1"]}}}
        )


def test_import_rejects_non_strings_and_repeated_clips_with_their_line(tmp_path):
    from vlm_autodrive.builders.generate.inputs import read_import

    good = '{"clip_id": "a", "caption": "A road."}\n'
    p = tmp_path / "captions.jsonl"
    p.write_text(good + '\n{"clip_id": "b", "caption": ["x"]}\n')
    with pytest.raises(ValueError, match=r"captions.jsonl:3: caption must be a string, not list"):
        read_import(str(p))
    p.write_text(good + '{"clip_id": 7, "caption": "x"}\n')
    with pytest.raises(ValueError, match=r":2: clip_id must be a string, not int"):
        read_import(str(p))
    p.write_text(good + '{"clip_id": "b", "caption": "x"}\n' + good)
    with pytest.raises(ValueError, match=r":3: clip a again \(first on line 1\)"):
        read_import(str(p))
    p.write_text(good)
    assert read_import(str(p)) == {"a": "A road."}
