"""`autodrive export --format lmms-eval`: a task folder lmms-eval 0.7.3 loads, scored as
`autodrive eval` scores.

lmms-eval's task modules import torch, transformers, loguru, pytz, evaluate and more (not
in the core environment), so its loading steps are run here as its source does them:
`utils.load_yaml_config` (`yaml.full_load` with a `!function` constructor that imports
`utils.py` from the YAML's folder, `import_function`), `ConfigurableTask.download`
(`datasets.load_dataset(path=dataset_path, name=dataset_name)` on the build folder
itself), `doc_to_visual` / `doc_to_text` / `process_results` called with a doc of the test
split, and the metric as `evaluator_utils` aggregates it (the `score` of each item).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
from pathlib import Path

import datasets
import pyarrow.parquet as pq
import pytest
import yaml

from vlm_autodrive.builders.core.taxonomy import load_taxonomy
from vlm_autodrive.builders.dataset.folder import data_path
from vlm_autodrive.cli import main
from vlm_autodrive.trainer.eval.metrics import compute_metrics
from vlm_autodrive.trainer.eval.predictions import prediction_row
from vlm_autodrive.trainer.eval.runners.base import EvalItem


def load_task(path: Path) -> dict:
    """A task YAML as lmms_eval.utils.load_yaml_config(mode="full") loads it."""

    class Loader(yaml.FullLoader):
        pass

    def import_function(loader, node):
        *module, name = loader.construct_scalar(node).split(".")
        file = os.path.join(os.path.dirname(loader.name), f"{'.'.join(module)}.py")
        spec = importlib.util.spec_from_file_location(".".join(module), file)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return getattr(mod, name)

    Loader.add_constructor("!function", import_function)
    with open(path, "rb") as f:
        return yaml.load(f, Loader=Loader)


def replies_of(row: dict, i: int) -> str:
    """Replies of every kind the parser meets, cycled over the rows."""
    letters = "ABCDEFGH"[: len(row["options"])]
    wrong = next(x for x in letters if x != row["answer_letter"])
    kinds = [
        row["answer_letter"],
        f"({wrong})",
        f"<think>\nclose call\n</think>\n\n<answer>\n{row['answer_letter']}\n</answer>",
        f"<think>\nhmm\n</think>\n<answer>{wrong}</answer>",
        f"Answer: {row['label']}",
        "I cannot tell.",
        "<think>\nit goes on and on",
        f"{letters[0]} or {letters[-1]}",
    ]
    return kinds[i % len(kinds)]


def test_task_folder_loads_and_scores_as_autodrive_eval(build, tmp_path, capsys):
    out = tmp_path / "tasks"
    assert main(["export", str(build), "--format", "lmms-eval", "--out", str(out)]) == 0
    assert "--include_path" in capsys.readouterr().out
    gold_rows = pq.read_table(data_path(build, "mcq", "test")).to_pylist()
    normal = load_taxonomy().normal
    for mode in ("direct", "reasoning"):
        task = load_task(out / f"autodrive_mcq_{mode}.yaml")
        assert task["task"] == f"autodrive_mcq_{mode}"
        assert not (task.get("dataset_kwargs") or {}).get("video")  # no Hub download
        docs = datasets.load_dataset(path=task["dataset_path"], name=task["dataset_name"])[
            task["test_split"]
        ]
        assert [d["id"] for d in docs] == [r["id"] for r in gold_rows]
        scored, preds = [], []
        for i, doc in enumerate(docs):
            (clip,) = task["doc_to_visual"](doc)
            assert Path(clip).is_file() and clip == str(build / doc["video"])
            text = task["doc_to_text"](doc, {})
            assert text.startswith(doc["question"])
            assert ("<answer>" in text) == (mode == "reasoning")
            assert doc[task["doc_to_target"]] == doc["answer_letter"]
            reply = replies_of(doc, i)
            scored.append(task["process_results"](doc, [reply]))
            item = EvalItem("k", None, text, mode, 32)
            preds.append(prediction_row(item, doc, {"text": reply, "error": None}, "m", "t"))
        metrics = {m["metric"]: m for m in task["metric_list"]}
        assert task["cluster_key"] == "video_id"
        assert all(s["accuracy"]["video_id"] == d["video_id"] for s, d in zip(scored, docs))
        mean = metrics["accuracy"]["aggregation"]
        report = compute_metrics(
            [p["gold"] for p in preds],
            [p["prediction"] for p in preds],
            sorted({o for r in gold_rows for o in r["options"]}),
            normal,
        )
        assert mean([s["accuracy"] for s in scored]) == report["accuracy"]
        assert mean([s["binary_accuracy"] for s in scored]) == report["binary_accuracy"]
        assert sum(s["unparseable"] for s in scored) == report["unparseable"] > 0
        assert 0 < report["accuracy"] < 1  # the replies hit both sides


def test_a_config_without_options_is_refused(build, tmp_path, capsys):
    argv = ["export", str(build), "--format", "lmms-eval", "--out", str(tmp_path / "t")]
    assert main([*argv, "--config", "caption_metadata"]) == 2
    assert "multiple-choice config" in capsys.readouterr().err


LMMS_EVAL_PATH = os.environ.get("LMMS_EVAL_PYTHONPATH", "")


def _lmms_eval_python() -> str | None:
    """`.venv-train`'s python when lmms-eval imports there (with LMMS_EVAL_PYTHONPATH, a
    folder of its unpacked wheels, on the path); None otherwise."""
    from tests.trainer.fixtures import TRAIN_PYTHON

    if not TRAIN_PYTHON.exists():
        return None
    env = dict(os.environ, PYTHONPATH=LMMS_EVAL_PATH)
    probe = subprocess.run(
        [str(TRAIN_PYTHON), "-c", "import lmms_eval.api.task"], env=env, capture_output=True
    )
    return str(TRAIN_PYTHON) if probe.returncode == 0 else None


@pytest.mark.slow  # ~60 s: lmms-eval's TaskManager reads every bundled task YAML
def test_lmms_evals_own_task_manager_builds_and_scores_the_tasks(build, tmp_path):
    python = _lmms_eval_python()
    if python is None:
        pytest.skip(
            "lmms-eval does not import in .venv-train: set LMMS_EVAL_PYTHONPATH to a folder "
            "with lmms_eval 0.7.3 and pytz, loguru, tenacity, evaluate, sacrebleu, "
            "portalocker, tabulate, colorama, lxml, requests, urllib3, certifi unpacked"
        )
    out = tmp_path / "tasks"
    assert main(["export", str(build), "--format", "lmms-eval", "--out", str(out)]) == 0
    docs = pq.read_table(data_path(build, "mcq", "test")).to_pylist()
    replies = {
        mode: {d["id"]: replies_of(d, i) for i, d in enumerate(docs)}
        for mode in ("direct", "reasoning")
    }
    (tmp_path / "replies.json").write_text(json.dumps(replies))
    check = Path(__file__).with_name("check_lmms_eval.py")
    env = dict(os.environ, PYTHONPATH=LMMS_EVAL_PATH, HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1")
    proc = subprocess.run(
        [python, str(check), str(out), str(tmp_path / "replies.json")],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert sorted(report) == ["autodrive_mcq_direct", "autodrive_mcq_reasoning"]
    for name, got in report.items():
        mode = name.rsplit("_", 1)[1]
        assert got["docs"] == [d["id"] for d in docs]
        assert got["visual"] == [str(build / docs[0]["video"])]
        preds = [
            prediction_row(EvalItem("k", None, "", mode, 32), d, {"text": replies[mode][d["id"]],
                           "error": None}, "m", "t")
            for d in docs
        ]  # fmt: skip
        classes = sorted({o for d in docs for o in d["options"]})
        gold, pred = [p["gold"] for p in preds], [p["prediction"] for p in preds]
        expected = compute_metrics(gold, pred, classes, load_taxonomy().normal)
        assert got["metrics"]["accuracy"] == expected["accuracy"]
        assert got["metrics"]["binary_accuracy"] == expected["binary_accuracy"]
        assert got["metrics"]["unparseable"] * len(docs) == pytest.approx(expected["unparseable"])
