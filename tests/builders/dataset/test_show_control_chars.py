"""`autodrive show` prints what a row holds, not what its control characters would do:
a model output with `ESC [2J` (clear the screen) shows as the text `\\x1b[2J`."""

from __future__ import annotations

import io
import os
from contextlib import redirect_stdout
from pathlib import Path
from unittest import mock

import pyarrow.parquet as pq
import pytest

from tests.builders.dataset.show_build import make_show_build
from vlm_autodrive.builders.dataset.folder import data_files
from vlm_autodrive.cli import main

# Clears the screen, homes the cursor, prints a fake line; then a carriage return and a
# right-to-left override, which would make a terminal overwrite or reorder the text.
HOSTILE = "A car passes.\x1b[2J\x1b[HAll rows passed.\rX\u202eevil\x07"


@pytest.fixture(scope="module")
def build(tmp_path_factory) -> Path:
    return make_show_build(tmp_path_factory.mktemp("show"))


def plant(build: Path, config: str, column: str, text: str) -> str:
    """Put `text` into `column` of the first train row of `config`; that row's id."""
    path = build / data_files(build, config)["train"]
    table = pq.read_table(path)
    assert column in table.column_names
    rows = table.to_pylist()
    rows[0][column] = text
    pq.write_table(type(table).from_pylist(rows, schema=table.schema), path)
    return rows[0]["id"]


def show(*args) -> tuple[int, str]:
    out = io.StringIO()
    with mock.patch.dict(os.environ, {"COLUMNS": "400"}), redirect_stdout(out):
        code = main(["show", *map(str, args)])
    return code, out.getvalue()


@pytest.mark.parametrize("config, column", [("caption_vlm", "answer"), ("failures", "raw_output")])
def test_escape_codes_in_a_row_are_printed_escaped(build, config, column):
    row_id = plant(build, config, column, HOSTILE)
    code, out = show(build, config, "--where", f"id={row_id}")
    assert code == 0
    assert not any(ch in out for ch in "\x1b\r\x07\u202e")
    assert "A car passes.\\x1b[2J\\x1b[HAll rows passed.\\x0dX\\u202eevil\\x07" in out


def test_error_messages_quote_file_names_escaped(tmp_path, capsys):
    manifest = tmp_path / "manifest\x1b[2J.jsonl"
    code = main(["ingest", str(manifest), "--build", str(tmp_path / "b")])
    err = capsys.readouterr().err
    assert code == 2
    assert "\x1b" not in err and "manifest\\x1b[2J.jsonl" in err
