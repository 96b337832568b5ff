"""Writes small Office Open XML workbooks (.xlsx) the way Excel does, for the importers'
tests: text in the shared-strings table (one cell as an inline string), numbers as
numbers, DD/MM/YYYY dates as serial day numbers with a date number format, blank cells
left out (cells located by their A1 reference), a sheet's rows numbered."""

import re
import zipfile
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PKG_REL = "http://schemas.openxmlformats.org/package/2006/relationships"
SHEET_TYPE = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet"
EPOCH = date(1899, 12, 30)  # serial 1 is 1 January 1900 (with Excel's 29 February 1900)


def column_letters(index: int) -> str:
    letters = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(ord("A") + rem) + letters
    return letters


class _Strings:
    def __init__(self) -> None:
        self.index: dict[str, int] = {}

    def add(self, text: str) -> int:
        return self.index.setdefault(text, len(self.index))

    def xml(self) -> str:
        items = "".join(f'<si><t xml:space="preserve">{escape(t)}</t></si>' for t in self.index)
        return f'<sst xmlns="{MAIN}" count="{len(self.index)}" uniqueCount="{len(self.index)}">{items}</sst>'


def _cell(ref: str, value: str, strings: _Strings, inline: bool) -> str:
    if re.fullmatch(r"[0-9]+", value):
        return f'<c r="{ref}"><v>{value}</v></c>'
    if re.fullmatch(r"\d{2}/\d{2}/\d{4}", value):
        serial = (datetime.strptime(value, "%d/%m/%Y").date() - EPOCH).days
        return f'<c r="{ref}" s="1"><v>{serial}</v></c>'
    if inline:
        return f'<c r="{ref}" t="inlineStr"><is><t>{escape(value)}</t></is></c>'
    return f'<c r="{ref}" t="s"><v>{strings.add(value)}</v></c>'


def _sheet(rows: Sequence[Sequence[str]], strings: _Strings) -> str:
    out = []
    for number, values in enumerate(rows, start=1):
        if not any(values):
            continue  # Excel writes no element for an empty row
        cells = "".join(
            _cell(f"{column_letters(i)}{number}", v, strings, inline=(number, i) == (1, 0))
            for i, v in enumerate(values)
            if v != ""
        )
        out.append(f'<row r="{number}">{cells}</row>')
    return f'<worksheet xmlns="{MAIN}"><sheetData>{"".join(out)}</sheetData></worksheet>'


STYLES = (
    f'<styleSheet xmlns="{MAIN}"><numFmts count="1"><numFmt numFmtId="164" formatCode="dd/mm/yyyy"/></numFmts>'
    '<cellXfs count="2"><xf numFmtId="0"/><xf numFmtId="164" applyNumberFormat="1"/></cellXfs></styleSheet>'
)


def write_xlsx(path: Path, sheets: Sequence[tuple[str, Sequence[Sequence[str]]]]) -> Path:
    strings = _Strings()
    bodies = [_sheet(rows, strings) for _name, rows in sheets]
    entries = "".join(
        f'<sheet name={quoteattr(name)} sheetId="{i}" r:id="rId{i}"/>' for i, (name, _rows) in enumerate(sheets, 1)
    )
    workbook = f'<workbook xmlns="{MAIN}" xmlns:r="{REL}"><sheets>{entries}</sheets></workbook>'
    rels = "".join(
        f'<Relationship Id="rId{i}" Type="{SHEET_TYPE}" Target="worksheets/sheet{i}.xml"/>'
        for i in range(1, len(sheets) + 1)
    )
    types = (
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="xml" ContentType="application/xml"/>'
        '<Override PartName="/xl/workbook.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/></Types>'
    )
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", types)
        archive.writestr("xl/workbook.xml", workbook)
        archive.writestr("xl/_rels/workbook.xml.rels", f'<Relationships xmlns="{PKG_REL}">{rels}</Relationships>')
        archive.writestr("xl/styles.xml", STYLES)
        archive.writestr("xl/sharedStrings.xml", strings.xml())
        for i, body in enumerate(bodies, 1):
            archive.writestr(f"xl/worksheets/sheet{i}.xml", body)
    return path
