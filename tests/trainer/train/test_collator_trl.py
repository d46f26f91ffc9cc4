"""`VideoSFTCollator` with a plain `trl.SFTTrainer`: the clip's pixels reach the model.

TRL 1.16 has no video column, so a plain SFTTrainer given the `mix-*` rows alone trains
on text tokens only. With the public collator (`vlm_autodrive.trainer.VideoSFTCollator`)
one real training step of the tiny random Qwen2.5-VL runs in `.venv-train`
(tests/trainer/check_collator_trl.py), and forward pre-hooks on the model and on its
vision tower record that `pixel_values_videos` arrived with a nonzero size.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.trainer.fixtures import CONFIG, REPO, TRAIN_PYTHON, make_build, mix, ok, run


def test_the_public_collator_imports_without_torch():
    code = (
        "import sys; from vlm_autodrive.trainer import VideoSFTCollator; "
        "print(VideoSFTCollator.__module__, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["vlm_autodrive.trainer.train.collator", "False"]


@pytest.mark.slow  # ~60-90 s on 2 cores: a real build, the tiny model, one training step
@pytest.mark.skipif(
    not TRAIN_PYTHON.exists(), reason="needs the training environment: make .venv-train/.installed"
)
def test_a_plain_sft_trainer_with_the_collator_feeds_video_pixels(tmp_path):
    build = make_build(tmp_path / "sample")
    mix(build)
    model = tmp_path / "tiny-qwen2_5_vl"
    ok(
        run(
            str(TRAIN_PYTHON),
            *("-m", "vlm_autodrive.builders.synthetic.tiny_models", "--kind", "vlm"),
            *("--out", str(model)),
        )
    )
    check = str(REPO / "tests" / "trainer" / "check_collator_trl.py")
    proc = ok(run(str(TRAIN_PYTHON), check, str(build), CONFIG, str(model), str(tmp_path / "out")))
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen["steps"] == 1 and seen["loss"] and seen["weights_moved"]
    videos = seen["forward_pixel_values_videos"]
    assert videos and all(shape is not None and shape[0] > 0 for shape in videos)
    assert seen["vision_tower_inputs"] and all(s[0] > 0 for s in seen["vision_tower_inputs"])
