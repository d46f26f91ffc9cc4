"""Statistics on a tiny real build (tests/builders/dataset/show_build.py: 6 synthetic
videos through every stage, the model splits answered by the scripted backend): the
yield and failures match the generation report, rows and letters add up, tokens come
from a local tokenizer.json when the recipe's model folder has one, and the same build
gives the same report and plot bytes."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.builders.dataset.show_build import make_show_build
from vlm_autodrive.builders.audit.stage import run_audit


@pytest.fixture(scope="module")
def build(tmp_path_factory) -> Path:
    return make_show_build(tmp_path_factory.mktemp("audit"))


def test_yield_rows_letters_and_videos_add_up(build):
    report = run_audit(build, plots=False)
    prov = json.loads((build / "provenance.json").read_text())
    counts = prov["stages"]["model_splits"]["counts"]

    yields = {(y.config, y.label): y for y in report.yields}
    for split, c in counts.items():
        y = yields[(split, "all")]
        assert (y.samples, y.kept, y.failures_by_kind) == (c["samples"], c["kept"], c["failed"])
        per_class = [v for (s, lab), v in yields.items() if s == split and lab != "all"]
        assert sum(v.samples for v in per_class) == y.samples
        assert sum(v.kept for v in per_class) == y.kept
        assert sum(sum(v.failures_by_kind.values()) for v in per_class) == sum(c["failed"].values())
    assert yields[("reasoning_mcq", "all")].top_reasons  # why they failed, in words

    for config, entry in prov["configs"].items():
        if config == "failures":
            continue
        total = sum(s["rows"] for s in entry["splits"].values())
        stats = {(s.side, s.label): s for s in report.config_stats if s.config == config}
        assert stats[("all", "all")].rows == total
        assert (
            sum(s.rows for (side, lab), s in stats.items() if side == "all" and lab != "all")
            == total
        )
        if config in ("mcq", "vqa", "reasoning_mcq", "reasoning_vqa"):
            assert sum(stats[("all", "all")].letters.values()) == total
        assert 0 < stats[("all", "all")].distinct_1 <= 1

    clips = pq.read_table(build / "chunk" / "clips.parquet").num_rows
    everything = next(v for v in report.videos if (v.side, v.label) == ("all", "all"))
    assert (everything.videos, everything.clips) == (6, clips)
    assert everything.source_hours == pytest.approx(6 * 8.0 / 3600, abs=1e-4)
    assert report.settings["tokens"] == "whitespace-separated words"


def test_tokens_are_counted_with_the_recipes_local_tokenizer(build, tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    folder = tmp_path / "tiny-text-model"
    folder.mkdir()
    tok = Tokenizer(models.BPE(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel()
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    trainer = trainers.BpeTrainer(
        vocab_size=300, initial_alphabet=alphabet, special_tokens=["[UNK]"]
    )
    tok.train_from_iterator(["the car ahead brakes hard"] * 5, trainer)
    tok.save(str(folder / "tokenizer.json"))
    prov_path = build / "provenance.json"
    saved = prov_path.read_text()
    prov = json.loads(saved)
    prov["recipe"] = {"generate": {"models": {"text": {"model": str(folder)}}}}
    prov_path.write_text(json.dumps(prov))
    try:
        report = run_audit(build, perceptual=False, plots=False)
    finally:
        prov_path.write_text(saved)
    assert report.settings["tokens"] == "tokens of tiny-text-model's tokenizer.json"
    words = {(s.config, s.side, s.label): s for s in run_audit(build, plots=False).config_stats}
    caption = ("caption_metadata", "all", "all")
    mine = {(s.config, s.side, s.label): s for s in report.config_stats}
    # a byte-level BPE trained on five words splits most caption words into several tokens
    assert mine[caption].answer_tokens_mean > words[caption].answer_tokens_mean


def test_same_build_same_report_and_plot_bytes(build):
    first = run_audit(build)
    names = ["report.json", "report.md", *(p.split("/")[-1] for p in first.plots)]
    assert {"blind_baselines.png", "answer_letters.png", "rows_per_class.png"} <= set(names)
    before = {n: (build / "audit" / n).read_bytes() for n in names}
    for n in names:
        (build / "audit" / n).unlink()
    run_audit(build)
    assert {n: (build / "audit" / n).read_bytes() for n in names} == before
    card = first.card_markdown()
    assert card.startswith("## Audit") and "| vqa | train |" in card
    page = first.html_summary()
    assert page["plots"] == first.plots and page["rows"]


def test_a_build_of_configs_only_is_audited_with_notes(tmp_path):
    """Configs without ingest or chunk tables, and a `failures` config of another shape
    (tests/builders/small_builds.py): audited, the missing tables named, no traceback."""
    from tests.builders.small_builds import small_build

    report = run_audit(small_build(tmp_path), plots=False)
    assert {b.config for b in report.baselines} == {"mcq", "reasoning_mcq"}
    assert report.yields == [] and report.videos == []
    assert "no ingest/videos.parquet: no video statistics or duplicates from it" in report.notes
