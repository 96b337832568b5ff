"""Rows of the regulator's published files: OpenDocument spreadsheets (.ods), Excel
workbooks (.xlsx, see xlsx_sheets) or a CSV export, with the header row found by its
column names.

The regulator moves the header between releases (a title, a date, a notice above it), and
a workbook holds several sheets (a README, the data, a second table); so the table is the
first sheet with a row, near its top, that holds every column the importer needs. The .ods is streamed from its `content.xml` with the
standard library: the national directory is ~100 columns by ~50,000 rows, and a package that
builds the whole workbook in memory would need several gigabytes for it.
"""

import csv
import re
import zipfile
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from xml.etree.ElementTree import Element, ParseError, iterparse

from services.ingest.xlsx_sheets import WorkbookError, xlsx_rows

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
    suffix = path.suffix.lower()
    if suffix == ".ods":
        return _guarded(path, ods_rows(path))
    if suffix in (".xlsx", ".xlsm"):
        return _guarded(path, xlsx_rows(path))
    if suffix == ".xls":
        raise SpreadsheetError(
            f"{path}: the old Excel format (.xls) is not read; save it as .xlsx, .ods or CSV (UTF-8)"
        )
    return csv_rows(path)


def _guarded(path: Path, rows: Iterator[tuple[str, int, list[str]]]) -> Iterator[tuple[str, int, list[str]]]:
    """A damaged workbook is a SpreadsheetError, whenever in the stream it shows."""
    try:
        yield from rows
    except WorkbookError as exc:
        raise SpreadsheetError(str(exc)) from exc
    except (ParseError, zipfile.BadZipFile, KeyError) as exc:
        raise SpreadsheetError(f"{path}: not a readable workbook ({exc})") from exc


@dataclass(frozen=True)
class Column:
    """A column an importer reads, found by its published name or another spelling a release used."""

    name: str  # what the importer asks Row.get for
    spellings: tuple[str, ...] = ()
    # Also "<name> (note ...)": a release gave the manager column a note in its header.
    with_note: bool = False
    # Only whether the cell is filled is kept ("Y"): the column holds a person's name.
    presence_only: bool = False

    def matches(self, header_key: str) -> bool:
        for spelling in (self.name, *self.spellings):
            key = column_key(spelling)
            if header_key == key or (self.with_note and header_key.startswith(key + " (")):
                return True
        return False


@dataclass
class Table:
    sheet: str  # "" for a CSV; "sheet N" (by position) for an .ods; the sheet's name for an .xlsx
    line: int  # the header's row number
    header: list[str]  # as written, every column
    found: dict[str, str]  # Column.name -> the header cell it was found under
    rows: Iterator[Row]


def _match(header: list[str], columns: Sequence[Column]) -> list[Column | None]:
    matched: list[Column | None] = []
    taken: set[str] = set()
    for cell in header:
        key = column_key(cell)
        column = next((c for c in columns if c.name not in taken and c.matches(key)), None) if key else None
        if column is not None:
            taken.add(column.name)
        matched.append(column)
    return matched


def read_table(path: Path, columns: Sequence[Column], required: Collection[str]) -> Table:
    """The first sheet whose header row, within its first rows, has every `required` column
    (by name or spelling, in any case and spacing), and its rows after the header.

    A row holds only the declared `columns`: the file's other columns (addresses, people's
    names, telephone numbers...) are never held, so nothing can pass them on.
    """
    wanted = {column_key(name) for name in required}
    rows = _all_rows(path)
    seen_sheets: list[str] = []
    searched = 0
    for sheet, line, values in rows:
        if not seen_sheets or seen_sheets[-1] != sheet:
            seen_sheets.append(sheet)
            searched = 0
        searched += 1
        if searched > HEADER_SEARCH_ROWS:
            continue
        matched = _match(values, columns)
        if wanted <= {column_key(c.name) for c in matched if c is not None}:
            found = {c.name: v.strip() for c, v in zip(matched, values, strict=True) if c is not None}
            return Table(sheet, line, [v.strip() for v in values], found, _rows_after(rows, sheet, matched))
    where = f" (sheets {', '.join(repr(s) for s in seen_sheets)})" if any(seen_sheets) else ""
    raise SpreadsheetError(
        f"{path}: no header row with the columns {sorted(required)} in the first {HEADER_SEARCH_ROWS} rows{where}"
    )


def _rows_after(rows: Iterator[tuple[str, int, list[str]]], sheet: str, matched: list[Column | None]) -> Iterator[Row]:
    for row_sheet, line, values in rows:
        if row_sheet != sheet:
            return
        kept: dict[str, str] = {}
        for column, value in zip(matched, values, strict=False):
            text = value.strip()
            if column is None or not text:
                continue
            kept[column_key(column.name)] = "Y" if column.presence_only else text
        yield Row(line, kept)
