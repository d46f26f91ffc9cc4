"""The model splits' stage stamp: a rebuild with nothing changed does no work.

In: the build folder, the pipeline's key of the stage's declared inputs
(builders/pipeline.py: the `generate:` settings that are inputs, the prompt folder and
import files by content, the taxonomy, every model by its weights and engine settings,
the code of the stage and everything it imports, the recorded outputs of rule_splits
and chunk), each split's loaded prompt. Out: the stage key (`model_splits_key`): the
declared key with what only a loaded split knows: the prompt templates as loaded
(bundled ones included), the word lists its parser read, the `parse` method in use, and
the clip files' state when a split attaches video.

With the same key and the outputs intact (`Stage.finished`), the stage returns the
reports stored in the stamp without rendering, looking up or parsing anything. A run
with `error` failures (responses never received) commits no stamp, so the next run
sends them again; `--retry-failed` never skips.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from vlm_autodrive.builders.core.stage import STAMP, Stage, content_key
from vlm_autodrive.builders.dataset.folder import DATA_DIR
from vlm_autodrive.builders.generate.config import GenerateConfig
from vlm_autodrive.builders.generate.report import SplitReport

STAGE = "model_splits"


def parser_fingerprint(split: Any) -> str:
    """A hash of the `parse` method `split` runs now (the module files are in the
    declared key already; this catches a parser replaced at run time)."""
    h = hashlib.sha256()
    _hash_code(h, type(split).parse.__code__)
    return h.hexdigest()


def _hash_code(h, code) -> None:
    """A code object's bytecode, names and constants, nested code objects by their own
    content (their repr holds a memory address, which differs from run to run)."""
    h.update(code.co_code + repr(code.co_names).encode())
    for c in code.co_consts:
        if hasattr(c, "co_code"):
            _hash_code(h, c)
        else:
            h.update(repr(c).encode())


def model_splits_key(
    build_dir: Path,
    gen: GenerateConfig,
    declared: str,
    splits: dict[str, Any],
    check: dict[str, Any] | None = None,
    file_states: dict[str, str] | None = None,
) -> str | None:
    """The stage key; None when the rule splits left no stamp (nothing to compare).
    `splits`: name -> (split, loaded template), after `prepare` (its word lists count);
    `check`: the independent check's template hash, when on; `file_states`: the clip
    files' `read_clip_file_states` when read already."""
    if not (build_dir / "rule_splits" / STAMP).exists():
        return None
    per_split = {
        name: {
            "prompt": template.sha256,
            "parser": parser_fingerprint(split),
            "word_lists": word_lists(split),
        }
        for name, (split, template) in splits.items()
    }
    video = any(s.needs_video and not gen.configs[n].import_file for n, (s, _) in splits.items())
    return content_key(
        {
            "declared": declared,
            "clip_files": _clip_file_states(build_dir, file_states) if video else None,
            "splits": per_split,
            "check": check,
        }
    )


def word_lists(split: Any) -> str | None:
    """The content of the word lists a split's parser read in `prepare` (facts.py): the
    fact phrases, the answer and subject words (`prompts/checks/fact_words.yaml`), the
    revision leaks and the text leaks (`checks/revision_leaks.txt`, `checks/text_leaks.txt`)."""
    lex = getattr(split, "lexicon", None)
    return content_key(lex.content()) if lex is not None else None


def _clip_file_states(build_dir: Path, states: dict[str, str] | None = None) -> str:
    """A hash of every clip file's size and modification time (`states`, or read now):
    a clip re-cut or replaced at the same path changes it."""
    if states is None:
        states = read_clip_file_states(build_dir)
    h = hashlib.sha256()
    for rel in sorted(states):
        h.update(f"{rel}\0{states[rel]}\n".encode())
    return h.hexdigest()


def read_clip_file_states(build_dir: Path) -> dict[str, str]:
    """`clip_file_states` of every clip of the clip table."""
    import pyarrow.parquet as pq

    from vlm_autodrive.builders.generate.clip_sources import clip_file_states

    paths = pq.read_table(build_dir / "chunk" / "clips.parquet", columns=["path"])
    return clip_file_states(build_dir, paths.column("path").to_pylist())


def model_outputs(build_dir: Path, names: list[str]) -> list[str]:
    """The data files the stage wrote for the configs `names`, relative to the build
    folder (found in each config's folder, whatever the files are called)."""
    out = []
    for name in names:
        folder = build_dir / DATA_DIR / name
        if folder.is_dir():
            out += [p.relative_to(build_dir).as_posix() for p in sorted(folder.glob("*.parquet"))]
    return out


def stored_reports(build_dir: Path, key: str | None) -> list[SplitReport] | None:
    """The reports of the last run when its key is `key` and its outputs are intact, as
    a rebuild would give them (every request cached, nothing sent); else None."""
    if key is None:
        return None
    done = Stage(build_dir, STAGE).finished(key)
    if done is None:
        return None
    out = []
    for d in done["reports"]:
        r = SplitReport(**d)
        r.cached, r.to_send, r.sent, r.seconds, r.completion_tokens = r.requests, 0, 0, 0.0, 0
        r.prompt_tokens_est = r.output_tokens_est = 0
        out.append(r)
    return out


def commit(
    build_dir: Path,
    key: str | None,
    names: list[str],
    reports: list[SplitReport],
    extra: dict[str, Any] | None = None,
):
    """Stamp the stage, unless a response is missing (an `error`) or there is no key;
    `extra`: more to keep in the stamp's summary (the row memo's sha256, row_memo.py)."""
    stage = Stage(build_dir, STAGE)
    if key is None or any(r.failed.get("error") for r in reports):
        stage.invalidate()
        return
    from vlm_autodrive.builders.pipeline import upstream_outputs

    summary = {"reports": [r.to_dict() for r in reports], **(extra or {})}
    # What it read, for publish to compare with the upstream stamps then.
    stage.commit(key, model_outputs(build_dir, names), summary, upstream_outputs(STAGE, build_dir))
