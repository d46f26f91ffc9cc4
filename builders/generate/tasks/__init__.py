"""The model-made splits, in the order they are built (later ones read earlier ones).

Adding a split: a module with a `ModelSplit` subclass and `SPLIT`, one line here, a test.
"""

from vlm_autodrive.builders.generate.tasks import caption_vlm, reasoning_mcq, reasoning_vqa, vqa

MODEL_SPLITS = {
    s.name: s for s in (caption_vlm.SPLIT, vqa.SPLIT, reasoning_mcq.SPLIT, reasoning_vqa.SPLIT)
}
