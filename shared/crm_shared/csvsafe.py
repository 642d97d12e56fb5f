"""CSV written for people who open it in Excel or WPS: a cell that starts with = + - @, a tab or a
carriage return is a formula there (`=cmd|' /C calc'!A0`, `=HYPERLINK(...)`), so it gets a leading
apostrophe and is shown as the text it is (OWASP's advice for CSV injection). Every CSV export of the
platform goes through `csv_response`."""
from __future__ import annotations

import csv
import io
from datetime import date, datetime
from decimal import Decimal

from flask import Response

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, Decimal)):
        return str(value)  # a number is data, even a negative one
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    text = str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def to_csv(columns: list[str], rows) -> str:
    """UTF-8 with a BOM (so Excel reads Chinese right), CRLF line ends, every cell neutralised."""
    buf = io.StringIO()
    buf.write("\ufeff")
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(columns)
    for row in rows:
        w.writerow([safe_cell(row.get(c)) for c in columns])
    return buf.getvalue()


def csv_response(columns: list[str], rows, filename: str) -> Response:
    return Response(to_csv(columns, rows).encode("utf-8"), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})
