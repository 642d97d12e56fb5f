"""CSV import: UTF-8 (with or without BOM) or GBK/GB18030 (what Excel in China writes), up to
50,000 rows, a mapping from CSV columns to lead fields.

Each row is its own savepoint: a bad row never leaves a half-written lead and never costs the
good rows. Rows are committed in chunks, and the keys of a whole chunk are checked for duplicates
in one query before any insert (the unique constraint still settles races)."""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

from sqlalchemy import select, tuple_

from ..models import lead_keys
from . import intake, normalise, scoring
from .errors import Invalid

MAX_ROWS = 50_000
CHUNK = 500
TARGETS = ("name", "company", "phone", "email", "province", "city", "industry", "source", "note",
           "referrer_customer_id")


def decode(raw: bytes, encoding: str | None = None) -> str:
    if encoding:
        try:
            return raw.decode(encoding)
        except (LookupError, UnicodeDecodeError) as exc:
            raise Invalid({"file": [f"Cannot read the file as {encoding}: {exc}."]})
    if raw.startswith(b"\xef\xbb\xbf"):
        return raw[3:].decode("utf-8", errors="strict")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return raw.decode("gb18030")  # a superset of GBK and GB2312
    except UnicodeDecodeError:
        raise Invalid({"file": ["The file is neither UTF-8 nor GBK."]})


@dataclass
class Report:
    total: int = 0
    created: int = 0
    duplicates: int = 0
    failed: int = 0
    rows: list = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"total": self.total, "created": self.created, "duplicates": self.duplicates, "failed": self.failed,
                "report": self.rows}


def parse(text: str, mapping: dict[str, str] | None):
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if not reader.fieldnames:
        raise Invalid({"file": ["The file has no header row."]})
    headers = [h.strip() for h in reader.fieldnames]
    reader.fieldnames = headers
    if mapping:
        bad = {v for v in mapping.values() if v not in TARGETS}
        if bad:
            raise Invalid({"mapping": [f"Unknown lead field(s): {', '.join(sorted(bad))}."]})
        missing = [c for c in mapping if c not in headers]
        if missing:
            raise Invalid({"mapping": [f"No such column(s) in the file: {', '.join(missing)}."]})
    else:
        mapping = {h: h for h in headers if h in TARGETS}
    if not mapping:
        raise Invalid({"mapping": ["No column maps to a lead field."]})
    return reader, mapping


def run(runtime, raw: bytes, mapping: dict | None, actor, *, encoding: str | None = None, source: str = "import",
        campaign_id=None, progress=None) -> dict:
    reader, mapping = parse(decode(raw, encoding), mapping)
    rows = []
    for i, rec in enumerate(reader, start=2):  # row 1 is the header
        if len(rows) >= MAX_ROWS:
            raise Invalid({"file": [f"More than {MAX_ROWS} rows."]})
        data = {f: None for f in intake.FIELDS}
        data["source"], data["campaign_id"] = source, campaign_id
        for col, target in mapping.items():
            value = rec.get(col)
            data[target] = value.strip() if isinstance(value, str) and value.strip() else None
        rows.append((i, data))
    report = Report(total=len(rows))
    for start in range(0, len(rows), CHUNK):
        _chunk(runtime, rows[start:start + CHUNK], actor, report)
        if progress:
            progress(min(start + CHUNK, len(rows)), len(rows))
    return report.as_dict()


def _chunk(runtime, rows, actor, report: Report) -> None:
    prepared = []
    for i, data in rows:
        try:
            norm = intake.prepare(data)
            for f, limit in (("name", 200), ("company", 300), ("province", 50), ("city", 50), ("industry", 100)):
                if norm.get(f) and len(norm[f]) > limit:
                    raise Invalid({f: [f"Longer than {limit} characters."]})
            prepared.append((i, norm))
        except Invalid as exc:
            report.failed += 1
            for fld, msgs in exc.extra["errors"].items():
                report.rows.append({"row": i, "field": fld, "message": "; ".join(msgs)})
    with runtime.uow() as uow:
        s = uow.session
        now = runtime.clock.now()
        weights = scoring.load(s)
        all_keys = {k for _, n in prepared for k in normalise.keys(n["phone"], n["email"], n["company"], n["city"])}
        known = set()
        for part in _batches(sorted(all_keys), 300):
            known |= set(s.execute(select(lead_keys.c.kind, lead_keys.c.value)
                                   .where(tuple_(lead_keys.c.kind, lead_keys.c.value).in_(part))).all())
        seen: dict = {}            # key -> index in `fresh` of the row that claims it in this chunk
        fresh: list = []           # (row number, normalised lead) to create
        later: list = []           # (row number, field, index in `fresh`) duplicates within the chunk
        for i, norm in prepared:
            keys = normalise.keys(norm["phone"], norm["email"], norm["company"], norm["city"])
            twin = next(((kind, seen[(kind, v)]) for kind, v in keys if (kind, v) in seen), None)
            if twin is not None:
                later.append((i, twin[0], twin[1]))
                continue
            if any(k in known for k in keys):
                dup = intake.find_duplicate(s, keys)
                intake.record_duplicate(uow, dup, actor, norm["source"], now)
                _duplicate(report, i, dup)
                continue
            for k in keys:
                seen[k] = len(fresh)
            fresh.append((i, norm))
        results = intake.create_many(uow, [norm for _, norm in fresh], actor, now, weights) if fresh else []
        for (i, _norm), result in zip(fresh, results):
            if isinstance(result, intake.Created):
                report.created += 1
            elif isinstance(result, intake.Duplicate):
                _duplicate(report, i, result)
            else:
                report.failed += 1
                report.rows.append({"row": i, "field": "_row", "message": result.detail})
        for i, fld, k in later:
            report.duplicates += 1
            first_row, result = fresh[k][0], results[k]
            lead_id = str(result.lead["id"]) if isinstance(result, intake.Created) else None
            report.rows.append({"row": i, "field": fld, "message": f"Duplicate of row {first_row} in this file.",
                                "duplicate_of": lead_id})
        uow.commit()


def _duplicate(report: Report, row: int, dup) -> None:
    report.duplicates += 1
    report.rows.append({"row": row, "field": dup.matched_on,
                        "message": "Duplicate of an existing " + ("lead." if dup.lead_id is not None else "customer."),
                        "duplicate_of": str(dup.lead_id) if dup.lead_id is not None else None,
                        "owner_name": dup.owner_name})


def _batches(items, n):
    for i in range(0, len(items), n):
        yield items[i:i + n]
