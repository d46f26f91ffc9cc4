"""lmms-eval: a task folder for `--include_path`, scored as `autodrive eval` scores.

Out, in OUT: one task YAML per answer mode, `<task>_direct.yaml` and
`<task>_reasoning.yaml` (task `autodrive_<config>_<mode>`), `utils.py` and
`autodrive_task.json` (the dataset folder, the normal class, the system prompts). Each
YAML loads the build or release folder itself: `dataset_path` is the folder,
`dataset_name` the config, `test_split` the split (lmms-eval calls
`datasets.load_dataset(path=dataset_path, name=dataset_name)`); `dataset_kwargs.video`
is not set, since for a folder it would send lmms-eval to the Hub for the videos.

`utils.py` is a shim over this module's task functions, so lmms-eval's environment needs
this toolkit installed (`pip install vlm-autodrive`, no extras): the user text is the
`prompts/eval/<mode>.jinja` prompt `autodrive eval` renders, answers are read by the same
parser (`builders/core/answers.py`; in reasoning mode only a closed `<answer>` block, as
trainer/eval/predictions.py reads it), and a reply that is not one clear answer scores as
wrong (`unparseable`). Metrics: `accuracy` (with the clip's source video as lmms-eval's
`cluster_key`, for clustered standard errors), `binary_accuracy` (normal vs event) and
`unparseable` (share of replies without an answer), each a mean over the test rows as in
`autodrive eval`'s report. The system turn `autodrive eval` sends (`driving_assistant`
for direct, `driving_reasoner` for reasoning) goes in with lmms-eval's
`--system_instruction`; `autodrive_task.json` holds their texts.

Task YAML keys as lmms-eval 0.7.3 reads them (`api/task.py` `TaskConfig`,
`ConfigurableTask.download`, `doc_to_visual`/`doc_to_text`/`process_results`;
`utils.load_yaml_config` resolves `!function utils.<name>` to the `utils.py` beside the
YAML; `evaluator_utils` reads `score` and the `cluster_key` field of dict items).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from vlm_autodrive.builders.export.base import (
    ExportResult,
    ExportSource,
    refuse_overwriting,
    write_meta,
)

NAME = "lmms-eval"
DEFAULT_CONFIG = "mcq"
DEFAULT_SPLIT = "test"
MODES = ("direct", "reasoning")
SETTINGS = "autodrive_task.json"
MAX_NEW_TOKENS = {"direct": 32, "reasoning": 1024}  # autodrive eval's defaults
SYSTEM_PROMPTS = {"direct": "driving_assistant", "reasoning": "driving_reasoner"}
REQUIRED = ("clip_id", "label", "video", "question", "options", "answer_letter")

UTILS = '''\
"""lmms-eval task functions written by `autodrive export --format lmms-eval`.

They call vlm_autodrive (installed in this environment) so that prompts and answer
parsing are those of `autodrive eval`; the dataset folder and the normal class are in
autodrive_task.json beside this file.
"""

import json
from pathlib import Path

from vlm_autodrive.builders.export import lmmseval

SETTINGS = json.loads((Path(__file__).parent / "autodrive_task.json").read_text())


def doc_to_visual(doc):
    return lmmseval.doc_to_visual(doc, SETTINGS["dataset_root"])


def doc_to_text_direct(doc, lmms_eval_specific_kwargs=None):
    return lmmseval.doc_to_text(doc, "direct")


def doc_to_text_reasoning(doc, lmms_eval_specific_kwargs=None):
    return lmmseval.doc_to_text(doc, "reasoning")


def process_results_direct(doc, results):
    return lmmseval.process_results(doc, results, "direct", SETTINGS["normal"])


def process_results_reasoning(doc, results):
    return lmmseval.process_results(doc, results, "reasoning", SETTINGS["normal"])


def mean_score(items):
    return lmmseval.mean_score(items)
'''


def export(source: ExportSource, out: Path, *, clip_root: str | None = None) -> ExportResult:
    """Write the task folder for `source`'s config and split to `out` (see the module
    docstring). `clip_root`: the folder's path where lmms-eval runs (default: here)."""
    from vlm_autodrive.trainer.eval.data import eval_taxonomy
    from vlm_autodrive.trainer.eval.harness import load_system_turn

    if not source.rows:
        raise ValueError(f"{source.root}: config {source.config!r} has no {source.split} rows")
    missing = [c for c in REQUIRED if c not in source.rows[0]]
    if missing:
        raise ValueError(
            f"config {source.config!r} lacks {missing}: lmms-eval tasks are written for a "
            "multiple-choice config such as `mcq`"
        )
    taxonomy, _ = eval_taxonomy(None, source.root)
    task = f"autodrive_{source.config}".replace("-", "_")
    refuse_overwriting(out, NAME, [SETTINGS, "utils.py", *(f"{task}_{m}.yaml" for m in MODES)])
    out.mkdir(parents=True, exist_ok=True)
    settings = {
        "dataset_root": clip_root or str(source.root),
        "normal": taxonomy.normal,
        "system_prompts": {m: load_system_turn(n) for m, n in SYSTEM_PROMPTS.items()},
    }
    (out / SETTINGS).write_text(json.dumps(settings, indent=2, ensure_ascii=False) + "\n")
    (out / "utils.py").write_text(UTILS)
    files = [SETTINGS, "utils.py"]
    for mode in MODES:
        name = f"{task}_{mode}.yaml"
        text = task_yaml(f"{task}_{mode}", mode, source, settings["dataset_root"])
        (out / name).write_text(text)
        files.append(name)
    result = ExportResult(
        NAME,
        str(out),
        files,
        len(source.rows),
        source.config,
        source.split,
        f"lmms-eval --include_path {out} --tasks {task}_direct,{task}_reasoning "
        f"(system turn: --system_instruction, texts in {SETTINGS})",
    )
    write_meta(out, result, source, tasks=[f"{task}_{m}" for m in MODES])
    return result


def task_yaml(task: str, mode: str, source: ExportSource, folder: str) -> str:
    """One task's YAML reading `folder` (strings written as JSON, which YAML reads as
    they are)."""
    q = json.dumps
    return f"""\
# Written by `autodrive export --format lmms-eval`: {source.config} ({source.split}), {mode} mode.
task: {q(task)}
dataset_path: {q(folder)}
dataset_name: {q(source.config)}
test_split: {q(source.split)}
output_type: generate_until
doc_to_visual: !function utils.doc_to_visual
doc_to_text: !function utils.doc_to_text_{mode}
doc_to_target: answer_letter
generation_kwargs:
  max_new_tokens: {MAX_NEW_TOKENS[mode]}
  temperature: 0
  do_sample: false
process_results: !function utils.process_results_{mode}
cluster_key: video_id
metric_list:
  - metric: accuracy
    aggregation: !function utils.mean_score
    higher_is_better: true
  - metric: binary_accuracy
    aggregation: !function utils.mean_score
    higher_is_better: true
  - metric: unparseable
    aggregation: mean
    higher_is_better: false
metadata:
  version: 0.0
  autodrive_mode: {mode}
"""


# --- the task functions `utils.py` calls (run inside lmms-eval) -------------------------


def doc_to_visual(doc: dict[str, Any], root: str) -> list[str]:
    """The clip of a test row, as a path lmms-eval's video models open."""
    return [str(Path(root) / doc["video"])]


@cache
def _template(mode: str):
    from vlm_autodrive.trainer.eval.harness import load_mode_prompt

    return load_mode_prompt(mode, None)


def doc_to_text(doc: dict[str, Any], mode: str) -> str:
    """The user text `autodrive eval` sends in `mode` (prompts/eval/<mode>.jinja)."""
    from vlm_autodrive.trainer.eval.harness import render_mode_prompt

    return render_mode_prompt(_template(mode), doc["question"], list(doc["options"]))


def process_results(
    doc: dict[str, Any], results: list[str], mode: str, normal: str
) -> dict[str, Any]:
    """A reply scored as `autodrive eval` scores it: `accuracy` and `binary_accuracy` as
    `{"score", "video_id"}` items, `unparseable` as 0/1."""
    from vlm_autodrive.builders.core.answers import (
        UNPARSEABLE,
        option_texts_from_question,
        parse_answer,
    )
    from vlm_autodrive.trainer.eval.predictions import parse_closed_answer

    text = results[0] if results else ""
    options = list(doc["options"])
    texts = option_texts_from_question(doc["question"], len(options))
    if mode == "reasoning":
        parsed = parse_closed_answer(text, options, texts, None)
    else:
        parsed = parse_answer(text, options, texts)
    pred = parsed.prediction

    def side(label: str) -> str:
        # unparseable stays itself, so it matches neither side (as in trainer/eval/metrics)
        return label if label == UNPARSEABLE else ("normal" if label == normal else "event")

    video = doc.get("video_id") or doc["clip_id"]
    return {
        "accuracy": {"score": float(pred == doc["label"]), "video_id": video},
        "binary_accuracy": {"score": float(side(pred) == side(doc["label"])), "video_id": video},
        "unparseable": float(pred == UNPARSEABLE),
    }


def mean_score(items: list[Any]) -> float:
    """The mean of `score` items (or plain numbers): accuracy over the rows."""
    scores = [x["score"] if isinstance(x, dict) else float(x) for x in items]
    return sum(scores) / len(scores) if scores else 0.0
