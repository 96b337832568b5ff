"""Rows of the regulator's published files: OpenDocument spreadsheets (.ods) or their CSV
export, with the header row found by its column names.

The regulator moves the header between releases (a title, a date and notes above it), and
an .ods holds several sheets; so the table is the first sheet with a row, near its top, that
holds every column the importer needs. The .ods is streamed from its `content.xml` with the
standard library: the national directory is ~100 columns by ~50,000 rows, and a package that
builds the whole workbook in memory would need several gigabytes for it.
"""

import csv
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from xml.etree.ElementTree import Element, iterparse

HEADER_SEARCH_ROWS = 50

_TABLE = "urn:oasis:names:tc:opendocument:xmlns:table:1.0"
_TEXT = "urn:oasis:names:tc:opendocument:xmlns:text:1.0"
_OFFICE = "urn:oasis:names:tc:opendocument:xmlns:office:1.0"
T_TABLE = f"{{{_TABLE}}}table"
T_ROW = f"{{{_TABLE}}}table-row"
T_CELL = f"{{{_TABLE}}}table-cell"
T_COVERED = f"{{{_TABLE}}}covered-table-cell"
T_NAME = f"{{{_TABLE}}}name"
T_COLS_REPEATED = f"{{{_TABLE}}}number-columns-repeated"
T_ROWS_REPEATED = f"{{{_TABLE}}}number-rows-repeated"
X_P = f"{{{_TEXT}}}p"
X_S = f"{{{_TEXT}}}s"
X_TAB = f"{{{_TEXT}}}tab"
X_BREAK = f"{{{_TEXT}}}line-break"
X_C = f"{{{_TEXT}}}c"
O_TYPE = f"{{{_OFFICE}}}value-type"
O_VALUE = f"{{{_OFFICE}}}value"
O_DATE = f"{{{_OFFICE}}}date-value"
O_BOOL = f"{{{_OFFICE}}}boolean-value"

_SPACES = re.compile(r"\s+")


class SpreadsheetError(ValueError):
    """The file cannot be read as a table with the needed columns."""


@dataclass(frozen=True)
class Row:
    line: int  # 1-based row number in its sheet (or line in the CSV), as a spreadsheet shows it
    values: dict[str, str]  # by column_key of the header; blank cells are absent

    def get(self, column: str) -> str:
        return self.values.get(column_key(column), "")


def column_key(name: str) -> str:
    """Header cells compare by this: case and runs of spaces change between releases."""
    return _SPACES.sub(" ", name).strip().casefold()


def _text(element: Element) -> str:
    parts: list[str] = []
    if element.text:
        parts.append(element.text)
    for child in element:
        if child.tag == X_S:
            parts.append(" " * int(child.get(X_C, "1")))
        elif child.tag == X_TAB:
            parts.append("\t")
        elif child.tag == X_BREAK:
            parts.append("\n")
        else:
            parts.append(_text(child))
        if child.tail:
            parts.append(child.tail)
    return "".join(parts)


def _cell_value(cell: Element) -> str:
    kind = cell.get(O_TYPE)
    # The stored value, not the displayed one: "1,234" beds is shown, 1234 is stored.
    if kind in ("float", "percentage", "currency") and cell.get(O_VALUE) is not None:
        value = cell.get(O_VALUE, "")
        return value[:-2] if value.endswith(".0") else value
    if kind == "date" and cell.get(O_DATE):
        return cell.get(O_DATE, "")[:10]
    if kind == "boolean" and cell.get(O_BOOL):
        return cell.get(O_BOOL, "")
    return "\n".join(_text(p) for p in cell if p.tag == X_P)


def _ods_row(row: Element) -> list[str]:
    values: list[str] = []
    pending_empty = 0  # trailing blank cells are often repeated 16,000 times: added only if followed
    for cell in row:
        if cell.tag not in (T_CELL, T_COVERED):
            continue
        repeat = int(cell.get(T_COLS_REPEATED, "1"))
        value = _cell_value(cell)
        if value == "":
            pending_empty += repeat
            continue
        values.extend([""] * pending_empty)
        pending_empty = 0
        values.extend([value] * min(repeat, 1024))
    return values


def ods_rows(path: Path) -> Iterator[tuple[str, int, list[str]]]:
    """(sheet, row number, cell texts) of every non-empty row, streamed."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise SpreadsheetError(f"{path}: not an OpenDocument spreadsheet ({exc})") from exc
    with archive, archive.open("content.xml") as content:
        # End events only (a table's name is known at its end, so sheets go by number):
        # start events as well doubled the parse's cost on a national file.
        sheet = 1
        line = 0
        for _event, element in iterparse(content, events=("end",)):
            if element.tag == T_TABLE:
                sheet, line = sheet + 1, 0
                element.clear()
                continue
            if element.tag != T_ROW:
                continue
            repeat = int(element.get(T_ROWS_REPEATED, "1"))
            values = _ods_row(element)
            # Done with its cells: the emptied row stays in the tree until its sheet ends.
            element.clear()
            if any(values):
                for _ in range(min(repeat, 1024)):
                    line += 1
                    yield f"sheet {sheet}", line, values
                line += max(repeat - 1024, 0)
            else:
                line += repeat


def csv_rows(path: Path) -> Iterator[tuple[str, int, list[str]]]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            for values in reader:
                if any(v.strip() for v in values):
                    yield "", reader.line_num, values
    except UnicodeDecodeError as exc:
        raise SpreadsheetError(f"{path}: not UTF-8 ({exc}); export the CSV as UTF-8") from exc


def _all_rows(path: Path) -> Iterator[tuple[str, int, list[str]]]:
    if path.suffix.lower() == ".ods":
        return ods_rows(path)
    if path.suffix.lower() in (".xlsx", ".xls"):
        raise SpreadsheetError(f"{path}: Excel files are not read; open it and save as .ods or CSV (UTF-8)")
    return csv_rows(path)


def read_table(
    path: Path, required: set[str], aliases: dict[str, str] | None = None
) -> tuple[list[str], Iterator[Row]]:
    """The header (as written) and the rows after it, from the first sheet whose header row,
    within its first rows, holds every `required` column (in any case and spacing).

    `aliases` maps other spellings of a column to the name the importer asks `Row.get` for.
    """
    wanted = {column_key(c) for c in required}
    spelling = {column_key(k): column_key(v) for k, v in (aliases or {}).items()}
    rows = _all_rows(path)
    seen_sheets: list[str] = []
    searched = 0
    for sheet, _line, values in rows:
        if not seen_sheets or seen_sheets[-1] != sheet:
            seen_sheets.append(sheet)
            searched = 0
        searched += 1
        if searched > HEADER_SEARCH_ROWS:
            continue
        keys = [spelling.get(column_key(v), column_key(v)) for v in values]
        if wanted <= set(keys):
            return [v.strip() for v in values], _rows_after(rows, sheet, keys)
    where = f" (sheets {', '.join(repr(s) for s in seen_sheets)})" if any(seen_sheets) else ""
    raise SpreadsheetError(
        f"{path}: no header row with the columns {sorted(required)} in the first {HEADER_SEARCH_ROWS} rows{where}"
    )


def _rows_after(rows: Iterator[tuple[str, int, list[str]]], sheet: str, keys: list[str]) -> Iterator[Row]:
    for row_sheet, line, values in rows:
        if row_sheet != sheet:
            return
        yield Row(line, {k: v.strip() for k, v in zip(keys, values, strict=False) if k and v.strip()})
