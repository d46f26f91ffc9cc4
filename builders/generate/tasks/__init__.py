"""The model-made splits, in the order they are built (later ones read earlier ones).

Adding a split: a module with a `ModelSplit` subclass and `SPLIT`, one line here, a test.
"""

from vlm_autodrive.builders.generate.tasks import (
    caption_augmented,
    caption_vlm,
    cause_reasoning,
    reasoning_mcq,
    reasoning_revised,
    reasoning_vqa,
    short_qa,
    vqa,
)

MODEL_SPLITS = {
    s.name: s
    for s in (
        caption_vlm.SPLIT,
        vqa.SPLIT,
        reasoning_mcq.SPLIT,
        reasoning_vqa.SPLIT,
        reasoning_revised.SPLIT,  # reads the failures of reasoning_mcq
        short_qa.SPLIT,
        caption_augmented.SPLIT,
        cause_reasoning.SPLIT,
    )
}
