"""`autodrive eval`: ask a model each test clip's multiple-choice question and score it.

In: a model (a local folder for the transformers runner, or a served model behind an
OpenAI-compatible endpoint such as `vllm serve`), a dataset (a build/publish folder or a
Hub id `owner/name[@rev]`) and its MCQ config, answer modes (`direct`, `reasoning`).
Out, under `--out`:

- `outputs.jsonl`: every raw model output as it arrives, keyed by what produced it
  (model, runner, mode, prompt, clip, video and token settings). A re-run generates only
  what is missing, so a killed eval resumes, and a changed parse rule re-scores stored
  outputs without loading the model. Failed requests are retried on the next run.
  `runner.json` records the runner that made them (device, versions, server).
- `predictions.parquet`: one row per clip and mode: gold, raw output, parsed answer,
  parse status and rule.
- `report.json`, `report.md`: the paper's Table 2 (one row per mode), confusion matrices,
  parse outcomes; `confusion_<mode>.png`.

Every metric comes with a 95% bootstrap interval clustered by source video
(`bootstrap.py`); mode `blind` asks the direct question without the video. `autodrive
eval compare A B` puts runs side by side with the paired difference of each against the
first (interval, and McNemar's exact test on accuracy).

Over 400 lines: the run, its items and their keys, and the report assembly share the
eval config; predictions, metrics, reports and runners already live in their own modules.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vlm_autodrive.builders.core.answers import option_letters
from vlm_autodrive.builders.core.files import atomic_write_text, memoized_sha256
from vlm_autodrive.trainer.eval.data import (
    EvalData,
    balanced_subset,
    clips_hash,
    eval_taxonomy,
    open_dataset,
)
from vlm_autodrive.trainer.eval.model_identity import default_out_dir, model_identity
from vlm_autodrive.trainer.eval.predictions import prediction_row, write_predictions
from vlm_autodrive.trainer.eval.report import REPORT_FORMAT, UNPARSEABLE_RULE
from vlm_autodrive.trainer.eval.runners.base import EvalItem, Runner, RunnerOutput, VideoSettings

# `blind` asks the direct question without the video: what the text alone gives away.
MODES = ("direct", "reasoning", "blind")
PROMPT_OF = {"direct": "direct", "reasoning": "reasoning", "blind": "direct"}
DEFAULT_MAX_NEW_TOKENS = {"direct": 32, "reasoning": 1024, "blind": 32}
# The system turns of the bundled mixture recipes (builders/mix/recipe.py).
DEFAULT_SYSTEM_PROMPTS: dict[str, str | None] = {
    "direct": "driving_assistant",
    "reasoning": "driving_reasoner",
    "blind": "driving_assistant",
}
OUTPUTS = "outputs.jsonl"
RUNNER = "runner.json"
PREDICTIONS = "predictions.parquet"
EXIT_ERRORS = 3  # done, but some requests failed (scored as unparseable, listed)


@dataclass
class EvalConfig:
    """Everything one evaluation run needs; the CLI flags map one to one onto it.

    `runner`: `transformers` (in process), `vllm` (vLLM's in-process engine), `openai`
    (servers at `base_url`, comma-separated for replicas; without one, a vLLM server is
    started on 127.0.0.1 for `model`), or `auto` (openai when `base_url` is set, else
    transformers).
    `served_model`: the model name the server knows (default: `model`).
    `video_url`: `file` sends file:// URLs (the server needs read access to the clips
    and `--allowed-local-media-path` covering them), `data` sends the bytes inline.
    `max_new_tokens`: None uses 32 for direct and blind, 1024 for reasoning.
    `modes`: `direct`, `reasoning`, and `blind` (the direct question without the video).
    `system_prompts`: per mode, a bundled system prompt's name (`prompts/system/`), a file
    path, or None for no system turn; the defaults are the ones the bundled mixtures
    train with, so a model fine-tuned here is asked as it was taught.
    """

    model: str
    dataset: str
    config: str = "mcq"
    split: str = "test"
    modes: tuple[str, ...] = ("direct",)
    runner: str = "auto"
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    served_model: str | None = None
    video_url: str = "file"
    video: VideoSettings = field(default_factory=VideoSettings)
    out: Path | None = None
    limit: int | None = None
    max_new_tokens: int | None = None
    name: str | None = None
    taxonomy: Path | None = None
    prompts: Path | None = None
    device: str = "auto"
    dtype: str = "auto"
    concurrency: int = 8
    system_prompts: dict[str, str | None] = field(
        default_factory=lambda: dict(DEFAULT_SYSTEM_PROMPTS)
    )

    @property
    def runner_kind(self) -> str:
        if self.runner == "auto":
            return "openai" if self.base_url else "transformers"
        return self.runner

    @property
    def display_name(self) -> str:
        return self.name or Path(self.model.rstrip("/")).name or self.model

    def out_dir(self) -> Path:
        """`--out`, or the default folder of this model, dataset, config and split (one
        per org, name and revision of the model: `model_identity.default_out_dir`)."""
        return self.out or default_out_dir(self.model, self.dataset, self.config, self.split)


@dataclass
class EvalResult:
    """What a run wrote and did: the report dict, its folder, and the request counts."""

    out: Path
    report: dict[str, Any]
    generated: int
    reused: int
    errors: int


def run_eval(
    cfg: EvalConfig,
    log: Callable[[str], None] = print,
    runner_factory: Callable[[EvalConfig, Path], Runner] | None = None,
) -> EvalResult:
    """Run (or resume) one evaluation and write its outputs; see the module docstring.

    `runner_factory` replaces `make_runner` (tests pass a scripted runner). The model is
    only loaded when some outputs are missing.
    """
    for mode in cfg.modes:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; use {', '.join(MODES)} or both")
    data = open_dataset(cfg.dataset, cfg.config, cfg.split)
    taxonomy, origin = eval_taxonomy(cfg.taxonomy, data.root)
    log(f"[eval] taxonomy ({origin}): {', '.join(taxonomy.names)}")
    classes = _classes(data, taxonomy.names)
    rows = balanced_subset(data.rows, classes, cfg.limit)
    if not rows:
        raise ValueError(f"{cfg.dataset}: split {cfg.split!r} of {cfg.config!r} has no rows")
    if any(mode != "blind" for mode in cfg.modes):  # blind asks without the clips
        data.ensure_videos(rows)
    templates = {mode: load_mode_prompt(PROMPT_OF[mode], cfg.prompts) for mode in cfg.modes}
    systems = {mode: load_system_turn(_system_name(cfg, mode)) for mode in cfg.modes}
    out = cfg.out_dir()
    out.mkdir(parents=True, exist_ok=True)
    identity = model_identity(cfg.model, None, out)
    items = {}
    for mode in cfg.modes:
        for row in rows:
            item = _item(cfg, data, row, mode, templates[mode], systems[mode], identity)
            items[item.key] = (item, row)

    done = _read_outputs(out / OUTPUTS)
    todo = [it for key, (it, _) in items.items() if key not in done or done[key]["error"]]
    reused = len(items) - len(todo)
    log(
        f"[eval] {len(rows)} clips x {len(cfg.modes)} mode(s): {reused} outputs stored, "
        f"{len(todo)} to generate"
    )
    # With nothing to generate, the runner that made the stored outputs is the one to name.
    runner_info = _previous_runner(out) or {"kind": cfg.runner_kind}
    started = time.monotonic()
    if todo:
        runner = (runner_factory or make_runner)(cfg, data.root)
        runner_info = {"kind": cfg.runner_kind, **runner.describe()}
        # Kept beside the outputs, so a later re-scoring (maybe in another environment)
        # still names the runner that produced them.
        atomic_write_text(out / RUNNER, json.dumps(runner_info, indent=2) + "\n")
        try:
            _generate(runner, todo, out / OUTPUTS, done, log)
        finally:
            runner.close()
    seconds = time.monotonic() - started

    preds = [
        prediction_row(item, row, done.get(key), cfg.display_name, templates[item.mode].ref)
        for key, (item, row) in items.items()
    ]
    errors = sum(p["parse_status"] == "error" for p in preds)
    write_predictions(preds, out / PREDICTIONS)
    report = _build_report(cfg, data, rows, classes, taxonomy.normal, preds, templates, systems)
    report["runner"] = runner_info
    report["timing"] = {"generated": len(todo), "reused": reused, "seconds": round(seconds, 3)}
    _write_reports(report, out)
    if errors:
        log(f"[eval] {errors} request(s) failed; they count as unparseable. Run again to retry.")
    return EvalResult(out, report, len(todo), reused, errors)


def _previous_runner(out: Path) -> dict[str, Any] | None:
    try:
        return json.loads((out / RUNNER).read_text())
    except (OSError, ValueError):
        return None


def make_runner(cfg: EvalConfig, media_root: Path) -> Runner:
    """The runner `cfg` asks for (imports only that runner's dependencies); `media_root`
    is the folder the clips are under, which a vLLM engine or server must be allowed to
    read."""
    from vlm_autodrive.environments import command_args, require_environment

    kind = cfg.runner_kind
    fallback = ["--model", str(cfg.model), "--dataset", str(cfg.dataset), "--runner", kind]
    if kind == "transformers":
        # torch and transformers with torchvision: the training environment's.
        modules = ("torch", "torchvision", "transformers")
        require_environment("train", modules, command_args("eval", fallback))
        from vlm_autodrive.trainer.eval.runners.transformers_runner import TransformersRunner

        return TransformersRunner(cfg.model, cfg.video, device=cfg.device, dtype=cfg.dtype)
    if kind in ("vllm", "openai"):
        if kind == "vllm":  # the in-process engine; openai's local server finds its own python
            require_environment("vllm", ("vllm",), command_args("eval", fallback))
        from vlm_autodrive.trainer.eval.runners.backend_runner import BackendRunner, backend_config

        urls = [u.strip() for u in (cfg.base_url or "").split(",") if u.strip()]
        backend = backend_config(
            kind,
            cfg.model,
            cfg.video,
            media_root,
            base_urls=urls,
            served_model=cfg.served_model,
            api_key_env=cfg.api_key_env,
            concurrency=cfg.concurrency,
        )
        return BackendRunner(backend, cfg.video, cfg.video_url)
    raise ValueError(f"unknown runner {kind!r}; use transformers, vllm or openai")


# --- items, outputs and predictions --------------------------------------------------------


def _classes(data: EvalData, taxonomy_names: list[str]) -> list[str]:
    """The classes the questions offer, in the taxonomy's order; every label among them."""
    offered = {o for r in data.rows for o in r["options"]}
    unknown = sorted(offered - set(taxonomy_names))
    if unknown:
        raise ValueError(f"options {unknown} are not in the taxonomy; pass --taxonomy")
    labels = {r["label"] for r in data.rows}
    if labels - offered:
        raise ValueError(f"labels {sorted(labels - offered)} are never offered as options")
    return [c for c in taxonomy_names if c in offered]


def load_mode_prompt(mode: str, folder: Path | None):
    """The user-turn template of an answer mode (`prompts/eval/<mode>.jinja`, or the one in
    `folder`), checked on a sample; the RL export renders the reasoning one too."""
    from vlm_autodrive.builders.core.jinja_env import load_template
    from vlm_autodrive.resources import bundled

    folders = [folder] if folder else []
    sample = {"question": "Q?\nA. x\nB. y", "options": [{"letter": "A", "name": "x"}]}
    return load_template(
        f"{mode}.jinja", [*folders, bundled("prompts", "eval")], ("question", "options"), [sample]
    )


def load_system_turn(name: str | None) -> str | None:
    """The system turn named `name` (a bundled prompt or a file); None for none."""
    if not name or name.lower() == "none":
        return None
    from vlm_autodrive.builders.mix.conversations import load_system_prompt

    return load_system_prompt(name)


def _item(
    cfg: EvalConfig,
    data: EvalData,
    row: dict[str, Any],
    mode: str,
    template,
    system: str | None,
    identity: str,
) -> EvalItem:
    prompt = render_mode_prompt(template, row["question"], row["options"])
    max_new = cfg.max_new_tokens or DEFAULT_MAX_NEW_TOKENS[mode]
    # The key names everything that shapes the output, so a changed setting regenerates:
    # the weights (retraining into the same folder), the prompt, the clip's bytes.
    # Blind: no video is sent, so neither the clip's bytes nor the video settings shape
    # the answer.
    video_path = None if mode == "blind" else data.video_path(row)
    ident = [
        cfg.runner_kind,
        cfg.served_model or cfg.model,
        identity,
        mode,
        system,
        prompt,
        row["video"],
        None if video_path is None else _clip_sha(video_path),
        None if video_path is None else cfg.video.as_dict(),
        max_new,
    ]
    key = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:24]
    return EvalItem(key, video_path, prompt, mode, max_new, system)


def _system_name(cfg: EvalConfig, mode: str) -> str | None:
    """The system prompt asked for `mode` (blind: the direct one unless it has its own)."""
    if mode in cfg.system_prompts:
        return cfg.system_prompts[mode]
    return cfg.system_prompts.get(PROMPT_OF[mode])


def _clip_sha(path) -> str | None:
    """The clip's content hash (None when it is not a local file, e.g. a URL)."""
    p = Path(str(path))
    return memoized_sha256(p) if p.is_file() else None


def render_mode_prompt(template, question: str, options: list[str]) -> str:
    """The user text of one MCQ row in a mode: the template with the question and the
    lettered options."""
    letters = option_letters(len(options))
    lettered = [{"letter": ltr, "name": n} for ltr, n in zip(letters, options)]
    return template.render({"question": question, "options": lettered})


def _read_outputs(path: Path) -> dict[str, dict[str, Any]]:
    done: dict[str, dict[str, Any]] = {}
    if not path.exists():
        return done
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by a kill mid-write: that item is generated again
        done[rec["key"]] = rec
    return done


def _generate(
    runner: Runner,
    todo: list[EvalItem],
    path: Path,
    done: dict[str, dict[str, Any]],
    log: Callable[[str], None],
) -> None:
    from tqdm import tqdm

    with path.open("a") as f, tqdm(total=len(todo), desc="eval", file=sys.stderr) as bar:
        for o in runner.generate(todo):
            rec = _output_record(o)
            f.write(json.dumps(rec) + "\n")
            f.flush()  # each answer is kept the moment it exists: a kill loses none
            done[o.key] = rec
            bar.update(1)


def _output_record(o: RunnerOutput) -> dict[str, Any]:
    return {
        "key": o.key,
        "text": o.text,
        "reasoning": o.reasoning,
        "error": o.error,
        "finish_reason": o.finish_reason,
    }


# --- report ------------------------------------------------------------------------------


def _build_report(
    cfg: EvalConfig,
    data: EvalData,
    rows: list[dict[str, Any]],
    classes: list[str],
    normal: str,
    preds: list[dict[str, Any]],
    templates: dict[str, Any],
    systems: dict[str, str | None],
) -> dict[str, Any]:
    from vlm_autodrive import __version__
    from vlm_autodrive.trainer.eval.bootstrap import bootstrap_intervals
    from vlm_autodrive.trainer.eval.metrics import compute_metrics

    per_class = Counter(r["label"] for r in rows)
    results = []
    bootstrap = None
    for mode in cfg.modes:
        mine = [p for p in preds if p["mode"] == mode]
        ok = [p for p in mine if p["parse_status"] == "ok"]
        gold, pred = [p["gold"] for p in mine], [p["prediction"] for p in mine]
        metrics = compute_metrics(gold, pred, classes, normal)
        intervals = bootstrap_intervals(gold, pred, [p["video_id"] for p in mine], classes, normal)
        bootstrap = intervals.pop("bootstrap")
        metrics["intervals"] = intervals
        results.append(
            {
                "mode": mode,
                "video_input": mode != "blind",
                # what guessing scores on these questions, for the blind row to beat
                "chance_accuracy": sum(1 / len(r["options"]) for r in rows) / len(rows),
                "prompt_template": templates[mode].ref,
                "system_prompt": _system_ref(_system_name(cfg, mode), systems[mode]),
                "max_new_tokens": cfg.max_new_tokens or DEFAULT_MAX_NEW_TOKENS[mode],
                "metrics": metrics,
                "parse_status": dict(Counter(p["parse_status"] for p in mine).most_common()),
                "parse_method": dict(Counter(p["parse_method"] for p in ok).most_common()),
                "confusion_png": f"confusion_{mode}.png",
            }
        )
    return {
        "format": REPORT_FORMAT,
        "toolkit_version": __version__,
        "name": cfg.display_name,
        "model": cfg.served_model or cfg.model,
        "dataset": {
            "source": data.source,
            "revision": data.revision,
            "config": data.config,
            "split": data.split,
            "rows": len(rows),
            "rows_in_split": len(data.rows),
            "limited": len(rows) < len(data.rows),
            "per_class": {c: per_class.get(c, 0) for c in classes},
            "clips_sha256": clips_hash(rows),
        },
        "classes": classes,
        "normal": normal,
        "video": cfg.video.as_dict(),
        "unparseable_rule": UNPARSEABLE_RULE,
        "bootstrap": bootstrap,
        "results": results,
        "files": {"predictions": PREDICTIONS, "outputs": OUTPUTS, "markdown": "report.md"},
    }


def _system_ref(name: str | None, text: str | None) -> str | None:
    """`name@hash12` of a system prompt, like template refs; None when none was sent."""
    if text is None:
        return None
    return f"{Path(str(name)).name}@{hashlib.sha256(text.encode()).hexdigest()[:12]}"


def _write_reports(report: dict[str, Any], out: Path) -> None:
    from vlm_autodrive.trainer.eval.report import report_markdown, write_confusion_png

    for res in report["results"]:
        acc = 100 * res["metrics"]["accuracy"]
        title = f"{report['name']}, {res['mode']}: accuracy {acc:.2f}%"
        write_confusion_png(res["metrics"], title, out / res["confusion_png"])
    atomic_write_text(out / "report.json", json.dumps(report, indent=2) + "\n")
    atomic_write_text(out / "report.md", report_markdown(report))
