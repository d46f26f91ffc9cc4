"""Generation to a target (builders/generate/target.py): `target: {Collision: N}` with a
`budget` asks the Collision train clips again, round after round, until N valid rows or
the budget is spent.

Each test runs `autodrive build RECIPE` through the real command line (in process) on a
copy of one tiny finished build (12 synthetic videos, rule splits only), with the scripted
backend (tests/doubles/scripted.py) in place of the backend factory, made to answer a
fraction of the Collision requests wrongly (reasoning_mcq: a wrong letter, `filtered`;
vqa: broken JSON, `parse`), chosen by the request's seed.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from tests.doubles.scripted import ScriptedBackend
from vlm_autodrive import cli
from vlm_autodrive.builders.core.ranking import seeded_rank
from vlm_autodrive.builders.generate.backends import factory
from vlm_autodrive.builders.generate.config import SplitGenConfig
from vlm_autodrive.builders.generate.inputs import read_config
from vlm_autodrive.builders.synthetic.sample import generate_sample

MODEL = {"model": "scripted", "revision": "1", "base_urls": ["http://x/v1"]}


class Yielding(ScriptedBackend):
    """The scripted model, right on every clip but a Collision clip, where it is right on
    one request in three (by the request's seed); keeps every request it got."""

    def __init__(self, build_dir: Path):
        super().__init__(
            garble=lambda req: "regex" not in (req.constraint or {}) and self._wrong(req)
        )
        self.build_dir = build_dir
        self.requests = []
        self._mcq = None

    def mcq(self) -> dict[str, dict]:
        if self._mcq is None:  # written by the rule splits, before any request
            rows = read_config(self.build_dir, "mcq", ["clip_id", "label", "answer_letter"])
            self._mcq = {r["clip_id"]: r for r in rows}
        return self._mcq

    def _wrong(self, req) -> bool:
        clip = self.mcq()[req.key_extra["clip"]]
        return clip["label"] == "Collision" and seeded_rank(0, req.sampling.seed) % 3 != 0

    def generate(self, requests):
        requests = list(requests)
        self.requests += requests
        return super().generate(requests)

    def _answer(self, req):
        if "regex" in (req.constraint or {}):  # reasoning_mcq: the truth, or another letter
            truth = self.mcq()[req.key_extra["clip"]]["answer_letter"]
            letter = ("B" if truth == "A" else "A") if self._wrong(req) else truth
            return f"<think>\nThe car ahead brakes hard.\n</think>\n\n<answer>\n{letter}\n</answer>"
        return super()._answer(req)


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """A finished build of the rule splits of 12 synthetic videos (3 Collision train clips)."""
    root = tmp_path_factory.mktemp("target")
    manifest = generate_sample(root / "sample", 12, seed=2, duration=8.0, width=96, height=64)
    recipe = write_recipe(root, manifest, {})
    assert cli.main(["build", str(recipe)]) == 0
    return root


def write_recipe(root: Path, manifest: Path, splits: dict) -> Path:
    data = {
        "manifest": str(manifest.resolve()),
        "build_dir": str(root / "build"),
        "chunk": {"window": 4.0, "stride": 3.5, "mode": "copy", "workers": 1},
        "rules": {"test_per_class": 1, "on_short": "take_available"},
    }
    if splits:
        data["generate"] = {"models": {"m": MODEL}, "configs": splits}
    path = root / "recipe.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def copy(base, tmp_path) -> Path:
    """A copy of the base build, its recipe naming the base's manifest."""
    shutil.copytree(base / "build", tmp_path / "build")
    (tmp_path / "manifest").write_text(str(base / "sample" / "manifest.jsonl"))
    return tmp_path


def build(root: Path, splits: dict, capsys, *args: str, backend=None):
    """`autodrive build` of `splits` in `root`; (exit code, printed output, backend)."""
    recipe = write_recipe(root, Path((root / "manifest").read_text()), splits)
    backend = backend or Yielding(root / "build")
    capsys.readouterr()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(factory, "open_backend", lambda cfg, stack, **kw: backend)
        code = cli.main(["build", str(recipe), *args])
    return code, capsys.readouterr(), backend


def mcq_split(n: int = 1, target: int = 12, budget: int = 60, **more) -> dict:
    return {
        "reasoning_mcq": {
            "model": "m",
            "n": n,
            "target": {"Collision": target},
            "budget": {"Collision": budget},
            **more,
        }
    }


def table(out: str, split: str = "reasoning_mcq") -> list[str]:
    """The split's row of the printed table (run or dry run): name, clips, requests,
    cached, sent (or to send), ..."""
    return next(
        w
        for w in (line.split() for line in out.splitlines())
        if w[:1] == [split] and w[1].isdigit()
    )


def target_line(out: str, label: str = "Collision") -> list[str]:
    """The class's line under `... to a target`: label, rows/target, requests/budget, why."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if "to a target" in line)
    return next(line.split() for line in lines[start:] if line.split()[:1] == [label])


def collision_train(build_dir: Path) -> set[str]:
    rows = read_config(build_dir, "mcq", ["clip_id", "label", "split"])
    return {r["clip_id"] for r in rows if r["label"] == "Collision" and r["split"] == "train"}


def kept(build_dir: Path, config: str = "reasoning_mcq") -> list[dict]:
    return list(read_config(build_dir, config, ["id", "clip_id", "label", "split", "sample"]))


def failed(build_dir: Path, config: str = "reasoning_mcq") -> list[dict]:
    rows = read_config(build_dir, "failures", ["id", "config", "clip_id", "sample", "kind"])
    return [r for r in rows if r["config"] == config]


def data_bytes(build_dir: Path) -> dict[str, bytes]:
    return {
        p.relative_to(build_dir).as_posix(): p.read_bytes()
        for p in sorted((build_dir / "data").rglob("*.parquet"))
    }


def test_reaches_the_target_within_its_budget(copy, capsys):
    code, out, backend = build(copy, mcq_split(n=2), capsys)
    assert code == 0, out.err
    b = copy / "build"
    collision = collision_train(b)
    rows = [r for r in kept(b) if r["clip_id"] in collision]
    asked = [r for r in backend.requests if r.key_extra["clip"] in collision]
    assert len(rows) >= 12 and len(asked) <= 60
    assert target_line(out.out) == ["Collision", f"{len(rows)}/12", f"{len(asked)}/60", "reached"]
    prov = json.loads((b / "provenance.json").read_text())
    recorded = prov["stages"]["model_splits"]["counts"]["reasoning_mcq"]["targets"]
    assert recorded["Collision"] == {
        "target": 12,
        "budget": 60,
        "requests": len(asked),
        "rows": len(rows),
        "stopped": "reached",
        "to_send": 0,
    }
    # Each clip asked again has rounds 1, 2, ...: requests of their own, each its own seed.
    rounds = sorted((r.key_extra["clip"], r.key_extra.get("round", 0)) for r in asked)
    assert len(set(rounds)) == len(rounds) and max(k for _, k in rounds) >= 1
    assert len({r.sampling.seed for r in asked}) == len(asked)
    # The other classes: one request per clip, as without a target.
    others = [r for r in backend.requests if r.key_extra["clip"] not in collision]
    assert all("round" not in r.key_extra for r in others)
    assert len({r.key_extra["clip"] for r in others}) == len(others)
    # Counts are conserved: every sample (n = 2 a request) is a row or a failure, once.
    fails = failed(b)
    words = table(out.out)
    assert int(words[5]) == 2 * len(backend.requests) == len(kept(b)) + len(fails)
    assert {f["kind"] for f in fails} == {"filtered"}
    ids = [r["id"] for r in kept(b)] + [f["id"] for f in fails]
    assert len(set(ids)) == len(ids)
    samples = sorted((r["clip_id"], r["sample"]) for r in [*kept(b), *fails])
    assert len(set(samples)) == len(samples)


def test_stops_at_its_budget_short_of_the_target_then_a_larger_budget_resumes(copy, capsys):
    code, out, backend = build(copy, mcq_split(target=100, budget=10), capsys)
    assert code == 0, out.err
    b = copy / "build"
    collision = collision_train(b)
    rows = [r for r in kept(b) if r["clip_id"] in collision]
    asked = {r.request_id for r in backend.requests if r.key_extra["clip"] in collision}
    assert len(asked) == 10 and len(rows) < 100
    line = target_line(out.out)
    assert line[:3] == ["Collision", f"{len(rows)}/100", "10/10"]
    assert " ".join(line[3:]) == f"stopped at its budget, {100 - len(rows)} short"
    # A larger budget goes on from there: the first 10 come from the cache.
    code, out, again = build(copy, mcq_split(target=100, budget=25), capsys)
    assert code == 0 and len(again.requests) == 15
    assert not asked & {r.request_id for r in again.requests}
    assert target_line(out.out)[2] == "25/25"


def test_a_rerun_sends_nothing_and_writes_the_same_bytes(copy, capsys):
    code, out, _ = build(copy, mcq_split(), capsys)
    before, line = data_bytes(copy / "build"), target_line(out.out)
    code, out, backend = build(copy, mcq_split(), capsys)
    assert code == 0 and backend.requests == [] and target_line(out.out) == line
    (copy / "build" / "model_splits" / "stamp.json").unlink()  # walk the cache, not the stamp
    code, out, backend = build(copy, mcq_split(), capsys)
    assert code == 0 and backend.requests == [] and target_line(out.out) == line
    words = table(out.out)
    assert words[2] == words[3] and words[4] == "0"  # every request cached
    assert data_bytes(copy / "build") == before


def test_the_dry_run_gives_the_worst_case(copy, capsys):
    code, out, silent = build(copy, mcq_split(), capsys, "--dry-run")
    assert code == 0 and silent.requests == []
    assert not (copy / "build" / "data" / "reasoning_mcq").exists()
    clips, worst = int(table(out.out)[1]), int(table(out.out)[4])
    collision = collision_train(copy / "build")
    # The first request of every clip, and every round up to Collision's budget.
    assert worst == clips + 60 - len(collision)
    line = target_line(out.out)
    assert line[:3] == ["Collision", "0/12", f"{len(collision)}/60"]
    assert " ".join(line[3:]) == f"at most {60 - len(collision)} more requests to send"
    code, out, backend = build(copy, mcq_split(), capsys)
    assert len(backend.requests) == int(table(out.out)[4]) <= worst
    code, out, silent = build(copy, mcq_split(), capsys, "--dry-run")
    assert table(out.out)[4] == "0" and target_line(out.out)[-1] == "reached"


def test_same_bytes_on_a_rebuild_from_scratch(base, tmp_path, capsys):
    made = []
    for name in ("one", "two"):
        root = tmp_path / name
        shutil.copytree(base / "build", root / "build")
        (root / "manifest").write_text(str(base / "sample" / "manifest.jsonl"))
        code, _out, backend = build(root, mcq_split(n=2), capsys)
        assert code == 0 and backend.requests
        made.append(data_bytes(root / "build"))
    assert made[0] == made[1] and any("reasoning_mcq" in p for p in made[0])


def test_vqa_to_a_target(copy, capsys):
    splits = {"vqa": {"model": "m", "target": {"Collision": 20}, "budget": {"Collision": 30}}}
    code, out, backend = build(copy, splits, capsys)
    assert code == 3  # broken JSON is a `parse` failure
    b = copy / "build"
    collision = collision_train(b)
    rows = [r for r in kept(b, "vqa") if r["clip_id"] in collision]
    assert len(rows) >= 20  # rows: the questions of the kept samples
    assert target_line(out.out)[:2] == ["Collision", f"{len(rows)}/20"]
    words = table(out.out, "vqa")
    fails = failed(b, "vqa")
    assert {f["kind"] for f in fails} == {"parse"}
    assert int(words[5]) == len(backend.requests) == int(words[6]) + len(fails)


def test_retry_failed_sends_the_failed_rounds_again(copy, capsys):
    splits = {"vqa": {"model": "m", "target": {"Collision": 20}, "budget": {"Collision": 30}}}
    code, out, first = build(copy, splits, capsys)
    asked = {(r.key_extra["clip"], r.key_extra.get("round", 0)) for r in first.requests}
    fails = {(f["clip_id"], f["sample"]) for f in failed(copy / "build", "vqa")}  # n = 1
    assert code == 3 and any(k for _, k in fails)  # a failed round is among them
    code, out, again = build(copy, splits, capsys, "--retry-failed")
    sent = {(r.key_extra["clip"], r.key_extra.get("round", 0)) for r in again.requests}
    # A failed request again (a new attempt), or a round never asked before.
    assert sent and all(p in fails or p not in asked for p in sent)
    words = table(out.out, "vqa")
    assert int(words[5]) == int(words[6]) + len(failed(copy / "build", "vqa"))


def test_a_class_not_in_the_taxonomy_is_named_before_any_work(copy, capsys):
    splits = {"reasoning_mcq": {"model": "m", "target": {"Colision": 5}, "budget": {"Colision": 9}}}
    code, out, backend = build(copy, splits, capsys)
    assert code == 2 and backend.requests == [] and "[ingest]" not in out.out
    assert "generate.configs.reasoning_mcq.target.Colision: not a class of the taxonomy" in out.err
    assert "Traceback" not in out.err


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"target": {"Collision": 5}}, "budget.Collision: required with target.Collision"),
        ({"budget": {"Collision": 5}}, "budget.Collision: no target.Collision"),
        ({"target": {"Collision": 0}, "budget": {"Collision": 5}}, "greater than 0"),
        (
            {"target": {"Collision": 5}, "budget": {"Collision": 5}, "share_prompts": True},
            "not with share_prompts",
        ),
    ],
)
def test_recipe_keys_are_checked(keys, message):
    with pytest.raises(ValueError, match=message):
        SplitGenConfig(model="m", **keys)
