"""`autodrive eval` end to end on a real built sample.

- With a scripted runner (core `.venv`, fast): unparseable answers and runner errors are
  counted, a re-run resumes and re-scores stored outputs without loading the model,
  `--limit` is class-balanced, `eval compare` puts runs side by side.
- With the tiny random Qwen2.5-VL through the transformers runner (`.venv-train`, run as
  a subprocess because pytest runs in `.venv`; slow): the numbers are noise, the
  outputs must be complete and well-formed.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.trainer.fixtures import REPO, TRAIN_PYTHON, make_build
from vlm_autodrive.builders.core.answers import STATUSES, UNPARSEABLE
from vlm_autodrive.builders.dataset.folder import data_path
from vlm_autodrive.trainer.eval import cli as eval_cli
from vlm_autodrive.trainer.eval.harness import EvalConfig, run_eval
from vlm_autodrive.trainer.eval.runners.base import RunnerOutput

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
COLUMNS = {
    "id", "clip_id", "video_id", "video", "mode", "model", "gold", "gold_letter", "options",
    "raw_output", "reasoning", "finish_reason", "prediction", "parsed_letter",
    "parse_status", "parse_method", "parse_detail", "correct", "prompt_template",
}  # fmt: skip


@pytest.fixture(scope="module")
def build(tmp_path_factory) -> Path:
    return make_build(tmp_path_factory.mktemp("eval") / "sample")


def mcq_test_rows(build: Path) -> list[dict]:
    return pq.read_table(data_path(build, "mcq", "test")).to_pylist()


class Scripted:
    """A runner answering from a function of (item, row gold letter); counts calls."""

    model_id = "scripted"

    def __init__(self, answer):
        self.answer = answer
        self.seen: list[str] = []

    def describe(self):
        return {"scripted": True}

    def generate(self, items):
        for it in items:
            self.seen.append(it.key)
            text = self.answer(it)
            if isinstance(text, Exception):
                yield RunnerOutput(it.key, "", error=str(text))
            else:
                yield RunnerOutput(it.key, text, finish_reason="stop")

    def close(self):
        pass


def gold_letter(build: Path, item) -> str:
    row = next(r for r in mcq_test_rows(build) if (build / r["video"]).resolve() == item.video)
    return row["answer_letter"]


def check_outputs(out: Path, n_rows: int, modes: list[str]) -> dict:
    """Every output file exists and agrees with the others; returns the report."""
    report = json.loads((out / "report.json").read_text())
    assert report["format"] == "vlm-autodrive/eval-report/1"
    assert [r["mode"] for r in report["results"]] == modes
    assert report["dataset"]["rows"] == n_rows
    preds = pq.read_table(out / "predictions.parquet").to_pylist()
    assert len(preds) == n_rows * len(modes)
    assert set(preds[0]) == COLUMNS
    md = (out / "report.md").read_text()
    for res in report["results"]:
        m = res["metrics"]
        mine = [p for p in preds if p["mode"] == res["mode"]]
        assert m["n"] == n_rows == sum(map(sum, m["confusion"]["matrix"]))
        assert m["unparseable"] == sum(p["prediction"] == UNPARSEABLE for p in mine)
        assert m["correct"] == sum(p["correct"] for p in mine)
        assert sum(res["parse_status"].values()) == n_rows
        assert set(res["parse_status"]) <= {*STATUSES, "error"}
        assert set(m["per_class"]) == set(report["classes"])
        for v in m["per_class"].values():
            assert all(0.0 <= v[k] <= 1.0 for k in ("precision", "recall", "f1"))
        assert 0.0 <= m["accuracy"] <= m["binary_accuracy"] <= 1.0  # right => right event
        png = (out / res["confusion_png"]).read_bytes()
        assert png.startswith(PNG_MAGIC) and len(png) > 5000
        assert f"| {report['name']} | {res['mode']} |" in md
        assert f"## Mode `{res['mode']}`" in md
    return report


def test_scripted_eval_counts_unparseable_and_errors_and_resumes(build, tmp_path):
    rows = mcq_test_rows(build)
    answers = {}

    def answer(item):
        # One clip right, one unparseable (hedged), one failed request.
        k = len(answers)
        answers[item.key] = k
        letter = gold_letter(build, item)
        return [letter, "A or B", RuntimeError("server went away")][k % 3]

    cfg = EvalConfig(model="scripted-model", dataset=str(build), out=tmp_path / "run")
    first = Scripted(answer)
    res = run_eval(cfg, log=lambda s: None, runner_factory=lambda c, root: first)
    assert (res.generated, res.reused, res.errors) == (len(rows), 0, 1)
    report = check_outputs(res.out, len(rows), ["direct"])
    m = report["results"][0]["metrics"]
    assert m["correct"] == 1 and m["unparseable"] == 2
    assert report["results"][0]["parse_status"] == {"ok": 1, "ambiguous": 1, "error": 1}

    # Re-run: only the failed request is sent again.
    second = Scripted(lambda item: gold_letter(build, item))
    res = run_eval(cfg, log=lambda s: None, runner_factory=lambda c, root: second)
    assert (res.generated, res.reused, res.errors, len(second.seen)) == (1, len(rows) - 1, 0, 1)
    assert res.report["results"][0]["metrics"]["correct"] == 2

    # Nothing missing: the outputs are re-scored without creating a runner at all.
    def no_runner(c, root):
        raise AssertionError("the model must not be loaded")

    res = run_eval(cfg, log=lambda s: None, runner_factory=no_runner)
    assert res.generated == 0 and res.report["results"][0]["metrics"]["correct"] == 2


def test_both_modes_limit_and_compare(build, tmp_path, capsys):
    rows = mcq_test_rows(build)

    def answer(item):
        letter = gold_letter(build, item)
        if item.mode == "reasoning":
            assert "<answer>" in item.prompt and item.system and "<think>" in item.system
            return f"<think>\nThe clip shows it.\n</think>\n\n<answer>\n{letter}\n</answer>"
        return f"{letter}. whatever"

    cfg = EvalConfig(
        model="m1", dataset=str(build), modes=("direct", "reasoning"), out=tmp_path / "a"
    )
    res = run_eval(cfg, log=lambda s: None, runner_factory=lambda c, root: Scripted(answer))
    report = check_outputs(res.out, len(rows), ["direct", "reasoning"])
    assert all(r["metrics"]["accuracy"] == 1.0 for r in report["results"])
    assert report["results"][1]["parse_method"] == {"answer_tag": len(rows)}

    limited = EvalConfig(model="m2", dataset=str(build), limit=2, out=tmp_path / "b")
    res = run_eval(limited, log=lambda s: None, runner_factory=lambda c, root: Scripted(answer))
    ds = res.report["dataset"]
    assert ds["rows"] == 2 and ds["limited"] and sorted(ds["per_class"].values()) == [0, 1, 1]

    code = eval_cli.main(["compare", str(tmp_path / "a"), str(tmp_path / "b" / "report.json")])
    text = capsys.readouterr().out
    assert code == 0 and "| m1 | reasoning |" in text and "| m2 | direct |" in text
    assert "different sets of clips" in text  # the limited run saw fewer clips


def test_cli_reports_bad_input(build, tmp_path, capsys):
    assert eval_cli.main(["--model", "x"]) == 2
    assert eval_cli.main(["--model", "x", "--dataset", str(tmp_path / "nowhere")]) == 2
    args = ["--model", "x", "--dataset", str(build), "--config", "caption_metadata"]
    assert eval_cli.main(args) == 2
    assert "no data/caption_metadata" in capsys.readouterr().err


def _train_env_problem() -> str | None:
    if not TRAIN_PYTHON.exists():
        return f"{TRAIN_PYTHON} is absent (the training environment; see mk/train.mk)"
    probe = "import torch, torchvision, transformers, sklearn, matplotlib"
    r = subprocess.run([str(TRAIN_PYTHON), "-c", probe], capture_output=True, text=True)
    if r.returncode:
        return f".venv-train cannot run the eval: {r.stderr.strip().splitlines()[-1]}"
    return None


@pytest.mark.slow
def test_tiny_qwen2_5_vl_transformers_runner_end_to_end(build, tmp_path):
    problem = _train_env_problem()
    if problem:
        pytest.skip(problem)
    model = tmp_path / "tiny-qwen2_5_vl"
    make = [
        str(TRAIN_PYTHON),
        "-m",
        "vlm_autodrive.builders.synthetic.tiny_models",
        "--kind",
        "vlm",
        "--out",
        str(model),
    ]
    subprocess.run(make, check=True, capture_output=True, text=True, cwd=REPO)
    out = tmp_path / "eval"
    cmd = [
        str(TRAIN_PYTHON), "-m", "vlm_autodrive.trainer.eval.cli",
        "--model", str(model), "--dataset", str(build), "--mode", "both",
        "--name", "tiny random Qwen2.5-VL", "--out", str(out),
        "--fps", "2", "--max-frames", "8", "--max-new-tokens", "24",
    ]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = mcq_test_rows(build)
    report = check_outputs(out, len(rows), ["direct", "reasoning"])
    assert report["runner"]["kind"] == "transformers"
    assert report["runner"]["model_class"] == "Qwen2_5_VLForConditionalGeneration"
    assert report["video"] == {"fps": 2.0, "max_frames": 8, "max_pixels": None}
    preds = pq.read_table(out / "predictions.parquet").to_pylist()
    assert all(p["raw_output"] and p["finish_reason"] in ("stop", "length") for p in preds)
    assert "| tiny random Qwen2.5-VL | direct |" in r.stdout

    # A second run finds every output stored and loads no model.
    again = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    assert again.returncode == 0 and f"{2 * len(rows)} outputs stored, 0 to generate" in (
        again.stdout
    )

    # Blind: the processor gets the question alone (no video), ~30 s more.
    blind = [*cmd[: cmd.index("--mode") + 1], "blind", *cmd[cmd.index("--mode") + 2 :]]
    blind[blind.index("--out") + 1] = str(tmp_path / "blind")
    r = subprocess.run(blind, capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, r.stderr[-3000:]
    report = check_outputs(tmp_path / "blind", len(rows), ["blind"])
    assert report["results"][0]["video_input"] is False
    assert "| tiny random Qwen2.5-VL | blind |" in r.stdout


def test_openai_runner_sends_each_clip_as_a_video_url(build, tmp_path):
    from tests.doubles.fake_server import FakeOpenAIServer

    rows = mcq_test_rows(build)
    # The stand-in server answers "reasoning 0\n</think>\n\nanswer 0": no option in it.
    with FakeOpenAIServer(model="served-vlm", think_inline=True) as server:
        cfg = EvalConfig(
            model="served-vlm",
            dataset=str(build),
            modes=("reasoning",),
            base_url=server.base_url,
            out=tmp_path / "openai",
        )
        res = run_eval(cfg, log=lambda s: None)
        bodies = server.bodies
    assert len(bodies) == len(rows) and res.errors == 0
    body = bodies[0]
    assert body["model"] == "served-vlm" and body["temperature"] == 0.0
    assert body["max_tokens"] == 1024
    system, user = body["messages"]
    assert system["role"] == "system" and "<think>" in system["content"]
    video, text = user["content"]
    clips = {(build / r["video"]).resolve().as_uri() for r in rows}
    assert video["type"] == "video_url" and video["video_url"]["url"] in clips
    assert text["type"] == "text" and "<answer>" in text["text"]
    report = check_outputs(res.out, len(rows), ["reasoning"])
    assert report["runner"]["kind"] == "openai" and report["runner"]["server"] == server.base_url
    assert report["results"][0]["parse_status"] == {"no_answer": len(rows)}
    preds = pq.read_table(res.out / "predictions.parquet").to_pylist()
    assert {(p["raw_output"], p["reasoning"]) for p in preds} == {("answer 0", "reasoning 0")}


def test_new_weights_in_the_same_folder_regenerate_every_answer(build, tmp_path):
    """Retraining into the same model folder makes every stored answer stale."""
    model = tmp_path / "my-model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "model.safetensors").write_bytes(b"weights v1")
    cfg = EvalConfig(model=str(model), dataset=str(build), out=tmp_path / "run")
    rows = mcq_test_rows(build)

    def run(expect_generated):
        runner = Scripted(lambda item: gold_letter(build, item))
        res = run_eval(cfg, log=lambda s: None, runner_factory=lambda c, root: runner)
        assert res.generated == expect_generated
        return res

    run(len(rows))
    run(0)  # same weights: nothing to generate
    (model / "model.safetensors").write_bytes(b"weights v2, retrained")
    run(len(rows))  # new weights, same folder: every answer again
    run(0)


def test_default_output_folder_names_model_and_dataset(build, tmp_path):
    a = EvalConfig(model="org/model", dataset=str(build)).out_dir()
    b = EvalConfig(model="org/model", dataset="org/other-data@v0.1.0").out_dir()
    assert a.name.startswith(f"org--model--{build.name}-") and a.parent.name == "eval"
    assert b.name.startswith("org--model--other-data-") and a != b
    assert (
        EvalConfig(model="m", dataset="d", config="vqa").out_dir().name.startswith("m--d-vqa-test-")
    )


def test_default_output_folder_is_one_per_org_name_and_revision(build, tmp_path, monkeypatch):
    """Evaluating `other/x` no longer overwrites the report of `org/x@v0.1.0` (issue 22)."""
    models = ["org/x@v0.1.0", "other/x", "org/x", "x", "org/x@v0.2.0", "org-x", "org--x"]
    folders = [EvalConfig(model=m, dataset=str(build)).out_dir() for m in models]
    assert len(set(folders)) == len(models)
    assert folders[0].name.startswith("org--x@v0.1.0--") and folders[1].name.startswith(
        "other--x--"
    )
    assert EvalConfig(model="org/x@v0.1.0", dataset=str(build)).out_dir() == folders[0]
    # A local model folder, however it is spelled, is one folder; another folder of the
    # same name elsewhere is another.
    for parent in ("runs/a", "runs/b"):
        (tmp_path / parent / "ckpt").mkdir(parents=True)
        (tmp_path / parent / "ckpt" / "config.json").write_text("{}")
    monkeypatch.chdir(tmp_path)
    same = {EvalConfig(model=m, dataset="d").out_dir() for m in ("runs/a/ckpt", "./runs/a/ckpt/")}
    other = EvalConfig(model="runs/b/ckpt", dataset="d").out_dir()
    assert len(same) == 1 and other not in same and other.name.startswith("b--ckpt--d-")
