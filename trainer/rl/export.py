"""`autodrive export-rl`: the MCQ train rows of a build (or a release folder) as RL prompts.

In: a dataset folder with the `data/<config>/<split>-*.parquet` layout (`autodrive build`,
`autodrive publish --to`), its `mcq` config and, when built, `reasoning_mcq`. Out: one
prompt row per distinct (clip, question), the gold letter beside it; the reasoning traces
of `reasoning_mcq` are not used (RL writes its own), its rows only add prompts.

Every row is asked as `autodrive eval` asks in reasoning mode, so a policy is trained
on the prompt it is scored on: the system turn `driving_reasoner`, then a user turn with
the clip's video part and the question rendered by `prompts/eval/reasoning.jinja` (think
in `<think>`, answer the letter in `<answer>`).

Row fields (both formats): `id`, `clip_id`, `label`, `source_config`, `question`,
`options` (class names in letter order), `answer` (the gold letter), `video` (the clip's
path: relative to the folder, or under `clip_root` when given) and `prompt` (system and
user turns; the user turn's video part is `{"type": "video", "video": <video>}`).

- `trl`: `OUT/train.parquet`, read with `datasets.load_dataset("parquet", ...)`: `prompt`
  is TRL's conversational prompt column; content parts are Arrow structs
  `{type, text, video}` as in the mixtures. TRL's GRPOTrainer takes images, not video,
  for VLMs: `autodrive train` with a GRPO recipe turns the video part into the clip's
  sampled frames (trainer/rl/trainer.py).
- `cosmos-rl`: `OUT/train.jsonl`, one JSON object a line, read by
  `trainer/rl/cosmos_rl_dataset.py` (cosmos-rl's custom-dataset entry point). Parts hold
  only their own keys; the video part also carries qwen-vl-utils' sampling keys (`fps`,
  `max_frames`, `max_pixels`) when given, and `video` is a `file://` URL under
  `clip_root` (cosmos-rl's rollout workers read it from their own file system).

`OUT/export.json` records the source, counts, the prompt and system hashes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

CONFIGS = ("mcq", "reasoning_mcq")
FORMATS = ("trl", "cosmos-rl")
SYSTEM_PROMPT = "driving_reasoner"
FILES = {"trl": "train.parquet", "cosmos-rl": "train.jsonl"}
COLUMNS = ("id", "clip_id", "label", "video", "question", "options", "answer_letter")


@dataclass
class ExportResult:
    """What an export wrote: the file, rows per source config, prompts deduplicated."""

    path: str
    format: str
    rows: int
    per_config: dict[str, int]
    duplicates: int
    per_label: dict[str, int] = field(default_factory=dict)


def prompt_rows(
    source: str | Path,
    *,
    split: str = "train",
    configs: tuple[str, ...] = CONFIGS,
    clip_root: str | None = None,
    video_kwargs: dict[str, Any] | None = None,
    url: bool = False,
) -> tuple[list[dict[str, Any]], dict[str, int], int]:
    """(prompt rows, rows read per config, duplicates dropped). Every config must exist
    but `reasoning_mcq`, taken when the folder has it. `clip_root` prefixes clip paths
    (default: relative to `source`); `url` writes the video part as a `file://` URL;
    `video_kwargs` go into the video part. Raises ValueError naming what is missing."""
    import pyarrow.parquet as pq

    from vlm_autodrive.trainer.eval.harness import (
        load_mode_prompt,
        load_system_turn,
        render_mode_prompt,
    )
    from vlm_autodrive.trainer.train.data import config_files

    root = Path(source)
    if not root.is_dir():
        raise ValueError(f"{root} is not a folder (a build or a release folder)")
    template = load_mode_prompt("reasoning", None)
    system = load_system_turn(SYSTEM_PROMPT)
    rows: list[dict[str, Any]] = []
    per_config: dict[str, int] = {}
    seen: set[tuple[str, str]] = set()
    duplicates = 0
    for config in configs:
        try:
            files = config_files(root, config, split, where=str(root))
        except ValueError:
            if config != "reasoning_mcq":
                raise
            continue  # only built when a reasoning model ran
        per_config[config] = 0
        for f in files:
            table = pq.read_table(f)
            missing = [c for c in COLUMNS if c not in table.column_names]
            if missing:
                raise ValueError(f"{f}: no column(s) {missing}: not an MCQ config")
            for r in table.select(list(COLUMNS)).to_pylist():
                per_config[config] += 1
                key = (r["video"], r["question"])
                if key in seen:
                    duplicates += 1
                    continue
                seen.add(key)
                video = f"{clip_root.rstrip('/')}/{r['video']}" if clip_root else r["video"]
                if url and "://" not in video:
                    video = Path(video).resolve().as_uri()
                text = render_mode_prompt(template, r["question"], r["options"])
                rows.append(
                    {
                        "id": r["id"],
                        "clip_id": r["clip_id"],
                        "label": r["label"],
                        "source_config": config,
                        "question": r["question"],
                        "options": list(r["options"]),
                        "answer": r["answer_letter"],
                        "video": video,
                        "prompt": prompt_turns(system, video, text, video_kwargs),
                    }
                )
    if not rows:
        raise ValueError(f"{root}: no {split} rows in {', '.join(per_config) or 'mcq'}")
    return rows, per_config, duplicates


def prompt_turns(
    system: str | None, video: str, text: str, video_kwargs: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """The prompt conversation: system turn (when any), then the video part and the text."""
    turns = []
    if system:
        turns.append({"role": "system", "content": [{"type": "text", "text": system}]})
    part = {"type": "video", "video": video, **(video_kwargs or {})}
    turns.append({"role": "user", "content": [part, {"type": "text", "text": text}]})
    return turns


def export_rl(
    source: str | Path,
    out: str | Path,
    fmt: str = "trl",
    *,
    split: str = "train",
    configs: tuple[str, ...] = CONFIGS,
    clip_root: str | None = None,
    video_kwargs: dict[str, Any] | None = None,
) -> ExportResult:
    """Write the prompt rows of `source` to `out` in `fmt` (see the module docstring)."""
    from collections import Counter

    from vlm_autodrive.builders.core.files import atomic_path

    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; use {' or '.join(FORMATS)}")
    if fmt == "cosmos-rl" and clip_root is None:
        clip_root = str(Path(source).resolve())
    rows, per_config, duplicates = prompt_rows(
        source,
        split=split,
        configs=configs,
        clip_root=clip_root,
        video_kwargs=video_kwargs if fmt == "cosmos-rl" else None,
        url=fmt == "cosmos-rl",
    )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / FILES[fmt]
    with atomic_path(path) as tmp:
        if fmt == "trl":
            _write_parquet(rows, tmp)
        else:
            with open(tmp, "w", encoding="utf-8") as f:
                for r in rows:
                    f.write(json.dumps(r, ensure_ascii=False) + "\n")
    per_label = dict(sorted(Counter(r["label"] for r in rows).items()))
    result = ExportResult(str(path), fmt, len(rows), per_config, duplicates, per_label)
    system = rows[0]["prompt"][0]["content"][0]["text"]
    meta = {
        **asdict(result),
        "source": str(source),
        "split": split,
        "clip_root": clip_root,
        "system_prompt": f"{SYSTEM_PROMPT}@{hashlib.sha256(system.encode()).hexdigest()[:12]}",
        "user_prompt": "prompts/eval/reasoning.jinja",
    }
    (out / "export.json").write_text(json.dumps(meta, indent=2) + "\n")
    return result


def _write_parquet(rows: list[dict[str, Any]], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from vlm_autodrive.builders.mix.conversations import PART_TYPE

    turn = pa.struct([("role", pa.string()), ("content", pa.list_(PART_TYPE))])
    schema = pa.schema(
        [
            *[(c, pa.string()) for c in ("id", "clip_id", "label", "source_config", "question")],
            ("options", pa.list_(pa.string())),
            ("answer", pa.string()),
            ("video", pa.string()),
            ("prompt", pa.list_(turn)),
        ]
    )
    full = [
        {
            **r,
            "prompt": [
                {
                    "role": t["role"],
                    "content": [
                        {"type": p["type"], "text": p.get("text"), "video": p.get("video")}
                        for p in t["content"]
                    ],
                }
                for t in r["prompt"]
            ],
        }
        for r in rows
    ]
    pq.write_table(pa.Table.from_pylist(full, schema=schema), path)
