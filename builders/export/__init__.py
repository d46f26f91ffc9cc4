"""`autodrive export`: a config of a build, release or Hub dataset in another tool's format.

Formats (one module each; adding one = a module with `NAME`, `DEFAULT_CONFIG`,
`DEFAULT_SPLIT` and `export(source, out, clip_root=...)`, an entry in `FORMATS`, a test):

- `llamafactory` (llamafactory.py): sharegpt JSON with `<video>` placeholders, `videos`
  and `dataset_info.json`;
- `lmms-eval` (lmmseval.py): a task folder for `--include_path`, scored as `autodrive
  eval` scores;
- `cosmos-reason` (cosmos_reason.py): a `datasets` folder with a `conversations` JSON
  column, for Cosmos-Reason's SFT;
- `llava` (llava.py): LLaVA-style JSON as Qwen-VL's finetune scripts read it.

The training formats take the folder's one `mix-*` config by default (or any config with
question, answer and video columns), split `train`; lmms-eval takes `mcq`, split `test`.
Every row of the config's split is written; `OUT/export.json` records what came from
where. TRL needs no export: its `SFTTrainer` takes the `mix-*` rows with
`vlm_autodrive.trainer.VideoSFTCollator` (trainer/train/collator.py).
"""

from __future__ import annotations

import importlib
from pathlib import Path

from vlm_autodrive.builders.export.base import ExportResult, check_clips, mix_configs, open_source

# format name -> module of this package
FORMATS = {
    "llamafactory": "llamafactory",
    "lmms-eval": "lmmseval",
    "cosmos-reason": "cosmos_reason",
    "llava": "llava",
}


def format_module(fmt: str):
    """The module of format `fmt`; ValueError naming the formats otherwise."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; formats: {', '.join(FORMATS)}")
    return importlib.import_module(f"{__name__}.{FORMATS[fmt]}")


def export(
    source: str | Path,
    fmt: str,
    out: str | Path,
    *,
    config: str | None = None,
    split: str | None = None,
    clip_root: str | None = None,
) -> ExportResult:
    """Export `config`/`split` of `source` (a build or release folder, or a Hub id
    `owner/name[@rev]`) to folder `out` in format `fmt`. Defaults: the format's config
    (`mix`: the folder's one `mix-*` config) and split. Raises ValueError or
    FileNotFoundError naming what is wrong (missing config, split or clips)."""
    module = format_module(fmt)
    config = config or module.DEFAULT_CONFIG
    if config == "mix":
        config = _the_mix_config(source)
    opened = open_source(source, config, split or module.DEFAULT_SPLIT)
    check_clips(opened)
    return module.export(opened, Path(out), clip_root=clip_root)


def _the_mix_config(source: str | Path) -> str:
    root = Path(source).expanduser()
    if not root.is_dir():
        raise ValueError(f"{source}: name the config with --config (e.g. mix-NAME)")
    mixes = mix_configs(root)
    if len(mixes) != 1:
        found = ", ".join(mixes) or "none (run `autodrive mix` first, or name any config)"
        raise ValueError(f"{source}: --config not given and mix-* configs here: {found}")
    return mixes[0]
