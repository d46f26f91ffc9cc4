"""MM-AU's cause question is checked as the manifest's is: a row whose options repeat is
that row's reject, naming the sheet row, not an error that stops the adapter."""

from __future__ import annotations

import pytest

from tests.builders.ingest.test_adapters_mmau import _cap_qa
from vlm_autodrive.builders.ingest.adapters import load_adapter_config, run_adapter

openpyxl = pytest.importorskip("openpyxl")


def test_repeated_cause_options_are_the_rows_reject(tmp_path):
    folder = tmp_path / "Q&A" / "data" / "cap"
    sheet = _cap_qa(folder / "train.xlsx")
    wb = openpyxl.load_workbook(sheet)
    ws = wb["Sheet1"]
    header = [c.value for c in ws[1]]
    ws.cell(row=2, column=header.index("a2") + 1, value="The car is out of control")
    wb.save(sheet)
    result = run_adapter("mmau", folder, load_adapter_config("mmau"))
    assert result.accounted() and not result.entries  # row 2 was the one good row
    got = {r.line: r.reason for r in result.rejects}
    assert "sheet 'Sheet1' row 2: cause question: " in got[2]
    assert "options 1 and 2 are the same ('The car is out of control')" in got[2]
