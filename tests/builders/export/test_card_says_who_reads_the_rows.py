"""The card of a build with a mixture says which trainers read the `mix-*` rows as they
are and which need the video collator or an export."""

from __future__ import annotations

import re


def test_card_names_the_collator_and_the_exports(build):
    card = re.sub(r"\s+", " ", (build / "README.md").read_text())
    assert "`autodrive train` reads them as they are" in card
    assert "`vlm_autodrive.trainer.VideoSFTCollator` as its `data_collator`" in card
    assert "never sees a pixel" in card
    for fmt in ("llamafactory", "cosmos-reason", "llava", "lmms-eval"):
        assert fmt in card
    assert "for TRL's `SFTTrainer`" not in card
