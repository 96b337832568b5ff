"""Rows of an Office Open XML workbook (.xlsx), streamed with the standard library.

Some of the regulator's releases were published as .xlsx. A sheet's XML is parsed row by
row and each row freed once read (a national directory is ~50,000 rows by ~120 columns);
text comes from the shared-strings table, and numbers formatted as dates are given as
YYYY-MM-DD, as the .ods reader gives date cells, so that both read the same.
"""

import posixpath
import re
import zipfile
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import IO
from xml.etree.ElementTree import Element, ParseError, iterparse, parse

_MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_REL_ID = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}id"
_PKG = "{http://schemas.openxmlformats.org/package/2006/relationships}"
_REF = re.compile(r"([A-Z]+)([0-9]+)")
# Built-in number formats that show a date (ECMA-376 part 1, 18.8.30).
_DATE_FORMATS = {14, 15, 16, 17, 18, 19, 20, 21, 22, 45, 46, 47}
# A custom format is a date one if, outside quoted text and [colour]/[condition] parts, it has d, m or y.
_LITERALS = re.compile(r'"[^"]*"|\[[^\]]*\]|\\.')
MAX_COLUMNS = 16384


class WorkbookError(ValueError):
    """The file is not a readable .xlsx workbook."""


def _column_index(letters: str) -> int:
    index = 0
    for char in letters:
        index = index * 26 + ord(char) - ord("A") + 1
    return index - 1


def _text(element: Element) -> str:
    # <si>/<is>: plain <t>, or rich-text runs <r><t>; phonetic guides (<rPh>) are not the text.
    if (plain := element.find(f"{_MAIN}t")) is not None:
        return plain.text or ""
    return "".join(t.text or "" for r in element.findall(f"{_MAIN}r") for t in r.findall(f"{_MAIN}t"))


def _shared_strings(archive: zipfile.ZipFile) -> list[str]:
    if "xl/sharedStrings.xml" not in archive.namelist():
        return []
    strings: list[str] = []
    with archive.open("xl/sharedStrings.xml") as content:
        for _event, element in iterparse(content, events=("end",)):
            if element.tag == f"{_MAIN}si":
                strings.append(_text(element))
                element.clear()
    return strings


def _date_styles(archive: zipfile.ZipFile) -> set[int]:
    """Indexes of the cell formats that show a number as a date."""
    if "xl/styles.xml" not in archive.namelist():
        return set()
    with archive.open("xl/styles.xml") as content:
        root = _root(content)
    dated = set(_DATE_FORMATS)
    for fmt in root.iter(f"{_MAIN}numFmt"):
        code = _LITERALS.sub("", fmt.get("formatCode", "")).casefold()
        if re.search(r"[dmy]", code) and fmt.get("numFmtId", "").isdigit():
            dated.add(int(fmt.get("numFmtId", "0")))
    xfs = root.find(f"{_MAIN}cellXfs")
    formats = [int(xf.get("numFmtId", "0")) for xf in (xfs if xfs is not None else [])]
    return {i for i, fmt in enumerate(formats) if fmt in dated}


def _root(content: IO[bytes]) -> Element:
    # The workbook, its relationships and its styles are small: parsed whole.
    return parse(content).getroot()


def _sheets(archive: zipfile.ZipFile) -> tuple[list[tuple[str, str]], date]:
    """(name, part path) of each sheet in the workbook's order, and its day 0."""
    with archive.open("xl/workbook.xml") as content:
        workbook = _root(content)
    with archive.open("xl/_rels/workbook.xml.rels") as content:
        rels = {r.get("Id"): r.get("Target", "") for r in _root(content).iter(f"{_PKG}Relationship")}
    properties = workbook.find(f"{_MAIN}workbookPr")
    in_1904 = properties is not None and properties.get("date1904", "").casefold() in ("1", "true")
    sheets = []
    for sheet in workbook.iter(f"{_MAIN}sheet"):
        target = rels.get(sheet.get(_REL_ID), "")
        part = target.lstrip("/") if target.startswith("/") else posixpath.normpath(posixpath.join("xl", target))
        sheets.append((sheet.get("name", ""), part))
    # Serial 60 is Excel's 29 February 1900, which never was; later serials count from 30 December 1899.
    return sheets, date(1904, 1, 1) if in_1904 else date(1899, 12, 30)


def _cell_value(cell: Element, strings: list[str], dates: set[int], day0: date) -> str:
    kind = cell.get("t", "n")
    if kind == "inlineStr":
        inline = cell.find(f"{_MAIN}is")
        return _text(inline) if inline is not None else ""
    raw = cell.findtext(f"{_MAIN}v") or ""
    if kind == "s":
        return strings[int(raw)] if raw.isdigit() and int(raw) < len(strings) else ""
    if kind == "b":
        return "true" if raw == "1" else "false"
    if kind == "n" and raw and int(cell.get("s", "0")) in dates:
        try:
            return (day0 + timedelta(days=int(float(raw)))).isoformat()
        except (ValueError, OverflowError):
            return raw
    if kind == "n" and raw.endswith(".0"):
        return raw[:-2]
    return raw  # numbers as stored, str (a formula's text), e (an error such as #N/A), d (ISO)


def _row_values(row: Element, strings: list[str], dates: set[int], day0: date) -> list[str]:
    values: list[str] = []
    for cell in row.iter(f"{_MAIN}c"):
        match = _REF.fullmatch(cell.get("r", ""))
        at = _column_index(match.group(1)) if match else len(values)
        if at >= MAX_COLUMNS:
            continue
        value = _cell_value(cell, strings, dates, day0)
        if value == "":
            continue
        values.extend([""] * (at - len(values)))
        if at < len(values):
            values[at] = value
        else:
            values.append(value)
    return values


def xlsx_rows(path: Path) -> Iterator[tuple[str, int, list[str]]]:
    """(sheet name, row number, cell texts) of every non-empty row, sheet by sheet."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise WorkbookError(f"{path}: not an .xlsx workbook ({exc})") from exc
    with archive:
        try:
            sheets, day0 = _sheets(archive)
            strings = _shared_strings(archive)
            dates = _date_styles(archive)
        except (KeyError, ParseError) as exc:
            raise WorkbookError(f"{path}: not an .xlsx workbook ({exc})") from exc
        for name, part in sheets:
            if part not in archive.namelist():
                raise WorkbookError(f"{path}: sheet {name!r} has no part {part!r}")
            with archive.open(part) as content:
                line = 0
                for _event, element in iterparse(content, events=("end",)):
                    if element.tag != f"{_MAIN}row":
                        continue
                    line = int(element.get("r", line + 1))
                    values = _row_values(element, strings, dates, day0)
                    element.clear()
                    if any(v.strip() for v in values):
                        yield name, line, values
