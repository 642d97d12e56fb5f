"""`crm-leads import FILE`: upload a large CSV to the leads service in chunks, with a progress bar.

The file is decoded here (UTF-8, UTF-8 with BOM or GBK, as the service would), cut into chunks of
rows that each carry the header, and each chunk is posted to POST /v1/leads/import. Row numbers in
the report are those of the original file.

    crm-leads import leads.csv --mapping '{"手机": "phone", "姓名": "name"}' \
        [--url http://localhost:8001] [--token $CRM_TOKEN] [--chunk 2000] [--source import] [--campaign-id 3]
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
import urllib.error
import urllib.request
import uuid

from .domain.imports import decode


def _multipart(fields: dict, file_bytes: bytes) -> tuple[bytes, str]:
    boundary = "crm" + uuid.uuid4().hex
    out = io.BytesIO()
    for name, value in fields.items():
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="chunk.csv"\r\n'
              f"Content-Type: text/csv\r\n\r\n".encode())
    out.write(file_bytes)
    out.write(f"\r\n--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


def chunks(text: str, size: int):
    """(first row number, CSV bytes with the header) for each run of `size` rows."""
    rows = list(csv.reader(io.StringIO(text, newline="")))
    if not rows:
        return
    header, body = rows[0], rows[1:]
    for start in range(0, len(body), size):
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(header)
        w.writerows(body[start:start + size])
        yield start + 2, len(body), buf.getvalue().encode("utf-8")


def bar(done: int, total: int, width: int = 40) -> str:
    filled = int(width * done / total) if total else width
    return f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} rows"


def import_file(args, out=sys.stderr) -> dict:
    with open(args.file, "rb") as f:
        text = decode(f.read(), args.encoding)
    totals = {"total": 0, "created": 0, "duplicates": 0, "failed": 0, "report": []}
    fields = {"source": args.source}
    if args.mapping:
        fields["mapping"] = args.mapping
    if args.campaign_id is not None:
        fields["campaign_id"] = str(args.campaign_id)
    for first_row, n_rows, data in chunks(text, args.chunk):
        body, ctype = _multipart(fields, data)
        req = urllib.request.Request(args.url.rstrip("/") + "/v1/leads/import", data=body, method="POST",
                                     headers={"Content-Type": ctype, "Authorization": f"Bearer {args.token}"})
        try:
            with urllib.request.urlopen(req, timeout=600) as resp:
                part = json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            raise SystemExit(f"\nimport failed at row {first_row}: {exc.code} {exc.read().decode(errors='replace')}")
        for k in ("total", "created", "duplicates", "failed"):
            totals[k] += part[k]
        for r in part["report"]:
            totals["report"].append({**r, "row": r["row"] - 2 + first_row})
        out.write(bar(min(totals["total"], n_rows), n_rows))
        out.flush()
    out.write("\n")
    return totals


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="crm-leads", description="Leads service tools")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("import", help="import a CSV file through the API, with a progress bar")
    p.add_argument("file")
    p.add_argument("--mapping", help='JSON {"CSV column": "lead field"}')
    p.add_argument("--url", default=os.environ.get("LEADS_URL", "http://localhost:8001"))
    p.add_argument("--token", default=os.environ.get("CRM_TOKEN"), help="bearer token (or CRM_TOKEN)")
    p.add_argument("--chunk", type=int, default=2000)
    p.add_argument("--source", default="import")
    p.add_argument("--campaign-id", type=int)
    p.add_argument("--encoding", help="utf-8, utf-8-sig, gbk… (detected when omitted)")
    p.add_argument("--report", help="write the per-row report here as JSON")
    args = ap.parse_args(argv)
    if not args.token:
        ap.error("a token is needed: --token or CRM_TOKEN (e.g. from `crm token`)")
    totals = import_file(args)
    print(f"{totals['total']} rows: {totals['created']} created, {totals['duplicates']} duplicates, "
          f"{totals['failed']} failed")
    if args.report:
        with open(args.report, "w", encoding="utf-8") as f:
            json.dump(totals["report"], f, ensure_ascii=False, indent=1)
    else:
        for r in totals["report"][:50]:
            print(f"row {r['row']}: {r['field']}: {r['message']}")
    return 0 if totals["failed"] == 0 else 2


if __name__ == "__main__":
    sys.exit(main())
