"""A tiny real build for the `autodrive show` tests: 6 synthetic videos of 8 s (96x64,
H.264) through ingest, chunk (4 s windows), the rule splits and every text and video
model split answered by the scripted backend (tests/doubles/scripted.py), so the folder
has clips, questions with options, reasoning, captions and failures. About 2 s."""

from __future__ import annotations

from pathlib import Path

from tests.doubles.scripted import ScriptedBackend
from vlm_autodrive.builders.clips.stage import run_chunk
from vlm_autodrive.builders.core.sections import ChunkConfig
from vlm_autodrive.builders.core.taxonomy import load_taxonomy
from vlm_autodrive.builders.generate.config import GenerateConfig
from vlm_autodrive.builders.generate.stage import run_model_splits
from vlm_autodrive.builders.ingest.stage import run_ingest
from vlm_autodrive.builders.rules.config import RuleSplitsConfig
from vlm_autodrive.builders.rules.stage import build_rule_splits
from vlm_autodrive.builders.synthetic.sample import generate_sample

SPLITS = {
    "vqa": {"model": "m"},
    "reasoning_mcq": {"model": "m", "n": 2, "temperature": 0.6, "seed": 1},
    "reasoning_vqa": {"model": "m"},
    "caption_vlm": {"model": "m"},
}


def make_show_build(root: Path, mode: str = "copy") -> Path:
    """The build folder `root/build` (the sample videos in `root/sample`), its clips cut
    in `mode` (`copy`, `reencode` or `smart`, the default and the demo's); returns it."""
    tax = load_taxonomy()
    manifest = generate_sample(root / "sample", 6, seed=2, duration=8.0, width=96, height=64)
    build = root / "build"
    run_ingest(manifest, build, tax, progress=False)
    run_chunk(build, ChunkConfig(window=4, stride=3.5, mode=mode), tax, progress=False)
    rules = RuleSplitsConfig(test_per_class=1, on_short="take_available")
    build_rule_splits(build, rules, tax, {})
    gen = GenerateConfig.model_validate(
        {"models": {"m": {"model": "scripted", "revision": "1"}}, "configs": SPLITS}
    )
    run_model_splits(
        build, gen, tax, open_backend=lambda cfg, st: ScriptedBackend(), progress=False
    )
    return build
