"""The trained model's card (OUT/README.md, TRL's) names its base model and dataset,
not "fine-tuned version of [None]": the names `autodrive train` gives TRL's
`create_model_card`, in the core environment. tests/trainer/train/test_train.py (slow,
`.venv-train`) reads the card of a real run."""

from __future__ import annotations

from tests.trainer.fixtures import REPO
from vlm_autodrive.trainer.train.config import load_train_recipe
from vlm_autodrive.trainer.train.trainer import model_card_args


def test_a_hub_model_and_dataset_are_named_by_their_ids(tmp_path):
    recipe = load_train_recipe(REPO / "recipes/train/cosmos_reason1_7b.yaml", check_sft=False)
    args = model_card_args(recipe, tmp_path / "runs" / "cosmos-sft")
    assert args == {
        "base_model": "nvidia/Cosmos-Reason1-7B",
        "model_name": "cosmos-sft",
        "dataset_name": recipe.dataset.repo,
    }
    assert "/" in args["dataset_name"]


def test_local_folders_are_named_by_their_folder(tmp_path):
    recipe = load_train_recipe(REPO / "recipes/train/tiny_cpu.yaml", check_sft=False)
    local = recipe.model_copy(
        update={
            "model": recipe.model.model_copy(update={"path": str(tmp_path / "tiny-vlm")}),
            "dataset": recipe.dataset.model_copy(update={"path": str(tmp_path / "build")}),
        }
    )
    args = model_card_args(local, tmp_path / "out")
    assert args == {"base_model": "tiny-vlm", "model_name": "out", "dataset_name": "build"}
