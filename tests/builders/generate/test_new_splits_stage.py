"""The splits beyond the paper through the real stage (render, cache, parse, failures):
reasoning_revised reads this run's filtered reasoning_mcq failures, its independent check
moves unconfirmed revisions to the failures, counts are conserved, the yield before and
after revision is printed per class; cause_vqa rows come from the manifest's cause."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from tests.builders.generate.test_model_splits import TAX, rule_build  # noqa: F401 (fixture)
from tests.doubles.reviser import ReviserBackend
from vlm_autodrive.builders.dataset.folder import data_files
from vlm_autodrive.builders.generate.config import GenerateConfig
from vlm_autodrive.builders.generate.report import format_reports
from vlm_autodrive.builders.generate.stage import run_model_splits
from vlm_autodrive.builders.rules.config import RuleSplitsConfig
from vlm_autodrive.builders.rules.stage import build_rule_splits


def rows(build, config):
    out = []
    for rel in data_files(build, config).values():
        if (build / rel).exists():
            out += pq.read_table(build / rel).to_pylist()
    return out


@pytest.fixture
def build(rule_build, tmp_path):  # noqa: F811
    import shutil

    dst = tmp_path / "build"
    shutil.copytree(rule_build, dst)
    config = RuleSplitsConfig(
        configs=["mcq", "caption_metadata", "cause_vqa"],
        test_per_class=1,
        on_short="take_available",
    )
    build_rule_splits(dst, config, TAX, {}, force=True)
    return dst


def gen(check=True, **more):
    splits = {
        "reasoning_mcq": {"model": "m", "n": 2},
        "reasoning_revised": {"model": "m", **({"check": {"model": "m"}} if check else {})},
        "cause_reasoning": {"model": "m"},
        **more,
    }
    return GenerateConfig.model_validate(
        {"models": {"m": {"model": "scripted", "revision": "1"}}, "configs": splits}
    )


def run(build, backend, config, **kw):
    reports = run_model_splits(
        build, config, TAX, open_backend=lambda cfg, st: backend, progress=False, **kw
    )
    return {r.name: r for r in reports}, reports


def test_revisions_of_the_filtered_traces_with_the_check(build):
    # the check disagrees with every revision of a Collision clip
    clips = {r["clip_id"]: r["label"] for r in rows(build, "mcq")}
    backend = ReviserBackend(check_letter=lambda trace, truth: truth)
    by, reports = run(build, backend, gen())
    first, rev = by["reasoning_mcq"], by["reasoning_revised"]
    failures = rows(build, "failures")
    wrong = [f for f in failures if f["config"] == "reasoning_mcq" and f["kind"] == "filtered"]
    # one revision per filtered trace; the scripted model repeats its trace across a
    # clip's samples, and identical traces of a clip are revised once
    assert wrong and rev.samples == len({f["clip_id"] for f in wrong})
    mine = [f for f in failures if f["config"] == "reasoning_revised"]
    assert rev.samples == rev.kept + len(mine)
    leaks = [f for f in mine if "cites being told the answer" in f["reason"]]
    assert leaks and all(f["kind"] == "filtered" for f in leaks)
    kept = rows(build, "reasoning_revised")
    assert len(kept) == rev.kept == rev.samples - len(leaks)
    assert {r["revises"] for r in kept} <= {f["id"] for f in wrong}
    assert all(r["revised"] and r["answer_letter"] for r in kept)
    assert len({f["id"] for f in failures}) == len(failures)
    assert rev.checked == rev.samples - len(leaks)
    text = format_reports(reports)
    assert "before -> after revision" in text and "independent check" in text
    for label in set(clips.values()):
        n, k = first.by_class[label]
        wrong_clips = {f["clip_id"] for f in wrong if clips[f["clip_id"]] == label}
        assert rev.by_class.get(label, [0, 0])[0] == len(wrong_clips) <= n - k

    # a second run is served from the cache and gives the same rows
    again = ReviserBackend()
    run(build, again, gen())
    assert again.sent == [] and rows(build, "reasoning_revised") == kept


def test_the_check_removes_the_revisions_it_does_not_confirm(build):
    backend = ReviserBackend(
        leak_every=10**9, check_letter=lambda trace, truth: "C" if truth != "C" else "A"
    )
    by, _ = run(build, backend, gen())
    rev = by["reasoning_revised"]
    assert rev.samples > 0 and rev.kept == 0 and rows(build, "reasoning_revised") == []
    reasons = [f["reason"] for f in rows(build, "failures") if f["config"] == "reasoning_revised"]
    assert len(reasons) == rev.samples
    assert all(r.startswith("independent check answered") for r in reasons)


def test_without_the_check_every_clean_revision_is_kept(build):
    backend = ReviserBackend(leak_every=10**9)
    by, _ = run(build, backend, gen(check=False))
    rev = by["reasoning_revised"]
    assert rev.samples > 0 and rev.kept == rev.samples and rev.checked == 0


def test_dry_run_counts_the_new_splits_and_sends_nothing(build):
    backend = ReviserBackend()
    more = {"short_qa": {"model": "m"}, "caption_augmented": {"model": "m", "n": 3}}
    by, reports = run(build, backend, gen(**more), dry_run=True)
    assert backend.sent == []
    assert by["short_qa"].to_send == by["short_qa"].requests > 0
    assert by["caption_augmented"].requests == by["caption_augmented"].clips
    assert by["cause_reasoning"].clips == len(rows(build, "cause_vqa"))
    assert "short_qa" in format_reports(reports, dry_run=True)


def test_cause_vqa_rows_are_the_manifests_own_questions(build):
    cause = rows(build, "cause_vqa")
    mcq = {r["clip_id"]: r for r in rows(build, "mcq")}
    assert cause and all(mcq[r["clip_id"]]["label"] != "Normal Driving" for r in cause)
    for r in cause:
        assert len(r["options"]) == 5 and r["answer"].startswith(r["answer_letter"] + ". ")
        assert (
            r["question"].startswith("What is the cause of the")
            and r["generator"] == "rule:cause_vqa"
        )
    events = [r for r in mcq.values() if r["label"] != "Normal Driving"]
    assert len(cause) == len(events)  # every synthetic event video carries a cause


@pytest.mark.parametrize(
    "splits, match",
    [
        ({"vqa": {"model": "m", "check": {"model": "m"}}}, "only reasoning_revised has a check"),
        (
            {
                "reasoning_mcq": {"model": "m"},
                "reasoning_revised": {"model": "m", "check": {"model": "x"}},
            },
            "check.model",
        ),
        ({"reasoning_revised": {"model": "m"}}, "add reasoning_mcq"),
        (
            {
                "reasoning_mcq": {"model": "m"},
                "reasoning_revised": {"model": "m", "check": {"model": "m", "n": 2}},
            },
            "n must be 1",
        ),
        ({"short_qa": {"model": "m", "k": 3}}, r"configs.short_qa.k\n  Extra inputs"),
    ],
)
def test_bad_configs_name_the_key(splits, match):
    with pytest.raises(ValidationError, match=match):
        GenerateConfig.model_validate({"models": {"m": {"model": "x"}}, "configs": splits})


class GarbledRevisions(ReviserBackend):
    """Revisions answered with text that has no answer, until `fixed` is set."""

    fixed = False

    def _answer(self, req):
        content = req.messages[-1]["content"]
        if not self.fixed and "An earlier attempt reasoned" in content:
            return "<think>\nThe truck"
        return super()._answer(req)


def test_retry_failed_resends_only_the_revisions_that_did_not_parse(build):
    first = GarbledRevisions(leak_every=10**9)
    by, _ = run(build, first, gen())
    rev = by["reasoning_revised"]
    assert rev.samples > 0 and rev.failed == {"parse": rev.samples} and rev.kept == 0
    second = GarbledRevisions(leak_every=10**9)
    second.fixed = True
    by2, _ = run(build, second, gen(), retry_failed=True)
    # only the revisions are sent again, then one check each; reasoning_mcq is cached
    assert 0 < rev.requests == rev.samples and len(second.sent) == 2 * rev.requests
    assert by2["reasoning_mcq"].sent == 0 and by2["reasoning_revised"].kept == rev.samples
    assert len(rows(build, "reasoning_revised")) == rev.samples


def test_a_broken_word_list_stops_the_build_before_any_work(tmp_path, capsys):
    """`autodrive build` with an edited copy of the word lists missing a value: exit 2,
    one `autodrive: file: key: message` line, nothing built (checked before ingest)."""
    import yaml

    from vlm_autodrive.builders.synthetic.sample import generate_sample
    from vlm_autodrive.cli import main
    from vlm_autodrive.resources import bundled

    manifest = generate_sample(tmp_path / "sample", 2, seed=1, duration=4.0, width=64, height=48)
    prompts = tmp_path / "my_prompts" / "checks"
    prompts.mkdir(parents=True)
    words = (bundled("prompts") / "checks" / "fact_words.yaml").read_text()
    (prompts / "fact_words.yaml").write_text(
        words.replace("  dusk: [dusk, sunset, twilight]\n", "")
    )
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        yaml.safe_dump(
            {
                "manifest": str(manifest),
                "build_dir": "build",
                "chunk": {"window": 2.0, "stride": 1.0, "margin": 0.5},
                "rules": {"test_per_class": 1, "on_short": "take_available"},
                "generate": {
                    "prompts": str(tmp_path / "my_prompts"),
                    "models": {"m": {"model": "org/model", "base_urls": ["http://127.0.0.1:9/v1"]}},
                    "configs": {"short_qa": {"model": "m"}},
                },
            }
        )
    )
    capsys.readouterr()
    assert main(["build", str(recipe)]) == 2
    err = capsys.readouterr().err
    assert f"autodrive: {prompts / 'fact_words.yaml'}: light.dusk: need a non-empty list" in err
    assert "Traceback" not in err and not (tmp_path / "build").exists()
