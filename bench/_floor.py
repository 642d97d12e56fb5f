"""The lead intake's own SQL from a bare Flask view: what that SQL allows with Flask, SQLAlchemy and
gunicorn when nothing else of ours is around it (bench/leads.py's "floor" row; bench/TUNING.md item 26).

    gunicorn --chdir bench '_floor:app'       (DATABASE_URL: a migrated leads database with the bench team)

POST /floor does what a routed intake does in the database, with the service's own pieces: the body
normalised and checked by `intake.prepare` (a 422 when it fails), the keys, the score (the default
weights), then in one transaction the same three statements the service sends (the lead with its keys
and `created` history row, the round-robin assignment, the two outbox rows), each compiled once and
sent with `crm_shared.db.driver_execute` (the first by the intake's own `_insert_with_keys`). Left
out, and so measured by the difference to the intake's row: flask-smorest and marshmallow, the
request hooks (request id, token, metrics), the ORM session and unit of work, the catalogue's check
of the events, the response schema. A duplicate is not undone (the
bench sends distinct leads); routing rules are not read (the bench has one team)."""
from __future__ import annotations

import json
import os
import sys
import uuid
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

# gunicorn --chdir bench puts this folder first on sys.path, where bench/leads.py would shadow the
# service's `leads` package
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]

from flask import Flask, jsonify, request  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

from crm_shared.db import driver_execute  # noqa: E402
from crm_shared.uow import _COLUMNS, _insert_for  # noqa: E402
from leads.domain import intake, normalise, routing, scoring  # noqa: E402
from leads.domain.errors import Invalid  # noqa: E402
from leads.domain.records import event_fields, history_row  # noqa: E402
from leads.models import outbox  # noqa: E402

engine = create_engine(os.environ["DATABASE_URL"], pool_size=5)
runtime = SimpleNamespace(outbox=outbox, engine=engine)  # what `_insert_for` reads
app = Flask("floor")
ACTOR = SimpleNamespace(id="bench", name="Bench")
_team: list = []


def _team_id(conn) -> int:
    if not _team:
        _team.append(conn.execute(text("SELECT id FROM teams WHERE code = 'bench'")).scalar_one())
    return _team[0]


def _envelope(event_type: str, payload: dict, at: datetime) -> dict:
    eid = str(uuid.uuid4())
    return {"event_id": eid, "event_type": event_type, "aggregate_type": "lead",
            "aggregate_id": payload["lead_id"], "created_at": at,
            "envelope": json.dumps({"id": eid, "type": event_type, "version": 1, "producer": "leads",
                                    "occurred_at": at.isoformat(), "payload": payload},
                                   separators=(",", ":"), ensure_ascii=False)}


@app.post("/floor")
def floor():
    try:
        norm = intake.prepare(request.get_json())
    except Invalid as exc:
        return jsonify(errors=exc.errors), 422
    now = datetime.now(timezone.utc)
    keys = normalise.keys(norm["phone"], norm["email"], norm["company"], norm["city"])
    score, tier = scoring.score(norm, scoring.DEFAULT)
    with engine.begin() as conn:
        team_id = _team_id(conn)
        values = dict(norm, score=score, tier=tier, status="pooled", stage="new", owner_id=None, owner_name=None,
                      team_id=team_id, tags=None, locked=False, duplicate_hits=0, created_by=ACTOR.id,
                      created_at=now, updated_at=now, assigned_at=None, pooled_at=now)
        created = history_row(lead_id=None, at=now, actor=ACTOR, kind="created", reason=f"source {norm['source']}")
        lead, _taken = intake._insert_with_keys(conn, values, keys, created, slim=True)
        given = driver_execute(conn, routing._ROUND_ROBIN, {
            "seq": routing.turn_sequence(team_id), "team": team_id, "lead": lead["id"], "now": now,
            "actor_id": ACTOR.id, "actor_name": ACTOR.name}).mappings().first() or {}
        row = {**values, **given, "id": lead["id"]}
        fields = event_fields(row, None, {team_id: given.get("_team_code")})
        rows = [_envelope("lead.created", {**fields, "status": row["status"]}, now),
                _envelope("lead.assigned", {**fields, "previous_owner_id": None, "reason": "auto",
                                            "by_user_id": None}, now)]
        driver_execute(conn, _insert_for(runtime, 2), {f"{c}_{k}": r[c] for k, r in enumerate(rows) for c in _COLUMNS})
    out = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items() if not k.startswith("_")}
    return jsonify(out), 201
