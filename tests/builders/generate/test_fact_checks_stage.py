"""The metadata and text-leak filters through the real stage: the QA's scripted model
(weather "Heavy snow", road "A parking lot", impact side "Rear" for every clip; traces
that cite "the description") no longer reaches the configs at full yield; every
rejected output is in `failures` as `filtered`, with its raw output and the reason, and
samples = kept + failures."""

from __future__ import annotations

import json

import pyarrow.parquet as pq

from tests.builders.generate.test_model_splits import TAX, build, gen_config, rule_build  # noqa: F401
from tests.doubles.scripted import ScriptedBackend
from vlm_autodrive.builders.dataset.folder import data_files
from vlm_autodrive.builders.generate.stage import run_model_splits


class ContraryBackend(ScriptedBackend):
    """The QA's scripted model: the event question right, the rest made up."""

    def _answer(self, req):
        text = super()._answer(req)
        if text.startswith('{"questions"'):
            event = json.loads(text)["questions"][0]
            made_up = [
                ("weather", "What is the weather?", ["Heavy snow", "Clear", "Fog"]),
                ("road_type", "Where is it?", ["A parking lot", "A highway", "A city street"]),
                ("impact_side", "Which side of the ego vehicle is hit?", ["Rear", "Front", "Left"]),
                ("blame", "Who is at fault?", ["The other driver", "The ego driver", "Unclear"]),
            ]
            qs = [
                {"dimension": d, "question": q, "options": o, "answer": "A"} for d, q, o in made_up
            ]
            return json.dumps({"questions": [event, *qs]})
        if "<think>" in text:
            return text.replace("The car ahead", "As the description says, the car ahead")
        return text


def rows(build, config):  # noqa: F811
    out = []
    for rel in data_files(build, config).values():
        if (build / rel).exists():
            out += pq.read_table(build / rel).to_pylist()
    return out


def test_contradicting_vqa_and_traces_citing_their_text_are_filtered_and_counted(build):  # noqa: F811
    reports = run_model_splits(
        build,
        gen_config(n=1),
        TAX,
        open_backend=lambda cfg, st: ContraryBackend(answer_letter="A"),
        progress=False,
    )
    by = {r.name: r for r in reports}
    failures = rows(build, "failures")
    vqa, mcq = by["vqa"], by["reasoning_mcq"]
    contrary = [f for f in failures if f["config"] == "vqa" and f["kind"] == "filtered"]
    assert contrary and all("contradicts the metadata" in f["reason"] for f in contrary)
    assert all(f["raw_output"].startswith('{"questions"') for f in contrary)
    assert vqa.kept < vqa.samples == vqa.kept + sum(vqa.failed.values())
    # Every vqa output kept is one whose clip the made-up answers happen to fit.
    kept = rows(build, "vqa")
    assert len({r["clip_id"] for r in kept}) == vqa.kept
    # The traces: a wrong answer is filtered as before, a right one for citing its text.
    leaks = [
        f for f in failures if f["config"] == "reasoning_mcq" and "cites the text" in f["reason"]
    ]
    assert leaks and all("the description" in f["raw_output"] for f in leaks)
    assert rows(build, "reasoning_mcq") == [] and mcq.kept == 0
    assert mcq.samples == sum(mcq.failed.values())
