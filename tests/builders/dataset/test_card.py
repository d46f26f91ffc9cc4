"""The dataset card: a header the Hub accepts, Table 1 counts, provenance with models."""

from __future__ import annotations

import yaml
from huggingface_hub import DatasetCard

from tests.builders.small_builds import small_build
from vlm_autodrive.builders.core.files import read_json
from vlm_autodrive.builders.dataset.card import Release, render_card, size_category
from vlm_autodrive.builders.release.changelog import Changelog, ConfigChanges

SIZES = {
    "mcq": {"Collision": 2, "Near-Collision": 3, "Normal Driving": 5},
    "vqa": {"Collision": 4, "Near-Collision": 6, "Normal Driving": 8},
}


def test_card_header_counts_and_model_provenance(tmp_path):
    build = small_build(tmp_path, SIZES)
    prov = read_json(build / "provenance.json")
    prov["stages"]["model_splits"] = {
        "models": {
            "vqa": {
                "model": "meta-llama/Llama-3.1-70B-Instruct",
                "revision": "945c8663",
                "sampling": {"temperature": 0.0, "max_tokens": 1024},
            }
        },
        "prompts": {"vqa.jinja": "ab" * 32},
    }
    log = Changelog("0.2.0", "0.1.0", {"mcq": ConfigChanges(changed=["x1"], unchanged=12)})
    text = render_card(build, prov, Release("0.2.0", "org/drive", "cc-by-4.0", log))
    assert text == render_card(build, prov, Release("0.2.0", "org/drive", "cc-by-4.0", log))
    card = DatasetCard(text)
    assert card.data.license == "cc-by-4.0"
    assert card.data.size_categories == ["n<1K"]
    assert [c["config_name"] for c in card.data.configs] == ["mcq", "vqa"]
    assert next(c for c in card.data.configs if c["config_name"] == "mcq")["default"]
    assert "| config | Collision | Near-Collision | Normal Driving | total |" in text
    assert "| `vqa` | 4 | 6 | 8 | 18 |" in text and "| `vqa` | 3 | 3 | 3 | 9 |" in text
    assert "| all configs (no mixtures) | 6 | 9 | 13 | 28 |" in text
    assert (
        "model_splits: model for `vqa` `meta-llama/Llama-3.1-70B-Instruct` revision `945c8663` "
        '{"sampling": {"max_tokens": 1024, "temperature": 0.0}}' in text
    )
    assert "model_splits: prompt `vqa.jinja` sha256 `abababababab`" in text
    assert 'vqa = load_dataset("org/drive", "vqa", revision="v0.2.0")' in text
    assert "| `mcq` | 0 | 0 | 1 | 12 |" in text and "- `mcq` changed: `x1`" in text


def test_without_a_release_the_card_is_the_build_folders(tmp_path):
    build = small_build(tmp_path, SIZES)
    header = yaml.safe_load((build / "README.md").read_text().split("---\n")[1])
    assert header["license"] == "other" and header["license_name"] == "source-video-terms"
    assert {"video-text-to-text", "visual-question-answering"} <= set(header["task_categories"])
    text = (build / "README.md").read_text()
    assert 'load_dataset("path/to/this/folder", "mcq")' in text and "## Changelog" not in text
    assert [size_category(n) for n in (999, 1000, 99_999, 349_000, 2_000_000)] == [
        "n<1K", "1K<n<10K", "10K<n<100K", "100K<n<1M", "1M<n<10M",
    ]  # fmt: skip


def test_failed_samples_are_not_counted_in_the_configs_total(tmp_path):
    """The `failures` config (samples the models failed) is shown on its own line below
    the total, not added into it: a QA found 44 failed samples in a train total of 92."""
    sizes = {**SIZES, "failures": {"Collision": 7, "Near-Collision": 1, "Normal Driving": 1}}
    build = small_build(tmp_path, sizes)
    text = render_card(build, read_json(build / "provenance.json"))
    train = text.split("**train**")[1].split("**test**")[0]
    assert "| all configs (no mixtures, no failures) | 6 | 9 | 13 | 28 |" in train, train
    assert "| `failures` (failed samples) | 7 | 1 | 1 | 9 |" in train
    assert train.index("| all configs") < train.index("| `failures`")
