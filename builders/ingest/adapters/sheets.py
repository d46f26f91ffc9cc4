"""Spreadsheet reading for adapters: `.xlsx` through openpyxl, `.xls` through xlrd.

In: a workbook path. Out: its sheets, each a name and its rows as (1-based row number,
cell values), every cell None (empty), str, int (integral numbers, however stored), float,
bool or a `CellError`. Both libraries are the optional extra `mmau`
(`pip install 'vlm-autodrive[mmau]'`); a missing one is an AdapterError saying so.
Reading cells directly (not through pandas) keeps the sheet's own row numbers, blank
rows included, and each cell's stored type, so text ids keep their leading zeros.
"""

from __future__ import annotations

import dataclasses
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vlm_autodrive.builders.ingest.adapters.mapping import AdapterError

SUFFIXES = (".xls", ".xlsx", ".xlsm")


@dataclasses.dataclass(frozen=True)
class CellError:
    """A cell holding a spreadsheet error (`#N/A`, `#DIV/0!`, ...)."""

    text: str


@dataclasses.dataclass
class Sheet:
    """One worksheet: its name and its rows, `(row number, cells)`, header included."""

    name: str
    rows: list[tuple[int, list[Any]]]


def read_workbook(path: Path) -> list[Sheet]:
    """Every sheet of the workbook at `path`; AdapterError when it cannot be read."""
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise AdapterError(f"{path}: not a spreadsheet ({', '.join(SUFFIXES)})")
    try:
        return list(_xls(path) if suffix == ".xls" else _xlsx(path))
    except AdapterError:
        raise
    except Exception as e:  # both libraries raise many kinds for a damaged file
        raise AdapterError(f"{path}: cannot read the workbook: {type(e).__name__}: {e}") from None


def _number(v: float) -> int | float:
    return int(v) if float(v).is_integer() else v


def _xls(path: Path) -> Iterator[Sheet]:
    try:
        import xlrd
    except ImportError:
        raise AdapterError(f"{path}: reading .xls needs xlrd: {_INSTALL}") from None
    book = xlrd.open_workbook(str(path), on_demand=True)
    try:
        for sheet in book.sheets():
            rows = []
            for r in range(sheet.nrows):
                cells = []
                for c in range(sheet.ncols):
                    kind, value = sheet.cell_type(r, c), sheet.cell_value(r, c)
                    if kind in (xlrd.XL_CELL_EMPTY, xlrd.XL_CELL_BLANK):
                        cells.append(None)
                    elif kind == xlrd.XL_CELL_NUMBER:
                        cells.append(_number(value))
                    elif kind == xlrd.XL_CELL_BOOLEAN:
                        cells.append(bool(value))
                    elif kind == xlrd.XL_CELL_ERROR:
                        cells.append(CellError(xlrd.error_text_from_code.get(value, "#ERR")))
                    else:  # text, or a date serial (a bad cell for every column we read)
                        cells.append(value)
                rows.append((r + 1, cells))
            yield Sheet(sheet.name, rows)
    finally:
        book.release_resources()


def _xlsx(path: Path) -> Iterator[Sheet]:
    try:
        import openpyxl
    except ImportError:
        raise AdapterError(f"{path}: reading .xlsx needs openpyxl: {_INSTALL}") from None
    book = openpyxl.load_workbook(str(path), read_only=True, data_only=True)
    try:
        for ws in book.worksheets:
            rows = []
            for r, row in enumerate(ws.iter_rows(), start=1):
                cells = []
                for cell in row:
                    v = getattr(cell, "value", None)
                    if getattr(cell, "data_type", None) == "e":
                        cells.append(CellError(str(v)))
                    elif isinstance(v, float):
                        cells.append(_number(v))
                    else:
                        cells.append(v)
                rows.append((r, cells))
            yield Sheet(ws.title, rows)
    finally:
        book.close()


_INSTALL = "pip install 'vlm-autodrive[mmau]'"


def normalize_header(text: Any) -> tuple[str, str]:
    """A header cell as (whole, name) for matching: case, full-width forms, repeated
    whitespace folded; `name` is the part before a parenthesised legend, so
    `Weather(sunny,rainy,snowy,foggy)1-4` matches `weather`."""
    s = " ".join(unicodedata.normalize("NFKC", str(text or "")).lower().split())
    return s, s.split("(", 1)[0].strip()
