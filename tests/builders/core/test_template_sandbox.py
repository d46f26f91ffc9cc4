"""Templates are files users share and download: they render in Jinja's immutable sandbox,
and one that reaches for Python (to run a command or read a file) is refused before any
work, naming its file and line, by `autodrive build` and by its dry run alike."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import yaml

from vlm_autodrive.builders.core.jinja_env import TemplateLoadError, load_template
from vlm_autodrive.cli import main
from vlm_autodrive.resources import bundled

# The issue's payload: it put `uid=0(root)` into every row of the mcq split.
RUN_ID = "{{ cycler.__init__.__globals__.os.popen('id').read() }}"


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sample") / "s"
    args = ["sample", "--videos", "2", "--out", str(out), "--duration", "4"]
    assert main([*args, "--width", "64", "--height", "48"]) == 0
    return out


def write_recipe(folder: Path, sample: Path, **sections) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    recipe = {
        "manifest": os.path.relpath(sample / "manifest.jsonl", folder),
        "build_dir": "build",
        "chunk": {"window": 2.0, "stride": 1.0, "margin": 0.5},
        "rules": {"test_per_class": 1, "on_short": "take_available"},
        **sections,
    }
    path = folder / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def with_payload(src: Path, dst: Path, name: str, payload: str = RUN_ID) -> tuple[Path, int]:
    """A copy of the template folder `src` whose `name` has `payload` on a line of its
    own inside its last block (at its end when it has none); (the copied file, that
    line's number)."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    path = dst / name
    lines = path.read_text().splitlines()
    ends = [i for i, line in enumerate(lines) if "{% endblock %}" in line]
    at = ends[-1] if ends else len(lines)
    lines.insert(at, payload)
    path.write_text("\n".join(lines) + "\n")
    return path, at + 1


def refused(capsys, recipe: Path, *extra: str) -> str:
    capsys.readouterr()
    code = main(["build", str(recipe), *extra])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("autodrive: ") and "Traceback" not in err and "uid=" not in err
    return err


@pytest.mark.parametrize("dry_run", [False, True], ids=["build", "dry-run"])
def test_the_issues_payload_in_mcq_jinja_is_refused_before_any_work(
    sample, tmp_path, capsys, dry_run
):
    mcq, line = with_payload(bundled("templates"), tmp_path / "templates", "mcq.jinja")
    recipe = write_recipe(tmp_path / "r", sample, rules={"templates": str(tmp_path / "templates")})
    err = refused(capsys, recipe, *(["--dry-run"] if dry_run else []))
    assert f"autodrive: {mcq}:{line}: unsafe attribute '__init__'" in err
    assert not (tmp_path / "r" / "build").exists()  # no row, no folder: nothing ran


@pytest.mark.parametrize("dry_run", [False, True], ids=["build", "dry-run"])
def test_the_payload_in_a_prompt_template_is_refused_dry_run_included(
    sample, tmp_path, capsys, dry_run
):
    prompt, line = with_payload(bundled("prompts"), tmp_path / "prompts", "caption_vlm.jinja")
    gen = {
        "prompts": str(tmp_path / "prompts"),
        "models": {"vlm": {"model": "some-org/some-vlm", "base_urls": ["http://127.0.0.1:9/v1"]}},
        "configs": {"caption_vlm": {"model": "vlm"}},
    }
    recipe = write_recipe(tmp_path / "r", sample, generate=gen)
    err = refused(capsys, recipe, *(["--dry-run"] if dry_run else []))
    assert f"autodrive: {prompt}:{line}: unsafe attribute '__init__'" in err
    assert not (tmp_path / "r" / "build").exists()


@pytest.mark.parametrize(
    "payload, words",
    [
        # in a branch the samples never take: refused all the same, before rendering
        ("{% if false %}" + RUN_ID + "{% endif %}", "unsafe attribute '__init__'"),
        ("{{ lipsum|attr('__globals__') }}", "unsafe attribute '__globals__'"),
        ("{{ cycler['__init__'] }}", "unsafe attribute '__init__'"),
        ("{% set xs = [] %}{{ xs.append(1) }}", "unsafe attribute 'append'"),
        ("{{ options.pop() }}", "unsafe attribute 'pop'"),
    ],
)
def test_unsafe_attributes_are_refused_at_load_with_file_and_line(tmp_path, payload, words):
    write(tmp_path, "t.jinja", "{{ question }}\n" + payload + "\n")
    with pytest.raises(TemplateLoadError) as e:
        load_template("t.jinja", [tmp_path], ["question", "options"])
    assert f"{tmp_path / 't.jinja'}:2: {words}" in str(e.value)


def test_a_computed_attribute_name_is_stopped_by_the_sandbox_itself(tmp_path):
    # Not visible to the static check: the sandbox refuses it while the samples render.
    write(tmp_path, "t.jinja", "{{ question }}\n{{ cycler|attr('__in' ~ 'it__') }}\n")
    with pytest.raises(TemplateLoadError) as e:
        load_template("t.jinja", [tmp_path], ["question"], samples=[{"question": "Q"}])
    assert f"{tmp_path / 't.jinja'}:2: SecurityError:" in str(e.value)


def test_what_the_sandbox_stops_while_rows_render_is_bad_input_with_file_and_line(tmp_path):
    # A computed name in a branch the samples do not take: loads, then stops at the row
    # that takes it, as a TemplateLoadError (exit 2, `file:line:`), not a traceback.
    write(
        tmp_path,
        "t.jinja",
        "{% block user %}{{ question }}\n"
        "{% if question == 'boom' %}{{ cycler|attr('__in' ~ 'it__') }}{% endif %}"
        "{% endblock %}\n",
    )
    t = load_template("t.jinja", [tmp_path], ["question"], samples=[{"question": "Q"}])
    assert t.render_block("user", {"question": "Q"}) == "Q"
    for render in (lambda c: t.render_block("user", c), t.render):
        with pytest.raises(TemplateLoadError) as e:
            render({"question": "boom"})
        assert str(e.value).startswith(f"{tmp_path / 't.jinja'}:2: SecurityError:")


def test_a_template_cannot_include_a_file_outside_its_folders(tmp_path):
    secret = write(tmp_path, "secret.txt", "the secret")
    folder = tmp_path / "prompts"
    for ref in ["../secret.txt", str(secret)]:
        write(folder, "t.jinja", "{% include '" + ref + "' %}\n")
        with pytest.raises(TemplateLoadError, match="not found"):
            load_template("t.jinja", [folder], [], samples=[{}])


def test_a_symbolic_link_out_of_the_template_folder_is_refused(tmp_path):
    secret = write(tmp_path, "secret.txt", "the secret")
    folder = tmp_path / "prompts"
    write(folder, "t.jinja", "{% include 'leak.jinja' %}\n")
    (folder / "leak.jinja").symlink_to(secret)
    with pytest.raises(TemplateLoadError) as e:
        load_template("t.jinja", [folder], [], samples=[{}])
    assert f"{folder / 'leak.jinja'}: a symbolic link to {secret}, outside" in str(e.value)
    (folder / "inside.jinja").symlink_to(folder / "t.jinja")  # a link within is fine
    write(folder, "u.jinja", "{% include 'inside.jinja' %}\n")
    (folder / "leak.jinja").unlink()
    write(folder, "t.jinja", "T\n")
    assert load_template("u.jinja", [folder], [], samples=[{}]).render({}) == "T"


def test_an_eval_prompt_with_the_payload_is_refused(tmp_path):
    from vlm_autodrive.trainer.eval.harness import load_mode_prompt

    prompt, line = with_payload(bundled("prompts", "eval"), tmp_path / "eval", "direct.jinja")
    with pytest.raises(TemplateLoadError) as e:
        load_mode_prompt("direct", tmp_path / "eval")
    assert f"{prompt}:{line}: unsafe attribute '__init__'" in str(e.value)


def test_the_bundled_templates_and_prompts_all_load_in_the_sandbox():
    """Every bundled template renders its samples in the sandbox (event.jinja used
    list.append, which the immutable sandbox refuses)."""
    from vlm_autodrive.builders.core.taxonomy import load_taxonomy
    from vlm_autodrive.builders.generate.stage import BLOCKS, CHECK, MODEL_SPLITS
    from vlm_autodrive.builders.rules.stage import RuleSplitsConfig, load_rule_templates
    from vlm_autodrive.trainer.eval.harness import load_mode_prompt

    taxonomy = load_taxonomy(None)
    configs = ["mcq", "caption_metadata", "cause_vqa"]
    assert set(load_rule_templates(RuleSplitsConfig(configs=configs), taxonomy)) == set(configs)
    folders = [bundled("prompts")]
    for split in [*MODEL_SPLITS.values(), CHECK]:
        split.prepare(folders, taxonomy)
        load_template(split.prompt, folders, split.inputs, split.sample_contexts(taxonomy), BLOCKS)
    for mode in ("direct", "reasoning"):
        load_mode_prompt(mode, None)
