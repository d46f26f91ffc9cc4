"""Training recipes (trainer/train/config.py) and the dataset pre-flight (trainer/train/data.py),
in the core environment: no torch or TRL needed."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.trainer.fixtures import REPO, conversation, write_mixture
from vlm_autodrive.trainer.train.config import load_train_recipe
from vlm_autodrive.trainer.train.data import check_rows, config_files, load_rows

RECIPES = sorted((REPO / "recipes" / "train").glob("*.yaml"))


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_bundled_recipes_load_and_open_with_a_comment(path):
    from vlm_autodrive.trainer.rl.config import is_grpo_recipe, load_grpo_recipe

    assert path.read_text().startswith("# ")
    recipe = (load_grpo_recipe if is_grpo_recipe(path) else load_train_recipe)(path)
    assert recipe.output_dir


def test_paper_recipe_matches_the_paper():
    r = load_train_recipe(REPO / "recipes/train/cosmos_reason1_7b.yaml")
    assert r.model.id == "nvidia/Cosmos-Reason1-7B" and r.model.dtype == "bfloat16"
    assert r.dataset.revision and r.deepspeed == "recipes/deepspeed/zero3.json"
    assert (r.video.fps, r.video.max_frames) == (30, 180)
    assert r.global_batch_size == 8
    assert {k: r.sft[k] for k in ("learning_rate", "weight_decay", "num_train_epochs")} == {
        "learning_rate": 1e-5,
        "weight_decay": 0.01,
        "num_train_epochs": 1,
    }
    assert r.sft["bf16"] and r.sft["activation_checkpointing"]
    # global batch 8 whatever the GPU count
    assert [r.gradient_accumulation(n) for n in (1, 2, 8)] == [8, 4, 1]
    with pytest.raises(ValueError, match="not a multiple"):
        r.gradient_accumulation(3)


def write(tmp_path: Path, change) -> Path:
    data = yaml.safe_load((REPO / "recipes/train/tiny_cpu.yaml").read_text())
    change(data)
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d.update(epochs=1), "r.yaml: epochs: Extra inputs are not permitted"),
        (lambda d: d["video"].update(fsp=2), "video.fsp: Extra inputs"),
        (lambda d: d["video"].update(max_frames="many"), "video.max_frames: Input should be"),
        (lambda d: d["model"].update(id="x/y"), "model: give exactly one of"),
        (lambda d: d["dataset"].update(path=None, repo="org/data"), "needs a pinned `revision`"),
        (lambda d: d["dataset"].pop("config"), "dataset.config: Field required"),
        (lambda d: d["sft"].update(output_dir="x"), "sft.output_dir: set by the trainer wrapper"),
        (lambda d: d["sft"].update(packing=True), "sft.packing: set by the trainer wrapper"),
        (
            lambda d: d["sft"].update(gradient_accumulation_steps=2),
            "either global_batch_size or sft.gradient_accumulation_steps",
        ),
    ],
)
def test_bad_recipes_name_the_key(tmp_path, change, message):
    with pytest.raises(ValueError, match=None) as e:
        load_train_recipe(write(tmp_path, change))
    assert message in str(e.value)


def mixture(tmp_path: Path, rows: list[dict]) -> Path:
    root = tmp_path / "ds"
    (root / "clips").mkdir(parents=True)
    (root / "clips" / "a.mp4").write_bytes(b"x")  # existence is what the pre-flight checks
    write_mixture(root, rows)
    return root


def row(i: int, video: str = "clips/a.mp4", **overrides) -> dict:
    r = {"id": f"r{i}", "source_id": "s", "source_config": "mcq", "copy": 0, "clip_id": "c",
         "video_id": "v", "label": "Collision", "split": "train", "video": video,
         "messages": conversation(video, "Q?", "A")}  # fmt: skip
    r.update(overrides)
    return r


def test_preflight_accepts_a_good_mixture(tmp_path):
    root = mixture(tmp_path, [row(0), row(1)])
    files = config_files(root, "mix-quickstart", "train", where=str(root))
    assert check_rows(load_rows(files, cache_dir=str(tmp_path / "cache")), root) == 1


def test_preflight_names_missing_config_split_and_clips(tmp_path):
    root = mixture(tmp_path, [row(0), row(1, "clips/gone.mp4"), row(2, "../../etc/passwd")])
    with pytest.raises(ValueError, match=r"no config 'mix-x' .*configs there: mix-quickstart"):
        config_files(root, "mix-x", "train", where=str(root))
    with pytest.raises(ValueError, match=r"no split 'test' \(splits: train\)"):
        config_files(root, "mix-quickstart", "test", where=str(root))
    rows = load_rows(config_files(root, "mix-quickstart", "train", str(root)), str(tmp_path / "c"))
    with pytest.raises(ValueError, match=r"2 of 3 clip paths do not resolve") as e:
        check_rows(rows, root)
    assert "clips/gone.mp4 (row r1)" in str(e.value) and "../../etc/passwd" in str(e.value)


def test_preflight_refuses_rows_without_exactly_one_video(tmp_path):
    text_only = conversation("clips/a.mp4", "Q?", "A")
    text_only[1]["content"] = text_only[1]["content"][1:]
    root = mixture(tmp_path, [row(0), row(1, messages=text_only)])
    rows = load_rows(config_files(root, "mix-quickstart", "train", str(root)), str(tmp_path / "c"))
    with pytest.raises(ValueError, match=r"1 rows are not a conversation with one video part"):
        check_rows(rows, root)


class FakeHub:
    """Stands in for huggingface_hub's HfApi and snapshot_download (no network here)."""

    def __init__(self, root: Path, files: list[str], missing_revision: bool = False):
        self.root, self.files, self.missing_revision = root, files, missing_revision
        self.downloads: list[dict] = []

    def install(self, monkeypatch):
        import huggingface_hub

        hub = self

        class Api:
            def list_repo_files(self, repo, repo_type, revision):
                assert repo_type == "dataset"
                if hub.missing_revision:
                    import httpx2
                    from huggingface_hub.errors import RevisionNotFoundError

                    request = httpx2.Request("GET", "http://localhost/")
                    raise RevisionNotFoundError(
                        "gone", response=httpx2.Response(404, request=request)
                    )
                return hub.files

        def snapshot_download(repo, **kwargs):
            hub.downloads.append(kwargs)
            return str(hub.root)

        monkeypatch.setattr(huggingface_hub, "HfApi", Api)
        monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)


def test_hub_dataset_is_pinned_and_downloads_its_config_and_clips(tmp_path, monkeypatch):
    from vlm_autodrive.builders.dataset.folder import data_file_rel
    from vlm_autodrive.trainer.train.config import DatasetSpec
    from vlm_autodrive.trainer.train.data import resolve_dataset

    files = ["README.md", "clips/a.mp4", data_file_rel("mcq", "train", "1" * 64),
             data_file_rel("mix-paper", "train", "2" * 64)]  # fmt: skip
    spec = DatasetSpec(repo="org/data", revision="v1.0.0", config="mix-paper")
    hub = FakeHub(tmp_path, files)
    hub.install(monkeypatch)
    root, parquet = resolve_dataset(spec)
    assert root == tmp_path and parquet == [tmp_path / files[3]]
    assert hub.downloads[0]["revision"] == "v1.0.0"
    assert hub.downloads[0]["allow_patterns"] == [files[3], "clips/**", "README.md"]

    with pytest.raises(ValueError, match=r"no config 'mix-x' in org/data@v1.0.0 .*mcq, mix-paper"):
        resolve_dataset(spec.model_copy(update={"config": "mix-x"}))
    with pytest.raises(ValueError, match=r"has no split .test. \(splits: train\)"):
        resolve_dataset(spec.model_copy(update={"split": "test"}))
    FakeHub(tmp_path, files, missing_revision=True).install(monkeypatch)
    with pytest.raises(ValueError, match=r"dataset.revision: 'v1.0.0' not found in org/data"):
        resolve_dataset(spec)


def test_autodrive_train_is_a_cli_command():
    """`autodrive train RECIPE [--output-dir] [--max-steps] [--resume]`, in the main CLI."""
    from vlm_autodrive.cli import _parser
    from vlm_autodrive.trainer.train.cli import run_train

    argv = ["train", "recipes/train/tiny_cpu.yaml", "--max-steps", "3", "--resume"]
    args = _parser().parse_args(argv)
    assert args.func is run_train and args.max_steps == 3 and args.resume
    assert args.output_dir is None and args.recipe == Path("recipes/train/tiny_cpu.yaml")


def test_a_hub_dataset_with_the_hub_off_is_a_named_error(tmp_path):
    """Offline (HF_HUB_OFFLINE, read when huggingface_hub is imported: a fresh process),
    a Hub dataset is a message naming dataset.repo, not the Hub client's traceback."""
    import os
    import subprocess
    import sys

    script = (
        "from vlm_autodrive.trainer.train.config import DatasetSpec\n"
        "from vlm_autodrive.trainer.train.data import resolve_dataset\n"
        "resolve_dataset(DatasetSpec(repo='acme/dashcam', revision='v1.0.0', config='mix'))\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("ValueError: dataset.repo: acme/dashcam@v1.0.0: the Hub is off")
