"""A published release folder is read-only to every writing command (issue 22, item 5);
the taxonomy a build used is the one later stages read; mix records no absolute path."""

from __future__ import annotations

import hashlib
import json

from tests.builders.real_builds import autodrive, new_class_build

MIXTURE = """\
name: small
seed: 1
components:
  - config: mcq
    upsample: {Collision: 3, Sudden Stop: 2}
  - config: caption_metadata
    all: true
"""


def folder_digest(folder) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_a_release_refuses_every_writing_command_and_mix_reads_the_build_taxonomy(tmp_path, capsys):
    recipe = new_class_build(tmp_path, capsys)
    build = tmp_path / "build"
    mixture = tmp_path / "mixture.yaml"
    mixture.write_text(MIXTURE)
    code, text = autodrive(capsys, "mix", mixture, "--build", build)
    assert code == 0, text  # Sudden Stop is a class of this build (rules.templates)
    for name in ("README.md", "provenance.json"):
        assert str(mixture) not in (build / name).read_text()
        assert str(tmp_path) not in json.dumps(
            json.loads((build / "provenance.json").read_text())["stages"]["mix-small"]
        )
    code, text = autodrive(capsys, "publish", build, "--version", "0.1.0", "--to", tmp_path / "pub")
    assert code == 0, text
    release = tmp_path / "pub" / "v0.1.0"
    before = folder_digest(release)

    manifest = tmp_path / "sample" / "manifest.jsonl"
    writers = [
        ("mix", mixture, "--build", release),
        ("build", recipe, "--build", release),
        ("ingest", manifest, "--build", release),
        ("chunk", "--build", release),
        ("publish", release, "--version", "0.2.0", "--to", tmp_path / "pub2"),
        ("audit", release),
    ]
    for args in writers:
        code, text = autodrive(capsys, *args)
        assert code == 2, (args, text)
        assert "published release v0.1.0, which is read-only" in text, (args, text)
        assert "Traceback" not in text
    assert folder_digest(release) == before
    assert not (tmp_path / "pub2").exists()

    code, text = autodrive(capsys, "show", release, "mcq")
    assert code == 0, text  # reading a release is fine
