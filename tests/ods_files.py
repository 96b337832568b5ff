"""Writes small OpenDocument spreadsheets the way office suites do, for the importers' tests:
repeated blank cells and rows, numbers stored apart from their display text, dates as
date values, runs of spaces as <text:s/>, a notes sheet before the data."""

import re
import zipfile
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

NS = (
    'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
    'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
    'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"'
)
MANIFEST = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" manifest:version="1.2">'
    '<manifest:file-entry manifest:full-path="/" manifest:media-type="application/vnd.oasis.opendocument.spreadsheet"/>'
    '<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/>'
    "</manifest:manifest>"
)


def _paragraph(text: str) -> str:
    # Runs of two or more spaces are stored as one space and <text:s text:c="n"/>.
    def spaces(match: re.Match[str]) -> str:
        return f' <text:s text:c="{len(match.group(0)) - 1}"/>'

    return "<text:p>" + re.sub(r" {2,}", spaces, escape(text)) + "</text:p>"


def _cell(value: str) -> str:
    if value == "":
        return "<table:table-cell/>"
    if re.fullmatch(r"[0-9]+", value):
        shown = f"{int(value):,}"  # displayed with a thousands separator, stored plain
        return f'<table:table-cell office:value-type="float" office:value="{value}"><text:p>{shown}</text:p></table:table-cell>'
    if re.fullmatch(r"\d{2}/\d{2}/\d{4}", value):
        iso = datetime.strptime(value, "%d/%m/%Y").date().isoformat()
        return (
            f'<table:table-cell office:value-type="date" office:date-value="{iso}T00:00:00">'
            f"<text:p>{value}</text:p></table:table-cell>"
        )
    return f'<table:table-cell office:value-type="string">{_paragraph(value)}</table:table-cell>'


def _row(values: Sequence[str]) -> str:
    cells: list[str] = []
    blanks = 0
    for value in values:
        if value == "":
            blanks += 1
            continue
        if blanks:
            cells.append(f'<table:table-cell table:number-columns-repeated="{blanks}"/>')
            blanks = 0
        cells.append(_cell(value))
    # Office suites pad every row to the sheet's width with one repeated blank cell.
    cells.append('<table:table-cell table:number-columns-repeated="16000"/>')
    return "<table:table-row>" + "".join(cells) + "</table:table-row>"


def write_ods(path: Path, sheets: Sequence[tuple[str, Sequence[Sequence[str]]]]) -> Path:
    tables = []
    for name, rows in sheets:
        body = "".join(
            _row(r)
            if any(r)
            else '<table:table-row><table:table-cell table:number-columns-repeated="1024"/></table:table-row>'
            for r in rows
        )
        tail = '<table:table-row table:number-rows-repeated="1048000"><table:table-cell table:number-columns-repeated="1024"/></table:table-row>'
        tables.append(f"<table:table table:name={quoteattr(name)}>{body}{tail}</table:table>")
    content = (
        f'<?xml version="1.0" encoding="UTF-8"?><office:document-content {NS} office:version="1.2">'
        f"<office:body><office:spreadsheet>{''.join(tables)}</office:spreadsheet></office:body></office:document-content>"
    )
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet", zipfile.ZIP_STORED)
        archive.writestr("META-INF/manifest.xml", MANIFEST, zipfile.ZIP_DEFLATED)
        archive.writestr("content.xml", content, zipfile.ZIP_DEFLATED)
    return path
